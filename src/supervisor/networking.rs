//! The host side of container networks: leasing addresses for `auto`,
//! removing the bridges supd created once no container uses them, the
//! nftables table of published ports and NAT, and the hosts files.

use super::Supervisor;
use crate::files::{LeaseTable, Loaded};
use crate::runtime::net::names::{self, NameFiles, Peer};
use crate::runtime::net::{self, firewall, nftables, BridgeRemoval, NetError, NetPlan};
use crate::runtime::SetupError;
use crate::unit::addressing::{PortMapping, Protocol};
use crate::unit::schema::IfName;
use crate::unit::NetworkMode;
use std::net::IpAddr;
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

/// A container on a bridge as its peers' hosts files name it.
fn peer_of(name: &str, unit: Option<&crate::unit::Unit>, plan: &NetPlan) -> Peer {
    let addresses = [
        plan.address.map(|a| IpAddr::V4(a.ip)),
        plan.address6.map(|a| IpAddr::V6(a.ip)),
    ];
    Peer {
        unit: name.to_string(),
        hostname: unit.map_or_else(|| name.to_string(), |u| u.hostname.clone()),
        aliases: plan.config.aliases.clone(),
        addresses: addresses.into_iter().flatten().collect(),
    }
}

impl Supervisor {
    /// What the container gets as /etc/hosts and /etc/resolv.conf. Bridge
    /// containers get a hosts file naming their peers, every container
    /// with a network of its own a resolv.conf.
    pub(super) fn name_files(
        &self,
        name: &str,
        unit: &crate::unit::Unit,
        plan: Option<&NetPlan>,
    ) -> Result<NameFiles, SetupError> {
        let Some(plan) = plan else {
            return Ok(NameFiles::default());
        };
        let read = |path: &str| std::fs::read_to_string(path).ok();
        let resolv_conf = (plan.config.mode != NetworkMode::None).then(|| {
            names::resolv_conf_text(
                &plan.config.dns,
                read("/etc/resolv.conf").as_deref(),
                read("/run/systemd/resolve/resolv.conf").as_deref(),
            )
        });
        let hosts_file = if plan.config.mode == NetworkMode::Bridge {
            let path = self.options.dirs.hosts_file(name);
            let own = peer_of(name, Some(unit), plan);
            let text = names::hosts_text(
                &plan.config.bridge,
                &own,
                &self.peers_on(&plan.config.bridge),
            );
            names::write_in_place(&path, &text)
                .map_err(|e| SetupError::new("hosts", Some(&path), e))?;
            Some(path)
        } else {
            None
        };
        Ok(NameFiles {
            hosts_file,
            resolv_conf,
        })
    }

    fn peers_on(&self, bridge: &str) -> Vec<Peer> {
        self.entries
            .values()
            .filter_map(|e| {
                let plan = e.run.as_ref()?.network.as_ref()?;
                (plan.config.mode == NetworkMode::Bridge && plan.config.bridge == bridge)
                    .then(|| peer_of(&e.name, e.unit.as_ref(), plan))
            })
            .collect()
    }

    /// Rewrites the hosts file of every container on `bridge` after one
    /// came or went.
    pub(super) fn refresh_hosts(&self, bridge: &str) {
        let peers = self.peers_on(bridge);
        for own in &peers {
            let path = self.options.dirs.hosts_file(&own.unit);
            let text = names::hosts_text(bridge, own, &peers);
            if let Err(e) = names::write_in_place(&path, &text) {
                log::warn!("{}: cannot update {}: {e}", own.unit, path.display());
            }
        }
    }

    /// Before a bridge container starts: its host ports must be free, and
    /// the table must hold its rules (with those of what runs).
    pub(super) fn publish(&mut self, name: &str, plan: &NetPlan) -> Result<(), SetupError> {
        if plan.config.mode != NetworkMode::Bridge {
            return Ok(());
        }
        for mapping in &plan.config.ports {
            ports_free(mapping, plan.address6.is_some())
                .map_err(|message| SetupError::message("ports", None::<&str>, message))?;
        }
        self.sync_firewall(Some((name, plan)))
            .map_err(|e| SetupError::message("nftables", None::<&str>, e.to_string()))
    }

    /// Brings supd's nftables table in line with what runs (and `starting`).
    /// The first call of a supd replaces whatever an earlier one left.
    pub(super) fn sync_firewall(
        &mut self,
        starting: Option<(&str, &NetPlan)>,
    ) -> Result<(), NetError> {
        let running = self.entries.values().filter_map(|e| {
            let plan = e.run.as_ref()?.network.as_ref()?;
            Some((e.name.as_str(), plan))
        });
        let rules = firewall::rules(running.chain(starting));
        if self.firewall.as_ref() == Some(&rules) {
            return Ok(());
        }
        // No table can exist before nf_tables is loaded, and asking would
        // load it on hosts that never use it.
        if rules.is_empty()
            && self.firewall.is_none()
            && !Path::new("/sys/module/nf_tables").exists()
        {
            self.firewall = Some(rules);
            return Ok(());
        }
        match nftables::replace_table(&firewall::CHAINS, &rules) {
            Ok(()) => {
                self.firewall = Some(rules);
                Ok(())
            }
            // Nothing to remove from a host without nftables.
            Err(e) if rules.is_empty() && self.firewall.is_none() => {
                log::debug!("no nftables table to remove: {e}");
                self.firewall = Some(rules);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// After a container left: its rules and its name go with it.
    pub(super) fn unpublish(&mut self, name: &str, plan: &NetPlan) {
        if plan.config.mode == NetworkMode::Bridge {
            self.withdraw(name);
            self.refresh_hosts(&plan.config.bridge);
        }
    }

    /// After adopting what an earlier supd left running: the table holds
    /// exactly their rules (whatever the earlier one had), and every hosts
    /// file names the peers that are really there.
    pub(super) fn rebuild_network_state(&mut self) {
        if let Err(e) = self.sync_firewall(None) {
            log::error!("cannot rebuild the nftables table of the running containers: {e}");
        }
        let bridges: std::collections::BTreeSet<String> = self
            .entries
            .values()
            .filter_map(|e| e.run.as_ref()?.network.as_ref())
            .filter(|plan| plan.config.mode == NetworkMode::Bridge)
            .map(|plan| plan.config.bridge.clone())
            .collect();
        for bridge in bridges {
            self.refresh_hosts(&bridge);
        }
    }

    /// Undoes `publish` and `name_files` for a start that failed or a
    /// container that left.
    pub(super) fn withdraw(&mut self, name: &str) {
        if let Err(e) = self.sync_firewall(None) {
            log::warn!("{name}: removing its nftables rules: {e}");
        }
        let path = self.options.dirs.hosts_file(name);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("{name}: cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// A host port another program listens on would be shadowed by the DNAT
/// rule: refused, naming the port. Binding (and closing at once) is the
/// kernel's own answer, for TCP and UDP alike.
fn ports_free(mapping: &PortMapping, ipv6: bool) -> Result<(), String> {
    let mut addresses: Vec<IpAddr> = match mapping.host_ip {
        Some(ip) => vec![ip],
        None => vec![IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)],
    };
    if mapping.host_ip.is_none() && ipv6 {
        addresses.push(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    }
    for port in mapping.host_ports() {
        for address in &addresses {
            let at = std::net::SocketAddr::new(*address, port);
            let bound = match mapping.protocol {
                Protocol::Tcp => std::net::TcpListener::bind(at).map(drop),
                Protocol::Udp => std::net::UdpSocket::bind(at).map(drop),
            };
            match bound {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(format!(
                        "host port {port}/{} is already in use on the host{}",
                        mapping.protocol.name(),
                        mapping
                            .host_ip
                            .map(|ip| format!(" ({ip})"))
                            .unwrap_or_default()
                    ))
                }
                // An address the host does not have: the rule would never
                // match; say so rather than publish nothing.
                Err(e) => return Err(format!("host port {at}/{}: {e}", mapping.protocol.name())),
            }
        }
    }
    Ok(())
}
