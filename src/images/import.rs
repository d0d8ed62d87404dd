//! One import, start to end: find the manifest for this host, check the
//! config, then each layer: stream its blob through sha256, the
//! decompressor and a second sha256 (its diff ID) into a `.partial-`
//! directory, and rename that into place only once both digests and the
//! size are right. The image record is written last; the tag is the
//! event loop's to set.

use super::archive::Source;
use super::digest::{chain_ids, sha256_hex, Hashing};
use super::manifest::{docker_plan, oci_plan, read_verified, Blob};
use super::store::{disk_usage, ImageConfig, ImageRecord, LayerRecord, Store, PARTIAL_PREFIX};
use super::unpack::{unpack, Unpacked};
use super::{platform, ImageError, Reference};
use crate::files;
use oci_spec::image::ImageConfiguration;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// What a running import has done, read by the event loop for progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
    pub layer: AtomicUsize,
    pub layers: AtomicUsize,
}

#[derive(Debug)]
pub struct Imported {
    pub record: ImageRecord,
    /// The tag to set: the one asked for, or the name the image carries.
    pub tag: String,
    pub unpacked: usize,
    pub reused: usize,
}

/// What to import from where, and under which tag.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: PathBuf,
    /// Which image of a layout or archive that holds several (its ref name
    /// or tag); else the one `tag` names.
    pub select: Option<String>,
    /// The tag to give it; else the name the image carries.
    pub tag: Option<String>,
}

pub fn import(
    root: &Path,
    request: &Request,
    progress: &Arc<Progress>,
    cancel: &AtomicBool,
) -> Result<Imported, ImageError> {
    let path = request.path.as_path();
    let wanted = request.tag.as_deref();
    let select = request.select.as_deref().or(wanted);
    let source = Source::open(path)?;
    let plan = if source.has("index.json") {
        oci_plan(&source, select)?
    } else if source.has("manifest.json") {
        docker_plan(&source, select)?
    } else {
        return Err(ImageError::Refused(format!(
            "{}: not an image: it has neither index.json (an OCI layout or oci-archive) nor manifest.json (docker-archive, or a dir: copy)",
            path.display()
        )));
    };
    // A ref name without ':' or '/' is a tag alone (skopeo's oci:DIR:1.4):
    // taking "1.4" for an image name would mislead.
    let carried = plan.name.as_deref().filter(|n| n.contains([':', '/']));
    let tag = match wanted.or(carried) {
        Some(name) => Reference::parse(name).map_err(ImageError::Refused)?,
        None => {
            let only_tag = plan
                .name
                .as_deref()
                .map(|n| format!(" (only the tag {n:?})"))
                .unwrap_or_default();
            return Err(ImageError::Refused(format!(
                "{}: the image carries no name{only_tag}: give one, as in supctl image import {} NAME:TAG",
                path.display(),
                path.display()
            )));
        }
    };
    let Reference::Tag(tag) = tag else {
        return Err(ImageError::Refused(
            "an image is imported under NAME:TAG, not a digest".into(),
        ));
    };
    let config_bytes = read_verified(&source, &plan.config)?;
    let id = format!("sha256:{}", sha256_hex(&config_bytes));
    let config: ImageConfiguration = serde_json::from_slice(&config_bytes)
        .map_err(|e| ImageError::format(&plan.config.member, e))?;
    let platform = format!("{}/{}", config.os(), config.architecture());
    if !platform::runs_here(
        &config.os().to_string(),
        &config.architecture().to_string(),
        config.variant().as_deref(),
    ) {
        return Err(ImageError::Refused(format!(
            "the image is for {platform}; this host runs {}",
            platform::host_platform()
        )));
    }
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != plan.layers.len() {
        return Err(ImageError::format(
            &plan.config.member,
            format!(
                "{} diff IDs for {} layers",
                diff_ids.len(),
                plan.layers.len()
            ),
        ));
    }
    let chains = chain_ids(&diff_ids);
    let record_path = Store::record_path(root, &id);
    if let Some(record) = already_imported(root, &record_path) {
        let reused = record.layers.len();
        return Ok(Imported {
            record,
            tag,
            unpacked: 0,
            reused,
        });
    }
    progress.layers.store(plan.layers.len(), Ordering::Relaxed);
    let total: u64 = plan
        .layers
        .iter()
        .map(|b| b.size.unwrap_or_else(|| member_size(&source, &b.member)))
        .sum();
    progress.total.store(total, Ordering::Relaxed);
    let (mut unpacked, mut reused) = (0, 0);
    let mut layers = Vec::with_capacity(plan.layers.len());
    for (index, blob) in plan.layers.iter().enumerate() {
        progress
            .layer
            .store(index.saturating_add(1), Ordering::Relaxed);
        let (chain_id, diff_id) = (&chains[index], &diff_ids[index]);
        let dir = Store::layer_dir(root, chain_id);
        if dir.is_dir() {
            reused += 1;
            let size = blob
                .size
                .unwrap_or_else(|| member_size(&source, &blob.member));
            progress.done.fetch_add(size, Ordering::Relaxed);
        } else {
            let lowers: Vec<PathBuf> = chains[..index]
                .iter()
                .rev()
                .map(|c| Store::layer_dir(root, c))
                .collect();
            unpack_layer(&source, blob, diff_id, &dir, &lowers, progress, cancel)?;
            unpacked += 1;
        }
        layers.push(LayerRecord {
            chain_id: chain_id.clone(),
            diff_id: diff_id.clone(),
            size: disk_usage(&dir),
        });
    }
    let record = ImageRecord {
        id: id.clone(),
        manifest: plan.manifest,
        created: config.created().clone(),
        imported: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        platform,
        layers,
        config: ImageConfig {
            healthcheck: healthcheck(&config_bytes),
            ..image_config(&config)
        },
    };
    let write = |path: &Path, bytes: &[u8]| {
        files::write_atomically(path, bytes).map_err(|e| ImageError::Refused(e.to_string()))
    };
    write(&record_path.with_extension("config"), &config_bytes)?;
    let json = serde_json::to_vec_pretty(&record).map_err(|e| ImageError::format("record", e))?;
    write(&record_path, &json)?;
    Ok(Imported {
        record,
        tag,
        unpacked,
        reused,
    })
}

/// The record of an image whose config and every layer are here already:
/// importing it again changes nothing.
fn already_imported(root: &Path, record_path: &Path) -> Option<ImageRecord> {
    let bytes =
        files::read_regular(record_path, files::Links::Refuse, files::MAX_FILE_BYTES).ok()?;
    let record: ImageRecord = serde_json::from_slice(&bytes).ok()?;
    record
        .layers
        .iter()
        .all(|l| Store::layer_dir(root, &l.chain_id).is_dir())
        .then_some(record)
}

fn member_size(source: &Source, member: &str) -> u64 {
    source.open_member(member).map_or(0, |(_, size)| size)
}

/// Docker's `config.Healthcheck`, read from the config blob itself: the
/// OCI types have no field for it.
fn healthcheck(config_bytes: &[u8]) -> Option<super::store::ImageHealthcheck> {
    let config: serde_json::Value = serde_json::from_slice(config_bytes).ok()?;
    let check = config.get("config")?.get("Healthcheck")?;
    let test: Vec<String> = check
        .get("Test")?
        .as_array()?
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    let nanos = |key: &str| {
        check
            .get(key)
            .and_then(serde_json::Value::as_u64)
            .filter(|n| *n > 0)
    };
    Some(super::store::ImageHealthcheck {
        test,
        interval: nanos("Interval"),
        timeout: nanos("Timeout"),
        start_period: nanos("StartPeriod"),
        retries: check
            .get("Retries")
            .and_then(serde_json::Value::as_u64)
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| *r > 0),
    })
}

fn image_config(config: &ImageConfiguration) -> ImageConfig {
    let Some(c) = config.config() else {
        return ImageConfig::default();
    };
    ImageConfig {
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
        user: c.user().clone().filter(|u| !u.is_empty()),
        stop_signal: c.stop_signal().clone().filter(|s| !s.is_empty()),
        labels: c.labels().clone().unwrap_or_default().into_iter().collect(),
        healthcheck: None,
    }
}

fn unpack_layer(
    source: &Source,
    blob: &Blob,
    diff_id: &str,
    dir: &Path,
    lowers: &[PathBuf],
    progress: &Arc<Progress>,
    cancel: &AtomicBool,
) -> Result<(), ImageError> {
    static PARTIALS: AtomicUsize = AtomicUsize::new(0);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dir.with_file_name(format!(
        "{PARTIAL_PREFIX}{name}-{}-{}",
        std::process::id(),
        PARTIALS.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&staging).map_err(ImageError::io("create", &staging))?;
    let result = fill_layer(source, blob, diff_id, &staging, lowers, progress, cancel)
        .and_then(|()| commit_layer(&staging, dir));
    if result.is_err() {
        if let Err(e) = fs::remove_dir_all(&staging) {
            log::warn!("{}: cannot remove: {e}", staging.display());
        }
    }
    result
}

fn fill_layer(
    source: &Source,
    blob: &Blob,
    diff_id: &str,
    staging: &Path,
    lowers: &[PathBuf],
    progress: &Arc<Progress>,
    cancel: &AtomicBool,
) -> Result<(), ImageError> {
    let read_error = |e: std::io::Error| ImageError::Entry {
        layer: blob.member.clone(),
        entry: "(stream)".into(),
        message: e.to_string(),
    };
    let (reader, size) = source.open_member(&blob.member)?;
    if let Some(expected) = blob.size.filter(|&s| s != size) {
        return Err(ImageError::Size {
            file: blob.member.clone(),
            expected,
            actual: size,
        });
    }
    let mut raw = Hashing::new(reader);
    let counted = Counted {
        inner: &mut raw,
        progress,
    };
    let mut buffered = BufReader::with_capacity(1 << 16, counted);
    let magic = buffered.fill_buf().map_err(read_error)?.to_vec();
    let decompressed: Box<dyn Read + '_> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(read_error)?)
    } else {
        Box::new(buffered)
    };
    let mut diff = Hashing::new(decompressed);
    let outcome = unpack(&mut diff, staging, lowers, cancel).map_err(|e| ImageError::Entry {
        layer: blob.member.clone(),
        entry: e.entry,
        message: e.message,
    })?;
    if let Unpacked::Cancelled = outcome {
        return Err(ImageError::Cancelled);
    }
    let (actual_diff, _) = diff.finish().map_err(read_error)?;
    let (actual, bytes) = raw.finish().map_err(read_error)?;
    if let Some(expected) = &blob.digest {
        if actual != *expected {
            return Err(ImageError::Digest {
                file: blob.member.clone(),
                expected: expected.clone(),
                actual,
            });
        }
    }
    if bytes != size {
        return Err(ImageError::Size {
            file: blob.member.clone(),
            expected: size,
            actual: bytes,
        });
    }
    if actual_diff != diff_id {
        return Err(ImageError::Digest {
            file: format!("{} (uncompressed, its diff ID)", blob.member),
            expected: diff_id.to_string(),
            actual: actual_diff,
        });
    }
    Ok(())
}

/// Makes the layer durable, then visible under its chain ID. A layer that
/// another import put there meanwhile is the same content: ours goes.
fn commit_layer(staging: &Path, dir: &Path) -> Result<(), ImageError> {
    let handle = fs::File::open(staging).map_err(ImageError::io("open", staging))?;
    // SAFETY: syncfs on a descriptor we own; it writes back the whole
    // filesystem, once per layer rather than one fsync per file.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&handle)) } < 0 {
        return Err(ImageError::io("syncfs", staging)(
            std::io::Error::last_os_error(),
        ));
    }
    match fs::rename(staging, dir) {
        // The rename itself must be on disk before the record naming the
        // layer is.
        Ok(()) => match dir.parent() {
            Some(layers) => fs::File::open(layers)
                .and_then(|d| d.sync_all())
                .map_err(ImageError::io("fsync", layers)),
            None => Ok(()),
        },
        Err(_) if dir.is_dir() => {
            fs::remove_dir_all(staging).map_err(ImageError::io("remove", staging))
        }
        Err(e) => Err(ImageError::io("rename", staging)(e)),
    }
}

/// Counts bytes into the shared progress as they are read.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.done.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
