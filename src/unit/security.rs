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
            seccomp: Seccomp::Default { allow: Vec::new() },
            user_namespace: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seccomp {
    /// supd's profile modelled on Docker's default; `allow` re-permits some
    /// of the syscalls it denies (perf_event_open for perf, say).
    Default {
        allow: Vec<String>,
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

/// (field, message) of the first problem.
pub fn security(raw: RawSecurity) -> Result<SecurityConfig, (String, String)> {
    let defaults = SecurityConfig::default();
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
        None | Some("default") => Seccomp::Default { allow },
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
        no_new_privileges: raw.no_new_privileges.unwrap_or(true),
        seccomp,
    })
}
