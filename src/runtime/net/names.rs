//! The files a container names things with: /etc/hosts (itself and its
//! peers on the bridge, rewritten in place as they come and go) and
//! /etc/resolv.conf (the unit's `dns`, or the host's resolvers). The texts
//! are pure; supd writes the hosts files under RUNTIME_DIR/hosts.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

/// What the init stage mounts over /etc/hosts and /etc/resolv.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameFiles {
    /// A host file, bind-mounted read-only: supd keeps it current.
    pub hosts_file: Option<PathBuf>,
    pub resolv_conf: Option<String>,
}

/// A container on a bridge, as the others know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub unit: String,
    pub hostname: String,
    pub aliases: Vec<String>,
    pub addresses: Vec<IpAddr>,
}

impl Peer {
    fn names(&self, own: bool) -> Vec<&str> {
        // Its own hostname first, so that `hostname -f` finds it.
        let mut names = if own {
            vec![self.hostname.as_str(), self.unit.as_str()]
        } else {
            vec![self.unit.as_str(), self.hostname.as_str()]
        };
        names.extend(self.aliases.iter().map(String::as_str));
        let mut seen = std::collections::BTreeSet::new();
        names.retain(|n| seen.insert(*n));
        names
    }
}

/// /etc/hosts of `own`, with every peer on its bridge.
pub fn hosts_text(bridge: &str, own: &Peer, peers: &[Peer]) -> String {
    let mut text = format!(
        "# Written by supd: this container and its peers on bridge {bridge}, kept current.\n\
         127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    let everyone = std::iter::once((own, true)).chain(
        peers
            .iter()
            .filter(|p| p.unit != own.unit)
            .map(|p| (p, false)),
    );
    for (peer, is_own) in everyone {
        for address in &peer.addresses {
            text.push_str(&format!("{address}\t{}\n", peer.names(is_own).join(" ")));
        }
    }
    text
}

/// Rewrites a hosts file in place: the container has the inode
/// bind-mounted, so a new file renamed over it would never be seen.
pub fn write_in_place(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn is_loopback(server: &str) -> bool {
    server
        .parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

fn nameservers(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .collect()
}

/// The container's resolv.conf: the unit's `dns` if it has any; else the
/// host's servers and search domains, where loopback servers (which the
/// container cannot reach: systemd-resolved's 127.0.0.53, a local dnsmasq)
/// give way to the upstream list systemd-resolved keeps.
pub fn resolv_conf_text(dns: &[Ipv4Addr], host: Option<&str>, resolved: Option<&str>) -> String {
    if !dns.is_empty() {
        return dns.iter().map(|ip| format!("nameserver {ip}\n")).collect();
    }
    let host = host.unwrap_or_default();
    let reachable = |text: &str| -> Vec<String> {
        nameservers(text)
            .into_iter()
            .filter(|s| !is_loopback(s))
            .map(str::to_string)
            .collect()
    };
    let mut servers = reachable(host);
    let mut source = "the host's /etc/resolv.conf";
    if servers.is_empty() {
        if let Some(upstream) = resolved {
            servers = reachable(upstream);
            source = "systemd-resolved's upstream servers";
        }
    }
    let mut text = format!("# Written by supd from {source}.\n");
    if servers.is_empty() {
        text.push_str("# The host has no resolver a container can reach.\n");
    }
    for line in host.lines() {
        let keyword = line.split_whitespace().next().unwrap_or_default();
        if matches!(keyword, "search" | "domain" | "options") {
            text.push_str(line.trim());
            text.push('\n');
        }
    }
    for server in servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(unit: &str, ip: &str, aliases: &[&str]) -> Peer {
        Peer {
            unit: unit.into(),
            hostname: unit.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            addresses: vec![ip.parse().unwrap()],
        }
    }

    #[test]
    fn hosts_name_the_container_and_its_peers() {
        let mut web = peer("web", "10.88.0.10", &[]);
        web.hostname = "front".into();
        web.addresses.push("fd88::a58:a".parse().unwrap());
        let db = peer("db", "10.88.0.11", &["postgres"]);
        let text = hosts_text("supbr0", &web, &[web.clone(), db]);
        assert!(text.contains("127.0.0.1\tlocalhost\n"), "{text}");
        assert!(text.contains("10.88.0.10\tfront web\n"), "{text}");
        assert!(text.contains("fd88::a58:a\tfront web\n"), "{text}");
        assert!(text.contains("10.88.0.11\tdb postgres\n"), "{text}");
        assert_eq!(text.matches("10.88.0.10").count(), 1, "{text}");
    }

    #[test]
    fn resolv_conf_from_dns_the_host_or_systemd_resolved() {
        let dns = ["10.0.0.53".parse().unwrap()];
        assert_eq!(resolv_conf_text(&dns, None, None), "nameserver 10.0.0.53\n");
        let host = "nameserver 192.0.2.1\nnameserver 127.0.0.1\nsearch lan\n";
        let text = resolv_conf_text(&[], Some(host), None);
        assert!(
            text.contains("search lan\nnameserver 192.0.2.1\n"),
            "{text}"
        );
        assert!(!text.contains("127.0.0.1"), "{text}");
        let stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n";
        let upstream = "nameserver 192.0.2.53\nnameserver 2001:db8::53\n";
        let text = resolv_conf_text(&[], Some(stub), Some(upstream));
        assert!(text.contains("systemd-resolved"), "{text}");
        assert!(text.contains("options edns0 trust-ad\n"), "{text}");
        assert!(
            text.ends_with("nameserver 192.0.2.53\nnameserver 2001:db8::53\n"),
            "{text}"
        );
        let text = resolv_conf_text(&[], Some(stub), None);
        assert!(text.contains("no resolver"), "{text}");
        assert!(!text.contains("nameserver"), "{text}");
    }
}
