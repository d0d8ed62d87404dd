//! What a container gets from the host besides its root: devices and the
//! device cgroup's rules, env files, secrets and the time zone.

use super::schema::AbsPath;
use crate::scalar_deserialize;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `devices:` entry after validation: a host node and where it appears.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub path: PathBuf,
    pub target: PathBuf,
    pub access: Access,
}

/// What a device rule lets the container do: read, write, mknod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Access {
    pub read: bool,
    pub write: bool,
    pub mknod: bool,
}

impl Access {
    pub const ALL: Access = Access {
        read: true,
        write: true,
        mknod: true,
    };

    fn parse(text: &str) -> Result<Self, String> {
        let mut access = Access {
            read: false,
            write: false,
            mknod: false,
        };
        for c in text.chars() {
            let flag = match c {
                'r' => &mut access.read,
                'w' => &mut access.write,
                'm' => &mut access.mknod,
                _ => return Err(format!("permissions {text:?}: expected letters of rwm")),
            };
            if *flag {
                return Err(format!("permissions {text:?}: {c} is named twice"));
            }
            *flag = true;
        }
        if text.is_empty() {
            return Err("permissions must name at least one of r, w, m".to_string());
        }
        Ok(access)
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (on, letter) in [(self.read, 'r'), (self.write, 'w'), (self.mknod, 'm')] {
            if on {
                write!(f, "{letter}")?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// `a`: character and block devices.
    All,
    Char,
    Block,
}

/// One device cgroup rule as the v1 `devices.allow` file spells it:
/// `c 188:* rwm`. `None` numbers are the `*` wildcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: Access,
}

impl DeviceRule {
    pub const fn char(major: u32, minor: Option<u32>) -> Self {
        DeviceRule {
            kind: DeviceKind::Char,
            major: Some(major),
            minor,
            access: Access::ALL,
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            || format!("device rule {text:?}: expected `c|b|a MAJOR:MINOR rwm` (* for any number)");
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [kind, numbers, access] = fields[..] else {
            return Err(bad());
        };
        let kind = match kind {
            "a" => DeviceKind::All,
            "c" => DeviceKind::Char,
            "b" => DeviceKind::Block,
            _ => return Err(bad()),
        };
        let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
        // The kernel's device numbers: 12 bits of major, 20 of minor.
        let number = |n: &str, max: u32| -> Result<Option<u32>, String> {
            match n {
                "*" => Ok(None),
                _ => match n.parse::<u32>() {
                    Ok(n) if n <= max => Ok(Some(n)),
                    _ => Err(bad()),
                },
            }
        };
        Ok(DeviceRule {
            kind,
            major: number(major, (1 << 12) - 1)?,
            minor: number(minor, (1 << 20) - 1)?,
            access: Access::parse(access)?,
        })
    }
}

impl std::fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let number = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{kind} {}:{} {}",
            number(self.major),
            number(self.minor),
            self.access
        )
    }
}

/// Docker's default device rules: mknod of any node (it cannot be opened
/// unless a rule below allows it), null, zero, full, random, urandom, tty,
/// console, ptmx and the container's own pseudo-terminals.
pub const DEFAULT_DEVICE_RULES: [DeviceRule; 11] = [
    DeviceRule {
        kind: DeviceKind::Char,
        major: None,
        minor: None,
        access: Access {
            read: false,
            write: false,
            mknod: true,
        },
    },
    DeviceRule {
        kind: DeviceKind::Block,
        major: None,
        minor: None,
        access: Access {
            read: false,
            write: false,
            mknod: true,
        },
    },
    DeviceRule::char(1, Some(3)),
    DeviceRule::char(1, Some(5)),
    DeviceRule::char(1, Some(7)),
    DeviceRule::char(1, Some(8)),
    DeviceRule::char(1, Some(9)),
    DeviceRule::char(5, Some(0)),
    DeviceRule::char(5, Some(1)),
    DeviceRule::char(5, Some(2)),
    DeviceRule::char(136, None),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleText(pub DeviceRule);

scalar_deserialize!(RuleText, |v: &str| DeviceRule::parse(v).map(RuleText));

/// `/dev/ttyUSB0` or `{ path, target, permissions }`. Checked in
/// `devices` rather than by serde, whose error for an untagged enum only
/// says that no variant matched.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawDevice {
    Path(String),
    Full(RawDeviceFields),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeviceFields {
    pub path: String,
    pub target: Option<String>,
    pub permissions: Option<String>,
}

/// (field, message) of the first problem.
pub type Problem = (String, String);

pub fn devices(raw: Vec<RawDevice>) -> Result<Vec<Device>, Problem> {
    let mut devices: Vec<Device> = Vec::with_capacity(raw.len());
    let fail = |message: String| ("devices".to_string(), message);
    let path = |text: &str| AbsPath::parse(text).map(|p| p.0).map_err(fail);
    for entry in raw {
        let device = match entry {
            RawDevice::Path(text) => Device {
                target: path(&text)?,
                path: path(&text)?,
                access: Access::ALL,
            },
            RawDevice::Full(fields) => Device {
                target: path(fields.target.as_deref().unwrap_or(&fields.path))?,
                path: path(&fields.path)?,
                access: match fields.permissions {
                    Some(text) => Access::parse(&text).map_err(fail)?,
                    None => Access::ALL,
                },
            },
        };
        if !device.target.starts_with("/dev") || device.target == std::path::Path::new("/dev") {
            return Err(fail(format!(
                "target {} must be under /dev",
                device.target.display()
            )));
        }
        if devices.iter().any(|d| d.target == device.target) {
            return Err(fail(format!(
                "{} is named twice as a target",
                device.target.display()
            )));
        }
        devices.push(device);
    }
    Ok(devices)
}

/// `secrets:` entry: a host file supd reads and puts, read-only, at
/// /run/secrets/TARGET. Only its digest is in the canonical form (so a
/// changed secret restarts the unit), never its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub source: PathBuf,
    pub target: String,
    /// sha256 of the content, filled in by the loader.
    #[serde(default)]
    pub digest: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecret {
    pub source: AbsPath,
    pub target: Option<String>,
}

pub fn secrets(raw: Vec<RawSecret>) -> Result<Vec<Secret>, Problem> {
    let mut secrets: Vec<Secret> = Vec::with_capacity(raw.len());
    for entry in raw {
        let default = entry
            .source
            .0
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let target = entry.target.unwrap_or(default);
        if target.is_empty()
            || target == "."
            || target == ".."
            || target.contains('/')
            || target.contains('\0')
        {
            return Err((
                "secrets".to_string(),
                format!("target {target:?} must be a file name (no /) under /run/secrets"),
            ));
        }
        if secrets.iter().any(|s| s.target == target) {
            return Err((
                "secrets".to_string(),
                format!("/run/secrets/{target} is named twice"),
            ));
        }
        secrets.push(Secret {
            source: entry.source.0,
            target,
            digest: String::new(),
        });
    }
    Ok(secrets)
}

/// `timezone:`: the host's zone, or one of the host's zoneinfo files by
/// its IANA name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Timezone {
    Host,
    Named(String),
}

/// Where the host keeps its zone files (tzdata).
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

impl Timezone {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "host" {
            return Ok(Timezone::Host);
        }
        let valid_part = |p: &str| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
        };
        if !text.split('/').all(valid_part) {
            return Err(format!(
                "{text:?} is neither `host` nor a zone name such as Europe/Berlin or UTC"
            ));
        }
        Ok(Timezone::Named(text.to_string()))
    }

    /// The host file that becomes the container's /etc/localtime.
    pub fn zone_file(&self) -> PathBuf {
        match self {
            Timezone::Host => PathBuf::from("/etc/localtime"),
            Timezone::Named(name) => std::path::Path::new(ZONEINFO).join(name),
        }
    }

    /// The IANA name, where it is known (the host's from its
    /// /etc/localtime link or /etc/timezone).
    pub fn name(&self) -> Option<String> {
        match self {
            Timezone::Named(name) => Some(name.clone()),
            Timezone::Host => {
                let link = std::fs::read_link("/etc/localtime").ok();
                let from_link = link.as_ref().and_then(|l| {
                    let text = l.to_str()?;
                    let at = text.find("zoneinfo/")?;
                    Some(text[at + "zoneinfo/".len()..].to_string())
                });
                from_link.or_else(|| {
                    let text = std::fs::read_to_string("/etc/timezone").ok()?;
                    Some(text.trim().to_string()).filter(|t| !t.is_empty())
                })
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimezoneText(pub Timezone);

scalar_deserialize!(TimezoneText, |v: &str| Timezone::parse(v).map(TimezoneText));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_rules_parse_and_print_as_the_kernel_spells_them() {
        for text in ["c 188:* rwm", "b 8:0 r", "a *:* m", "c 10:200 rw"] {
            assert_eq!(DeviceRule::parse(text).unwrap().to_string(), text);
        }
        for bad in [
            "x 1:2 r",
            "c 1 r",
            "c 1:2",
            "c 1:2 rx",
            "c 1:2 rr",
            "c a:2 r",
            "c 4096:0 r",
        ] {
            assert!(DeviceRule::parse(bad).is_err(), "{bad}");
        }
    }

    fn parse(extra: &str) -> Result<crate::unit::Unit, String> {
        let text = format!("rootfs: /r\nexec: [/x]\n{extra}");
        crate::unit::parse_unit("u", std::path::Path::new("u.yaml"), &text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn devices_default_to_their_own_path_and_all_access() {
        let unit = parse(
            "devices: [/dev/net/tun, { path: /dev/ttyUSB0, target: /dev/modem, permissions: rw }]\ndevice_rules: ['c 188:* rwm']\n",
        )
        .unwrap();
        assert_eq!(unit.devices[0].target, PathBuf::from("/dev/net/tun"));
        assert_eq!(unit.devices[0].access, Access::ALL);
        assert_eq!(unit.devices[1].target, PathBuf::from("/dev/modem"));
        assert_eq!(unit.devices[1].access.to_string(), "rw");
        assert_eq!(unit.device_rules[0].to_string(), "c 188:* rwm");
        let error = parse("devices: [{ path: /dev/x, target: /etc/x }]\n").unwrap_err();
        assert!(
            error.contains("devices: target /etc/x must be under /dev"),
            "{error}"
        );
        let error = parse("device_rules: ['c 1 r']\n").unwrap_err();
        assert!(error.starts_with("u.yaml:3:"), "{error}");
    }

    #[test]
    fn secrets_and_time_zones_are_checked() {
        let unit = parse(
            "secrets: [{ source: /etc/supd/secrets/db-password }]\ntimezone: Europe/Berlin\n",
        )
        .unwrap();
        assert_eq!(unit.secrets[0].target, "db-password");
        assert_eq!(unit.timezone, Some(Timezone::Named("Europe/Berlin".into())));
        assert_eq!(
            parse("timezone: host\n").unwrap().timezone,
            Some(Timezone::Host)
        );
        for (extra, want) in [
            (
                "secrets: [{ source: /s/a, target: x/y }]\n",
                "must be a file name",
            ),
            (
                "secrets: [{ source: /s/a }, { source: /t/a }]\n",
                "/run/secrets/a is named twice",
            ),
            ("secrets: [{ source: relative }]\n", "must be absolute"),
            (
                "timezone: ../../etc/passwd\n",
                "neither `host` nor a zone name",
            ),
        ] {
            let error = parse(extra).unwrap_err();
            assert!(error.contains(want), "{extra}: {error}");
        }
    }
}
