//! Units: the model, loading from the unit directories, and validation.

pub mod addressing;
pub mod check;
pub mod defaults;
mod depth;
mod dropin;
pub mod envfile;
pub mod health;
pub mod host;
pub mod inputs;
pub mod loader;
mod network;
pub mod quantity;
pub mod schema;
pub mod security;
mod validate;

pub use dropin::{parse_layers, Layer};
pub use schema::{
    IdOrName, IpvlanMode, LogDriver, MacvlanMode, MountKind, NetworkMode, RestartPolicy, UserSpec,
    Volatile,
};
pub use validate::parse_unit;

/// An error about `field` of a unit file, at the line of that key.
pub fn locate_error(file: &std::path::Path, text: &str, field: &str, message: String) -> UnitError {
    validate::locate(file, text, field, message)
}

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// A validated unit with every default filled in. Its JSON form is the
/// canonical form that change detection compares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub name: String,
    pub description: String,
    pub enabled: bool,
    pub rootfs: Option<PathBuf>,
    pub layers: Vec<PathBuf>,
    pub volatile: Volatile,
    pub readonly_rootfs: bool,
    pub exec: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: PathBuf,
    pub user: Option<UserSpec>,
    pub hostname: String,
    pub init: bool,
    /// The workload reports READY=1 over NOTIFY_SOCKET.
    pub notify: bool,
    /// Setup plus, with `notify`, readiness must finish within this.
    pub start_timeout: std::time::Duration,
    /// Units that must run (or be ready) before this one starts, and that
    /// stop only after it.
    pub depends_on: Vec<String>,
    pub restart: RestartConfig,
    pub stop: StopConfig,
    pub mounts: Vec<Mount>,
    pub logging: LoggingConfig,
    pub network: NetworkConfig,
    pub resources: Resources,
    /// Namespaced kernel parameters, written before the workload starts.
    pub sysctls: std::collections::BTreeMap<String, String>,
    pub security: security::SecurityConfig,
    /// `image:`: filled in from the image store before the unit is
    /// planned (then `layers` are the image's).
    #[serde(default)]
    pub image: Option<ImageUse>,
    /// `health:`: a probe that restarts the unit (or only reports) when
    /// it keeps failing.
    #[serde(default)]
    pub health: Option<health::HealthCheck>,
    /// notify units: WATCHDOG=1 must come at least this often.
    #[serde(default)]
    pub watchdog: Option<Duration>,
    /// Host device nodes made inside the container, and allowed in its
    /// device cgroup.
    #[serde(default)]
    pub devices: Vec<inputs::Device>,
    /// More device cgroup rules (hot-plugged devices by number).
    #[serde(default)]
    pub device_rules: Vec<inputs::DeviceRule>,
    /// systemd-style env files; the loader has merged their variables
    /// into `env` (the unit's own `env:` wins).
    #[serde(default)]
    pub env_file: Vec<PathBuf>,
    #[serde(default)]
    pub secrets: Vec<inputs::Secret>,
    #[serde(default)]
    pub timezone: Option<inputs::Timezone>,
    /// A system container: the rootfs's own init (systemd) is PID 1.
    #[serde(default)]
    pub boot: bool,
}

/// A unit's `image:` and what it leaves to the image's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageUse {
    /// `name:tag` or `sha256:...`, normalised.
    pub reference: String,
    /// `args:`: replaces the image's Cmd.
    pub args: Option<Vec<String>>,
    /// The image ID the reference resolved to; part of the canonical form,
    /// so that a new digest under the tag restarts the unit.
    pub digest: Option<String>,
    /// Fields the unit file left out, which the image's config fills.
    pub inherit: Inherit,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inherit {
    pub exec: bool,
    pub workdir: bool,
    pub user: bool,
    pub stop_signal: bool,
}

/// `resources:`; every limit is optional (absent: no limit).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    pub memory_max: Option<u64>,
    pub memory_high: Option<u64>,
    pub memory_swap: Option<u64>,
    pub memory_swappiness: Option<u32>,
    /// A process attribute rather than a cgroup file: set by the init stage.
    pub oom_score_adj: Option<i32>,
    /// In CPUs: 0.5 is half of one CPU.
    pub cpu_max: Option<f64>,
    pub cpu_weight: Option<u32>,
    /// The kernel's list form, `0-1`.
    pub cpuset: Option<String>,
    pub pids_max: Option<u64>,
    pub io_weight: Option<u32>,
    pub io_limits: Vec<IoLimit>,
    /// The writable layer's size in bytes (`storage.size`): not a cgroup
    /// limit, but a project quota, an ext4 image or a tmpfs size.
    #[serde(default)]
    pub storage_size: Option<u64>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        *self == Resources::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoLimit {
    pub device: PathBuf,
    pub read_bps: Option<u64>,
    pub write_bps: Option<u64>,
    pub read_iops: Option<u64>,
    pub write_iops: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestartConfig {
    pub policy: RestartPolicy,
    pub delay: Duration,
    pub max_delay: Duration,
    pub reset_after: Duration,
    pub start_limit_burst: u32,
    pub start_limit_interval: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            policy: RestartPolicy::OnFailure,
            delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
            start_limit_burst: 5,
            start_limit_interval: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopConfig {
    pub signal: i32,
    pub timeout: Duration,
}

impl Default for StopConfig {
    fn default() -> Self {
        StopConfig {
            signal: libc::SIGTERM,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    pub kind: MountKind,
    pub source: Option<PathBuf>,
    pub target: PathBuf,
    pub readonly: bool,
    pub size: Option<u64>,
    pub mode: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggingConfig {
    pub max_size: u64,
    pub max_files: u32,
    pub driver: LogDriver,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            max_size: 10 << 20,
            max_files: 3,
            driver: LogDriver::Auto,
        }
    }
}

/// `network:` after validation, with defaults applied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub mode: NetworkMode,
    /// bridge mode: the host bridge (default supbr0).
    pub bridge: String,
    /// A fixed address, or None for `auto` (bridge mode only).
    pub address: Option<Ipv4Net>,
    /// The subnet `auto` allocates from, and the gateway on the bridge.
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    /// macvlan and ipvlan: the host interface.
    pub parent: String,
    /// The name inside the container (default eth0).
    pub interface: String,
    pub macvlan_mode: MacvlanMode,
    pub ipvlan_mode: IpvlanMode,
    pub rps: bool,
    pub dns: Vec<Ipv4Addr>,
    pub mtu: Option<u32>,
    /// bridge mode: host ports forwarded to the container.
    #[serde(default)]
    pub ports: Vec<addressing::PortMapping>,
    /// bridge mode: masquerade what leaves the host (IPv6 only from a
    /// unique local subnet).
    #[serde(default)]
    pub nat: bool,
    /// bridge mode: a fixed IPv6 address. None with `gateway6` set is
    /// `address6: auto`: the subnet's prefix plus the IPv4 address.
    #[serde(default)]
    pub address6: Option<addressing::Ipv6Net>,
    /// bridge mode: the bridge's IPv6 address and subnet, when the unit
    /// has IPv6 at all.
    #[serde(default)]
    pub gateway6: Option<addressing::Ipv6Net>,
    /// bridge mode: more names peers find this container by.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// An IPv4 address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ipv4Net {
    pub ip: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) & self.mask())
    }

    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) | !self.mask())
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// Why a unit file could not become a `Unit`: always names the file, and the
/// line, column and field where they are known (line 0 means unknown).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct UnitError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl UnitError {
    fn render(&self) -> String {
        let mut out = self.file.display().to_string();
        if self.line > 0 {
            out.push_str(&format!(":{}:{}", self.line, self.column));
        }
        out.push_str(": ");
        if !self.field.is_empty() {
            out.push_str(&self.field);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Unit names as DESIGN section 1 allows: `[a-z0-9][a-z0-9_.-]{0,62}`.
pub fn valid_unit_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}
