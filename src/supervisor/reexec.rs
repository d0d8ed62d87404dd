//! `supctl daemon-reexec`: supd executes the binary at its path again, in
//! the same process. Containers stay its children and are adopted from
//! their unit records like after a crash; the listening socket is handed
//! over, so clients that connect meanwhile are answered by the new supd.

use super::{monotonic_now, Supervisor};
use crate::control::protocol::{Body, Response};
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

/// Names the inherited listening socket's descriptor for the new supd.
const LISTEN_FD_VAR: &str = "SUPD_LISTEN_FD";
/// How long a re-exec waits for container setups in flight and clients
/// waiting for units to settle, before it goes ahead anyway.
const PATIENCE: Duration = Duration::from_secs(10);

/// The control socket a re-executing supd handed over, if it is one bound
/// at `path`.
pub(super) fn inherited_listener(path: &Path) -> Option<UnixListener> {
    let fd: i32 = std::env::var(LISTEN_FD_VAR).ok()?.parse().ok()?;
    // Not for the containers' or any later process.
    std::env::remove_var(LISTEN_FD_VAR);
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the previous supd left this descriptor open for us and
    // nothing else in this process has taken it.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    let bound = listener.local_addr().ok()?;
    if bound.as_pathname() != Some(path) {
        log::warn!("{LISTEN_FD_VAR}={fd} is not the control socket; binding anew");
        return None;
    }
    // SAFETY: F_SETFD on the descriptor the listener now owns.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return None;
    }
    listener.set_nonblocking(true).ok()?;
    log::info!("re-executed: took over the control socket");
    Some(listener)
}

impl Supervisor {
    pub(super) fn request_reexec(&mut self) -> Response {
        if self.shutting_down {
            return Response::error("supd is shutting down");
        }
        self.reexec.get_or_insert(super::deadline_after(PATIENCE));
        Response::new(Body::Done {
            message: format!("re-executing supd (pid {})", std::process::id()),
            failed: Vec::new(),
        })
    }

    /// Execs once no container is in its setup (its report pipe would go
    /// with this process), no client waits for an answer and no image
    /// import runs, or at the deadline.
    pub(super) fn reexec_when_settled(&mut self) {
        let Some(deadline) = self.reexec else {
            return;
        };
        let setting_up = self
            .entries
            .values()
            .any(|e| e.run.as_ref().is_some_and(|r| r.report.is_some()));
        // A client accepted but not yet heard would lose its answer with
        // this process; one still in the backlog is the next supd's.
        let answering = self
            .clients
            .values()
            .any(|c| c.wants_write() || (!c.spoke && !c.read_closed));
        let busy = setting_up || !self.waiters.is_empty() || answering || self.imports.busy();
        if busy && monotonic_now() < deadline {
            return;
        }
        self.reexec = None;
        if let Err(e) = self.exec_self() {
            log::error!("daemon-reexec: {e}; this supd goes on");
        }
    }

    fn exec_self(&mut self) -> Result<(), String> {
        // Everything the next supd adopts from.
        self.dirty.extend(self.entries.keys().cloned());
        self.save_records();
        let exe = self
            .exe_path
            .clone()
            .ok_or("the path of supd's binary is unknown")?;
        let program = CString::new(exe.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        let args: Vec<CString> = std::env::args_os()
            .filter_map(|a| CString::new(a.as_bytes()).ok())
            .collect();
        let fd = self.listener.as_raw_fd();
        // SAFETY: F_SETFD on the listener we own, so that it survives exec.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
            return Err(format!("listener: {}", std::io::Error::last_os_error()));
        }
        std::env::set_var(LISTEN_FD_VAR, fd.to_string());
        log::info!("daemon-reexec: executing {}", exe.display());
        let error = nix::unistd::execv(&program, &args).err();
        // Still here: exec failed. Undo the hand-over.
        std::env::remove_var(LISTEN_FD_VAR);
        // SAFETY: F_SETFD on the listener we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        Err(format!(
            "cannot execute {}: {}",
            exe.display(),
            error.map_or_else(|| "unknown error".to_string(), |e| e.to_string())
        ))
    }
}
