//! Container networking over rtnetlink. The host side runs in supd while the
//! cloned child waits (so its interface is in place before it runs); the
//! container side runs in the init stage, inside the new namespace. Links
//! inside the container vanish with its namespace; a veth's host end goes
//! with its peer; a bridge supd created is removed when no unit uses it.

pub mod firewall;
pub mod ipam;
pub mod names;
pub mod netlink;
pub mod nftables;

use crate::unit::addressing::Ipv6Net;
use crate::unit::{Ipv4Net, IpvlanMode, MacvlanMode, NetworkConfig, NetworkMode};
use netlink::Netlink;
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoIpVlan, InfoKind, InfoMacVlan, InfoPortData, InfoPortKind,
    InfoVeth, IpVlanMode, LinkAttribute, LinkInfo, LinkMessage, MacVlanMode,
};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink {op}: {source}")]
    Netlink { op: String, source: io::Error },
    #[error("netlink {op}: cannot decode the reply: {detail}")]
    Decode { op: String, detail: String },
    #[error("{op}: {}", io::Error::from_raw_os_error(*.errno))]
    Kernel { op: String, errno: i32 },
    #[error("{0}")]
    Other(String),
}

/// One run's network, resolved: the address `auto` allocated, the name of
/// the host end of the veth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetPlan {
    pub config: NetworkConfig,
    pub address: Option<Ipv4Net>,
    /// bridge mode with `address6`: the fixed one, or for `auto` the
    /// bridge's prefix with the IPv4 address as its last 32 bits (unique
    /// because the IPv4 address is).
    #[serde(default)]
    pub address6: Option<Ipv6Net>,
    /// bridge mode: the veth's host end.
    pub host_link: String,
}

impl NetPlan {
    pub fn new(unit_name: &str, config: &NetworkConfig, address: Option<Ipv4Net>) -> Self {
        let address = config.address.or(address);
        let derived6 = match (config.gateway6, address) {
            (Some(gateway), Some(v4)) => Some(Ipv6Net {
                ip: std::net::Ipv6Addr::from(
                    u128::from(gateway.network()) | u128::from(u32::from(v4.ip)),
                ),
                prefix: gateway.prefix,
            }),
            _ => None,
        };
        NetPlan {
            config: config.clone(),
            address,
            address6: config.address6.or(derived6),
            host_link: host_link_name(unit_name),
        }
    }
}

/// `sv` and 8 hex digits of a hash of the unit name: short enough for the
/// kernel's 15 bytes, stable across restarts, unlikely to collide.
pub fn host_link_name(unit_name: &str) -> String {
    // FNV-1a: a fixed, dependency-free hash.
    let hash = unit_name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("sv{hash:08x}")
}

fn link_message(name: &str, kind: InfoKind, data: Option<InfoData>) -> LinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    let mut info = vec![LinkInfo::Kind(kind)];
    if let Some(data) = data {
        info.push(LinkInfo::Data(data));
    }
    message.attributes.push(LinkAttribute::LinkInfo(info));
    message
}

fn required_index(netlink: &mut Netlink, name: &str) -> Result<u32, NetError> {
    netlink
        .link_index(name)?
        .ok_or_else(|| NetError::Other(format!("no interface {name}")))
}

/// What the host side created, to undo on stop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostSide {
    /// The bridge (name, link index) was created by this call.
    pub created_bridge: Option<(String, u32)>,
}

/// Host side, before the container runs: its interface is created in (or
/// moved to) the namespace of `pid`.
pub fn setup_host(plan: &NetPlan, pid: Pid) -> Result<HostSide, NetError> {
    let config = &plan.config;
    let mut netlink = Netlink::open()?;
    let pid = pid.as_raw() as u32;
    match config.mode {
        NetworkMode::Host | NetworkMode::None => Ok(HostSide::default()),
        NetworkMode::Bridge => {
            let created_bridge = ensure_bridge(&mut netlink, config)?;
            let mut peer = LinkMessage::default();
            peer.attributes
                .push(LinkAttribute::IfName(config.interface.clone()));
            peer.attributes.push(LinkAttribute::NetNsPid(pid));
            let veth = link_message(
                &plan.host_link,
                InfoKind::Veth,
                Some(InfoData::Veth(InfoVeth::Peer(peer))),
            );
            // A veth left by a supd that died would block the name.
            if let Some(stale) = netlink.link_index(&plan.host_link)? {
                netlink.delete_link(stale)?;
            }
            netlink.new_link(&format!("create veth {}", plan.host_link), veth)?;
            let bridge = required_index(&mut netlink, &config.bridge)?;
            let host = required_index(&mut netlink, &plan.host_link)?;
            let mut attributes = vec![LinkAttribute::Controller(bridge)];
            if let Some(mtu) = config.mtu {
                attributes.push(LinkAttribute::Mtu(mtu));
            }
            netlink.set_link(host, true, attributes)?;
            if !config.ports.is_empty() {
                // Where br_netfilter is loaded, the container's own
                // connection to its published port is bridged back out
                // the port it came in on: only hairpin mode allows that.
                let hairpin = LinkInfo::PortData(InfoPortData::BridgePort(vec![
                    InfoBridgePort::HairpinMode(true),
                ]));
                let port = vec![LinkInfo::PortKind(InfoPortKind::Bridge), hairpin];
                netlink.change_link(
                    &format!("hairpin mode on {}", plan.host_link),
                    host,
                    vec![LinkAttribute::LinkInfo(port)],
                )?;
            }
            if config.rps {
                spread_receive_work(&plan.host_link)?;
            }
            Ok(HostSide {
                created_bridge: created_bridge.map(|index| (config.bridge.clone(), index)),
            })
        }
        NetworkMode::Macvlan | NetworkMode::Ipvlan => {
            let parent = required_index(&mut netlink, &config.parent)?;
            let (kind, data) = if config.mode == NetworkMode::Macvlan {
                let mode = match config.macvlan_mode {
                    MacvlanMode::Bridge => MacVlanMode::Bridge,
                    MacvlanMode::Private => MacVlanMode::Private,
                    MacvlanMode::Vepa => MacVlanMode::Vepa,
                    MacvlanMode::Passthru => MacVlanMode::Passthrough,
                };
                (
                    InfoKind::MacVlan,
                    InfoData::MacVlan(vec![InfoMacVlan::Mode(mode)]),
                )
            } else {
                let mode = match config.ipvlan_mode {
                    IpvlanMode::L2 => IpVlanMode::L2,
                    IpvlanMode::L3 => IpVlanMode::L3,
                };
                (
                    InfoKind::IpVlan,
                    InfoData::IpVlan(vec![InfoIpVlan::Mode(mode)]),
                )
            };
            let mut message = link_message(&config.interface, kind, Some(data));
            message.attributes.push(LinkAttribute::Link(parent));
            message.attributes.push(LinkAttribute::NetNsPid(pid));
            netlink.new_link(
                &format!("create {:?} on {}", config.mode, config.parent),
                message,
            )?;
            Ok(HostSide::default())
        }
    }
}

/// Creates the bridge with the gateway address if missing; its index if
/// this call created it.
fn ensure_bridge(netlink: &mut Netlink, config: &NetworkConfig) -> Result<Option<u32>, NetError> {
    let created = match netlink.link_index(&config.bridge)? {
        Some(_) => false,
        None => {
            let bridge = link_message(&config.bridge, InfoKind::Bridge, None);
            match netlink.new_link(&format!("create bridge {}", config.bridge), bridge) {
                Ok(()) => true,
                Err(NetError::Kernel { errno, .. }) if errno == libc::EEXIST => false,
                Err(e) => return Err(e),
            }
        }
    };
    let index = required_index(netlink, &config.bridge)?;
    if let (Some(gateway), Some(subnet)) = (config.gateway, config.subnet) {
        netlink.add_address(index, gateway.into(), subnet.prefix)?;
    }
    if let Some(gateway6) = config.gateway6 {
        netlink.add_address(index, gateway6.ip.into(), gateway6.prefix)?;
    }
    netlink.set_link(index, true, Vec::new())?;
    enable_forwarding(config)?;
    Ok(created.then_some(index))
}

/// The host routes for bridge containers that reach out or are reached:
/// forwarding on (never turned off again, as Docker), and `route_localnet`
/// on the bridge so that 127.0.0.1 may be translated to a container (the
/// kernel otherwise drops such packets as martians; no userland proxy).
/// IPv6 forwarding also stops the host from taking router advertisements
/// on interfaces whose accept_ra is 1: only a unit with `address6` sets it.
fn enable_forwarding(config: &NetworkConfig) -> Result<(), NetError> {
    let routed = config.nat || !config.ports.is_empty();
    let mut settings = Vec::new();
    if routed {
        settings.push("ipv4/ip_forward".to_string());
        if config.gateway6.is_some() {
            settings.push("ipv6/conf/all/forwarding".to_string());
        }
    }
    if !config.ports.is_empty() {
        settings.push(format!("ipv4/conf/{}/route_localnet", config.bridge));
    }
    for setting in settings {
        let path = std::path::Path::new("/proc/sys/net").join(&setting);
        let current = std::fs::read_to_string(&path)
            .map_err(|e| NetError::Other(format!("{}: {e}", path.display())))?;
        if current.trim() != "1" {
            std::fs::write(&path, "1")
                .map_err(|e| NetError::Other(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

/// RPS: let every online CPU take the veth's receive work instead of the one
/// that took the interrupt (a known fix for veth's latency).
fn spread_receive_work(link: &str) -> Result<(), NetError> {
    let cpus = crate::host::online_cpus();
    let mut mask = vec![0u32; (cpus.iter().max().map_or(0, |m| *m as usize) / 32) + 1];
    for cpu in cpus {
        mask[cpu as usize / 32] |= 1 << (cpu % 32);
    }
    let text = mask
        .iter()
        .rev()
        .map(|w| format!("{w:08x}"))
        .collect::<Vec<_>>()
        .join(",");
    with_own_sysfs(&|sys: &std::path::Path| {
        let queues = sys.join("class/net").join(link).join("queues");
        let entries =
            std::fs::read_dir(&queues).map_err(|e| format!("{}: {e}", queues.display()))?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("rx-") {
                let file = entry.path().join("rps_cpus");
                std::fs::write(&file, &text).map_err(|e| format!("{}: {e}", file.display()))?;
            }
        }
        Ok(())
    })
}

/// Runs `work` against a sysfs that shows supd's own network namespace.
/// The mounted /sys shows the namespace of whoever mounted it (which is why
/// `ip netns exec` remounts it), so a forked child mounts a fresh one in a
/// private mount namespace. It reports over a pipe; its exit is reaped by
/// the supervisor like any unknown child.
fn with_own_sysfs(work: &dyn Fn(&std::path::Path) -> Result<(), String>) -> Result<(), NetError> {
    use std::io::{Read, Write};
    let fail = |what: &str, e: nix::Error| NetError::Other(format!("{what}: {e}"));
    let (read_end, write_end) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail("pipe", e))?;
    // SAFETY: supd is single-threaded, so the child may run ordinary code;
    // it leaves only through _exit.
    match unsafe { nix::unistd::fork() }.map_err(|e| fail("fork", e))? {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let mut report = std::fs::File::from(write_end);
            let sys = std::path::Path::new("/sys");
            let result = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                .and_then(|()| {
                    nix::mount::mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                })
                .and_then(|()| {
                    nix::mount::mount(
                        Some("sysfs"),
                        sys,
                        Some("sysfs"),
                        nix::mount::MsFlags::empty(),
                        None::<&str>,
                    )
                })
                .map_err(|e| format!("private sysfs: {e}"))
                .and_then(|()| work(sys));
            if let Err(message) = result {
                let _ = report.write_all(message.as_bytes());
            }
            // SAFETY: leaving the forked child without running supd's
            // destructors or atexit handlers.
            unsafe { libc::_exit(0) }
        }
        nix::unistd::ForkResult::Parent { .. } => {
            drop(write_end);
            let mut message = String::new();
            std::fs::File::from(read_end)
                .read_to_string(&mut message)
                .map_err(|e| NetError::Other(format!("reading the sysfs helper: {e}")))?;
            if message.is_empty() {
                Ok(())
            } else {
                Err(NetError::Other(message))
            }
        }
    }
}

/// After the container is gone: delete the veth's host end now rather than
/// when the kernel gets round to destroying the dead namespace.
pub fn teardown_host(plan: &NetPlan) -> Result<(), NetError> {
    if plan.config.mode != NetworkMode::Bridge {
        return Ok(());
    }
    let mut netlink = Netlink::open()?;
    match netlink.link_index(&plan.host_link)? {
        Some(index) => match netlink.delete_link(index) {
            Err(NetError::Kernel { errno, .. }) if errno == libc::ENODEV => Ok(()),
            other => other,
        },
        None => Ok(()),
    }
}

/// What became of a bridge supd created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BridgeRemoval {
    Removed,
    /// Already gone.
    Missing,
    /// The name now belongs to another link (not a bridge, or another
    /// bridge than the one supd made): left alone.
    NotOurs(String),
}

/// Removes the bridge supd created as link `index` under `name`, and only
/// that one: a link of another kind or index that took the name is kept.
pub fn remove_bridge(name: &str, index: u32) -> Result<BridgeRemoval, NetError> {
    let mut netlink = Netlink::open()?;
    match netlink.link_kind(name)? {
        None => Ok(BridgeRemoval::Missing),
        Some((found, Some(InfoKind::Bridge))) if found == index => {
            netlink.delete_link(index).map(|()| BridgeRemoval::Removed)
        }
        Some((found, kind)) => Ok(BridgeRemoval::NotOurs(format!(
            "{name} is now link {found} of kind {}, not the bridge {index} supd made",
            kind.map_or("device".to_string(), |k| format!("{k:?}").to_lowercase())
        ))),
    }
}

/// Container side, inside the new network namespace: lo up, then the
/// interface's MTU, address, link state and default route.
pub fn setup_container(plan: Option<&NetPlan>) -> Result<(), NetError> {
    let mut netlink = Netlink::open()?;
    let lo = required_index(&mut netlink, "lo")?;
    netlink.set_link(lo, true, Vec::new())?;
    let Some(plan) = plan else { return Ok(()) };
    if matches!(plan.config.mode, NetworkMode::Host | NetworkMode::None) {
        return Ok(());
    }
    let index = required_index(&mut netlink, &plan.config.interface)?;
    let attributes = plan
        .config
        .mtu
        .map(LinkAttribute::Mtu)
        .into_iter()
        .collect();
    if let Some(address) = plan.address {
        netlink.add_address(index, address.ip.into(), address.prefix)?;
    }
    if let Some(address6) = plan.address6 {
        netlink.add_address(index, address6.ip.into(), address6.prefix)?;
    }
    netlink.set_link(index, true, attributes)?;
    if let Some(gateway) = plan.config.gateway {
        netlink.add_default_route(gateway.into())?;
    }
    if let Some(gateway6) = plan.config.gateway6 {
        netlink.add_default_route(gateway6.ip.into())?;
    }
    Ok(())
}
