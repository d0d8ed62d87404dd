//! Validation of `security:`: the capability set (Docker's defaults, then
//! drop, then add), no_new_privileges, the seccomp profile.

use super::schema::RawSecurity;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Docker's default capabilities (CapEff 0xa80425fb as root).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// systemd-nspawn's default capabilities, for `boot: true` (a system
/// container's systemd mounts, changes users, sets up its services).
pub const BOOT_CAPABILITIES: [&str; 26] = [
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_NICE",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TTY_CONFIG",
];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityConfig {
    /// The workload's capabilities, `CAP_` names, sorted.
    pub capabilities: Vec<String>,
    /// Raise them as ambient too, so a non-root workload keeps them.
    pub ambient: bool,
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
    pub user_namespace: Option<UserNamespace>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserNamespace {
    /// A 65536-id range of its own, allocated by supd and kept.
    Auto,
    Maps {
        uid: Vec<IdMap>,
        gid: Vec<IdMap>,
    },
}

/// One line of /proc/PID/uid_map: ids `inside..inside+count` are
/// `outside..outside+count` on the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub inside: u32,
    pub outside: u32,
    pub count: u32,
}

/// `0:100000:65536`, several separated by commas.
pub fn parse_id_maps(text: &str) -> Result<Vec<IdMap>, String> {
    let bad = || {
        format!("invalid id map {text:?}: expected inside:outside:count, such as 0:100000:65536")
    };
    let mut maps = Vec::new();
    for part in text.split(',').map(str::trim) {
        let fields: Vec<u32> = part
            .split(':')
            .map(|f| f.trim().parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let [inside, outside, count] = fields[..] else {
            return Err(bad());
        };
        if count == 0 || inside.checked_add(count).is_none() || outside.checked_add(count).is_none()
        {
            return Err(bad());
        }
        maps.push(IdMap {
            inside,
            outside,
            count,
        });
    }
    if !maps.iter().any(|m| m.inside == 0) {
        return Err(format!(
            "id map {text:?} must map id 0 (the container's root)"
        ));
    }
    Ok(maps)
}

impl Default for SecurityConfig {
    fn default() -> Self {
        let mut capabilities: Vec<String> =
            DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        capabilities.sort();
        SecurityConfig {
            capabilities,
            ambient: false,
            no_new_privileges: true,
            seccomp: Seccomp::Default {
                allow: Vec::new(),
                boot: false,
            },
            user_namespace: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// supd's profile modelled on Docker's default; `allow` re-permits some
    /// of the syscalls it denies (perf_event_open for perf, say). For a
    /// system container (`boot`) it also lets the mount and namespace
    /// calls through, which its systemd needs for itself and its services.
    Default {
        allow: Vec<String>,
        #[serde(default)]
        boot: bool,
    },
    Unconfined,
    /// A profile in Docker's JSON format.
    Profile(PathBuf),
}

/// Syscalls the default profile denies that `seccomp_allow` may re-permit.
pub const ALLOWABLE: [&str; 6] = [
    "perf_event_open",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "userfaultfd",
    "syslog",
];

fn capability_name(name: &str) -> Result<String, String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<caps::Capability>()
        .map(|_| full.clone())
        .map_err(|_| format!("unknown capability {name:?}"))
}

/// What the defaults are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// An application: Docker's defaults.
    App,
    /// `boot`: a system container, with its own network namespace or not.
    System { private_network: bool },
}

/// (field, message) of the first problem. A system container starts from
/// nspawn's capabilities (and, as nspawn with a private network,
/// CAP_NET_ADMIN, for its loopback and interfaces), without
/// no_new_privileges (its services may use set-id programs).
pub fn security(raw: RawSecurity, workload: Workload) -> Result<SecurityConfig, (String, String)> {
    let mut defaults = SecurityConfig::default();
    let boot = matches!(workload, Workload::System { .. });
    if let Workload::System { private_network } = workload {
        defaults.capabilities = BOOT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        if private_network {
            defaults.capabilities.push("CAP_NET_ADMIN".to_string());
            defaults.capabilities.sort();
        }
        defaults.no_new_privileges = false;
    }
    let raw_caps = raw.capabilities.unwrap_or_default();
    let all: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let mut set: std::collections::BTreeSet<String> =
        defaults.capabilities.iter().cloned().collect();
    let drop = raw_caps.drop.unwrap_or_default();
    let add = raw_caps.add.unwrap_or_default();
    for (field, names) in [("drop", &drop), ("add", &add)] {
        for name in names.iter().filter(|n| !n.eq_ignore_ascii_case("ALL")) {
            capability_name(name).map_err(|m| (format!("security.capabilities.{field}"), m))?;
        }
    }
    if drop.iter().any(|n| n.eq_ignore_ascii_case("ALL")) {
        set.clear();
    }
    for name in drop.iter().filter(|n| !n.eq_ignore_ascii_case("ALL")) {
        set.remove(&capability_name(name).unwrap_or_default());
    }
    if add.iter().any(|n| n.eq_ignore_ascii_case("ALL")) {
        set.extend(all);
    }
    for name in add.iter().filter(|n| !n.eq_ignore_ascii_case("ALL")) {
        set.insert(capability_name(name).unwrap_or_default());
    }
    let allow = raw.seccomp_allow.unwrap_or_default();
    if let Some(name) = allow.iter().find(|n| !ALLOWABLE.contains(&n.as_str())) {
        return Err((
            "security.seccomp_allow".into(),
            format!(
                "{name:?} cannot be allowed: choose from {}",
                ALLOWABLE.join(", ")
            ),
        ));
    }
    let seccomp = match raw.seccomp.as_deref() {
        None | Some("default") => Seccomp::Default { allow, boot },
        Some(_) if !allow.is_empty() => {
            return Err((
                "security.seccomp_allow".into(),
                "only applies to the default seccomp profile".into(),
            ))
        }
        Some("unconfined") => Seccomp::Unconfined,
        Some(path) if path.starts_with('/') => Seccomp::Profile(PathBuf::from(path)),
        Some(other) => {
            return Err((
                "security.seccomp".into(),
                format!("{other:?}: expected default, unconfined or an absolute path to a profile"),
            ))
        }
    };
    let user_namespace = match raw.user_namespace {
        None => None,
        Some(super::schema::RawUserNamespace::Auto(_)) => Some(UserNamespace::Auto),
        Some(super::schema::RawUserNamespace::Maps(maps)) => Some(UserNamespace::Maps {
            uid: parse_id_maps(&maps.uid_map)
                .map_err(|m| ("security.user_namespace.uid_map".to_string(), m))?,
            gid: parse_id_maps(&maps.gid_map)
                .map_err(|m| ("security.user_namespace.gid_map".to_string(), m))?,
        }),
    };
    Ok(SecurityConfig {
        user_namespace,
        capabilities: set.into_iter().collect(),
        ambient: raw_caps.ambient.unwrap_or(false),
        no_new_privileges: raw.no_new_privileges.unwrap_or(defaults.no_new_privileges),
        seccomp,
    })
}
