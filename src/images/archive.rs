//! Where an image's files come from: an OCI layout directory, or a tar
//! (oci-archive, docker-archive) read in place through an index of its
//! members, so that nothing is extracted twice and a 1 GB archive costs
//! no more memory than a 1 MB one.

use super::ImageError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The most a JSON file of an image (index, manifest, config) may hold.
pub const MAX_JSON_BYTES: u64 = 16 << 20;

/// How many symbolic links a member name may go through (docker-archive
/// links repeated layers to their first copy).
const MAX_LINKS: usize = 8;

pub enum Source {
    Directory(PathBuf),
    Tar {
        file: File,
        path: PathBuf,
        members: HashMap<String, Member>,
    },
}

#[derive(Clone, Debug)]
pub enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

impl Source {
    /// A directory is an OCI layout; anything else must be a tar.
    pub fn open(path: &Path) -> Result<Source, ImageError> {
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(path)
            .map_err(ImageError::io("open", path))?;
        let meta = file.metadata().map_err(ImageError::io("stat", path))?;
        if meta.is_dir() {
            return Ok(Source::Directory(path.to_path_buf()));
        }
        if !meta.is_file() {
            return Err(ImageError::Refused(format!(
                "{}: not a directory (OCI layout) or a regular file (an image archive)",
                path.display()
            )));
        }
        let members = index_tar(&file, path)?;
        Ok(Source::Tar {
            file,
            path: path.to_path_buf(),
            members,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        match self {
            Source::Directory(dir) => {
                normal(name).is_some_and(|n| dir.join(n).symlink_metadata().is_ok())
            }
            Source::Tar { members, .. } => normal(name).is_some_and(|n| members.contains_key(&n)),
        }
    }

    /// A reader over one file of the image and its size.
    pub fn open_member(&self, name: &str) -> Result<(Box<dyn Read + Send + '_>, u64), ImageError> {
        let missing = || {
            ImageError::format(
                name,
                format!("not in {}: the image is incomplete", self.path().display()),
            )
        };
        let relative = normal(name).ok_or_else(|| {
            ImageError::format(name, "a file name that leaves the image (absolute or ..)")
        })?;
        match self {
            Source::Directory(dir) => {
                let path = dir.join(&relative);
                let file = File::options()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
                    .open(&path)
                    .map_err(|e| match e.kind() {
                        io::ErrorKind::NotFound => missing(),
                        _ => ImageError::io("open", &path)(e),
                    })?;
                let meta = file.metadata().map_err(ImageError::io("stat", &path))?;
                if !meta.is_file() {
                    return Err(ImageError::format(name, "not a regular file"));
                }
                Ok((Box::new(file), meta.len()))
            }
            Source::Tar { file, members, .. } => {
                let mut key = relative;
                for _ in 0..MAX_LINKS {
                    match members.get(&key).ok_or_else(missing)? {
                        Member::File { offset, size } => {
                            let reader = Section {
                                file,
                                offset: *offset,
                                remaining: *size,
                            };
                            return Ok((Box::new(reader), *size));
                        }
                        Member::Link(target) => key = target.clone(),
                    }
                }
                Err(ImageError::format(name, "too many links"))
            }
        }
    }

    /// A small file of the image, whole.
    pub fn read_json(&self, name: &str) -> Result<Vec<u8>, ImageError> {
        let (reader, size) = self.open_member(name)?;
        if size > MAX_JSON_BYTES {
            return Err(ImageError::format(
                name,
                format!("{size} bytes: larger than the {MAX_JSON_BYTES} a metadata file may hold"),
            ));
        }
        let mut bytes = Vec::new();
        reader
            .take(MAX_JSON_BYTES)
            .read_to_end(&mut bytes)
            .map_err(ImageError::io("read", self.path().join(name)))?;
        Ok(bytes)
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Directory(path) | Source::Tar { path, .. } => path,
        }
    }
}

/// A member's name relative to the image root, or None if it leaves it.
fn normal(name: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Where each member's data lies in the tar, read once through its headers
/// (seeking over the data).
fn index_tar(file: &File, path: &Path) -> Result<HashMap<String, Member>, ImageError> {
    let broken = |e: io::Error| {
        ImageError::Refused(format!(
            "{}: not a readable tar archive (truncated or not an image): {e}",
            path.display()
        ))
    };
    let length = file.metadata().map_err(ImageError::io("stat", path))?.len();
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek().map_err(broken)? {
        let entry = entry.map_err(broken)?;
        let Some(name) = entry.path().ok().and_then(|p| normal(&p.to_string_lossy())) else {
            continue;
        };
        let member = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let offset = entry.raw_file_position();
                let size = entry.size();
                if offset.saturating_add(size) > length {
                    return Err(broken(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{name} ends past the end of the file"),
                    )));
                }
                Member::File { offset, size }
            }
            tar::EntryType::Symlink => {
                let Some(target) = entry.link_name().ok().flatten() else {
                    continue;
                };
                let base = Path::new(&name).parent().unwrap_or(Path::new(""));
                match resolve_relative(base, &target) {
                    Some(target) => Member::Link(target),
                    None => continue,
                }
            }
            tar::EntryType::Link => {
                let Some(target) = entry
                    .link_name()
                    .ok()
                    .flatten()
                    .and_then(|t| normal(&t.to_string_lossy()))
                else {
                    continue;
                };
                Member::Link(target)
            }
            _ => continue,
        };
        members.insert(name, member);
    }
    Ok(members)
}

/// A symlink target inside the archive, relative to its root.
fn resolve_relative(base: &Path, target: &Path) -> Option<String> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<String> = base
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => p.to_str().map(str::to_string),
            _ => None,
        })
        .collect();
    for component in target.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?.to_string()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// One member's bytes, read with pread so that several readers (and the
/// index) can share the file.
struct Section<'a> {
    file: &'a File,
    offset: u64,
    remaining: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside this file (truncated)",
            ));
        }
        self.offset = self.offset.saturating_add(n as u64);
        self.remaining = self.remaining.saturating_sub(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_names_stay_inside() {
        assert_eq!(
            normal("./blobs/sha256/ab").as_deref(),
            Some("blobs/sha256/ab")
        );
        assert_eq!(normal("../x"), None);
        assert_eq!(normal("/etc/passwd"), None);
        assert_eq!(
            resolve_relative(Path::new("abc"), Path::new("../def/layer.tar")).as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(resolve_relative(Path::new(""), Path::new("../../x")), None);
    }
}
