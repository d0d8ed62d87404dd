//! What an earlier supd left under the parent cgroup because it was killed,
//! crashed or re-executed itself.
//!
//! The containers a new supd adopts keep their cgroups. Every other one (its
//! unit record is gone, corrupt, or names a process that no longer runs)
//! is stopped and its cgroup removed before the parent is configured.
//! Without this, a second copy of such a container would run beside the
//! orphan, and on v1 a devices parent with stale children refuses new rules.
//! A cgroup that cannot be removed is reported for its unit; it never keeps
//! supd from starting. A lock on the parent keeps two live daemons apart,
//! so only a dead daemon's containers are ever cleared.

use super::{io_error, Cgroup, CgroupError, Cgroups};
use std::collections::BTreeSet;
use std::fs;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long start-up waits for orphaned processes to die and their cgroups
/// to go. The event loop does not run yet, so waiting delays nothing else.
const GRACE: Duration = Duration::from_secs(5);
const RMDIR_RETRY: Duration = Duration::from_millis(10);

/// A container cgroup that an earlier supd left, now cleared.
#[derive(Debug)]
pub struct Leftover {
    pub name: String,
    /// Processes that were still running in it and were killed.
    pub processes: usize,
    /// Why the cgroup (or one below it) is still there.
    pub error: Option<CgroupError>,
}

/// An exclusive lock on supd's parent cgroup, held for the daemon's life.
pub(super) fn lock_parent(dir: &Path) -> Result<fs::File, CgroupError> {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(dir).map_err(io_error("open", dir))?;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(CgroupError::InUse(dir.to_path_buf()));
        }
        return Err(io_error("flock", dir)(error));
    }
    Ok(file)
}

impl Cgroups {
    /// Kills what runs in every container cgroup under the parent that is
    /// not to be kept (adopted), and removes it with what is below it.
    pub(super) fn clear_leftovers(
        &self,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Leftover>, CgroupError> {
        let mut names = BTreeSet::new();
        for (_, parent) in &self.parents {
            for entry in fs::read_dir(parent).map_err(io_error("read directory", parent))? {
                let entry = entry.map_err(io_error("read directory", parent))?;
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    names.insert(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        let deadline = Instant::now() + GRACE;
        let mut cleared = Vec::new();
        for name in names.into_iter().filter(|name| !keep(name)) {
            let cgroup = self.existing(&name);
            let pids = cgroup.procs().unwrap_or_default();
            let error = cgroup
                .kill_all()
                .and_then(|()| {
                    wait_for_exit(&pids, deadline);
                    remove_before(&cgroup, deadline)
                })
                .err();
            cleared.push(Leftover {
                name,
                processes: pids.len(),
                error,
            });
        }
        Ok(cleared)
    }

    /// The cgroup of `name` as far as it exists: an adopted container's.
    pub fn existing(&self, name: &str) -> Cgroup {
        Cgroup {
            layout: self.layout,
            dirs: self
                .parents
                .iter()
                .map(|(controller, parent)| (*controller, parent.join(name)))
                .filter(|(_, dir)| dir.is_dir())
                .collect(),
            fresh: false,
        }
    }
}

/// Waits until each process has exited (the killed ones are no longer our
/// children, so a pidfd tells when they are gone), or the deadline passes.
fn wait_for_exit(pids: &[i32], deadline: Instant) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    for &pid in pids {
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1; no memory is passed.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            // Already gone, or a kernel without pidfds: the rmdir retries
            // below still wait for it.
            continue;
        }
        // SAFETY: the syscall returned a new descriptor that nothing else owns.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
        if let Err(e) = poll(&mut fds, timeout) {
            log::debug!("waiting for orphaned pid {pid}: {e}");
        }
    }
}

/// Removes the cgroup, retrying while the kernel still counts a dying
/// process in it.
fn remove_before(cgroup: &Cgroup, deadline: Instant) -> Result<(), CgroupError> {
    loop {
        match cgroup.remove() {
            Ok(()) => return Ok(()),
            Err(CgroupError::Io { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline =>
            {
                std::thread::sleep(RMDIR_RETRY);
            }
            Err(e) => return Err(e),
        }
    }
}
