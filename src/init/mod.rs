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

/// What the init blocks and collects with sigtimedwait: every signal but
/// the synchronous faults (SEGV, BUS, FPE, ILL, ABRT, TRAP, SYS), which
/// must keep their default action should the init itself fault, as in tini.
pub fn forwarded_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::all();
    for fault in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGABRT,
        Signal::SIGTRAP,
        Signal::SIGSYS,
    ] {
        set.remove(fault);
    }
    set
}

/// Runs until the workload and every other process are gone, with
/// `forwarded_signals` already blocked by the caller. Returns the exit code to use: the
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
                    signal_all(Signal::SIGKILL);
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
                    forward(workload, other);
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
                signal_all(Signal::SIGTERM);
                kill_at = Some(Instant::now() + grace);
            }
        }
    }
}

/// The workload may be gone already (ESRCH); anything else is said on the
/// container's output, the only channel the init has.
fn forward(workload: Pid, signal: i32) {
    // SAFETY: kill(2) with a signal number the kernel just delivered to us.
    if unsafe { libc::kill(workload.as_raw(), signal) } != 0 {
        let error = Errno::last();
        if error != Errno::ESRCH {
            eprintln!("supd init: forwarding signal {signal}: {error}");
        }
    }
}

/// Every process the init may signal (all of the container's: it keeps
/// CAP_KILL); none left is fine.
fn signal_all(signal: Signal) {
    match kill(Pid::from_raw(-1), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => eprintln!("supd init: {signal} to the leftover processes: {error}"),
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
    let set = forwarded_signals();
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
        let signal =
            unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), timespec_ptr) };
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
