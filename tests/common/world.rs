//! A small world for network tests and benchmarks: supd's namespace (the
//! "host") joined by an uplink veth to a namespace that plays the outside
//! network, with servers that answer with the address they see.

use super::*;
use std::process::{Command, Output};

pub const HOST_UPLINK: &str = "10.200.0.2";
pub const WORLD: &str = "10.200.0.1";
pub const WORLD6: &str = "fd20::1";

/// The outside network: a namespace held by a sleeping process, its
/// servers, and the uplink into the daemon's namespace.
pub struct World {
    holder: KillOnDrop,
    servers: Vec<KillOnDrop>,
}

impl World {
    pub fn around(daemon: &Daemon) -> World {
        let holder = KillOnDrop(
            Command::new("unshare")
                .args(["-n", "sleep", "1000"])
                .spawn()
                .unwrap(),
        );
        let world = holder.0.id();
        // The namespace exists once unshare has exec'd sleep.
        assert!(poll(WAIT, || {
            std::fs::read_to_string(format!("/proc/{world}/comm"))
                .is_ok_and(|c| c.trim() == "sleep")
        }));
        let world_ns = world.to_string();
        uplink(daemon, world);
        let server = |args: &[&str]| {
            let mut command = Command::new("nsenter");
            command.args(["-t", &world_ns, "-n", "socat"]).args(args);
            KillOnDrop(command.spawn().unwrap())
        };
        let servers = vec![
            server(&[
                "TCP4-LISTEN:7000,fork,reuseaddr",
                "SYSTEM:echo world sees $SOCAT_PEERADDR",
            ]),
            server(&[
                "TCP6-LISTEN:7000,ipv6only=1,fork,reuseaddr",
                "SYSTEM:echo world sees $SOCAT_PEERADDR",
            ]),
            server(&[
                "UDP4-RECVFROM:7001,fork",
                "SYSTEM:echo world sees $SOCAT_PEERADDR",
            ]),
        ];
        let world = World { holder, servers };
        assert!(poll(WAIT, || world
            .ask(&format!("TCP4:{WORLD}:7000"))
            .contains("world sees")));
        world
    }

    pub fn pid(&self) -> u32 {
        self.holder.0.id()
    }

    /// A client inside the world.
    pub fn ask(&self, address: &str) -> String {
        ask_from(self.pid(), address)
    }
}

/// The veth between the daemon's namespace (uplink0: 10.200.0.2, fd20::2)
/// and the world's (world0: 10.200.0.1, fd20::1), made over netlink with
/// supd's own client: the `ip` a test would run may be busybox's applet.
fn uplink(daemon: &Daemon, world: u32) {
    use netlink_packet_route::link::{
        InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
    };
    use supd::runtime::net::netlink::Netlink;
    let configure = |netlink: &mut Netlink, link: &str, v4: &str, v6: &str| {
        let index = netlink.link_index(link).unwrap().unwrap();
        netlink.add_address(index, v4.parse().unwrap(), 24).unwrap();
        netlink.add_address(index, v6.parse().unwrap(), 64).unwrap();
        netlink.set_link(index, true, Vec::new()).unwrap();
        let lo = netlink.link_index("lo").unwrap().unwrap();
        netlink.set_link(lo, true, Vec::new()).unwrap();
    };
    in_daemon_netns(daemon, move || {
        let mut netlink = Netlink::open().unwrap();
        let mut peer = LinkMessage::default();
        peer.attributes.push(LinkAttribute::IfName("world0".into()));
        peer.attributes.push(LinkAttribute::NetNsPid(world));
        let mut veth = LinkMessage::default();
        veth.attributes
            .push(LinkAttribute::IfName("uplink0".into()));
        veth.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        netlink.new_link("create the uplink", veth).unwrap();
        configure(&mut netlink, "uplink0", HOST_UPLINK, "fd20::2");
    });
    let ns = fs::File::open(format!("/proc/{world}/ns/net")).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut netlink = Netlink::open().unwrap();
        configure(&mut netlink, "world0", WORLD, WORLD6);
    })
    .join()
    .unwrap();
}

/// Runs a command in the network namespace of `pid`; it must succeed.
pub fn run_in(pid: u32, args: &[&str]) -> Output {
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Connects from the network namespace of `pid` (with the host's socat)
/// and returns the answer, or what went wrong. After its input ends socat
/// waits `-t` for the answer: its default 0.5 s is too short on a busy host.
pub fn ask_from(pid: u32, address: &str) -> String {
    answered(|| {
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "sh", "-c"])
            .arg(format!("echo ping | timeout 10 socat -t4 -T5 - {address}"))
            .output()
    })
}

pub fn answer(out: std::io::Result<Output>) -> String {
    match out {
        Ok(out) => format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => e.to_string(),
    }
}

/// An answer, asking up to three times while there is none at all: on a
/// loaded (TCG) guest the servers' fork and exec can outlast socat's wait.
/// Every answer a test expects says something, and errors come back as
/// socat's message, not as silence.
fn answered(mut ask: impl FnMut() -> std::io::Result<Output>) -> String {
    let mut text = String::new();
    for _ in 0..3 {
        text = answer(ask());
        if !text.is_empty() {
            break;
        }
    }
    text
}

/// Asks from inside a container, as a program there would.
pub fn ask_in(d: &Daemon, unit: &str, address: &str) -> String {
    answered(|| {
        Command::new(SUPCTL)
            .arg("--socket")
            .arg(&d.socket)
            .args(["exec", unit, "--", "sh", "-c"])
            .arg(format!("echo ping | timeout 10 socat -t4 -T5 - {address}"))
            .output()
    })
}

/// The host's own root, with a volatile overlay: it has socat, getent
/// and the host's C library for /etc/hosts.
pub fn host_root_unit(d: &Daemon, script: &str, network: &str) -> String {
    format!(
        "rootfs: /\nvolatile: overlay\nexec: [/bin/sh, -c, {}]\nenv: {{ SUPD_TEST_DIR: {}/ }}\nnetwork: {network}\n",
        serde_json::to_string(script).unwrap(),
        d.dir.display()
    )
}

impl World {
    /// Runs a server in the world until the world goes.
    pub fn serve(&mut self, program: &str, args: &[&str]) {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.pid().to_string(), "-n", program])
            .args(args)
            .stdout(std::process::Stdio::null());
        self.servers.push(KillOnDrop(command.spawn().unwrap()));
    }
}
