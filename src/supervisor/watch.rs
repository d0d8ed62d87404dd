//! Following the unit directories with inotify. Only directories are
//! watched (a file watch would follow the old inode after an editor's
//! rename); each unit directory, each `NAME.yaml.d` inside it, and for a
//! directory that does not exist yet its nearest existing ancestor, so that
//! creating it later is noticed. The directories of the files units read
//! besides themselves (env files, secrets) are watched the same way, for
//! those files' names. An event on a unit file or a drop-in names the unit
//! whose files the reconcile reads again; anything else (a directory that
//! came or went, an env file, an overflow) has it read the directories
//! whole.

use crate::unit::loader::{dropin_dir_unit, is_dropin_name, unit_name};
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

/// What drained events may have changed, for the reconcile to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Read every directory again.
    pub everything: bool,
    /// Units whose file or drop-ins an event named.
    pub units: BTreeSet<String>,
    /// An event that more of the same change may follow (a file created
    /// but not yet written, one removed or renamed away, as editors do
    /// before writing it anew): worth a moment's wait before reading.
    pub settling: bool,
}

impl Changes {
    pub fn everything() -> Self {
        Changes::everything_if(true)
    }

    /// Everything when `changed` (a watch set that changed may have
    /// missed events), else nothing.
    pub fn everything_if(changed: bool) -> Self {
        Changes {
            everything: changed,
            ..Changes::default()
        }
    }

    pub fn any(&self) -> bool {
        self.everything || !self.units.is_empty()
    }

    pub fn merge(&mut self, other: Changes) {
        self.everything |= other.everything;
        self.settling |= other.settling;
        self.units.extend(other.units);
    }
}

/// What one event asks for.
enum Relevance {
    Everything,
    Unit(String),
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

    /// Drains pending events: what they may have changed.
    pub fn read(&mut self) -> Changes {
        let mut buffer = [0u8; 8192];
        let mut changes = Changes::default();
        let mut gone = Vec::new();
        loop {
            let events = match self.inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!("reading inotify events: {e}");
                    changes.everything = true;
                    break;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::IGNORED) {
                    gone.push(event.wd.clone());
                }
                match self.relevance(&event.wd, event.mask, event.name) {
                    None => continue,
                    Some(Relevance::Everything) => changes.everything = true,
                    Some(Relevance::Unit(name)) => {
                        changes.units.insert(name);
                    }
                }
                // A file written and closed, or renamed into place, is
                // whole; after anything else more may follow.
                if !event
                    .mask
                    .intersects(EventMask::CLOSE_WRITE | EventMask::MOVED_TO | EventMask::ATTRIB)
                {
                    changes.settling = true;
                }
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
        // a changed watch set is itself a reason to read everything.
        if self.sync() {
            changes.everything = true;
        }
        changes
    }

    fn relevance(
        &self,
        wd: &WatchDescriptor,
        mask: EventMask,
        name: Option<&OsStr>,
    ) -> Option<Relevance> {
        if mask.intersects(
            EventMask::Q_OVERFLOW
                | EventMask::DELETE_SELF
                | EventMask::MOVE_SELF
                | EventMask::IGNORED,
        ) {
            return Some(Relevance::Everything);
        }
        let dir = self.paths.get(wd)?;
        let (_, role) = self.watches.get(dir)?;
        let name = name?;
        // A directory on the way to a unit or input directory appeared or
        // went.
        let on_the_way = |d: &PathBuf| d.starts_with(dir.join(name));
        if self.dirs.iter().any(on_the_way) || self.inputs.keys().any(on_the_way) {
            return Some(Relevance::Everything);
        }
        if self
            .inputs
            .get(dir)
            .is_some_and(|names| names.contains(name))
        {
            return Some(Relevance::Everything);
        }
        let name = name.to_str()?;
        // Kubernetes-style volumes swap a `..data` symlink atomically.
        if name == "..data" {
            return Some(Relevance::Everything);
        }
        let unit = match role {
            Role::UnitDir if is_dropin_name(name) => match unit_name(name) {
                Some(unit) => unit,
                // Misnamed: the full read warns about it.
                None => return Some(Relevance::Everything),
            },
            Role::UnitDir => dropin_dir_unit(name)?,
            Role::DropinDir if is_dropin_name(name) => dropin_dir_unit(dir.file_name()?.to_str()?)?,
            Role::DropinDir | Role::InputDir | Role::Ancestor => return None,
        };
        Some(Relevance::Unit(unit.to_string()))
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
        assert!(!watcher.read().any());
        let nested = dir.join("a/b/units");
        let mut late = UnitWatcher::new(std::slice::from_ref(&nested)).unwrap();
        std::fs::create_dir_all(&nested).unwrap();
        assert!(
            late.read().everything,
            "the directories appearing are noticed"
        );
        std::fs::write(nested.join("y.yaml"), "exec: [/x]\n").unwrap();
        assert!(late.read().any(), "and the new units directory is watched");
        std::fs::remove_dir_all(dir.join("a")).unwrap();
        assert!(late.read().everything, "and its removal is noticed");
        std::fs::write(dir.join("x.yaml"), "exec: [/x]\n").unwrap();
        assert!(watcher.read().any());
        std::fs::write(dir.join("x.yaml~"), "").unwrap();
        assert!(!watcher.read().any());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Events name the unit whose files they touch, and whether the
    /// change is whole yet.
    #[test]
    fn events_name_their_unit() {
        let dir = std::env::temp_dir().join(format!("supd-names-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("web.yaml.d")).unwrap();
        let mut watcher = UnitWatcher::new(std::slice::from_ref(&dir)).unwrap();
        let names = |changes: &Changes| changes.units.iter().cloned().collect::<Vec<_>>();
        // Written in place: created (settling), then closed (whole).
        std::fs::write(dir.join("web.yaml"), "exec: [/x]\n").unwrap();
        let changes = watcher.read();
        assert_eq!(names(&changes), ["web"]);
        assert!(!changes.everything);
        assert!(changes.settling, "the creation comes first");
        std::fs::write(dir.join("web.yaml"), "exec: [/y]\n").unwrap();
        let changes = watcher.read();
        assert!(!changes.settling, "an edit in place is whole once closed");
        // Written to a hidden temp file, then renamed over: whole.
        std::fs::write(dir.join(".db.yaml.tmp"), "exec: [/x]\n").unwrap();
        assert!(!watcher.read().any());
        std::fs::rename(dir.join(".db.yaml.tmp"), dir.join("db.yaml")).unwrap();
        let changes = watcher.read();
        assert_eq!(names(&changes), ["db"]);
        assert!(!changes.settling);
        // A drop-in names its unit.
        std::fs::write(dir.join("web.yaml.d/10-env.yaml"), "env: {A: b}\n").unwrap();
        assert_eq!(names(&watcher.read()), ["web"]);
        // Removal may be an editor's first step.
        std::fs::remove_file(dir.join("db.yaml")).unwrap();
        let changes = watcher.read();
        assert_eq!(names(&changes), ["db"]);
        assert!(changes.settling);
        // A misnamed file has the whole directory read (which warns).
        std::fs::write(dir.join("Bad.yaml"), "exec: [/x]\n").unwrap();
        assert!(watcher.read().everything);
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
            watcher.read().any() || watcher.read().any(),
            "after {incomplete} retries"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
