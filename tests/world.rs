//! Bridge networks that reach the world: egress NAT, published ports,
//! names and IPv6, against a small world the test builds. supd runs in a
//! network namespace of its own (the "host"), joined by an uplink veth to a
//! second namespace that plays the outside network (10.200.0.1, fd20::1)
//! with TCP and UDP servers that answer with the address they see. No
//! packet goes anywhere the test did not create.

mod common;

use common::world::*;
use common::*;
use std::process::Command;

const WEB: &str = "socat TCP4-LISTEN:80,fork,reuseaddr 'SYSTEM:echo web sees $SOCAT_PEERADDR' & \
                   socat TCP6-LISTEN:80,ipv6only=1,fork,reuseaddr 'SYSTEM:echo web sees $SOCAT_PEERADDR' & \
                   exec socat UDP4-RECVFROM:53,fork 'SYSTEM:echo web sees $SOCAT_PEERADDR'";

fn ruleset(d: &Daemon) -> String {
    let out = run_in(d.daemon_pid(), &["nft", "list", "ruleset"]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn web_and_peer(d: &Daemon) -> (String, String) {
    d.write_unit(
        "web",
        &host_root_unit(
            d,
            WEB,
            "{ mode: bridge, address: 10.88.0.10/16, ports: ['8080:80', '5353:53/udp'], address6: auto, aliases: [www] }",
        ),
    );
    d.write_unit(
        "peer",
        &host_root_unit(d, "exec sleep 1000", "{ mode: bridge, address6: auto }"),
    );
    d.pid("web");
    d.pid("peer");
    let peer = d.status("peer")["addresses"][0]
        .as_str()
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(poll(WAIT, || ask_from(
        d.daemon_pid(),
        "TCP4:10.88.0.10:80"
    )
    .contains("web sees")));
    ("10.88.0.10".to_string(), peer)
}

#[test]
fn bridge_containers_reach_out_and_are_reached_on_published_ports() {
    let d = Daemon::start();
    let world = World::around(&d);
    let before = ruleset(&d);
    assert!(!before.contains("table inet supd"), "{before}");
    let (_, peer_ip) = web_and_peer(&d);
    let host = d.daemon_pid();
    let status = d.status("web");
    assert_eq!(
        status["ports"],
        serde_json::json!(["8080->80/tcp", "5353->53/udp"])
    );
    assert_eq!(
        status["addresses"],
        serde_json::json!(["10.88.0.10/16", "fd88::a58:a/64"])
    );

    // Egress through NAT: the world sees the host's uplink address.
    let tcp = ask_in(&d, "peer", &format!("TCP4:{WORLD}:7000"));
    assert_eq!(tcp, format!("world sees {HOST_UPLINK}"));
    let udp = ask_in(&d, "peer", &format!("UDP4:{WORLD}:7001"));
    assert_eq!(udp, format!("world sees {HOST_UPLINK}"));

    // Published ports from the world keep the client's address.
    assert_eq!(
        world.ask(&format!("TCP4:{HOST_UPLINK}:8080")),
        format!("web sees {WORLD}")
    );
    assert_eq!(
        world.ask(&format!("UDP4:{HOST_UPLINK}:5353")),
        format!("web sees {WORLD}")
    );
    // From the host itself, on 127.0.0.1 and on its uplink address.
    assert_eq!(ask_from(host, "UDP4:127.0.0.1:5353"), "web sees 10.88.0.1");
    assert_eq!(ask_from(host, "TCP4:127.0.0.1:8080"), "web sees 10.88.0.1");
    assert!(ask_from(host, &format!("TCP4:{HOST_UPLINK}:8080")).starts_with("web sees"));
    // From a peer: through the published port (hairpin), and by name.
    assert_eq!(
        ask_in(&d, "peer", &format!("TCP4:{HOST_UPLINK}:8080")),
        "web sees 10.88.0.1"
    );
    assert_eq!(
        ask_in(&d, "peer", "TCP4:web:80"),
        format!("web sees {peer_ip}")
    );
    // And from the container itself, through its own published port.
    assert_eq!(
        ask_in(&d, "web", &format!("TCP4:{HOST_UPLINK}:8080")),
        "web sees 10.88.0.1"
    );
    assert_eq!(
        ask_in(&d, "peer", "TCP4:www:80"),
        format!("web sees {peer_ip}")
    );

    // Without `dns:`, the host's resolvers (loopback ones left out).
    let resolv = d.supctl(&["exec", "peer", "--", "cat", "/etc/resolv.conf"]);
    let resolv = String::from_utf8_lossy(&resolv.stdout).to_string();
    assert!(resolv.starts_with("# Written by supd from"), "{resolv}");
    assert!(!resolv.contains("nameserver 127."), "{resolv}");

    // /etc/hosts names both, and follows a peer that comes and goes.
    let hosts = |unit: &str| {
        let out = d.supctl(&[
            "exec", unit, "--", "getent", "ahostsv4", "peer", "web", "late",
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let names = hosts("web");
    assert!(
        names.contains(&format!("{peer_ip} ")) && names.contains("10.88.0.10 "),
        "{names}"
    );
    d.write_unit(
        "late",
        &sh_unit(
            &d,
            "exec sleep 1000",
            "network: { mode: bridge, address: 10.88.0.77/16 }\n",
        ),
    );
    d.pid("late");
    assert!(
        poll(WAIT, || hosts("web").contains("10.88.0.77")),
        "{}",
        hosts("web")
    );
    assert!(d.supctl(&["stop", "late"]).status.success());
    assert!(
        poll(WAIT, || !hosts("web").contains("10.88.0.77")),
        "{}",
        hosts("web")
    );

    // IPv6: ping out, NAT66 from the unique local prefix, published port.
    let ping = d.supctl(&[
        "exec", "peer", "--", "busybox", "ping", "-6", "-c", "2", "-W", "3", WORLD6,
    ]);
    assert!(
        ping.status.success(),
        "{}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let seen = ask_in(&d, "peer", &format!("TCP6:[{WORLD6}]:7000"));
    assert_eq!(seen, "world sees [fd20:0000:0000:0000:0000:0000:0000:0002]");
    assert!(ask_from(host, "TCP6:[fd20::2]:8080").starts_with("web sees"));
    let published6 = world.ask("TCP6:[fd20::2]:8080");
    assert_eq!(
        published6,
        "web sees [fd20:0000:0000:0000:0000:0000:0000:0001]"
    );

    let table = ruleset(&d);
    assert!(table.contains("table inet supd"), "{table}");
    assert_eq!(
        table.matches("comment \"unit web\"").count(),
        4,
        "8080 and 5353, each for IPv4 and IPv6: {table}"
    );
    assert!(d.supctl(&["stop", "web", "peer"]).status.success());
    assert_eq!(ruleset(&d), before, "stop removes every rule");
    d.stop();
}

#[test]
fn a_killed_supd_leaves_exactly_one_set_of_rules() {
    let mut d = Daemon::start();
    let _world = World::around(&d);
    web_and_peer(&d);
    let table = ruleset(&d);
    let peer = d.pid("peer") as u32;
    d.crash_and_restart_after(|_| {
        // While supd is away the rules keep working.
        assert_eq!(ask_from(peer, "TCP4:10.88.0.1:8080"), "web sees 10.88.0.1");
    });
    assert_eq!(d.status("web")["restarts"], 0, "adopted, not restarted");
    assert_eq!(
        ruleset(&d),
        table,
        "rebuilt whole: no duplicates, nothing lost"
    );
    assert_eq!(
        ask_from(d.daemon_pid(), "TCP4:127.0.0.1:8080"),
        "web sees 10.88.0.1"
    );
    // A unit gone while supd was away loses its rules at the rebuild.
    d.crash_and_restart_after(|d| {
        std::fs::remove_file(d.units.join("web.yaml")).unwrap();
    });
    assert!(
        poll(WAIT, || !ruleset(&d).contains("unit web")),
        "{}",
        ruleset(&d)
    );
    assert!(d.supctl(&["stop", "peer"]).status.success());
    assert!(!ruleset(&d).contains("table inet supd"), "{}", ruleset(&d));
    d.stop();
}

#[test]
fn a_taken_port_is_refused_naming_the_holder_or_the_port() {
    let d = Daemon::start();
    // Brings the host's lo up, for the listener on 127.0.0.1.
    let _world = World::around(&d);
    let sleeper = |ports: &str| {
        sh_unit(
            &d,
            "exec sleep 1000",
            &format!("network: {{ mode: bridge, ports: [{ports}] }}\n"),
        )
    };
    d.write_unit("first", &sleeper("'9000-9009:9000-9009'"));
    d.pid("first");
    d.write_unit("second", &sleeper("'9005:80'"));
    let status = d.wait_state("second", "invalid");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("network.ports: host port 9005/tcp is already used by unit first"),
        "{status}"
    );
    assert_eq!(d.state("first"), "running");
    // A host program on the port: the start fails naming it.
    let _listener = KillOnDrop(
        Command::new("nsenter")
            .args(["-t", &d.daemon_pid().to_string(), "-n", "socat"])
            .args(["TCP4-LISTEN:9100,fork,reuseaddr", "SYSTEM:echo listening"])
            .spawn()
            .unwrap(),
    );
    assert!(poll(WAIT, || ask_from(
        d.daemon_pid(),
        "TCP4:127.0.0.1:9100"
    ) == "listening"));
    d.write_unit(
        "third",
        &format!("{}restart: {{ policy: never }}\n", sleeper("'9100:80'")),
    );
    let status = d.wait_state("third", "failed");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("host port 9100/tcp is already in use on the host"),
        "{status}"
    );
    d.stop();
}
