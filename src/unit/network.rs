//! Validation of `network:` and `sysctls:`.

use super::addressing::{Address6Spec, Ipv6Net, PortMapping};
use super::schema::{AddressSpec, RawNetwork};
use super::{Ipv4Net, NetworkConfig, NetworkMode};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// (field, message) of the first problem.
pub type Problem = (String, String);

fn problem(field: &str, message: impl Into<String>) -> Problem {
    (field.to_string(), message.into())
}

/// The subnet `auto` uses when no gateway is given (as podman's default).
pub const DEFAULT_GATEWAY: Ipv4Net = Ipv4Net {
    ip: Ipv4Addr::new(10, 88, 0, 1),
    prefix: 16,
};

pub fn network(raw: RawNetwork) -> Result<NetworkConfig, Problem> {
    let mode = raw.mode.unwrap_or_default();
    let given: Vec<(&str, bool)> = vec![
        ("bridge", raw.bridge.is_some()),
        ("address", raw.address.is_some()),
        ("gateway", raw.gateway.is_some()),
        ("parent", raw.parent.is_some()),
        ("interface", raw.interface.is_some()),
        ("macvlan_mode", raw.macvlan_mode.is_some()),
        ("ipvlan_mode", raw.ipvlan_mode.is_some()),
        ("rps", raw.rps.is_some()),
        ("dns", raw.dns.is_some()),
        ("mtu", raw.mtu.is_some()),
        ("ports", raw.ports.is_some()),
        ("nat", raw.nat.is_some()),
        ("address6", raw.address6.is_some()),
        ("gateway6", raw.gateway6.is_some()),
        ("aliases", raw.aliases.is_some()),
    ];
    let allowed: &[&str] = match mode {
        NetworkMode::Host | NetworkMode::None => &[],
        NetworkMode::Bridge => &[
            "bridge",
            "address",
            "gateway",
            "interface",
            "rps",
            "dns",
            "mtu",
            "ports",
            "nat",
            "address6",
            "gateway6",
            "aliases",
        ],
        NetworkMode::Macvlan => &[
            "address",
            "gateway",
            "parent",
            "interface",
            "macvlan_mode",
            "dns",
            "mtu",
        ],
        NetworkMode::Ipvlan => &[
            "address",
            "gateway",
            "parent",
            "interface",
            "ipvlan_mode",
            "dns",
            "mtu",
        ],
    };
    if let Some((key, _)) = given
        .iter()
        .find(|(key, set)| *set && !allowed.contains(key))
    {
        let mode_name = format!("{mode:?}").to_lowercase();
        return Err(problem(
            &format!("network.{key}"),
            format!("has no meaning with network mode {mode_name}"),
        ));
    }
    let mut config = NetworkConfig {
        mode,
        bridge: raw.bridge.map_or_else(|| "supbr0".to_string(), |b| b.0),
        interface: raw.interface.map_or_else(|| "eth0".to_string(), |i| i.0),
        parent: raw.parent.map(|p| p.0).unwrap_or_default(),
        macvlan_mode: raw.macvlan_mode.unwrap_or_default(),
        ipvlan_mode: raw.ipvlan_mode.unwrap_or_default(),
        rps: raw.rps.unwrap_or(false),
        dns: raw
            .dns
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.ip)
            .collect(),
        mtu: raw.mtu,
        nat: mode == NetworkMode::Bridge && raw.nat.unwrap_or(true),
        aliases: raw
            .aliases
            .unwrap_or_default()
            .into_iter()
            .map(|a| a.0)
            .collect(),
        ..NetworkConfig::default()
    };
    (config.address6, config.gateway6) = ipv6(raw.address6, raw.gateway6.map(|g| g.0))?;
    config.ports = ports(
        raw.ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.0)
            .collect(),
        config.gateway6.is_some(),
    )?;
    if let Some(mtu) = config.mtu {
        if !(68..=65535).contains(&mtu) {
            return Err(problem(
                "network.mtu",
                format!("must be between 68 and 65535, not {mtu}"),
            ));
        }
    }
    if matches!(mode, NetworkMode::Host | NetworkMode::None) {
        return Ok(config);
    }
    if mode != NetworkMode::Bridge && config.parent.is_empty() {
        return Err(problem(
            "network.parent",
            "required: the host interface to attach to",
        ));
    }
    let address = match (raw.address, mode) {
        (Some(AddressSpec::Static(cidr)), _) => Some(Ipv4Net {
            ip: cidr.ip,
            prefix: cidr.prefix.unwrap_or(32),
        }),
        (None | Some(AddressSpec::Auto), NetworkMode::Bridge) => None,
        _ => {
            return Err(problem(
                "network.address",
                "required: a fixed address such as 192.168.1.50/24 (auto needs bridge mode)",
            ))
        }
    };
    let subnet = match (address, raw.gateway) {
        (Some(address), _) => address,
        (None, Some(gateway)) => match gateway.prefix {
            Some(prefix) => Ipv4Net {
                ip: gateway.ip,
                prefix,
            },
            None => return Err(problem(
                "network.gateway",
                "with address: auto, give the gateway with its prefix length, such as 10.88.0.1/16",
            )),
        },
        (None, None) => DEFAULT_GATEWAY,
    };
    if subnet.prefix > 30 && mode == NetworkMode::Bridge {
        return Err(problem(
            "network.address",
            "the subnet needs a prefix length of 30 or less",
        ));
    }
    let gateway = match (raw.gateway, address, mode) {
        (Some(g), _, _) => Some(g.ip),
        (None, None, _) => Some(DEFAULT_GATEWAY.ip),
        // A bridge's own address is the natural gateway: the subnet's first.
        (None, Some(a), NetworkMode::Bridge) => Some(Ipv4Addr::from(u32::from(a.network()) + 1)),
        (None, Some(_), _) => None,
    };
    if let Some(gateway) = gateway {
        if !subnet.contains(gateway) {
            return Err(problem(
                "network.gateway",
                format!(
                    "{gateway} is outside {}/{}",
                    subnet.network(),
                    subnet.prefix
                ),
            ));
        }
        if address.is_some_and(|a| a.ip == gateway) {
            return Err(problem("network.address", "must differ from the gateway"));
        }
    }
    if let Some(a) = address {
        if a.prefix < 31 && (a.ip == a.network() || a.ip == a.broadcast()) {
            return Err(problem(
                "network.address",
                format!("{a} is the network or broadcast address"),
            ));
        }
    }
    config.address = address;
    config.subnet = Some(Ipv4Net {
        ip: subnet.network(),
        prefix: subnet.prefix,
    });
    config.gateway = gateway;
    Ok(config)
}

/// The bridge's IPv6 subnet when `address6` is not given as a CIDR: a
/// unique local /64, as the IPv4 default is a private /16.
pub const DEFAULT_GATEWAY6: Ipv6Net = Ipv6Net {
    ip: Ipv6Addr::new(0xfd88, 0, 0, 0, 0, 0, 0, 1),
    prefix: 64,
};

/// (fixed address, gateway): both None without IPv6.
fn ipv6(
    address: Option<Address6Spec>,
    gateway: Option<Ipv6Net>,
) -> Result<(Option<Ipv6Net>, Option<Ipv6Net>), Problem> {
    let (fixed, gateway) = match (address, gateway) {
        (None, None) => return Ok((None, None)),
        (None, Some(_)) => {
            return Err(problem(
                "network.gateway6",
                "needs address6 (a CIDR or auto)",
            ))
        }
        (Some(Address6Spec::Auto), gateway) => {
            let gateway = gateway.unwrap_or(DEFAULT_GATEWAY6);
            if gateway.prefix > 96 {
                return Err(problem(
                    "network.gateway6",
                    "address6: auto needs a prefix length of 96 or less (the IPv4 address fills the last 32 bits)",
                ));
            }
            (None, gateway)
        }
        (Some(Address6Spec::Static(address)), gateway) => {
            let gateway = gateway.unwrap_or(Ipv6Net {
                ip: Ipv6Addr::from(u128::from(address.network()) + 1),
                prefix: address.prefix,
            });
            if !address.contains(gateway.ip) || gateway.prefix != address.prefix {
                return Err(problem(
                    "network.gateway6",
                    format!("{gateway} is not on the subnet of {address}"),
                ));
            }
            if address.ip == gateway.ip {
                return Err(problem("network.address6", "must differ from the gateway"));
            }
            (Some(address), gateway)
        }
    };
    if gateway.ip.is_loopback() || gateway.ip.is_unspecified() || gateway.ip.segments()[0] == 0xfe80
    {
        return Err(problem(
            "network.gateway6",
            format!("{gateway} cannot be a bridge's subnet (loopback, unspecified or link-local)"),
        ));
    }
    Ok((fixed, Some(gateway)))
}

fn ports(ports: Vec<PortMapping>, has_ipv6: bool) -> Result<Vec<PortMapping>, Problem> {
    for (i, port) in ports.iter().enumerate() {
        if port.host_ip.is_some_and(|ip| ip.is_ipv6()) && !has_ipv6 {
            return Err(problem(
                "network.ports",
                format!(
                    "{} is an IPv6 host address: the unit needs address6",
                    port.describe_host_side()
                ),
            ));
        }
        if let Some(earlier) = ports[..i].iter().find(|p| p.overlaps(port)) {
            return Err(problem(
                "network.ports",
                format!(
                    "{} and {} take the same host port",
                    earlier.describe_host_side(),
                    port.describe_host_side()
                ),
            ));
        }
    }
    Ok(ports)
}

/// Only keys that the container's own namespaces hold are accepted.
pub fn sysctls(
    raw: BTreeMap<String, String>,
    mode: NetworkMode,
) -> Result<BTreeMap<String, String>, Problem> {
    for key in raw.keys() {
        let field = format!("sysctls.{key}");
        let valid_name = !key.is_empty()
            && key.split('.').all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
            });
        if !valid_name {
            return Err(problem(&field, format!("{key:?} is not a sysctl name")));
        }
        if key == "kernel.hostname" {
            return Err(problem(&field, "use the unit's `hostname` key instead"));
        }
        let namespaced = key.starts_with("net.")
            || key.starts_with("kernel.shm")
            || key.starts_with("kernel.msg")
            || key == "kernel.sem"
            || key.starts_with("fs.mqueue.")
            || key == "kernel.domainname";
        if !namespaced {
            return Err(problem(
                &field,
                format!("{key} is not namespaced: it would change the host (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, kernel.domainname)"),
            ));
        }
        if key.starts_with("net.") && mode == NetworkMode::Host {
            return Err(problem(
                &field,
                format!("{key} needs a network namespace of its own: with network mode host it would change the host"),
            ));
        }
    }
    Ok(raw)
}
