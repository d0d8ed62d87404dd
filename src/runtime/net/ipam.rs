//! `address: auto`: one address per unit from the bridge's subnet, unique
//! across units and kept across restarts (persisted in the state dir).

use crate::unit::Ipv4Net;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub struct Ipam {
    file: PathBuf,
    leases: BTreeMap<String, Ipv4Net>,
}

impl Ipam {
    /// Loads `STATE_DIR/addresses.json` (an unreadable file starts empty and
    /// is reported).
    pub fn load(state_dir: &Path) -> Self {
        let file = state_dir.join("addresses.json");
        let leases = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log::warn!("{}: {e}; starting with no address leases", file.display());
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Ipam { file, leases }
    }

    /// The unit's address in `subnet`: its lease if it has one there, else
    /// the first free one (not the network, gateway or broadcast address, nor
    /// any fixed address in `taken`).
    pub fn lease(
        &mut self,
        unit: &str,
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        taken: &[Ipv4Addr],
    ) -> Option<Ipv4Net> {
        if let Some(lease) = self.leases.get(unit) {
            if lease.prefix == subnet.prefix && subnet.contains(lease.ip) {
                return Some(*lease);
            }
        }
        let address = allocate(subnet, gateway, &self.in_use(unit, taken))?;
        self.leases.insert(unit.to_string(), address);
        self.save();
        Some(address)
    }

    fn in_use(&self, except: &str, taken: &[Ipv4Addr]) -> Vec<Ipv4Addr> {
        self.leases
            .iter()
            .filter(|(name, _)| name.as_str() != except)
            .map(|(_, lease)| lease.ip)
            .chain(taken.iter().copied())
            .collect()
    }

    /// The unit is gone: its address may go to another.
    pub fn release(&mut self, unit: &str) {
        if self.leases.remove(unit).is_some() {
            self.save();
        }
    }

    fn save(&self) {
        let result = serde_json::to_vec_pretty(&self.leases)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::supervisor::write_atomically(&self.file, &bytes));
        if let Err(e) = result {
            log::error!("cannot save address leases to {}: {e}", self.file.display());
        }
    }
}

/// The first free host address of `subnet`.
pub fn allocate(subnet: Ipv4Net, gateway: Option<Ipv4Addr>, taken: &[Ipv4Addr]) -> Option<Ipv4Net> {
    let first = u32::from(subnet.network()) + 1;
    let last = u32::from(subnet.broadcast()).checked_sub(1)?;
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| Some(*ip) != gateway && !taken.contains(ip))
        .map(|ip| Ipv4Net {
            ip,
            prefix: subnet.prefix,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Ipv4Net {
        let (ip, prefix) = text.split_once('/').unwrap();
        Ipv4Net {
            ip: ip.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
        }
    }

    #[test]
    fn allocation_skips_gateway_and_taken_and_stops_at_broadcast() {
        let subnet = net("10.88.0.0/30");
        let gateway = Some("10.88.0.1".parse().unwrap());
        assert_eq!(allocate(subnet, gateway, &[]), Some(net("10.88.0.2/30")));
        assert_eq!(
            allocate(subnet, gateway, &["10.88.0.2".parse().unwrap()]),
            None
        );
    }

    #[test]
    fn leases_are_unique_stable_and_persisted() {
        let dir = std::env::temp_dir().join(format!("supd-ipam-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let subnet = net("10.88.0.0/16");
        let gateway = Some("10.88.0.1".parse().unwrap());
        let mut ipam = Ipam::load(&dir);
        let a = ipam.lease("a", subnet, gateway, &[]).unwrap();
        let b = ipam
            .lease("b", subnet, gateway, &["10.88.0.3".parse().unwrap()])
            .unwrap();
        assert_eq!((a, b), (net("10.88.0.2/16"), net("10.88.0.4/16")));
        let mut reloaded = Ipam::load(&dir);
        assert_eq!(
            reloaded.lease("b", subnet, gateway, &[]),
            Some(b),
            "kept across restarts"
        );
        reloaded.release("a");
        assert_eq!(reloaded.lease("c", subnet, gateway, &[]), Some(a));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
