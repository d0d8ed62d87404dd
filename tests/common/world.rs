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
        let host = daemon.daemon_pid();
        let world_ns = world.to_string();
        run_in(
            host,
            &[
                "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "world0", "netns",
                &world_ns,
            ],
        );
        for (pid, link, v4, v6) in [
            (host, "uplink0", "10.200.0.2/24", "fd20::2/64"),
            (world, "world0", "10.200.0.1/24", "fd20::1/64"),
        ] {
            run_in(pid, &["ip", "addr", "add", v4, "dev", link]);
            run_in(pid, &["ip", "-6", "addr", "add", v6, "dev", link, "nodad"]);
            run_in(pid, &["ip", "link", "set", link, "up"]);
            run_in(pid, &["ip", "link", "set", "lo", "up"]);
        }
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
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "sh", "-c"])
        .arg(format!("echo ping | timeout 10 socat -t4 -T5 - {address}"))
        .output();
    answer(out)
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

/// Asks from inside a container, as a program there would.
pub fn ask_in(d: &Daemon, unit: &str, address: &str) -> String {
    let out = Command::new(SUPCTL)
        .arg("--socket")
        .arg(&d.socket)
        .args(["exec", unit, "--", "sh", "-c"])
        .arg(format!("echo ping | timeout 10 socat -t4 -T5 - {address}"))
        .output();
    answer(out)
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
