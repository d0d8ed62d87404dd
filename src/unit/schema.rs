//! The unit file as written (schema version 1). Every field that can be wrong
//! on its own is a type whose deserialisation checks it, so serde reports the
//! error at the value's line and column. Cross-field checks live in
//! `validate.rs`.

use super::quantity::{Scalar, Size, Span};
use crate::scalar_deserialize;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnit {
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub rootfs: Option<AbsPath>,
    pub volatile: Option<Volatile>,
    pub layers: Option<Vec<AbsPath>>,
    pub image: Option<ImageName>,
    pub args: Option<Vec<String>>,
    pub readonly_rootfs: Option<bool>,
    pub exec: Option<Vec<String>>,
    pub env: Option<BTreeMap<EnvName, Scalar>>,
    pub workdir: Option<AbsPath>,
    pub user: Option<UserSpec>,
    pub hostname: Option<Hostname>,
    pub init: Option<bool>,
    pub restart: Option<RawRestart>,
    pub stop: Option<RawStop>,
    pub mounts: Option<Vec<RawMount>>,
    pub logging: Option<RawLogging>,
    pub network: Option<RawNetwork>,
    pub depends_on: Option<Vec<UnitRef>>,
    pub notify: Option<bool>,
    pub start_timeout: Option<Span>,
    pub resources: Option<RawResources>,
    pub sysctls: Option<std::collections::BTreeMap<String, Scalar>>,
    pub security: Option<RawSecurity>,
    pub health: Option<super::health::RawHealth>,
    pub watchdog: Option<Span>,
    pub devices: Option<Vec<super::inputs::RawDevice>>,
    pub device_rules: Option<Vec<super::inputs::RuleText>>,
    pub env_file: Option<Vec<AbsPath>>,
    pub secrets: Option<Vec<super::inputs::RawSecret>>,
    pub timezone: Option<super::inputs::TimezoneText>,
    pub boot: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestart {
    pub policy: Option<RestartPolicy>,
    pub delay: Option<Span>,
    pub max_delay: Option<Span>,
    pub reset_after: Option<Span>,
    pub start_limit: Option<RawStartLimit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStartLimit {
    pub burst: Option<u32>,
    pub interval: Option<Span>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStop {
    pub signal: Option<SignalName>,
    pub timeout: Option<Span>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMount {
    #[serde(rename = "type")]
    pub kind: MountKind,
    pub source: Option<AbsPath>,
    pub target: AbsPath,
    pub readonly: Option<bool>,
    pub size: Option<Size>,
    pub mode: Option<FileMode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResources {
    pub memory: Option<RawMemory>,
    pub cpu: Option<RawCpu>,
    pub pids: Option<RawPids>,
    pub io: Option<RawIo>,
    pub storage: Option<RawStorage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub size: Option<Size>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMemory {
    pub max: Option<Size>,
    pub high: Option<Size>,
    pub swap: Option<Size>,
    pub swappiness: Option<u32>,
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCpu {
    pub max: Option<f64>,
    pub weight: Option<u32>,
    pub cpuset: Option<CpuList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPids {
    pub max: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIo {
    pub weight: Option<u32>,
    pub limits: Option<Vec<RawIoLimit>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIoLimit {
    pub device: AbsPath,
    pub read_bps: Option<Size>,
    pub write_bps: Option<Size>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

pub use crate::host::CpuList;

scalar_deserialize!(CpuList, CpuList::parse);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurity {
    pub capabilities: Option<RawCapabilities>,
    pub no_new_privileges: Option<bool>,
    pub seccomp: Option<String>,
    pub seccomp_allow: Option<Vec<String>>,
    pub user_namespace: Option<RawUserNamespace>,
}

/// `user_namespace: auto` or `{ uid_map: "0:100000:65536", gid_map: ... }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawUserNamespace {
    Auto(AutoKeyword),
    Maps(RawIdMaps),
}

#[derive(Debug)]
pub struct AutoKeyword;

scalar_deserialize!(AutoKeyword, |value: &str| if value == "auto" {
    Ok(AutoKeyword)
} else {
    Err(format!("expected auto or uid_map/gid_map, not {value:?}"))
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdMaps {
    pub uid_map: String,
    pub gid_map: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    pub add: Option<Vec<String>>,
    pub drop: Option<Vec<String>>,
    pub ambient: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogging {
    pub driver: Option<LogDriver>,
    pub max_size: Option<Size>,
    pub max_files: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub mode: Option<NetworkMode>,
    pub bridge: Option<IfName>,
    pub address: Option<AddressSpec>,
    pub gateway: Option<Cidr>,
    pub parent: Option<IfName>,
    pub interface: Option<IfName>,
    pub macvlan_mode: Option<MacvlanMode>,
    pub ipvlan_mode: Option<IpvlanMode>,
    pub rps: Option<bool>,
    pub dns: Option<Vec<Cidr>>,
    pub mtu: Option<u32>,
    pub ports: Option<Vec<super::addressing::PortText>>,
    pub nat: Option<bool>,
    pub address6: Option<super::addressing::Address6Spec>,
    pub gateway6: Option<super::addressing::Ipv6Text>,
    pub aliases: Option<Vec<Hostname>>,
}

/// An interface name as the kernel allows: 1 to 15 bytes, no '/' or blanks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfName(pub String);

scalar_deserialize!(IfName, IfName::parse);

impl IfName {
    pub fn is_valid(value: &str) -> bool {
        !value.is_empty()
            && value.len() <= 15
            && value != "."
            && value != ".."
            && !value
                .chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace())
    }

    fn parse(value: &str) -> Result<Self, String> {
        if !Self::is_valid(value) {
            return Err(format!(
                "invalid interface name {value:?}: 1 to 15 characters without '/', ':' or blanks"
            ));
        }
        Ok(IfName(value.to_string()))
    }
}

/// An IPv4 address with an optional prefix length: `10.88.0.1` or
/// `10.88.0.1/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub ip: std::net::Ipv4Addr,
    pub prefix: Option<u8>,
}

scalar_deserialize!(Cidr, Cidr::parse);

impl Cidr {
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad = || format!("invalid IPv4 address {value:?}: expected a.b.c.d or a.b.c.d/len");
        let (ip, prefix) = match value.split_once('/') {
            Some((ip, len)) => (
                ip,
                Some(
                    len.parse::<u8>()
                        .ok()
                        .filter(|l| *l <= 32)
                        .ok_or_else(bad)?,
                ),
            ),
            None => (value, None),
        };
        Ok(Cidr {
            ip: ip.parse().map_err(|_| bad())?,
            prefix,
        })
    }
}

/// `address: auto` or a CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSpec {
    Auto,
    Static(Cidr),
}

scalar_deserialize!(AddressSpec, |value: &str| if value == "auto" {
    Ok(AddressSpec::Auto)
} else {
    let cidr = Cidr::parse(value)?;
    if cidr.prefix.is_none() {
        return Err(format!(
            "address {value:?} needs a prefix length, such as {value}/24 (or use auto)"
        ));
    }
    Ok(AddressSpec::Static(cidr))
});

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    #[default]
    Bridge,
    Private,
    Vepa,
    Passthru,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpvlanMode {
    #[default]
    L2,
    L3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    #[default]
    OnFailure,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    Bind,
    Tmpfs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    #[default]
    Host,
    None,
    Bridge,
    Macvlan,
    Ipvlan,
}

scalar_deserialize!(NetworkMode, NetworkMode::parse);

impl NetworkMode {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "host" => Ok(NetworkMode::Host),
            "none" => Ok(NetworkMode::None),
            "bridge" => Ok(NetworkMode::Bridge),
            "macvlan" => Ok(NetworkMode::Macvlan),
            "ipvlan" => Ok(NetworkMode::Ipvlan),
            _ => Err(format!(
                "unknown network mode {value:?}: expected host, none, bridge, macvlan or ipvlan"
            )),
        }
    }
}

/// `volatile: no | overlay | state`. YAML 1.1 readers turn a bare `no` into
/// false, so a boolean is accepted too.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Volatile {
    #[default]
    No,
    Overlay,
    State,
}

scalar_deserialize!(Volatile, Volatile::parse);

impl Volatile {
    fn parse(value: &str) -> Result<Self, String> {
        match value {
            "no" | "false" => Ok(Volatile::No),
            "overlay" | "yes" | "true" => Ok(Volatile::Overlay),
            "state" => Ok(Volatile::State),
            other => Err(format!(
                "invalid volatile {other:?}: expected no, overlay or state"
            )),
        }
    }
}

/// An absolute, normalised path without `..` components.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "PathBuf")]
pub struct AbsPath(pub PathBuf);

scalar_deserialize!(AbsPath, AbsPath::parse);

impl AbsPath {
    pub(super) fn parse(value: &str) -> Result<Self, String> {
        let path = PathBuf::from(value);
        if !path.is_absolute() {
            return Err(format!("path {value:?} must be absolute"));
        }
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!("path {value:?} must not contain `..`"));
        }
        Ok(AbsPath(path.components().collect()))
    }
}

impl From<AbsPath> for PathBuf {
    fn from(p: AbsPath) -> PathBuf {
        p.0
    }
}

/// The name of another unit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UnitRef(pub String);

scalar_deserialize!(UnitRef, UnitRef::parse);

impl UnitRef {
    fn parse(value: &str) -> Result<Self, String> {
        if !super::valid_unit_name(value) {
            return Err(format!("invalid unit name {value:?}"));
        }
        Ok(UnitRef(value.to_string()))
    }
}

/// An environment variable name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EnvName(pub String);

scalar_deserialize!(EnvName, EnvName::parse);

impl EnvName {
    fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.contains('=') || value.contains('\0') {
            return Err(format!(
                "invalid environment variable name {value:?}: must be non-empty without '=' or NUL"
            ));
        }
        Ok(EnvName(value.to_string()))
    }
}

/// A host name label (RFC 1123), at most 64 bytes as the kernel allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hostname(pub String);

scalar_deserialize!(Hostname, Hostname::parse);

impl Hostname {
    fn parse(value: &str) -> Result<Self, String> {
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if value.len() > 64 || !value.split('.').all(valid_label) {
            return Err(format!(
                "invalid hostname {value:?}: letters, digits, '-' and '.', at most 64 characters"
            ));
        }
        Ok(Hostname(value.to_string()))
    }
}

/// `uid[:gid]` or `name[:group]`; names are resolved in the container's
/// /etc/passwd and /etc/group when it starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct UserSpec {
    pub user: IdOrName,
    pub group: Option<IdOrName>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdOrName {
    Id(u32),
    Name(String),
}

impl IdOrName {
    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty user or group".into());
        }
        if let Ok(id) = text.parse::<u32>() {
            if id == u32::MAX {
                return Err(format!(
                    "{id} is not a user or group id: the kernel reads it as \"unchanged\""
                ));
            }
            return Ok(IdOrName::Id(id));
        }
        let valid = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !text.starts_with('-');
        if !valid {
            return Err(format!("invalid user or group name {text:?}"));
        }
        Ok(IdOrName::Name(text.to_string()))
    }
}

scalar_deserialize!(UserSpec, UserSpec::parse);

impl UserSpec {
    pub fn parse(value: &str) -> Result<Self, String> {
        let text = value.to_string();
        let (user, group) = match text.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (text.as_str(), None),
        };
        Ok(UserSpec {
            user: IdOrName::parse(user)?,
            group: group.map(IdOrName::parse).transpose()?,
        })
    }
}

/// `image:`: `NAME[:TAG]` or `sha256:DIGEST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageName(pub crate::images::Reference);

scalar_deserialize!(ImageName, |text: &str| crate::images::Reference::parse(
    text
)
.map(ImageName));

/// A signal by name (`SIGTERM`, `TERM`) or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct SignalName(pub i32);

scalar_deserialize!(SignalName, SignalName::parse);

impl SignalName {
    pub fn parse(value: &str) -> Result<Self, String> {
        let text = value.to_string();
        let number = match text.parse::<i32>() {
            Ok(n) => Some(n),
            Err(_) => {
                let upper = text.to_ascii_uppercase();
                let name = upper.strip_prefix("SIG").unwrap_or(&upper);
                realtime_signal(name).or_else(|| {
                    format!("SIG{name}")
                        .parse::<nix::sys::signal::Signal>()
                        .ok()
                        .map(|s| s as i32)
                })
            }
        };
        let catchable = |n: i32| {
            (1..=libc::SIGRTMAX()).contains(&n) && n != libc::SIGKILL && n != libc::SIGSTOP
        };
        match number {
            Some(n) if catchable(n) => Ok(SignalName(n)),
            _ => Err(format!(
                "invalid stop signal {text:?}: expected a catchable signal name such as SIGTERM or SIGRTMIN+3"
            )),
        }
    }
}

/// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (without `SIG`), as kill(1) and
/// systemd spell them; None for other names or one outside the range.
fn realtime_signal(name: &str) -> Option<i32> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let number = if let Some(rest) = name.strip_prefix("RTMIN") {
        match rest.strip_prefix('+') {
            Some(offset) => min.checked_add(offset.parse::<i32>().ok()?)?,
            None if rest.is_empty() => min,
            None => return None,
        }
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        match rest.strip_prefix('-') {
            Some(offset) => max.checked_sub(offset.parse::<i32>().ok()?)?,
            None if rest.is_empty() => max,
            None => return None,
        }
    } else {
        return None;
    };
    (min..=max).contains(&number).then_some(number)
}

/// A signal's name as kill(1) prints it: `SIGTERM`, `SIGRTMIN+3`.
pub fn signal_name(number: i32) -> String {
    let min = libc::SIGRTMIN();
    if (min..=libc::SIGRTMAX()).contains(&number) {
        return match number.checked_sub(min) {
            Some(0) | None => "SIGRTMIN".to_string(),
            Some(offset) => format!("SIGRTMIN+{offset}"),
        };
    }
    nix::sys::signal::Signal::try_from(number)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| number.to_string())
}

impl From<SignalName> for String {
    fn from(s: SignalName) -> String {
        signal_name(s.0)
    }
}

#[cfg(test)]
mod signal_tests {
    use super::*;

    #[test]
    fn real_time_signal_names_parse_and_print_as_kill_spells_them() {
        let min = libc::SIGRTMIN();
        let max = libc::SIGRTMAX();
        for (text, want) in [
            ("SIGRTMIN+3", min + 3),
            ("rtmin+3", min + 3),
            ("SIGRTMIN", min),
            ("SIGRTMAX-1", max - 1),
            ("RTMAX", max),
            ("TERM", libc::SIGTERM),
            ("sigint", libc::SIGINT),
            ("37", 37),
        ] {
            assert_eq!(SignalName::parse(text).map(|s| s.0), Ok(want), "{text}");
        }
        for bad in [
            "SIGRTMIN+99",
            "SIGRTMAX-99",
            "SIGRTMINX",
            "KILL",
            "9",
            "19",
            "0",
            "65",
            "SIGFOO",
        ] {
            assert!(SignalName::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(signal_name(min + 3), "SIGRTMIN+3");
        assert_eq!(signal_name(min), "SIGRTMIN");
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(SignalName::parse(&signal_name(max)).map(|s| s.0), Ok(max));
    }
}

/// An octal file mode such as `1777` or `"0755"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "u32")]
pub struct FileMode(pub u32);

scalar_deserialize!(FileMode, FileMode::parse);

impl FileMode {
    fn parse(value: &str) -> Result<Self, String> {
        let text = value.to_string();
        let digits = text.trim_start_matches("0o");
        match u32::from_str_radix(digits, 8) {
            Ok(mode) if mode <= 0o7777 => Ok(FileMode(mode)),
            _ => Err(format!(
                "invalid mode {text:?}: expected octal digits such as 1777 or 0755"
            )),
        }
    }
}

impl From<FileMode> for u32 {
    fn from(m: FileMode) -> u32 {
        m.0
    }
}

impl std::fmt::Display for IdOrName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdOrName::Id(id) => write!(f, "{id}"),
            IdOrName::Name(name) => f.write_str(name),
        }
    }
}

impl From<UserSpec> for String {
    fn from(spec: UserSpec) -> String {
        match spec.group {
            Some(group) => format!("{}:{group}", spec.user),
            None => spec.user.to_string(),
        }
    }
}

/// Where a container's output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogDriver {
    /// The journal when supd itself logs to it (JOURNAL_STREAM), else files.
    #[default]
    Auto,
    File,
    Journal,
}
