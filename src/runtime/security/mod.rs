//! The workload's privileges: no_new_privs, seccomp, capabilities. Every
//! step's failure fails the start; nothing here is best-effort.

mod bpf;
mod docker_profile;
pub mod seccomp;
mod syscalls;

use super::SetupError;
use crate::unit::security::SecurityConfig;
use caps::{CapSet, Capability, CapsHashSet};
use std::path::Path;

fn step(name: &str) -> impl Fn(String) -> SetupError + '_ {
    move |message| SetupError::message(name, None::<&Path>, message)
}

fn capability_set(config: &SecurityConfig) -> Result<CapsHashSet, SetupError> {
    config
        .capabilities
        .iter()
        .map(|name| {
            name.parse::<Capability>()
                .map_err(|e| step("capabilities")(e.to_string()))
        })
        .collect()
}

/// Before the user switch, while still root with every capability:
/// no_new_privs, the seccomp filter, the bounding set, keepcaps.
pub fn before_user_switch(
    config: &SecurityConfig,
    seccomp: &[seccompiler::BpfProgram],
    uid: u32,
) -> Result<(), SetupError> {
    if config.no_new_privileges {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(step("no_new_privileges")(
                std::io::Error::last_os_error().to_string(),
            ));
        }
    }
    seccomp::install(seccomp).map_err(step("seccomp"))?;
    let keep = capability_set(config)?;
    for capability in caps::all().difference(&keep) {
        caps::drop(None, CapSet::Bounding, *capability)
            .map_err(|e| step("capabilities")(format!("bounding set: {e}")))?;
    }
    if uid != 0 {
        // Keep the permitted set across setuid; it is trimmed right after.
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
            return Err(step("capabilities")(
                std::io::Error::last_os_error().to_string(),
            ));
        }
    }
    Ok(())
}

/// The built-in init, once the workload is forked: it only forwards
/// signals and reaps, so it keeps one capability, CAP_KILL. Without it a
/// signal could not reach a workload that changed its user (a gosu or su
/// entrypoint, a server that drops privileges); its reach ends at the
/// container's PID namespace, where the workload's root could signal
/// anyway. Every other capability goes, from every set; no_new_privs is
/// set and the container's seccomp filter applies, as to every other
/// process in the container.
pub fn confine_init(seccomp: &[seccompiler::BpfProgram]) -> Result<(), SetupError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(step("init no_new_privileges")(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    // Not dumpable: the workload, the same uid, cannot open the init's
    // descriptors through /proc/1/fd (the output pipe it holds for supd,
    // the host file it records the exit code in) without CAP_SYS_PTRACE.
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(step("init dumpable")(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    let fail = |e: caps::errors::CapsError| step("init capabilities")(e.to_string());
    let kill_only: CapsHashSet = [Capability::CAP_KILL].into_iter().collect();
    for capability in caps::all().difference(&kill_only) {
        caps::drop(None, CapSet::Bounding, *capability).map_err(fail)?;
    }
    caps::clear(None, CapSet::Ambient).map_err(fail)?;
    caps::clear(None, CapSet::Inheritable).map_err(fail)?;
    caps::set(None, CapSet::Effective, &kill_only).map_err(fail)?;
    caps::set(None, CapSet::Permitted, &kill_only).map_err(fail)?;
    seccomp::install(seccomp).map_err(step("init seccomp"))
}

/// After the user switch: root gets the set as effective, permitted and
/// inheritable; a non-root user gets none unless `ambient` asks for them.
pub fn after_user_switch(config: &SecurityConfig, uid: u32) -> Result<(), SetupError> {
    let keep = capability_set(config)?;
    let fail = |e: caps::errors::CapsError| step("capabilities")(e.to_string());
    let granted = if uid == 0 || config.ambient {
        keep
    } else {
        CapsHashSet::new()
    };
    caps::set(None, CapSet::Effective, &granted).map_err(fail)?;
    caps::set(None, CapSet::Permitted, &granted).map_err(fail)?;
    caps::set(None, CapSet::Inheritable, &granted).map_err(fail)?;
    caps::clear(None, CapSet::Ambient).map_err(fail)?;
    if config.ambient {
        for capability in &granted {
            caps::raise(None, CapSet::Ambient, *capability).map_err(fail)?;
        }
    }
    Ok(())
}
