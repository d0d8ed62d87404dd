//! Unpacking one layer tar into its own directory, in the form overlayfs
//! reads as a lowerdir: `.wh.NAME` becomes a 0/0 character device (a
//! whiteout), `.wh..wh..opq` the `trusted.overlay.opaque` xattr on its
//! directory. Ownership, modes, xattrs, times, hard links, symlinks and
//! device nodes are kept.
//!
//! The layer comes from elsewhere, so no entry may write outside its
//! directory: `..` is refused, a leading `/` is dropped (tar's own rule),
//! and no entry is written through a symbolic link that an earlier entry
//! made (`etc -> /etc` followed by `etc/passwd`).

use std::ffi::CString;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Why one entry could not be unpacked: its name and the reason.
#[derive(Debug)]
pub struct EntryError {
    pub entry: String,
    pub message: String,
}

impl EntryError {
    fn new(entry: &Path, message: impl std::fmt::Display) -> Self {
        EntryError {
            entry: entry.display().to_string(),
            message: message.to_string(),
        }
    }
}

pub enum Unpacked {
    Done,
    Cancelled,
}

/// Unpacks `stream` into `target` (an empty directory). `lowers` are the
/// layers below, top first, where a hard link may point.
pub fn unpack(
    stream: impl Read,
    target: &Path,
    lowers: &[PathBuf],
    cancel: &AtomicBool,
) -> Result<Unpacked, EntryError> {
    let mut archive = tar::Archive::new(stream);
    let mut directory_times: Vec<(PathBuf, i64)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| EntryError::new(Path::new("(tar)"), e))?;
    for entry in entries {
        if cancel.load(Ordering::Relaxed) {
            return Ok(Unpacked::Cancelled);
        }
        let mut entry = entry.map_err(|e| EntryError::new(Path::new("(tar)"), e))?;
        let raw = entry
            .path()
            .map_err(|e| EntryError::new(Path::new("(tar)"), e))?
            .into_owned();
        let relative = inside(&raw).map_err(|why| EntryError::new(&raw, why))?;
        let layer = Layer { target, lowers };
        if let Some(time) = layer
            .entry(&relative, &mut entry)
            .map_err(|why| EntryError::new(&raw, why))?
        {
            directory_times.push((target.join(&relative), time));
        }
    }
    // Last, and deepest first: creating an entry changes its directory's.
    for (path, time) in directory_times.iter().rev() {
        set_times(path, *time).map_err(|e| EntryError::new(path, e))?;
    }
    Ok(Unpacked::Done)
}

/// The entry's path inside the layer, or why it would leave it.
fn inside(raw: &Path) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                return Err("refused: the path contains \"..\" and would leave the layer".into())
            }
            Component::Prefix(_) => return Err("refused: not a Unix path".into()),
        }
    }
    Ok(out)
}

struct Layer<'a> {
    target: &'a Path,
    lowers: &'a [PathBuf],
}

/// The owner, mode, time and xattrs an entry asks for.
struct Attributes {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

impl Layer<'_> {
    /// Returns the time to give a directory once everything is in it.
    fn entry<R: Read>(
        &self,
        relative: &Path,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<Option<i64>, String> {
        let attributes = attributes(entry)?;
        let file_name = relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if relative.as_os_str().is_empty() {
            // The layer's root: its attributes only.
            apply(self.target, &attributes, true)?;
            return Ok(Some(attributes.mtime));
        }
        let parent = relative.parent().unwrap_or(Path::new(""));
        self.make_parents(parent)?;
        let path = self.target.join(relative);
        if file_name == OPAQUE_MARKER {
            set_xattr(&self.target.join(parent), "trusted.overlay.opaque", b"y")
                .map_err(|e| format!("cannot mark the directory opaque: {e}"))?;
            return Ok(None);
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.starts_with(".wh.") || hidden.is_empty() {
                // aufs' own bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content.
                return Ok(None);
            }
            let hidden = self.target.join(parent).join(hidden);
            remove_existing(&hidden)?;
            return mknod(&hidden, libc::S_IFCHR, 0)
                .map(|()| None)
                .map_err(|e| format!("cannot create the whiteout: {e}"));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    remove_existing(&path)?;
                    mkdir(&path)?;
                }
                Err(_) => mkdir(&path)?,
            }
            apply(&path, &attributes, true)?;
            return Ok(Some(attributes.mtime));
        }
        remove_existing(&path)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let mut file = fs::File::options()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&path)
                    .map_err(|e| format!("cannot create: {e}"))?;
                io::copy(entry, &mut file).map_err(|e| format!("cannot write: {e}"))?;
            }
            tar::EntryType::Symlink => {
                let target = link_name(entry)?;
                std::os::unix::fs::symlink(&target, &path)
                    .map_err(|e| format!("cannot create the symbolic link: {e}"))?;
            }
            tar::EntryType::Link => {
                let target =
                    inside(&link_name(entry)?).map_err(|why| format!("hard link target: {why}"))?;
                return self.hard_link(&target, &path).map(|()| None);
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                mknod(&path, file_type, libc::makedev(major, minor))
                    .map_err(|e| format!("cannot create the device node: {e}"))?;
            }
            other => return Err(format!("refused: an entry of tar type {other:?}")),
        }
        apply(&path, &attributes, kind != tar::EntryType::Symlink)?;
        set_times(&path, attributes.mtime).map_err(|e| format!("cannot set its time: {e}"))?;
        Ok(None)
    }

    /// Creates missing directories above an entry (tars may leave them
    /// out) and refuses to go through a symbolic link or a file.
    fn make_parents(&self, parent: &Path) -> Result<(), String> {
        let mut path = self.target.to_path_buf();
        for component in parent.components() {
            path.push(component);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(format!(
                        "refused: it would be written through the symbolic link {}",
                        self.shown(&path)
                    ))
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(format!(
                        "its parent {} is not a directory",
                        self.shown(&path)
                    ))
                }
                Err(_) => mkdir(&path)?,
            }
        }
        Ok(())
    }

    /// Whether every directory above `relative` in `root` is a real one.
    fn plain_parents(root: &Path, relative: &Path) -> bool {
        let mut path = root.to_path_buf();
        let Some(parent) = relative.parent() else {
            return true;
        };
        parent.components().all(|component| {
            path.push(component);
            fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir())
        })
    }

    /// A hard link to a file of this layer, or a copy of one in a layer
    /// below (overlay layers are separate directories).
    fn hard_link(&self, target: &Path, path: &Path) -> Result<(), String> {
        if Self::plain_parents(self.target, target) {
            let existing = self.target.join(target);
            if fs::symlink_metadata(&existing).is_ok() {
                return fs::hard_link(&existing, path)
                    .map_err(|e| format!("cannot create the hard link: {e}"));
            }
        }
        for lower in self.lowers {
            if !Self::plain_parents(lower, target) {
                continue;
            }
            let existing = lower.join(target);
            let Ok(meta) = fs::symlink_metadata(&existing) else {
                continue;
            };
            if !meta.is_file() {
                return Err(format!(
                    "refused: a hard link to {} in a lower layer, which is not a regular file",
                    target.display()
                ));
            }
            fs::copy(&existing, path)
                .map_err(|e| format!("cannot copy {}: {e}", target.display()))?;
            let attributes = Attributes {
                uid: meta.uid(),
                gid: meta.gid(),
                mode: meta.mode() & 0o7777,
                mtime: meta.mtime(),
                xattrs: Vec::new(),
            };
            apply(path, &attributes, true)?;
            return set_times(path, attributes.mtime).map_err(|e| e.to_string());
        }
        Err(format!(
            "a hard link to {}, which is in neither this layer nor one below",
            target.display()
        ))
    }

    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(self.target)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

fn attributes<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Attributes, String> {
    let header = entry.header();
    let mut attributes = Attributes {
        uid: header
            .uid()
            .ok()
            .and_then(|id| u32::try_from(id).ok())
            .unwrap_or(0),
        gid: header
            .gid()
            .ok()
            .and_then(|id| u32::try_from(id).ok())
            .unwrap_or(0),
        mode: header.mode().unwrap_or(0o644) & 0o7777,
        mtime: header
            .mtime()
            .ok()
            .and_then(|t| i64::try_from(t).ok())
            .unwrap_or(0),
        xattrs: Vec::new(),
    };
    let Some(extensions) = entry.pax_extensions().map_err(|e| e.to_string())? else {
        return Ok(attributes);
    };
    for extension in extensions {
        let extension = extension.map_err(|e| format!("a bad PAX header: {e}"))?;
        let Ok(key) = extension.key() else { continue };
        let number = || {
            extension
                .value()
                .ok()?
                .split('.')
                .next()?
                .parse::<u64>()
                .ok()
        };
        match key {
            "uid" => attributes.uid = number().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            "gid" => attributes.gid = number().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            "mtime" => attributes.mtime = number().and_then(|n| i64::try_from(n).ok()).unwrap_or(0),
            _ => {
                let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                    continue;
                };
                // Only supd writes overlay's own attributes: a layer that
                // carried them could redirect lookups to other layers.
                if name.starts_with("trusted.overlay.") {
                    continue;
                }
                let name = CString::new(name).map_err(|_| "an xattr name with NUL".to_string())?;
                attributes
                    .xattrs
                    .push((name, extension.value_bytes().to_vec()));
            }
        }
    }
    Ok(attributes)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>) -> Result<PathBuf, String> {
    entry
        .link_name()
        .map_err(|e| e.to_string())?
        .map(|p| p.into_owned())
        .ok_or_else(|| "a link without a target".to_string())
}

fn mkdir(path: &Path) -> Result<(), String> {
    fs::create_dir(path).map_err(|e| format!("cannot create directory {}: {e}", path.display()))
}

/// Removes what an earlier entry (or whiteout) of this layer put at the
/// path: in a tar, a later entry replaces an earlier one.
fn remove_existing(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return Ok(()),
    }
    .map_err(|e| format!("cannot replace the earlier entry: {e}"))
}

/// Owner first: chown clears the set-id bits that chmod then sets.
fn apply(path: &Path, attributes: &Attributes, chmod: bool) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(attributes.uid), Some(attributes.gid))
        .map_err(|e| format!("cannot set the owner: {e}"))?;
    if chmod {
        fs::set_permissions(path, fs::Permissions::from_mode(attributes.mode))
            .map_err(|e| format!("cannot set the mode: {e}"))?;
    }
    for (name, value) in &attributes.xattrs {
        set_xattr_c(path, name, value)
            .map_err(|e| format!("cannot set xattr {}: {e}", name.to_string_lossy()))?;
    }
    Ok(())
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::ErrorKind::InvalidInput.into())
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    set_xattr_c(path, &name, value)
}

fn set_xattr_c(path: &Path, name: &CString, value: &[u8]) -> io::Result<()> {
    let path = c_path(path)?;
    // SAFETY: both strings are NUL-terminated and live across the call;
    // the value pointer and length describe one slice.
    let ret = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn mknod(path: &Path, file_type: libc::mode_t, device: libc::dev_t) -> io::Result<()> {
    let path = c_path(path)?;
    // SAFETY: a NUL-terminated path that lives across the call.
    if unsafe { libc::mknod(path.as_ptr(), file_type, device) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The modification (and access) time, without following a symlink.
fn set_times(path: &Path, mtime: i64) -> io::Result<()> {
    let path = c_path(path)?;
    // time_t is 32 bits on some 32-bit targets: clamp rather than wrap.
    #[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
    let seconds = libc::time_t::try_from(mtime).unwrap_or(if mtime < 0 {
        libc::time_t::MIN
    } else {
        libc::time_t::MAX
    });
    let time = libc::timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: a NUL-terminated path and an array of two timespecs, both
    // alive across the call.
    let ret = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn paths_stay_in_the_layer() {
        assert_eq!(
            inside(Path::new("/etc/passwd")).unwrap(),
            Path::new("etc/passwd")
        );
        assert_eq!(inside(Path::new("./a/./b")).unwrap(), Path::new("a/b"));
        assert!(inside(Path::new("a/../../etc")).is_err());
        assert_eq!(inside(Path::new("./")).unwrap(), Path::new(""));
    }

    /// A layer tar written entry by entry, as image builders write them.
    struct LayerTar(tar::Builder<Vec<u8>>);

    impl LayerTar {
        fn new() -> Self {
            LayerTar(tar::Builder::new(Vec::new()))
        }

        fn entry(&mut self, kind: tar::EntryType, path: &str, mode: u32, data: &[u8]) -> &mut Self {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(kind);
            // Raw bytes: the tar crate refuses to write `..` itself.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_mode(mode);
            header.set_uid(1000);
            header.set_gid(1001);
            header.set_mtime(1_700_000_000);
            header.set_size(data.len() as u64);
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }

        fn link(&mut self, kind: tar::EntryType, path: &str, target: &str) -> &mut Self {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(kind);
            header.set_path(path).unwrap();
            header.set_link_name(target).unwrap();
            header.set_mode(0o777);
            header.set_size(0);
            header.set_cksum();
            self.0.append(&header, &[][..]).unwrap();
            self
        }

        fn xattr(&mut self, name: &str, value: &str) -> &mut Self {
            let body = format!("SCHILY.xattr.{name}={value}\n");
            // The record's length counts its own digits.
            let mut length = body.len() + 3;
            while format!("{length} {body}").len() != length {
                length += 1;
            }
            let record = format!("{length} {body}");
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::XHeader);
            header.set_path("PaxHeaders/x").unwrap();
            header.set_size(record.len() as u64);
            header.set_cksum();
            self.0.append(&header, record.as_bytes()).unwrap();
            self
        }

        fn bytes(&mut self) -> Vec<u8> {
            self.0
                .get_ref()
                .clone()
                .into_iter()
                .chain([0u8; 1024])
                .collect()
        }
    }

    fn get_xattr(path: &Path, name: &std::ffi::CStr) -> Vec<u8> {
        let path = c_path(path).unwrap();
        let mut value = [0u8; 64];
        // SAFETY: NUL-terminated strings and a buffer of the given length.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        value[..usize::try_from(n).unwrap_or(0)].to_vec()
    }

    fn fresh_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("supd-unpack-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("layer")).unwrap();
        dir
    }

    fn run(dir: &Path, tar: &[u8], lowers: &[PathBuf]) -> Result<(), EntryError> {
        unpack(tar, &dir.join("layer"), lowers, &AtomicBool::new(false)).map(|_| ())
    }

    #[test]
    fn whiteouts_opaque_directories_and_metadata_take_overlay_form() {
        if !nix::unistd::geteuid().is_root() {
            panic!("unpacking keeps owners and makes device nodes: run the tests as root");
        }
        let dir = fresh_dir("forms");
        let lower = dir.join("lower");
        fs::create_dir_all(lower.join("usr")).unwrap();
        fs::write(lower.join("usr/tool"), "from below").unwrap();
        let tar = LayerTar::new()
            .entry(tar::EntryType::Directory, "etc/", 0o755, b"")
            .entry(tar::EntryType::Regular, "etc/.wh.gone", 0o644, b"")
            .entry(tar::EntryType::Directory, "data/", 0o750, b"")
            .entry(tar::EntryType::Regular, "data/.wh..wh..opq", 0o644, b"")
            .xattr("user.supd", "kept")
            .entry(tar::EntryType::Regular, "data/file", 0o4755, b"content")
            .link(tar::EntryType::Link, "data/again", "data/file")
            .link(tar::EntryType::Link, "data/tool", "usr/tool")
            .link(tar::EntryType::Symlink, "data/abs", "/etc/passwd")
            .entry(tar::EntryType::Char, "dev-null", 0o666, b"")
            .entry(tar::EntryType::Fifo, "pipe", 0o600, b"")
            .bytes();
        run(&dir, &tar, &[lower]).unwrap();
        let layer = dir.join("layer");
        let gone = fs::symlink_metadata(layer.join("etc/gone")).unwrap();
        assert!(
            gone.file_type().is_char_device() && gone.rdev() == 0,
            "a whiteout is a 0/0 char device"
        );
        assert!(!layer.join("data/.wh..wh..opq").exists());
        assert_eq!(
            get_xattr(&layer.join("data"), c"trusted.overlay.opaque"),
            b"y",
            "data/ is opaque"
        );
        let file = fs::symlink_metadata(layer.join("data/file")).unwrap();
        assert_eq!(
            (file.uid(), file.gid(), file.mode() & 0o7777),
            (1000, 1001, 0o4755)
        );
        assert_eq!(file.mtime(), 1_700_000_000);
        assert_eq!(file.nlink(), 2, "the hard link is one inode");
        assert_eq!(
            fs::read_to_string(layer.join("data/tool")).unwrap(),
            "from below"
        );
        assert_eq!(
            fs::read_link(layer.join("data/abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(fs::symlink_metadata(layer.join("dev-null"))
            .unwrap()
            .file_type()
            .is_char_device());
        assert!(fs::symlink_metadata(layer.join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(get_xattr(&layer.join("data/file"), c"user.supd"), b"kept");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_that_would_leave_the_layer_are_refused() {
        let dir = fresh_dir("escape");
        let outside = dir.join("outside");
        fs::create_dir_all(&outside).unwrap();
        let through_link = LayerTar::new()
            .link(tar::EntryType::Symlink, "etc", outside.to_str().unwrap())
            .entry(tar::EntryType::Regular, "etc/passwd", 0o644, b"owned")
            .bytes();
        let error = run(&dir, &through_link, &[]).unwrap_err();
        assert_eq!(error.entry, "etc/passwd");
        assert!(
            error.message.contains("symbolic link etc"),
            "{}",
            error.message
        );
        assert!(!outside.join("passwd").exists());

        let dotdot = LayerTar::new()
            .entry(tar::EntryType::Regular, "../escaped", 0o644, b"owned")
            .bytes();
        let error = run(&dir, &dotdot, &[]).unwrap_err();
        assert!(error.message.contains("\"..\""), "{}", error.message);
        assert!(!dir.join("escaped").exists());

        let hard = LayerTar::new()
            .link(tar::EntryType::Link, "shadow", "../outside/secret")
            .bytes();
        assert!(run(&dir, &hard, &[])
            .unwrap_err()
            .message
            .contains("hard link target"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
