//! `--metrics-listen`: Prometheus' text exposition at `GET /metrics`, built
//! when it is asked for from the cgroup figures (no timer, no sampling),
//! over TCP or a Unix socket. Connections are the loop's like any other:
//! non-blocking, bounded in number and in what they may send, closed
//! after one answer.

use super::{Source, Supervisor};
use crate::control::protocol::{Health, State};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

/// Scrapers at once; a new one past this closes the oldest.
const MAX_CONNECTIONS: usize = 16;
/// A request head longer than this is not a scrape.
const MAX_REQUEST: usize = 8 * 1024;

const STATES: [State; 9] = [
    State::Starting,
    State::Running,
    State::Ready,
    State::Stopping,
    State::Stopped,
    State::Backoff,
    State::Failed,
    State::Invalid,
    State::Masked,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("--metrics-listen {address}: {source}")]
    Bind { address: String, source: io::Error },
}

pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn io(&mut self) -> &mut dyn ReadWrite {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

pub struct Connection {
    stream: Stream,
    request: Vec<u8>,
    answer: Option<(Vec<u8>, usize)>,
}

/// `HOST:PORT` (TCP) or a path (a Unix socket, replaced if stale).
pub fn listen(address: &str) -> Result<Listener, MetricsError> {
    let fail = |source| MetricsError::Bind {
        address: address.to_string(),
        source,
    };
    if address.contains('/') {
        let path = PathBuf::from(address);
        if path.exists() && UnixStream::connect(&path).is_err() {
            std::fs::remove_file(&path).map_err(fail)?;
        }
        let listener = UnixListener::bind(&path).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        return Ok(Listener::Unix(listener, path));
    }
    let listener = TcpListener::bind(address).map_err(fail)?;
    listener.set_nonblocking(true).map_err(fail)?;
    Ok(Listener::Tcp(listener))
}

impl Listener {
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix(l, _) => l.as_fd(),
        }
    }

    fn accept(&self) -> io::Result<Stream> {
        let stream = match self {
            Listener::Tcp(l) => Stream::Tcp(l.accept()?.0),
            Listener::Unix(l, _) => Stream::Unix(l.accept()?.0),
        };
        match &stream {
            Stream::Tcp(s) => s.set_nonblocking(true)?,
            Stream::Unix(s) => s.set_nonblocking(true)?,
        }
        Ok(stream)
    }

    /// At exit: a Unix socket's file goes.
    pub fn remove(&self) {
        if let Listener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The answer to a request head.
fn respond(head: &[u8], body: impl FnOnce() -> String) -> Vec<u8> {
    let line = head
        .split(|b| *b == b'\r' || *b == b'\n')
        .next()
        .unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    let mut parts = text.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body()),
        ("GET", _) => ("404 Not Found", "text/plain", "see /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Label values as the exposition format quotes them.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One metric family: its HELP and TYPE, then each `(labels, value)`.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, f64)]) {
    if samples.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

impl Supervisor {
    /// The exposition, from what the entries and their cgroups say now.
    fn metrics_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP supd_build_info supd's version.\n# TYPE supd_build_info gauge\nsupd_build_info{{version=\"{}\"}} 1",
            crate::VERSION
        );
        let mut samples: HashMap<&str, Vec<(String, f64)>> = HashMap::new();
        let mut push = |name: &'static str, labels: String, value: f64| {
            samples.entry(name).or_default().push((labels, value));
        };
        for entry in self.entries.values() {
            let unit = format!("unit=\"{}\"", label(&entry.name));
            let state = entry.state();
            for candidate in STATES {
                let labels = format!("{unit},state=\"{candidate}\"");
                push(
                    "supd_unit_state",
                    labels,
                    f64::from(u8::from(candidate == state)),
                );
            }
            push(
                "supd_unit_restarts_total",
                unit.clone(),
                f64::from(entry.machine.restarts()),
            );
            let stats = entry.run.as_ref().map(|run| run.cgroup.stats());
            let oom = entry
                .oom_kills
                .saturating_add(stats.as_ref().and_then(|s| s.oom_kills).unwrap_or(0));
            push("supd_unit_oom_kills_total", unit.clone(), oom as f64);
            if let Some(stats) = &stats {
                if let Some(ns) = stats.cpu_usage_ns {
                    push("supd_unit_cpu_seconds_total", unit.clone(), ns as f64 / 1e9);
                }
                if let Some(bytes) = stats.memory_bytes {
                    push("supd_unit_memory_bytes", unit.clone(), bytes as f64);
                }
                if let Some(bytes) = stats.working_set_bytes {
                    push(
                        "supd_unit_memory_working_set_bytes",
                        unit.clone(),
                        bytes as f64,
                    );
                }
                if let Some(pids) = stats.pids {
                    push("supd_unit_pids", unit.clone(), pids as f64);
                }
            }
            if let Some(max) = entry.unit.as_ref().and_then(|u| u.resources.memory_max) {
                push("supd_unit_memory_max_bytes", unit.clone(), max as f64);
            }
            if let Some(health) = entry.health.as_ref().map(super::health::HealthRun::status) {
                for (name, candidate) in [
                    ("starting", Health::Starting),
                    ("healthy", Health::Healthy),
                    ("unhealthy", Health::Unhealthy),
                ] {
                    let labels = format!("{unit},health=\"{name}\"");
                    push(
                        "supd_unit_health",
                        labels,
                        f64::from(u8::from(health.state == candidate)),
                    );
                }
            }
            if let Some(dropped) = entry.journal.as_ref().map(|j| j.dropped) {
                push("supd_unit_log_dropped_total", unit.clone(), dropped as f64);
            }
        }
        for (name, kind, help) in [
            (
                "supd_unit_state",
                "gauge",
                "1 for the state the unit is in, 0 for the others.",
            ),
            (
                "supd_unit_restarts_total",
                "counter",
                "Restarts by the restart policy.",
            ),
            (
                "supd_unit_oom_kills_total",
                "counter",
                "Processes of the unit the kernel OOM-killed.",
            ),
            (
                "supd_unit_cpu_seconds_total",
                "counter",
                "CPU time of the container's cgroup.",
            ),
            (
                "supd_unit_memory_bytes",
                "gauge",
                "Memory the container's cgroup uses.",
            ),
            (
                "supd_unit_memory_working_set_bytes",
                "gauge",
                "Memory in use less inactive file cache (what the OOM killer follows).",
            ),
            (
                "supd_unit_memory_max_bytes",
                "gauge",
                "resources.memory.max.",
            ),
            (
                "supd_unit_pids",
                "gauge",
                "Tasks in the container's cgroup.",
            ),
            (
                "supd_unit_health",
                "gauge",
                "1 for the unit's health, 0 for the others (units with health checks).",
            ),
            (
                "supd_unit_log_dropped_total",
                "counter",
                "Output records the journal did not take.",
            ),
        ] {
            family(
                &mut out,
                name,
                kind,
                help,
                samples.get(name).map_or(&[], Vec::as_slice),
            );
        }
        out
    }

    pub(super) fn accept_scrapers(&mut self) {
        loop {
            let Some(listener) = &self.metrics else {
                return;
            };
            let stream = match listener.accept() {
                Ok(stream) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return log::warn!("metrics: accept: {e}"),
            };
            if self.scrapers.len() >= MAX_CONNECTIONS {
                if let Some(oldest) = self.scrapers.keys().min().copied() {
                    self.close_scraper(oldest);
                }
            }
            if let Some(token) = self.register(stream.fd(), Source::Metrics) {
                self.scrapers.insert(
                    token,
                    Connection {
                        stream,
                        request: Vec::new(),
                        answer: None,
                    },
                );
            }
        }
    }

    pub(super) fn on_scraper(&mut self, token: u64) {
        let Some(connection) = self.scrapers.get_mut(&token) else {
            return;
        };
        if connection.answer.is_none() {
            let mut chunk = [0u8; 2048];
            loop {
                match connection.stream.io().read(&mut chunk) {
                    Ok(0) => return self.close_scraper(token),
                    Ok(n) => connection.request.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.close_scraper(token),
                }
                if connection.request.len() > MAX_REQUEST {
                    return self.close_scraper(token);
                }
            }
            let complete = connection.request.windows(4).any(|w| w == b"\r\n\r\n")
                || connection.request.windows(2).any(|w| w == b"\n\n");
            if !complete {
                return;
            }
            let head = std::mem::take(&mut connection.request);
            let answer = respond(&head, || self.metrics_text());
            if let Some(connection) = self.scrapers.get_mut(&token) {
                connection.answer = Some((answer, 0));
            }
        }
        self.write_scraper(token);
    }

    fn write_scraper(&mut self, token: u64) {
        let Some(connection) = self.scrapers.get_mut(&token) else {
            return;
        };
        let Some((answer, sent)) = connection.answer.as_mut() else {
            return;
        };
        while *sent < answer.len() {
            match connection.stream.io().write(&answer[*sent..]) {
                Ok(0) => return self.close_scraper(token),
                Ok(n) => *sent = sent.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut event = nix::sys::epoll::EpollEvent::new(
                        nix::sys::epoll::EpollFlags::EPOLLOUT,
                        token,
                    );
                    if self
                        .epoll
                        .modify(connection.stream.fd(), &mut event)
                        .is_err()
                    {
                        self.close_scraper(token);
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close_scraper(token),
            }
        }
        self.close_scraper(token);
    }

    fn close_scraper(&mut self, token: u64) {
        if let Some(connection) = self.scrapers.remove(&token) {
            self.unregister(connection.stream.fd(), token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_metrics_gets_the_exposition() {
        let answer =
            |head: &str| String::from_utf8(respond(head.as_bytes(), || "x 1\n".into())).unwrap();
        let ok = answer("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(ok.ends_with("\r\n\r\nx 1\n"));
        assert!(answer("GET /metrics?x=1 HTTP/1.0\r\n\r\n").starts_with("HTTP/1.1 200"));
        assert!(answer("GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(answer("POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(answer("").starts_with("HTTP/1.1 405"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
