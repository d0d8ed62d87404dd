//! Exclusive resources: a fixed address on a network segment and a host id
//! range belong to one unit. A unit that asks for what another already
//! holds is refused at reconcile, naming the holder; the holder keeps
//! running. Pure, like the planner.

use crate::unit::addressing::PortMapping;
use crate::unit::loader::Outcome;
use crate::unit::security::UserNamespace;
use crate::unit::{NetworkMode, Unit, UnitError};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// An address on a segment (`bridge supbr0`, `parent eth0`).
    Address { segment: String, ip: Ipv4Addr },
    /// Host uids `start..end`.
    Uids { start: u64, end: u64 },
    /// Host gids `start..end`.
    Gids { start: u64, end: u64 },
    /// Published host ports.
    HostPorts(PortMapping),
}

impl Claim {
    fn conflicts(&self, other: &Claim) -> bool {
        match (self, other) {
            (
                Claim::Address { segment, ip },
                Claim::Address {
                    segment: s2,
                    ip: ip2,
                },
            ) => segment == s2 && ip == ip2,
            (Claim::Uids { start, end }, Claim::Uids { start: s2, end: e2 })
            | (Claim::Gids { start, end }, Claim::Gids { start: s2, end: e2 }) => {
                start < e2 && s2 < end
            }
            (Claim::HostPorts(mine), Claim::HostPorts(theirs)) => mine.overlaps(theirs),
            _ => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            Claim::Address { segment, ip } => format!("address {ip} on {segment}"),
            Claim::Uids { start, end } => format!("host uids {start}-{}", end - 1),
            Claim::Gids { start, end } => format!("host gids {start}-{}", end - 1),
            Claim::HostPorts(mapping) => {
                format!("host port {}", mapping.describe_host_side())
            }
        }
    }
}

/// The network segment a unit's interface is on.
pub fn segment(unit: &Unit) -> Option<String> {
    match unit.network.mode {
        NetworkMode::Bridge => Some(format!("bridge {}", unit.network.bridge)),
        NetworkMode::Macvlan | NetworkMode::Ipvlan => {
            Some(format!("parent {}", unit.network.parent))
        }
        NetworkMode::Host | NetworkMode::None => None,
    }
}

/// What a unit's own file claims, with the field that claims it. `auto`
/// addresses and ranges are leased by supd and never conflict with each
/// other; the caller passes those leases as held claims.
pub fn fixed_claims(unit: &Unit) -> Vec<(&'static str, Claim)> {
    let mut claims = Vec::new();
    if let (Some(segment), Some(address)) = (segment(unit), unit.network.address) {
        claims.push((
            "network.address",
            Claim::Address {
                segment,
                ip: address.ip,
            },
        ));
    }
    for mapping in &unit.network.ports {
        claims.push(("network.ports", Claim::HostPorts(*mapping)));
    }
    if let Some(UserNamespace::Maps { uid, gid }) = &unit.security.user_namespace {
        let range = |m: &crate::unit::security::IdMap| {
            let start = u64::from(m.outside);
            (start, start + u64::from(m.count))
        };
        for (start, end) in uid.iter().map(range) {
            claims.push((
                "security.user_namespace.uid_map",
                Claim::Uids { start, end },
            ));
        }
        for (start, end) in gid.iter().map(range) {
            claims.push((
                "security.user_namespace.gid_map",
                Claim::Gids { start, end },
            ));
        }
    }
    claims
}

/// Turns every valid unit whose fixed claims collide with a claim `held`
/// by another unit (a running container, a lease), or with a unit earlier
/// in name order, into an invalid one. `sources` gives each unit's file.
/// Returns how many were refused.
pub fn refuse_conflicts(
    desired: &mut BTreeMap<String, Outcome>,
    held: &[(String, Claim)],
    sources: &BTreeMap<String, PathBuf>,
) -> usize {
    let mut accepted: Vec<(String, Claim)> = Vec::new();
    let mut refused = 0;
    for (name, outcome) in desired.iter_mut() {
        let Outcome::Valid(unit) = outcome else {
            continue;
        };
        if !unit.enabled {
            continue;
        }
        let claims = fixed_claims(unit);
        let clash = claims.iter().find_map(|(field, claim)| {
            held.iter()
                .chain(accepted.iter())
                .find(|(holder, other)| holder != name && claim.conflicts(other))
                .map(|(holder, _)| (*field, claim, holder.clone()))
        });
        match clash {
            Some((field, claim, holder)) => {
                refused += 1;
                *outcome = Outcome::Invalid(UnitError {
                    file: sources
                        .get(name)
                        .cloned()
                        .unwrap_or_else(|| PathBuf::from(format!("{name}.yaml"))),
                    line: 0,
                    column: 0,
                    field: field.to_string(),
                    message: format!("{} is already used by unit {holder}", claim.describe()),
                });
            }
            None => accepted.extend(claims.into_iter().map(|(_, c)| (name.clone(), c))),
        }
    }
    refused
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::parse_unit;

    fn unit(name: &str, extra: &str) -> Outcome {
        let text = format!("rootfs: /r\nexec: [/x]\n{extra}");
        Outcome::Valid(Box::new(
            parse_unit(name, std::path::Path::new("x.yaml"), &text).unwrap(),
        ))
    }

    fn error_of(outcome: &Outcome) -> Option<String> {
        match outcome {
            Outcome::Invalid(e) => Some(e.to_string()),
            _ => None,
        }
    }

    #[test]
    fn the_holder_keeps_its_address_and_the_other_unit_is_told() {
        let fixed = "network: {mode: bridge, address: 10.88.0.5/16}\n";
        let other_bridge = "network: {mode: bridge, bridge: br1, address: 10.88.0.5/16}\n";
        let mut desired: BTreeMap<String, Outcome> = [
            ("a".to_string(), unit("a", fixed)),
            ("b".to_string(), unit("b", fixed)),
            ("c".to_string(), unit("c", other_bridge)),
            (
                "d".to_string(),
                unit("d", "network: {mode: bridge, address: 10.88.0.2/16}\n"),
            ),
        ]
        .into();
        // b runs with the address already; an `auto` lease holds .2 for e.
        let held = [
            (
                "b".to_string(),
                fixed_claims(&parse("b", fixed))[0].1.clone(),
            ),
            (
                "e".to_string(),
                Claim::Address {
                    segment: "bridge supbr0".into(),
                    ip: "10.88.0.2".parse().unwrap(),
                },
            ),
        ];
        refuse_conflicts(&mut desired, &held, &BTreeMap::new());
        assert_eq!(
            error_of(&desired["a"]).unwrap(),
            "a.yaml: network.address: address 10.88.0.5 on bridge supbr0 is already used by unit b"
        );
        assert_eq!(error_of(&desired["b"]), None);
        assert_eq!(error_of(&desired["c"]), None, "another segment");
        assert!(error_of(&desired["d"]).unwrap().ends_with("used by unit e"));
    }

    fn parse(name: &str, extra: &str) -> Unit {
        match unit(name, extra) {
            Outcome::Valid(unit) => *unit,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_published_port_belongs_to_one_unit() {
        let ports = |p: &str| format!("network: {{mode: bridge, ports: [{p}]}}\n");
        let mut desired: BTreeMap<String, Outcome> = [
            ("a".to_string(), unit("a", &ports("'8000-8010:80-90'"))),
            ("b".to_string(), unit("b", &ports("'127.0.0.1:8005:80'"))),
            ("c".to_string(), unit("c", &ports("'8005:80/udp'"))),
            ("d".to_string(), unit("d", &ports("'8011:80'"))),
        ]
        .into();
        refuse_conflicts(&mut desired, &[], &BTreeMap::new());
        assert_eq!(error_of(&desired["a"]), None);
        assert_eq!(
            error_of(&desired["b"]).unwrap(),
            "b.yaml: network.ports: host port 127.0.0.1:8005/tcp is already used by unit a"
        );
        assert_eq!(error_of(&desired["c"]), None, "another protocol");
        assert_eq!(error_of(&desired["d"]), None, "past the range");
    }

    #[test]
    fn overlapping_id_ranges_are_refused_in_name_order() {
        let ns = |map: &str| {
            format!("security: {{user_namespace: {{uid_map: '{map}', gid_map: '0:500000:10'}}}}\n")
        };
        let mut desired: BTreeMap<String, Outcome> = [
            ("a".to_string(), unit("a", &ns("0:100000:65536"))),
            ("b".to_string(), unit("b", &ns("0:165535:10"))),
            ("c".to_string(), unit("c", &ns("0:165536:10"))),
        ]
        .into();
        refuse_conflicts(&mut desired, &[], &BTreeMap::new());
        assert_eq!(error_of(&desired["a"]), None);
        assert!(error_of(&desired["b"])
            .unwrap()
            .contains("uid_map: host uids 165535-165544 is already used by unit a"));
        assert!(error_of(&desired["c"])
            .unwrap()
            .contains("gid_map: host gids 500000-500009 is already used by unit a"));
    }
}
