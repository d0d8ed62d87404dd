//! Network modes and sysctls. Every daemon runs in a network namespace of
//! its own (see common::Daemon), and packets only travel between namespaces
//! the test created.

mod common;

use common::*;

const SLEEP: &str = "exec sleep 1000";

fn ping_script(targets: &[&str]) -> String {
    let pings: Vec<String> = targets
        .iter()
        .map(|t| format!("ping -c 50 -i 0.02 -W 5 {t} | tail -n 2 | tr '\\n' ' '; echo ' <- {t}'"))
        .collect();
    format!(
        "sleep 0.5; {}; echo pinged; exec sleep 1000",
        pings.join("; ")
    )
}

/// "N packets transmitted, N packets received ... round-trip min/avg/max =
/// a/b/c ms <- target"
fn ping_result<'a>(log: &'a str, target: &str) -> &'a str {
    log.lines()
        .find(|l| l.ends_with(&format!("<- {target}")))
        .unwrap_or_else(|| panic!("no ping result for {target} in:\n{log}"))
}

fn assert_all_answered(log: &str, target: &str) {
    let line = ping_result(log, target);
    assert!(
        line.contains("50 packets transmitted, 50 packets received"),
        "{line}"
    );
}

#[test]
fn bridge_containers_reach_each_other_and_the_gateway() {
    let d = Daemon::start();
    // The server also names its interface, MTU, gateway and DNS: each must
    // be seen inside.
    let bridge = "network: { mode: bridge, address: 10.89.0.10/24, rps: true, dns: [10.89.0.1, 10.89.0.53], \
                  interface: lan0, mtu: 1400, gateway: 10.89.0.1 }\n";
    d.write_unit(
        "srv",
        &sh_unit(
            &d,
            "cat /etc/resolv.conf; ip -o link show lan0; ip route; ls /sys/class/net | tr '\\n' ' '; echo listed; exec sleep 1000",
            bridge,
        ),
    );
    d.pid("srv");
    let srv = d.wait_log("srv", "listed");
    assert!(
        srv.contains("nameserver 10.89.0.1\nnameserver 10.89.0.53\n"),
        "{srv}"
    );
    assert!(srv.contains("lan0") && srv.contains("mtu 1400"), "{srv}");
    assert!(srv.contains("default via 10.89.0.1 dev lan0"), "{srv}");
    assert!(srv.contains("lan0 lo listed"), "no eth0 beside lan0: {srv}");
    let client = "network: { mode: bridge, address: 10.89.0.11/24 }\n";
    d.write_unit(
        "cli",
        &sh_unit(
            &d,
            &format!(
                "cat /etc/resolv.conf; ip -o -4 addr show eth0; ip route; {}",
                ping_script(&["10.89.0.10", "10.89.0.1"])
            ),
            client,
        ),
    );
    let log = d.wait_log("cli", "pinged");
    assert!(log.contains("inet 10.89.0.11/24"), "{log}");
    assert!(log.contains("default via 10.89.0.1 dev eth0"), "{log}");
    assert_all_answered(&log, "10.89.0.10");
    assert_all_answered(&log, "10.89.0.1");
    eprintln!("ping RTT veth+bridge: {}", ping_result(&log, "10.89.0.10"));
    assert_eq!(d.status("srv")["addresses"][0], "10.89.0.10/24");
    // RPS: the host end's receive queue takes work on every online CPU.
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let host_link = supd::runtime::net::host_link_name("srv");
    let rps = daemon_sysfs(&d, &format!("class/net/{host_link}/queues/rx-0/rps_cpus"));
    let want = if online.trim() == "0-1" { "3" } else { "" };
    if !want.is_empty() {
        assert_eq!(rps.trim_start_matches('0'), want, "rps_cpus {rps}");
    }
    assert!(
        !rps.trim_start_matches(['0', ',']).is_empty(),
        "rps_cpus is set: {rps}"
    );
    let links = daemon_links(&d);
    assert!(
        links.contains(&"supbr0".to_string()) && links.contains(&host_link),
        "{links:?}"
    );
    // After stop: no veth, no bridge supd created, only lo.
    assert!(d.supctl(&["stop", "srv", "cli"]).status.success());
    assert_eq!(daemon_links(&d), ["lo"]);
    d.stop();
}

#[test]
fn auto_addresses_are_unique_and_survive_a_restart() {
    let d = Daemon::start();
    for name in ["auto1", "auto2", "auto3"] {
        d.write_unit(name, &sh_unit(&d, SLEEP, "network: { mode: bridge }\n"));
    }
    let address = |name: &str| {
        d.pid(name);
        d.status(name)["addresses"][0]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let before: Vec<String> = ["auto1", "auto2", "auto3"]
        .iter()
        .map(|n| address(n))
        .collect();
    let mut unique = before.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{before:?}");
    assert!(
        before
            .iter()
            .all(|a| a.starts_with("10.88.0.") && a.ends_with("/16")),
        "{before:?}"
    );
    assert!(d.supctl(&["restart", "auto2"]).status.success());
    assert_eq!(address("auto2"), before[1]);
    let leases = std::fs::read_to_string(d.dir.join("state/addresses.json")).unwrap();
    assert!(leases.contains("auto2"), "{leases}");
    d.stop();
}

/// Two containers of `mode` on one parent reach each other.
fn vlan_pair(d: &Daemon, mode: &str, subnet: &str) -> String {
    let unit = |host: u8| {
        format!("network: {{ mode: {mode}, parent: parent0, address: {subnet}.{host}/24 }}\n")
    };
    let first = format!("{mode}1");
    let second = format!("{mode}2");
    d.write_unit(&first, &sh_unit(d, SLEEP, &unit(10)));
    d.pid(&first);
    let target = format!("{subnet}.10");
    d.write_unit(
        &second,
        &sh_unit(
            d,
            &format!("ip -o link show eth0; {}", ping_script(&[&target])),
            &unit(11),
        ),
    );
    let log = d.wait_log(&second, "pinged");
    assert_all_answered(&log, &target);
    eprintln!("ping RTT {mode}: {}", ping_result(&log, &target));
    assert!(d.supctl(&["stop", &first, &second]).status.success());
    log
}

/// The macvlan mode of `interface` inside the container whose init is `pid`.
fn macvlan_mode_in(pid: i32, interface: &str) -> Option<netlink_packet_route::link::MacVlanMode> {
    use netlink_packet_route::link::{InfoData, InfoMacVlan, LinkAttribute, LinkInfo};
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    let interface = interface.to_string();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut netlink = supd::runtime::net::netlink::Netlink::open().unwrap();
        let link = netlink.link(&interface).unwrap()?;
        link.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::LinkInfo(infos) => infos.into_iter().find_map(|info| match info {
                LinkInfo::Data(InfoData::MacVlan(data)) => data.into_iter().find_map(|d| match d {
                    InfoMacVlan::Mode(mode) => Some(mode),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        })
    })
    .join()
    .unwrap()
}

#[test]
fn macvlan_containers_on_one_parent_reach_each_other() {
    use netlink_packet_route::link::MacVlanMode;
    let d = Daemon::start();
    let parent = add_parent(&d, "parent0");
    // The mode and a gateway that is not the subnet's first address are
    // read back from inside.
    d.write_unit(
        "private",
        &sh_unit(
            &d,
            "ip route; echo routed; exec sleep 1000",
            "network: { mode: macvlan, parent: parent0, macvlan_mode: private, address: 10.90.0.20/24, gateway: 10.90.0.254 }\n",
        ),
    );
    let pid = d.pid("private");
    assert!(d
        .wait_log("private", "routed")
        .contains("default via 10.90.0.254 dev eth0"));
    assert_eq!(macvlan_mode_in(pid, "eth0"), Some(MacVlanMode::Private));
    assert!(d.supctl(&["stop", "private"]).status.success());
    d.write_unit(
        "macvlan1",
        &sh_unit(
            &d,
            SLEEP,
            "network: { mode: macvlan, parent: parent0, address: 10.90.0.10/24 }\n",
        ),
    );
    assert_eq!(
        macvlan_mode_in(d.pid("macvlan1"), "eth0"),
        Some(MacVlanMode::Bridge),
        "the default"
    );
    let log = vlan_pair(&d, "macvlan", "10.90.0");
    assert!(log.contains("eth0@"), "{log}");
    let mut want = vec!["lo".to_string()];
    want.extend(parent);
    assert_eq!(daemon_links(&d), want, "nothing left after stop");
    d.stop();
}

/// Some kernels have no ipvlan; the cgroup v2 tier's kernel loads the
/// module, so this runs there on every test run.
#[test]
fn ipvlan_containers_on_one_parent_reach_each_other() {
    let d = Daemon::start();
    let parent = add_parent(&d, "parent0");
    let ipvlan = kernel_has_link_kind(&d, "parent0", netlink_packet_route::link::InfoKind::IpVlan);
    if !host_has("ipvlan", ipvlan) {
        return d.stop();
    }
    vlan_pair(&d, "ipvlan", "10.91.0");
    let mut want = vec!["lo".to_string()];
    want.extend(parent);
    assert_eq!(daemon_links(&d), want, "nothing left after stop");
    d.stop();
}

#[test]
fn host_mode_sees_the_hosts_links_and_none_only_lo() {
    let d = Daemon::start();
    let links = add_parent(&d, "hostlink0");
    d.write_unit(
        "hosty",
        &sh_unit(
            &d,
            "ls /sys/class/net | tr '\\n' ' '; echo; exec sleep 1000",
            "",
        ),
    );
    d.write_unit(
        "lonely",
        &sh_unit(
            &d,
            "ls /sys/class/net | tr '\\n' ' '; echo; exec sleep 1000",
            "network: { mode: none }\n",
        ),
    );
    let mut want: Vec<&str> = links.iter().map(String::as_str).collect();
    want.push("lo");
    want.sort();
    assert_eq!(d.wait_log("hosty", "\n").trim(), want.join(" "));
    assert_eq!(d.wait_log("lonely", "\n").trim(), "lo");
    d.stop();
}

#[test]
fn sysctls_apply_inside_only_and_proc_sys_is_read_only() {
    let d = Daemon::start();
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time").unwrap();
    let script = "echo keepalive=$(cat /proc/sys/net/ipv4/tcp_keepalive_time); echo shmmni=$(cat /proc/sys/kernel/shmmni); \
                  echo 7 > /proc/sys/net/ipv4/tcp_keepalive_time 2>/dev/null && echo writable || echo read-only; exec sleep 1000";
    let extra = "network: { mode: none }\nsysctls:\n  net.ipv4.tcp_keepalive_time: 600\n  kernel.shmmni: 2048\n";
    d.write_unit("tuned", &sh_unit(&d, script, extra));
    let log = d.wait_log("tuned", "read");
    assert!(log.contains("keepalive=600"), "{log}");
    assert!(log.contains("shmmni=2048"), "{log}");
    assert!(log.contains("read-only"), "{log}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/tcp_keepalive_time").unwrap(),
        host_before
    );
    d.write_unit("nokey", &sh_unit(&d, SLEEP, "network: { mode: none }\nsysctls: { net.ipv4.no_such_knob: 1 }\nrestart: { policy: never }\n"));
    let status = d.wait_state("nokey", "failed");
    assert!(status["error"].as_str().unwrap().contains("sysctl net.ipv4.no_such_knob (/proc/sys/net/ipv4/no_such_knob): no such key in the container's namespaces"), "{status}");
    d.stop();
}

#[test]
fn host_affecting_sysctls_are_rejected_with_the_reason() {
    let d = Daemon::start();
    d.write_unit(
        "vm",
        &sh_unit(
            &d,
            SLEEP,
            "network: { mode: none }\nsysctls:\n  vm.swappiness: 10\n",
        ),
    );
    d.write_unit(
        "hostnet",
        &sh_unit(&d, SLEEP, "sysctls:\n  net.core.somaxconn: 1024\n"),
    );
    let vm = d.wait_state("vm", "invalid");
    assert!(
        vm["error"].as_str().unwrap().contains(
            "sysctls.vm.swappiness: vm.swappiness is not namespaced: it would change the host"
        ),
        "{vm}"
    );
    let hostnet = d.wait_state("hostnet", "invalid");
    assert!(hostnet["error"].as_str().unwrap().contains("net.core.somaxconn needs a network namespace of its own: with network mode host it would change the host"), "{hostnet}");
    d.stop();
}

/// A supd killed while its container used a bridge it created: the next
/// supd (same network namespace) knows the bridge is supd's and removes it
/// once no unit uses it.
#[test]
fn a_bridge_left_by_a_killed_supd_is_removed_once_unused() {
    let mut d = Daemon::start();
    let bridge = "network: { mode: bridge, bridge: supbr7, address: 10.92.0.10/24 }\n";
    d.write_unit("bridged", &sh_unit(&d, SLEEP, bridge));
    let old = d.pid("bridged");
    d.crash_and_restart();
    assert_eq!(d.pid("bridged"), old, "adopted");
    assert_eq!(d.status("bridged")["addresses"][0], "10.92.0.10/24");
    assert!(daemon_links(&d).contains(&"supbr7".to_string()));
    assert!(d.supctl(&["stop", "bridged"]).status.success());
    assert_eq!(
        daemon_links(&d),
        ["lo"],
        "the bridge went with its last user"
    );
    d.stop();
}
