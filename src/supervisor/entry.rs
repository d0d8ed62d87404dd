//! What supd holds for one unit name.

use super::logs::LogSink;
use super::restart::RestartTracker;
use crate::control::protocol::{rfc3339, LastExit, UnitStatus};
use crate::runtime::cgroup::Cgroup;
use crate::runtime::net::NetPlan;
use crate::runtime::SetupError;
use crate::unit::{RestartConfig, Unit};
use nix::unistd::Pid;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub use crate::control::protocol::State;

/// A live container: its init process and the pipes from its setup.
pub struct Run {
    pub pid: Pid,
    pub pidfd: OwnedFd,
    /// Monotonic time the run began.
    pub started: Duration,
    pub report: Option<(File, u64)>,
    pub report_bytes: Vec<u8>,
    pub setup_error: Option<SetupError>,
    pub stop_requested: bool,
    pub cgroup: Cgroup,
    pub network: Option<NetPlan>,
    /// The unit's NOTIFY_SOCKET (host side), with `notify: true`.
    pub notify: Option<(std::os::unix::net::UnixDatagram, u64)>,
}

impl Run {
    /// SIGKILL to the container's init (the kernel then kills its PID
    /// namespace) and to every process of its cgroup, in case some left it.
    pub fn kill_all(&self, name: &str) {
        if let Err(e) = self.signal(libc::SIGKILL) {
            log::warn!("{name}: cannot kill: {e}");
        }
        if let Err(e) = self.cgroup.kill_all() {
            log::warn!("{name}: cannot kill through the cgroup: {e}");
        }
    }

    /// A signal to the container's init, through its pidfd (never a
    /// recycled pid).
    pub fn signal(&self, signal: i32) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal on a pidfd we own, no siginfo.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// What to do once the current run has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay stopped (or follow the restart policy if nobody asked to stop).
    Nothing,
    /// Start again at once (a restart or a changed unit).
    Start,
    /// The unit file is gone: drop the entry.
    Forget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Back-off is over: start again.
    Restart,
    /// The stop timeout passed: SIGKILL the container.
    Kill,
    /// Setup (or, with `notify`, READY=1) did not come within
    /// start_timeout: kill and fail it.
    StartTimeout,
}

pub struct Entry {
    pub name: String,
    pub source: Option<PathBuf>,
    pub dropins: Vec<PathBuf>,
    /// The merged YAML of the unit file and its drop-ins.
    pub effective: Option<String>,
    /// The unit should run but a dependency does not yet.
    pub waiting: bool,
    /// The configuration in force: the last valid one.
    pub unit: Option<Unit>,
    pub masked: bool,
    pub state: State,
    pub since: SystemTime,
    pub run: Option<Run>,
    pub after_stop: AfterStop,
    pub timer: Option<(Duration, TimerKind)>,
    pub tracker: RestartTracker,
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    /// OOM kills in earlier runs of this unit.
    pub oom_kills: u64,
    /// The previous (monotonic time, CPU usage ns) for `cpu_percent`.
    pub cpu_sample: Option<(Duration, u64)>,
    /// The unit file's current validation error, if it is invalid now.
    pub config_error: Option<String>,
    /// Why the last start or run failed.
    pub run_error: Option<String>,
    pub output: Option<(File, u64)>,
    pub log: LogSink,
    /// Set while the unit's output goes to the journal instead of `log`.
    pub journal: Option<super::journal::JournalSink>,
    /// The workload's last STATUS= message (`notify` units).
    pub status_text: Option<String>,
}

impl Entry {
    pub fn new(name: &str, log_path: PathBuf) -> Self {
        Entry {
            name: name.to_string(),
            source: None,
            dropins: Vec::new(),
            effective: None,
            waiting: false,
            unit: None,
            masked: false,
            state: State::Stopped,
            since: SystemTime::now(),
            run: None,
            after_stop: AfterStop::Nothing,
            timer: None,
            tracker: RestartTracker::new(RestartConfig::default()),
            restarts: 0,
            last_exit: None,
            oom_kills: 0,
            cpu_sample: None,
            config_error: None,
            run_error: None,
            output: None,
            log: LogSink::new(log_path, Default::default()),
            journal: None,
            status_text: None,
        }
    }

    pub fn set_state(&mut self, state: State) {
        if self.state != state {
            log::info!(
                "{}: {} -> {}",
                self.name,
                self.state.as_str(),
                state.as_str()
            );
            self.state = state;
            self.since = SystemTime::now();
        }
    }

    /// Adopts a (new) valid configuration without touching the process.
    pub fn adopt(&mut self, unit: Unit) {
        self.tracker.reconfigure(unit.restart.clone());
        self.log.reconfigure(unit.logging.clone());
        self.unit = Some(unit);
        self.masked = false;
        self.config_error = None;
        if matches!(self.state, State::Invalid | State::Masked) {
            self.set_state(State::Stopped);
        }
    }

    /// Forgets back-off, start-limit history and the last failure: an
    /// operator's start or restart, reset-failed, or a changed file.
    pub fn fresh_start(&mut self) {
        self.tracker.reset();
        self.run_error = None;
        if self.run.is_none() {
            self.timer = None;
        }
        if matches!(self.state, State::Failed | State::Backoff) {
            self.set_state(State::Stopped);
        }
    }

    /// Up as dependents and `start --wait` see it: running, and ready if
    /// the unit promised to say so.
    pub fn is_up(&self) -> bool {
        let notify = self.unit.as_ref().is_some_and(|u| u.notify);
        match self.state {
            State::Ready => true,
            State::Running => !notify,
            _ => false,
        }
    }

    /// The state of a unit with nothing running or scheduled.
    pub fn idle_state(&self) -> State {
        if self.masked {
            State::Masked
        } else {
            State::Stopped
        }
    }

    /// A process exists or is scheduled to: something a stop must undo.
    pub fn is_active(&self) -> bool {
        self.run.is_some() || self.state == State::Backoff || self.waiting
    }

    /// Status with live figures from the cgroup. CPU percent is the usage
    /// since the previous status request (or since start), so nothing has
    /// to sample in the background.
    pub fn status_now(&mut self, now: Duration) -> UnitStatus {
        let mut status = self.status();
        let Some(run) = &self.run else {
            return status;
        };
        let stats = run.cgroup.stats();
        status.memory_bytes = stats.memory_bytes;
        status.working_set_bytes = stats.working_set_bytes;
        status.pids = stats.pids;
        status.oom_kills = Some(self.oom_kills.saturating_add(stats.oom_kills.unwrap_or(0)));
        if let Some(usage) = stats.cpu_usage_ns {
            let (since, before) = self.cpu_sample.unwrap_or((run.started, 0));
            let elapsed = now.saturating_sub(since).as_nanos() as f64;
            if elapsed > 0.0 {
                let percent = usage.saturating_sub(before) as f64 / elapsed * 100.0;
                status.cpu_percent = Some((percent * 10.0).round() / 10.0);
            }
            self.cpu_sample = Some((now, usage));
        }
        status
    }

    pub fn status(&self) -> UnitStatus {
        let since = self
            .since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| rfc3339(d.as_secs()))
            .ok();
        UnitStatus {
            name: self.name.clone(),
            state: self.state,
            pid: self.run.as_ref().map(|r| r.pid.as_raw()),
            since,
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            oom_kills: Some(self.oom_kills),
            cpu_percent: None,
            memory_bytes: None,
            working_set_bytes: None,
            pids: None,
            addresses: self
                .run
                .as_ref()
                .and_then(|r| r.network.as_ref()?.address)
                .map(|a| a.to_string())
                .into_iter()
                .collect(),
            status_text: self.status_text.clone(),
            error: self.config_error.clone().or_else(|| self.run_error.clone()),
        }
    }
}
