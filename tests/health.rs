//! Health checks, the workload watchdog and health-gated dependencies, on
//! real containers. Units with checks run with `network: none` (their own
//! namespace, lo up), where the probes connect.

mod common;

use common::*;
use serde_json::Value;
use std::time::Duration;

fn health(status: &Value) -> String {
    status["health"]["state"].as_str().unwrap_or("").to_string()
}

fn wait_health(d: &Daemon, name: &str, want: &str) -> Value {
    let mut last = Value::Null;
    let found = poll(WAIT, || {
        last = d.status(name);
        health(&last) == want
    });
    assert!(
        found,
        "{name} never became {want}: {last}\n{}",
        d.daemon_log()
    );
    last
}

fn wait_restarts(d: &Daemon, name: &str, at_least: u64) -> Value {
    let mut last = Value::Null;
    let found = poll(WAIT, || {
        last = d.status(name);
        last["restarts"].as_u64().unwrap_or(0) >= at_least
    });
    assert!(
        found,
        "{name} was not restarted: {last}\n{}",
        d.daemon_log()
    );
    last
}

#[test]
fn an_http_check_restarts_the_unit_when_its_page_goes_and_it_heals() {
    let d = Daemon::start();
    let script =
        "mkdir -p /tmp/www && echo ok > /tmp/www/healthz && exec httpd -f -p 8080 -h /tmp/www";
    let extra = "network: { mode: none }\n\
                 restart: { policy: always, delay: 100ms }\n\
                 health: { http: { port: 8080, path: /healthz }, interval: 1s, timeout: 1s, retries: 2 }\n";
    d.write_unit("web", &sh_unit(&d, script, extra));
    let status = wait_health(&d, "web", "healthy");
    assert_eq!(status["health"]["last_result"], "HTTP 200", "{status}");
    assert_eq!(status["restarts"], 0);
    let table = String::from_utf8_lossy(&d.supctl(&["status", "web"]).stdout).to_string();
    assert!(
        table.contains("health: healthy (last: HTTP 200 at 20"),
        "{table}"
    );
    let removed = d.supctl(&["exec", "web", "--", "rm", "/tmp/www/healthz"]);
    assert!(removed.status.success());
    let status = wait_restarts(&d, "web", 1);
    assert_eq!(status["last_exit"]["failed_check"], "unhealthy", "{status}");
    // The reason is the status error only until the next run starts (100ms
    // here, often before a loaded guest polls again); the log keeps it.
    let log = d.daemon_log();
    assert!(
        log.contains("web: unhealthy: 2 probes failed in a row, the last: HTTP 404"),
        "{status}\n{log}"
    );
    // The new run serves the page again.
    let status = wait_health(&d, "web", "healthy");
    assert_eq!(status["state"], "running");
    let table = String::from_utf8_lossy(&d.supctl(&["status", "web"]).stdout).to_string();
    assert!(table.contains("unhealthy"), "LAST EXIT says why: {table}");
    d.stop();
}

#[test]
fn a_tcp_check_reports_a_closed_port_and_on_unhealthy_none_only_reports() {
    let d = Daemon::start();
    let script = "nc -ll -p 9000 -e true & exec sleep 1000";
    let extra = "network: { mode: none }\n\
                 health: { tcp: { port: 9000 }, interval: 300ms, timeout: 300ms, retries: 2, on_unhealthy: none }\n";
    d.write_unit("tcp", &sh_unit(&d, script, extra));
    wait_health(&d, "tcp", "healthy");
    let pid = d.pid("tcp");
    assert!(d
        .supctl(&["exec", "tcp", "--", "killall", "nc"])
        .status
        .success());
    let status = wait_health(&d, "tcp", "unhealthy");
    assert!(
        status["health"]["last_result"]
            .as_str()
            .unwrap_or_default()
            .contains("refused"),
        "{status}"
    );
    assert!(status["health"]["failures"].as_u64().unwrap_or(0) >= 2);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(d.pid("tcp"), pid, "on_unhealthy: none leaves it running");
    assert_eq!(d.status("tcp")["restarts"], 0);
    d.stop();
}

#[test]
fn an_exec_check_that_hangs_is_killed_at_its_timeout_and_reaped() {
    let d = Daemon::start();
    let extra = "network: { mode: none }\n\
                 health: { exec: [sleep, '100'], interval: 600ms, timeout: 300ms, retries: 1, on_unhealthy: none }\n";
    d.write_unit("hang", &sh_unit(&d, "exec sleep 1000", extra));
    let status = wait_health(&d, "hang", "unhealthy");
    assert_eq!(status["health"]["last_result"], "timed out after 300ms");
    // Several probes later: none left running, no zombie of supd's.
    std::thread::sleep(Duration::from_secs(2));
    let probes: Vec<String> = processes_in_cgroups_of(&d.dir)
        .into_iter()
        .filter(|p| p.contains("sleep 100") && !p.contains("sleep 1000"))
        .collect();
    assert!(probes.len() <= 1, "at most the probe in flight: {probes:?}");
    let zombies: Vec<_> = children(d.daemon_pid() as i32)
        .into_iter()
        .filter(|(_, state)| *state == 'Z')
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}");
    // An exec check that passes shows what it printed.
    let extra = "network: { mode: none }\n\
                 health: { exec: [sh, -c, 'echo all good'], interval: 1s }\n";
    d.write_unit("talk", &sh_unit(&d, "exec sleep 1000", extra));
    let status = wait_health(&d, "talk", "healthy");
    assert_eq!(status["health"]["output"], "all good", "{status}");
    assert_eq!(status["health"]["last_result"], "exit 0");
    d.stop();
}

#[test]
fn failures_in_the_start_period_do_not_count_and_a_failing_check_hits_the_start_limit() {
    let d = Daemon::start();
    let extra = "network: { mode: none }\n\
                 restart: { policy: always, delay: 100ms, start_limit: { burst: 2, interval: 1m } }\n\
                 health: { exec: ['false'], interval: 1s, timeout: 1s, retries: 1, start_period: 3s }\n";
    d.write_unit("bad", &sh_unit(&d, "exec sleep 1000", extra));
    d.pid("bad");
    let mut status = Value::Null;
    assert!(poll(WAIT, || {
        status = d.status("bad");
        !status["health"]["last_result"].is_null()
    }));
    assert_eq!(status["restarts"], 0, "inside the start period: {status}");
    assert_eq!(health(&status), "starting", "{status}");
    assert_eq!(status["health"]["failures"], 0, "{status}");
    let status = d.wait_state("bad", "failed");
    assert_eq!(status["last_exit"]["failed_check"], "unhealthy", "{status}");
    d.stop();
}

#[test]
fn the_watchdog_restarts_a_notify_workload_that_stops_pinging() {
    let d = Daemon::start();
    let script = "echo usec=$WATCHDOG_USEC; sd-notify READY=1; \
                  for i in 1 2 3 4; do sleep 0.3; sd-notify WATCHDOG=1; done; echo quiet; exec sleep 1000";
    let extra = "notify: true\nwatchdog: 2s\nrestart: { policy: always, delay: 100ms }\n";
    d.write_unit("dog", &sh_unit(&d, script, extra));
    d.wait_log("dog", "usec=2000000");
    let status = wait_restarts(&d, "dog", 1);
    assert_eq!(status["last_exit"]["failed_check"], "watchdog", "{status}");
    let log = d.log("dog");
    assert!(log.matches("quiet").count() >= 1, "{log}");
    // WATCHDOG=trigger restarts at once.
    let script = "sd-notify READY=1; sleep 0.3; sd-notify WATCHDOG=trigger; exec sleep 1000";
    d.write_unit("now", &sh_unit(&d, script, "notify: true\nwatchdog: 1h\n"));
    let status = wait_restarts(&d, "now", 1);
    assert_eq!(status["last_exit"]["failed_check"], "watchdog", "{status}");
    d.stop();
}

#[test]
fn a_dependent_waits_until_its_dependency_is_healthy() {
    let d = Daemon::start();
    let db = "sleep 2; touch /tmp/ready; exec sleep 1000";
    let check = "network: { mode: none }\n\
                 health: { exec: [test, -f, /tmp/ready], interval: 1s, retries: 3, start_period: 10s }\n";
    d.write_unit("db", &sh_unit(&d, db, check));
    d.write_unit(
        "app",
        &sh_unit(&d, "echo app up; exec sleep 1000", "depends_on: [db]\n"),
    );
    d.pid("db");
    let mut last = Value::Null;
    assert!(
        poll(WAIT, || {
            last = d.status("app");
            last["error"]
                .as_str()
                .is_some_and(|e| e.contains("db (not healthy yet)"))
        }),
        "{last}"
    );
    assert_eq!(last["state"], "starting");
    wait_health(&d, "db", "healthy");
    d.wait_log("app", "app up");
    assert_eq!(d.state("app"), "running");
    d.stop();
}
