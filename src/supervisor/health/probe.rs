//! One health probe in flight, driven by the event loop: a non-blocking
//! TCP connect (and, for `http`, one GET) from a socket made inside the
//! container's network namespace, or a command run in the container by a
//! `supd __health-exec` helper whose exit the supervisor's one reaper sees.

use super::tracker::{keep_tail, Outcome};
use crate::unit::health::Probe;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
use nix::unistd::Pid;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The argument that makes supd run an exec probe instead of the daemon.
pub const HEALTH_EXEC_ARG: &str = "__health-exec";

/// What the exec helper is told, as JSON in its second argument.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ExecRequest {
    pub pid: i32,
    pub unit: crate::unit::Unit,
    pub cgroups: Vec<std::path::PathBuf>,
    pub argv: Vec<String>,
}

/// Entry point of `supd __health-exec JSON`: enters the container as
/// `supctl exec` does and exits with the command's status.
pub fn run_exec_helper(request: &str) -> i32 {
    let request: ExecRequest = match serde_json::from_str(request) {
        Ok(request) => request,
        Err(e) => {
            eprintln!("health probe: bad request: {e}");
            return 125;
        }
    };
    match crate::runtime::enter::run(
        request.pid,
        &request.unit,
        &request.cgroups,
        &request.argv,
        false,
    ) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("health probe: {e}");
            125
        }
    }
}

pub enum InFlight {
    Socket(SocketProbe),
    Exec(ExecProbe),
}

impl InFlight {
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            InFlight::Socket(probe) => probe.stream.as_fd(),
            InFlight::Exec(probe) => probe.output.as_fd(),
        }
    }
}

pub struct SocketProbe {
    stream: TcpStream,
    /// `http`: the request still to send; None once sent (or for `tcp`).
    request: Option<Vec<u8>>,
    http: bool,
    connected: bool,
    response: Vec<u8>,
}

/// How far a socket probe got after an event.
pub enum Progress {
    Pending,
    /// The request is out: wait for the answer only (no more EPOLLOUT).
    Sent,
    Done(Outcome),
}

fn failed(detail: impl Into<String>) -> Outcome {
    Outcome {
        passed: false,
        detail: detail.into(),
        output: String::new(),
    }
}

/// Opens a socket inside the network namespace of `init` (switching the
/// calling thread there and back: sockets stay in the namespace they were
/// made in) and starts connecting to `address:port`.
pub fn connect_in(
    init: Pid,
    own_netns: &File,
    address: Ipv4Addr,
    port: u16,
    probe: &Probe,
) -> io::Result<SocketProbe> {
    let theirs = File::open(format!("/proc/{}/ns/net", init.as_raw()))?;
    nix::sched::setns(theirs.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    let made = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    );
    let back = nix::sched::setns(own_netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET);
    if let Err(e) = back {
        // Everything supd does next would happen in the container's
        // namespace: never carry on like that.
        log::error!("cannot return to supd's own network namespace: {e}");
        std::process::abort();
    }
    let fd: OwnedFd = made?;
    let target = SockaddrIn::from(std::net::SocketAddrV4::new(address, port));
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &target) {
        Ok(()) | Err(nix::Error::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let request = match probe {
        Probe::Http { path, host, .. } => Some(
            format!(
                "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: supd-health\r\nConnection: close\r\n\r\n",
                host.as_deref().unwrap_or("localhost")
            )
            .into_bytes(),
        ),
        _ => None,
    };
    Ok(SocketProbe {
        stream: TcpStream::from(fd),
        http: request.is_some(),
        request,
        connected: false,
        response: Vec::new(),
    })
}

impl SocketProbe {
    /// The socket is readable or writable: move the probe on.
    pub fn advance(&mut self) -> Progress {
        if !self.connected {
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return Progress::Done(failed(format!("connect: {e}"))),
            }
            if let Err(e) = self.stream.peer_addr() {
                if e.kind() == io::ErrorKind::NotConnected {
                    return Progress::Pending;
                }
                return Progress::Done(failed(format!("connect: {e}")));
            }
            self.connected = true;
            if !self.http {
                return Progress::Done(Outcome {
                    passed: true,
                    detail: "connected".into(),
                    output: String::new(),
                });
            }
        }
        if let Some(request) = self.request.take() {
            return match self.stream.write_all(&request) {
                Ok(()) => Progress::Sent,
                Err(e) => Progress::Done(failed(format!("sending the request: {e}"))),
            };
        }
        let mut chunk = [0u8; 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Progress::Done(http_outcome(&self.response, true)),
                Ok(n) => {
                    keep_tail(&mut self.response, &chunk[..n]);
                    if self.response.windows(2).any(|w| w == b"\r\n") {
                        return Progress::Done(http_outcome(&self.response, false));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Progress::Pending,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Progress::Done(failed(format!("reading the answer: {e}"))),
            }
        }
    }
}

/// 2xx and 3xx are healthy, as Kubernetes' httpGet.
fn http_outcome(response: &[u8], closed: bool) -> Outcome {
    let text = String::from_utf8_lossy(response);
    let status_line = text.lines().next().unwrap_or_default();
    let code = status_line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(code) => Outcome {
            passed: (200..400).contains(&code),
            detail: format!("HTTP {code}"),
            output: status_line.to_string(),
        },
        None if closed && response.is_empty() => failed("closed without an answer"),
        None => failed(format!("not an HTTP answer: {status_line:?}")),
    }
}

pub struct ExecProbe {
    pub pid: Pid,
    output: File,
    buffer: Vec<u8>,
}

/// Starts `supd __health-exec` for `argv` in the container, in a process
/// group of its own (which a timeout kills whole), its output on a pipe.
pub fn spawn_exec(exe: &File, request: &ExecRequest) -> io::Result<ExecProbe> {
    use std::os::unix::process::CommandExt;
    let text = serde_json::to_string(request).map_err(io::Error::other)?;
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let stderr = write_end.try_clone()?;
    let exe_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(exe));
    let child = std::process::Command::new(exe_path)
        .arg(HEALTH_EXEC_ARG)
        .arg(text)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::from(write_end))
        .stderr(std::process::Stdio::from(stderr))
        .process_group(0)
        .spawn()?;
    // The supervisor's reaper collects it: std's Child is dropped unwaited.
    let pid = Pid::from_raw(child.id() as i32);
    drop(child);
    let output = File::from(read_end);
    nix::fcntl::fcntl(
        &output,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    )?;
    Ok(ExecProbe {
        pid,
        output,
        buffer: Vec::new(),
    })
}

impl ExecProbe {
    /// Reads what the command printed so far.
    pub fn drain(&mut self) {
        self.drain_until_eof();
    }

    /// Reads what is there; true at end of file (or an error: the same).
    pub fn drain_until_eof(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        loop {
            match self.output.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => keep_tail(&mut self.buffer, &chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return e.kind() != io::ErrorKind::WouldBlock,
            }
        }
    }

    /// Kills the helper and whatever it started (a timeout, or the run
    /// ended); the reaper collects the helper.
    pub fn kill(&self) {
        if let Err(e) = nix::sys::signal::killpg(self.pid, nix::sys::signal::Signal::SIGKILL) {
            if e != nix::Error::ESRCH {
                log::warn!("cannot kill health probe {}: {e}", self.pid);
            }
        }
    }

    /// The helper exited with `code` (as a shell reports it).
    pub fn finish(mut self, code: i32) -> Outcome {
        self.drain();
        Outcome {
            passed: code == 0,
            detail: format!("exit {code}"),
            output: String::from_utf8_lossy(&self.buffer).trim_end().to_string(),
        }
    }
}

pub fn timed_out(after: Duration) -> Outcome {
    failed(format!(
        "timed out after {}",
        crate::unit::quantity::Span(after)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_judged_by_their_status() {
        assert!(http_outcome(b"HTTP/1.1 200 OK\r\n", false).passed);
        assert!(http_outcome(b"HTTP/1.0 302 Found\r\n", false).passed);
        let bad = http_outcome(b"HTTP/1.1 503 Service Unavailable\r\n", false);
        assert!(!bad.passed);
        assert_eq!(bad.detail, "HTTP 503");
        assert!(!http_outcome(b"SSH-2.0-OpenSSH\r\n", false).passed);
        assert_eq!(http_outcome(b"", true).detail, "closed without an answer");
    }
}
