//! The texts of `network.ports`, `address6` and `gateway6`: published port
//! mappings and IPv6 networks.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/tcp|udp]`: `count`
/// consecutive host ports go to as many container ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    /// Only connections to this host address; None: every host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub count: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    pub fn parse(text: &str) -> Result<Self, String> {
        let example = "expected [HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp], such as \"8080:80\", \"127.0.0.1:5353:53/udp\" or \"8000-8010:8000-8010\"";
        let bad = |why: &str| format!("invalid port mapping {text:?}: {why}; {example}");
        let (rest, protocol) = match text.rsplit_once('/') {
            Some((rest, "tcp")) => (rest, Protocol::Tcp),
            Some((rest, "udp")) => (rest, Protocol::Udp),
            Some((_, other)) => return Err(bad(&format!("unknown protocol {other:?}"))),
            None => (text, Protocol::Tcp),
        };
        let (host_ip, ports) = split_host_ip(rest).map_err(|why| bad(&why))?;
        let (host, container) = ports
            .split_once(':')
            .ok_or_else(|| bad("both a host and a container port are needed"))?;
        let (host_port, host_count) = port_range(host).map_err(|why| bad(&why))?;
        let (container_port, container_count) = port_range(container).map_err(|why| bad(&why))?;
        if host_count != container_count {
            return Err(bad("the host and container ranges differ in length"));
        }
        Ok(PortMapping {
            host_ip,
            host_port,
            container_port,
            count: host_count,
            protocol,
        })
    }

    pub fn host_ports(&self) -> std::ops::RangeInclusive<u16> {
        self.host_port..=self.host_port.saturating_add(self.count - 1)
    }

    /// Whether both would take the same host port on one address.
    pub fn overlaps(&self, other: &PortMapping) -> bool {
        let addresses_meet = match (self.host_ip, other.host_ip) {
            (Some(a), Some(b)) => a == b,
            // No address means every address, of both families.
            _ => true,
        };
        let (mine, theirs) = (self.host_ports(), other.host_ports());
        self.protocol == other.protocol
            && addresses_meet
            && mine.start() <= theirs.end()
            && theirs.start() <= mine.end()
    }

    /// "8080->80/tcp", "127.0.0.1:5353->53/udp", as `docker ps` shows them.
    pub fn describe(&self) -> String {
        let container = if self.count == 1 {
            self.container_port.to_string()
        } else {
            format!(
                "{}-{}",
                self.container_port,
                self.container_port.saturating_add(self.count - 1)
            )
        };
        let host = self.describe_host_side();
        let (host, protocol) = host.rsplit_once('/').unwrap_or((&host, "tcp"));
        format!("{host}->{container}/{protocol}")
    }

    /// "8080/tcp", "127.0.0.1:8000-8010/udp": what the host side takes.
    pub fn describe_host_side(&self) -> String {
        let address = match self.host_ip {
            Some(IpAddr::V6(ip)) => format!("[{ip}]:"),
            Some(IpAddr::V4(ip)) => format!("{ip}:"),
            None => String::new(),
        };
        let ports = if self.count == 1 {
            self.host_port.to_string()
        } else {
            format!("{}-{}", self.host_port, self.host_ports().end())
        };
        format!("{address}{ports}/{}", self.protocol.name())
    }
}

fn split_host_ip(text: &str) -> Result<(Option<IpAddr>, &str), String> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (ip, rest) = bracketed
            .split_once("]:")
            .ok_or("an IPv6 host address ends with ]:")?;
        let ip: Ipv6Addr = ip
            .parse()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        return Ok((Some(IpAddr::V6(ip)), rest));
    }
    match text.matches(':').count() {
        0 | 1 => Ok((None, text)),
        2 => {
            let (ip, rest) = text.split_once(':').ok_or("no host address")?;
            let ip: std::net::Ipv4Addr = ip
                .parse()
                .map_err(|_| format!("{ip:?} is not an IPv4 address (write IPv6 as [addr])"))?;
            Ok((Some(IpAddr::V4(ip)), rest))
        }
        _ => Err("write an IPv6 host address in brackets, as [::1]:8080:80".into()),
    }
}

/// "80" or "8000-8010": the first port and how many.
fn port_range(text: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1-65535)"))
    };
    match text.split_once('-') {
        None => Ok((port(text)?, 1)),
        Some((first, last)) => {
            let (first, last) = (port(first)?, port(last)?);
            if last < first {
                return Err(format!("the range {text} runs backwards"));
            }
            Ok((first, last - first + 1))
        }
    }
}

/// An IPv6 address with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Ipv6Net {
    pub ip: Ipv6Addr,
    pub prefix: u8,
}

impl Ipv6Net {
    pub fn parse(value: &str) -> Result<Self, String> {
        let bad = || {
            format!("invalid IPv6 network {value:?}: expected an address with its prefix length, such as fd88::10/64")
        };
        let (ip, len) = value.split_once('/').ok_or_else(bad)?;
        let prefix = len
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= 128)
            .ok_or_else(bad)?;
        Ok(Ipv6Net {
            ip: ip.parse().map_err(|_| bad())?,
            prefix,
        })
    }

    pub fn mask(self) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    pub fn network(self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.ip) & self.mask())
    }

    pub fn contains(self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.network())
    }

    /// A unique local address (fc00::/7): not routed beyond the site, so
    /// leaving the host needs NAT66.
    pub fn is_unique_local(self) -> bool {
        self.ip.segments()[0] & 0xfe00 == 0xfc00
    }
}

impl std::fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix)
    }
}

/// `address6: auto` or a CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address6Spec {
    Auto,
    Static(Ipv6Net),
}

/// A port mapping as a unit file writes it (the validated `PortMapping`
/// itself travels as a structure, in specs and records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortText(pub PortMapping);

/// An IPv6 network as a unit file writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Text(pub Ipv6Net);

crate::scalar_deserialize!(PortText, |value: &str| PortMapping::parse(value)
    .map(PortText));
crate::scalar_deserialize!(Ipv6Text, |value: &str| Ipv6Net::parse(value).map(Ipv6Text));
crate::scalar_deserialize!(Address6Spec, |value: &str| if value == "auto" {
    Ok(Address6Spec::Auto)
} else {
    Ipv6Net::parse(value).map(Address6Spec::Static)
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings_parse_with_address_range_and_protocol() {
        let m = PortMapping::parse("8080:80").unwrap();
        assert_eq!(
            (
                m.host_ip,
                m.host_port,
                m.container_port,
                m.count,
                m.protocol
            ),
            (None, 8080, 80, 1, Protocol::Tcp)
        );
        let m = PortMapping::parse("127.0.0.1:5353:53/udp").unwrap();
        assert_eq!(m.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(m.protocol, Protocol::Udp);
        let m = PortMapping::parse("8000-8010:9000-9010").unwrap();
        assert_eq!((m.host_port, m.container_port, m.count), (8000, 9000, 11));
        assert_eq!(m.describe_host_side(), "8000-8010/tcp");
        assert_eq!(m.describe(), "8000-8010->9000-9010/tcp");
        let m = PortMapping::parse("[::1]:8443:443").unwrap();
        assert_eq!(m.describe_host_side(), "[::1]:8443/tcp");
        let error = PortMapping::parse("80").unwrap_err();
        assert!(
            error.contains("both a host and a container port"),
            "{error}"
        );
        for bad in [
            "80",
            "0:80",
            "8080:80/sctp",
            "8000-8010:8000-8005",
            "9-1:9-1",
            "::1:80:80",
            "x:80:80",
            "70000:80",
        ] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_needs_the_same_protocol_address_and_ports() {
        let p = |t: &str| PortMapping::parse(t).unwrap();
        assert!(p("8080:80").overlaps(&p("8080:81")));
        assert!(p("8000-8010:8000-8010").overlaps(&p("8010:80")));
        assert!(!p("8080:80").overlaps(&p("8080:80/udp")));
        assert!(!p("8080:80").overlaps(&p("8081:80")));
        assert!(p("127.0.0.1:8080:80").overlaps(&p("8080:80")));
        assert!(!p("127.0.0.1:8080:80").overlaps(&p("127.0.0.2:8080:80")));
    }

    #[test]
    fn ipv6_networks() {
        let net = Ipv6Net::parse("fd88::10/64").unwrap();
        assert_eq!(net.network(), "fd88::".parse::<Ipv6Addr>().unwrap());
        assert!(net.contains("fd88::1".parse().unwrap()));
        assert!(!net.contains("fd89::1".parse().unwrap()));
        assert!(net.is_unique_local());
        assert!(!Ipv6Net::parse("2001:db8::1/64").unwrap().is_unique_local());
        assert!(Ipv6Net::parse("fd88::1").is_err());
    }
}
