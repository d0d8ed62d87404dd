//! Live restore (DESIGN 9.1): a supd that is SIGKILLed, crashes or
//! re-executes itself adopts the containers that still run, with their
//! PIDs, states, uptimes, counters and output; one that exited meanwhile is
//! reported with its real exit code.

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

/// Counts forever, one numbered line every 10 ms: a gap in the numbers is
/// lost output.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.01; done";

fn numbers(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.strip_prefix("line ")?.parse().ok())
        .collect()
}

fn assert_no_gaps(log: &str) {
    let seen = numbers(log);
    assert!(seen.len() > 10, "{log}");
    for pair in seen.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "output lost between lines {pair:?}");
    }
}

fn snapshot(d: &Daemon, name: &str) -> (Value, Value, Value, Value) {
    let status = d.status(name);
    (
        status["pid"].clone(),
        status["state"].clone(),
        status["since"].clone(),
        status["restarts"].clone(),
    )
}

#[test]
fn a_killed_supd_is_replaced_without_touching_its_containers() {
    let mut d = Daemon::start();
    let notify = "sd-notify READY=1 STATUS=serving; exec sleep 1000";
    d.write_unit("noted", &sh_unit(&d, notify, "notify: true\n"));
    let bridged = "network: { mode: bridge, address: 10.91.0.10/24 }\n";
    d.write_unit("bridged", &sh_unit(&d, "exec sleep 1000", bridged));
    d.write_unit("chatty", &sh_unit(&d, COUNTER, ""));
    d.wait_state("noted", "ready");
    d.pid("bridged");
    d.wait_log("chatty", "line 20");
    let before: Vec<_> = ["noted", "bridged", "chatty"]
        .iter()
        .map(|n| snapshot(&d, n))
        .collect();
    d.crash_and_restart_after(|_| std::thread::sleep(Duration::from_millis(300)));
    let after: Vec<_> = ["noted", "bridged", "chatty"]
        .iter()
        .map(|n| snapshot(&d, n))
        .collect();
    assert_eq!(before, after, "same PIDs, states, uptimes and restarts");
    assert_eq!(d.status("noted")["status_text"], "serving");
    assert_eq!(
        d.status("bridged")["addresses"],
        serde_json::json!(["10.91.0.10/24"])
    );
    let lines = numbers(&d.log("chatty")).last().copied().unwrap_or(0);
    d.wait_log("chatty", &format!("line {}", lines + 20));
    assert_no_gaps(&d.log("chatty"));
    let log = d.daemon_log();
    assert!(
        log.contains("chatty: adopted the running container"),
        "{log}"
    );
    assert!(!log.contains("cleared the cgroup"), "{log}");
    assert!(d
        .supctl(&["stop", "noted", "bridged", "chatty"])
        .status
        .success());
    for name in ["noted", "bridged", "chatty"] {
        assert_eq!(d.state(name), "stopped");
    }
    d.stop();
}

#[test]
fn a_container_that_exits_while_supd_is_away_reports_its_code() {
    let mut d = Daemon::start();
    let trigger = d.dir.join("trigger");
    fs::create_dir_all(&trigger).unwrap();
    let extra = format!(
        "restart: {{ policy: on-failure, delay: 100ms }}\nmounts: [{{ type: bind, source: {}, target: /trigger }}]\n",
        trigger.display()
    );
    let script = "if [ -e /trigger/done ]; then exec sleep 1000; fi; \
                  while [ ! -e /trigger/go ]; do sleep 0.02; done; touch /trigger/done; exit 7";
    d.write_unit("seven", &sh_unit(&d, script, &extra));
    let old = d.pid("seven");
    d.crash_and_restart_after(|_| {
        fs::write(trigger.join("go"), "").unwrap();
        assert!(poll(WAIT, || stat(old).is_none_or(|(_, s)| s == 'Z')));
    });
    // The restart policy ran: a new container, counted as a restart.
    d.wait_for("a new run", WAIT, || {
        let pid = d.status("seven")["pid"].as_i64();
        pid.is_some() && pid != Some(old as i64)
    });
    let status = d.status("seven");
    assert_eq!(status["last_exit"]["code"], 7, "{status}");
    assert_eq!(status["restarts"], 1, "{status}");
    d.stop();
}

#[test]
fn daemon_reexec_keeps_every_container_and_the_pid() {
    let d = Daemon::start();
    d.write_unit("steady", &sh_unit(&d, COUNTER, ""));
    let steady = d.pid("steady");
    d.wait_log("steady", "line 10");
    let supd = d.daemon_pid();
    let descriptors = || fs::read_dir(format!("/proc/{supd}/fd")).unwrap().count();
    let before = descriptors();
    // A status request in flight and a container starting meanwhile.
    let socket = d.socket.clone();
    let busy = std::thread::spawn(move || {
        let mut answered = 0;
        for _ in 0..40 {
            let out = std::process::Command::new(SUPCTL)
                .env("SUPD_SOCKET", &socket)
                .args(["status", "--json"])
                .output()
                .unwrap();
            answered += usize::from(out.status.success());
            std::thread::sleep(Duration::from_millis(5));
        }
        answered
    });
    d.write_unit("late", &sh_unit(&d, "exec sleep 1000", ""));
    let out = d.supctl(&["daemon-reexec"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("supd answers again"),
        "{out:?}"
    );
    assert_eq!(
        busy.join().unwrap(),
        40,
        "every status request was answered"
    );
    assert_eq!(d.daemon_pid(), supd);
    assert!(
        fs::read_to_string(format!("/proc/{supd}/status"))
            .unwrap()
            .contains("State:"),
        "the same supd process"
    );
    assert_eq!(d.pid("steady"), steady);
    let late = d.pid("late");
    // The new supd holds what the old one did (the late unit's output and
    // pidfd are new): nothing leaked across the exec.
    assert!(descriptors() <= before + 4, "{before} -> {}", descriptors());
    let log = d.daemon_log();
    assert!(log.contains("daemon-reexec: executing"), "{log}");
    assert!(
        log.contains("steady: adopted the running container"),
        "{log}"
    );
    assert_eq!(d.status("steady")["restarts"], 0);
    let lines = numbers(&d.log("steady")).last().copied().unwrap_or(0);
    d.wait_log("steady", &format!("line {}", lines + 10));
    assert_no_gaps(&d.log("steady"));
    // Adopted children are still supd's children: a stop reaps them.
    assert!(d.supctl(&["stop", "steady", "late"]).status.success());
    assert!(stat(late).is_none());
    d.stop();
}

#[test]
fn files_changed_or_removed_while_supd_was_away_are_reconciled() {
    let mut d = Daemon::start();
    d.write_unit("kept", &sh_unit(&d, "exec sleep 1000", ""));
    d.write_unit("edited", &sh_unit(&d, "exec sleep 1000", ""));
    d.write_unit("removed", &sh_unit(&d, "exec sleep 1000", ""));
    let kept = d.pid("kept");
    let edited = d.pid("edited");
    let removed = d.pid("removed");
    d.crash_and_restart_after(|d| {
        d.write_unit("edited", &sh_unit(d, "echo new; exec sleep 1000", ""));
        fs::remove_file(d.units.join("removed.yaml")).unwrap();
    });
    assert_eq!(d.pid("kept"), kept);
    d.wait_log("edited", "new");
    assert_ne!(d.pid("edited"), edited);
    d.wait_for("the removed unit to go", WAIT, || {
        d.status("removed")["name"].is_null() && stat(removed).is_none_or(|(_, s)| s == 'Z')
    });
    d.stop();
}

#[test]
fn the_workload_cannot_reach_what_the_init_holds_for_supd() {
    let d = Daemon::start();
    let script = "if cat /proc/1/fd/6 >/dev/null 2>&1; then echo reachable; else echo sealed; fi; \
                  exec sleep 1000";
    d.write_unit("probe", &sh_unit(&d, script, ""));
    let log = d.wait_log("probe", "e");
    assert!(log.contains("sealed"), "{log}");
    d.stop();
}

/// The unit's cgroup directories, in every hierarchy supd uses.
fn unit_cgroups(d: &Daemon, name: &str) -> Vec<PathBuf> {
    cgroup_dirs(&d.dir)
        .into_iter()
        .map(|parent| parent.join(name))
        .filter(|dir| dir.is_dir())
        .collect()
}

#[test]
fn cgroups_a_workload_made_go_with_it_and_do_not_stop_adoption() {
    let mut d = Daemon::start();
    d.write_unit("nested", &sh_unit(&d, "sleep 1000 & exec sleep 1000", ""));
    let init = d.pid("nested");
    d.wait_for("the workload's children", WAIT, || {
        children(init)
            .first()
            .is_some_and(|(w, _)| !children(*w).is_empty())
    });
    let workload = children(init)[0].0;
    let inner = children(workload)[0].0;
    // As systemd inside a container would: its own cgroups, a process in one.
    for dir in unit_cgroups(&d, "nested") {
        let deeper = dir.join("os/service");
        fs::create_dir_all(&deeper).unwrap();
        fs::write(deeper.join("cgroup.procs"), inner.to_string()).unwrap();
    }
    d.crash_and_restart();
    assert_eq!(d.pid("nested"), init, "adopted despite its nested cgroups");
    assert!(d.supctl(&["stop", "nested"]).status.success());
    assert!(
        unit_cgroups(&d, "nested").is_empty(),
        "nested cgroups removed at stop"
    );
    assert!(!d.daemon_log().contains("leaving a container cgroup behind"));
    d.stop();
}

#[test]
fn a_corrupt_record_costs_only_its_own_unit() {
    let mut d = Daemon::start();
    d.write_unit("good", &sh_unit(&d, "exec sleep 1000", ""));
    d.write_unit("spoilt", &sh_unit(&d, "exec sleep 1000", ""));
    d.write_unit("cut", &sh_unit(&d, "exec sleep 1000", ""));
    let good = d.pid("good");
    let spoilt = d.pid("spoilt");
    let cut = d.pid("cut");
    d.crash_and_restart_after(|d| {
        let records = d.dir.join("run/units");
        fs::write(records.join("spoilt.json"), "{\"boot_id\": [1, 2").unwrap();
        let whole = fs::read(records.join("cut.json")).unwrap();
        fs::write(records.join("cut.json"), &whole[..whole.len() / 2]).unwrap();
    });
    assert_eq!(d.pid("good"), good);
    for (name, old) in [("spoilt", spoilt), ("cut", cut)] {
        let fresh = d.pid(name);
        assert_ne!(fresh, old, "{name} started afresh");
        let log = d.daemon_log();
        let path = d.dir.join(format!("run/units/{name}.json"));
        assert!(
            log.contains(&format!("{}: corrupt unit record", path.display())),
            "{log}"
        );
        assert!(
            log.contains(&format!("{name}: cleared the cgroup an earlier supd left")),
            "{log}"
        );
    }
    d.stop();
}
