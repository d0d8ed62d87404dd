//! The host side of container networks: leasing addresses for `auto` and
//! removing the bridges supd created once no container uses them.

use super::Supervisor;
use crate::files::{LeaseTable, Loaded};
use crate::runtime::net::{self, BridgeRemoval, NetPlan};
use crate::runtime::SetupError;
use crate::unit::schema::IfName;
use std::path::Path;

/// `RUNTIME_DIR/bridges.json`: the bridges supd created (name -> link
/// index), so that a supd started after one that was killed still removes
/// them once unused. Runtime, not state: bridges do not survive a reboot
/// either.
pub(super) fn load_created_bridges(runtime_dir: &Path) -> (LeaseTable<u32>, Loaded) {
    LeaseTable::load(
        runtime_dir.join("bridges.json"),
        "the list of bridges supd created",
        |bridges| match bridges.keys().find(|name| !IfName::is_valid(name)) {
            Some(name) => Err(format!("{name:?} is not an interface name")),
            None => Ok(()),
        },
    )
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
    pub(super) fn bridge_created(&mut self, bridge: &str, index: u32) {
        self.bridges_created.insert(bridge, index);
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
        let unused: Vec<(String, u32)> = self
            .bridges_created
            .iter()
            .filter(|(b, _)| !in_use.contains(b.as_str()))
            .map(|(b, index)| (b.clone(), *index))
            .collect();
        for (bridge, index) in unused {
            self.bridges_created.remove(&bridge);
            match net::remove_bridge(&bridge, index) {
                Ok(BridgeRemoval::Removed) => {
                    log::info!("removed bridge {bridge}: no unit uses it")
                }
                Ok(BridgeRemoval::Missing) => {}
                Ok(BridgeRemoval::NotOurs(why)) => log::warn!("not removing {bridge}: {why}"),
                Err(e) => log::warn!("cannot remove bridge {bridge}: {e}"),
            }
        }
    }
}
