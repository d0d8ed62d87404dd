//! Real containers from a busybox rootfs, started by a real supd, as root.

mod common;

use common::*;
use std::fs;
use std::time::{Duration, Instant};

#[test]
fn pid1_is_the_builtin_init_and_hostname_env_are_set() {
    let d = Daemon::start();
    d.write_unit(
        "box",
        &sh_unit(
            &d,
            "echo cmdline=$(tr '\\0' ' ' < /proc/1/cmdline); echo host=$(hostname); echo self=$$; echo env=$container/$HOSTNAME/$TZ; ls /dev; echo listed; exec sleep 1000",
            "",
        )
        .replace("env: {", "env: { TZ: UTC,"),
    );
    d.supctl(&["reload"]);
    // Wait for the line after the listing: the log may be read mid-way.
    let log = d.wait_log("box", "listed\n");
    assert!(log.contains("cmdline=supd __init-stage"), "{log}");
    assert!(log.contains("host=box\n"), "{log}");
    assert!(
        log.contains("self=2\n"),
        "the workload is PID 2 under init: {log}"
    );
    assert!(log.contains("env=supd/box/UTC"), "{log}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "fd", "stdin", "ptmx",
    ] {
        assert!(log.lines().any(|l| l == dev), "/dev/{dev} missing: {log}");
    }
    d.stop();
}

#[test]
fn without_init_the_workload_is_pid1() {
    let d = Daemon::start();
    d.write_unit(
        "raw",
        &sh_unit(&d, "echo self=$$; exec sleep 1000", "init: false\n"),
    );
    d.supctl(&["reload"]);
    let log = d.wait_log("raw", "self=");
    assert!(log.contains("self=1\n"), "{log}");
    d.stop();
}

#[test]
fn thirty_orphaned_grandchildren_leave_no_zombies() {
    let d = Daemon::start();
    let script = "for i in $(seq 30); do sh -c 'sleep 0.3 &' ; done; echo spawned; exec sleep 1000";
    d.write_unit("orphans", &sh_unit(&d, script, ""));
    d.supctl(&["reload"]);
    let init = d.pid("orphans");
    d.wait_log("orphans", "spawned");
    // The orphans are reparented to our init, exit, and must be reaped.
    d.wait_for("orphans to be reaped", WAIT, || {
        let kids = children(init);
        kids.len() == 1 && kids.iter().all(|(_, state)| *state != 'Z')
    });
    let zombies: Vec<_> = children(init)
        .into_iter()
        .filter(|(_, s)| *s == 'Z')
        .collect();
    assert!(zombies.is_empty(), "{zombies:?}");
    d.stop();
}

#[test]
fn sigterm_reaches_a_workload_with_a_trap() {
    let d = Daemon::start();
    let script = "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
    d.write_unit("trap", &sh_unit(&d, script, ""));
    d.supctl(&["reload"]);
    d.pid("trap");
    d.wait_log("trap", "ready");
    let out = d.supctl(&["stop", "trap"]);
    assert!(out.status.success(), "{out:?}");
    assert!(d.log("trap").contains("got-term"));
    let status = d.status("trap");
    assert_eq!(status["state"], "stopped");
    assert_eq!(status["last_exit"]["code"], 0);
    d.stop();
}

#[test]
fn a_workload_ignoring_sigterm_and_its_children_are_killed_after_the_timeout() {
    let d = Daemon::start();
    let script = "trap '' TERM; sleep 1000 & sleep 1000 & echo ready; wait";
    d.write_unit("stubborn", &sh_unit(&d, script, "stop: { timeout: 1s }\n"));
    d.supctl(&["reload"]);
    d.pid("stubborn");
    d.wait_log("stubborn", "ready");
    let needle = format!("{}/", d.dir.display());
    let container = || {
        let daemon = format!("{}: ", d.daemon_pid());
        let all = processes_mentioning(&needle);
        all.into_iter().filter(|p| !p.starts_with(&daemon)).count()
    };
    assert_eq!(container(), 4, "init, sh and two sleeps");
    let began = Instant::now();
    let out = d.supctl(&["stop", "stubborn"]);
    let took = began.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert!(
        took >= Duration::from_secs(1),
        "stop returned before the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2),
        "stop took {took:?}, over timeout + 1 s"
    );
    assert_eq!(container(), 0);
    assert_eq!(d.status("stubborn")["last_exit"]["signal"], 9);
    d.stop();
}

#[test]
fn exit_code_is_reported() {
    let d = Daemon::start();
    d.write_unit(
        "seven",
        &sh_unit(&d, "exit 7", "restart: { policy: never }\n"),
    );
    d.supctl(&["reload"]);
    let status = d.wait_state("seven", "failed");
    assert_eq!(status["last_exit"]["code"], 7);
    assert_eq!(status["last_exit"]["signal"], serde_json::Value::Null);
    assert_eq!(status["pid"], serde_json::Value::Null);
    let out = d.supctl(&["status", "seven"]);
    assert_eq!(out.status.code(), Some(3), "a unit that is not running");
    assert!(String::from_utf8_lossy(&out.stdout).contains("code 7"));
    d.stop();
}

#[test]
fn clean_exit_with_on_failure_stays_stopped() {
    let d = Daemon::start();
    d.write_unit("once", &sh_unit(&d, "echo done", ""));
    d.supctl(&["reload"]);
    let status = d.wait_state("once", "stopped");
    assert_eq!(status["last_exit"]["code"], 0);
    assert_eq!(status["restarts"], 0);
    d.stop();
}

#[test]
fn backoff_doubles_between_restarts() {
    let d = Daemon::start();
    // /proc/uptime is not namespaced: a shared monotonic clock.
    let script = "echo start $(cut -d' ' -f1 /proc/uptime); exit 1";
    let extra = "restart: { policy: always, delay: 200ms, max_delay: 800ms, start_limit: { burst: 100 } }\n";
    d.write_unit("flap", &sh_unit(&d, script, extra));
    d.supctl(&["reload"]);
    d.wait_for("six starts", Duration::from_secs(20), || {
        d.log("flap").matches("start ").count() >= 6
    });
    let starts: Vec<f64> = d
        .log("flap")
        .lines()
        .filter_map(|l| l.strip_prefix("start ")?.parse().ok())
        .collect();
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // The delays supd chose, from its log: the start of a container costs
    // more than the delay itself under emulation, so the gaps alone do not
    // show the doubling.
    let chosen: Vec<String> = d
        .daemon_log()
        .lines()
        .filter_map(|l| Some(l.split_once("flap: restarting in ")?.1.to_string()))
        .take(5)
        .collect();
    assert_eq!(chosen, ["200ms", "400ms", "800ms", "800ms", "800ms"]);
    // Lower bounds only: a back-off is never shorter than the one chosen.
    for (gap, want) in gaps.iter().zip([0.2, 0.4, 0.8, 0.8, 0.8]) {
        assert!(*gap >= want - 0.02, "gaps {gaps:?}");
    }
    assert!(d.status("flap")["restarts"].as_u64().unwrap() >= 5);
    d.stop();
}

#[test]
fn a_crash_loop_ends_in_failed_and_restart_revives_it() {
    let d = Daemon::start();
    let data = d.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let extra = format!(
        "restart: {{ policy: always, delay: 100ms, start_limit: {{ burst: 3, interval: 1m }} }}\nmounts: [{{ type: bind, source: {}, target: /data }}]\n",
        data.display()
    );
    let script = "if [ -e /data/ok ]; then echo healthy; exec sleep 1000; fi; exit 1";
    d.write_unit("loop", &sh_unit(&d, script, &extra));
    d.supctl(&["reload"]);
    let status = d.wait_state("loop", "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("start limit hit: 3 starts within 1m"),
        "{status}"
    );
    fs::write(data.join("ok"), "").unwrap();
    let out = d.supctl(&["restart", "loop"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(d.state("loop"), "running");
    d.wait_log("loop", "healthy");
    d.stop();
}

#[test]
fn reset_failed_clears_the_state_and_starts_again() {
    let d = Daemon::start();
    let data = d.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let extra = format!(
        "restart: {{ policy: never }}\nmounts: [{{ type: bind, source: {}, target: /data }}]\n",
        data.display()
    );
    let script = "if [ -e /data/ok ]; then exec sleep 1000; fi; exit 3";
    d.write_unit("rf", &sh_unit(&d, script, &extra));
    d.supctl(&["reload"]);
    d.wait_state("rf", "failed");
    fs::write(data.join("ok"), "").unwrap();
    assert!(d.supctl(&["reset-failed"]).status.success());
    d.wait_state("rf", "running");
    d.stop();
}

#[test]
fn readonly_rootfs_and_tmpfs_size_are_enforced() {
    let d = Daemon::start();
    let script = "touch /x 2>/dev/null && echo root=rw || echo root=ro; \
                  touch /scratch/y && echo scratch=rw; \
                  dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null && echo big=ok || echo big=full; \
                  echo mode=$(stat -c %a /scratch); exec sleep 1000";
    let extra = "readonly_rootfs: true\nmounts: [{ type: tmpfs, target: /scratch, size: 1M, mode: 1777 }]\n";
    d.write_unit("ro", &sh_unit(&d, script, extra));
    d.supctl(&["reload"]);
    let log = d.wait_log("ro", "mode=");
    assert!(log.contains("root=ro"), "{log}");
    assert!(log.contains("scratch=rw"), "{log}");
    assert!(log.contains("big=full"), "{log}");
    assert!(log.contains("mode=1777"), "{log}");
    d.stop();
}

#[test]
fn mounts_under_dev_are_visible_over_the_fresh_dev() {
    let d = Daemon::start();
    let file = d.dir.join("dev-file");
    fs::write(&file, "from-host\n").unwrap();
    let extra = format!(
        "mounts:\n  - {{ type: tmpfs, target: /dev/mytmp }}\n  - {{ type: bind, source: {}, target: /dev/myfile, readonly: true }}\n",
        file.display()
    );
    let script = "touch /dev/mytmp/x && echo tmpfs=ok; echo file=$(cat /dev/myfile); \
                  test -c /dev/null && echo null=ok; exec sleep 1000";
    d.write_unit("devmounts", &sh_unit(&d, script, &extra));
    let log = d.wait_log("devmounts", "null=");
    assert!(log.contains("tmpfs=ok"), "{log}");
    assert!(log.contains("file=from-host"), "{log}");
    assert!(log.contains("null=ok"), "{log}");
    d.stop();
}

#[test]
fn a_real_time_stop_signal_reaches_the_workload() {
    let d = Daemon::start();
    // SIGRTMIN+3 is 37 under glibc (which keeps 32 and 33 for itself), as
    // systemd expects it for a halt.
    let script = "trap 'echo got-rtmin3; exit 0' 37; echo trapped; while true; do sleep 0.1; done";
    d.write_unit(
        "rt",
        &sh_unit(&d, script, "stop: { signal: SIGRTMIN+3, timeout: 30s }\n"),
    );
    d.wait_log("rt", "trapped");
    assert!(d.supctl(&["stop", "rt"]).status.success());
    let log = d.wait_log("rt", "got-rtmin3");
    assert!(log.contains("got-rtmin3"), "{log}");
    assert_eq!(d.status("rt")["last_exit"]["code"], 0);
    d.stop();
}

#[test]
fn bind_mounts_honour_readonly() {
    let d = Daemon::start();
    let (rw, ro) = (d.dir.join("rw"), d.dir.join("ro"));
    fs::create_dir_all(&rw).unwrap();
    fs::create_dir_all(&ro).unwrap();
    let extra = format!(
        "mounts:\n  - {{ type: bind, source: {}, target: /rw }}\n  - {{ type: bind, source: {}, target: /ro, readonly: true }}\n",
        rw.display(),
        ro.display()
    );
    let script = "echo hi > /rw/f && echo rw=ok; echo hi > /ro/f 2>/dev/null || echo ro=denied; exec sleep 1000";
    d.write_unit("binds", &sh_unit(&d, script, &extra));
    d.supctl(&["reload"]);
    let log = d.wait_log("binds", "ro=");
    assert!(log.contains("rw=ok") && log.contains("ro=denied"), "{log}");
    assert_eq!(fs::read_to_string(rw.join("f")).unwrap(), "hi\n");
    assert!(!ro.join("f").exists());
    d.stop();
}

#[test]
fn volatile_overlay_leaves_the_rootfs_unchanged() {
    let d = Daemon::start();
    let extra = "volatile: overlay\n";
    let script = "echo new > /created; rm /bin/ls; echo changed; exec sleep 1000";
    d.write_unit("vol", &sh_unit(&d, script, extra));
    d.supctl(&["reload"]);
    d.wait_log("vol", "changed");
    assert!(!busybox_rootfs().join("created").exists());
    assert!(fs::symlink_metadata(busybox_rootfs().join("bin/ls")).is_ok());
    d.stop();
}

#[test]
fn volatile_overlay_over_the_host_root() {
    let d = Daemon::start();
    let marker = format!("supd-overlay-probe-{}", std::process::id());
    let unit = format!(
        "rootfs: /\nvolatile: overlay\nexec: [/bin/sh, -c, 'touch /{marker} && echo wrote && exec sleep 1000']\nenv: {{ SUPD_TEST_DIR: {}/ }}\n",
        d.dir.display()
    );
    d.write_unit("hostroot", &unit);
    d.supctl(&["reload"]);
    d.wait_log("hostroot", "wrote");
    assert!(!std::path::Path::new("/").join(&marker).exists());
    d.stop();
}

#[test]
fn volatile_state_keeps_the_upper_layer_in_the_state_dir() {
    let d = Daemon::start();
    d.write_unit(
        "st",
        &sh_unit(
            &d,
            "echo kept > /kept; echo wrote; exec sleep 1000",
            "volatile: state\n",
        ),
    );
    d.supctl(&["reload"]);
    d.wait_log("st", "wrote");
    let upper = d.dir.join("state/st/upper/kept");
    assert_eq!(fs::read_to_string(upper).unwrap(), "kept\n");
    assert!(!busybox_rootfs().join("kept").exists());
    d.stop();
}

#[test]
fn user_and_workdir_are_applied() {
    let d = Daemon::start();
    d.write_unit(
        "who",
        &sh_unit(
            &d,
            "echo id=$(id -u):$(id -g):$(id -G) pwd=$(pwd) home=$HOME; exec sleep 1000",
            "user: www\nworkdir: /tmp\n",
        ),
    );
    d.supctl(&["reload"]);
    let log = d.wait_log("who", "id=");
    assert!(
        log.contains("id=101:102:102 4 pwd=/tmp home=/var/www"),
        "{log}"
    );
    d.stop();
}

#[test]
fn network_none_has_only_loopback_up() {
    let d = Daemon::start();
    d.write_unit("nonet", &sh_unit(&d, "ls /sys/class/net; echo lo=$(cat /sys/class/net/lo/operstate)-$(cat /sys/class/net/lo/flags); exec sleep 1000", "network: { mode: none }\n"));
    d.supctl(&["reload"]);
    let log = d.wait_log("nonet", "lo=");
    let interfaces: Vec<&str> = log.lines().take_while(|l| !l.starts_with("lo=")).collect();
    assert_eq!(interfaces, ["lo"]);
    assert!(
        log.contains("lo=unknown-0x9") || log.contains("lo=unknown-0x49"),
        "lo is up: {log}"
    );
    d.stop();
}

/// `stop.signal` is what reaches the workload: this one ignores SIGTERM
/// and would only die at the stop timeout without it.
#[test]
fn the_stop_signal_is_the_units_own() {
    let d = Daemon::start();
    d.write_unit(
        "usr1",
        &sh_unit(
            &d,
            "trap '' TERM; trap 'echo got USR1; exit 0' USR1; echo up; while true; do sleep 0.05; done",
            "stop: { signal: SIGUSR1, timeout: 60s }\n",
        ),
    );
    d.wait_log("usr1", "up");
    assert!(d.supctl(&["stop", "usr1"]).status.success());
    assert!(d.log("usr1").contains("got USR1"), "{}", d.log("usr1"));
    let status = d.status("usr1");
    assert_eq!(status["last_exit"]["code"], 0, "{status}");
    d.stop();
}

#[test]
fn setup_failures_name_the_step() {
    let d = Daemon::start();
    let never = "restart: { policy: never }\n";
    d.write_unit(
        "noroot",
        &format!("rootfs: /nonexistent/root\nexec: [/bin/sh]\n{never}"),
    );
    // A rootfs that is a loop of links says so (not "no such directory").
    let looped = std::path::Path::new("/tmp/supd-looproot");
    let _ = fs::remove_file(looped);
    std::os::unix::fs::symlink(looped, looped).unwrap();
    d.write_unit(
        "looproot",
        &format!("rootfs: {}\nexec: [/bin/sh]\n{never}", looped.display()),
    );
    d.write_unit(
        "noexec",
        &sh_unit(&d, "x", never).replace("[/bin/sh, -c, \"x\"]", "[/bin/nope]"),
    );
    d.write_unit(
        "nobind",
        &sh_unit(
            &d,
            "x",
            &format!("{never}mounts: [{{ type: bind, source: /nonexistent/src, target: /x }}]\n"),
        ),
    );
    d.write_unit(
        "nouser",
        &sh_unit(&d, "x", &format!("{never}user: nobody\n")),
    );
    d.supctl(&["reload"]);
    let cases = [
        (
            "noroot",
            "start failed: rootfs (/nonexistent/root): No such file or directory (os error 2)",
        ),
        (
            "looproot",
            "start failed: rootfs (/tmp/supd-looproot): Too many levels of symbolic links",
        ),
        (
            "noexec",
            "start failed: exec (/bin/nope): No such file or directory (os error 2)",
        ),
        (
            "nobind",
            "start failed: mount /x (/nonexistent/src): No such file or directory (os error 2)",
        ),
        (
            "nouser",
            "start failed: user (/etc/passwd): no user \"nobody\" in the container's /etc/passwd",
        ),
    ];
    for (name, want) in cases {
        let status = d.wait_state(name, "failed");
        let error = status["error"].as_str().unwrap_or_default();
        assert!(error.contains(want), "{name}: {error}");
    }
    let out = d.supctl(&["start", "noexec"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("exec (/bin/nope)"),
        "{out:?}"
    );
    d.stop();
    fs::remove_file(looped).unwrap();
}

#[test]
fn layers_stack_with_the_top_layer_last_and_keep_the_upper_in_the_state_dir() {
    let d = Daemon::start();
    let app = d.dir.join("app-layer");
    fs::create_dir_all(app.join("etc")).unwrap();
    fs::write(app.join("etc/motd"), "from the app layer\n").unwrap();
    fs::write(app.join("etc/group"), "root:x:0:\noverridden:x:7:\n").unwrap();
    let unit = sh_unit(
        &d,
        "cat /etc/motd; grep -c overridden /etc/group; echo note > /written; echo done; exec sleep 1000",
        &format!("layers: [{}, {}]\n", busybox_rootfs().display(), app.display()),
    )
    .replace(&format!("rootfs: {}\n", busybox_rootfs().display()), "");
    d.write_unit("stacked", &unit);
    d.supctl(&["reload"]);
    let log = d.wait_log("stacked", "done");
    assert!(log.starts_with("from the app layer\n1\n"), "{log}");
    assert!(d.dir.join("state/stacked/upper/written").exists());
    assert!(!app.join("written").exists());
    d.stop();
}
