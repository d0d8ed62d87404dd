//! `resources.storage`: a size for the container's writable layer.
//!
//! The layer's `upper` and `work` directories live in `STATE_DIR/NAME/storage`,
//! which is either a directory under project quota (when the file system
//! under the state directory enforces it) or the mount point of the sparse
//! ext4 image `STATE_DIR/NAME/storage.img`. `volatile: overlay` units get a
//! tmpfs of that size instead, made by the init stage. supd prepares the
//! layer on the host before each start, so that the container's mount
//! namespace is born with it, and a user namespace needs no mount rights.

mod image;
pub mod loopdev;
pub mod quota;

use crate::unit::{Unit, Volatile};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Inside the unit's state directory.
const LAYER_DIR: &str = "storage";
const IMAGE_FILE: &str = "storage.img";

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// mke2fs or resize2fs failed, or the image cannot be grown.
    #[error("storage: {path}: {message}")]
    Image { path: PathBuf, message: String },
    #[error(
        "storage: the ext4 image {path} holds {capacity} bytes and cannot shrink to {size} \
         (ext4 grows online but does not shrink); it keeps its size until the unit's \
         storage is removed"
    )]
    CannotShrink {
        path: PathBuf,
        capacity: u64,
        size: u64,
    },
}

/// The result of an ioctl or syscall that returns -1 and sets errno.
fn os_result(ret: impl Into<i64>) -> io::Result<()> {
    match ret.into() {
        ret if ret < 0 => Err(io::Error::last_os_error()),
        _ => Ok(()),
    }
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { op, path, source }
}

/// How a unit's layer is held to its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// A project id with a hard block limit on the state directory's file
    /// system (XFS, or ext4 with project quota).
    ProjectQuota,
    /// A sparse ext4 image, loop-mounted.
    Image,
    /// The tmpfs upper of `volatile: overlay`, mounted with `size=`.
    Tmpfs,
}

impl Mechanism {
    pub fn describe(self) -> &'static str {
        match self {
            Mechanism::ProjectQuota => "project quota",
            Mechanism::Image => "loop-mounted ext4 image",
            Mechanism::Tmpfs => "tmpfs size",
        }
    }
}

/// The directory that holds the unit's `upper` and `work` when it has a
/// storage size and its upper is on disk.
pub fn layer_dir(state_dir: &Path) -> PathBuf {
    state_dir.join(LAYER_DIR)
}

fn image_file(state_dir: &Path) -> PathBuf {
    state_dir.join(IMAGE_FILE)
}

/// The mechanism in force for the unit, if it has a storage size: an
/// image once made stays the unit's mechanism.
pub fn mechanism_of(unit: &Unit, state_dir: &Path) -> Option<Mechanism> {
    unit.resources.storage_size?;
    Some(if unit.volatile == Volatile::Overlay {
        Mechanism::Tmpfs
    } else if image_file(state_dir).exists() {
        Mechanism::Image
    } else if quota::project_of(&layer_dir(state_dir)).is_ok_and(|id| id != 0)
        || quota::enforced(state_dir.parent().unwrap_or(state_dir))
    {
        Mechanism::ProjectQuota
    } else {
        Mechanism::Image
    })
}

/// Whether `dir` is the root of a mount (its device differs from its
/// parent's).
pub fn is_mount_point(dir: &Path) -> bool {
    let (Ok(own), Ok(parent)) = (fs::metadata(dir), fs::metadata(dir.join(".."))) else {
        return false;
    };
    own.dev() != parent.dev()
}

/// What supd did to make the layer ready, for its log.
#[derive(Debug)]
pub struct Prepared {
    pub mechanism: Mechanism,
    /// A smaller size that the image could not take.
    pub not_shrunk: Option<StorageError>,
}

/// Host side, before each start: makes `STATE_DIR/NAME/storage` hold a
/// limited `upper` and `work`, owned by `owner` (a user namespace's root).
pub fn prepare(
    unit: &Unit,
    state_dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Option<Prepared>, StorageError> {
    let (Some(size), Some(mechanism)) =
        (unit.resources.storage_size, mechanism_of(unit, state_dir))
    else {
        return Ok(None);
    };
    let dir = layer_dir(state_dir);
    let mut not_shrunk = None;
    match mechanism {
        Mechanism::Tmpfs => {
            return Ok(Some(Prepared {
                mechanism,
                not_shrunk,
            }))
        }
        Mechanism::ProjectQuota => prepare_quota(state_dir, &dir, size)?,
        Mechanism::Image => {
            let image = image_file(state_dir);
            fs::create_dir_all(state_dir).map_err(io_error("create", state_dir))?;
            if let image::Fit::CannotShrink { capacity } = image::mount_image(&image, &dir, size)? {
                not_shrunk = Some(StorageError::CannotShrink {
                    path: image,
                    capacity,
                    size,
                });
            }
        }
    }
    for sub in ["upper", "work"] {
        let path = dir.join(sub);
        let made = fs::create_dir_all(&path).and_then(|()| match owner {
            Some((uid, gid)) => std::os::unix::fs::chown(&path, Some(uid), Some(gid)),
            None => Ok(()),
        });
        made.map_err(io_error("create", &path))?;
    }
    Ok(Some(Prepared {
        mechanism,
        not_shrunk,
    }))
}

fn prepare_quota(state_dir: &Path, dir: &Path, size: u64) -> Result<(), StorageError> {
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    let id = match quota::project_of(dir).map_err(io_error("read the project id of", dir))? {
        0 => {
            let root = state_dir.parent().unwrap_or(state_dir);
            let id = quota::free_id(root, LAYER_DIR);
            quota::assign(dir, id).map_err(io_error("set the project id of", dir))?;
            id
        }
        id => id,
    };
    quota::set_limit(dir, id, size).map_err(io_error("set the project quota of", dir))
}

/// A new size for a running container's layer; `Ok(false)`: the
/// mechanism cannot change it live (the next start applies it).
pub fn resize(unit: &Unit, state_dir: &Path) -> Result<bool, StorageError> {
    let (Some(size), Some(mechanism)) =
        (unit.resources.storage_size, mechanism_of(unit, state_dir))
    else {
        return Ok(false);
    };
    let dir = layer_dir(state_dir);
    match mechanism {
        Mechanism::Tmpfs => Ok(false),
        Mechanism::ProjectQuota => prepare_quota(state_dir, &dir, size).map(|()| true),
        // supd's own mount is gone if supd restarted in a mount namespace
        // of its own: then the next start grows the image.
        Mechanism::Image if !is_mount_point(&dir) => Ok(false),
        Mechanism::Image => {
            let image = image_file(state_dir);
            match image::mount_image(&image, &dir, size)? {
                image::Fit::CannotShrink { capacity } => Err(StorageError::CannotShrink {
                    path: image,
                    capacity,
                    size,
                }),
                // Without CAP_SYS_RESOURCE: offline, at the next start.
                image::Fit::Offline { .. } => Ok(false),
                image::Fit::Unchanged | image::Fit::Grown => Ok(true),
            }
        }
    }
}

/// After a run: supd's mount of an image goes (the container's went with
/// its mount namespace), so nothing stays mounted while the unit is down.
pub fn release(state_dir: &Path) -> Result<(), StorageError> {
    let image = image_file(state_dir);
    if image.exists() {
        image::unmount(&image, &layer_dir(state_dir))?;
    }
    Ok(())
}

/// With the unit: the image or the quota directory, and the quota's limit.
pub fn remove(state_dir: &Path) -> Result<(), StorageError> {
    let dir = layer_dir(state_dir);
    let image = image_file(state_dir);
    if image.exists() {
        image::unmount(&image, &dir)?;
        fs::remove_file(&image).map_err(io_error("remove", &image))?;
    } else if let Ok(id) = quota::project_of(&dir) {
        if id != 0 {
            if let Err(e) = quota::set_limit(&dir, id, 0) {
                log::debug!("{}: lifting the project quota: {e}", dir.display());
            }
        }
    }
    match fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("remove", &dir)(e)),
        _ => Ok(()),
    }
}

/// The layer's figures as the container sees them: statfs of an overlay
/// answers for its upper directory, which is the image, the tmpfs, or a
/// directory under project quota (ext4 and XFS then report the project's
/// limit and usage).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub available: u64,
}

/// `path`: `/proc/PID/root` of a running container, or the layer
/// directory on the host.
pub fn usage(path: &Path) -> Option<Usage> {
    let stat = nix::sys::statfs::statfs(path).ok()?;
    let block = stat.block_size() as u64;
    let used = (stat.blocks() as u64).saturating_sub(stat.blocks_free() as u64);
    Some(Usage {
        used: used.saturating_mul(block),
        available: (stat.blocks_available() as u64).saturating_mul(block),
    })
}

impl Usage {
    /// Less than 1% of the size (and at least 1 MiB) left: writes are
    /// failing or about to.
    pub fn is_full(&self, size: u64) -> bool {
        self.available < (size / 100).max(1 << 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_means_less_than_one_percent_or_one_mib_left() {
        let usage = |available| Usage { used: 0, available };
        assert!(usage(0).is_full(1 << 30));
        assert!(usage(10 << 20).is_full(1 << 30));
        assert!(!usage(11 << 20).is_full(1 << 30));
        assert!(usage(1 << 19).is_full(32 << 20));
        assert!(!usage(2 << 20).is_full(32 << 20));
    }
}
