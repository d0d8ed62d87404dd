//! Live restore: what a `kill -9` of supd, or a `daemon-reexec`, costs the
//! workloads (nothing, if it works), how soon the new supd answers with a
//! fleet adopted, and how long a writing workload goes on with no supd.

use crate::common::{busybox_rootfs, sh_unit, Daemon};
use crate::fleet::{all_status, wait_running};
use std::fs;
use std::time::{Duration, Instant};

/// A line with the (host-wide) uptime every 5 ms.
const TICKER: &str = "while true; do echo t $(cut -d' ' -f1 /proc/uptime); sleep 0.005; done";

fn uptime() -> f64 {
    fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The largest gap between two lines of the ticker's output, and the
/// median gap.
fn gaps(log: &str) -> (Duration, Duration) {
    let ticks: Vec<f64> = log
        .lines()
        .filter_map(|l| l.strip_prefix("t ")?.parse().ok())
        .collect();
    let mut gaps: Vec<f64> = ticks.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let at = |i: usize| Duration::from_secs_f64(gaps.get(i).copied().unwrap_or(0.0).max(0.0));
    (at(gaps.len().saturating_sub(1)), at(gaps.len() / 2))
}

pub struct Downtime {
    /// Largest gap in the workload's output across the event.
    pub largest: Duration,
    /// Its usual gap, for comparison.
    pub usual: Duration,
    pub restarted: bool,
}

/// Runs the ticker, lets `event` happen to supd, and reads the gaps.
pub fn downtime(event: impl FnOnce(&mut Daemon)) -> Downtime {
    let mut daemon = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    daemon.write_unit("ticker", &sh_unit(&daemon, TICKER, ""));
    let pid = daemon.pid("ticker");
    std::thread::sleep(Duration::from_millis(500));
    event(&mut daemon);
    std::thread::sleep(Duration::from_millis(500));
    let (largest, usual) = gaps(&daemon.log("ticker"));
    let restarted = daemon.pid("ticker") != pid;
    daemon.stop();
    Downtime {
        largest,
        usual,
        restarted,
    }
}

pub fn kill_and_restart(daemon: &mut Daemon) {
    daemon.crash_and_restart();
}

pub fn reexec(daemon: &mut Daemon) {
    let out = daemon.supctl(&["daemon-reexec"]);
    assert!(out.status.success(), "{out:?}");
}

/// From `kill -9` of supd until a new one answered `status` with all
/// `count` containers adopted, same PIDs.
pub fn adoption(count: usize) -> Duration {
    let mut daemon = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let unit = format!(
        "rootfs: {}\nexec: [/bin/sleep, '1000000']\n",
        busybox_rootfs().display()
    );
    for i in 0..count {
        daemon.write_unit(&format!("a{i}"), &unit);
    }
    wait_running(&daemon, count);
    let pids: Vec<_> = all_status(&daemon).into_iter().map(|u| u.pid).collect();
    let started = Instant::now();
    daemon.crash_and_restart();
    let adopted = all_status(&daemon);
    let took = started.elapsed();
    let same: Vec<_> = adopted.into_iter().map(|u| u.pid).collect();
    assert_eq!(same, pids, "every container adopted");
    daemon.stop();
    took
}

pub struct Survival {
    pub lasted: Duration,
    pub bytes: u64,
}

/// A workload writing 20 kB chunks in a loop (about 1 MB/s here) to its output while
/// no supd runs: how long until its writes block, and how much it wrote.
pub fn survival() -> Survival {
    const CHUNK: u64 = 20_000;
    let mut daemon = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let data = daemon.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let script = "n=0; while true; do head -c 20000 /dev/zero; n=$((n+1)); \
                  echo \"$(cut -d' ' -f1 /proc/uptime) $n\" > /data/next; mv /data/next /data/last; \
                  sleep 0.01; done";
    let extra = format!(
        "mounts: [{{ type: bind, source: {}, target: /data }}]\n",
        data.display()
    );
    daemon.write_unit("writer", &sh_unit(&daemon, script, &extra));
    daemon.pid("writer");
    std::thread::sleep(Duration::from_millis(300));
    let read_last = || -> (f64, u64) {
        let text = fs::read_to_string(data.join("last")).unwrap_or_default();
        let mut parts = text.split_whitespace();
        let at = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0.0);
        let n = parts.next().and_then(|t| t.parse().ok()).unwrap_or(0);
        (at, n)
    };
    let mut result = None;
    daemon.crash_and_restart_after(|_| {
        let (killed_at, written_before) = (uptime(), read_last().1);
        std::thread::sleep(Duration::from_secs(5));
        let (last_at, written) = read_last();
        result = Some(Survival {
            lasted: Duration::from_secs_f64((last_at - killed_at).max(0.0)),
            bytes: written.saturating_sub(written_before) * CHUNK,
        });
    });
    daemon.stop();
    result.unwrap_or(Survival {
        lasted: Duration::ZERO,
        bytes: 0,
    })
}
