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
    let accounting = is_cgroup_v2()
        || std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    let swap = if host_has("swap-accounting", accounting) {
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

/// A block device of this host (loop0 where the loop module is loaded) and
/// its "major:minor".
fn some_block_device() -> (String, String) {
    use std::os::unix::fs::FileTypeExt;
    let mut candidates = vec!["loop0".to_string()];
    let sys_block = fs::read_dir("/sys/block").unwrap();
    candidates.extend(
        sys_block
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string()),
    );
    for name in candidates {
        let dev = format!("/dev/{name}");
        let numbers = fs::read_to_string(format!("/sys/class/block/{name}/dev"));
        let is_block = fs::metadata(&dev).is_ok_and(|m| m.file_type().is_block_device());
        if let (true, Ok(numbers)) = (is_block, numbers) {
            return (dev, numbers.trim().to_string());
        }
    }
    panic!("no block device for the io limits");
}

/// Every key of `resources` in the file the host's layout gives it, read
/// back from the kernel, and every one lifted again by a live edit that
/// removes them (same pid).
#[test]
fn every_resource_key_lands_in_its_file_and_is_lifted_live() {
    let d = Daemon::start();
    let v2 = is_cgroup_v2();
    let host = supd::runtime::cgroup::probe_host(std::path::Path::new("/sys/fs/cgroup")).unwrap();
    let (device, numbers) = some_block_device();
    let swap_accounting = host_has("swap-accounting", host.swap_accounting);
    let io_weight = host_has("io-weight", host.io_weight);
    let memory = match (v2, swap_accounting) {
        (true, true) => "{ max: 64M, high: 48M, swap: 0, oom_score_adj: 500 }",
        (true, false) => "{ max: 64M, high: 48M, oom_score_adj: 500 }",
        (false, true) => "{ max: 64M, swap: 0, swappiness: 10, oom_score_adj: 500 }",
        (false, false) => "{ max: 64M, swappiness: 10, oom_score_adj: 500 }",
    };
    let io_weight_key = if io_weight { "weight: 300, " } else { "" };
    let limited = format!(
        "resources:\n  memory: {memory}\n  cpu: {{ max: 0.5, weight: 200, cpuset: \"0\" }}\n  \
         pids: {{ max: 77 }}\n  io: {{ {io_weight_key}limits: [{{ device: {device}, read_bps: 1M, \
         write_bps: 2M, read_iops: 100, write_iops: 200 }}] }}\n"
    );
    d.write_unit("all", &sh_unit(&d, "exec sleep 1000", &limited));
    let pid = d.pid("all");
    let file = |v1_controller: &str, v1_file: &str, v2_file: &str| {
        if v2 {
            cgroup_file(&d, "all", "", v2_file)
        } else {
            cgroup_file(&d, "all", v1_controller, v1_file)
        }
    };
    let lines = |path: std::path::PathBuf| -> Vec<String> {
        read(&path).lines().map(|l| l.trim().to_string()).collect()
    };
    let mut expected: Vec<(std::path::PathBuf, &str)> = vec![
        (
            file("memory", "memory.limit_in_bytes", "memory.max"),
            "67108864",
        ),
        (
            file("cpu", "cpu.cfs_quota_us", "cpu.max"),
            if v2 { "50000 100000" } else { "50000" },
        ),
        (
            file("cpu", "cpu.shares", "cpu.weight"),
            if v2 { "200" } else { "2048" },
        ),
        (file("cpuset", "cpuset.cpus", "cpuset.cpus"), "0"),
        (file("pids", "pids.max", "pids.max"), "77"),
    ];
    if v2 {
        expected.push((file("", "", "memory.high"), "50331648"));
    } else {
        expected.push((file("cpu", "cpu.cfs_period_us", ""), "100000"));
        expected.push((file("memory", "memory.swappiness", ""), "10"));
    }
    if swap_accounting {
        // v1 limits memory plus swap: max + 0.
        let swap = if v2 { "0" } else { "67108864" };
        expected.push((
            file("memory", "memory.memsw.limit_in_bytes", "memory.swap.max"),
            swap,
        ));
    }
    for (path, value) in &expected {
        assert_eq!(read(path), *value, "{}", path.display());
    }
    if io_weight {
        let weight = lines(file("blkio", "blkio.weight", "io.weight"));
        assert_eq!(weight[0], if v2 { "default 300" } else { "1000" });
    }
    let io_lines: Vec<(std::path::PathBuf, String)> = if v2 {
        vec![(
            file("", "", "io.max"),
            format!("{numbers} rbps=1048576 wbps=2097152 riops=100 wiops=200"),
        )]
    } else {
        vec![
            (
                file("blkio", "blkio.throttle.read_bps_device", ""),
                format!("{numbers} 1048576"),
            ),
            (
                file("blkio", "blkio.throttle.write_bps_device", ""),
                format!("{numbers} 2097152"),
            ),
            (
                file("blkio", "blkio.throttle.read_iops_device", ""),
                format!("{numbers} 100"),
            ),
            (
                file("blkio", "blkio.throttle.write_iops_device", ""),
                format!("{numbers} 200"),
            ),
        ]
    };
    for (path, line) in &io_lines {
        assert!(
            lines(path.clone()).iter().any(|l| l == line),
            "{}",
            path.display()
        );
    }
    assert_eq!(
        read(std::path::Path::new(&format!("/proc/{pid}/oom_score_adj"))),
        "500"
    );

    // Without oom_score_adj (a process attribute, so not live) everything
    // else is lifted in place.
    let kept_adj = "resources: { memory: { oom_score_adj: 500 } }\n";
    d.write_unit("all", &sh_unit(&d, "exec sleep 1000", kept_adj));
    let memory_max = file("memory", "memory.limit_in_bytes", "memory.max");
    d.wait_for("the memory limit lifted", WAIT, || {
        let value = read(&memory_max);
        value == "max" || value.parse::<u64>().is_ok_and(|v| v >= 1 << 62)
    });
    assert_eq!(d.pid("all"), pid, "lifted without a restart");
    let unlimited = if v2 { "max" } else { "-1" };
    assert_eq!(read(&file("pids", "pids.max", "pids.max")), "max");
    assert_eq!(
        read(&file("cpu", "cpu.cfs_quota_us", "cpu.max")),
        if v2 { "max 100000" } else { unlimited }
    );
    for (path, line) in &io_lines {
        let device = line.split_whitespace().next().unwrap();
        assert!(
            !lines(path.clone())
                .iter()
                .any(|l| l.starts_with(&format!("{device} "))),
            "{} still limits {device}",
            path.display()
        );
    }
    d.stop();
}
