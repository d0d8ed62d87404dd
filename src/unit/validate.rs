//! From the text of a unit file to a validated `Unit`.

use super::schema::{MountKind, RawMount, RawUnit, Volatile};
use super::{
    ImageUse, Inherit, IoLimit, LoggingConfig, Mount, Resources, RestartConfig, StopConfig, Unit,
    UnitError,
};
pub(super) use located::locate_key_depth;
use located::{error_at, from_yaml_error, locate_key};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Parse and validate one unit file's text. `name` is the unit name (the file
/// name without `.yaml`), `file` is only used in error messages.
pub fn parse_unit(name: &str, file: &Path, text: &str) -> Result<Unit, UnitError> {
    if !super::valid_unit_name(name) {
        return Err(error_at(
            file,
            text,
            "",
            format!("invalid unit name {name:?}: use [a-z0-9][a-z0-9_.-]{{0,62}}"),
        ));
    }
    check_depth(file, text)?;
    let raw: RawUnit = if text.trim().is_empty() {
        RawUnit::default()
    } else {
        serde_yaml::from_str(text).map_err(|e| from_yaml_error(file, &e))?
    };
    Checker { file, text }.unit(name, raw)
}

/// An error about `field` of the unit file `text`, at that key's line.
pub(super) fn locate(file: &Path, text: &str, field: &str, message: String) -> UnitError {
    error_at(file, text, field, message)
}

/// Refuses text nested deeper than any unit needs, before the YAML parser
/// (whose cost grows with the square of the depth) sees it.
pub(super) fn check_depth(file: &Path, text: &str) -> Result<(), UnitError> {
    match super::depth::too_deep(text) {
        None => Ok(()),
        Some((line, column)) => Err(UnitError {
            file: file.to_path_buf(),
            line,
            column,
            field: String::new(),
            message: format!(
                "nested deeper than {} levels: a unit never needs that many",
                super::depth::MAX_DEPTH
            ),
        }),
    }
}

/// PID 1 of a system container unless `exec` names another. The argument
/// reaches journald, which in a container reads PID 1's command line as
/// its kernel command line: the journal then also goes to the console,
/// whose output is the unit's log.
const BOOT_EXEC: [&str; 2] = ["/sbin/init", "systemd.journald.forward_to_console=1"];
const BOOT_STOP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn fail(&self, field: &str, message: impl Into<String>) -> UnitError {
        error_at(self.file, self.text, field, message.into())
    }

    /// For map keys that contain dots (sysctls): find the key's own line
    /// after its parent's.
    fn fail_at_key(&self, field: &str, message: String) -> UnitError {
        let mut error = self.fail(field, message);
        if let Some((parent, key)) = field.split_once('.') {
            let (from, _) = locate_key(self.text, parent);
            let needle = format!("{key}:");
            let hit = self
                .text
                .lines()
                .enumerate()
                .skip(from.saturating_sub(1))
                .find_map(|(i, line)| line.find(&needle).map(|at| (i + 1, at + 1)));
            if let Some((line, column)) = hit {
                error.line = line;
                error.column = column;
            }
        }
        error
    }

    fn unit(&self, name: &str, raw: RawUnit) -> Result<Unit, UnitError> {
        if name == RESERVED_NAME {
            return Err(self.fail(
                "",
                "the unit name \"images\" is reserved: STATE_DIR/images holds the image store",
            ));
        }
        let image = self.image(&raw)?;
        let boot = raw.boot.unwrap_or(false);
        if boot && raw.init == Some(true) {
            return Err(self.fail(
                "init",
                "boot: true runs the rootfs's own init as PID 1, without supd's",
            ));
        }
        let exec = match (&raw.exec, boot, &image) {
            (None, true, None) => BOOT_EXEC.iter().map(|a| a.to_string()).collect(),
            _ => raw.exec.clone().unwrap_or_default(),
        };
        let exec_needed = image.is_none() || raw.exec.is_some();
        if exec_needed && exec.first().is_none_or(|program| program.is_empty()) {
            return Err(self.fail(
                "exec",
                "required: the command to run as a list, for example [\"/bin/sh\", \"-c\", \"...\"]",
            ));
        }
        if exec.iter().any(|arg| arg.contains('\0')) {
            return Err(self.fail("exec", "arguments must not contain NUL"));
        }
        let rootfs = raw.rootfs.clone().map(PathBuf::from);
        let layers: Vec<PathBuf> = raw
            .layers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let volatile = raw.volatile.unwrap_or_default();
        match (&rootfs, layers.is_empty(), image.is_some()) {
            (Some(_), false, _) => {
                return Err(self.fail("layers", "use either rootfs or layers, not both"))
            }
            (Some(_), _, true) | (_, false, true) => {
                return Err(self.fail(
                    "image",
                    "use one of rootfs, layers or image: an image brings its own layers",
                ))
            }
            (None, true, false) => {
                return Err(self.fail(
                    "rootfs",
                    "required: a root filesystem directory (or `layers`, or `image`)",
                ))
            }
            (Some(_), true, _)
                if volatile == Volatile::No
                    && raw.resources.as_ref().is_some_and(|r| r.storage.is_some()) =>
            {
                return Err(self.fail(
                    "resources.storage",
                    "the rootfs is written in place (`volatile: no`): a storage limit needs a \
                     writable layer supd makes (`volatile: state` or `overlay`, `layers`, `image`)",
                ))
            }
            (Some(root), true, _) if root == Path::new("/") && volatile == Volatile::No => {
                return Err(self.fail(
                    "rootfs",
                    "the host's / can only be used with `volatile: overlay` or `volatile: state`",
                ))
            }
            _ => {}
        }
        let network = super::network::network(raw.network.unwrap_or_default())
            .map_err(|(field, message)| self.fail(&field, message))?;
        let workload = match boot {
            true => super::security::Workload::System {
                private_network: network.mode != super::NetworkMode::Host,
            },
            false => super::security::Workload::App,
        };
        let security = super::security::security(raw.security.unwrap_or_default(), workload)
            .map_err(|(field, message)| self.fail(&field, message))?;
        if rootfs.as_deref() == Some(Path::new("/")) && security.user_namespace.is_some() {
            return Err(self.fail("security.user_namespace", HOST_ROOT_IN_USERNS));
        }
        let env = raw
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.0, v.text()))
            .collect();
        Ok(Unit {
            name: name.to_string(),
            description: raw.description.unwrap_or_default(),
            enabled: raw.enabled.unwrap_or(true),
            rootfs,
            layers,
            volatile,
            readonly_rootfs: raw.readonly_rootfs.unwrap_or(false),
            exec,
            env,
            workdir: raw.workdir.map(PathBuf::from).unwrap_or_else(|| "/".into()),
            user: raw.user,
            hostname: raw
                .hostname
                .map(|h| h.0)
                .unwrap_or_else(|| default_hostname(name)),
            init: raw.init.unwrap_or(!boot),
            notify: raw.notify.unwrap_or(false),
            start_timeout: match raw.start_timeout {
                Some(span) if span.0.is_zero() => {
                    return Err(self.fail("start_timeout", "must be longer than 0s"))
                }
                Some(span) => span.0,
                None => DEFAULT_START_TIMEOUT,
            },
            depends_on: self.depends_on(name, raw.depends_on.unwrap_or_default())?,
            restart: self.restart(raw.restart.unwrap_or_default())?,
            stop: self.stop(raw.stop.unwrap_or_default(), boot),
            mounts: self.mounts(raw.mounts.unwrap_or_default())?,
            logging: self.logging(raw.logging.unwrap_or_default())?,
            resources: self.resources(raw.resources.unwrap_or_default())?,
            sysctls: super::network::sysctls(
                raw.sysctls
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.text()))
                    .collect(),
                network.mode,
            )
            .map_err(|(field, message)| self.fail_at_key(&field, message))?,
            network,
            security,
            image,
            health: raw
                .health
                .map(super::health::health)
                .transpose()
                .map_err(|(field, message)| self.fail(&field, message))?,
            watchdog: match (raw.watchdog, raw.notify.unwrap_or(false)) {
                (None, _) => None,
                (Some(span), _) if span.0.is_zero() => {
                    return Err(self.fail("watchdog", "must be longer than 0s"))
                }
                (Some(_), false) => {
                    return Err(self.fail(
                        "watchdog",
                        "needs notify: true (the workload pings WATCHDOG=1 over NOTIFY_SOCKET)",
                    ))
                }
                (Some(span), true) => Some(span.0),
            },
            devices: super::inputs::devices(raw.devices.unwrap_or_default())
                .map_err(|(field, message)| self.fail(&field, message))?,
            device_rules: raw
                .device_rules
                .unwrap_or_default()
                .into_iter()
                .map(|rule| rule.0)
                .collect(),
            env_file: raw
                .env_file
                .unwrap_or_default()
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            secrets: super::inputs::secrets(raw.secrets.unwrap_or_default())
                .map_err(|(field, message)| self.fail(&field, message))?,
            timezone: raw.timezone.map(|t| t.0),
            boot,
        })
    }

    /// `image:` and `args:`, and which fields the file leaves to the
    /// image's config.
    fn image(&self, raw: &RawUnit) -> Result<Option<ImageUse>, UnitError> {
        let Some(reference) = &raw.image else {
            if raw.args.is_some() {
                return Err(self.fail(
                    "args",
                    "args replaces an image's Cmd and needs `image`; without one, put the arguments in exec",
                ));
            }
            return Ok(None);
        };
        if raw.args.is_some() && raw.exec.is_some() {
            return Err(self.fail(
                "args",
                "use exec (replaces the image's Entrypoint and Cmd) or args (replaces its Cmd), not both",
            ));
        }
        if raw.args.iter().flatten().any(|arg| arg.contains('\0')) {
            return Err(self.fail("args", "arguments must not contain NUL"));
        }
        Ok(Some(ImageUse {
            reference: reference.0.to_string(),
            args: raw.args.clone(),
            digest: None,
            inherit: Inherit {
                exec: raw.exec.is_none(),
                workdir: raw.workdir.is_none(),
                user: raw.user.is_none(),
                stop_signal: raw.stop.as_ref().is_none_or(|s| s.signal.is_none()),
            },
        }))
    }

    fn depends_on(
        &self,
        name: &str,
        raw: Vec<super::schema::UnitRef>,
    ) -> Result<Vec<String>, UnitError> {
        let mut names: Vec<String> = raw.into_iter().map(|r| r.0).collect();
        if names.iter().any(|n| n == name) {
            return Err(self.fail("depends_on", "a unit cannot depend on itself"));
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn restart(&self, raw: super::schema::RawRestart) -> Result<RestartConfig, UnitError> {
        let defaults = RestartConfig::default();
        let limit = raw.start_limit.unwrap_or_default();
        let config = RestartConfig {
            policy: raw.policy.unwrap_or(defaults.policy),
            delay: raw.delay.map_or(defaults.delay, |s| s.0),
            max_delay: raw.max_delay.map_or(defaults.max_delay, |s| s.0),
            reset_after: raw.reset_after.map_or(defaults.reset_after, |s| s.0),
            start_limit_burst: limit.burst.unwrap_or(defaults.start_limit_burst),
            start_limit_interval: limit
                .interval
                .map_or(defaults.start_limit_interval, |s| s.0),
        };
        if config.delay < MIN_RESTART_DELAY {
            return Err(self.fail(
                "restart.delay",
                "must be at least 100ms: a shorter back-off turns a crash loop into a busy loop",
            ));
        }
        if config.max_delay < config.delay {
            return Err(self.fail(
                "restart.max_delay",
                "must not be shorter than restart.delay",
            ));
        }
        if config.start_limit_burst == 0 {
            return Err(self.fail("restart.start_limit.burst", "must be at least 1"));
        }
        Ok(config)
    }

    fn stop(&self, raw: super::schema::RawStop, boot: bool) -> StopConfig {
        let mut defaults = StopConfig::default();
        if boot {
            // systemd halts on SIGRTMIN+3 and takes its time stopping
            // services, as on a real machine.
            defaults.signal = libc::SIGRTMIN() + 3;
            defaults.timeout = BOOT_STOP_TIMEOUT;
        }
        StopConfig {
            signal: raw.signal.map_or(defaults.signal, |s| s.0),
            timeout: raw.timeout.map_or(defaults.timeout, |s| s.0),
        }
    }

    fn mounts(&self, raw: Vec<RawMount>) -> Result<Vec<Mount>, UnitError> {
        let mut targets = BTreeSet::new();
        let mut mounts = Vec::with_capacity(raw.len());
        for (index, m) in raw.into_iter().enumerate() {
            let field = |key: &str| format!("mounts[{index}].{key}");
            let target = PathBuf::from(m.target);
            if target == Path::new("/") {
                return Err(self.fail(&field("target"), "cannot mount over the container's /"));
            }
            if !targets.insert(target.clone()) {
                return Err(self.fail(
                    &field("target"),
                    format!("{} is mounted twice", target.display()),
                ));
            }
            match m.kind {
                MountKind::Bind => {
                    if m.source.is_none() {
                        return Err(self.fail(&field("source"), "required for a bind mount"));
                    }
                    if m.size.is_some() || m.mode.is_some() {
                        return Err(
                            self.fail(&field("size"), "size and mode only apply to tmpfs mounts")
                        );
                    }
                }
                MountKind::Tmpfs => {
                    if m.source.is_some() {
                        return Err(self.fail(&field("source"), "a tmpfs mount has no source"));
                    }
                }
            }
            mounts.push(Mount {
                kind: m.kind,
                source: m.source.map(PathBuf::from),
                target,
                readonly: m.readonly.unwrap_or(false),
                size: m.size.map(|s| s.0),
                mode: m.mode.map(|m| m.0),
            });
        }
        Ok(mounts)
    }

    fn resources(&self, raw: super::schema::RawResources) -> Result<Resources, UnitError> {
        let memory = raw.memory.unwrap_or_default();
        let cpu = raw.cpu.unwrap_or_default();
        let io = raw.io.unwrap_or_default();
        let resources = Resources {
            memory_max: memory.max.map(|s| s.0),
            memory_high: memory.high.map(|s| s.0),
            memory_swap: memory.swap.map(|s| s.0),
            memory_swappiness: memory.swappiness,
            oom_score_adj: memory.oom_score_adj,
            cpu_max: cpu.max,
            cpu_weight: cpu.weight,
            cpuset: cpu.cpuset.map(|c| c.render()),
            pids_max: raw.pids.and_then(|p| p.max),
            io_weight: io.weight,
            io_limits: io
                .limits
                .unwrap_or_default()
                .into_iter()
                .map(|l| IoLimit {
                    device: l.device.0,
                    read_bps: l.read_bps.map(|s| s.0),
                    write_bps: l.write_bps.map(|s| s.0),
                    read_iops: l.read_iops,
                    write_iops: l.write_iops,
                })
                .collect(),
            storage_size: self.storage_size(raw.storage)?,
        };
        let range = |field: &str, value: Option<i64>, low: i64, high: i64| match value {
            Some(v) if v < low || v > high => {
                Err(self.fail(field, format!("must be between {low} and {high}, not {v}")))
            }
            _ => Ok(()),
        };
        range(
            "resources.memory.swappiness",
            resources.memory_swappiness.map(i64::from),
            0,
            100,
        )?;
        range(
            "resources.memory.oom_score_adj",
            resources.oom_score_adj.map(i64::from),
            -1000,
            1000,
        )?;
        range(
            "resources.cpu.weight",
            resources.cpu_weight.map(i64::from),
            1,
            10_000,
        )?;
        range(
            "resources.io.weight",
            resources.io_weight.map(i64::from),
            1,
            10_000,
        )?;
        range(
            "resources.pids.max",
            resources.pids_max.map(|v| v as i64),
            2,
            i64::MAX,
        )?;
        if let Some(max) = resources.cpu_max {
            // The kernel refuses a quota under 1 ms per 100 ms period.
            if !(0.01..=4096.0).contains(&max) {
                return Err(self.fail(
                    "resources.cpu.max",
                    format!("must be between 0.01 and 4096 CPUs, not {max}"),
                ));
            }
        }
        for (field, value) in [
            ("max", resources.memory_max),
            ("high", resources.memory_high),
        ] {
            if value.is_some_and(|v| v < 1 << 20) {
                return Err(self.fail(
                    &format!("resources.memory.{field}"),
                    "must be at least 1M: a smaller limit cannot run a container",
                ));
            }
        }
        if let (Some(high), Some(max)) = (resources.memory_high, resources.memory_max) {
            if high > max {
                return Err(self.fail("resources.memory.high", "must not exceed memory.max"));
            }
        }
        for (index, limit) in resources.io_limits.iter().enumerate() {
            let empty = [
                limit.read_bps,
                limit.write_bps,
                limit.read_iops,
                limit.write_iops,
            ]
            .iter()
            .all(Option::is_none);
            if empty {
                return Err(self.fail(
                    &format!("resources.io.limits[{index}]"),
                    "name at least one of read_bps, write_bps, read_iops, write_iops",
                ));
            }
        }
        Ok(resources)
    }

    fn storage_size(
        &self,
        raw: Option<super::schema::RawStorage>,
    ) -> Result<Option<u64>, UnitError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        match raw.size {
            None => Err(self.fail("resources.storage.size", "required, e.g. `size: 1G`")),
            Some(size) if size.0 < MIN_STORAGE_SIZE => Err(self.fail(
                "resources.storage.size",
                "must be at least 16M: an ext4 image smaller than that holds little but its journal",
            )),
            Some(size) => Ok(Some(size.0)),
        }
    }

    fn logging(&self, raw: super::schema::RawLogging) -> Result<LoggingConfig, UnitError> {
        let defaults = LoggingConfig::default();
        let config = LoggingConfig {
            max_size: raw.max_size.map_or(defaults.max_size, |s| s.0),
            max_files: raw.max_files.unwrap_or(defaults.max_files),
            driver: raw.driver.unwrap_or_default(),
        };
        if config.max_size < 4096 {
            return Err(self.fail("logging.max_size", "must be at least 4K"));
        }
        if !(1..=MAX_LOG_FILES).contains(&config.max_files) {
            return Err(self.fail(
                "logging.max_files",
                format!("must be between 1 and {MAX_LOG_FILES}"),
            ));
        }
        Ok(config)
    }
}

/// Found while testing `rootfs: /` under a user namespace (EINVAL from the
/// overlay mount): overlayfs clones its lower layer as a private mount, and
/// the kernel refuses that for a mount with locked submounts in a less
/// privileged mount namespace.
const HOST_ROOT_IN_USERNS: &str = "cannot be used with `rootfs: /`: inside a user namespace the kernel refuses an overlay whose lower layer has mounts below it, as the host's / always has (the fix for CVE-2021-3732, in every kernel since 5.14 and its stable backports); use a rootfs directory, layers or an image";

pub(super) const NOT_A_MAPPING: &str = "a unit or drop-in must be a mapping of keys";

/// Each rotation renames every kept file: a bound keeps it cheap.
pub const MAX_LOG_FILES: u32 = 100;
/// The smallest `resources.storage.size`.
pub const MIN_STORAGE_SIZE: u64 = 16 << 20;

/// The shortest first back-off, as Docker's and systemd's default.
pub const MIN_RESTART_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

/// How long a start may take, setup and (with `notify`) readiness
/// included, as systemd's TimeoutStartSec default.
/// `STATE_DIR/NAME` is a unit's state directory, and `STATE_DIR/images`
/// the image store.
const RESERVED_NAME: &str = "images";

pub const DEFAULT_START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// Unit names may contain `_` and `.`, which host names may not.
fn default_hostname(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(63)
        .collect()
}

mod located;

#[cfg(test)]
mod tests;
