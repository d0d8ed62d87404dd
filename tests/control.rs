//! The control socket and supctl against a real daemon.

mod common;

use common::*;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn raw_exchange(d: &Daemon, bytes: &[u8], answers: usize) -> Vec<String> {
    let mut stream = UnixStream::connect(&d.socket).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    // supd may answer and close before an oversized request is fully sent:
    // the write then fails with EPIPE, and the answer is still there to read.
    if let Err(e) = stream.write_all(bytes) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let mut reader = BufReader::new(stream);
    (0..answers)
        .map(|_| {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line
        })
        .collect()
}

#[test]
fn garbage_on_the_socket_gets_errors_and_never_disturbs_the_daemon() {
    let d = Daemon::start();
    d.write_unit("steady", &sh_unit(&d, "exec sleep 1000", ""));
    d.supctl(&["reload"]);
    let pid = d.pid("steady");
    // A client that sends half a line and then idles must not block others.
    let mut idle = UnixStream::connect(&d.socket).unwrap();
    idle.write_all(b"{\"v\":1,").unwrap();
    let answers = raw_exchange(
        &d,
        b"garbage\n\xff\xfe\n{\"v\":1,\"cmd\":\"launch-missiles\"}\n{\"v\":99,\"cmd\":\"status\"}\n{\"v\":1,\"cmd\":\"status\",\"names\":[\"steady\"]}\n",
        5,
    );
    for answer in &answers[..4] {
        assert!(answer.contains("\"type\":\"error\""), "{answer}");
    }
    assert!(
        answers[4].contains("\"state\":\"running\""),
        "{}",
        answers[4]
    );
    let mut huge = vec![b'x'; 200 * 1024];
    huge.push(b'\n');
    let answers = raw_exchange(&d, &huge, 1);
    assert!(answers[0].contains("request longer than"), "{}", answers[0]);
    // A client that disconnects mid-request is simply dropped.
    drop(UnixStream::connect(&d.socket).unwrap());
    assert_eq!(d.pid("steady"), pid, "the container was not disturbed");
    drop(idle);
    d.stop();
}

#[test]
fn status_exit_codes_follow_systemctl() {
    let d = Daemon::start();
    d.write_unit("up", &sh_unit(&d, "exec sleep 1000", ""));
    d.write_unit("down", &sh_unit(&d, "exit 0", ""));
    d.supctl(&["reload"]);
    d.wait_state("up", "running");
    d.wait_state("down", "stopped");
    assert_eq!(d.supctl(&["status", "up"]).status.code(), Some(0));
    assert_eq!(d.supctl(&["status", "down"]).status.code(), Some(3));
    assert_eq!(d.supctl(&["status", "up", "down"]).status.code(), Some(3));
    let unknown = d.supctl(&["status", "ghost"]);
    assert_eq!(unknown.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown unit ghost"));
    assert!(
        unknown.stdout.is_empty(),
        "no empty table for an unknown unit"
    );
    assert_eq!(d.supctl(&["status"]).status.code(), Some(0));
    let table = String::from_utf8(d.supctl(&["status"]).stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.lines().all(|l| l.len() <= 80), "{table}");
    let stop_unknown = d.supctl(&["stop", "ghost"]);
    assert_eq!(stop_unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stop_unknown.stderr).contains("unknown unit: ghost"));
    d.stop();
}

#[test]
fn start_stop_restart_report_and_change_pids() {
    let d = Daemon::start();
    d.write_unit("cycle", &sh_unit(&d, "exec sleep 1000", ""));
    d.supctl(&["reload"]);
    let first = d.pid("cycle");
    assert!(d.supctl(&["restart", "cycle"]).status.success());
    let second = d.pid("cycle");
    assert_ne!(first, second);
    assert!(d.supctl(&["stop", "cycle"]).status.success());
    assert_eq!(d.state("cycle"), "stopped");
    assert!(d.supctl(&["start", "cycle"]).status.success());
    assert_eq!(d.state("cycle"), "running");
    d.stop();
}

#[test]
fn logs_are_captured_rotated_and_tailed() {
    let d = Daemon::start();
    // 60 records of 140 bytes (a 40-byte header, 100 of output) in 4 KiB
    // files: 29 in each, two rotations, two files kept. stdout and stderr
    // are separate pipes, ordered each on its own: the stderr line waits.
    let script = "i=0; while [ $i -lt 60 ]; do printf 'line %03d %090d\\n' $i 0; i=$((i+1)); done; sleep 0.5; echo last-line >&2; exec sleep 1000";
    d.write_unit(
        "chatty",
        &sh_unit(&d, script, "logging: { max_size: 4K, max_files: 2 }\n"),
    );
    d.supctl(&["reload"]);
    d.wait_log("chatty", "last-line");
    let log_dir = d.dir.join("log");
    assert!(log_dir.join("chatty.log.1").exists());
    assert!(!log_dir.join("chatty.log.2").exists());
    for file in ["chatty.log", "chatty.log.1"] {
        assert!(fs::metadata(log_dir.join(file)).unwrap().len() <= 4096);
    }
    let tail = d.supctl(&["logs", "-n", "2", "chatty"]);
    assert_eq!(
        String::from_utf8_lossy(&tail.stdout),
        format!("line 059 {:090}\nlast-line\n", 0)
    );
    let all = String::from_utf8(d.supctl(&["logs", "chatty"]).stdout).unwrap();
    assert!(
        all.ends_with("last-line\n") && all.starts_with("line 029 ") && all.lines().count() == 32,
        "both files, oldest first: {all}"
    );
    assert_eq!(d.supctl(&["logs", "ghost"]).status.code(), Some(1));
    d.stop();
}

#[test]
fn logs_follow_prints_new_output() {
    let d = Daemon::start();
    let data = d.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let script =
        "echo first; while [ ! -e /data/go ]; do sleep 0.05; done; echo second; exec sleep 1000";
    let extra = format!(
        "mounts: [{{ type: bind, source: {}, target: /data }}]\n",
        data.display()
    );
    d.write_unit("follow", &sh_unit(&d, script, &extra));
    d.supctl(&["reload"]);
    d.wait_log("follow", "first");
    let mut child = KillOnDrop(
        std::process::Command::new(SUPCTL)
            .env("SUPD_SOCKET", &d.socket)
            .args(["logs", "-f", "follow"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Lines arrive through a thread, so a missing one fails the test
    // instead of blocking it.
    let stdout = child.0.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    assert_eq!(received.recv_timeout(WAIT).unwrap(), "first");
    fs::write(data.join("go"), "").unwrap();
    assert_eq!(received.recv_timeout(WAIT).unwrap(), "second");
    drop(child);
    d.stop();
}

#[test]
fn reload_adds_and_removes_units() {
    let d = Daemon::start();
    d.write_unit("later", &sh_unit(&d, "exec sleep 1000", ""));
    assert!(d.supctl(&["reload"]).status.success());
    d.pid("later");
    fs::remove_file(d.units.join("later.yaml")).unwrap();
    d.supctl(&["reload"]);
    d.wait_for("the unit to disappear", WAIT, || {
        d.supctl(&["status", "later"]).status.code() == Some(4)
    });
    d.stop();
}

#[test]
fn invalid_units_show_their_error_and_valid_ones_run() {
    let d = Daemon::start_with_units(&[]);
    d.write_unit(
        "broken",
        "rootfs: /x\nexec: [/bin/true]\nrestart:\n  polcy: always\n",
    );
    d.write_unit("fine", &sh_unit(&d, "exec sleep 1000", ""));
    d.supctl(&["reload"]);
    d.wait_state("fine", "running");
    let status = d.wait_state("broken", "invalid");
    let error = status["error"].as_str().unwrap();
    assert!(error.ends_with("broken.yaml:4:3: restart: unknown field `polcy`, expected one of `policy`, `delay`, `max_delay`, `reset_after`, `start_limit` (did you mean `policy`?)"), "{error}");
    d.stop();
}

#[test]
fn no_descriptor_leaks_across_many_starts() {
    let d = Daemon::start();
    d.write_unit("churn", &sh_unit(&d, "exec sleep 1000", ""));
    d.supctl(&["reload"]);
    d.pid("churn");
    let fds = || {
        fs::read_dir(format!("/proc/{}/fd", d.daemon_pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    for _ in 0..10 {
        assert!(d.supctl(&["restart", "churn"]).status.success());
    }
    d.pid("churn");
    // Growth is a leak; a supctl connection still closing is not.
    d.wait_for("descriptors to settle", Duration::from_secs(5), || {
        fds() <= before
    });
    d.stop();
}

#[test]
fn validate_works_offline() {
    let dir = std::env::temp_dir().join(format!("supd-validate-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.yaml");
    let bad = dir.join("bad.yaml");
    fs::write(&good, "rootfs: /srv\nexec: [/bin/true]\n").unwrap();
    fs::write(&bad, "rootfs: /srv\nexec: [/bin/true]\nnotify:\n  maybe\n").unwrap();
    let run = |files: &[&std::path::Path]| {
        run_timed(
            std::process::Command::new(SUPCTL)
                .args(["validate", "--offline"])
                .args(files),
            String::new,
        )
    };
    let ok = run(&[&good]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        format!("{}: ok\n", good.display())
    );
    let mixed = run(&[&good, &bad]);
    assert_eq!(mixed.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&mixed.stderr),
        format!(
            "{}:4:3: notify: invalid type: string \"maybe\", expected a boolean\n",
            bad.display()
        )
    );
    let badname = dir.join("Bad Name.yaml");
    fs::write(&badname, "").unwrap();
    assert_eq!(run(&[&badname]).status.code(), Some(1));
    fs::remove_dir_all(&dir).unwrap();
}

fn validate(args: &[&str]) -> (i32, String, String) {
    let out = run_timed(
        std::process::Command::new(SUPCTL)
            .arg("validate")
            .args(args),
        String::new,
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn validate_reports_every_error_drop_ins_in_context_and_what_units_refer_to() {
    let dir = std::env::temp_dir().join(format!("supd-validate-all-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("web.yaml.d")).unwrap();
    let root = busybox_rootfs().display().to_string();
    // Three errors in one file, each with its line.
    let many = dir.join("many.yaml");
    fs::write(
        &many,
        format!("rootfs: {root}\nexec: [/bin/true]\nrestart:\n  polcy: always\nstop:\n  timeout: soon\nnotfy: true\n"),
    )
    .unwrap();
    let (code, _, errors) = validate(&["--offline", many.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(errors.lines().count(), 3, "{errors}");
    for line in [
        ":4:3: restart: unknown field `polcy`",
        ":6:",
        "unknown field `notfy`",
    ] {
        assert!(errors.contains(line), "{line} in {errors}");
    }
    // A drop-in alone is checked with its unit: valid together.
    fs::write(
        dir.join("web.yaml"),
        format!("rootfs: {root}\nexec: [/bin/sleep, '1']\n"),
    )
    .unwrap();
    let dropin = dir.join("web.yaml.d/10-restart.yaml");
    fs::write(&dropin, "restart: { policy: always }\n").unwrap();
    let (code, out, errors) = validate(&[dropin.to_str().unwrap()]);
    assert_eq!(code, 0, "{errors}");
    assert!(out.contains("web.yaml: ok"), "{out}");
    fs::write(&dropin, "restart: { policy: sometimes }\n").unwrap();
    let (code, _, errors) = validate(&[dropin.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        errors.contains("10-restart.yaml:1:"),
        "the drop-in's own line: {errors}"
    );
    fs::write(&dropin, "restart: { policy: always }\n").unwrap();
    // What a unit refers to on this machine; --offline leaves it out.
    let refs = dir.join("refs.yaml");
    fs::write(
        &refs,
        format!(
            "rootfs: {root}\nexec: [/bin/nosuchprogram]\ndepends_on: [web, ghost]\n\
             mounts: [{{ type: bind, source: /nonexistent/src, target: /data }}]\n\
             security: {{ seccomp: /nonexistent/profile.json }}\n"
        ),
    )
    .unwrap();
    let (code, _, errors) = validate(&[dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    for needle in [
        "refs.yaml:2:1: exec: /bin/nosuchprogram is not in the root filesystem",
        "refs.yaml:3:1: depends_on: no unit ghost",
        "mounts[0].source: /nonexistent/src: No such file or directory",
        "security.seccomp: /nonexistent/profile.json: No such file or directory",
    ] {
        assert!(errors.contains(needle), "{needle} in {errors}");
    }
    assert!(
        !errors.contains("no unit web"),
        "web is in the directory: {errors}"
    );
    let (code, out, errors) = validate(&["--offline", refs.to_str().unwrap()]);
    assert_eq!((code, errors.as_str()), (0, ""), "{out}");
    // JSON: one object per unit.
    let (_, out, _) = validate(&["--json", "--offline", dir.to_str().unwrap()]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let many_report = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["unit"] == "many")
        .unwrap();
    assert_eq!(many_report["ok"], false);
    assert_eq!(many_report["errors"].as_array().unwrap().len(), 3);
    // A capability this machine's bounding set lacks (CAP_SYS_RESOURCE on
    // the development host) cannot be granted.
    let bounding = supd::unit::check::own_bounding_set().unwrap();
    if let Some(missing) = caps::all()
        .into_iter()
        .map(|c| c.to_string())
        .find(|c| !bounding.contains(c))
    {
        let capsule = dir.join("capsule.yaml");
        let short = missing.trim_start_matches("CAP_");
        fs::write(
            &capsule,
            format!("rootfs: {root}\nexec: [/bin/true]\nsecurity: {{ capabilities: {{ add: [{short}] }} }}\n"),
        )
        .unwrap();
        let (code, _, errors) = validate(&[capsule.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(
            errors.contains(&format!("supd cannot grant {missing}")),
            "{errors}"
        );
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// A supd killed outright leaves its containers running. The next one on
/// the same cgroup parent stops them, removes their cgroups and starts the
/// units afresh; a second live daemon on that parent is refused.
#[test]
fn a_restarted_supd_clears_what_it_cannot_adopt() {
    let mut d = Daemon::start();
    d.write_unit("busy", &sh_unit(&d, "sleep 1000 & sleep 1000 & wait", ""));
    let old = d.pid("busy");
    d.wait_for("the workload's children", WAIT, || children(old).len() == 1);

    let other = d.dir.join("other");
    let second = std::process::Command::new("timeout")
        .args(["20", SUPD])
        .args(directory_args(&other, &other.join("units")))
        .arg("--cgroup-parent")
        .arg(cgroup_parent(&d.dir))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another supd uses this cgroup parent"),
        "{stderr}"
    );
    assert_eq!(d.pid("busy"), old, "the refused daemon touched nothing");

    // Without its unit record the container is nobody's to adopt.
    d.crash_and_restart_after(|d| fs::remove_file(d.dir.join("run/units/busy.json")).unwrap());
    let fresh = d.pid("busy");
    assert_ne!(fresh, old);
    assert!(
        stat(old).is_none_or(|(_, state)| state == 'Z'),
        "the orphaned init is gone"
    );
    assert!(
        d.daemon_log()
            .contains("busy: cleared the cgroup an earlier supd left (4 processes killed)"),
        "{}",
        d.daemon_log()
    );
    d.stop();
}
