//! Log records: each line with its time and stream, files rotated between
//! records, long lines in marked pieces joined again by `supctl logs`,
//! --since/--until/--timestamps/--stream, a stalled journal that costs
//! records but never blocks supd, and a permission problem that is an
//! error. Real containers, as root.

mod common;

use common::*;
use std::fs;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

fn logs(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    let out = d.supctl(&all);
    assert!(out.status.success(), "{:?}", out);
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn stdout_and_stderr_are_told_apart_and_each_line_has_its_time() {
    let d = Daemon::start();
    let script = "echo out-1; echo err-1 >&2; sleep 0.3; echo out-2; echo err-2 >&2; sleep 0.3; echo done; exec sleep 1000";
    d.write_unit("two", &sh_unit(&d, script, ""));
    d.wait_log("two", "done");
    let records = d.log_records("two");
    for (message, stream) in [
        ("out-1", "stdout"),
        ("err-1", "stderr"),
        ("out-2", "stdout"),
    ] {
        let line = records
            .lines()
            .find(|l| l.ends_with(&format!(" {message}")))
            .unwrap_or_else(|| panic!("{message} in {records}"));
        assert!(line.contains(&format!("Z {stream} F {message}")), "{line}");
    }
    assert_eq!(logs(&d, &["--stream", "stderr", "two"]), "err-1\nerr-2\n");
    assert_eq!(
        logs(&d, &["--stream", "stdout", "-n", "2", "two"]),
        "out-2\ndone\n"
    );
    let stamped = logs(&d, &["-t", "--stream", "stdout", "two"]);
    let times: Vec<std::time::Duration> = stamped
        .lines()
        .map(|l| {
            let (time, _) = l.split_once(' ').unwrap();
            supd::control::clock::parse_rfc3339(time).unwrap_or_else(|| panic!("{l}"))
        })
        .collect();
    assert_eq!(times.len(), 3, "{stamped}");
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{stamped}");
    // --since between out-1 and out-2 (written 0.3 s apart).
    let between = supd::control::clock::rfc3339_nanos(times[0] + Duration::from_millis(150));
    assert_eq!(
        logs(&d, &["--since", &between, "--stream", "stdout", "two"]),
        "out-2\ndone\n"
    );
    assert_eq!(logs(&d, &["--until", &between, "two"]), "out-1\nerr-1\n");
    assert_eq!(logs(&d, &["--since", "1h", "-n", "1", "two"]), "done\n");
    let json = logs(&d, &["--json", "--stream", "stderr", "two"]);
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(first["unit"], "two");
    assert_eq!(first["stream"], "stderr");
    assert_eq!(first["message"], "err-1");
    let bad = d.supctl(&["logs", "--since", "last tuesday", "two"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid time \"last tuesday\""));
    d.stop();
}

#[test]
fn rotation_never_cuts_a_line_and_a_long_line_comes_back_whole() {
    let d = Daemon::start();
    // Lines of every length from 1 to 300 bytes, then one of 10000 bytes,
    // in 4 KiB files: many rotations.
    let script =
        "i=1; while [ $i -le 300 ]; do head -c $i /dev/zero | tr '\\0' a; echo; i=$((i+1)); done; \
                  head -c 10000 /dev/zero | tr '\\0' b; echo; echo end; exec sleep 1000";
    d.write_unit(
        "rot",
        &sh_unit(&d, script, "logging: { max_size: 4K, max_files: 100 }\n"),
    );
    d.wait_log("rot", "end");
    let mut files: Vec<_> = fs::read_dir(d.dir.join("log"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rot.log")
        })
        .collect();
    files.sort();
    assert!(files.len() > 10, "{files:?}");
    let mut partial = 0;
    for file in &files {
        let text = fs::read_to_string(file).unwrap();
        assert!(text.len() <= 4096, "{}: {}", file.display(), text.len());
        assert!(
            text.ends_with('\n'),
            "{} ends inside a line",
            file.display()
        );
        for line in text.lines() {
            let record = supd::supervisor::logs::parse_record(line);
            assert!(record.time.is_some(), "every line is a record: {line:?}");
            partial += usize::from(record.partial);
        }
    }
    assert!(partial >= 2, "the 10000-byte line is in marked pieces");
    let all = logs(&d, &["rot"]);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 302, "every line once, whole");
    for (i, line) in lines.iter().take(300).enumerate() {
        assert_eq!(line.len(), i + 1, "line {i}");
    }
    assert_eq!(lines[300], "b".repeat(10000));
    assert_eq!(lines[301], "end");
    d.stop();
}

#[test]
fn a_journal_that_does_not_read_costs_records_but_never_blocks_supd() {
    let dir = std::env::temp_dir().join(format!("supd-stalled-journal-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("socket");
    // Bound and never read: its queue fills.
    let _journal = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    let d = Daemon::start_with_args(&["--journal-socket", socket.to_str().unwrap()]);
    d.write_unit(
        "spew",
        &sh_unit(
            &d,
            "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done; exec sleep 1000",
            "logging: { driver: journal }\n",
        ),
    );
    d.wait_for("dropped records", Duration::from_secs(60), || {
        d.status("spew")["log_dropped"]
            .as_u64()
            .is_some_and(|n| n > 0)
    });
    // supd still answers (supctl's own timeout would fail the test).
    assert!(d.supctl(&["status", "spew"]).status.success());
    let text = String::from_utf8_lossy(&d.supctl(&["status", "spew"]).stdout).to_string();
    assert!(
        text.contains("output records dropped while the journal did not take them"),
        "{text}"
    );
    assert!(d
        .daemon_log()
        .contains("spew: the journal does not take output"));
    d.stop();
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn group_members_read_the_logs_and_a_file_they_cannot_read_is_an_error() {
    // nogroup (65534) stands for supd's admin group here.
    let d = Daemon::start_with_args(&["--socket-group", "nogroup"]);
    d.write_unit("shared", &sh_unit(&d, "echo visible; exec sleep 1000", ""));
    d.wait_log("shared", "visible");
    let as_member = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_supctl"));
        command
            .env("SUPD_SOCKET", &d.socket)
            .args(["logs", "shared"]);
        // SAFETY: only set*id calls between fork and exec.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setgroups(&[nix::unistd::Gid::from_raw(65534)])?;
                nix::unistd::setgid(nix::unistd::Gid::from_raw(65534))?;
                nix::unistd::setuid(nix::unistd::Uid::from_raw(65534))?;
                Ok(())
            });
        }
        run_timed(&mut command, || d.daemon_log())
    };
    let out = as_member();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "visible\n");
    let file = d.dir.join("log/shared.log");
    fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = as_member();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "not empty output with exit 0: {out:?}"
    );
    assert!(
        said.contains("shared.log") && said.contains("Permission denied"),
        "{said}"
    );
    d.stop();
}
