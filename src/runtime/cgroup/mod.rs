//! Container cgroups, written directly against cgroupfs. The cgroupfs root
//! is a parameter, so tests fake a v1 or v2 tree in a temp dir.
//!
//! Why not cgroups-rs: measured here, it silently drops limits for unmounted
//! controllers, turns read errors into zeros, never parses v2 memory.events,
//! writes the root's subtree_control on v2, sleeps in delete(), and brings
//! ~57 crates. What supd needs is a few dozen file writes with read-back.

mod device_bpf;
mod devices;
mod leftovers;
mod limits;
mod stats;

pub use devices::unit_rules as device_rules;

pub use leftovers::Leftover;
pub use limits::{plan_writes, Check, Write};
pub use stats::Stats;

pub use crate::host::{HostCgroups, Layout};
use crate::unit::Resources;
use nix::unistd::Pid;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup hierarchy under {}", .0.display())]
    NotFound(PathBuf),
    #[error("{op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: wrote {wrote:?} but the kernel reports {read:?}", .path.display())]
    Mismatch {
        path: PathBuf,
        wrote: String,
        read: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{}: another supd uses this cgroup parent (give each its own with --cgroup-parent)", .0.display())]
    InUse(PathBuf),
}

fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io { op, path, source }
}

/// The v1 controllers supd uses, each in its own hierarchy (co-mounted ones
/// such as cpu,cpuacct appear under both names on every distribution).
pub const V1_CONTROLLERS: [&str; 8] = [
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "freezer", "devices",
];
/// Hierarchies without controllers that a v1 or hybrid host mounts: systemd's
/// named one and the hybrid's empty cgroup2. A container gets its cgroup in
/// these too (as runc does), so that cgroups its workload makes there (a
/// systemd inside) are its own and go with it.
const NAMED_HIERARCHIES: [&str; 2] = ["systemd", "unified"];

/// The v2 controllers supd enables for its containers.
const V2_CONTROLLERS: [&str; 5] = ["cpuset", "cpu", "io", "memory", "pids"];

pub fn detect(root: &Path) -> Result<Layout, CgroupError> {
    if root.join("cgroup.controllers").is_file() {
        return Ok(Layout::V2);
    }
    if V1_CONTROLLERS.iter().any(|c| root.join(c).is_dir()) {
        let hybrid = root.join("unified/cgroup.controllers").is_file();
        return Ok(Layout::V1 { hybrid });
    }
    Err(CgroupError::NotFound(root.to_path_buf()))
}

/// What the host offers, read without creating anything (for offline
/// validation); None where no cgroup hierarchy is mounted.
pub fn probe_host(root: &Path) -> Option<HostCgroups> {
    let layout = detect(root).ok()?;
    let child_has = |file: &str| {
        fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join(file).exists())
    };
    let (swap_accounting, io_weight) = match layout {
        Layout::V2 => (child_has("memory.swap.max"), child_has("io.weight")),
        Layout::V1 { .. } => (
            root.join("memory/memory.memsw.limit_in_bytes").exists(),
            root.join("blkio/blkio.weight").exists(),
        ),
    };
    Some(HostCgroups {
        layout,
        swap_accounting,
        io_weight,
    })
}

/// supd's parent cgroup(s), under which each container gets its own.
#[derive(Debug)]
pub struct Cgroups {
    layout: Layout,
    /// v1: one (controller, parent dir) per mounted controller; v2: one
    /// entry with an empty controller name.
    parents: Vec<(&'static str, PathBuf)>,
    /// Held while supd runs: one daemon per parent.
    _lock: fs::File,
}

impl Cgroups {
    /// Detects the layout under `root`, takes `root/.../parent` for this
    /// daemon, clears what an earlier daemon left there except the cgroups
    /// `keep` names (containers to adopt), and prepares it.
    pub fn new(
        root: &Path,
        parent: &str,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(Self, Vec<Leftover>), CgroupError> {
        let layout = detect(root)?;
        let parents = match layout {
            Layout::V2 => {
                let dir = root.join(parent);
                // The cgroup above supd's parent: the root, or supd's own
                // delegated service cgroup.
                enable_controllers(dir.parent().unwrap_or(root))?;
                make_dir(&dir)?;
                vec![("", dir)]
            }
            Layout::V1 { .. } => {
                let mut parents = Vec::new();
                for controller in V1_CONTROLLERS {
                    let hierarchy = root.join(controller);
                    if hierarchy.is_dir() {
                        let dir = hierarchy.join(parent);
                        make_dir(&dir)?;
                        parents.push((controller, dir));
                    }
                }
                for named in NAMED_HIERARCHIES {
                    let hierarchy = root.join(named);
                    if hierarchy.join("cgroup.procs").is_file() {
                        let dir = hierarchy.join(parent);
                        make_dir(&dir)?;
                        parents.push((named, dir));
                    }
                }
                parents
            }
        };
        let Some((_, first)) = parents.first() else {
            return Err(CgroupError::NotFound(root.to_path_buf()));
        };
        let cgroups = Cgroups {
            layout,
            _lock: leftovers::lock_parent(first)?,
            parents,
        };
        let leftovers = cgroups.clear_leftovers(keep)?;
        cgroups.configure_parents(root)?;
        Ok((cgroups, leftovers))
    }

    /// Configured once here, so that every container's cgroup starts with
    /// it at mkdir: fewer writes on each start.
    fn configure_parents(&self, root: &Path) -> Result<(), CgroupError> {
        for (controller, dir) in &self.parents {
            match *controller {
                "" => enable_controllers(dir)?,
                "cpuset" => {
                    inherit_cpuset(&root.join("cpuset"), dir)?;
                    write(&dir.join("cgroup.clone_children"), "1")?;
                }
                "devices" => restrict_parent_devices(dir)?,
                _ => {}
            }
        }
        Ok(())
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn host(&self) -> HostCgroups {
        let has = |controller: &str, file: &str| {
            self.parents
                .iter()
                .any(|(c, dir)| (c.is_empty() || *c == controller) && dir.join(file).exists())
        };
        let swap_accounting = match self.layout {
            Layout::V2 => has("", "memory.swap.max"),
            Layout::V1 { .. } => has("memory", "memory.memsw.limit_in_bytes"),
        };
        let io_weight = match self.layout {
            Layout::V2 => has("", "io.weight"),
            Layout::V1 { .. } => has("blkio", "blkio.weight"),
        };
        HostCgroups {
            layout: self.layout,
            swap_accounting,
            io_weight,
        }
    }

    /// Creates the container's cgroup(s), empty of processes. A new v1
    /// cgroup inherits the parent's cpuset (clone_children); one left over
    /// from an earlier run gets it written. Device rules come with
    /// `set_devices`.
    pub fn create(&self, name: &str) -> Result<Cgroup, CgroupError> {
        let mut dirs = Vec::with_capacity(self.parents.len());
        let mut fresh = true;
        for (controller, parent) in &self.parents {
            let dir = parent.join(name);
            let created = make_dir(&dir)?;
            fresh &= created;
            if *controller == "cpuset" && !created {
                inherit_cpuset(parent, &dir)?;
            }
            dirs.push((*controller, dir));
        }
        Ok(Cgroup {
            layout: self.layout,
            dirs,
            fresh,
        })
    }

    /// Removes supd's parent directories if no container uses them.
    pub fn remove_parents(&self) {
        for (_, dir) in &self.parents {
            if let Err(e) = fs::remove_dir(dir) {
                log::debug!("keeping {}: {e}", dir.display());
            }
        }
    }
}

/// On pure v2 under systemd with Delegate=yes, supd owns the subtree of its
/// service cgroup: it moves itself into a `supervisor` leaf (v2 allows no
/// processes in a cgroup whose controllers are delegated further) and
/// returns `SERVICE/containers` as the parent for the containers, so that
/// they belong to the service and systemd's KillMode sees them. `None`
/// outside a systemd service (no INVOCATION_ID) or on v1 and hybrid hosts,
/// where container processes never leave the service in systemd's own
/// hierarchy.
pub fn delegated_parent(root: &Path) -> Result<Option<String>, CgroupError> {
    if std::env::var_os("INVOCATION_ID").is_none() || detect(root)? != Layout::V2 {
        return Ok(None);
    }
    let own = read(Path::new("/proc/self/cgroup"))?;
    let Some(own) = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(|path| path.trim_matches('/'))
        .filter(|path| !path.is_empty())
    else {
        return Ok(None);
    };
    // Already in the leaf: systemd put supd there (DelegateSubgroup=), or
    // this process did before a `daemon-reexec`.
    let service = own.strip_suffix("/supervisor").unwrap_or(own);
    let leaf = root.join(service).join("supervisor");
    make_dir(&leaf)?;
    if service == own {
        write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
    }
    Ok(Some(format!("{service}/containers")))
}

/// Whether the directory was created (false: it existed).
fn make_dir(dir: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(CgroupError::Io {
            op: "mkdir",
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// A v1 cpuset cgroup starts with empty cpus and mems, and a process cannot
/// join it until they are set: copy the parent's.
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = read(&dir.join(file))?;
        if current.trim().is_empty() {
            let value = read(&parent.join(file))?;
            write(&dir.join(file), value.trim())?;
        }
    }
    Ok(())
}

/// v1 devices: supd's parent holds no process; it must allow at least
/// Docker's default set, which each new container cgroup inherits at
/// mkdir. A parent that allows everything (fresh) is closed first; one an
/// earlier supd configured keeps what it allows, as `deny a` is refused
/// while a child is online (an adopted container, or one removed a moment
/// ago that goes offline asynchronously).
fn restrict_parent_devices(dir: &Path) -> Result<(), CgroupError> {
    let current = read(&dir.join("devices.list"))?;
    let open = current.lines().any(|l| l.trim() == "a *:* rwm");
    if open {
        write(&dir.join("devices.deny"), "a")?;
    }
    for rule in crate::unit::inputs::DEFAULT_DEVICE_RULES {
        let rule = rule.to_string();
        if open || !current.lines().any(|l| l.trim() == rule) {
            write(&dir.join("devices.allow"), &rule)?;
        }
    }
    Ok(())
}

/// Makes the v2 controllers supd needs available to the children of `dir`.
/// Only the missing ones are written, so on a systemd host (where they are
/// already on) nothing is written at the root.
fn enable_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read(&dir.join("cgroup.controllers"))?;
    let enabled = read(&dir.join("cgroup.subtree_control"))?;
    let missing: Vec<String> = V2_CONTROLLERS
        .iter()
        .filter(|c| available.split_whitespace().any(|a| a == **c))
        .filter(|c| !enabled.split_whitespace().any(|e| e == **c))
        .map(|c| format!("+{c}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), &missing.join(" "))
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(io_error("read", path))
}

pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_error("write", path))
}

/// One container's cgroup (one directory per v1 hierarchy, one on v2).
#[derive(Clone, Debug)]
pub struct Cgroup {
    layout: Layout,
    dirs: Vec<(&'static str, PathBuf)>,
    /// Every directory was created by `create`, so every limit is at the
    /// kernel's default.
    fresh: bool,
}

impl Cgroup {
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.is_empty() || *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// The directory that names the container (v2), or its memory cgroup.
    pub fn path(&self) -> &Path {
        self.dir("memory")
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()))
            .unwrap_or(Path::new("/"))
    }

    /// Its directories, one per v1 hierarchy or the one on v2.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, dir)| dir.as_path())
    }

    /// On v2, the directory for clone3's CLONE_INTO_CGROUP, so that the
    /// container's first process starts in its cgroup with no migration.
    /// None on v1, which has one hierarchy per controller, or if it cannot
    /// be opened (the caller then migrates the process).
    pub fn clone_target(&self) -> Option<fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        if self.layout != Layout::V2 {
            return None;
        }
        fs::File::options()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(self.dir("")?)
            .ok()
    }

    /// Hands the cgroups a system container's systemd manages (v2, and on
    /// v1 and hybrid hosts systemd's named hierarchy and the empty cgroup2)
    /// to its root under a user namespace, as systemd delegates a subtree:
    /// the directory and the files that create and move into children.
    pub fn delegate(&self, uid: u32, gid: u32) -> Result<(), CgroupError> {
        let owner = |path: &Path| {
            nix::unistd::chown(
                path,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(|e| io_error("chown", path)(e.into()))
        };
        for (controller, dir) in &self.dirs {
            if !matches!(*controller, "" | "systemd" | "unified") {
                continue;
            }
            owner(dir)?;
            for file in [
                "cgroup.procs",
                "cgroup.threads",
                "cgroup.subtree_control",
                "tasks",
            ] {
                let path = dir.join(file);
                if path.exists() {
                    owner(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Moves a process (and so everything it will fork) into the cgroup.
    pub fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The limits of a container about to start. A fresh cgroup already has
    /// the defaults, so only the unit's own limits are written.
    pub fn apply_initial(&self, resources: &Resources) -> Result<Vec<String>, CgroupError> {
        let mut writes = plan_writes(self.layout, resources, None, &device_numbers)?;
        if self.fresh {
            writes.retain(|w| w.required);
        }
        self.write_all(writes)
    }

    /// Writes every limit (and resets the ones no longer set), reading each
    /// back. `previous` names I/O devices whose limits must be lifted.
    pub fn apply(
        &self,
        resources: &Resources,
        previous: Option<&Resources>,
    ) -> Result<Vec<String>, CgroupError> {
        self.write_all(plan_writes(
            self.layout,
            resources,
            previous,
            &device_numbers,
        )?)
    }

    fn write_all(&self, writes: Vec<limits::Write>) -> Result<Vec<String>, CgroupError> {
        let mut applied = Vec::new();
        for w in writes {
            let Some(dir) = self.dir(w.controller) else {
                if w.required {
                    return Err(CgroupError::Unsupported(format!(
                        "the {} controller is not available on this host, needed for {}",
                        w.controller, w.file
                    )));
                }
                continue;
            };
            let path = dir.join(w.file);
            if !w.required && !path.exists() {
                continue;
            }
            write(&path, &w.value)?;
            let read_back = read(&path)?;
            if !w.check.matches(&w.value, &read_back) {
                return Err(CgroupError::Mismatch {
                    path,
                    wrote: w.value,
                    read: read_back.trim().to_string(),
                });
            }
            if w.required {
                applied.push(format!("{}={}", w.file, w.value));
            }
        }
        Ok(applied)
    }

    pub fn stats(&self) -> Stats {
        stats::read_stats(self.layout, |controller, file| {
            self.dir(controller)
                .and_then(|d| fs::read_to_string(d.join(file)).ok())
        })
    }

    /// Kills every process in the cgroup: cgroup.kill on v2 where present,
    /// otherwise freeze, kill each, thaw.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        if let Some(dir) = self.dir("") {
            let kill = dir.join("cgroup.kill");
            if self.layout == Layout::V2 && kill.exists() {
                return write(&kill, "1");
            }
        }
        let freezer = match self.layout {
            Layout::V2 => self.dir("").map(|d| (d.join("cgroup.freeze"), "1", "0")),
            Layout::V1 { .. } => self
                .dir("freezer")
                .map(|d| (d.join("freezer.state"), "FROZEN", "THAWED")),
        };
        let frozen = freezer
            .as_ref()
            .is_some_and(|(file, on, _)| write(file, on).is_ok());
        for pid in self.procs()? {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        if let (true, Some((file, _, off))) = (frozen, freezer) {
            write(&file, off)?;
        }
        Ok(())
    }

    /// The processes in the cgroup and in the cgroups its workload created
    /// below it (host PIDs).
    fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let Some(dir) = self.dir("pids").or_else(|| self.dir("memory")) else {
            return Ok(Vec::new());
        };
        let mut pids = Vec::new();
        for dir in subtree(dir) {
            let procs = read(&dir.join("cgroup.procs"))?;
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        Ok(pids)
    }

    /// Removes the cgroup, depth-first with the cgroups its workload made
    /// (systemd inside, nested runtimes). EBUSY (a process not yet fully
    /// gone) comes back as an error for the caller to retry later, never a
    /// sleep here.
    pub fn remove(&self) -> Result<(), CgroupError> {
        for (_, top) in &self.dirs {
            for dir in subtree(top).into_iter().rev() {
                match fs::remove_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error("rmdir", &dir)(e)),
                }
            }
        }
        Ok(())
    }
}

/// `top` and every cgroup below it, parents before children. Bounded: a
/// workload cannot make cgroupfs deeper than the kernel's own limits, and
/// a directory that vanishes meanwhile is skipped.
fn subtree(top: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![top.to_path_buf()];
    let mut index = 0;
    while let Some(dir) = dirs.get(index).cloned() {
        index = index.saturating_add(1);
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    dirs
}

/// MAJOR:MINOR of a block device node.
fn device_numbers(path: &Path) -> Result<(u64, u64), CgroupError> {
    match crate::host::block_device_numbers(path).map_err(io_error("stat", path))? {
        Some(numbers) => Ok(numbers),
        None => Err(CgroupError::Unsupported(format!(
            "{} is not a block device",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests;
