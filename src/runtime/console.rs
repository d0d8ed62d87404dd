//! A system container's /dev/console: a pseudo-terminal made on the host,
//! as systemd-nspawn does. Its slave is bind-mounted at the container's
//! /dev/console (systemd writes its status there, and journald too when
//! told); supd reads the master into the unit's log.

use nix::fcntl::OFlag;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

#[derive(Debug)]
pub struct Console {
    /// Non-blocking; supd reads the container's console output from it.
    pub master: File,
    /// Held by supd while the container runs, so that the master does not
    /// hang up before the container opens its console, or between two
    /// openers.
    pub slave: File,
    /// The slave in the host's devpts, which the init stage binds.
    pub path: PathBuf,
}

/// `owner`: the host ids of the container's root under a user namespace,
/// who must be able to open the slave.
pub fn open(owner: Option<(u32, u32)>) -> io::Result<Console> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    nix::pty::grantpt(&master)?;
    nix::pty::unlockpt(&master)?;
    let path = PathBuf::from(nix::pty::ptsname_r(&master)?);
    let slave = File::options()
        .read(true)
        .write(true)
        // supd must never get a controlling terminal from it.
        .custom_flags(libc::O_NOCTTY)
        .open(&path)?;
    // No line discipline on output: the log gets what was written (no
    // \n -> \r\n), and nothing is echoed back.
    let mut termios = nix::sys::termios::tcgetattr(slave.as_fd())?;
    nix::sys::termios::cfmakeraw(&mut termios);
    nix::sys::termios::tcsetattr(slave.as_fd(), nix::sys::termios::SetArg::TCSANOW, &termios)?;
    if let Some((uid, gid)) = owner {
        nix::unistd::fchown(
            &slave,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )?;
    }
    // SAFETY: the descriptor was just opened by posix_openpt and is owned
    // by nothing else once taken out of the PtyMaster.
    let master = unsafe { File::from_raw_fd(master.into_raw_fd()) };
    nix::fcntl::fcntl(
        master.as_fd(),
        nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK),
    )?;
    Ok(Console {
        master,
        slave,
        path,
    })
}
