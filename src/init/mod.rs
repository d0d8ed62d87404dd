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

/// The init lives as long as its container, and every container has one:
/// what the setup used (parsed spec, mount tables, deep call stacks) would
/// stay as private memory of each. Called once setup is over, before `run`.
pub fn release_setup_memory() {
    release_unused_stack();
    // SAFETY: malloc_trim only hands free heap pages back to the kernel.
    unsafe { libc::malloc_trim(0) };
}

/// Drops the pages of the main stack below the current frame: setup's
/// deeper calls touched them and nothing lives there any more.
fn release_unused_stack() {
    const PAGE: usize = 4096;
    // Room for this function's own frame and the madvise call below it.
    const MARGIN: usize = PAGE;
    let marker = 0u8;
    let here = std::hint::black_box(std::ptr::addr_of!(marker)) as usize;
    let Some(low) = stack_start() else {
        return;
    };
    let end = here.saturating_sub(MARGIN) & !(PAGE - 1);
    if end <= low {
        return;
    }
    // SAFETY: [low, end) lies in this process's main stack below the live
    // frames (and below the red zone, which is 128 bytes); signals are
    // blocked, so no handler frame can be there. Dropped pages read back as
    // zeros if the init ever grows its stack that deep again.
    unsafe { libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED) };
}

/// The lowest address of the `[stack]` mapping, from /proc/self/maps.
fn stack_start() -> Option<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let line = maps.lines().find(|l| l.ends_with("[stack]"))?;
    let (start, _) = line.split_once('-')?;
    usize::from_str_radix(start, 16).ok()
}
