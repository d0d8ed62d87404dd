//! The supervisor's side of cgroups: live updates and removal retries.

use super::{deadline_after, Supervisor};
use crate::runtime::cgroup::Cgroup;
use crate::unit::inputs::Device;
use crate::unit::Unit;
use std::time::Duration;

/// Between attempts to remove a cgroup that was still busy.
const REMOVAL_RETRY: Duration = Duration::from_millis(100);
/// After this many attempts (10 s) the cgroup is reported and left.
const REMOVAL_ATTEMPTS: u32 = 100;

impl Supervisor {
    /// A change that touches only live-settable fields: adopt it and write
    /// the new devices and limits into the running container, keeping its
    /// pid. The first that fails is the unit's error.
    pub(super) fn update_live(&mut self, name: &str, unit: Unit) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let Some(old) = entry.unit.clone() else {
            entry.adopt(unit, super::monotonic_now());
            return;
        };
        let new = unit.clone();
        entry.adopt(unit, super::monotonic_now());
        let Some(run) = entry.run.as_ref() else {
            return;
        };
        let devices = (old.devices != new.devices || old.device_rules != new.device_rules)
            .then(|| live_devices(name, run, &old, &new));
        let cgroup_limits = |r: &crate::unit::Resources| crate::unit::Resources {
            storage_size: None,
            ..r.clone()
        };
        let resources = (cgroup_limits(&old.resources) != cgroup_limits(&new.resources))
            .then(|| live_resources(name, run, &old.resources, &new.resources));
        let storage = (old.resources.storage_size != new.resources.storage_size)
            .then(|| self.live_storage(name, &new));
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        match (devices, resources, storage) {
            (None, None, None) => log::info!("{name}: unit changed, applied without restart"),
            (Some(Err(e)), _, _) | (_, Some(Err(e)), _) | (_, _, Some(Err(e))) => {
                entry.machine.live_update(Err(e))
            }
            _ => entry.machine.live_update(Ok(())),
        }
    }

    /// Removes a cgroup now, or retries later if it is still busy.
    pub(super) fn remove_cgroup(&mut self, cgroup: Cgroup) {
        if let Err(e) = cgroup.remove() {
            log::debug!("{}: {e}; retrying", cgroup.path().display());
            self.removals.push((cgroup, 1));
            self.removal_at.get_or_insert(deadline_after(REMOVAL_RETRY));
        }
    }

    pub(super) fn retry_removals(&mut self) {
        let pending = std::mem::take(&mut self.removals);
        for (cgroup, attempts) in pending {
            match cgroup.remove() {
                Ok(()) => {}
                Err(e) if attempts >= REMOVAL_ATTEMPTS => {
                    log::error!("giving up removing a container cgroup: {e}");
                }
                Err(_) => self.removals.push((cgroup, attempts.saturating_add(1))),
            }
        }
        if !self.removals.is_empty() {
            self.removal_at = Some(deadline_after(REMOVAL_RETRY));
        }
    }

    /// At exit: one last attempt for every cgroup still pending.
    pub(super) fn finish_removals(&mut self) {
        for (cgroup, _) in std::mem::take(&mut self.removals) {
            if let Err(e) = cgroup.remove() {
                log::error!("leaving a container cgroup behind: {e}");
            }
        }
    }
}

/// The device cgroup first (a new device is allowed before its node
/// appears, a removed one refused before its node goes), then the nodes.
fn live_devices(name: &str, run: &super::entry::Run, old: &Unit, new: &Unit) -> Result<(), String> {
    let result = crate::runtime::cgroup::device_rules(&new.devices, &new.device_rules)
        .and_then(|rules| run.cgroup.set_devices(&rules))
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let added = devices_missing_from(&new.devices, &old.devices);
            let removed = devices_missing_from(&old.devices, &new.devices);
            if added.is_empty() && removed.is_empty() {
                return Ok(());
            }
            crate::runtime::devnodes::update_live(run.pid.as_raw(), &added, &removed)
                .map_err(|e| e.to_string())
        });
    match &result {
        Ok(()) => log::info!(
            "{name}: devices and device rules updated without restart (pid {})",
            run.pid
        ),
        Err(e) => log::error!("{name}: cannot apply the new devices: {e}"),
    }
    result
}

/// The devices of `from` that `to` does not pass in at the same place.
fn devices_missing_from(from: &[Device], to: &[Device]) -> Vec<Device> {
    from.iter()
        .filter(|d| !to.iter().any(|t| t.path == d.path && t.target == d.target))
        .cloned()
        .collect()
}

fn live_resources(
    name: &str,
    run: &super::entry::Run,
    old: &crate::unit::Resources,
    new: &crate::unit::Resources,
) -> Result<(), String> {
    match run.cgroup.apply(new, Some(old)) {
        Ok(applied) => {
            log::info!(
                "{name}: resources updated without restart (pid {}): {}",
                run.pid,
                if applied.is_empty() {
                    "all limits lifted".to_string()
                } else {
                    applied.join(", ")
                }
            );
            Ok(())
        }
        Err(e) => {
            log::error!("{name}: cannot apply the new resources: {e}");
            Err(e.to_string())
        }
    }
}
