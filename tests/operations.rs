//! systemd integration (Type=notify), readiness passthrough for `notify`
//! units, and `supctl exec`.

mod common;

use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A datagram socket in the place of systemd's NOTIFY_SOCKET.
struct FakeServiceManager {
    socket: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

static SOCKETS: AtomicUsize = AtomicUsize::new(0);

impl FakeServiceManager {
    fn new() -> Self {
        let n = SOCKETS.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("supd-notify-{}-{n}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        FakeServiceManager {
            socket,
            path,
            seen: Vec::new(),
        }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// Receives until a message has every one of `lines`; returns it.
    fn wait_for(&mut self, lines: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buffer) {
                let message = String::from_utf8_lossy(&buffer[..n]).to_string();
                self.seen.push(message.clone());
                if lines.iter().all(|l| message.lines().any(|m| m == *l)) {
                    return message;
                }
            }
        }
        panic!("no message with {lines:?}; seen {:?}", self.seen);
    }
}

impl Drop for FakeServiceManager {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn sleeper() -> String {
    format!(
        "rootfs: {}\nexec: [/bin/sleep, '1000']\n",
        busybox_rootfs().display()
    )
}

#[test]
fn supd_reports_ready_status_watchdog_reloading_and_stopping() {
    let mut manager = FakeServiceManager::new();
    let unit = sleeper();
    let d = Daemon::start_with_env(
        &[("tick", &unit)],
        &[
            ("NOTIFY_SOCKET", manager.path()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    manager.wait_for(&["READY=1"]);
    // READY=1 comes after the first reconcile, so the socket answers.
    assert!(std::os::unix::net::UnixStream::connect(&d.socket).is_ok());
    manager.wait_for(&["STATUS=1 running"]);
    // Pings every 200 ms (half of WATCHDOG_USEC).
    manager.wait_for(&["WATCHDOG=1"]);
    let first = Instant::now();
    manager.wait_for(&["WATCHDOG=1"]);
    assert!(first.elapsed() < Duration::from_secs(5));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.daemon_pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let reloading = manager.wait_for(&["RELOADING=1"]);
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    manager.wait_for(&["READY=1"]);
    assert!(d.supctl(&["reload"]).status.success());
    manager.wait_for(&["RELOADING=1"]);
    manager.wait_for(&["READY=1"]);

    d.write_unit("broken", "exec: 7\n");
    manager.wait_for(&["STATUS=1 running, 1 invalid"]);
    d.stop();
    manager.wait_for(&["STOPPING=1"]);
}

#[test]
fn without_notify_socket_there_is_no_watchdog_timer() {
    // WATCHDOG_USEC alone (no NOTIFY_SOCKET) must not wake supd up.
    let d = Daemon::start_with_env(&[], &[("WATCHDOG_USEC", "20000")]);
    let pid = d.daemon_pid();
    let switches = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = switches();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(switches(), before, "supd woke up while idle");
    d.stop();
}

fn notify_unit(d: &Daemon, script: &str, extra: &str) -> String {
    sh_unit(
        d,
        script,
        &format!(
            "notify: true\nmounts: [{{ type: bind, source: {}, target: /trigger }}]\n{extra}",
            d.dir.join("trigger").display()
        ),
    )
}

#[test]
fn a_notify_unit_is_ready_only_after_ready_1_and_dependents_wait_for_it() {
    let d = Daemon::start();
    std::fs::create_dir_all(d.dir.join("trigger")).unwrap();
    let script = "sd-notify STATUS=warming-up; \
                  while [ ! -e /trigger/go ]; do sleep 0.05; done; \
                  sd-notify READY=1 'STATUS=serving 3 clients'; exec sleep 1000";
    d.write_unit("svc", &notify_unit(&d, script, ""));
    d.write_unit(
        "client",
        &sh_unit(&d, "exec sleep 1000", "depends_on: [svc]\n"),
    );
    d.supctl(&["reload"]);
    d.wait_for("svc's STATUS=", WAIT, || {
        d.status("svc")["status_text"] == "warming-up"
    });
    assert_eq!(d.state("svc"), "running");
    assert_eq!(d.state("client"), "starting");
    let waiting = d.status("client")["error"].to_string();
    assert!(waiting.contains("svc (not ready yet)"), "{waiting}");

    std::fs::write(d.dir.join("trigger/go"), "").unwrap();
    let status = d.wait_state("svc", "ready");
    assert_eq!(status["status_text"], "serving 3 clients");
    d.wait_state("client", "running");
    let table = String::from_utf8_lossy(&d.supctl(&["status", "svc"]).stdout).to_string();
    assert!(table.contains("ready"), "{table}");
    assert!(table.contains("status: serving 3 clients"), "{table}");
    d.stop();
}

#[test]
fn a_notify_unit_without_ready_fails_after_start_timeout_and_restarts() {
    let d = Daemon::start();
    std::fs::create_dir_all(d.dir.join("trigger")).unwrap();
    d.write_unit(
        "mute",
        &notify_unit(
            &d,
            "exec sleep 1000",
            "start_timeout: 3s\nrestart: { policy: on-failure, delay: 100ms, start_limit: { burst: 2, interval: 1m } }\n",
        ),
    );
    d.supctl(&["reload"]);
    let status = d.wait_state("mute", "failed");
    assert_eq!(status["restarts"], 1, "{status}");
    let error = status["error"].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("start_timeout: the workload did not send READY=1 within 3s"),
        "{error}"
    );
    d.stop();
}

fn exec(d: &Daemon, args: &[&str]) -> (Option<i32>, String, String) {
    let out = d.supctl(&[&["exec"], args].concat());
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn supctl_exec_enters_the_namespaces_cgroup_user_and_environment() {
    let d = Daemon::start();
    d.write_unit(
        "box",
        &sh_unit(
            &d,
            "exec sleep 1000",
            "hostname: inside\nuser: www\nworkdir: /tmp\nnetwork: { mode: none }\n",
        )
        .replace("env: {", "env: { GREETING: hello,"),
    );
    d.write_unit(
        "mapped",
        &sh_unit(
            &d,
            "exec sleep 1000",
            "security: { user_namespace: auto }\n",
        ),
    );
    d.supctl(&["reload"]);
    d.wait_state("box", "running");
    d.wait_state("mapped", "running");

    let (code, out, err) = exec(&d, &["box", "--", "hostname"]);
    assert_eq!((code, out.as_str()), (Some(0), "inside\n"), "{err}");

    let init = d.pid("box");
    let ns = |kind: &str| {
        std::fs::read_link(format!("/proc/{init}/ns/{kind}"))
            .unwrap()
            .display()
            .to_string()
    };
    let script = "echo $GREETING $HOSTNAME; id -u; id -g; pwd; \
                  for n in pid mnt net uts ipc cgroup; do readlink /proc/self/ns/$n; done; \
                  grep -c -v ':/$' /proc/self/cgroup; grep CapEff /proc/self/status";
    let (code, out, err) = exec(&d, &["box", "--", "sh", "-c", script]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..4], ["hello inside", "101", "102", "/tmp"], "{out}");
    let kinds = ["pid", "mnt", "net", "uts", "ipc", "cgroup"];
    for (line, kind) in lines[4..10].iter().zip(kinds) {
        assert_eq!(*line, ns(kind), "{kind} namespace");
    }
    // Inside the container's cgroup namespace every hierarchy is at "/".
    assert_eq!(lines[10], "0", "{out}");
    // A non-root user gets no capabilities, as the workload.
    assert_eq!(lines[11], "CapEff:\t0000000000000000", "{out}");

    assert_eq!(exec(&d, &["box", "--", "sh", "-c", "exit 7"]).0, Some(7));
    let (code, _, err) = exec(&d, &["box", "--", "/no/such/program"]);
    assert_eq!(code, Some(127), "{err}");
    let (code, _, err) = exec(&d, &["box", "--", "no-such-program"]);
    assert_eq!(code, Some(127), "not in PATH: {err}");
    let (code, _, err) = exec(&d, &["box", "--", "/etc/passwd"]);
    assert_eq!(code, Some(126), "not executable: {err}");

    let (code, out, err) = exec(
        &d,
        &["mapped", "--", "sh", "-c", "id -u; cat /proc/self/uid_map"],
    );
    assert_eq!(code, Some(0), "{err}");
    let host_uid = std::fs::read_to_string(format!("/proc/{}/uid_map", d.pid("mapped"))).unwrap();
    assert_eq!(out, format!("0\n{host_uid}"));

    let (code, _, err) = exec(&d, &["nothing", "--", "true"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("unknown unit: nothing"), "{err}");
    d.stop();
}

#[test]
fn journal_driver_sends_each_line_with_the_unit_fields_and_logs_reads_journalctl() {
    let mut journal = FakeServiceManager::new();
    let d = Daemon::start_with_args(&["--journal-socket", journal.path()]);
    d.write_unit(
        "chatty",
        &sh_unit(
            &d,
            "echo hello; echo world >&2; exec sleep 1000",
            "logging: { driver: journal }\n",
        ),
    );
    d.supctl(&["reload"]);
    // stdout at info, stderr at err, each with its stream.
    for (line, priority, stream) in [("hello", "6", "stdout"), ("world", "3", "stderr")] {
        let message = format!("MESSAGE={line}");
        let priority = format!("PRIORITY={priority}");
        let stream = format!("SUPD_STREAM={stream}");
        journal.wait_for(&[
            &message,
            &priority,
            "SYSLOG_IDENTIFIER=chatty",
            "SUPD_UNIT=chatty",
            &stream,
        ]);
    }
    assert!(!d.dir.join("log/chatty.log").exists());

    // supctl hands over to journalctl; a stand-in prints its arguments.
    let bin = d.dir.join("fake-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("journalctl");
    std::fs::write(&fake, "#!/bin/sh\necho \"$@\"\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = run_timed(
        std::process::Command::new(SUPCTL)
            .env("SUPD_SOCKET", &d.socket)
            .env("PATH", path)
            .args(["logs", "-n", "5", "chatty"]),
        || d.daemon_log(),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--no-pager -o cat --lines=5 SUPD_UNIT=chatty\n"
    );
    let out = run_timed(
        std::process::Command::new(SUPCTL)
            .env("SUPD_SOCKET", &d.socket)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .args([
                "logs",
                "-t",
                "--since",
                "2026-12-01T10:00:00Z",
                "--stream",
                "stderr",
                "chatty",
            ]),
        || d.daemon_log(),
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "--no-pager -o short-iso-precise --since=@1796119200 SUPD_UNIT=chatty SUPD_STREAM=stderr\n"
    );
    d.stop();
}

#[test]
fn under_systemd_on_cgroup_v2_containers_live_in_the_service_cgroup() {
    // Delegation applies to pure cgroup v2 only.
    if !host_has("cgroup-v2", is_cgroup_v2()) {
        return;
    }
    let unit = sleeper();
    let d = Daemon::start_with_env(&[("box", &unit)], &[("INVOCATION_ID", "0123")]);
    let service = service_cgroup(&d.dir);
    d.wait_state("box", "running");
    let procs =
        |dir: &str| std::fs::read_to_string(service.join(dir).join("cgroup.procs")).unwrap();
    assert_eq!(procs("supervisor").trim(), d.daemon_pid().to_string());
    assert!(procs("containers/box").contains(&d.pid("box").to_string()));
    // The service cgroup itself holds no process (v2's no-internal-process
    // rule) and passes the controllers down.
    assert_eq!(procs("."), "");
    let control =
        std::fs::read_to_string(service.join("containers/cgroup.subtree_control")).unwrap();
    assert!(control.contains("memory"), "{control}");
    // A re-executed supd finds itself in the leaf already and stays there.
    let pid = d.pid("box");
    assert!(d.supctl(&["daemon-reexec"]).status.success());
    assert_eq!(procs("supervisor").trim(), d.daemon_pid().to_string());
    assert!(!service.join("supervisor/supervisor").exists());
    assert_eq!(d.pid("box"), pid, "adopted, not restarted");
    d.stop();
}
