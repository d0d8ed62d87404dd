//! The daemon: one single-threaded event loop over a signalfd, a timerfd, the
//! control socket, its clients and the containers' pipes. Idle means blocked
//! in epoll_wait with no timer armed: zero wake-ups.

// Timer deadlines and counters come from unit files and the kernel: no
// arithmetic here may overflow (tests may, on their fake clocks).
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

mod adopt;
mod clients;
mod console;
mod drive;
mod entry;
mod events;
mod handlers;
pub mod health;
mod images;
mod intent;
pub mod journal;
mod lifecycle;
pub mod logs;
mod machine;
pub mod metrics;
mod networking;
mod notify;
pub mod output;
mod readiness;
mod reconcile;
mod records;
mod reexec;
mod resources;
pub mod restart;
mod storage;
mod watch;

use crate::control::connection::Connection;
use crate::runtime::cgroup::{Cgroup, Cgroups};
use crate::runtime::net::ipam::Ipam;
use crate::runtime::Dirs;
use crate::unit::host::HostInfo;
use entry::Entry;
use machine::Goal;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Options {
    /// Unit directories, highest precedence first.
    pub units_dirs: Vec<PathBuf>,
    pub dirs: Dirs,
    pub socket: PathBuf,
    /// Where cgroupfs is mounted (/sys/fs/cgroup).
    pub cgroup_root: PathBuf,
    /// supd's parent cgroup under the root (or in every v1 hierarchy).
    pub cgroup_parent: String,
    /// Who may use the control socket besides root.
    pub access: crate::control::access::AccessPolicy,
    /// journald's native socket, for units that log to the journal.
    pub journal_socket: PathBuf,
    /// `logging.driver: auto` means the journal (supd runs under journald).
    pub journal_by_default: bool,
    /// `--metrics-listen`: HOST:PORT or a Unix socket path.
    pub metrics_listen: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{what} {}: {source}", .path.display())]
    Setup {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: nix::Error,
    },
    #[error("another supd is already listening on {}", .0.display())]
    SocketInUse(PathBuf),
    #[error("cgroups: {0}")]
    Cgroups(#[from] crate::runtime::cgroup::CgroupError),
    #[error("{0}")]
    Metrics(#[from] metrics::MetricsError),
}

const TOKEN_SIGNALS: u64 = 1;
const TOKEN_TIMER: u64 = 2;
const TOKEN_LISTENER: u64 = 3;
const TOKEN_WATCH: u64 = 4;
const TOKEN_IMPORTS: u64 = 5;
const TOKEN_METRICS: u64 = 6;

/// How long a burst of file events may last before the reconcile it
/// triggers: editors and config management write several files at once.
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(20);
const FIRST_DYNAMIC_TOKEN: u64 = 16;

/// timerfd takes a signed time_t: a deadline past this would wrap negative.
const LATEST_DEADLINE: Duration = Duration::from_secs(i64::MAX as u64 / 2);

/// What a dynamic epoll token stands for.
enum Source {
    Client,
    Report(String),
    Output(String, output::Stream),
    Notify(String),
    /// The pidfd of an adopted init.
    Exit(String),
    /// A health probe's socket or output pipe.
    Probe(String),
    /// A system container's console (pty master).
    Console(String),
    /// A metrics scraper's connection.
    Metrics,
}

/// A client waiting for units to settle after start/stop/restart.
struct Waiter {
    token: u64,
    names: Vec<String>,
    goal: Goal,
    /// What the answer says was done: "started", "restarted", "stopped".
    verb: &'static str,
}

pub struct Supervisor {
    options: Options,
    epoll: Epoll,
    signals: SignalFd,
    timer: TimerFd,
    listener: UnixListener,
    /// The supd binary, opened once so that containers start from the same
    /// executable even if the file is replaced by an upgrade.
    exe: File,
    entries: BTreeMap<String, Entry>,
    /// What the unit records of an earlier supd describe, until adopted.
    found: Vec<(String, records::Found)>,
    /// Units whose record must be written (or removed) at the end of this
    /// turn of the loop.
    dirty: std::collections::BTreeSet<String>,
    /// The hash of each unit record as last written (or found).
    saved: HashMap<String, u64>,
    boot_id: String,
    /// `daemon-reexec` was asked for: exec once nothing is half-done, or
    /// at this deadline.
    reexec: Option<Duration>,
    /// Where the binary was when supd started: an upgrade replaces the file
    /// there, and `daemon-reexec` executes the new one.
    exe_path: Option<PathBuf>,
    sources: HashMap<u64, Source>,
    clients: HashMap<u64, Connection>,
    waiters: Vec<Waiter>,
    events: events::EventLog,
    metrics: Option<metrics::Listener>,
    scrapers: HashMap<u64, metrics::Connection>,
    next_token: u64,
    shutting_down: bool,
    watcher: watch::UnitWatcher,
    /// A reconcile is due at this monotonic time (file events, at once
    /// or debounced).
    reload_at: Option<Duration>,
    /// What that reconcile must read.
    reload_scope: watch::Changes,
    /// Every unit as the last reads found it: a reconcile for a few
    /// changed files reads only those.
    loaded: BTreeMap<String, crate::unit::loader::LoadedUnit>,
    /// The unit watcher must re-sync at this time (see `UnitWatcher::resync`).
    resync_at: Option<Duration>,
    /// Units an operator stopped and units that failed, kept across restarts.
    intent: crate::files::LeaseTable<intent::Intent>,
    /// The last reconcile refused a unit for an address or id range that
    /// another held: once a container ends, look again.
    claims_refused: bool,
    /// Unit-like files whose names are not unit names, already warned about.
    misnamed: std::collections::BTreeSet<PathBuf>,
    /// Accepting is paused (out of descriptors) until this time.
    accept_at: Option<Duration>,
    /// accept failed and has not worked since (its warning was logged).
    accept_failing: bool,
    cgroups: Cgroups,
    host: HostInfo,
    /// Cgroups whose removal met EBUSY, with the attempts made so far.
    removals: Vec<(Cgroup, u32)>,
    removal_at: Option<Duration>,
    ipam: Ipam,
    id_ranges: crate::runtime::userns::IdRanges,
    /// Bridges supd created (name -> link index), removed again once no
    /// container uses them.
    bridges_created: crate::files::LeaseTable<u32>,
    /// supd's own network namespace, to come back to after making a
    /// health probe's socket in a container's.
    own_netns: Option<File>,
    /// The rules supd's nftables table holds; None until this supd set it.
    firewall: Option<Vec<crate::runtime::net::firewall::Rule>>,
    notifier: notify::Notifier,
    /// What is imported (`STATE_DIR/images`).
    images: crate::images::Store,
    imports: images::Imports,
    /// Units pinned to an earlier image after their tag's new one never
    /// got running.
    rollbacks: crate::files::LeaseTable<images::Rollback>,
    /// The digest each `image:` unit last got running on.
    proven: HashMap<String, String>,
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> SupervisorError {
    move |source| SupervisorError::Sys { what, source }
}

fn setup(what: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> SupervisorError {
    let path = path.to_path_buf();
    move |source| SupervisorError::Setup { what, path, source }
}

/// A timer deadline `after` from now. Durations from unit files are bounded
/// (365 days), but the sum saturates anyway: no input may panic the loop.
pub fn deadline_after(after: Duration) -> Duration {
    monotonic_now().saturating_add(after)
}

/// Monotonic now, the clock of every timer and the restart tracker.
pub fn monotonic_now() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(Duration::from)
        .unwrap_or_default()
}

impl Supervisor {
    pub fn new(options: Options) -> Result<Self, SupervisorError> {
        // Signals must be blocked before any thread exists and before the
        // signalfd is read; children restore the mask before exec.
        let mut mask = SigSet::empty();
        for signal in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(signal);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
            .map_err(sys("block signals"))?;
        // SAFETY: setting SIGPIPE to ignore installs no handler code; writes
        // to a vanished client then fail with EPIPE instead of killing supd.
        unsafe { nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn) }
            .map_err(sys("ignore SIGPIPE"))?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sys("signalfd"))?;
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(sys("timerfd"))?;
        for dir in [
            &options.dirs.runtime,
            &options.dirs.state,
            &options.dirs.log,
        ] {
            fs::create_dir_all(dir).map_err(setup("create directory", dir))?;
        }
        // The read group, where there is one, is who reads logs without
        // acting; else the admin group.
        logs::share_with_group(
            &options.dirs.log,
            options.access.read_gid.or(options.access.admin_gid),
        );
        let exe = File::open("/proc/self/exe").map_err(setup("open", "/proc/self/exe".as_ref()))?;
        let found = records::load_all(&options.dirs);
        let adopted: std::collections::BTreeSet<String> = found
            .iter()
            .filter(|(_, found)| matches!(found, records::Found::Running(..)))
            .map(|(name, _)| name.clone())
            .collect();
        let (cgroups, leftovers) =
            Cgroups::new(&options.cgroup_root, &options.cgroup_parent, &|name| {
                adopted.contains(name)
            })?;
        log::info!(
            "cgroup layout: {} under {}",
            cgroups.layout(),
            options.cgroup_root.display()
        );
        for leftover in leftovers {
            match &leftover.error {
                None => log::warn!(
                    "{}: cleared the cgroup an earlier supd left ({} processes killed)",
                    leftover.name,
                    leftover.processes
                ),
                Some(e) => log::warn!(
                    "{}: the cgroup an earlier supd left stays ({} processes killed): {e}",
                    leftover.name,
                    leftover.processes
                ),
            }
        }
        let host = HostInfo {
            cgroups: cgroups.host(),
            online_cpus: HostInfo::online_cpus(),
        };
        let watcher = watch::UnitWatcher::new(&options.units_dirs).map_err(|e| {
            let dirs = std::env::join_paths(&options.units_dirs).unwrap_or_default();
            setup("inotify on", std::path::Path::new(&dirs))(e)
        })?;
        let (ipam, addresses) = Ipam::load(&options.dirs.state);
        let (id_ranges, ranges) = crate::runtime::userns::IdRanges::load(&options.dirs.state);
        let (bridges_created, bridges) = networking::load_created_bridges(&options.dirs.runtime);
        let (intent, intents) = intent::load(&options.dirs.state);
        let (images, image_warnings) =
            crate::images::Store::load(&crate::images::Store::root_in(&options.dirs.state), true);
        for warning in image_warnings {
            log::warn!("image store: {warning}");
        }
        let (rollbacks, rollbacks_loaded) = crate::files::LeaseTable::load(
            options.dirs.state.join("rollbacks.json"),
            "image rollbacks",
            |_| Ok(()),
        );
        let imports = images::Imports::new().map_err(setup("socketpair", &options.dirs.state))?;
        for (loaded, what) in [
            (
                addresses,
                "address leases (units with `address: auto` get new addresses)",
            ),
            (ranges, "user namespace id ranges"),
            (
                intents,
                "which units an operator stopped or that failed (they start again)",
            ),
            (
                bridges,
                "the list of bridges supd created (they are not removed)",
            ),
            (
                rollbacks_loaded,
                "which units run an earlier image after a failed update (they try the tag's image again)",
            ),
        ] {
            if let Some(warning) = loaded.warning(what) {
                log::warn!("{warning}");
            }
        }
        // Listening last: a client that can connect finds the state loaded.
        let listener = match reexec::inherited_listener(&options.socket) {
            Some(listener) => listener,
            None => clients::bind_socket(&options.socket, &options.access)?,
        };
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(sys("epoll"))?;
        let watch = |fd: std::os::fd::BorrowedFd<'_>, token| {
            epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
                .map_err(sys("epoll add"))
        };
        watch(signals.as_fd(), TOKEN_SIGNALS)?;
        watch(timer.as_fd(), TOKEN_TIMER)?;
        watch(listener.as_fd(), TOKEN_LISTENER)?;
        watch(watcher.fd(), TOKEN_WATCH)?;
        watch(imports.fd(), TOKEN_IMPORTS)?;
        let metrics = options
            .metrics_listen
            .as_deref()
            .map(metrics::listen)
            .transpose()?;
        if let Some(listener) = &metrics {
            watch(listener.fd(), TOKEN_METRICS)?;
        }
        Ok(Supervisor {
            epoll,
            signals,
            timer,
            listener,
            exe,
            entries: BTreeMap::new(),
            sources: HashMap::new(),
            clients: HashMap::new(),
            waiters: Vec::new(),
            events: Default::default(),
            metrics,
            scrapers: HashMap::new(),
            next_token: FIRST_DYNAMIC_TOKEN,
            shutting_down: false,
            watcher,
            reload_at: None,
            reload_scope: watch::Changes::default(),
            loaded: BTreeMap::new(),
            resync_at: None,
            accept_at: None,
            accept_failing: false,
            misnamed: std::collections::BTreeSet::new(),
            claims_refused: false,
            intent,
            cgroups,
            host,
            removals: Vec::new(),
            removal_at: None,
            ipam,
            id_ranges,
            bridges_created,
            firewall: None,
            own_netns: File::open("/proc/self/ns/net")
                .map_err(|e| log::warn!("cannot open supd's network namespace: {e}"))
                .ok(),
            notifier: notify::Notifier::from_env(),
            found,
            dirty: std::collections::BTreeSet::new(),
            saved: HashMap::new(),
            boot_id: records::boot_id(),
            reexec: None,
            exe_path: std::env::current_exe().ok(),
            images,
            imports,
            rollbacks,
            proven: HashMap::new(),
            options,
        })
    }

    /// Runs until SIGTERM or SIGINT has stopped every container.
    pub fn run(mut self) -> Result<(), SupervisorError> {
        self.after_watch(watch::Changes::default());
        self.adopt_found();
        self.rebuild_network_state();
        self.reload();
        self.save_records();
        // Bridges an earlier supd created that no unit wants any more.
        self.remove_unused_bridges();
        self.update_status();
        self.notifier.ready();
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            self.settle_waiters();
            if self.reexec.is_some() {
                self.reexec_when_settled();
            }
            if self.shutting_down && self.entries.values().all(|e| e.run.is_none()) {
                break;
            }
            self.arm_timer()?;
            let ready = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    return Err(SupervisorError::Sys {
                        what: "epoll_wait",
                        source: e,
                    })
                }
            };
            for event in &events[..ready] {
                self.dispatch(event.data(), event.events());
            }
            self.save_records();
            self.update_status();
        }
        let _ = fs::remove_file(&self.options.socket);
        if let Some(listener) = &self.metrics {
            listener.remove();
        }
        self.finish_removals();
        self.cgroups.remove_parents();
        log::info!("all containers stopped, exiting");
        Ok(())
    }

    fn dispatch(&mut self, token: u64, flags: EpollFlags) {
        match token {
            TOKEN_SIGNALS => self.on_signals(),
            TOKEN_TIMER => self.on_timer(),
            TOKEN_LISTENER => self.accept_clients(),
            TOKEN_WATCH => {
                let changed = self.watcher.read();
                self.after_watch(changed);
            }
            TOKEN_IMPORTS => self.on_import_done(),
            TOKEN_METRICS => self.accept_scrapers(),
            _ => match self.sources.get(&token) {
                Some(Source::Client) => self.on_client(token, flags),
                Some(Source::Report(name)) => {
                    let name = name.clone();
                    self.on_report(&name);
                }
                Some(Source::Output(name, stream)) => {
                    let (name, stream) = (name.clone(), *stream);
                    self.on_output(&name, stream);
                }
                Some(Source::Notify(name)) => {
                    let name = name.clone();
                    self.on_notify(&name);
                }
                Some(Source::Exit(name)) => {
                    let name = name.clone();
                    self.on_adopted_exit(&name);
                }
                Some(Source::Probe(name)) => {
                    let name = name.clone();
                    self.on_probe_event(&name);
                }
                Some(Source::Console(name)) => {
                    let name = name.clone();
                    self.on_console(&name);
                }
                Some(Source::Metrics) => self.on_scraper(token),
                None => {}
            },
        }
    }

    /// Schedules the reconcile a file change asks for, and the re-sync of
    /// a watch set that a racing directory change left incomplete.
    pub(super) fn after_watch(&mut self, changes: watch::Changes) {
        if changes.any() {
            self.reload_scope.merge(changes);
            // A whole edit is read at once; a burst, or an edit that may
            // not be done yet, a moment later in one go.
            if !self.reload_scope.everything && !self.reload_scope.settling {
                self.reload_at = Some(deadline_after(Duration::ZERO));
            } else if self.reload_at.is_none() {
                self.reload_at = Some(deadline_after(RELOAD_DEBOUNCE));
            }
        }
        self.resync_at = self
            .watcher
            .incomplete()
            .then(|| deadline_after(watch::RESYNC_DELAY));
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGCHLD) => self.reap_children(),
                Ok(Signal::SIGTERM | Signal::SIGINT) => self.shutdown(),
                Ok(Signal::SIGHUP) => self.explicit_reload(),
                _ => {}
            }
        }
    }

    /// Stops every unit that no running unit depends on; called again as
    /// containers exit, so dependencies stop after their dependents.
    fn shutdown(&mut self) {
        if !self.shutting_down {
            log::info!("shutting down: stopping all containers");
            self.notifier.stopping();
            self.shutting_down = true;
            self.reload_at = None;
        }
        let stoppable: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.machine.is_active())
            .filter(|e| !self.has_active_dependents(&e.name))
            .map(|e| e.name.clone())
            .collect();
        for name in stoppable {
            self.drive(&name, |machine, now| machine.shutdown(now));
        }
    }

    fn has_active_dependents(&self, name: &str) -> bool {
        self.entries.values().any(|other| {
            other.run.is_some()
                && other
                    .unit
                    .as_ref()
                    .is_some_and(|u| u.depends_on.iter().any(|d| d == name))
        })
    }

    fn arm_timer(&mut self) -> Result<(), SupervisorError> {
        let next = self
            .entries
            .values()
            .filter_map(|e| e.machine.deadline())
            .chain(self.reload_at)
            .chain(self.resync_at)
            .chain(self.accept_at)
            .chain(self.removal_at)
            .chain(self.notifier.watchdog_at)
            .chain(self.reexec)
            .chain(self.imports.progress_at)
            .chain(self.health_deadlines())
            .min();
        match next {
            Some(at) => self
                .timer
                .set(
                    Expiration::OneShot(TimeSpec::from_duration(
                        at.clamp(Duration::from_nanos(1), LATEST_DEADLINE),
                    )),
                    TimerSetTimeFlags::TFD_TIMER_ABSTIME,
                )
                .map_err(sys("timerfd set")),
            None => self.timer.unset().map_err(sys("timerfd unset")),
        }
    }

    fn on_timer(&mut self) {
        let _ = self.timer.wait();
        let now = monotonic_now();
        if self.accept_at.is_some_and(|at| at <= now) {
            self.resume_accepting();
        }
        if self.resync_at.is_some_and(|at| at <= now) {
            let changed = self.watcher.resync();
            // Also schedules the next re-sync, or none.
            self.after_watch(watch::Changes::everything_if(changed));
        }
        if self.reload_at.is_some_and(|at| at <= now) {
            self.reload_at = None;
            let scope = std::mem::take(&mut self.reload_scope);
            if scope.everything {
                self.reload();
            } else if !scope.units.is_empty() {
                self.reload_units(&scope.units);
            }
        }
        if self.notifier.watchdog_at.is_some_and(|at| at <= now) {
            self.notifier.watchdog();
        }
        if self.removal_at.is_some_and(|at| at <= now) {
            self.removal_at = None;
            self.retry_removals();
        }
        if self.imports.progress_at.is_some_and(|at| at <= now) {
            self.report_import_progress();
        }
        self.on_health_timer(now);
        let due: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.machine.deadline().is_some_and(|at| at <= now))
            .map(|e| e.name.clone())
            .collect();
        for name in due {
            self.drive(&name, |machine, now| machine.timer_fired(now));
        }
    }

    fn register(&mut self, fd: std::os::fd::BorrowedFd<'_>, source: Source) -> Option<u64> {
        self.register_events(fd, source, EpollFlags::EPOLLIN)
    }

    fn register_events(
        &mut self,
        fd: std::os::fd::BorrowedFd<'_>,
        source: Source,
        flags: EpollFlags,
    ) -> Option<u64> {
        let token = self.next_token;
        self.next_token = self.next_token.saturating_add(1);
        match self.epoll.add(fd, EpollEvent::new(flags, token)) {
            Ok(()) => {
                self.sources.insert(token, source);
                Some(token)
            }
            Err(e) => {
                log::error!("cannot watch a descriptor: {e}");
                None
            }
        }
    }

    fn unregister(&mut self, fd: std::os::fd::BorrowedFd<'_>, token: u64) {
        let _ = self.epoll.delete(fd);
        self.sources.remove(&token);
    }
}
