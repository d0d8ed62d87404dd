//! The host side of container networks: leasing addresses for `auto` and
//! removing the bridges supd created once no container uses them.

use super::Supervisor;
use crate::runtime::net::{self, NetPlan};
use crate::runtime::SetupError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// `RUNTIME_DIR/bridges`: the bridges supd created, one per line, so that
/// a supd started after one that was killed still removes them once
/// unused. Runtime, not state: bridges do not survive a reboot either.
fn bridges_file(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join("bridges")
}

/// The bridges an earlier supd recorded (none if the file is unreadable).
pub(super) fn load_created_bridges(runtime_dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(bridges_file(runtime_dir))
        .map(|text| text.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

impl Supervisor {
    /// The run's network: `auto` leases an address from the bridge subnet,
    /// avoiding the fixed addresses of the other units on it.
    pub(super) fn plan_network(
        &mut self,
        name: &str,
        unit: &crate::unit::Unit,
    ) -> Result<Option<NetPlan>, SetupError> {
        use crate::unit::NetworkMode;
        let config = &unit.network;
        match (config.mode, config.address, config.subnet) {
            (NetworkMode::Host, _, _) => Ok(None),
            (NetworkMode::Bridge, None, Some(subnet)) => {
                let taken: Vec<std::net::Ipv4Addr> = self
                    .entries
                    .values()
                    .filter_map(|e| e.unit.as_ref()?.network.address.map(|a| a.ip))
                    .collect();
                let lease = self
                    .ipam
                    .lease(name, subnet, config.gateway, &taken)
                    .ok_or_else(|| {
                        SetupError::message(
                            "network",
                            None::<&str>,
                            format!("no free address left in {subnet}"),
                        )
                    })?;
                Ok(Some(NetPlan::new(name, config, Some(lease))))
            }
            _ => Ok(Some(NetPlan::new(name, config, None))),
        }
    }

    /// Records a bridge this supd created.
    pub(super) fn bridge_created(&mut self, bridge: String) {
        self.bridges_created.insert(bridge);
        self.save_created_bridges();
    }

    fn save_created_bridges(&self) {
        let file = bridges_file(&self.options.dirs.runtime);
        let mut text = String::new();
        for bridge in &self.bridges_created {
            text.push_str(bridge);
            text.push('\n');
        }
        if let Err(e) = super::write_atomically(&file, text.as_bytes()) {
            log::warn!(
                "cannot record the bridges supd created in {}: {e}",
                file.display()
            );
        }
    }

    /// Deletes the bridges supd created that no running container uses.
    pub(super) fn remove_unused_bridges(&mut self) {
        let in_use: std::collections::BTreeSet<&str> = self
            .entries
            .values()
            .filter_map(|e| e.run.as_ref()?.network.as_ref())
            .filter(|plan| plan.config.mode == crate::unit::NetworkMode::Bridge)
            .map(|plan| plan.config.bridge.as_str())
            .collect();
        let unused: Vec<String> = self
            .bridges_created
            .iter()
            .filter(|b| !in_use.contains(b.as_str()))
            .cloned()
            .collect();
        if unused.is_empty() {
            return;
        }
        for bridge in unused {
            self.bridges_created.remove(&bridge);
            match net::remove_bridge(&bridge) {
                Ok(true) => log::info!("removed bridge {bridge}: no unit uses it"),
                Ok(false) => {}
                Err(e) => log::warn!("cannot remove bridge {bridge}: {e}"),
            }
        }
        self.save_created_bridges();
    }
}
