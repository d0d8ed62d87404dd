//! The floor every other module stands on: reading files that someone else
//! controls without letting them wedge or exhaust supd, writing files so that
//! a crash never leaves a torn one, and the persisted lease tables.

mod lease;

pub use lease::{LeaseTable, Loaded};

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most any configuration or state file may hold. A unit file is a few
/// kilobytes; this bounds what a link to /dev/zero or a huge file can cost.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: cannot open: {}", .path.display(), open_reason(.source))]
    Open { path: PathBuf, source: io::Error },
    #[error("{}: not a regular file but a {kind}", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: larger than the limit of {limit} bytes", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{}: cannot read: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not UTF-8 text", .path.display())]
    NotText { path: PathBuf },
    #[error("{what} {}: {source}", .path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

impl FileError {
    /// The file does not exist (callers often treat that as "empty").
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileError::Open { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

fn open_reason(error: &io::Error) -> String {
    match error.raw_os_error() {
        Some(libc::ELOOP) => "a symbolic link that is not followed here, or a loop of links".into(),
        _ => error.to_string(),
    }
}

/// Whether the last component of a path may be a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Unit files and drop-ins: a link to a regular file is allowed, as
    /// systemd allows it.
    Follow,
    /// Files only supd writes: a link there was put by someone else.
    Refuse,
}

/// Reads a regular file of at most `limit` bytes. The open never blocks (a
/// FIFO is refused, not waited on), and devices, sockets and directories
/// are refused before a byte is read.
pub fn read_regular(path: &Path, links: Links, limit: u64) -> Result<Vec<u8>, FileError> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = File::options()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|source| FileError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let read_error = |source| FileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file_type = file.metadata().map_err(read_error)?.file_type();
    if !file_type.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&file_type),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

/// `read_regular` for text files.
pub fn read_text(path: &Path, links: Links, limit: u64) -> Result<String, FileError> {
    String::from_utf8(read_regular(path, links, limit)?).map_err(|_| FileError::NotText {
        path: path.to_path_buf(),
    })
}

fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}

/// What a file written atomically must survive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// A power cut: the content and the rename are fsynced.
    PowerCut,
    /// The writer's own crash only: the page cache keeps the file, so no
    /// fsync (for runtime files that a reboot makes meaningless anyway).
    ProcessCrash,
}

/// Writes a file so that readers see the old or the new content, never a
/// torn one, and so that the new content survives a power cut: write a temp
/// file, fsync it, rename it over the old one, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    write_atomically_for(path, bytes, Durability::PowerCut)
}

/// `write_atomically`, fsyncing only if `durability` needs it.
pub fn write_atomically_for(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<(), FileError> {
    let fail = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| FileError::Write { what, path, source }
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(fail("create", &tmp))?;
    file.write_all(bytes).map_err(fail("write", &tmp))?;
    if durability == Durability::ProcessCrash {
        return std::fs::rename(&tmp, path).map_err(fail("rename onto", path));
    }
    file.sync_all().map_err(fail("fsync", &tmp))?;
    std::fs::rename(&tmp, path).map_err(fail("rename onto", path))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("supd-files-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn special_files_are_refused_without_blocking_or_reading() {
        let dir = temp_dir("special");
        let fifo = dir.join("fifo.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let error = read_regular(&fifo, Links::Follow, 10).unwrap_err();
        assert!(error.to_string().ends_with("not a regular file but a FIFO"));
        let zero = dir.join("zero.yaml");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let error = read_regular(&zero, Links::Follow, 10).unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");
        let error = read_regular(&dir, Links::Follow, 10).unwrap_err();
        assert!(error.to_string().contains("directory"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn size_links_and_loops() {
        let dir = temp_dir("size");
        let file = dir.join("a");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(read_regular(&file, Links::Refuse, 10).unwrap().len(), 10);
        let error = read_regular(&file, Links::Refuse, 9).unwrap_err();
        assert!(error
            .to_string()
            .contains("larger than the limit of 9 bytes"));
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(read_regular(&link, Links::Follow, 10).is_ok());
        let error = read_regular(&link, Links::Refuse, 10).unwrap_err();
        assert!(error.to_string().contains("not followed"), "{error}");
        std::os::unix::fs::symlink(dir.join("loop2"), dir.join("loop1")).unwrap();
        std::os::unix::fs::symlink(dir.join("loop1"), dir.join("loop2")).unwrap();
        let error = read_regular(&dir.join("loop1"), Links::Follow, 10).unwrap_err();
        assert!(error.to_string().contains("loop of links"), "{error}");
        assert!(read_regular(&dir.join("missing"), Links::Follow, 10)
            .unwrap_err()
            .is_not_found());
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).unwrap();
        assert!(read_text(&dir.join("bin"), Links::Refuse, 10).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_writes_replace_and_leave_no_temp_file() {
        let dir = temp_dir("atomic");
        let file = dir.join("state.json");
        write_atomically(&file, b"one").unwrap();
        write_atomically(&file, b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
