//! Following the unit directories with inotify. Only directories are
//! watched (a file watch would follow the old inode after an editor's
//! rename); each unit directory, each `NAME.yaml.d` inside it, and for a
//! directory that does not exist yet its nearest existing ancestor, so that
//! creating it later is noticed. The directories of the files units read
//! besides themselves (env files, secrets) are watched the same way, for
//! those files' names. Any relevant event only schedules a reconcile,
//! which reads the directories whole.

use crate::unit::loader::{dropin_dir_unit, is_dropin_name};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Role {
    UnitDir,
    DropinDir,
    /// Holds an env file or secret (and no unit files).
    InputDir,
    /// An existing ancestor of a missing unit or input directory.
    Ancestor,
}

pub struct UnitWatcher {
    inotify: Inotify,
    dirs: Vec<PathBuf>,
    /// Files units read, by directory.
    inputs: BTreeMap<PathBuf, BTreeSet<OsString>>,
    watches: HashMap<PathBuf, (WatchDescriptor, Role)>,
    paths: HashMap<WatchDescriptor, PathBuf>,
    /// A watch could not be added (the directory changed under us) and the
    /// rounds ran out: the caller must call `resync` again soon, or a
    /// directory may be left with nothing watching it.
    incomplete: bool,
}

/// How long to wait before `resync` when the watch set is incomplete.
pub const RESYNC_DELAY: std::time::Duration = std::time::Duration::from_millis(50);

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
            inputs: BTreeMap::new(),
            watches: HashMap::new(),
            paths: HashMap::new(),
            incomplete: false,
        };
        // The first reconcile reads everything anyway.
        watcher.sync();
        Ok(watcher)
    }

    /// Follows these files (env files, secrets) from now on. Returns
    /// whether the watch set changed.
    pub fn watch_inputs(&mut self, files: impl IntoIterator<Item = PathBuf>) -> bool {
        let mut inputs: BTreeMap<PathBuf, BTreeSet<OsString>> = BTreeMap::new();
        for file in files {
            if let (Some(dir), Some(name)) = (file.parent(), file.file_name()) {
                inputs
                    .entry(dir.to_path_buf())
                    .or_default()
                    .insert(name.to_os_string());
            }
        }
        if inputs == self.inputs {
            return false;
        }
        self.inputs = inputs;
        self.sync()
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
        // A directory on the way to a unit or input directory appeared or
        // went.
        let on_the_way = |d: &PathBuf| d.starts_with(dir.join(name));
        if self.dirs.iter().any(on_the_way) || self.inputs.keys().any(on_the_way) {
            return true;
        }
        if self
            .inputs
            .get(dir)
            .is_some_and(|names| names.contains(name))
        {
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
            // A misnamed `*.yaml` too: the reconcile warns about it.
            Role::UnitDir => is_dropin_name(name) || dropin_dir_unit(name).is_some(),
            Role::DropinDir => is_dropin_name(name),
            Role::InputDir | Role::Ancestor => false,
        }
    }

    /// True while a directory may lack a watch; see `resync`.
    pub fn incomplete(&self) -> bool {
        self.incomplete
    }

    /// Called after `RESYNC_DELAY` while `incomplete`. Returns whether the
    /// watch set changed (a reason to reconcile).
    pub fn resync(&mut self) -> bool {
        self.sync()
    }

    /// Adds and removes watches until they match the directories as they are
    /// now; a directory created or removed while a watch was being added is
    /// caught by the next round. Returns whether anything changed.
    fn sync(&mut self) -> bool {
        let mut changed = false;
        for _ in 0..16 {
            if !self.sync_once() {
                break;
            }
            changed = true;
        }
        changed
    }

    /// New watches are added before stale ones go, and none go while an add
    /// failed: at every moment each directory, or an ancestor of it, is
    /// watched, so no event can be missed for good.
    fn sync_once(&mut self) -> bool {
        let wanted = self.wanted();
        let mut changed = false;
        let mut failed = false;
        for (path, role) in &wanted {
            if self.watches.get(path).is_some_and(|(_, r)| r == role) {
                continue;
            }
            let mask = if *role == Role::Ancestor {
                ANCESTOR
            } else {
                CONTENT
            };
            match self.inotify.watches().add(path, mask) {
                Ok(wd) => {
                    // inotify returns the same descriptor for the same inode.
                    if let Some(old) = self.paths.insert(wd.clone(), path.clone()) {
                        self.watches.remove(&old);
                    }
                    self.watches.insert(path.clone(), (wd, role.clone()));
                    changed = true;
                }
                // It changed between looking and watching: look again.
                Err(e) => {
                    log::debug!("cannot watch {}: {e}", path.display());
                    failed = true;
                    changed = true;
                }
            }
        }
        self.incomplete = failed;
        if failed {
            return changed;
        }
        let stale: Vec<PathBuf> = self
            .watches
            .keys()
            .filter(|path| !wanted.contains_key(*path))
            .cloned()
            .collect();
        for path in stale {
            if let Some((wd, _)) = self.watches.remove(&path) {
                self.paths.remove(&wd);
                // The descriptor may already be gone with its directory.
                let _ = self.inotify.watches().remove(wd);
                changed = true;
            }
        }
        changed
    }

    /// Whether every unit directory, or an ancestor of it, is watched.
    #[cfg(test)]
    fn covers_all(&self) -> bool {
        // A watched directory removed since then has its event queued.
        self.dirs
            .iter()
            .all(|dir| dir.ancestors().any(|a| self.watches.contains_key(a)))
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
        for dir in self.inputs.keys() {
            if dir.is_dir() {
                // A unit directory's mask covers its files already; an
                // ancestor's does not.
                if !matches!(wanted.get(dir), Some(Role::UnitDir | Role::DropinDir)) {
                    wanted.insert(dir.clone(), Role::InputDir);
                }
            } else if let Some(ancestor) = nearest_existing_ancestor(dir) {
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

    /// The race: a directory removed between looking at it and watching it
    /// once left nothing watched, and supd deaf for good.
    #[test]
    fn churn_never_leaves_a_directory_unwatched() {
        let dir = std::env::temp_dir().join(format!("supd-churn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let units = dir.join("later/units");
        let mut watcher = UnitWatcher::new(std::slice::from_ref(&units)).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (units, stop) = (units.clone(), stop.clone());
            let later = dir.join("later");
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::create_dir_all(&units);
                    let _ = std::fs::remove_dir_all(&later);
                }
            })
        };
        let mut incomplete = 0;
        for _ in 0..3000 {
            watcher.read();
            while watcher.incomplete() {
                incomplete += 1;
                watcher.resync();
            }
            assert!(watcher.covers_all(), "{:?}", watcher.watches.keys());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        std::fs::create_dir_all(&units).unwrap();
        watcher.read();
        std::fs::write(units.join("x.yaml"), "exec: [/x]\n").unwrap();
        assert!(
            watcher.read() || watcher.read(),
            "after {incomplete} retries"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
