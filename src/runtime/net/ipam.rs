//! `address: auto`: one address per unit from the bridge's subnet, unique
//! across units and kept across restarts (persisted in the state dir).

use crate::files::{LeaseTable, Loaded};
use crate::unit::Ipv4Net;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

pub struct Ipam {
    leases: LeaseTable<Ipv4Net>,
    /// The table was lost: each unit that leases again is told.
    lost: bool,
}

impl Ipam {
    /// Loads `STATE_DIR/addresses.json`. A corrupt file is moved aside and
    /// reported: each unit that had a lease then gets a new address.
    pub fn load(state_dir: &Path) -> (Self, Loaded) {
        let (leases, loaded) = LeaseTable::load(
            state_dir.join("addresses.json"),
            "address leases",
            check_leases,
        );
        let lost = matches!(loaded, Loaded::Lost { .. });
        (Ipam { leases, lost }, loaded)
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
        if self.lost {
            log::warn!(
                "{unit}: the address leases were lost (addresses.json); it now has {address}"
            );
        }
        self.leases.insert(unit, address);
        Some(address)
    }

    /// Every lease: (unit, address).
    pub fn leases(&self) -> impl Iterator<Item = (&str, &Ipv4Net)> {
        self.leases
            .iter()
            .map(|(name, lease)| (name.as_str(), lease))
    }

    /// The unit that holds `ip`, other than `except`.
    pub fn holder(&self, ip: Ipv4Addr, except: &str) -> Option<&str> {
        self.leases
            .iter()
            .find(|(name, lease)| name.as_str() != except && lease.ip == ip)
            .map(|(name, _)| name.as_str())
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
        self.leases.remove(unit);
    }
}

/// Every name a unit name, every address held once.
fn check_leases(leases: &BTreeMap<String, Ipv4Net>) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    for (name, lease) in leases {
        if !crate::unit::valid_unit_name(name) {
            return Err(format!("{name:?} is not a unit name"));
        }
        if lease.prefix > 32 {
            return Err(format!("{name}: prefix /{} is not IPv4", lease.prefix));
        }
        if let Some(other) = seen.insert(lease.ip, name) {
            return Err(format!("{} is leased to both {other} and {name}", lease.ip));
        }
    }
    Ok(())
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
        let (mut ipam, loaded) = Ipam::load(&dir);
        assert_eq!(loaded, Loaded::Missing);
        let a = ipam.lease("a", subnet, gateway, &[]).unwrap();
        let b = ipam
            .lease("b", subnet, gateway, &["10.88.0.3".parse().unwrap()])
            .unwrap();
        assert_eq!((a, b), (net("10.88.0.2/16"), net("10.88.0.4/16")));
        let (mut reloaded, loaded) = Ipam::load(&dir);
        assert_eq!(loaded, Loaded::Read);
        assert_eq!(
            reloaded.lease("b", subnet, gateway, &[]),
            Some(b),
            "kept across restarts"
        );
        reloaded.release("a");
        assert_eq!(reloaded.lease("c", subnet, gateway, &[]), Some(a));
        assert_eq!(reloaded.holder(a.ip, "b"), Some("c"));
        assert_eq!(reloaded.holder(a.ip, "c"), None);
        std::fs::write(
            dir.join("addresses.json"),
            r#"{"a": {"ip": "10.88.0.2", "prefix": 16}, "b": {"ip": "10.88.0.2", "prefix": 16}}"#,
        )
        .unwrap();
        let (_, loaded) = Ipam::load(&dir);
        assert!(matches!(loaded, Loaded::Lost { .. }), "{loaded:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
