//! The init stage: a fresh exec of supd inside the new namespaces that turns
//! them into a container, step by named step, then runs the workload (under
//! the built-in init, or as PID 1 itself). Any failure is written to the
//! report pipe as one JSON line; a successful exec closes the pipe instead.

use super::net::{self, NetPlan};
use super::workload::{compile_seccomp, exec_workload, Prepared};
use super::{rootfs, security, user, ERROR_HOLD_FD, EXIT_FD, OUTPUT_HOLD_FD, REPORT_FD, SPEC_FD};
use crate::unit::{NetworkMode, Unit};
use nix::sys::signal::SigmaskHow;
use nix::unistd::ForkResult;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
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
    /// A host file supd keeps current, mounted over /etc/hosts.
    #[serde(default)]
    pub hosts_file: Option<PathBuf>,
    /// Written over /etc/resolv.conf.
    #[serde(default)]
    pub resolv_conf: Option<String>,
    /// The unit's secrets, read by supd.
    #[serde(default)]
    pub secrets: Vec<super::inputs::SecretFile>,
    /// `boot`: the host pty slave that becomes /dev/console.
    #[serde(default)]
    pub console: Option<PathBuf>,
}

/// A failed setup step, as supd reports it: "mount /data: No such file...".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{step}{}: {message}", .path.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default())]
pub struct SetupError {
    pub step: String,
    pub path: Option<PathBuf>,
    pub message: String,
    #[serde(default)]
    pub kind: FailureKind,
}

/// What kind of failure, for exit codes: Docker's 126 (cannot execute) and
/// 127 (not found) after the exec step, 125 for the rest of the setup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    #[default]
    Setup,
    NotFound,
    NotExecutable,
}

impl SetupError {
    pub fn with_kind(mut self, kind: FailureKind) -> Self {
        self.kind = kind;
        self
    }

    /// The exit code a command that failed this way reports.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            FailureKind::Setup => EXIT_SETUP_FAILED,
            FailureKind::NotFound => 127,
            FailureKind::NotExecutable => 126,
        }
    }

    pub fn new(step: &str, path: Option<impl AsRef<Path>>, error: io::Error) -> Self {
        Self::message(step, path, error.to_string())
    }

    pub fn message(step: &str, path: Option<impl AsRef<Path>>, message: impl Into<String>) -> Self {
        SetupError {
            step: step.to_string(),
            path: path.map(|p| p.as_ref().to_path_buf()),
            message: message.into(),
            kind: FailureKind::Setup,
        }
    }
}

/// How long the init lets the workload's leftover processes react to SIGTERM
/// after the workload itself exited.
const LEFTOVER_GRACE: Duration = Duration::from_secs(1);

/// Exit codes of the init stage when it cannot run the workload (as Docker).
const EXIT_SETUP_FAILED: i32 = 125;

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
    // Closed by the workload's exec: supd sees EOF on the report when the
    // workload runs, and only the init holds the output pipe and the exit
    // record.
    for (fd, what) in [
        (REPORT_FD, "report pipe"),
        (OUTPUT_HOLD_FD, "output pipe"),
        (ERROR_HOLD_FD, "error pipe"),
        (EXIT_FD, "exit record"),
    ] {
        // SAFETY: F_SETFD on a descriptor number supd's spawn set up; no
        // memory is passed.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
            let error = io::Error::last_os_error();
            fail(
                &mut report,
                &SetupError::new(what, None::<&Path>, error),
                EXIT_SETUP_FAILED,
            );
        }
    }
    let (spec, credentials) = match read_spec().and_then(|mut spec| {
        let prepared = prepare(&mut spec)?;
        Ok((spec, prepared))
    }) {
        Ok(ready) => ready,
        Err(error) => fail(&mut report, &error, EXIT_SETUP_FAILED),
    };
    if !spec.unit.init {
        let error = exec_workload(&spec.unit, &spec.unit.exec, &credentials);
        fail(&mut report, &error, error.exit_code());
    }
    // SAFETY: this process is single-threaded (the init stage never starts
    // threads), so the child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let error = exec_workload(&spec.unit, &spec.unit.exec, &credentials);
            fail(&mut report, &error, error.exit_code());
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
            record_exit(code);
            std::process::exit(code);
        }
        Err(e) => fail(
            &mut report,
            &SetupError::new("fork", None::<&Path>, e.into()),
            EXIT_SETUP_FAILED,
        ),
    }
}

/// For a supd that is not the init's parent (it restarted meanwhile) and
/// so cannot wait for it. A failed write changes nothing: a supd that is
/// the parent has the exit status from waitpid anyway.
fn record_exit(code: i32) {
    let text = format!("{code}\n");
    // SAFETY: write of a local buffer to the descriptor supd's spawn placed
    // at EXIT_FD (fresh, at offset 0), which nothing else here uses. Plain
    // write: a seccomp profile that allows the workload anything allows it.
    unsafe { libc::write(EXIT_FD, text.as_ptr().cast(), text.len()) };
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
fn prepare(spec: &mut Spec) -> Result<Prepared, SetupError> {
    // A profile file is on the host: read before the root changes.
    let seccomp = compile_seccomp(&spec.unit)?;
    let tz = prepare_root(spec)?;
    if let Some(tz) = tz {
        spec.unit.env.entry("TZ".to_string()).or_insert(tz);
    }
    let credentials = user::resolve(spec.unit.user.as_ref())?;
    if !spec.secrets.is_empty() {
        super::inputs::write_secrets(&spec.secrets, &credentials)?;
    }
    Ok(Prepared {
        credentials,
        seccomp,
    })
}

/// Namespaces, mounts, pivot_root, network and sysctls. Returns the TZ the
/// `timezone` asks for.
fn prepare_root(spec: &Spec) -> Result<Option<String>, SetupError> {
    let unit = &spec.unit;
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
    rootfs::mount_proc_sys(&root)?;
    if unit.boot {
        super::boot::mount_cgroups(&root)?;
    } else {
        rootfs::mount_cgroupfs(&root)?;
    }
    rootfs::mount_dev(&root)?;
    if unit.boot {
        super::boot::prepare(&root, spec.console.as_deref())?;
    }
    super::devnodes::make_nodes(&root, &unit.devices, unit.security.user_namespace.is_some())?;
    // After /dev and /proc: a mount whose target is under them would be
    // hidden by their fresh file systems otherwise.
    rootfs::mount_volumes(&root, &unit.mounts)?;
    if let Some(text) = &spec.resolv_conf {
        rootfs::mount_resolv_conf(&root, &spec.staging, text)?;
    }
    if let Some(hosts) = &spec.hosts_file {
        rootfs::mount_hosts(&root, hosts)?;
    }
    let tz = match &unit.timezone {
        Some(zone) => super::inputs::mount_localtime(&root, zone)?,
        None => None,
    };
    if !spec.secrets.is_empty() {
        super::inputs::mount_secrets_dir(&root)?;
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
    Ok(tz)
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
