//! Following the unit directories with inotify. Only directories are
//! watched (a file watch would follow the old inode after an editor's
//! rename); each unit directory, each `NAME.yaml.d` inside it, and for a
//! directory that does not exist yet its nearest existing ancestor, so that
//! creating it later is noticed. Any relevant event only schedules a
//! reconcile, which reads the directories whole.

use crate::unit::loader::{dropin_dir_unit, is_dropin_name, unit_name};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    UnitDir,
    DropinDir,
    /// An existing ancestor of a missing unit directory.
    Ancestor,
}

pub struct UnitWatcher {
    inotify: Inotify,
    dirs: Vec<PathBuf>,
    watches: HashMap<PathBuf, (WatchDescriptor, Role)>,
    paths: HashMap<WatchDescriptor, PathBuf>,
}

const CONTENT: WatchMask = WatchMask::CREATE
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

const ANCESTOR: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);

impl UnitWatcher {
    pub fn new(dirs: &[PathBuf]) -> io::Result<Self> {
        let mut watcher = UnitWatcher {
            inotify: Inotify::init()?,
            dirs: dirs.to_vec(),
            watches: HashMap::new(),
            paths: HashMap::new(),
        };
        // The first reconcile reads everything anyway.
        watcher.sync();
        Ok(watcher)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Drains pending events. Returns true if any could change a unit.
    pub fn read(&mut self) -> bool {
        let mut buffer = [0u8; 8192];
        let mut relevant = false;
        let mut gone = Vec::new();
        loop {
            let events = match self.inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!("reading inotify events: {e}");
                    relevant = true;
                    break;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::IGNORED) {
                    gone.push(event.wd.clone());
                }
                relevant |= self.is_relevant(&event.wd, event.mask, event.name);
            }
            if !any {
                break;
            }
        }
        for wd in gone {
            if let Some(path) = self.paths.remove(&wd) {
                self.watches.remove(&path);
            }
        }
        // New watches may have missed events in the gap before they existed:
        // a changed watch set is itself a reason to reconcile.
        self.sync() || relevant
    }

    fn is_relevant(&self, wd: &WatchDescriptor, mask: EventMask, name: Option<&OsStr>) -> bool {
        if mask.intersects(
            EventMask::Q_OVERFLOW
                | EventMask::DELETE_SELF
                | EventMask::MOVE_SELF
                | EventMask::IGNORED,
        ) {
            return true;
        }
        let Some(dir) = self.paths.get(wd) else {
            return false;
        };
        let Some((_, role)) = self.watches.get(dir) else {
            return false;
        };
        let Some(name) = name else { return false };
        // A directory on the way to a unit directory appeared or went.
        if self.dirs.iter().any(|d| d.starts_with(dir.join(name))) {
            return true;
        }
        let Some(name) = name.to_str() else {
            return false;
        };
        // Kubernetes-style volumes swap a `..data` symlink atomically.
        if name == "..data" {
            return true;
        }
        match role {
            Role::UnitDir => unit_name(name).is_some() || dropin_dir_unit(name).is_some(),
            Role::DropinDir => is_dropin_name(name),
            Role::Ancestor => false,
        }
    }

    /// Adds and removes watches until they match the directories as they are
    /// now; a directory created while a watch was being added is caught by
    /// the next round. Returns whether anything changed.
    fn sync(&mut self) -> bool {
        let mut changed = false;
        for _ in 0..8 {
            if !self.sync_once() {
                break;
            }
            changed = true;
        }
        changed
    }

    fn sync_once(&mut self) -> bool {
        let wanted = self.wanted();
        let mut changed = false;
        let stale: Vec<PathBuf> = self
            .watches
            .iter()
            .filter(|(path, (_, role))| wanted.get(*path) != Some(role))
            .map(|(path, _)| path.clone())
            .collect();
        for path in stale {
            if let Some((wd, _)) = self.watches.remove(&path) {
                self.paths.remove(&wd);
                let _ = self.inotify.watches().remove(wd);
                changed = true;
            }
        }
        for (path, role) in wanted {
            if self.watches.contains_key(&path) {
                continue;
            }
            let mask = if role == Role::Ancestor {
                ANCESTOR
            } else {
                CONTENT
            };
            match self.inotify.watches().add(&path, mask) {
                Ok(wd) => {
                    // inotify returns the same descriptor for the same inode.
                    if let Some(old) = self.paths.insert(wd.clone(), path.clone()) {
                        self.watches.remove(&old);
                    }
                    self.watches.insert(path, (wd, role));
                    changed = true;
                }
                // It vanished between looking and watching: the next event
                // on its parent brings it back.
                Err(e) => log::debug!("cannot watch {}: {e}", path.display()),
            }
        }
        changed
    }

    fn wanted(&self) -> BTreeMap<PathBuf, Role> {
        let mut wanted: BTreeMap<PathBuf, Role> = BTreeMap::new();
        for dir in &self.dirs {
            if dir.is_dir() {
                wanted.insert(dir.clone(), Role::UnitDir);
                for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                    let name = entry.file_name();
                    let is_dropin_dir = name.to_str().and_then(dropin_dir_unit).is_some();
                    if is_dropin_dir && entry.path().is_dir() {
                        wanted.insert(entry.path(), Role::DropinDir);
                    }
                }
                continue;
            }
            if let Some(ancestor) = nearest_existing_ancestor(dir) {
                wanted.entry(ancestor).or_insert(Role::Ancestor);
            }
        }
        wanted
    }
}

fn nearest_existing_ancestor(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .skip(1)
        .find(|a| a.is_dir())
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_unit_file_is_relevant() {
        let dir = std::env::temp_dir().join(format!("supd-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut watcher = UnitWatcher::new(std::slice::from_ref(&dir)).unwrap();
        assert!(!watcher.read());
        let nested = dir.join("a/b/units");
        let mut late = UnitWatcher::new(std::slice::from_ref(&nested)).unwrap();
        std::fs::create_dir_all(&nested).unwrap();
        assert!(late.read(), "the directories appearing are noticed");
        std::fs::write(nested.join("y.yaml"), "exec: [/x]\n").unwrap();
        assert!(late.read(), "and the new units directory is watched");
        std::fs::remove_dir_all(dir.join("a")).unwrap();
        assert!(late.read(), "and its removal is noticed");
        std::fs::write(dir.join("x.yaml"), "exec: [/x]\n").unwrap();
        assert!(watcher.read());
        std::fs::write(dir.join("x.yaml~"), "").unwrap();
        assert!(!watcher.read());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
