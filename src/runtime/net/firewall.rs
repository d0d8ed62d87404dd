//! What supd's nftables table must hold, computed from the networks of the
//! containers that run: egress masquerade per bridge, DNAT per published
//! port, and the masquerades that make hairpin and 127.0.0.1 work. Pure:
//! `nftables` turns these rules into netlink messages.

use super::NetPlan;
use crate::unit::addressing::{Ipv6Net, Protocol};
use crate::unit::{Ipv4Net, NetworkMode};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// The table's name, in the `inet` family (one table for IPv4 and IPv6).
pub const TABLE: &str = "supd";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Output,
    Postrouting,
}

/// A chain of the table: base chains hook into the kernel as `nat` chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chain {
    pub name: &'static str,
    /// None: a regular chain, entered by jump.
    pub hook: Option<(Hook, i32)>,
}

/// Where DNAT is decided: dstnat priority, as Docker's and Podman's.
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

pub const PUBLISHED: &str = "published";

pub const CHAINS: [Chain; 4] = [
    Chain {
        name: "prerouting",
        hook: Some((Hook::Prerouting, DSTNAT)),
    },
    Chain {
        name: "output",
        hook: Some((Hook::Output, DSTNAT)),
    },
    Chain {
        name: "postrouting",
        hook: Some((Hook::Postrouting, SRCNAT)),
    },
    Chain {
        name: PUBLISHED,
        hook: None,
    },
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subnet {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    Family(Family),
    Protocol(Protocol),
    OutInterface {
        name: String,
        equal: bool,
    },
    Source(Subnet),
    Destination(IpAddr),
    /// Inclusive.
    DestinationPorts(u16, u16),
    /// `fib daddr type local`: addressed to the host itself.
    DestinationLocal,
    /// `ct status dnat`: the connection's destination was translated.
    DestinationTranslated,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Jump(&'static str),
    Masquerade,
    /// None keeps the port.
    Dnat {
        to: IpAddr,
        port: Option<u16>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub chain: &'static str,
    pub matches: Vec<Match>,
    pub action: Action,
    /// Shown by `nft list table inet supd`: which unit or bridge it serves.
    pub comment: String,
}

/// The whole table for these runs (unit name, network), in a stable order.
/// Empty when nothing needs a rule: the table is then removed.
pub fn rules<'a>(runs: impl IntoIterator<Item = (&'a str, &'a NetPlan)>) -> Vec<Rule> {
    let mut runs: Vec<(&str, &NetPlan)> = runs
        .into_iter()
        .filter(|(_, plan)| plan.config.mode == NetworkMode::Bridge)
        .collect();
    runs.sort_by_key(|(name, _)| *name);
    let mut bridges: BTreeMap<&str, BridgeNeeds> = BTreeMap::new();
    let mut published = Vec::new();
    for (name, plan) in &runs {
        let needs = bridges.entry(plan.config.bridge.as_str()).or_default();
        needs.egress |= plan.config.nat;
        needs.ports |= !plan.config.ports.is_empty();
        if let Some(subnet) = plan.config.subnet {
            needs.subnet.get_or_insert(subnet);
        }
        if let Some(gateway6) = plan.config.gateway6 {
            needs.subnet6.get_or_insert(gateway6);
        }
        published.extend(dnat_rules(name, plan));
    }
    let mut rules = Vec::new();
    if !published.is_empty() {
        for chain in ["prerouting", "output"] {
            rules.push(Rule {
                chain,
                matches: vec![Match::DestinationLocal],
                action: Action::Jump(PUBLISHED),
                comment: "published ports of supd's containers".into(),
            });
        }
    }
    for (bridge, needs) in &bridges {
        rules.extend(needs.postrouting(bridge));
    }
    rules.extend(published);
    rules
}

#[derive(Default)]
struct BridgeNeeds {
    egress: bool,
    ports: bool,
    subnet: Option<Ipv4Net>,
    subnet6: Option<Ipv6Net>,
}

impl BridgeNeeds {
    fn postrouting(&self, bridge: &str) -> Vec<Rule> {
        let out = |equal| Match::OutInterface {
            name: bridge.to_string(),
            equal,
        };
        let masquerade = |matches, comment: String| Rule {
            chain: "postrouting",
            matches,
            action: Action::Masquerade,
            comment,
        };
        let v4 = self.subnet.map(|s| Subnet::V4(network4(s)));
        let v6 = self.subnet6.map(|s| Subnet::V6(network6(s)));
        let mut rules = Vec::new();
        if self.egress {
            if let Some(v4) = v4 {
                rules.push(masquerade(
                    vec![Match::Family(Family::V4), Match::Source(v4), out(false)],
                    format!("{bridge}: egress"),
                ));
            }
            // NAT66 only from a unique local prefix: a global one is routed.
            if let Some(v6) = v6.filter(|_| self.subnet6.is_some_and(|s| s.is_unique_local())) {
                rules.push(masquerade(
                    vec![Match::Family(Family::V6), Match::Source(v6), out(false)],
                    format!("{bridge}: egress (NAT66 from a unique local prefix)"),
                ));
            }
        }
        if self.ports {
            // A peer reaching a published port must see the answer come
            // back through the host, not straight from the container.
            for (family, subnet) in [(Family::V4, v4), (Family::V6, v6)] {
                if let Some(subnet) = subnet {
                    rules.push(masquerade(
                        vec![
                            Match::Family(family),
                            Match::Source(subnet),
                            out(true),
                            Match::DestinationTranslated,
                        ],
                        format!("{bridge}: hairpin to published ports"),
                    ));
                }
            }
            // The host's own 127.0.0.1 cannot be answered from the bridge.
            rules.push(masquerade(
                vec![
                    Match::Family(Family::V4),
                    Match::Source(Subnet::V4(Ipv4Net {
                        ip: Ipv4Addr::new(127, 0, 0, 0),
                        prefix: 8,
                    })),
                    out(true),
                ],
                format!("{bridge}: published ports from 127.0.0.1"),
            ));
        }
        rules
    }
}

fn network4(net: Ipv4Net) -> Ipv4Net {
    Ipv4Net {
        ip: net.network(),
        prefix: net.prefix,
    }
}

fn network6(net: Ipv6Net) -> Ipv6Net {
    Ipv6Net {
        ip: net.network(),
        prefix: net.prefix,
    }
}

/// One DNAT rule per published mapping and family; a range whose host
/// and container ports differ is mapped port by port.
fn dnat_rules(name: &str, plan: &NetPlan) -> Vec<Rule> {
    let mut rules = Vec::new();
    let targets: Vec<(Family, IpAddr)> = [
        plan.address.map(|a| (Family::V4, IpAddr::V4(a.ip))),
        plan.address6.map(|a| (Family::V6, IpAddr::V6(a.ip))),
    ]
    .into_iter()
    .flatten()
    .collect();
    for mapping in &plan.config.ports {
        for (family, to) in &targets {
            let host_family = match mapping.host_ip {
                Some(IpAddr::V4(_)) => Some(Family::V4),
                Some(IpAddr::V6(_)) => Some(Family::V6),
                None => None,
            };
            if host_family.is_some_and(|f| f != *family) {
                continue;
            }
            let mut head = vec![Match::Family(*family)];
            head.extend(mapping.host_ip.map(Match::Destination));
            head.push(Match::Protocol(mapping.protocol));
            let comment = format!("unit {name}");
            let last = mapping.count - 1;
            let shifted: Vec<(u16, u16, Option<u16>)> =
                if mapping.host_port == mapping.container_port {
                    vec![(mapping.host_port, mapping.host_port + last, None)]
                } else {
                    (0..=last)
                        .map(|i| {
                            let port = mapping.host_port + i;
                            (port, port, Some(mapping.container_port + i))
                        })
                        .collect()
                };
            for (first, end, port) in shifted {
                let mut matches = head.clone();
                matches.push(Match::DestinationPorts(first, end));
                rules.push(Rule {
                    chain: PUBLISHED,
                    matches,
                    action: Action::Dnat { to: *to, port },
                    comment: comment.clone(),
                });
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::parse_unit;

    fn plan(name: &str, network: &str, address: &str) -> NetPlan {
        let text = format!("rootfs: /r\nexec: [/x]\nnetwork: {network}\n");
        let unit = parse_unit(name, std::path::Path::new("x.yaml"), &text).unwrap();
        let (ip, prefix) = address.split_once('/').unwrap();
        let address = Ipv4Net {
            ip: ip.parse().unwrap(),
            prefix: prefix.parse().unwrap(),
        };
        NetPlan::new(name, &unit.network, Some(address))
    }

    #[test]
    fn nothing_runs_nothing_in_the_table() {
        let none: [(&str, &NetPlan); 0] = [];
        assert!(rules(none).is_empty());
        let quiet = plan("q", "{mode: bridge, nat: false}", "10.88.0.2/16");
        assert!(rules([("q", &quiet)]).is_empty());
    }

    #[test]
    fn egress_hairpin_and_published_ports() {
        let web = plan(
            "web",
            "{mode: bridge, ports: ['8080:80', '127.0.0.1:5353:53/udp', '9000-9001:9000-9001'], address6: auto}",
            "10.88.0.10/16",
        );
        let db = plan("db", "{mode: bridge}", "10.88.0.11/16");
        let rules = rules([("web", &web), ("db", &db)]);
        let find = |chain: &str, action: &Action| {
            rules
                .iter()
                .filter(|r| r.chain == chain && &r.action == action)
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(find("prerouting", &Action::Jump(PUBLISHED)).len(), 1);
        assert_eq!(find("output", &Action::Jump(PUBLISHED)).len(), 1);
        let masquerades = find("postrouting", &Action::Masquerade);
        // egress v4 and v6 (fd88::/64 is unique local), hairpin v4 and v6,
        // loopback: once for the bridge, whatever the number of units.
        assert_eq!(masquerades.len(), 5, "{masquerades:#?}");
        assert_eq!(
            masquerades[0].matches,
            vec![
                Match::Family(Family::V4),
                Match::Source(Subnet::V4(Ipv4Net {
                    ip: Ipv4Addr::new(10, 88, 0, 0),
                    prefix: 16
                })),
                Match::OutInterface {
                    name: "supbr0".into(),
                    equal: false
                },
            ]
        );
        let to_web = |port| Action::Dnat {
            to: IpAddr::V4(Ipv4Addr::new(10, 88, 0, 10)),
            port,
        };
        let http = find(PUBLISHED, &to_web(Some(80)));
        assert_eq!(http.len(), 1);
        assert_eq!(
            http[0].matches,
            vec![
                Match::Family(Family::V4),
                Match::Protocol(Protocol::Tcp),
                Match::DestinationPorts(8080, 8080)
            ]
        );
        assert_eq!(http[0].comment, "unit web");
        let dns = find(PUBLISHED, &to_web(Some(53)));
        assert!(dns[0]
            .matches
            .contains(&Match::Destination(IpAddr::V4(Ipv4Addr::LOCALHOST))));
        // An unshifted range is one rule; IPv6 gets the unaddressed ones.
        let range = find(PUBLISHED, &to_web(None));
        assert_eq!(range[0].matches[2], Match::DestinationPorts(9000, 9001));
        let v6 = rules
            .iter()
            .filter(|r| {
                matches!(
                    r.action,
                    Action::Dnat {
                        to: IpAddr::V6(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(v6, 2, "8080 and the range, not the 127.0.0.1 one");
    }

    #[test]
    fn a_shifted_range_maps_port_by_port_and_global_ipv6_is_not_masqueraded() {
        let app = plan(
            "app",
            "{mode: bridge, ports: ['8000-8002:9000-9002'], address6: '2001:db8:1::10/64'}",
            "10.88.0.10/16",
        );
        let rules = rules([("app", &app)]);
        let shifted: Vec<_> = rules
            .iter()
            .filter_map(|r| match (&r.action, r.matches.last()) {
                (
                    Action::Dnat {
                        to: IpAddr::V4(_),
                        port,
                    },
                    Some(Match::DestinationPorts(a, b)),
                ) => Some((*a, *b, *port)),
                _ => None,
            })
            .collect();
        assert_eq!(
            shifted,
            [
                (8000, 8000, Some(9000)),
                (8001, 8001, Some(9001)),
                (8002, 8002, Some(9002))
            ]
        );
        assert!(
            !rules.iter().any(|r| r.comment.contains("NAT66")),
            "a global prefix is routed"
        );
    }
}
