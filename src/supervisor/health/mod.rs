//! Health checks in the event loop: each running unit with `health:` has
//! a tracker and at most one probe in flight. Probes start from the loop's
//! one timer, progress on epoll events (sockets, exec output) and the
//! reaper (exec exits), and end in `finish`, which tells the machine.
//! Units without a check have no deadline here: they cost no wake-up.

pub mod probe;
pub mod tracker;

use super::{Source, Supervisor};
use crate::control::protocol::{FailedCheck, HealthStatus, State};
use crate::unit::health::{OnUnhealthy, Probe};
use nix::sys::epoll::{EpollEvent, EpollFlags};
use probe::{InFlight, Progress};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracker::{Change, Outcome, Tracker};

/// A running unit's health: its tracker and the probe in flight.
pub struct HealthRun {
    pub tracker: Tracker,
    probe: Option<Running>,
}

struct Running {
    inflight: InFlight,
    /// The epoll token while its descriptor is watched.
    token: Option<u64>,
    deadline: Duration,
}

impl HealthRun {
    /// When the loop must look at it: the probe's timeout, or the next.
    pub fn deadline(&self) -> Duration {
        match &self.probe {
            Some(running) => running.deadline,
            None => self.tracker.next_probe_at(),
        }
    }

    pub fn status(&self) -> HealthStatus {
        let last = self.tracker.last();
        HealthStatus {
            state: self.tracker.health(),
            failures: self.tracker.failures(),
            last_probe: last.map(|(wall, _)| crate::control::protocol::rfc3339(*wall)),
            last_result: last.map(|(_, outcome)| outcome.detail.clone()),
            output: last
                .map(|(_, outcome)| outcome.output.clone())
                .filter(|o| !o.is_empty()),
        }
    }
}

fn wall_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Supervisor {
    /// A run began (or was adopted): its checks start.
    pub(super) fn begin_health(&mut self, name: &str, now: Duration) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        entry.health = entry
            .unit
            .as_ref()
            .and_then(|u| u.health.clone())
            .map(|check| HealthRun {
                tracker: Tracker::new(check, now),
                probe: None,
            });
    }

    /// The run ended: its probe goes with it.
    pub(super) fn end_health(&mut self, name: &str) {
        let Some(mut health) = self.entries.get_mut(name).and_then(|e| e.health.take()) else {
            return;
        };
        if let Some(running) = health.probe.take() {
            self.drop_probe(running);
        }
    }

    pub(super) fn health_deadlines(&self) -> impl Iterator<Item = Duration> + '_ {
        self.entries
            .values()
            .filter_map(|e| e.health.as_ref().map(HealthRun::deadline))
    }

    /// From the timer: probes that timed out fail, due ones start.
    pub(super) fn on_health_timer(&mut self, now: Duration) {
        let due: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.health.as_ref().is_some_and(|h| h.deadline() <= now))
            .map(|e| e.name.clone())
            .collect();
        for name in due {
            let timed_out = self
                .entries
                .get_mut(&name)
                .and_then(|e| e.health.as_mut())
                .and_then(|h| h.probe.take().map(|r| (r, h.tracker.check().timeout)));
            match timed_out {
                Some((running, timeout)) => {
                    self.drop_probe(running);
                    self.finish(&name, now, probe::timed_out(timeout));
                }
                None => self.start_probe(&name, now),
            }
        }
    }

    fn start_probe(&mut self, name: &str, now: Duration) {
        let Some(entry) = self.entries.get(name) else {
            return;
        };
        let Some(timeout) = entry.health.as_ref().map(|h| h.tracker.check().timeout) else {
            return;
        };
        if !matches!(entry.state(), State::Running | State::Ready) {
            // Still setting up, or stopping: look again an interval later.
            if let Some(h) = self.entries.get_mut(name).and_then(|e| e.health.as_mut()) {
                h.tracker.skip(now);
            }
            return;
        }
        let inflight = match self.open_probe(name) {
            Ok(inflight) => inflight,
            Err(e) => {
                let outcome = Outcome {
                    passed: false,
                    detail: format!("cannot start the probe: {e}"),
                    output: String::new(),
                };
                return self.finish(name, now, outcome);
            }
        };
        let flags = match &inflight {
            InFlight::Socket(_) => EpollFlags::EPOLLIN | EpollFlags::EPOLLOUT,
            InFlight::Exec(_) => EpollFlags::EPOLLIN,
        };
        let token = self.register_events(inflight.fd(), Source::Probe(name.to_string()), flags);
        if let Some(h) = self.entries.get_mut(name).and_then(|e| e.health.as_mut()) {
            h.probe = Some(Running {
                inflight,
                token,
                deadline: now.saturating_add(timeout),
            });
        }
    }

    /// Starts the unit's probe: the exec helper, or the socket's connect.
    fn open_probe(&self, name: &str) -> std::io::Result<InFlight> {
        let missing = || std::io::Error::other("the unit stopped running");
        let entry = self.entries.get(name).ok_or_else(missing)?;
        let (Some(run), Some(unit), Some(health)) = (&entry.run, &entry.unit, &entry.health) else {
            return Err(missing());
        };
        let probe = &health.tracker.check().probe;
        match probe {
            Probe::Exec(argv) => {
                let request = probe::ExecRequest {
                    pid: run.pid.as_raw(),
                    unit: unit.clone(),
                    cgroups: run
                        .cgroup
                        .dirs()
                        .map(std::path::Path::to_path_buf)
                        .collect(),
                    argv: argv.clone(),
                };
                probe::spawn_exec(&self.exe, &request).map(InFlight::Exec)
            }
            Probe::Http { port, .. } | Probe::Tcp { port } => {
                let address = run
                    .network
                    .as_ref()
                    .and_then(|plan| plan.address)
                    .map_or(std::net::Ipv4Addr::LOCALHOST, |a| a.ip);
                let own = self.own_netns.as_ref().ok_or_else(|| {
                    std::io::Error::other("supd could not open its own network namespace")
                })?;
                probe::connect_in(run.pid, own, address, *port, probe).map(InFlight::Socket)
            }
        }
    }

    /// The probe's descriptor is ready.
    pub(super) fn on_probe_event(&mut self, name: &str) {
        let now = super::monotonic_now();
        let Some(health) = self.entries.get_mut(name).and_then(|e| e.health.as_mut()) else {
            return;
        };
        let Some(running) = health.probe.as_mut() else {
            return;
        };
        match &mut running.inflight {
            InFlight::Socket(socket) => match socket.advance() {
                Progress::Pending => {}
                Progress::Sent => {
                    let token = running.token.unwrap_or_default();
                    let fd = running.inflight.fd();
                    let mut event = EpollEvent::new(EpollFlags::EPOLLIN, token);
                    if let Err(e) = self.epoll.modify(fd, &mut event) {
                        log::warn!("{name}: health probe: {e}");
                    }
                }
                Progress::Done(outcome) => {
                    if let Some(running) = health.probe.take() {
                        self.drop_probe(running);
                    }
                    self.finish(name, now, outcome);
                }
            },
            InFlight::Exec(exec) => {
                // Output until EOF, which would then wake the loop at
                // every turn: stop watching; the exit ends the probe.
                if exec.drain_until_eof() {
                    if let Some(token) = running.token.take() {
                        let fd = running.inflight.fd();
                        let _ = self.epoll.delete(fd);
                        self.sources.remove(&token);
                    }
                }
            }
        }
    }

    /// The reaper found `pid`: whether it was an exec probe's helper.
    pub(super) fn probe_exited(&mut self, pid: nix::unistd::Pid, code: i32) -> bool {
        let now = super::monotonic_now();
        let name = self
            .entries
            .values()
            .find(|e| {
                e.health.as_ref().is_some_and(|h| {
                    matches!(&h.probe, Some(Running { inflight: InFlight::Exec(exec), .. }) if exec.pid == pid)
                })
            })
            .map(|e| e.name.clone());
        let Some(name) = name else {
            return false;
        };
        let running = self
            .entries
            .get_mut(&name)
            .and_then(|e| e.health.as_mut())
            .and_then(|h| h.probe.take());
        if let Some(mut running) = running {
            if let Some(token) = running.token.take() {
                let _ = self.epoll.delete(running.inflight.fd());
                self.sources.remove(&token);
            }
            if let InFlight::Exec(exec) = running.inflight {
                let outcome = exec.finish(code);
                self.finish(&name, now, outcome);
            }
        }
        true
    }

    /// Stops watching a probe, killing an exec helper still running.
    fn drop_probe(&mut self, mut running: Running) {
        if let Some(token) = running.token.take() {
            let _ = self.epoll.delete(running.inflight.fd());
            self.sources.remove(&token);
        }
        if let InFlight::Exec(exec) = &running.inflight {
            exec.kill();
        }
    }

    /// A probe ended: the tracker decides, the machine acts.
    fn finish(&mut self, name: &str, now: Duration, outcome: Outcome) {
        let Some(health) = self.entries.get_mut(name).and_then(|e| e.health.as_mut()) else {
            return;
        };
        let detail = outcome.detail.clone();
        let change = health.tracker.record(now, wall_seconds(), outcome);
        let failures = health.tracker.failures();
        let action = health.tracker.check().on_unhealthy;
        self.dirty.insert(name.to_string());
        match change {
            Change::None => {}
            Change::BecameHealthy => {
                log::info!("{name}: healthy ({detail})");
                self.emit(super::events::health(
                    name,
                    crate::control::protocol::Health::Healthy,
                    &detail,
                ));
                self.drive(name, |machine, _| machine.health_passed());
            }
            Change::BecameUnhealthy => {
                let why =
                    format!("unhealthy: {failures} probes failed in a row, the last: {detail}");
                self.emit(super::events::health(
                    name,
                    crate::control::protocol::Health::Unhealthy,
                    &format!("{failures} probes failed in a row, the last: {detail}"),
                ));
                self.drive(name, |machine, _| {
                    machine.health_lost();
                    Vec::new()
                });
                match action {
                    OnUnhealthy::Restart => self.drive(name, |machine, now| {
                        machine.check_failed(now, FailedCheck::Unhealthy, why)
                    }),
                    OnUnhealthy::None => log::warn!("{name}: {why}"),
                }
            }
        }
    }
}
