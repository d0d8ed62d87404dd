//! Running the workload: its user and groups, capabilities, no_new_privs,
//! seccomp, directory and environment, then exec. Shared by the init stage
//! (the container's first workload) and `supctl exec` (a command in a
//! running container).

use super::setup::FailureKind;
use super::user::Credentials;
use super::{security, user, SetupError};
use crate::unit::Unit;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::{Gid, Uid};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the workload needs after setup: its user, and its seccomp filter,
/// compiled while host paths (a profile file) are still reachable.
pub struct Prepared {
    pub credentials: Credentials,
    pub seccomp: Vec<seccompiler::BpfProgram>,
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

/// Switches to the workload's user and directory and executes it; returns
/// only on failure.
pub fn exec_workload(unit: &Unit, argv: &[String], prepared: &Prepared) -> SetupError {
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
    let kind = match error {
        nix::Error::ENOENT | nix::Error::ENOTDIR => FailureKind::NotFound,
        _ => FailureKind::NotExecutable,
    };
    SetupError::new("exec", Some(&program), error.into()).with_kind(kind)
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
    if unit.boot {
        // systemd takes its machine ID from it on a first boot.
        env.insert("container_uuid".to_string(), container_uuid(&unit.name));
    }
    env.extend(unit.env.clone());
    env.into_iter().collect()
}

/// The same for every start of a unit, so that a system container keeps
/// its machine ID: a name-based (version 5 style) UUID from its name.
fn container_uuid(name: &str) -> String {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("supd container {name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
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
                .with_kind(FailureKind::NotFound)
        })
}
