//! `supctl exec`: run a command inside a running container, as nsenter
//! does, and as the container's workload runs: joined to its cgroup and
//! every one of its namespaces, chrooted to its root, with its user,
//! capabilities, seccomp filter and environment.

use super::workload::{compile_seccomp, exec_in_container};
use crate::unit::Unit;
use nix::sched::CloneFlags;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("{step} {}: {error}", .path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("{step}: {error}")]
    Sys {
        step: &'static str,
        error: nix::Error,
    },
    #[error("{0}")]
    Setup(#[from] super::SetupError),
}

/// The namespaces to join, the user namespace last: until then host root
/// may join any of them, including those a container with a user namespace
/// shares with the host (`network: host`), which its own root could not.
const NAMESPACES: [(&str, &str, CloneFlags); 7] = [
    ("ipc", "setns ipc", CloneFlags::CLONE_NEWIPC),
    ("uts", "setns uts", CloneFlags::CLONE_NEWUTS),
    ("net", "setns net", CloneFlags::CLONE_NEWNET),
    ("pid", "setns pid", CloneFlags::CLONE_NEWPID),
    ("cgroup", "setns cgroup", CloneFlags::CLONE_NEWCGROUP),
    ("mnt", "setns mnt", CloneFlags::CLONE_NEWNS),
    ("user", "setns user", CloneFlags::CLONE_NEWUSER),
];

/// A namespace of the container to join, and the step name if that fails.
struct Namespace {
    file: File,
    flag: CloneFlags,
    step: &'static str,
}

fn io_step(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EnterError {
    let path = path.to_path_buf();
    move |error| EnterError::Io { step, path, error }
}

fn sys_step(step: &'static str) -> impl FnOnce(nix::Error) -> EnterError {
    move |error| EnterError::Sys { step, error }
}

/// The container's namespaces that differ from ours (a `host` network
/// shares the host's; joining one's own user namespace is an error).
fn open_namespaces(pid: i32) -> Result<Vec<Namespace>, EnterError> {
    let mut namespaces = Vec::new();
    for (name, step, flag) in NAMESPACES {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let ours = PathBuf::from(format!("/proc/self/ns/{name}"));
        let file = File::open(&theirs).map_err(io_step("open namespace", &theirs))?;
        let their_id = file.metadata().map_err(io_step("stat", &theirs))?;
        let our_id = std::fs::metadata(&ours).map_err(io_step("stat", &ours))?;
        if (their_id.dev(), their_id.ino()) != (our_id.dev(), our_id.ino()) {
            namespaces.push(Namespace { file, flag, step });
        }
    }
    Ok(namespaces)
}

/// Enters the container whose init is `pid` and runs `argv` in it; returns
/// the command's exit status as a shell reports it (128+N for signal N).
/// Must be called from a single-threaded process: it forks, and setns to a
/// mount namespace refuses threaded callers.
/// With `tty`, the command gets a terminal of the container's devpts.
pub fn run(
    pid: i32,
    unit: &Unit,
    cgroups: &[PathBuf],
    argv: &[String],
    tty: bool,
) -> Result<i32, EnterError> {
    let seccomp = compile_seccomp(unit)?;
    let namespaces = open_namespaces(pid)?;
    let root_path = PathBuf::from(format!("/proc/{pid}/root"));
    let root = File::open(&root_path).map_err(io_step("open root", &root_path))?;
    let own_pid = std::process::id().to_string();
    for dir in cgroups {
        join_cgroup(dir, pid, &own_pid)?;
    }
    for namespace in &namespaces {
        nix::sched::setns(namespace.file.as_fd(), namespace.flag)
            .map_err(sys_step(namespace.step))?;
    }
    nix::unistd::fchdir(root.as_fd()).map_err(sys_step("chdir to the container root"))?;
    nix::unistd::chroot(".").map_err(sys_step("chroot"))?;
    drop(root);
    let terminal = match tty {
        true => {
            Some(super::exec_tty::open().map_err(sys_step("open a terminal in the container"))?)
        }
        false => None,
    };
    // SAFETY: supctl is single-threaded, so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(sys_step("fork"))? {
        ForkResult::Child => {
            if let Some(terminal) = &terminal {
                if let Err(e) = super::exec_tty::become_controlling(&terminal.slave) {
                    eprintln!("supctl exec: terminal: {e}");
                    std::process::exit(126);
                }
            }
            drop(terminal);
            let error = exec_in_container(unit, argv, seccomp);
            eprintln!("supctl exec: {error}");
            // Docker's codes: 126 cannot execute, 127 not found.
            let code = match error.kind {
                super::setup::FailureKind::NotFound => 127,
                _ => 126,
            };
            std::process::exit(code);
        }
        ForkResult::Parent { child } => {
            if let Some(terminal) = terminal {
                drop(terminal.slave);
                let relayed = super::exec_tty::relay(&terminal.master);
                let code = wait_for(child)?;
                relayed.map_err(sys_step("relay the terminal"))?;
                return Ok(code);
            }
            wait_for(child)
        }
    }
}

/// Into the container's cgroup. On cgroup v2 a cgroup whose workload
/// (a booted systemd) enabled controllers for its children may hold no
/// process (EBUSY): then, as runc and crun do, into the cgroup of the
/// container's PID 1, a leaf (systemd's init.scope).
fn join_cgroup(dir: &Path, pid: i32, own_pid: &str) -> Result<(), EnterError> {
    let procs = dir.join("cgroup.procs");
    match std::fs::write(&procs, own_pid) {
        Err(e)
            if e.raw_os_error() == Some(libc::EBUSY) && dir.join("cgroup.controllers").exists() =>
        {
            let status = PathBuf::from(format!("/proc/{pid}/cgroup"));
            let text =
                std::fs::read_to_string(&status).map_err(io_step("read cgroup of", &status))?;
            let own = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| p.trim_start_matches('/'))
                .ok_or_else(|| {
                    io_step("read cgroup of", &status)(std::io::ErrorKind::NotFound.into())
                })?;
            // The hierarchy's mount: `dir` minus the container's path in it.
            let mount = Path::new("/sys/fs/cgroup");
            let leaf = mount.join(own).join("cgroup.procs");
            if !leaf.starts_with(dir) {
                return Err(io_step("join cgroup", &procs)(e));
            }
            std::fs::write(&leaf, own_pid).map_err(io_step("join cgroup", &leaf))
        }
        other => other.map_err(io_step("join cgroup", &procs)),
    }
}

/// Waits for the command, ignoring the terminal's SIGINT and SIGQUIT (they
/// reach the command too, which decides), as system(3) does.
fn wait_for(child: Pid) -> Result<i32, EnterError> {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGINT, Signal::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { signal(sig, SigHandler::SigIgn) }.map_err(sys_step("ignore signals"))?;
    }
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(sys_step("wait")(e)),
        }
    }
}
