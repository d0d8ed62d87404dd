//! Many containers: churn, one edit among hundreds of units, footprint and
//! the idle cost.

use crate::common::{busybox_rootfs, cgroup_dirs, Daemon, SUPCTL};
use crate::probe::{request, Probe};
use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use supd::control::protocol::{Body, Command, UnitStatus};

/// A long-running unit that reports once it runs.
fn reporting_unit(probe: &Probe, name: &str) -> String {
    probe.unit(
        &format!("[/bin/sh, -c, '/bin/sd-notify {name}; exec /bin/sleep 1000000']"),
        "",
    )
}

fn sleeping_unit() -> String {
    format!(
        "rootfs: {}\nexec: [/bin/sleep, '1000000']\n",
        busybox_rootfs().display()
    )
}

pub fn all_status(daemon: &Daemon) -> Vec<UnitStatus> {
    match request(daemon, Command::Status { names: vec![] }) {
        Body::Status { units } => units,
        other => panic!("status: {other:?}"),
    }
}

/// Waits (untimed) until `count` units run.
pub fn wait_running(daemon: &Daemon, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let units = all_status(daemon);
        let running = units
            .iter()
            .filter(|u| u.state == supd::control::protocol::State::Running)
            .count();
        if running >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {running} of {count} units run"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// No container of the daemon is left: no cgroup, no staging directory.
fn all_cleaned(daemon: &Daemon) -> bool {
    let has_children = |dir: &Path| {
        fs::read_dir(dir).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_dir())))
    };
    let staging = daemon.dir.join("run/containers");
    !cgroup_dirs(&daemon.dir).iter().any(|d| has_children(d)) && !has_children(&staging)
}

pub struct Churn {
    pub up: Vec<Duration>,
    pub down: Vec<Duration>,
}

/// `count` unit files dropped at once until every workload reported; then all
/// deleted at once until every container is stopped and cleaned up.
pub fn churn(daemon: &Daemon, probe: &Probe, count: usize, rounds: usize) -> Churn {
    let mut result = Churn {
        up: Vec::new(),
        down: Vec::new(),
    };
    let names: Vec<String> = (0..count).map(|i| format!("churn-{i}")).collect();
    let units: Vec<String> = names.iter().map(|n| reporting_unit(probe, n)).collect();
    for _ in 0..rounds {
        probe.drain();
        let began = Instant::now();
        for (name, unit) in names.iter().zip(&units) {
            daemon.write_unit(name, unit);
        }
        let mut seen = HashSet::new();
        while seen.len() < count {
            seen.insert(probe.next().1);
        }
        result.up.push(began.elapsed());

        let began = Instant::now();
        for name in &names {
            fs::remove_file(daemon.units.join(format!("{name}.yaml"))).unwrap();
        }
        let deadline = began + Duration::from_secs(60);
        while !all_cleaned(daemon) {
            assert!(Instant::now() < deadline, "churn units never cleaned up");
            std::thread::sleep(Duration::from_micros(500));
        }
        result.down.push(began.elapsed());
        while !all_status(daemon).is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    result
}

/// `total` running units; one of them edited, until its new workload ran.
pub fn edit_among(daemon: &Daemon, probe: &Probe, total: usize, count: usize) -> Vec<Duration> {
    for i in 1..total {
        daemon.write_unit(&format!("r{i}"), &sleeping_unit());
    }
    daemon.write_unit("edited", &reporting_unit(probe, "edited-0"));
    wait_running(daemon, total);
    let mut samples = Vec::new();
    for k in 1..=count {
        let text = format!("edited-{k}");
        let unit = reporting_unit(probe, &text);
        probe.drain();
        let began = Instant::now();
        daemon.write_unit("edited", &unit);
        samples.push(probe.wait_for(&text) - began);
    }
    samples
}

/// `supctl events --json` of a daemon: each line with the time it came.
pub struct EventWatch {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
}

impl EventWatch {
    pub fn new(daemon: &Daemon) -> EventWatch {
        let mut child = std::process::Command::new(SUPCTL)
            .env("SUPD_SOCKET", &daemon.socket)
            .args(["events", "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        // supctl says nothing until an event comes: give it the time to
        // subscribe before anything happens.
        std::thread::sleep(Duration::from_millis(300));
        EventWatch { child, lines }
    }

    /// When the next event holding every one of `needles` came.
    pub fn wait_for(&self, needles: &[&str]) -> Instant {
        loop {
            let (at, line) = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no event with {needles:?}"));
            if needles.iter().all(|n| line.contains(n)) {
                return at;
            }
        }
    }

    pub fn drain(&self) {
        while self.lines.try_recv().is_ok() {}
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Scale {
    /// All unit files written until every container ran.
    pub start_all: Duration,
    pub rss: u64,
    pub status_all: Vec<Duration>,
    pub status_one: Vec<Duration>,
    pub idle_cpu: Duration,
    pub idle_wakeups: u64,
}

/// `total` sleeping containers (`r1`..., `edited`): the time to start them
/// all, supd's RSS, `status` of all and of one, and supd's cost while they
/// idle for `idle`.
pub fn scale(daemon: &Daemon, total: usize, rounds: usize, idle: Duration) -> Scale {
    let began = Instant::now();
    for i in 1..total {
        daemon.write_unit(&format!("r{i}"), &sleeping_unit());
    }
    daemon.write_unit("edited", &sleeping_unit());
    wait_running(daemon, total);
    let start_all = began.elapsed();
    let supd = daemon.daemon_pid();
    let timed = |names: Vec<String>| {
        (0..rounds)
            .map(|_| {
                let began = Instant::now();
                request(
                    daemon,
                    Command::Status {
                        names: names.clone(),
                    },
                );
                began.elapsed()
            })
            .collect()
    };
    let status_all = timed(Vec::new());
    let status_one = timed(vec!["edited".to_string()]);
    std::thread::sleep(Duration::from_secs(1));
    let (cpu, wakeups) = (cpu_time(supd), switches(supd));
    std::thread::sleep(idle);
    Scale {
        start_all,
        rss: bytes_field(&format!("/proc/{supd}/status"), "VmRSS"),
        status_all,
        status_one,
        idle_cpu: cpu_time(supd).saturating_sub(cpu),
        idle_wakeups: switches(supd).saturating_sub(wakeups),
    }
}

/// `total` units running (made by `scale`); one of them edited in place,
/// until supd begins its restart (the reconcile's `restarting` event).
pub fn edit_until_restart(daemon: &Daemon, total: usize, count: usize) -> Vec<Duration> {
    wait_running(daemon, total);
    let events = EventWatch::new(daemon);
    let mut samples = Vec::new();
    for k in 1..=count {
        let unit = format!(
            "rootfs: {}\nexec: [/bin/sleep, '{}']\n",
            busybox_rootfs().display(),
            2_000_000 + k
        );
        events.drain();
        let began = Instant::now();
        daemon.write_unit("edited", &unit);
        samples.push(events.wait_for(&["\"edited\"", "restarting"]) - began);
        wait_running(daemon, total);
    }
    samples
}

/// `count` unit files (disabled ones: planning, no starts) dropped at once
/// into a running supd, until it planned them all.
pub fn drop_until_planned(daemon: &Daemon, count: usize, rounds: usize) -> Vec<Duration> {
    let events = EventWatch::new(daemon);
    let unit = format!(
        "enabled: false\nrootfs: {}\nexec: [/bin/sleep, '1000000']\n",
        busybox_rootfs().display()
    );
    let mut samples = Vec::new();
    for round in 0..rounds {
        events.drain();
        let began = Instant::now();
        for i in 0..count {
            daemon.write_unit(&format!("p{round}-{i}"), &unit);
        }
        // The directories' reconcile that saw every one of them ("unit
        // directories read: N units" or "unit files read: ... (N units)").
        let all = format!("{count} units");
        samples.push(events.wait_for(&["\"reconcile\"", &all]) - began);
        for i in 0..count {
            fs::remove_file(daemon.units.join(format!("p{round}-{i}.yaml"))).unwrap();
        }
        while !all_status(daemon).is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    samples
}

pub struct Footprint {
    pub idle_rss: u64,
    pub busy_rss: u64,
    pub init_rss: u64,
    pub init_private_dirty: u64,
    pub idle_cpu: Duration,
    pub idle_wakeups: u64,
    pub idle_for: Duration,
}

/// The number in a "Field: N" or "Field: N kB" line of a /proc file.
fn proc_field(path: &str, field: &str) -> u64 {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
        .unwrap_or(0)
}

fn bytes_field(path: &str, field: &str) -> u64 {
    proc_field(path, field) * 1024
}

/// utime + stime of a process.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

pub fn switches(pid: u32) -> u64 {
    let path = format!("/proc/{pid}/status");
    proc_field(&path, "voluntary_ctxt_switches") + proc_field(&path, "nonvoluntary_ctxt_switches")
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// supd's RSS with no container and with `count`; the inits' memory; supd's
/// CPU time and context switches while `count` containers idle for `idle`.
pub fn footprint(daemon: &Daemon, count: usize, idle: Duration) -> Footprint {
    let supd = daemon.daemon_pid();
    let status = format!("/proc/{supd}/status");
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = bytes_field(&status, "VmRSS");
    for i in 0..count {
        daemon.write_unit(&format!("f{i}"), &sleeping_unit());
    }
    wait_running(daemon, count);
    std::thread::sleep(Duration::from_secs(1));
    let busy_rss = bytes_field(&status, "VmRSS");
    // Freshly built binaries have dirty page-cache pages, which smaps
    // would count as the init's private dirty memory.
    nix::unistd::sync();
    let inits: Vec<i32> = all_status(daemon).iter().filter_map(|u| u.pid).collect();
    let rollup = |pid: &i32| format!("/proc/{pid}/smaps_rollup");
    let init_rss = median(
        inits
            .iter()
            .map(|p| bytes_field(&rollup(p), "Rss"))
            .collect(),
    );
    let init_private_dirty = median(
        inits
            .iter()
            .map(|p| bytes_field(&rollup(p), "Private_Dirty"))
            .collect(),
    );
    let cpu_before = cpu_time(supd);
    let switches_before = switches(supd);
    let began = Instant::now();
    std::thread::sleep(idle);
    let idle_for = began.elapsed();
    Footprint {
        idle_rss,
        busy_rss,
        init_rss,
        init_private_dirty,
        idle_cpu: cpu_time(supd).saturating_sub(cpu_before),
        idle_wakeups: switches(supd) - switches_before,
        idle_for,
    }
}
