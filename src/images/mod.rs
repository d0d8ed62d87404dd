//! Images: OCI image layouts, oci-archive and docker-archive tars imported
//! offline into `STATE_DIR/images/`, and the units that run them.
//!
//! The store holds each layer unpacked once per chain ID (in overlayfs
//! form, ready to be a lowerdir), one record per image (keyed by the
//! digest of its config, Docker's image ID) and the tags. A tag is written
//! last, so an import that dies half-way leaves nothing a unit can use.

mod archive;
mod digest;
pub mod import;
mod manifest;
mod platform;
pub mod reference;
pub mod resolve;
pub mod store;
mod unpack;

pub use reference::Reference;
pub use store::{ImageRecord, Store};

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{what} {}: {source}", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// A file of the image (index.json, a manifest, a config) is not what
    /// the formats allow.
    #[error("{file}: {message}")]
    Format { file: String, message: String },
    #[error("{file}: its sha256 is {actual}, not {expected}: the file was damaged or changed")]
    Digest {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{file}: {actual} bytes, but the manifest says {expected}: the file was damaged or cut short")]
    Size {
        file: String,
        expected: u64,
        actual: u64,
    },
    /// One entry of a layer tar could not be unpacked, or was refused.
    #[error("layer {layer}: {entry}: {message}")]
    Entry {
        layer: String,
        entry: String,
        message: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("the import was cancelled")]
    Cancelled,
}

impl ImageError {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { what, path, source }
    }

    pub(crate) fn format(file: impl Into<String>, message: impl std::fmt::Display) -> Self {
        ImageError::Format {
            file: file.into(),
            message: message.to_string(),
        }
    }
}

/// `sha256:` and the first 12 hex digits, as `docker images` shows an ID.
pub fn short_digest(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", hex.get(..12).unwrap_or(hex))
}
