//! One container at a time: start, one-shot, restart after a crash, and a
//! unit file written, each until the workload ran.

use crate::common::Daemon;
use crate::probe::{request, unit_status, wait_stopped, Probe};
use std::time::{Duration, Instant};
use supd::control::protocol::{Body, Command};

fn start(daemon: &Daemon, name: &str, wait: bool) {
    let body = request(
        daemon,
        Command::Start {
            names: vec![name.into()],
            wait,
        },
    );
    assert!(matches!(body, Body::Done { .. }), "start {name}: {body:?}");
}

pub struct StartTimes {
    /// Request sent until the workload reported.
    pub ran: Vec<Duration>,
    /// Request sent until `supctl start` (which waits) got its answer.
    pub answered: Vec<Duration>,
}

/// `supctl start` of a stopped unit until its workload has executed, each
/// after `gap` of idle time.
pub fn start_latency(daemon: &Daemon, probe: &Probe, count: usize, gap: Duration) -> StartTimes {
    let unit = probe.unit("[/bin/sd-notify, ran]", "restart: { policy: never }\n");
    start_latency_of(daemon, probe, &unit, count, gap)
}

/// `start_latency` of a given unit, whose workload reports "ran".
pub fn start_latency_of(
    daemon: &Daemon,
    probe: &Probe,
    unit: &str,
    count: usize,
    gap: Duration,
) -> StartTimes {
    daemon.write_unit("start", unit);
    probe.wait_for("ran");
    let mut times = StartTimes {
        ran: Vec::new(),
        answered: Vec::new(),
    };
    for _ in 0..count {
        wait_stopped(daemon, "start");
        std::thread::sleep(gap);
        probe.drain();
        let began = Instant::now();
        start(daemon, "start", true);
        times.answered.push(began.elapsed());
        times.ran.push(probe.wait_for("ran") - began);
    }
    wait_stopped(daemon, "start");
    remove_unit(daemon, "start");
    times
}

/// A container running /bin/true, from the start request until supd has
/// reaped it (the first status that shows it stopped again), as `crun run`.
pub fn one_shot(daemon: &Daemon, count: usize) -> Vec<Duration> {
    let unit = format!(
        "rootfs: {}\nexec: [/bin/true]\nrestart: {{ policy: never }}\n",
        crate::common::busybox_rootfs().display()
    );
    daemon.write_unit("oneshot", &unit);
    let mut samples = Vec::new();
    for _ in 0..count {
        wait_stopped(daemon, "oneshot");
        let began = Instant::now();
        // The answer comes after the container was spawned, so every later
        // "stopped" is this run's end.
        start(daemon, "oneshot", false);
        loop {
            let status = unit_status(daemon, "oneshot");
            if status.is_some_and(|s| {
                s.state == supd::control::protocol::State::Stopped && s.pid.is_none()
            }) {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        samples.push(began.elapsed());
    }
    remove_unit(daemon, "oneshot");
    samples
}

/// A workload that reports and exits at once, restarted after the shortest
/// back-off a unit may set (100 ms, kept constant): the gap between two
/// reports less that back-off is one exit, reap, restart and exec.
const BACKOFF: Duration = Duration::from_millis(100);

pub fn restart_after_exit(daemon: &Daemon, probe: &Probe, count: usize) -> Vec<Duration> {
    probe.drain();
    daemon.write_unit(
        "crash",
        &probe.unit(
            "[/bin/sd-notify, crash]",
            "restart: { policy: always, delay: 100ms, max_delay: 100ms, start_limit: { burst: 100000, interval: 1s } }\n",
        ),
    );
    let mut previous = probe.wait_for("crash");
    let mut samples = Vec::new();
    for _ in 0..count {
        let at = probe.wait_for("crash");
        samples.push((at - previous).saturating_sub(BACKOFF));
        previous = at;
    }
    let body = request(
        daemon,
        Command::Stop {
            names: vec!["crash".into()],
            wait: true,
        },
    );
    assert!(matches!(body, Body::Done { .. }), "stop crash: {body:?}");
    remove_unit(daemon, "crash");
    samples
}

/// A new unit file until its workload ran: inotify, the 20 ms debounce that
/// coalesces editors' bursts, loading, planning and the start.
pub fn file_written(daemon: &Daemon, probe: &Probe, count: usize) -> Vec<Duration> {
    let mut samples = Vec::new();
    for i in 0..count {
        let name = format!("w{i}");
        let unit = probe.unit(
            &format!("[/bin/sd-notify, {name}]"),
            "restart: { policy: never }\n",
        );
        probe.drain();
        let began = Instant::now();
        daemon.write_unit(&name, &unit);
        samples.push(probe.wait_for(&name) - began);
        wait_stopped(daemon, &name);
        remove_unit(daemon, &name);
    }
    samples
}

/// Deletes the unit file and waits (untimed) until supd forgot the unit.
pub fn remove_unit(daemon: &Daemon, name: &str) {
    std::fs::remove_file(daemon.units.join(format!("{name}.yaml"))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while unit_status(daemon, name).is_some() {
        assert!(Instant::now() < deadline, "{name} was never removed");
        std::thread::sleep(Duration::from_millis(2));
    }
}
