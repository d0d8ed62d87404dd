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
    /// new limits into the running container's cgroup, keeping its pid.
    pub(super) fn update_live(&mut self, name: &str, unit: Unit) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let previous = entry.unit.as_ref().map(|u| u.resources.clone());
        let resources_changed = previous.as_ref() != Some(&unit.resources);
        let old_devices = entry
            .unit
            .as_ref()
            .map(|u| (u.devices.clone(), u.device_rules.clone()));
        let new_devices = (unit.devices.clone(), unit.device_rules.clone());
        let resources = unit.resources.clone();
        entry.adopt(unit, super::monotonic_now());
        let Some(run) = entry.run.as_ref() else {
            return;
        };
        if let Some(old) = old_devices.filter(|old| *old != new_devices) {
            match update_devices(run, &old, &new_devices) {
                Ok(()) => log::info!(
                    "{name}: devices and device rules updated without restart (pid {})",
                    run.pid
                ),
                Err(e) => {
                    log::error!("{name}: cannot apply the new devices: {e}");
                    entry.machine.live_update(Err(e));
                    return;
                }
            }
            if !resources_changed {
                entry.machine.live_update(Ok(()));
                return;
            }
        }
        if !resources_changed {
            log::info!("{name}: unit changed, applied without restart");
            return;
        }
        match run.cgroup.apply(&resources, previous.as_ref()) {
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
                entry.machine.live_update(Ok(()));
            }
            Err(e) => {
                log::error!("{name}: cannot apply the new resources: {e}");
                entry.machine.live_update(Err(e.to_string()));
            }
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

type Devices = (Vec<Device>, Vec<crate::unit::inputs::DeviceRule>);

/// The device cgroup first (a new device is allowed before its node
/// appears, a removed one refused before its node goes), then the nodes.
fn update_devices(run: &super::entry::Run, old: &Devices, new: &Devices) -> Result<(), String> {
    let rules = crate::runtime::cgroup::device_rules(&new.0, &new.1).map_err(|e| e.to_string())?;
    run.cgroup.set_devices(&rules).map_err(|e| e.to_string())?;
    let moved = |from: &[Device], to: &[Device]| -> Vec<Device> {
        from.iter()
            .filter(|d| !to.iter().any(|t| t.path == d.path && t.target == d.target))
            .cloned()
            .collect()
    };
    let added = moved(&new.0, &old.0);
    let removed = moved(&old.0, &new.0);
    if added.is_empty() && removed.is_empty() {
        return Ok(());
    }
    crate::runtime::devnodes::update_live(run.pid.as_raw(), &added, &removed)
        .map_err(|e| e.to_string())
}
