//! Health checks: what a 1 s tcp check on many containers costs supd (CPU
//! and context switches per second), and how soon a workload whose check
//! starts failing is restarted, against the configured interval x retries.

use crate::common::{poll, sh_unit, Daemon, WAIT};
use crate::fleet::{all_status, cpu_time, switches, wait_running};
use std::time::{Duration, Instant};

pub struct Cost {
    pub cpu_percent: f64,
    pub switches_per_second: f64,
}

fn healthy_count(daemon: &Daemon) -> usize {
    all_status(daemon)
        .iter()
        .filter(|u| {
            u.health
                .as_ref()
                .is_some_and(|h| h.state == supd::control::protocol::Health::Healthy)
        })
        .count()
}

/// supd's cost over `seconds` with `count` containers probed every second.
pub fn cost(count: usize, seconds: u64) -> Cost {
    let daemon = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let extra =
        "network: { mode: none }\nhealth: { tcp: { port: 9000 }, interval: 1s, timeout: 1s }\n";
    for i in 0..count {
        let unit = sh_unit(&daemon, "nc -ll -p 9000 -e true & exec sleep 1000", extra);
        daemon.write_unit(&format!("h{i}"), &unit);
    }
    wait_running(&daemon, count);
    assert!(poll(WAIT, || healthy_count(&daemon) == count));
    let supd = daemon.daemon_pid();
    let (cpu_before, switches_before) = (cpu_time(supd), switches(supd));
    let began = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let took = began.elapsed().as_secs_f64();
    let cost = Cost {
        cpu_percent: cpu_time(supd).saturating_sub(cpu_before).as_secs_f64() * 100.0 / took,
        switches_per_second: (switches(supd) - switches_before) as f64 / took,
    };
    daemon.stop();
    cost
}

/// From the moment the check's page is removed to the restart, `rounds`
/// times, with a 500 ms interval and 3 retries.
pub fn detection(rounds: usize) -> Vec<Duration> {
    let daemon = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let script =
        "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www";
    let extra = "network: { mode: none }\n\
                 restart: { policy: always, delay: 100ms, start_limit: { burst: 1000, interval: 1m } }\n\
                 health: { http: { port: 8080, path: /healthz }, interval: 500ms, timeout: 500ms, retries: 3 }\n";
    daemon.write_unit("web", &sh_unit(&daemon, script, extra));
    let mut samples = Vec::new();
    for round in 0..rounds {
        assert!(poll(WAIT, || healthy_count(&daemon) == 1));
        let began = Instant::now();
        let removed = daemon.supctl(&["exec", "web", "--", "rm", "/tmp/www/healthz"]);
        assert!(removed.status.success());
        assert!(poll(WAIT, || daemon.status("web")["restarts"]
            .as_u64()
            .is_some_and(|r| r > round as u64)));
        samples.push(began.elapsed());
    }
    daemon.stop();
    samples
}
