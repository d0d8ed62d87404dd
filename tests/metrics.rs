//! `supd --metrics-listen`: the exposition is built at scrape time from
//! the cgroup figures and parses with Prometheus' own checker (promtool,
//! from Debian's prometheus package). Real containers, as root.

mod common;

use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

fn scrape_unix(path: &std::path::Path, request: &str) -> String {
    let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// The value of the one sample whose line starts with `series`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

#[test]
fn the_exposition_has_each_units_figures_and_promtool_accepts_it() {
    let dir = std::env::temp_dir().join(format!("supd-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("metrics.sock");
    let d = Daemon::start_with_args(&["--metrics-listen", socket.to_str().unwrap()]);
    d.write_unit(
        "busy",
        &sh_unit(
            &d,
            "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo spun; exec sleep 1000",
            "resources: { memory: { max: 64M } }\n",
        ),
    );
    d.write_unit(
        "crashy",
        &sh_unit(
            &d,
            "exit 1",
            "restart: { policy: on-failure, delay: 100ms }\n",
        ),
    );
    d.wait_log("busy", "spun");
    d.wait_for("a restart", std::time::Duration::from_secs(20), || {
        d.status("crashy")["restarts"].as_u64().unwrap_or(0) >= 1
    });
    let answer = scrape_unix(&socket, "GET /metrics HTTP/1.1\r\nHost: supd\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    let text = body(&answer);
    assert_eq!(
        sample(text, "supd_unit_state{unit=\"busy\",state=\"running\"}"),
        1.0
    );
    assert_eq!(
        sample(text, "supd_unit_state{unit=\"busy\",state=\"stopped\"}"),
        0.0
    );
    assert!(sample(text, "supd_unit_cpu_seconds_total{unit=\"busy\"}") > 0.0);
    assert!(sample(text, "supd_unit_memory_bytes{unit=\"busy\"}") > 0.0);
    assert!(sample(text, "supd_unit_pids{unit=\"busy\"}") >= 1.0);
    assert_eq!(
        sample(text, "supd_unit_memory_max_bytes{unit=\"busy\"}"),
        64.0 * 1024.0 * 1024.0
    );
    assert!(sample(text, "supd_unit_restarts_total{unit=\"crashy\"}") >= 1.0);
    assert_eq!(
        sample(text, "supd_unit_oom_kills_total{unit=\"busy\"}"),
        0.0
    );
    if host_has("promtool", which("promtool")) {
        let mut check = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        check
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = check.wait_with_output().unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "promtool: {}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Anything but GET /metrics is refused; the loop goes on.
    assert!(scrape_unix(&socket, "GET / HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(scrape_unix(&socket, "DELETE /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(d.supctl(&["status"]).status.success());
    d.stop();
    assert!(!socket.exists(), "the socket goes with supd");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn metrics_listen_on_tcp_too() {
    let d = Daemon::start_with_args(&["--metrics-listen", "127.0.0.1:9464"]);
    d.write_unit("one", &sh_unit(&d, "exec sleep 1000", ""));
    d.wait_for("running", std::time::Duration::from_secs(20), || {
        d.state("one") == "running"
    });
    // The daemon's network namespace is the test's: its loopback starts down.
    let up = Command::new("nsenter")
        .arg(format!("--net=/proc/{}/ns/net", d.daemon_pid()))
        .args(["ip", "link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(up.success());
    let answer = in_daemon_netns(&d, || {
        let mut stream = std::net::TcpStream::connect("127.0.0.1:9464").unwrap();
        stream.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    });
    assert!(
        body(&answer).contains("supd_unit_state{unit=\"one\",state=\"running\"} 1"),
        "{answer}"
    );
    d.stop();
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}
