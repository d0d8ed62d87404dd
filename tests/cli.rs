//! supctl verbs beyond start and stop: kill with a signal, exec with a
//! terminal, another user, more environment and another directory, and
//! the connection errors. Real containers, as root.

mod common;

use common::*;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

#[test]
fn kill_sends_the_signal_to_the_workload_through_its_init() {
    let d = Daemon::start();
    let script = "trap 'echo got-hup' HUP; trap 'echo got-usr1' USR1; echo ready; \
                  while true; do sleep 0.1; done";
    d.write_unit("trapper", &sh_unit(&d, script, ""));
    d.wait_log("trapper", "ready");
    let pid = d.pid("trapper");
    let out = d.supctl(&["kill", "-s", "HUP", "trapper"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("sent signal 1 to trapper"));
    d.wait_log("trapper", "got-hup");
    assert!(d
        .supctl(&["kill", "--signal", "SIGUSR1", "trapper"])
        .status
        .success());
    d.wait_log("trapper", "got-usr1");
    assert_eq!(d.pid("trapper"), pid, "a handled signal is no restart");
    let bad = d.supctl(&["kill", "-s", "SIGNOPE", "trapper"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--signal"));
    assert_eq!(d.supctl(&["kill", "ghost"]).status.code(), Some(1));
    d.supctl(&["stop", "trapper"]);
    let stopped = d.supctl(&["kill", "trapper"]);
    assert!(!stopped.status.success());
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("not running"));
    d.stop();
}

#[test]
fn exec_takes_a_user_environment_and_directory() {
    let d = Daemon::start();
    d.write_unit("box", &sh_unit(&d, "exec sleep 1000", ""));
    d.wait_for("running", Duration::from_secs(20), || {
        d.state("box") == "running"
    });
    let out = d.supctl(&[
        "exec",
        "-u",
        "101:102",
        "-e",
        "EXTRA=1",
        "--env",
        "SUPD_TEST_DIR=over",
        "-w",
        "/tmp",
        "box",
        "--",
        "/bin/sh",
        "-c",
        "echo $(id -u):$(id -g) $EXTRA $SUPD_TEST_DIR $(pwd)",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "101:102 1 over /tmp\n"
    );
    let named = d.supctl(&["exec", "--user", "www", "box", "--", "id", "-un"]);
    assert_eq!(String::from_utf8_lossy(&named.stdout), "www\n");
    let bad = d.supctl(&["exec", "-e", "NOEQUALS", "box", "--", "true"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected KEY=VALUE"));
    d.stop();
}

#[test]
fn exec_with_a_terminal_gives_the_command_a_tty() {
    let d = Daemon::start();
    d.write_unit("term", &sh_unit(&d, "exec sleep 1000", ""));
    d.wait_for("running", Duration::from_secs(20), || {
        d.state("term") == "running"
    });
    // supctl's own stdin is not a terminal here: the command still gets one.
    let out = d.supctl(&[
        "exec",
        "-t",
        "term",
        "--",
        "/bin/sh",
        "-c",
        "tty; test -t 0 && test -t 1 && echo both-ttys",
    ]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(text.starts_with("/dev/pts/"), "{text}");
    assert!(text.contains("both-ttys"), "{text}");
    let plain = d.supctl(&[
        "exec",
        "term",
        "--",
        "/bin/sh",
        "-c",
        "test -t 1 || echo no-tty",
    ]);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "no-tty\n");
    let code = d.supctl(&["exec", "-t", "term", "--", "/bin/sh", "-c", "exit 7"]);
    assert_eq!(code.status.code(), Some(7), "the command's status");
    d.stop();
}

#[test]
fn a_client_without_rights_is_told_why() {
    let d = Daemon::start();
    let mut command = Command::new(env!("CARGO_BIN_EXE_supctl"));
    command.env("SUPD_SOCKET", &d.socket).arg("status");
    // SAFETY: only set*id calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setgroups(&[])?;
            nix::unistd::setgid(nix::unistd::Gid::from_raw(65534))?;
            nix::unistd::setuid(nix::unistd::Uid::from_raw(65534))?;
            Ok(())
        });
    }
    let out = run_timed(&mut command, || d.daemon_log());
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        said.contains("you are not root or in supd's group"),
        "{said}"
    );
    assert!(!said.contains("is supd running"), "{said}");
    let missing = Command::new(env!("CARGO_BIN_EXE_supctl"))
        .env("SUPD_SOCKET", d.dir.join("no-such.sock"))
        .arg("status")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is supd running?"));
    d.stop();
}

#[test]
fn cat_prints_the_files_as_written_and_show_the_effective_unit_with_defaults() {
    let d = Daemon::start();
    let text = format!("# the web unit\n{}", sh_unit(&d, "exec sleep 1000", ""));
    d.write_unit("web", &text);
    let dropins = d.units.join("web.yaml.d");
    std::fs::create_dir_all(&dropins).unwrap();
    std::fs::write(
        dropins.join("10-restart.yaml"),
        "restart: { policy: always }  # keep it up\n",
    )
    .unwrap();
    d.supctl(&["reload"]);
    d.wait_for("running", Duration::from_secs(20), || {
        d.state("web") == "running"
    });
    let cat = String::from_utf8_lossy(&d.supctl(&["cat", "web"]).stdout).to_string();
    assert_eq!(
        cat,
        format!(
            "# {}\n{text}\n# {}\nrestart: {{ policy: always }}  # keep it up\n",
            d.units.join("web.yaml").display(),
            dropins.join("10-restart.yaml").display()
        )
    );
    let show = String::from_utf8_lossy(&d.supctl(&["show", "web"]).stdout).to_string();
    for line in [
        "policy: always",
        "max_files: 3",
        "timeout: 10s",
        "mode: host",
        "hostname: web",
    ] {
        assert!(show.contains(line), "{line} in {show}");
    }
    // What show prints is a unit file that means the same.
    let copy = d.dir.join("copy/web.yaml");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let yaml: String = show
        .lines()
        .filter(|l| !l.starts_with("# "))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&copy, &yaml).unwrap();
    let check = d.supctl(&["validate", "--offline", copy.to_str().unwrap()]);
    assert!(check.status.success(), "{check:?}\n{yaml}");
    let json: serde_json::Value =
        serde_json::from_slice(&d.supctl(&["show", "--json", "web"]).stdout).unwrap();
    assert_eq!(json["files"].as_array().unwrap().len(), 2);
    let names = String::from_utf8_lossy(&d.supctl(&["list-units", "--names"]).stdout).to_string();
    assert_eq!(names, "web\n");
    d.stop();
}
