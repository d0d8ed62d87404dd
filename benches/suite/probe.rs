//! How the suite learns that a workload ran: every workload execs the static
//! `sd-notify` helper of the test rootfs, which sends one datagram to a
//! socket on a bind mount. A thread timestamps each datagram on arrival.

use crate::common::{busybox_rootfs, Daemon};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};
use supd::control::client::call;
use supd::control::protocol::{Body, Command, UnitStatus};

/// Where workloads see the probe's socket.
const INSIDE: &str = "/bench";

pub struct Probe {
    pub dir: PathBuf,
    arrivals: Receiver<(Instant, String)>,
}

impl Probe {
    pub fn new(daemon: &Daemon) -> Probe {
        let dir = daemon.dir.join("bench");
        std::fs::create_dir_all(&dir).unwrap();
        let socket = UnixDatagram::bind(dir.join("probe.sock")).unwrap();
        let (send, arrivals) = channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 256];
            while let Ok(n) = socket.recv(&mut buffer) {
                let at = Instant::now();
                let text = String::from_utf8_lossy(&buffer[..n]).trim().to_string();
                if send.send((at, text)).is_err() {
                    break;
                }
            }
        });
        Probe { dir, arrivals }
    }

    /// A unit whose workload runs `script` under /bin/sh (`$PROBE` reports);
    /// `extra` is appended YAML.
    pub fn unit(&self, exec: &str, extra: &str) -> String {
        format!(
            "rootfs: {}\nexec: {exec}\nenv: {{ NOTIFY_SOCKET: {INSIDE}/probe.sock }}\n\
             mounts: [{{ type: bind, source: {}, target: {INSIDE} }}]\n{extra}",
            busybox_rootfs().display(),
            self.dir.display()
        )
    }

    /// `unit` on an imported image instead of the rootfs directory.
    pub fn image_unit(&self, image: &str, exec: &str, extra: &str) -> String {
        self.unit(exec, extra).replacen(
            &format!("rootfs: {}", busybox_rootfs().display()),
            &format!("image: {image}"),
            1,
        )
    }

    /// The next report, with its arrival time.
    pub fn next(&self) -> (Instant, String) {
        self.arrivals
            .recv_timeout(Duration::from_secs(30))
            .expect("no workload reported within 30 s")
    }

    /// Waits for the report `text`, skipping others.
    pub fn wait_for(&self, text: &str) -> Instant {
        loop {
            let (at, got) = self.next();
            if got == text {
                return at;
            }
        }
    }

    pub fn drain(&self) {
        while self.arrivals.try_recv().is_ok() {}
    }
}

pub fn request(daemon: &Daemon, command: Command) -> Body {
    call(&daemon.socket, command).expect("talk to supd").body
}

pub fn unit_status(daemon: &Daemon, name: &str) -> Option<UnitStatus> {
    match request(
        daemon,
        Command::Status {
            names: vec![name.into()],
        },
    ) {
        Body::Status { units } => units.into_iter().next(),
        other => panic!("status: {other:?}"),
    }
}

/// Polls (untimed) until the unit's container is gone.
pub fn wait_stopped(daemon: &Daemon, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = unit_status(daemon, name);
        if status
            .as_ref()
            .is_some_and(|s| s.pid.is_none() && s.state != supd::control::protocol::State::Starting)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never stopped: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}
