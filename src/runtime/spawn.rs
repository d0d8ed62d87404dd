//! Host side of starting a container. Everything is prepared before the
//! clone; the child only rearranges descriptors, restores the signal mask and
//! re-executes supd as the init stage (async-signal-safe calls only).

use super::net::{names::NameFiles, NetPlan};
use super::userns::IdMaps;
use super::{
    Dirs, Spec, ERROR_HOLD_FD, EXIT_FD, INIT_STAGE_ARG, OUTPUT_HOLD_FD, REPORT_FD, SPEC_FD,
};
use crate::unit::{NetworkMode, Unit};
use nix::fcntl::OFlag;
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::unistd::Pid;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("prepare {path}: {source}")]
    Prepare { path: PathBuf, source: io::Error },
    #[error("cgroup placement: {0}")]
    Placement(String),
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: io::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> SpawnError {
    move |e| SpawnError::Sys {
        what,
        source: e.into(),
    }
}

/// A container whose init stage is starting.
#[derive(Debug)]
pub struct Spawned {
    /// Host PID of the container's PID 1.
    pub pid: Pid,
    /// Race-free handle for signalling it (the PID could be reused once
    /// reaped; the pidfd cannot).
    pub pidfd: OwnedFd,
    /// Read end of the setup report pipe: EOF without data means the
    /// workload was executed, a JSON line is a `SetupError`.
    pub report: File,
    /// Read end of the workload's stdout.
    pub output: File,
    /// Read end of its stderr.
    pub error: File,
    /// `boot`: the container's /dev/console.
    pub console: Option<super::console::Console>,
}

/// Secrets are read at each start, by supd: a user namespace's root may
/// not be able to read a host file that only root may read.
fn read_secrets(unit: &Unit) -> Result<Vec<super::inputs::SecretFile>, SpawnError> {
    use crate::files::{read_regular, Links, MAX_FILE_BYTES};
    unit.secrets
        .iter()
        .map(|secret| {
            let content =
                read_regular(&secret.source, Links::Follow, MAX_FILE_BYTES).map_err(|e| {
                    SpawnError::Prepare {
                        path: secret.source.clone(),
                        source: io::Error::other(e.to_string()),
                    }
                })?;
            Ok(super::inputs::SecretFile {
                target: secret.target.clone(),
                content,
            })
        })
        .collect()
}

/// Clones the container's first process, directly into the cgroup
/// `into_cgroup` where the kernel can (cgroup v2). `place` runs in the
/// parent while the child waits, told whether the child is in its cgroup
/// already, so that it is there before it executes anything.
pub fn spawn(
    unit: &Unit,
    network: Option<NetPlan>,
    names: NameFiles,
    id_maps: Option<&IdMaps>,
    host: &SpawnHost<'_>,
    into_cgroup: Option<&File>,
    place: impl FnOnce(Pid, bool) -> Result<(), String>,
) -> Result<Spawned, SpawnError> {
    let (dirs, exe) = (host.dirs, host.exe);
    let staging = dirs.staging(&unit.name);
    fs::create_dir_all(&staging).map_err(|source| SpawnError::Prepare {
        path: staging.clone(),
        source,
    })?;
    let console = match unit.boot {
        true => Some(
            super::console::open(id_maps.map(IdMaps::root_on_host)).map_err(|source| {
                SpawnError::Prepare {
                    path: "/dev/ptmx".into(),
                    source,
                }
            })?,
        ),
        false => None,
    };
    let spec = Spec {
        console: console.as_ref().map(|c| c.path.clone()),
        unit: unit.clone(),
        staging,
        state_dir: dirs.unit_state(&unit.name),
        network,
        hosts_file: names.hosts_file,
        resolv_conf: names.resolv_conf,
        secrets: read_secrets(unit)?,
    };
    if let (Some(maps), None) = (id_maps, unit.resources.storage_size) {
        prepare_state_dir(&spec.state_dir, maps)?;
    }
    let spec_fd = write_spec(&spec)?;
    let (report_read, report_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("report pipe"))?;
    let (output_read, output_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("output pipe"))?;
    size_output_pipe(&output_read, host.output_pipe_size);
    let (error_read, error_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("error pipe"))?;
    size_output_pipe(&error_read, host.output_pipe_size);
    let exit_record = open_exit_record(&dirs.exit_record(&unit.name))?;
    let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("go pipe"))?;
    // supd's ends only: its event loop must never block on a read.
    for (end, what) in [
        (&report_read, "report pipe"),
        (&output_read, "output pipe"),
        (&error_read, "error pipe"),
    ] {
        nix::fcntl::fcntl(end, nix::fcntl::FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(sys(what))?;
    }
    let devnull = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|source| SpawnError::Prepare {
            path: "/dev/null".into(),
            source,
        })?;
    let argv0 = CString::new("supd").unwrap_or_default();
    let argv1 = CString::new(INIT_STAGE_ARG).unwrap_or_default();
    // Not read by the init stage: it names the container in `ps` output.
    let argv2 = CString::new(spec.staging.as_os_str().as_encoded_bytes()).unwrap_or_default();
    let argv = [
        argv0.as_ptr(),
        argv1.as_ptr(),
        argv2.as_ptr(),
        std::ptr::null(),
    ];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    let child_fds = ChildFds {
        stdin: devnull.as_raw_fd(),
        output: output_write.as_raw_fd(),
        error: error_write.as_raw_fd(),
        output_hold: output_read.as_raw_fd(),
        error_hold: error_read.as_raw_fd(),
        exit_record: exit_record.as_raw_fd(),
        spec: spec_fd.as_raw_fd(),
        report: report_write.as_raw_fd(),
        exe: exe.as_raw_fd(),
        go: go_read.as_raw_fd(),
        go_write: go_write.as_raw_fd(),
        user_namespace: id_maps.is_some(),
    };

    // The cgroup namespace is entered by the init stage, after placement, so
    // that its root is the container's own cgroup.
    let mut flags = libc::CLONE_NEWPID
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_PIDFD;
    if unit.network.mode != NetworkMode::Host {
        flags |= libc::CLONE_NEWNET;
    }
    if id_maps.is_some() {
        flags |= libc::CLONE_NEWUSER;
    }
    let (ret, pidfd, placed) = clone_container(flags, into_cgroup.map(AsRawFd::as_raw_fd));
    if ret == 0 {
        exec_init_stage(&child_fds, &argv, &envp);
    }
    if ret < 0 {
        return Err(SpawnError::Sys {
            what: "clone",
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: CLONE_PIDFD stored a new descriptor that only we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let pid = Pid::from_raw(ret as libc::pid_t);
    drop(go_read);
    if let Err(why) = place(pid, placed) {
        // The child never executes anything; SIGCHLD reaps it.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        return Err(SpawnError::Placement(why));
    }
    // Closing the write end is the child's signal to go on.
    drop(go_write);
    Ok(Spawned {
        pid,
        pidfd,
        report: File::from(report_read),
        output: File::from(output_read),
        error: File::from(error_read),
        console,
    })
}

/// `struct clone_args` of clone3(2), up to the `cgroup` field.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A fork-like clone with `flags` and a pidfd; with `into_cgroup`, clone3
/// starts the child in that cgroup, which spares a migration (and the RCU
/// grace period the first migration after a quiet spell waits for).
/// Returns what clone returns (0 in the child), the pidfd, and whether the
/// child is in its cgroup. Kernels before 5.7 get the plain clone.
fn clone_container(
    flags: libc::c_int,
    into_cgroup: Option<RawFd>,
) -> (libc::c_long, libc::c_int, bool) {
    let mut pidfd: libc::c_int = -1;
    if let Some(cgroup) = into_cgroup {
        let args = CloneArgs {
            flags: flags as u64 | CLONE_INTO_CGROUP,
            pidfd: &mut pidfd as *mut libc::c_int as u64,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cgroup as u64,
            ..CloneArgs::default()
        };
        // SAFETY: fork-like (no CLONE_VM, no stack): the child is a copy of
        // this thread alone and only runs `exec_init_stage`, whose calls are
        // async-signal-safe, so a lock another thread (an image import)
        // held at the clone is never waited for. `args` and `pidfd` outlive
        // the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        let unsupported = matches!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
        );
        if ret >= 0 || !unsupported {
            return (ret, pidfd, true);
        }
    }
    // SAFETY: as above; clone(2) stores the pidfd through its parent_tid
    // argument when CLONE_PIDFD is set.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            &mut pidfd as *mut libc::c_int,
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    (ret, pidfd, false)
}

fn write_spec(spec: &Spec) -> Result<OwnedFd, SpawnError> {
    let fd = memfd_create("supd-spec", MFdFlags::MFD_CLOEXEC).map_err(sys("memfd"))?;
    let mut file = File::from(fd);
    let text = serde_json::to_vec(spec).map_err(|e| SpawnError::Sys {
        what: "spec",
        source: io::Error::other(e),
    })?;
    file.write_all(&text)
        .and_then(|()| file.rewind())
        .map_err(|source| SpawnError::Sys {
            what: "spec",
            source,
        })?;
    Ok(OwnedFd::from(file))
}

struct ChildFds {
    stdin: RawFd,
    output: RawFd,
    error: RawFd,
    output_hold: RawFd,
    error_hold: RawFd,
    exit_record: RawFd,
    spec: RawFd,
    report: RawFd,
    exe: RawFd,
    /// Read end of the go pipe: EOF once the parent placed the child.
    go: RawFd,
    /// The child's copy of the write end, closed first or EOF never comes.
    go_write: RawFd,
    /// The child is in a new user namespace whose maps the parent wrote.
    user_namespace: bool,
}

/// What the host side of every spawn shares.
pub struct SpawnHost<'a> {
    pub dirs: &'a Dirs,
    /// The supd binary the init stage runs from.
    pub exe: &'a File,
    /// See `output_pipe_size`.
    pub output_pipe_size: usize,
}

/// The output pipe's buffer: what a workload can write while no supd reads
/// before its writes block. As large as pipe-max-size allows, as long as
/// all of supd's pipes stay within half of uid 0's pipe-user-pages-soft:
/// past that budget the kernel gives new pipes of every uid-0 process
/// without CAP_SYS_ADMIN (the workloads of containers without a user
/// namespace) two pages only. `containers` counts the one to start.
pub fn output_pipe_size(containers: usize) -> usize {
    let read = |name: &str| {
        crate::files::read_text(
            std::path::Path::new("/proc/sys/fs").join(name).as_path(),
            crate::files::Links::Follow,
            64,
        )
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
    };
    pipe_size_within(
        containers,
        read("pipe-max-size").unwrap_or(1 << 20),
        read("pipe-user-pages-soft").unwrap_or(16384),
    )
}

/// The pure part of `output_pipe_size`: a power of two between the
/// default 64 KiB and `max`.
fn pipe_size_within(containers: usize, max: usize, soft_pages: usize) -> usize {
    const DEFAULT: usize = 64 << 10;
    let budget = match soft_pages {
        // 0: no soft limit.
        0 => max,
        pages => pages.saturating_mul(4096) / 2 / containers.max(1),
    };
    let size = budget.min(max).max(DEFAULT);
    // Round down to a power of two (the kernel would round up).
    1usize << (usize::BITS - 1 - size.leading_zeros())
}

fn size_output_pipe(read_end: &OwnedFd, size: usize) {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    if let Err(e) = nix::fcntl::fcntl(read_end, nix::fcntl::FcntlArg::F_SETPIPE_SZ(size)) {
        // The default 64 KiB still works; it only shortens the gap.
        log::debug!("output pipe size {size}: {e}");
    }
}

/// Created empty for each run: a later supd reads the exit code the init
/// writes there, or finds it empty if the init was killed.
fn open_exit_record(path: &std::path::Path) -> Result<fs::File, SpawnError> {
    let prepare = |source| SpawnError::Prepare {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(prepare)?;
    }
    fs::File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(prepare)
}

/// With a user namespace the overlay upper and work directories in the
/// state dir must belong to the container's root, who creates files there.
fn prepare_state_dir(dir: &std::path::Path, maps: &IdMaps) -> Result<(), SpawnError> {
    let (uid, gid) = maps.root_on_host();
    for sub in ["upper", "work"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path)
            .and_then(|()| std::os::unix::fs::chown(&path, Some(uid), Some(gid)))
            .map_err(|source| SpawnError::Prepare { path, source })?;
    }
    Ok(())
}

/// Runs in the cloned child. Moves every descriptor above the target range
/// first, so that dup2 onto 0-4 never clobbers a source.
fn exec_init_stage(
    fds: &ChildFds,
    argv: &[*const libc::c_char; 4],
    envp: &[*const libc::c_char; 1],
) -> ! {
    const FLOOR: RawFd = 10;
    // SAFETY: only async-signal-safe calls on descriptors inherited from the
    // parent; on any failure the child exits at once.
    unsafe {
        libc::close(fds.go_write);
        let mut byte = 0u8;
        while libc::read(fds.go, (&mut byte as *mut u8).cast(), 1) < 0
            && *libc::__errno_location() == libc::EINTR
        {}
        // In a new user namespace the maps are written now: become its root
        // before exec, or exec would drop every capability.
        if fds.user_namespace
            && (libc::syscall(libc::SYS_setresgid, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_setresuid, 0, 0, 0) != 0
                || libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) != 0)
        {
            libc::_exit(126);
        }
        let high = |fd: RawFd| libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, FLOOR);
        let moved = [
            high(fds.stdin),
            high(fds.output),
            high(fds.error),
            high(fds.spec),
            high(fds.report),
            high(fds.output_hold),
            high(fds.exit_record),
            high(fds.error_hold),
        ];
        let targets = [
            0,
            1,
            2,
            SPEC_FD,
            REPORT_FD,
            OUTPUT_HOLD_FD,
            EXIT_FD,
            ERROR_HOLD_FD,
        ];
        // The binary's descriptor may sit on one of the targets.
        let exe = high(fds.exe);
        for (source, target) in moved.iter().zip(targets) {
            if *source < 0 || libc::dup2(*source, target) < 0 {
                libc::_exit(126);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // supd ignores SIGPIPE; an ignored disposition would survive exec.
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::fexecve(exe, argv.as_ptr(), envp.as_ptr());
        let message = b"{\"step\":\"exec-init-stage\",\"path\":null,\"message\":\"cannot re-execute supd\"}\n";
        libc::write(REPORT_FD, message.as_ptr().cast(), message.len());
        libc::_exit(126);
    }
}

#[cfg(test)]
mod tests {
    use super::pipe_size_within;

    #[test]
    fn output_pipes_stay_within_half_the_soft_budget() {
        let mib = 1 << 20;
        assert_eq!(pipe_size_within(1, mib, 16384), mib);
        assert_eq!(pipe_size_within(32, mib, 16384), mib);
        assert_eq!(pipe_size_within(33, mib, 16384), 512 << 10);
        assert_eq!(pipe_size_within(100, mib, 16384), 256 << 10);
        assert_eq!(pipe_size_within(100_000, mib, 16384), 64 << 10);
        assert_eq!(pipe_size_within(100, mib, 0), mib, "no soft limit");
        assert_eq!(pipe_size_within(1, 4 << 20, 16384), 4 << 20);
    }
}
