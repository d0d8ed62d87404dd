//! Bridge networking against a world the benchmark builds (see
//! tests/common/world.rs): TCP throughput (iperf3) and request/response
//! latency between a container and the outside, through NAT and through a
//! published port, against the host talking to the outside directly; and
//! how long supd's one nftables batch takes with 100 published ports.

use crate::common::world::{host_root_unit, World, HOST_UPLINK, WORLD};
use crate::common::{poll, Daemon, WAIT};
use crate::stats::{summarize, Summary};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Path {
    pub bits_per_second: f64,
    pub round_trip: Summary,
}

pub struct Measured {
    pub host_out: Path,
    pub container_out: Path,
    pub world_to_host: Path,
    pub world_to_published: Path,
}

/// iperf3's received rate, from its JSON report.
fn iperf(netns_pid: u32, target: &str, port: u16, seconds: u32) -> f64 {
    let out = Command::new("nsenter")
        .args([
            "-t",
            &netns_pid.to_string(),
            "-n",
            "iperf3",
            "-J",
            "-c",
            target,
        ])
        .args(["-p", &port.to_string(), "-t", &seconds.to_string()])
        .output()
        .expect("run iperf3");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
}

/// One-byte request/response round trips over one TCP connection, from a
/// thread in the network namespace of `netns_pid`.
fn round_trips(netns_pid: u32, target: &str, port: u16, count: usize) -> Summary {
    let ns = std::fs::File::open(format!("/proc/{netns_pid}/ns/net")).expect("netns");
    let address: std::net::SocketAddr = format!("{target}:{port}").parse().expect("address");
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))
            .expect("connect");
        stream.set_nodelay(true).ok();
        let mut samples = Vec::with_capacity(count);
        let mut byte = [0u8; 1];
        for _ in 0..count {
            let start = Instant::now();
            stream.write_all(b"x").expect("write");
            stream.read_exact(&mut byte).expect("read");
            samples.push(start.elapsed());
        }
        summarize(&samples)
    })
    .join()
    .expect("round-trip thread")
}

pub fn measure(seconds: u32, trips: usize) -> Measured {
    let d = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let mut world = World::around(&d);
    world.serve("iperf3", &["-s", "-p", "5201"]);
    world.serve("socat", &["TCP4-LISTEN:7100,fork,reuseaddr", "EXEC:cat"]);
    let servers = "iperf3 -s -p 5201 & exec socat TCP4-LISTEN:7100,fork,reuseaddr EXEC:cat";
    d.write_unit(
        "bench",
        &host_root_unit(
            &d,
            servers,
            "{ mode: bridge, address: 10.88.0.20/16, ports: ['8201:5201', '8100:7100'] }",
        ),
    );
    let container = d.pid("bench") as u32;
    let host = d.daemon_pid();
    // The host's own servers, for the direct comparison.
    let mut host_servers = Vec::new();
    for args in [
        vec!["iperf3", "-s", "-p", "6201"],
        vec!["socat", "TCP4-LISTEN:6100,fork,reuseaddr", "EXEC:cat"],
    ] {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &host.to_string(), "-n"])
            .args(&args)
            .stdout(std::process::Stdio::null());
        host_servers.push(crate::common::KillOnDrop(command.spawn().expect("server")));
    }
    let ready = |pid: u32, target: &str, port: u16| {
        poll(WAIT, || {
            crate::common::world::ask_from(pid, &format!("TCP4:{target}:{port}")) == "ping"
        })
    };
    assert!(ready(world.pid(), HOST_UPLINK, 8100) && ready(world.pid(), HOST_UPLINK, 6100));
    let path = |pid: u32, target: &str, iperf_port: u16, echo_port: u16| Path {
        bits_per_second: iperf(pid, target, iperf_port, seconds),
        round_trip: round_trips(pid, target, echo_port, trips),
    };
    let measured = Measured {
        host_out: path(host, WORLD, 5201, 7100),
        container_out: path(container, WORLD, 5201, 7100),
        world_to_host: path(world.pid(), HOST_UPLINK, 6201, 6100),
        world_to_published: path(world.pid(), HOST_UPLINK, 8201, 8100),
    };
    drop(host_servers);
    d.stop();
    measured
}

/// supd's batch for a container with `ports` published ports (IPv4 and
/// IPv6), timed in a network namespace of its own.
pub fn rule_insertion(ports: u16, rounds: usize) -> Summary {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        let list: Vec<String> = (0..ports)
            .map(|i| format!("'{}:{}'", 10000 + i, 20000 + i))
            .collect();
        let text = format!(
            "rootfs: /r\nexec: [/x]\nnetwork: {{ mode: bridge, address6: auto, ports: [{}] }}\n",
            list.join(", ")
        );
        let unit =
            supd::unit::parse_unit("many", std::path::Path::new("many.yaml"), &text).expect("unit");
        let address = supd::unit::Ipv4Net {
            ip: std::net::Ipv4Addr::new(10, 88, 0, 30),
            prefix: 16,
        };
        let plan = supd::runtime::net::NetPlan::new("many", &unit.network, Some(address));
        let mut samples = Vec::new();
        for _ in 0..rounds {
            let start = Instant::now();
            let rules = supd::runtime::net::firewall::rules([("many", &plan)]);
            supd::runtime::net::nftables::replace_table(
                &supd::runtime::net::firewall::CHAINS,
                &rules,
            )
            .expect("nftables batch");
            samples.push(start.elapsed());
        }
        summarize(&samples)
    })
    .join()
    .expect("rule thread")
}
