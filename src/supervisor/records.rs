//! Unit records: what a supd that restarted (after a crash, `kill -9` or
//! `daemon-reexec`) needs to adopt a running container rather than kill
//! it. One file per active unit, `RUNTIME_DIR/units/NAME.json`, written
//! atomically whenever the unit's state changes: the unit in force, its
//! state machine, and the container's init identified by PID, start time
//! and boot id (a recycled PID or a reboot never passes for the container).
//! Beside it, `NAME.exit` is where the init writes the workload's exit code.

use super::machine::Snapshot;
use crate::control::protocol::LastExit;
use crate::files::{self, Links};
use crate::runtime::net::NetPlan;
use crate::runtime::Dirs;
use crate::unit::Unit;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bumped when a record's meaning changes: a supd that finds another
/// version clears that unit's container rather than misread it.
pub const RECORD_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub boot_id: String,
    pub unit: Unit,
    pub machine: Snapshot,
    /// OOM kills of earlier runs.
    pub oom_kills: u64,
    pub run: Option<RunRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// Host PID of the container's init.
    pub pid: i32,
    /// Its start time in clock ticks after boot (/proc/PID/stat field 22).
    pub start_time: u64,
    pub network: Option<NetPlan>,
}

/// What a record found at start-up comes to.
pub enum Found {
    /// The init still runs: adopt it.
    Running(Record, std::os::fd::OwnedFd),
    /// The init exited while supd was away, with this status.
    Exited(Record, LastExit),
    /// Nothing ran (back-off, waiting): carry the history over.
    Idle(Record),
    /// Unusable: why, for the log. Its cgroup is cleared.
    Unusable(String),
}

/// This boot's id: a record from an earlier boot describes nothing alive.
pub fn boot_id() -> String {
    files::read_text(
        Path::new("/proc/sys/kernel/random/boot_id"),
        Links::Follow,
        64,
    )
    .map(|text| text.trim().to_string())
    .unwrap_or_default()
}

/// The start time of a process (field 22 of /proc/PID/stat, after the
/// command name, which may itself contain spaces and parentheses).
pub fn start_time(pid: i32) -> Option<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = files::read_text(Path::new(&path), Links::Follow, 4096).ok()?;
    let (_, after_name) = stat.rsplit_once(')')?;
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// What a record would be written as, hashed: equal hashes, same file.
pub fn hash(record: &Record) -> u64 {
    let text = serde_json::to_string(record).unwrap_or_default();
    super::intent::file_hash(&text)
}

pub fn save(dirs: &Dirs, name: &str, record: &Record) -> Result<(), String> {
    let path = dirs.record(name);
    let text = serde_json::to_vec(record).map_err(|e| e.to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // Written at every start and exit: an fsync would put two disk flushes
    // (about 15 ms more per restart on an ext4 /tmp). A record only
    // has to outlive supd's process, and the page cache does; a power cut
    // is a reboot, after which its boot id voids it anyway.
    files::write_atomically_for(&path, &text, files::Durability::ProcessCrash)
        .map_err(|e| e.to_string())
}

/// The unit is idle or gone: nothing to adopt any more.
pub fn remove(dirs: &Dirs, name: &str) {
    for path in [dirs.record(name), dirs.exit_record(name)] {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("{name}: cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Every record under RUNTIME_DIR/units, sorted out. Records of another
/// boot, or that do not parse, are removed.
pub fn load_all(dirs: &Dirs) -> Vec<(String, Found)> {
    let dir = dirs.runtime.join("units");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let boot = boot_id();
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .filter(|n| crate::unit::valid_unit_name(n))
            .map(str::to_string)
        else {
            continue;
        };
        let outcome = match read(&path) {
            Ok(record) if record.version != RECORD_VERSION => Found::Unusable(format!(
                "a record of version {}, this supd reads {RECORD_VERSION}",
                record.version
            )),
            Ok(record) if record.boot_id != boot => {
                Found::Unusable("it is from an earlier boot".to_string())
            }
            Ok(record) => classify(dirs, &name, record),
            Err(why) => Found::Unusable(why),
        };
        if let Found::Unusable(why) = &outcome {
            log::warn!(
                "{}: {why}; the unit's container, if any, is cleared and started afresh",
                path.display()
            );
            remove(dirs, &name);
        }
        found.push((name, outcome));
    }
    found
}

fn read(path: &Path) -> Result<Record, String> {
    let text =
        files::read_text(path, Links::Refuse, files::MAX_FILE_BYTES).map_err(|e| e.to_string())?;
    let record: Record =
        serde_json::from_str(&text).map_err(|e| format!("corrupt unit record: {e}"))?;
    if record.unit.name
        != path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
    {
        return Err("corrupt unit record: it names another unit".to_string());
    }
    Ok(record)
}

fn classify(dirs: &Dirs, name: &str, record: Record) -> Found {
    let Some(run) = &record.run else {
        return Found::Idle(record);
    };
    if !record.machine.past_setup() {
        return Found::Unusable("its container was still being set up".to_string());
    }
    // The pidfd first, then the start time: if the PID was recycled after
    // the pidfd was opened, the start time no longer matches.
    match pidfd_open(run.pid) {
        Some(pidfd) if start_time(run.pid) == Some(run.start_time) => Found::Running(record, pidfd),
        _ => {
            let exit = read_exit(&dirs.exit_record(name));
            Found::Exited(record, exit)
        }
    }
}

/// What the init wrote before it exited; nothing means it was killed (only
/// SIGKILL ends a PID namespace's init from outside).
pub fn read_exit(path: &Path) -> LastExit {
    let code = files::read_text(path, Links::Refuse, 64)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok());
    LastExit {
        code,
        signal: code.is_none().then_some(libc::SIGKILL),
        oom_killed: false,
        stopped: false,
        failed_check: None,
    }
}

pub fn pidfd_open(pid: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor
    // or -1; no memory is passed.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: on success the descriptor is new and nothing else owns it.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// A copy of descriptor `fd` of the process behind `pidfd` (the init's
/// hold on the output pipe). Needs ptrace access to it, which root has.
pub fn pidfd_getfd(pidfd: &std::os::fd::OwnedFd, fd: i32) -> std::io::Result<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: pidfd_getfd on a pidfd we own; returns a new descriptor
    // (close-on-exec) or -1; no memory is passed.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is new and nothing else owns it.
    Ok(unsafe { std::fs::File::from_raw_fd(copy as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_after_the_command_name() {
        let own = start_time(std::process::id() as i32);
        assert!(own.is_some_and(|t| t > 0), "{own:?}");
        assert_eq!(start_time(-1), None);
    }

    #[test]
    fn an_empty_exit_record_reads_as_killed() {
        let dir = std::env::temp_dir().join(format!("supd-exit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("web.exit");
        std::fs::write(&path, "").unwrap();
        assert_eq!(read_exit(&path).signal, Some(libc::SIGKILL));
        std::fs::write(&path, "7\n").unwrap();
        let exit = read_exit(&path);
        assert_eq!((exit.code, exit.signal), (Some(7), None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
