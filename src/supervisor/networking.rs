//! The host side of container networks: leasing addresses for `auto` and
//! removing the bridges supd created once no container uses them.

use super::Supervisor;
use crate::runtime::net::{self, NetPlan};
use crate::runtime::SetupError;

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
        for bridge in unused {
            self.bridges_created.remove(&bridge);
            match net::remove_bridge(&bridge) {
                Ok(()) => log::info!("removed bridge {bridge}: no unit uses it"),
                Err(e) => log::warn!("cannot remove bridge {bridge}: {e}"),
            }
        }
    }
}
