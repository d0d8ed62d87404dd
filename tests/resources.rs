//! Cgroup limits on real containers, on whatever layout the host has.

mod common;

use common::*;
use std::fs;
use std::time::Duration;

fn read(path: &std::path::Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn memory_max_is_in_place_and_stats_are_reported() {
    let d = Daemon::start();
    d.write_unit(
        "mem",
        &sh_unit(
            &d,
            "exec sleep 1000",
            "resources: { memory: { max: 64M } }\n",
        ),
    );
    d.pid("mem");
    let (controller, file) = if is_cgroup_v2() {
        ("", "memory.max")
    } else {
        ("memory", "memory.limit_in_bytes")
    };
    assert_eq!(read(&cgroup_file(&d, "mem", controller, file)), "67108864");
    let status = d.status("mem");
    assert!(
        status["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{status}"
    );
    assert!(status["working_set_bytes"].as_u64().is_some(), "{status}");
    assert_eq!(status["pids"], 2, "init and sleep: {status}");
    assert_eq!(status["oom_kills"], 0);
    assert!(status["cpu_percent"].as_f64().is_some(), "{status}");
    d.stop();
}

#[test]
fn a_memory_hog_is_oom_killed_and_reported() {
    let d = Daemon::start();
    let swap = if is_cgroup_v2()
        || std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    {
        ", swap: 0"
    } else {
        ""
    };
    let extra =
        format!("resources: {{ memory: {{ max: 32M{swap} }} }}\nrestart: {{ policy: never }}\n");
    d.write_unit(
        "hog",
        &sh_unit(
            &d,
            "echo allocating; exec dd if=/dev/zero of=/dev/null bs=128M count=1",
            &extra,
        ),
    );
    let status = d.wait_state("hog", "failed");
    assert_eq!(status["last_exit"]["oom_killed"], true, "{status}");
    assert!(status["oom_kills"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(
        status["last_exit"]["code"], 137,
        "the workload died of SIGKILL: {status}"
    );
    assert!(d.daemon_log().contains("OOM-killed"), "{}", d.daemon_log());
    let table = String::from_utf8(d.supctl(&["status", "hog"]).stdout).unwrap();
    assert!(table.contains("oom-killed"), "{table}");
    d.stop();
}

#[test]
fn pids_max_caps_a_fork_storm() {
    let d = Daemon::start();
    // busybox sh dies when a fork fails: the storm runs in a child shell.
    let script =
        "sh -c 'while true; do sleep 1000 & done' 2>/dev/null; echo forked; exec sleep 1000";
    d.write_unit(
        "storm",
        &sh_unit(&d, script, "resources: { pids: { max: 20 } }\n"),
    );
    d.pid("storm");
    d.wait_log("storm", "forked");
    let status = d.status("storm");
    let pids = status["pids"].as_u64().unwrap();
    assert!((10..=20).contains(&pids), "{status}");
    assert_eq!(read(&cgroup_file(&d, "storm", "pids", "pids.max")), "20");
    d.stop();
}

/// Measured from the cgroup's own usage counter over two seconds.
#[test]
fn cpu_max_holds_a_busy_loop_near_its_quota() {
    let d = Daemon::start();
    d.write_unit(
        "busy",
        &sh_unit(
            &d,
            "while :; do :; done",
            "resources: { cpu: { max: 0.2 } }\n",
        ),
    );
    d.pid("busy");
    std::thread::sleep(Duration::from_millis(500));
    d.status("busy");
    std::thread::sleep(Duration::from_secs(2));
    let share = d.status("busy")["cpu_percent"].as_f64().unwrap();
    eprintln!("cpu.max 0.2: measured {share}% of one CPU");
    assert!(
        (12.0..=25.0).contains(&share),
        "measured {share}% of one CPU"
    );
    let expected = if is_cgroup_v2() {
        "20000 100000"
    } else {
        "20000"
    };
    let (controller, file) = if is_cgroup_v2() {
        ("", "cpu.max")
    } else {
        ("cpu", "cpu.cfs_quota_us")
    };
    assert_eq!(read(&cgroup_file(&d, "busy", controller, file)), expected);
    d.stop();
}

#[test]
fn a_resource_only_edit_keeps_the_pid_and_changes_the_file() {
    let d = Daemon::start();
    let unit = |max: &str| {
        sh_unit(
            &d,
            "exec sleep 1000",
            &format!("resources: {{ memory: {{ max: {max} }}, pids: {{ max: 50 }} }}\n"),
        )
    };
    d.write_unit("grow", &unit("64M"));
    let pid = d.pid("grow");
    let (controller, file) = if is_cgroup_v2() {
        ("", "memory.max")
    } else {
        ("memory", "memory.limit_in_bytes")
    };
    let path = cgroup_file(&d, "grow", controller, file);
    d.write_unit("grow", &unit("128M"));
    d.wait_for("the new limit", WAIT, || read(&path) == "134217728");
    assert_eq!(d.pid("grow"), pid);
    assert!(d.daemon_log().contains(&format!(
        "grow: resources updated without restart (pid {pid})"
    )));
    d.stop();
}

#[test]
fn limits_the_host_cannot_honour_are_rejected_and_others_run() {
    let d = Daemon::start();
    d.write_unit("fine", &sh_unit(&d, "exec sleep 1000", ""));
    d.write_unit(
        "cpus",
        &sh_unit(
            &d,
            "exec sleep 1000",
            "resources: { cpu: { cpuset: \"0-63\" } }\n",
        ),
    );
    d.write_unit(
        "disk",
        &sh_unit(
            &d,
            "exec sleep 1000",
            "resources:\n  io:\n    limits: [{ device: /dev/null, read_bps: 1M }]\n",
        ),
    );
    let wrong_layout = if is_cgroup_v2() {
        "swappiness: 10"
    } else {
        "high: 100M"
    };
    d.write_unit(
        "layout",
        &sh_unit(
            &d,
            "exec sleep 1000",
            &format!("resources:\n  memory:\n    {wrong_layout}\n"),
        ),
    );
    d.pid("fine");
    let error = |name: &str| {
        d.wait_state(name, "invalid")["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        error("cpus").contains("resources.cpu.cpuset: CPUs"),
        "{}",
        error("cpus")
    );
    assert!(error("cpus").contains("are not online on this host"));
    assert!(
        error("disk").contains("resources.io.limits[0].device: /dev/null is not a block device"),
        "{}",
        error("disk")
    );
    assert!(
        error("layout").contains("has no meaning on"),
        "{}",
        error("layout")
    );
    assert!(
        error("layout").contains(":6:5:"),
        "points at the key: {}",
        error("layout")
    );
    d.stop();
}
