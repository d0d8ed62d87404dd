//! The pure part: which cgroup files to write for a unit's resources, on v1
//! or v2, and how to check what the kernel reads back.

use super::{CgroupError, Layout};
use crate::unit::{IoLimit, Resources};
use std::collections::BTreeSet;
use std::path::Path;

/// The CFS period supd uses: `cpu.max: 0.5` is 50000 us per 100000 us.
pub const CPU_PERIOD_US: u64 = 100_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    /// The v1 controller whose hierarchy holds the file (ignored on v2).
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
    pub check: Check,
    /// Set by the unit: a missing file is an error. Otherwise it resets a
    /// limit to the default and is skipped where the file does not exist.
    pub required: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Exact,
    /// Bytes: the kernel rounds down to whole pages; `max` and `-1` mean no
    /// limit.
    Bytes,
    CpuList,
    /// Multi-line device files: the written line is listed (or, for a
    /// lifted limit, no line for the device is).
    DeviceLine,
}

impl Check {
    pub fn matches(self, wrote: &str, read: &str) -> bool {
        let read = read.trim();
        match self {
            Check::Exact => read == wrote,
            Check::Bytes => match (wrote, read.parse::<u64>()) {
                ("max" | "-1", Ok(value)) => value >= 1 << 62,
                ("max" | "-1", Err(_)) => read == "max",
                (wrote, Ok(value)) => wrote
                    .parse::<u64>()
                    .is_ok_and(|w| value <= w && w - value < 64 * 1024),
                _ => false,
            },
            Check::CpuList => {
                wrote.is_empty() || parse_cpus(wrote).is_some_and(|w| parse_cpus(read) == Some(w))
            }
            Check::DeviceLine => {
                let device = wrote.split_whitespace().next().unwrap_or("");
                let lifted = wrote
                    .split_whitespace()
                    .skip(1)
                    .all(|v| v == "0" || v.ends_with("=max"));
                if lifted {
                    !read
                        .lines()
                        .any(|l| l.split_whitespace().next() == Some(device))
                } else {
                    read.lines().any(|l| l.trim() == wrote)
                }
            }
        }
    }
}

fn parse_cpus(text: &str) -> Option<BTreeSet<u32>> {
    crate::host::CpuList::parse(text.trim()).ok().map(|c| c.0)
}

fn set(
    controller: &'static str,
    file: &'static str,
    value: Option<String>,
    default: &str,
    check: Check,
) -> Write {
    Write {
        controller,
        file,
        required: value.is_some(),
        value: value.unwrap_or_else(|| default.to_string()),
        check,
    }
}

type DeviceNumbers<'a> = &'a dyn Fn(&Path) -> Result<(u64, u64), CgroupError>;

/// The writes for `resources` on `layout`, in an order the kernel accepts.
/// `previous` lets lifted I/O limits be reset on a live update.
pub fn plan_writes(
    layout: Layout,
    resources: &Resources,
    previous: Option<&Resources>,
    devices: DeviceNumbers<'_>,
) -> Result<Vec<Write>, CgroupError> {
    match layout {
        Layout::V2 => v2_writes(resources, previous, devices),
        Layout::V1 { .. } => v1_writes(resources, previous, devices),
    }
}

fn quota(cpus: f64) -> u64 {
    (cpus * CPU_PERIOD_US as f64).round() as u64
}

fn v2_writes(
    r: &Resources,
    previous: Option<&Resources>,
    devices: DeviceNumbers<'_>,
) -> Result<Vec<Write>, CgroupError> {
    if r.memory_swappiness.is_some() {
        return Err(CgroupError::Unsupported(
            "memory.swappiness has no meaning on cgroup v2: use memory.swap".into(),
        ));
    }
    let bytes = |v: Option<u64>| v.map(|b| b.to_string());
    let mut writes = vec![
        set("", "memory.max", bytes(r.memory_max), "max", Check::Bytes),
        set("", "memory.high", bytes(r.memory_high), "max", Check::Bytes),
        set(
            "",
            "memory.swap.max",
            bytes(r.memory_swap),
            "max",
            Check::Bytes,
        ),
        set(
            "",
            "cpu.max",
            r.cpu_max.map(|c| format!("{} {CPU_PERIOD_US}", quota(c))),
            &format!("max {CPU_PERIOD_US}"),
            Check::Exact,
        ),
        set(
            "",
            "cpu.weight",
            r.cpu_weight.map(|w| w.to_string()),
            "100",
            Check::Exact,
        ),
        set("", "cpuset.cpus", r.cpuset.clone(), "", Check::CpuList),
        set(
            "",
            "pids.max",
            r.pids_max.map(|p| p.to_string()),
            "max",
            Check::Exact,
        ),
        set(
            "",
            "io.weight",
            r.io_weight.map(|w| format!("default {w}")),
            "default 100",
            Check::Exact,
        ),
    ];
    for (limit, lifted) in io_limits(r, previous) {
        let (major, minor) = devices(&limit.device)?;
        let value = |v: Option<u64>| {
            v.filter(|_| !lifted)
                .map_or("max".to_string(), |v| v.to_string())
        };
        writes.push(Write {
            controller: "",
            file: "io.max",
            value: format!(
                "{major}:{minor} rbps={} wbps={} riops={} wiops={}",
                value(limit.read_bps),
                value(limit.write_bps),
                value(limit.read_iops),
                value(limit.write_iops)
            ),
            check: Check::DeviceLine,
            required: true,
        });
    }
    Ok(writes)
}

fn v1_writes(
    r: &Resources,
    previous: Option<&Resources>,
    devices: DeviceNumbers<'_>,
) -> Result<Vec<Write>, CgroupError> {
    if r.memory_high.is_some() {
        return Err(CgroupError::Unsupported(
            "memory.high has no meaning on cgroup v1: use memory.max".into(),
        ));
    }
    let memsw = match (r.memory_swap, r.memory_max) {
        (Some(swap), Some(max)) => Some((max + swap).to_string()),
        (Some(_), None) => {
            return Err(CgroupError::Unsupported(
                "memory.swap needs memory.max on cgroup v1 (memsw limits memory plus swap)".into(),
            ))
        }
        _ => None,
    };
    let mut writes = vec![
        // Lift memory+swap first: it may never be below the memory limit.
        set(
            "memory",
            "memory.memsw.limit_in_bytes",
            None,
            "-1",
            Check::Bytes,
        ),
        set(
            "memory",
            "memory.limit_in_bytes",
            r.memory_max.map(|b| b.to_string()),
            "-1",
            Check::Bytes,
        ),
    ];
    if memsw.is_some() {
        writes.push(set(
            "memory",
            "memory.memsw.limit_in_bytes",
            memsw,
            "-1",
            Check::Bytes,
        ));
    }
    if let Some(swappiness) = r.memory_swappiness {
        writes.push(set(
            "memory",
            "memory.swappiness",
            Some(swappiness.to_string()),
            "60",
            Check::Exact,
        ));
    }
    writes.extend([
        set(
            "cpu",
            "cpu.cfs_period_us",
            None,
            &CPU_PERIOD_US.to_string(),
            Check::Exact,
        ),
        set(
            "cpu",
            "cpu.cfs_quota_us",
            r.cpu_max.map(|c| quota(c).to_string()),
            "-1",
            Check::Exact,
        ),
        set(
            "cpu",
            "cpu.shares",
            r.cpu_weight
                .map(|w| (u64::from(w) * 1024 / 100).clamp(2, 262_144).to_string()),
            "1024",
            Check::Exact,
        ),
        set(
            "pids",
            "pids.max",
            r.pids_max.map(|p| p.to_string()),
            "max",
            Check::Exact,
        ),
        set(
            "blkio",
            "blkio.weight",
            r.io_weight
                .map(|w| (u64::from(w) * 5).clamp(10, 1000).to_string()),
            "500",
            Check::Exact,
        ),
    ]);
    if let Some(cpus) = &r.cpuset {
        writes.push(set(
            "cpuset",
            "cpuset.cpus",
            Some(cpus.clone()),
            "",
            Check::CpuList,
        ));
    }
    for (limit, lifted) in io_limits(r, previous) {
        let (major, minor) = devices(&limit.device)?;
        let files = [
            ("blkio.throttle.read_bps_device", limit.read_bps),
            ("blkio.throttle.write_bps_device", limit.write_bps),
            ("blkio.throttle.read_iops_device", limit.read_iops),
            ("blkio.throttle.write_iops_device", limit.write_iops),
        ];
        for (file, value) in files {
            let value = value.filter(|_| !lifted).unwrap_or(0);
            writes.push(Write {
                controller: "blkio",
                file,
                value: format!("{major}:{minor} {value}"),
                check: Check::DeviceLine,
                required: true,
            });
        }
    }
    Ok(writes)
}

/// The unit's I/O limits, then the previous ones for devices it no longer
/// names (marked lifted).
fn io_limits<'a>(r: &'a Resources, previous: Option<&'a Resources>) -> Vec<(&'a IoLimit, bool)> {
    let mut limits: Vec<(&IoLimit, bool)> = r.io_limits.iter().map(|l| (l, false)).collect();
    if let Some(previous) = previous {
        for old in &previous.io_limits {
            if !r.io_limits.iter().any(|l| l.device == old.device) {
                limits.push((old, true));
            }
        }
    }
    limits
}
