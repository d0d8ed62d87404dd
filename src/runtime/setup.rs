//! The init stage: a fresh exec of supd inside the new namespaces that turns
//! them into a container, step by named step, then runs the workload (under
//! the built-in init, or as PID 1 itself). Any failure is written to the
//! report pipe as one JSON line; a successful exec closes the pipe instead.

use super::net::{self, NetPlan};
use super::user::Credentials;
use super::{rootfs, security, user, REPORT_FD, SPEC_FD};
use crate::unit::{NetworkMode, Unit};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::{ForkResult, Gid, Uid};
use serde::{Deserialize, Serialize};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything the init stage needs, passed from supd through a memfd.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub unit: Unit,
    /// Empty host directory where the root is assembled on a private tmpfs.
    pub staging: PathBuf,
    /// Persistent per-unit directory (overlay upper for `volatile: state`).
    pub state_dir: PathBuf,
    /// The resolved network, unless the container shares the host's.
    pub network: Option<NetPlan>,
}

/// A failed setup step, as supd reports it: "mount /data: No such file...".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}{}: {message}", .path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
pub struct SetupError {
    pub step: String,
    pub path: Option<PathBuf>,
    pub message: String,
}

impl SetupError {
    pub fn new(step: &str, path: Option<impl AsRef<Path>>, error: io::Error) -> Self {
        Self::message(step, path, error.to_string())
    }

    pub fn message(step: &str, path: Option<impl AsRef<Path>>, message: impl Into<String>) -> Self {
        SetupError {
            step: step.to_string(),
            path: path.map(|p| p.as_ref().to_path_buf()),
            message: message.into(),
        }
    }
}

/// How long the init lets the workload's leftover processes react to SIGTERM
/// after the workload itself exited.
const LEFTOVER_GRACE: Duration = Duration::from_secs(1);

/// Exit codes of the init stage when it cannot run the workload (as Docker).
const EXIT_SETUP_FAILED: i32 = 125;
const EXIT_EXEC_FAILED: i32 = 127;

/// Entry point of `supd __init-stage`. Never returns.
pub fn run_init_stage() -> ! {
    // Signals stay blocked from here on: the built-in init collects them with
    // sigwaitinfo, and the workload unblocks them just before exec. A SIGTERM
    // that arrives during setup is thus delivered, not lost.
    // SAFETY: supd's spawn placed the report pipe's write end at REPORT_FD
    // and nothing else in this process owns it.
    let mut report = unsafe { File::from_raw_fd(REPORT_FD) };
    let blocked = nix::sys::signal::sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&crate::init::forwarded_signals()),
        None,
    );
    if let Err(e) = blocked {
        fail(
            &mut report,
            &SetupError::new("signal mask", None::<&Path>, e.into()),
            EXIT_SETUP_FAILED,
        );
    }
    // Closed by the workload's exec, so that supd sees EOF on success.
    let cloexec = nix::fcntl::fcntl(
        &report,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    if let Err(e) = cloexec {
        fail(
            &mut report,
            &SetupError::new("report pipe", None::<&Path>, e.into()),
            EXIT_SETUP_FAILED,
        );
    }
    let (spec, credentials) = match read_spec().and_then(|spec| {
        let prepared = prepare(&spec)?;
        Ok((spec, prepared))
    }) {
        Ok(ready) => ready,
        Err(error) => fail(&mut report, &error, EXIT_SETUP_FAILED),
    };
    if !spec.unit.init {
        let error = exec_workload(&spec.unit, &spec.unit.exec, &credentials);
        fail(&mut report, &error, EXIT_EXEC_FAILED);
    }
    // SAFETY: this process is single-threaded (the init stage never starts
    // threads), so the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let error = exec_workload(&spec.unit, &spec.unit.exec, &credentials);
            fail(&mut report, &error, EXIT_EXEC_FAILED);
        }
        Ok(ForkResult::Parent { child }) => {
            if let Err(error) = security::confine_init(&credentials.seccomp) {
                // Nothing may run beside an unconfined init.
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                fail(&mut report, &error, EXIT_SETUP_FAILED);
            }
            drop(report);
            drop((spec, credentials));
            crate::init::release_setup_memory();
            let code = crate::init::run(child, LEFTOVER_GRACE);
            std::process::exit(code);
        }
        Err(e) => fail(
            &mut report,
            &SetupError::new("fork", None::<&Path>, e.into()),
            EXIT_SETUP_FAILED,
        ),
    }
}

fn fail(report: &mut File, error: &SetupError, code: i32) -> ! {
    let mut line = serde_json::to_vec(error).unwrap_or_else(|_| b"{}".to_vec());
    line.push(b'\n');
    // If supd is gone there is nobody to tell; the exit code still says it.
    let _ = report.write_all(&line);
    std::process::exit(code);
}

fn read_spec() -> Result<Spec, SetupError> {
    // SAFETY: supd's spawn placed the spec memfd at SPEC_FD; we take it over.
    let mut file = unsafe { File::from_raw_fd(SPEC_FD) };
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|e| SetupError::new("spec", None::<&Path>, e))?;
    serde_json::from_slice(&text)
        .map_err(|e| SetupError::message("spec", None::<&Path>, e.to_string()))
}

/// The container setup, one named step after the other.
/// What the workload needs after setup: its user, and its seccomp filter,
/// compiled while host paths (a profile file) are still reachable.
struct Prepared {
    credentials: Credentials,
    seccomp: Vec<seccompiler::BpfProgram>,
}

/// The unit's seccomp filter; a profile file is read from the host, so this
/// runs before the root changes.
pub fn compile_seccomp(unit: &Unit) -> Result<Vec<seccompiler::BpfProgram>, SetupError> {
    security::seccomp::programs(&unit.security.seccomp)
        .map_err(|e| SetupError::message("seccomp", None::<&Path>, e))
}

/// Runs `argv` as the unit's workload would run: its user and groups,
/// capabilities, no_new_privs, seccomp, directory and environment. For
/// `supctl exec`, inside the container's namespaces and root. Returns only
/// on failure.
pub fn exec_in_container(
    unit: &Unit,
    argv: &[String],
    seccomp: Vec<seccompiler::BpfProgram>,
) -> SetupError {
    match user::resolve(unit.user.as_ref()) {
        Ok(credentials) => exec_workload(
            unit,
            argv,
            &Prepared {
                credentials,
                seccomp,
            },
        ),
        Err(error) => error,
    }
}

fn prepare(spec: &Spec) -> Result<Prepared, SetupError> {
    let unit = &spec.unit;
    let seccomp = compile_seccomp(unit)?;
    // supd placed this process in the container's cgroup before it ran: a
    // cgroup namespace now makes that cgroup the container's root.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| SetupError::new("cgroupns", None::<&Path>, e.into()))?;
    if let Some(adj) = unit.resources.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| SetupError::new("oom_score_adj", Some("/proc/self/oom_score_adj"), e))?;
    }
    rootfs::make_private()?;
    let root = rootfs::assemble(spec)?;
    rootfs::mount_volumes(&root, &unit.mounts)?;
    rootfs::mount_proc_sys(&root)?;
    rootfs::mount_cgroupfs(&root)?;
    rootfs::mount_dev(&root)?;
    if let Some(plan) = spec.network.as_ref().filter(|p| !p.config.dns.is_empty()) {
        rootfs::mount_resolv_conf(&root, &spec.staging, &plan.config.dns)?;
    }
    if unit.readonly_rootfs {
        rootfs::make_readonly(&root)?;
    }
    rootfs::pivot(&root)?;
    nix::unistd::sethostname(&unit.hostname)
        .map_err(|e| SetupError::new("hostname", None::<&Path>, e.into()))?;
    if unit.network.mode != NetworkMode::Host {
        net::setup_container(spec.network.as_ref())
            .map_err(|e| SetupError::message("network", None::<&Path>, e.to_string()))?;
    }
    write_sysctls(&unit.sysctls)?;
    rootfs::make_proc_sys_readonly()?;
    rootfs::mask_paths()?;
    Ok(Prepared {
        credentials: user::resolve(unit.user.as_ref())?,
        seccomp,
    })
}

/// Writes namespaced sysctls through the container's own /proc: network
/// keys land in its network namespace, IPC keys in its IPC namespace.
fn write_sysctls(sysctls: &std::collections::BTreeMap<String, String>) -> Result<(), SetupError> {
    for (key, value) in sysctls {
        let path = Path::new("/proc/sys").join(key.replace('.', "/"));
        if !path.exists() {
            return Err(SetupError::message(
                &format!("sysctl {key}"),
                Some(&path),
                "no such key in the container's namespaces",
            ));
        }
        std::fs::write(&path, value)
            .map_err(|e| SetupError::new(&format!("sysctl {key}"), Some(&path), e))?;
    }
    Ok(())
}

/// Switches to the workload's user and directory and executes it; returns
/// only on failure.
fn exec_workload(unit: &Unit, argv: &[String], prepared: &Prepared) -> SetupError {
    let credentials = &prepared.credentials;
    let user_step = |e: nix::Error| SetupError::new("user", None::<&Path>, e.into());
    let groups: Vec<Gid> = credentials
        .groups
        .iter()
        .map(|&g| Gid::from_raw(g))
        .collect();
    let gid = Gid::from_raw(credentials.gid);
    let uid = Uid::from_raw(credentials.uid);
    if let Err(error) =
        security::before_user_switch(&unit.security, &prepared.seccomp, credentials.uid)
    {
        return error;
    }
    if let Err(e) = nix::unistd::setgroups(&groups)
        .and_then(|()| nix::unistd::setresgid(gid, gid, gid))
        .and_then(|()| nix::unistd::setresuid(uid, uid, uid))
    {
        return user_step(e);
    }
    if let Err(error) = security::after_user_switch(&unit.security, credentials.uid) {
        return error;
    }
    if let Err(e) = nix::unistd::chdir(&unit.workdir) {
        return SetupError::new("workdir", Some(&unit.workdir), e.into());
    }
    let env = environment(unit, credentials);
    let Some(name) = argv.first() else {
        return SetupError::message("exec", None::<&Path>, "empty command");
    };
    let program = match find_program(name, &env) {
        Ok(path) => path,
        Err(error) => return error,
    };
    let to_c = |s: &[u8]| CString::new(s).map_err(|_| ());
    let argv: Result<Vec<CString>, ()> = argv.iter().map(|a| to_c(a.as_bytes())).collect();
    let envp: Result<Vec<CString>, ()> = env
        .iter()
        .map(|(k, v)| to_c(format!("{k}={v}").as_bytes()))
        .collect();
    let (Ok(argv), Ok(envp), Ok(path)) = (argv, envp, to_c(program.as_os_str().as_bytes())) else {
        return SetupError::message(
            "exec",
            Some(&program),
            "argument or environment contains NUL",
        );
    };
    if let Err(e) =
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
    {
        return SetupError::new("signal mask", None::<&Path>, e.into());
    }
    let Err(error) = nix::unistd::execve(&path, &argv, &envp);
    SetupError::new("exec", Some(&program), error.into())
}

fn environment(unit: &Unit, credentials: &Credentials) -> Vec<(String, String)> {
    let mut env: std::collections::BTreeMap<String, String> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOSTNAME", unit.hostname.as_str()),
        ("HOME", credentials.home.as_str()),
        ("container", "supd"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(unit.env.clone());
    env.into_iter().collect()
}

/// Like execvp: a name without '/' is looked up in the container's PATH.
fn find_program(name: &str, env: &[(String, String)]) -> Result<PathBuf, SetupError> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map_or("", |(_, v)| v.as_str());
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(OsStr::new(name)))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            SetupError::message("exec", Some(name), format!("not found in PATH ({path})"))
        })
}
