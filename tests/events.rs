//! `supctl events`: every state change, exit, restart with its reason,
//! reconcile and validation error, streamed as it happens, in order, to a
//! client subscribed on the control socket; `--since` replays. Real
//! containers, as root.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `supctl events --json ARGS...`, its lines on a channel.
struct Subscription {
    child: Child,
    lines: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Subscription {
    fn start(d: &Daemon, args: &[&str]) -> Subscription {
        let mut child = Command::new(env!("CARGO_BIN_EXE_supctl"))
            .env("SUPD_SOCKET", &d.socket)
            .args(["events", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(serde_json::from_str(&line).unwrap()).is_err() {
                    return;
                }
            }
        });
        Subscription {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads until `done` holds for what was seen, or fails after 60 s.
    fn until(&mut self, what: &str, mut done: impl FnMut(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(event) => self.seen.push(event),
                Err(_) => panic!("no {what} in {:#?}", self.seen),
            }
        }
    }
}

impl Subscription {
    /// The first event seen of `unit` of `kind`.
    fn first(&self, unit: &str, kind: &str) -> &Value {
        self.seen
            .iter()
            .find(|e| is(e, unit, kind))
            .unwrap_or_else(|| panic!("no {kind} of {unit} in {:#?}", self.seen))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(event: &Value, unit: &str, kind: &str) -> bool {
    event["unit"] == unit && event["kind"] == kind
}

fn state_change(event: &Value, unit: &str, from: &str, to: &str) -> bool {
    is(event, unit, "state") && event["from"] == from && event["to"] == to
}

#[test]
fn fifty_starts_at_once_arrive_in_order_for_each_unit() {
    let d = Daemon::start();
    let mut events = Subscription::start(&d, &[]);
    // The subscription is in place once a reload's event reaches it.
    let subscribed = poll(Duration::from_secs(30), || {
        d.supctl(&["reload"]);
        while let Ok(event) = events.lines.recv_timeout(Duration::from_millis(200)) {
            events.seen.push(event);
        }
        events
            .seen
            .iter()
            .any(|e| e["kind"] == "reconcile" && e["unit"].is_null())
    });
    assert!(subscribed, "no reload reached the subscription");
    let names: Vec<String> = (0..50).map(|i| format!("burst-{i:02}")).collect();
    for name in &names {
        let text = sh_unit(&d, "exec sleep 1000", "");
        std::fs::write(d.units.join(format!("{name}.yaml")), text).unwrap();
    }
    events.until("50 units running", |seen| {
        names.iter().all(|name| {
            seen.iter()
                .any(|e| state_change(e, name, "starting", "running"))
        })
    });
    for name in &names {
        let mine: Vec<&Value> = events.seen.iter().filter(|e| e["unit"] == *name).collect();
        let position = |test: &dyn Fn(&Value) -> bool| {
            mine.iter()
                .position(|e| test(e))
                .unwrap_or_else(|| panic!("{name}: {mine:#?}"))
        };
        let reconciled = position(&|e| is(e, name, "reconcile"));
        let starting = position(&|e| state_change(e, name, "stopped", "starting"));
        let running = position(&|e| state_change(e, name, "starting", "running"));
        assert!(
            reconciled < starting && starting < running,
            "{name}: {mine:#?}"
        );
    }
    let times: Vec<&str> = events
        .seen
        .iter()
        .map(|e| e["time"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "in the order they happened"
    );
    drop(events);
    d.stop();
}

#[test]
fn exits_restarts_with_their_reason_and_invalid_files_are_events() {
    let d = Daemon::start();
    // Only the named units; crashy exits again and again, so its events
    // reach the subscription whenever it is in place.
    let mut events = Subscription::start(&d, &["crashy", "broken"]);
    d.write_unit(
        "crashy",
        &sh_unit(
            &d,
            "sleep 0.2; exit 3",
            "restart: { policy: on-failure, delay: 200ms }\n",
        ),
    );
    events.until("an exit and a restart", |seen| {
        seen.iter().any(|e| is(e, "crashy", "restart"))
    });
    let exit = events.first("crashy", "exit");
    assert_eq!(exit["exit"]["code"], 3, "{exit}");
    assert_eq!(exit["message"], "exited with code 3");
    let restart = events.first("crashy", "restart");
    let message = restart["message"].as_str().unwrap();
    assert!(
        message.starts_with("restarting in ") && message.ends_with(": exited with code 3"),
        "{message}"
    );
    d.write_unit(
        "broken",
        "exec: [/bin/true]\nrootfs: /r\nrestart: { polcy: always }\n",
    );
    events.until("the validation error", |seen| {
        seen.iter().any(|e| is(e, "broken", "invalid"))
    });
    let invalid = events.first("broken", "invalid");
    assert!(
        invalid["message"]
            .as_str()
            .unwrap()
            .contains("broken.yaml:3:12: restart: unknown field `polcy`"),
        "{invalid}"
    );
    assert!(
        events
            .seen
            .iter()
            .all(|e| e["unit"] == "crashy" || e["unit"] == "broken"),
        "only the named units"
    );
    drop(events);

    // --since replays what supd holds, then goes on.
    let mut replay = Subscription::start(&d, &["--since", "10m", "crashy"]);
    replay.until("the earlier exit", |seen| {
        seen.iter().any(|e| is(e, "crashy", "exit"))
    });
    let text = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .env("SUPD_SOCKET", &d.socket)
        .args(["events", "--since", "nonsense"])
        .output()
        .unwrap();
    assert!(!text.status.success());
    drop(replay);
    d.stop();
}

#[test]
fn a_subscriber_that_does_not_read_is_dropped_and_supd_goes_on() {
    use std::io::Write;
    let d = Daemon::start();
    // Subscribed, and never reading.
    let mut stalled = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    stalled
        .write_all(b"{\"v\":1,\"cmd\":\"events\"}\n")
        .unwrap();
    // 3000 invalid files: two events of about 1 KB together each, far
    // past what supd queues for one client (1 MiB) on top of what the
    // socket's buffer holds.
    for i in 0..3000 {
        let text = "rootfs: /r\nexec: [/x]\nnotfy: true\n";
        std::fs::write(d.units.join(format!("bad-{i:04}.yaml")), text).unwrap();
    }
    d.supctl(&["reload"]);
    d.wait_for("the stalled client to go", Duration::from_secs(30), || {
        d.daemon_log()
            .contains("events: dropping a client that does not read them")
    });
    // supd goes on answering (supctl's own timeout would fail the test).
    let status = d.status("bad-0000");
    assert_eq!(status["state"], "invalid", "{status}");
    drop(stalled);
    d.stop();
}
