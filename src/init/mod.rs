//! The container's PID 1: forward every signal to the workload, reap every
//! child, and when the workload exits, clean up what it left and exit with its
//! status. One loop, one thread, one place that calls waitpid.
//!
//! The kernel does not deliver signals to a PID namespace's init unless it
//! has a handler, so without this loop `SIGTERM` from supd would do nothing
//! and orphans would pile up as zombies.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

/// Runs until the workload and every other process are gone, with all
/// signals already blocked by the caller. Returns the exit code to use: the
/// workload's own, or 128+N if signal N killed it.
pub fn run(workload: Pid, grace: Duration) -> i32 {
    let mut exit_code: Option<i32> = None;
    let mut kill_at: Option<Instant> = None;
    loop {
        let signal = match kill_at {
            None => wait_signal(None),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // The grace period is over: nothing may outlive us.
                    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
                    reap(workload, &mut exit_code, true);
                    return exit_code.unwrap_or(0);
                }
                wait_signal(Some(left))
            }
        };
        match signal {
            Some(libc::SIGCHLD) | None => {}
            Some(other) => {
                if exit_code.is_none() {
                    // SAFETY: forwarding a signal number that we just received.
                    unsafe { libc::kill(workload.as_raw(), other) };
                }
                continue;
            }
        }
        let all_gone = reap(workload, &mut exit_code, false);
        if exit_code.is_some() {
            if all_gone {
                return exit_code.unwrap_or(0);
            }
            if kill_at.is_none() {
                let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
                kill_at = Some(Instant::now() + grace);
            }
        }
    }
}

/// Reaps children; records the workload's status. Returns true when no child
/// is left. With `block`, waits until then.
fn reap(workload: Pid, exit_code: &mut Option<i32>, block: bool) -> bool {
    let flags = if block {
        None
    } else {
        Some(WaitPidFlag::WNOHANG)
    };
    loop {
        match waitpid(Pid::from_raw(-1), flags) {
            Ok(WaitStatus::StillAlive) => return false,
            Ok(WaitStatus::Exited(pid, code)) if pid == workload => *exit_code = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == workload => {
                *exit_code = Some(128 + signal as i32)
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return true,
        }
    }
}

/// Waits for any signal, or until `timeout`; None on timeout.
fn wait_signal(timeout: Option<Duration>) -> Option<i32> {
    // SAFETY: sigset_t is plain data; sigfillset initialises it fully.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t we own.
    unsafe { libc::sigfillset(&mut set) };
    let timespec = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let timespec_ptr = timespec
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    loop {
        // SAFETY: `set` is initialised; a null info pointer is allowed; the
        // timeout pointer is null or points to a live timespec.
        let signal = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), timespec_ptr) };
        if signal >= 0 {
            return Some(signal);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            _ => return None,
        }
    }
}
