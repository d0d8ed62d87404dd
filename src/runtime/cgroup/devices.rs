//! The device cgroup: which nodes a container may open or create. v1
//! writes devices.allow and devices.deny; v2 attaches a BPF program.

use super::{io_error, read, write, Cgroup, CgroupError, Layout};
use crate::unit::inputs::{Device, DeviceKind, DeviceRule, DEFAULT_DEVICE_RULES};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

impl Cgroup {
    /// Makes `rules` (from `device_rules`) the devices the container may
    /// open and create: v1 devices files, or a BPF program on v2. Hybrid
    /// hosts have the v1 controller, whose rules the kernel checks.
    pub fn set_devices(&self, rules: &[DeviceRule]) -> Result<(), CgroupError> {
        match self.layout {
            Layout::V2 => match self.dir("") {
                Some(dir) => apply_v2(dir, rules),
                None => Ok(()),
            },
            Layout::V1 { .. } => match self.dir("devices") {
                Some(dir) => apply_v1(dir, rules),
                // No devices controller mounted: nothing to enforce with.
                None => Ok(()),
            },
        }
    }
}

/// Docker's default set, each device the unit passes in (by the host
/// node's numbers, with its permissions), then the unit's own rules.
pub fn unit_rules(
    devices: &[Device],
    extra: &[DeviceRule],
) -> Result<Vec<DeviceRule>, CgroupError> {
    let mut rules = DEFAULT_DEVICE_RULES.to_vec();
    for device in devices {
        let mut rule = host_node(&device.path)?;
        rule.access = device.access;
        rules.push(rule);
    }
    rules.extend_from_slice(extra);
    let mut seen = std::collections::BTreeSet::new();
    rules.retain(|rule| seen.insert(*rule));
    Ok(rules)
}

/// The rule for one host node: its type and numbers.
pub fn host_node(path: &Path) -> Result<DeviceRule, CgroupError> {
    let meta = std::fs::metadata(path).map_err(io_error("device", path))?;
    let kind = if meta.file_type().is_char_device() {
        DeviceKind::Char
    } else if meta.file_type().is_block_device() {
        DeviceKind::Block
    } else {
        return Err(CgroupError::Unsupported(format!(
            "device {}: not a character or block device",
            path.display()
        )));
    };
    let rdev = meta.rdev();
    Ok(DeviceRule {
        kind,
        major: Some(libc::major(rdev)),
        minor: Some(libc::minor(rdev)),
        access: crate::unit::inputs::Access::ALL,
    })
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    lines.sort_unstable();
    lines
}

/// v1: makes `dir`'s exceptions exactly `rules`. A v1 child can never be
/// allowed more than its parent, so supd's parent gets each rule first
/// (it holds no process itself). A cgroup that still allows everything,
/// as one fresh under a permissive parent does, is closed with `deny a`
/// (only possible without children); otherwise the difference is written,
/// which also works beside the cgroups a booted systemd made below.
fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let mut wanted: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let list = dir.join("devices.list");
    let current = sorted_lines(&read(&list)?);
    if current == wanted {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        extend_parent(parent, &wanted)?;
    }
    let allow = dir.join("devices.allow");
    let deny = dir.join("devices.deny");
    if current.iter().any(|l| l == "a *:* rwm") {
        write(&deny, "a")?;
        for rule in &wanted {
            write(&allow, rule)?;
        }
    } else {
        for gone in current.iter().filter(|l| !wanted.contains(l)) {
            write(&deny, gone)?;
        }
        for new in wanted.iter().filter(|w| !current.contains(w)) {
            write(&allow, new)?;
        }
    }
    let read_back = sorted_lines(&read(&list)?);
    if read_back != wanted {
        return Err(CgroupError::Mismatch {
            path: list,
            wrote: wanted.join(", "),
            read: read_back.join(", "),
        });
    }
    Ok(())
}

fn extend_parent(parent: &Path, wanted: &[String]) -> Result<(), CgroupError> {
    let current = sorted_lines(&read(&parent.join("devices.list"))?);
    if current.iter().any(|l| l == "a *:* rwm") {
        return Ok(());
    }
    for rule in wanted.iter().filter(|w| !current.contains(w)) {
        write(&parent.join("devices.allow"), rule)?;
    }
    Ok(())
}

/// v2: replaces the cgroup's device program with one for `rules`.
fn apply_v2(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let cgroup = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(dir)
        .map_err(io_error("open", dir))?;
    super::device_bpf::replace(&cgroup, rules).map_err(io_error("attach a device filter to", dir))
}
