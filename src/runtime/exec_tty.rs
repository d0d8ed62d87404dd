//! `supctl exec -t`: the command gets a terminal of the container's own
//! devpts (opened after supctl entered its mount namespace and root), as
//! its controlling terminal, and supctl relays between it and its own
//! standard streams, with its terminal in raw mode and its window size
//! passed on (again at each SIGWINCH).

use nix::libc;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, OpenptyResult};
use nix::sys::termios::{self, SetArg, Termios};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

static RESIZED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    RESIZED.store(true, Ordering::Relaxed);
}

/// A terminal pair from the current root's /dev/ptmx.
pub fn open() -> nix::Result<OpenptyResult> {
    openpty(None, None)
}

/// In the child, before the exec: a session of its own with `slave` as
/// its controlling terminal and standard streams.
pub fn become_controlling(slave: &OwnedFd) -> nix::Result<()> {
    nix::unistd::setsid()?;
    // SAFETY: TIOCSCTTY takes an int argument; the descriptor is ours.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY as _, 0) } < 0 {
        return Err(nix::Error::last());
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors of this process.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

fn copy_window_size(from: BorrowedFd<'_>, to: BorrowedFd<'_>) {
    let mut size: libc::winsize = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read or write a winsize we own; a
    // descriptor that is no terminal just fails.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
}

/// Puts supctl's terminal (if stdin is one) in raw mode until dropped.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        if termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Relays until the command's side of the terminal closes.
pub fn relay(master: &OwnedFd) -> nix::Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    copy_window_size(stdout.as_fd(), master.as_fd());
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGWINCH,
            nix::sys::signal::SigHandler::Handler(on_winch),
        )?;
    }
    let _raw = RawMode::enter();
    let mut stdin_open = true;
    let mut buffer = [0u8; 8192];
    loop {
        if RESIZED.swap(false, Ordering::Relaxed) {
            copy_window_size(stdout.as_fd(), master.as_fd());
        }
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        let ready = |fd: &PollFd<'_>| {
            fd.revents().is_some_and(|r| {
                r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            })
        };
        let master_ready = ready(&fds[0]);
        let stdin_ready = fds.get(1).is_some_and(ready);
        drop(fds);
        if master_ready {
            match nix::unistd::read(master, &mut buffer) {
                // EIO: every holder of the other side closed it.
                Ok(0) | Err(nix::Error::EIO) => return Ok(()),
                Ok(n) => write_all(stdout.as_fd(), &buffer[..n])?,
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
        if stdin_ready {
            match nix::unistd::read(stdin.as_fd(), &mut buffer) {
                Ok(0) => stdin_open = false,
                Ok(n) => write_all(master.as_fd(), &buffer[..n])?,
                Err(nix::Error::EINTR) => {}
                Err(_) => stdin_open = false,
            }
        }
    }
}
