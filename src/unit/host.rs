//! Validation against the host: keys that mean nothing on this cgroup
//! layout, CPUs that are not online, devices that are not block devices.
//! Kept apart from parsing, which stays pure.

use super::Unit;
use crate::host::{is_block_device, HostCgroups, Layout};
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
pub struct HostInfo {
    pub cgroups: HostCgroups,
    pub online_cpus: BTreeSet<u32>,
}

impl HostInfo {
    pub fn online_cpus() -> BTreeSet<u32> {
        crate::host::online_cpus()
    }
}

/// The first problem found, as (field, message).
pub fn check_host(unit: &Unit, host: &HostInfo) -> Result<(), (String, String)> {
    let r = &unit.resources;
    let fail = |field: &str, message: String| Err((field.to_string(), message));
    let layout = host.cgroups.layout;
    match layout {
        Layout::V1 { .. } => {
            if r.memory_high.is_some() {
                return fail(
                    "resources.memory.high",
                    format!("has no meaning on this host's {layout}: use memory.max"),
                );
            }
            if r.memory_swap.is_some() && r.memory_max.is_none() {
                return fail(
                    "resources.memory.swap",
                    "needs memory.max on cgroup v1, where memsw limits memory plus swap".into(),
                );
            }
        }
        Layout::V2 => {
            if r.memory_swappiness.is_some() {
                return fail(
                    "resources.memory.swappiness",
                    "has no meaning on cgroup v2 (this host): use memory.swap".into(),
                );
            }
        }
    }
    if r.memory_swap.is_some() && !host.cgroups.swap_accounting {
        return fail(
            "resources.memory.swap",
            "swap accounting is off on this host (no memory.memsw / memory.swap.max files; boot with swapaccount=1)".into(),
        );
    }
    if r.io_weight.is_some() && !host.cgroups.io_weight {
        return fail(
            "resources.io.weight",
            "I/O weights are not available on this host (the I/O scheduler offers no weight file)"
                .into(),
        );
    }
    if let Some(cpuset) = &r.cpuset {
        let wanted = super::schema::CpuList::parse(cpuset)
            .map(|l| l.0)
            .unwrap_or_default();
        let offline: BTreeSet<u32> = wanted.difference(&host.online_cpus).copied().collect();
        if !offline.is_empty() {
            let online = super::schema::CpuList(host.online_cpus.clone()).render();
            return fail(
                "resources.cpu.cpuset",
                format!(
                    "CPUs {} are not online on this host (online: {online})",
                    super::schema::CpuList(offline).render()
                ),
            );
        }
    }
    for (index, limit) in r.io_limits.iter().enumerate() {
        if !is_block_device(&limit.device) {
            return fail(
                &format!("resources.io.limits[{index}].device"),
                format!(
                    "{} is not a block device on this host",
                    limit.device.display()
                ),
            );
        }
    }
    Ok(())
}
