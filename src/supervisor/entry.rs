//! What supd holds for one unit name.

use super::logs::LogSink;
use super::machine::{Machine, Settings};
use crate::control::protocol::{rfc3339, UnitStatus};
use crate::runtime::cgroup::Cgroup;
use crate::runtime::net::NetPlan;
use crate::runtime::SetupError;
use crate::unit::Unit;
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
    /// Monotonic time the run began (or was adopted).
    pub started: Duration,
    /// The init's start time (/proc/PID/stat), which identifies it to a
    /// restarted supd.
    pub start_time: u64,
    /// Set for an adopted init, which is not supd's child: its pidfd in
    /// the event loop tells when it exits.
    pub exit_token: Option<u64>,
    pub report: Option<(File, u64)>,
    pub report_bytes: Vec<u8>,
    /// What the setup reported, if it failed before the workload ran.
    pub setup_error: Option<SetupError>,
    pub cgroup: Cgroup,
    pub network: Option<NetPlan>,
    /// The unit's NOTIFY_SOCKET (host side), with `notify: true`.
    pub notify: Option<(std::os::unix::net::UnixDatagram, u64)>,
    /// `boot`: the container's /dev/console (not kept over a supd restart).
    pub console: Option<super::console::ConsoleRun>,
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

pub struct Entry {
    pub name: String,
    pub source: Option<PathBuf>,
    pub dropins: Vec<PathBuf>,
    /// The merged YAML of the unit file and its drop-ins.
    pub effective: Option<String>,
    /// The configuration in force: the last valid one.
    pub unit: Option<Unit>,
    /// Every state transition (see `machine`).
    pub machine: Machine,
    pub run: Option<Run>,
    /// OOM kills in earlier runs of this unit.
    pub oom_kills: u64,
    /// The previous (monotonic time, CPU usage ns) for `cpu_percent`.
    pub cpu_sample: Option<(Duration, u64)>,
    /// The unit file's current validation error, if it is invalid now.
    pub config_error: Option<String>,
    /// The read ends of the workload's stdout and stderr, by stream index.
    pub pipes: [Option<(File, u64)>; 2],
    /// What each stream sent past its last newline.
    pub lines: [super::output::Lines; 2],
    pub log: LogSink,
    /// Set while the unit's output goes to the journal instead of `log`.
    pub journal: Option<super::journal::JournalSink>,
    /// `health:` of the running container.
    pub health: Option<super::health::HealthRun>,
    /// `STATE_DIR/NAME`.
    pub state_dir: PathBuf,
    pub storage: super::storage::StorageWatch,
    /// Events noticed where the supervisor is not at hand, for `emit`.
    pub pending_events: Vec<crate::control::protocol::Event>,
}

impl Entry {
    pub fn new(name: &str, dirs: &crate::runtime::Dirs, now: Duration) -> Self {
        Entry {
            name: name.to_string(),
            source: None,
            dropins: Vec::new(),
            effective: None,
            unit: None,
            machine: Machine::new(name, now),
            run: None,
            oom_kills: 0,
            cpu_sample: None,
            config_error: None,
            pipes: [None, None],
            lines: Default::default(),
            log: LogSink::new(dirs.log_file(name), Default::default()),
            journal: None,
            health: None,
            state_dir: dirs.unit_state(name),
            storage: Default::default(),
            pending_events: Vec::new(),
        }
    }

    /// Adopts a (new) valid configuration without touching the process.
    pub fn adopt(&mut self, unit: Unit, now: Duration) {
        self.machine.configure(Settings::of(&unit), now);
        self.log.reconfigure(unit.logging.clone());
        self.unit = Some(unit);
        self.config_error = None;
    }

    pub fn state(&self) -> State {
        self.machine.state()
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
        status.storage = self.storage_status(now);
        status
    }

    pub fn status(&self) -> UnitStatus {
        let in_state = self.machine.in_state_for(super::monotonic_now());
        let since = SystemTime::now()
            .checked_sub(in_state)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| rfc3339(d.as_secs()));
        UnitStatus {
            name: self.name.clone(),
            state: self.machine.state(),
            pid: self.run.as_ref().map(|r| r.pid.as_raw()),
            since,
            restarts: self.machine.restarts(),
            last_exit: self.machine.last_exit().cloned(),
            oom_kills: Some(self.oom_kills),
            cpu_percent: None,
            memory_bytes: None,
            working_set_bytes: None,
            pids: None,
            addresses: self
                .run
                .as_ref()
                .and_then(|r| r.network.as_ref())
                .map(|plan| {
                    let v6 = plan.address6.map(|a| a.to_string());
                    plan.address
                        .map(|a| a.to_string())
                        .into_iter()
                        .chain(v6)
                        .collect()
                })
                .unwrap_or_default(),
            ports: self
                .run
                .as_ref()
                .and_then(|r| r.network.as_ref())
                .map(|plan| plan.config.ports.iter().map(|p| p.describe()).collect())
                .unwrap_or_default(),
            health: self.health.as_ref().map(super::health::HealthRun::status),
            status_text: self.machine.status_text().map(str::to_string),
            image: super::handlers::image_line(self.unit.as_ref()),
            rollback: None,
            storage: None,
            log_dropped: self.journal.as_ref().map(|j| j.dropped).filter(|n| *n > 0),
            error: self
                .config_error
                .clone()
                .or_else(|| self.machine.error().map(str::to_string)),
        }
    }
}
