//! Starting, stopping and reaping containers, and reading their pipes.

use super::entry::Run;
use super::output::Stream;
use super::{Source, Supervisor};
use crate::control::protocol::LastExit;
use crate::runtime::net::{self, HostSide};
use crate::runtime::{self, SetupError};
use crate::unit::NetworkMode;
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::io::{self, Read};
use std::os::fd::AsFd;

/// How much of a container's output one wake-up copies, so that one chatty
/// container cannot starve the others.
const OUTPUT_CHUNK: usize = 64 * 1024;

/// What the host side holds for a start in progress, until the run owns it.
struct HostPrep {
    cgroup: Option<crate::runtime::cgroup::Cgroup>,
    notify: Option<(std::os::unix::net::UnixDatagram, u64)>,
}

/// Why a container could not be started, by the step that failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error("cgroup: {0}")]
    Cgroup(#[from] crate::runtime::cgroup::CgroupError),
    #[error("spawn: {0}")]
    Spawn(#[from] crate::runtime::spawn::SpawnError),
    #[error("user namespace: no free id range left")]
    NoIdRange,
    #[error("{0}")]
    Storage(#[from] crate::runtime::storage::StorageError),
    /// A step that reports in the init stage's own terms (network, notify).
    #[error("{0}")]
    Step(#[from] SetupError),
    #[error("internal: the {0} of the start went missing")]
    Lost(&'static str),
}

impl From<StartError> for SetupError {
    fn from(error: StartError) -> Self {
        match error {
            StartError::Step(setup) => setup,
            StartError::Cgroup(e) => SetupError::message("cgroup", None::<&str>, e.to_string()),
            StartError::Spawn(e) => SetupError::message("spawn", None::<&str>, e.to_string()),
            StartError::Storage(e) => SetupError::message("storage", None::<&str>, e.to_string()),
            StartError::NoIdRange => {
                SetupError::message("user namespace", None::<&str>, "no free id range left")
            }
            StartError::Lost(what) => SetupError::message(
                what,
                None::<&str>,
                format!("internal error: the {what} went missing"),
            ),
        }
    }
}

impl Supervisor {
    /// The machine found the dependencies met: create the container.
    pub(super) fn launch_now(&mut self, name: &str, now: std::time::Duration) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let Some(unit) = entry.unit.clone() else {
            return;
        };
        // Output of an earlier run that is still open is dropped with it.
        let earlier: Vec<_> = entry.pipes.iter_mut().filter_map(Option::take).collect();
        for (file, token) in earlier {
            self.unregister(file.as_fd(), token);
        }
        if let Err(error) = self.launch(name, &unit, now) {
            self.drive(name, |machine, now| {
                machine.launch_failed(now, error.into())
            });
        }
    }

    /// Creates the cgroup with its limits, clones the container into it and
    /// registers its pipes. Whatever the host side got before a step failed
    /// (the cgroup, the notify socket) is undone in one place.
    fn launch(
        &mut self,
        name: &str,
        unit: &crate::unit::Unit,
        now: std::time::Duration,
    ) -> Result<(), StartError> {
        let mut prepared = HostPrep {
            cgroup: Some(self.cgroups.create(name)?),
            notify: None,
        };
        let result = self.launch_steps(name, unit, now, &mut prepared);
        if result.is_err() {
            if let Some(cgroup) = prepared.cgroup.take() {
                self.remove_cgroup(cgroup);
            }
            self.close_notify(name, prepared.notify.take());
            if unit.network.mode == NetworkMode::Bridge {
                self.withdraw(name);
            }
            super::storage::release(name, &self.options.dirs.unit_state(name));
        }
        result
    }

    /// The steps of `launch`; on success the run owns what `prepared` held.
    fn launch_steps(
        &mut self,
        name: &str,
        unit: &crate::unit::Unit,
        now: std::time::Duration,
        prepared: &mut HostPrep,
    ) -> Result<(), StartError> {
        let Some(cgroup) = prepared.cgroup.as_ref() else {
            return Err(StartError::Lost("cgroup"));
        };
        cgroup.apply_initial(&unit.resources)?;
        cgroup.set_devices(&crate::runtime::cgroup::device_rules(
            &unit.devices,
            &unit.device_rules,
        )?)?;
        let network = self.plan_network(name, unit)?;
        let names = self.name_files(name, unit, network.as_ref())?;
        if let Some(plan) = &network {
            self.publish(name, plan)?;
        }
        let id_maps = match &unit.security.user_namespace {
            Some(config) => Some(
                self.id_ranges
                    .maps(name, config)
                    .ok_or(StartError::NoIdRange)?,
            ),
            None => None,
        };
        super::storage::prepare(
            name,
            unit,
            &self.options.dirs.unit_state(name),
            id_maps.as_ref().map(runtime::userns::IdMaps::root_on_host),
        )?;
        if let (true, Some(maps)) = (unit.boot, &id_maps) {
            let (uid, gid) = maps.root_on_host();
            cgroup.delegate(uid, gid)?;
        }
        let container_unit = match unit.notify.then(|| self.open_notify(name)).transpose()? {
            Some((socket, token, dir)) => {
                prepared.notify = Some((socket, token));
                super::readiness::with_notify_socket(unit, &dir)
            }
            None => unit.clone(),
        };
        let journal = self
            .logs_to_journal(unit)
            .then(|| super::journal::JournalSink::new(&self.options.journal_socket, name));
        let Some(cgroup) = prepared.cgroup.as_ref() else {
            return Err(StartError::Lost("cgroup"));
        };
        let running = self.entries.values().filter(|e| e.run.is_some()).count();
        let mut host_side = HostSide::default();
        let into_cgroup = cgroup.clone_target();
        let place = |pid, placed: bool| {
            if !placed {
                cgroup.add_process(pid).map_err(|e| e.to_string())?;
            }
            if let Some(maps) = &id_maps {
                runtime::userns::write_maps(pid, maps)
                    .map_err(|e| format!("user namespace: {e}"))?;
            }
            if let Some(plan) = &network {
                host_side = net::setup_host(plan, pid).map_err(|e| format!("network: {e}"))?;
            }
            Ok(())
        };
        let spawned = runtime::spawn(
            &container_unit,
            network.clone(),
            names,
            id_maps.as_ref(),
            &runtime::SpawnHost {
                dirs: &self.options.dirs,
                exe: &self.exe,
                output_pipe_size: runtime::output_pipe_size(running.saturating_add(1)),
            },
            into_cgroup.as_ref(),
            place,
        );
        if let Some((bridge, index)) = host_side.created_bridge {
            self.bridge_created(&bridge, index);
        }
        let spawned = spawned?;
        let report_token = self.register(spawned.report.as_fd(), Source::Report(name.into()));
        let output_token = self.register(
            spawned.output.as_fd(),
            Source::Output(name.into(), Stream::Stdout),
        );
        let error_token = self.register(
            spawned.error.as_fd(),
            Source::Output(name.into(), Stream::Stderr),
        );
        let console = spawned.console.and_then(|console| {
            let token = self.register(console.master.as_fd(), Source::Console(name.into()))?;
            Some(super::console::ConsoleRun { console, token })
        });
        let (Some(entry), Some(cgroup)) = (self.entries.get_mut(name), prepared.cgroup.take())
        else {
            return Ok(());
        };
        let start_time = super::records::start_time(spawned.pid.as_raw()).unwrap_or_default();
        entry.run = Some(Run {
            pid: spawned.pid,
            pidfd: spawned.pidfd,
            started: now,
            start_time,
            exit_token: None,
            report: report_token.map(|t| (spawned.report, t)),
            report_bytes: Vec::new(),
            setup_error: None,
            cgroup,
            network,
            notify: prepared.notify.take(),
            console,
        });
        // A cgroup left from an earlier run keeps its CPU counter: each run
        // starts from what the counter says now.
        entry.cpu_sample = cgroup_usage(entry).map(|usage| (now, usage));
        entry.journal = journal;
        entry.pipes = [
            output_token.map(|t| (spawned.output, t)),
            error_token.map(|t| (spawned.error, t)),
        ];
        entry.machine.launched(now);
        self.dirty.insert(name.to_string());
        self.begin_health(name, now);
        if unit.network.mode == NetworkMode::Bridge {
            self.refresh_hosts(&unit.network.bridge);
        }
        log::info!("{name}: started container, init pid {}", spawned.pid);
        Ok(())
    }

    /// Whether the unit's output goes to the journal rather than files.
    pub(super) fn logs_to_journal(&self, unit: &crate::unit::Unit) -> bool {
        match unit.logging.driver {
            crate::unit::LogDriver::Journal => true,
            crate::unit::LogDriver::File => false,
            crate::unit::LogDriver::Auto => self.options.journal_by_default,
        }
    }

    /// The only place supd calls waitpid.
    pub(super) fn reap_children(&mut self) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
                Err(Errno::EINTR) => continue,
                Err(e) => return log::error!("waitpid: {e}"),
                Ok(status) => status,
            };
            let (pid, exit) = match status {
                WaitStatus::Exited(pid, code) => (
                    pid,
                    LastExit {
                        code: Some(code),
                        signal: None,
                        oom_killed: false,
                        stopped: false,
                        failed_check: None,
                    },
                ),
                WaitStatus::Signaled(pid, signal, _) => (
                    pid,
                    LastExit {
                        code: None,
                        signal: Some(signal as i32),
                        oom_killed: false,
                        stopped: false,
                        failed_check: None,
                    },
                ),
                _ => continue,
            };
            let name = self
                .entries
                .values()
                .find(|e| e.run.as_ref().is_some_and(|r| r.pid == pid))
                .map(|e| e.name.clone());
            match name {
                Some(name) => self.on_exit(&name, exit),
                None => {
                    let code = exit
                        .code
                        .unwrap_or_else(|| exit.signal.unwrap_or(0).saturating_add(128));
                    self.probe_exited(pid, code);
                }
            }
        }
    }

    /// An adopted init's pidfd became readable: it exited. It is not supd's
    /// child, so its status comes from the exit record it wrote.
    pub(super) fn on_adopted_exit(&mut self, name: &str) {
        let exit = super::records::read_exit(&self.options.dirs.exit_record(name));
        self.on_exit(name, exit);
    }

    pub(super) fn on_exit(&mut self, name: &str, exit: LastExit) {
        self.read_report(name);
        for stream in Stream::BOTH {
            self.on_output(name, stream);
        }
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        entry.storage_run_ended(super::monotonic_now());
        self.flush_entry_events(name);
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let Some(mut run) = entry.run.take() else {
            return;
        };
        if let Some((file, token)) = run.report.take() {
            self.unregister(file.as_fd(), token);
        }
        if let Some(token) = run.exit_token.take() {
            self.unregister(run.pidfd.as_fd(), token);
        }
        self.close_notify(name, run.notify.take());
        let console = run.console.take();
        self.close_console(name, console);
        self.end_health(name);
        let oom_kills = run.cgroup.stats().oom_kills.unwrap_or(0);
        self.remove_cgroup(run.cgroup.clone());
        super::storage::release(name, &self.options.dirs.unit_state(name));
        if let Some(plan) = &run.network {
            if let Err(e) = net::teardown_host(plan) {
                log::warn!("{name}: removing {}: {e}", plan.host_link);
            }
            self.unpublish(name, plan);
        }
        self.remove_unused_bridges();
        let staging = self.options.dirs.staging(name);
        if let Err(e) = std::fs::remove_dir(&staging) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warn!("{name}: cannot remove {}: {e}", staging.display());
            }
        }
        log::info!(
            "{name}: container exited (code {:?}, signal {:?})",
            exit.code,
            exit.signal
        );
        // A unit refused for an address or range this one held may now
        // have it.
        if self.claims_refused {
            self.after_watch(super::watch::Changes::everything());
        }
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let mut exit = exit;
        if oom_kills > 0 {
            exit.oom_killed = true;
            entry.oom_kills = entry.oom_kills.saturating_add(oom_kills);
            let limit = entry
                .unit
                .as_ref()
                .and_then(|u| u.resources.memory_max)
                .map_or("no memory.max".to_string(), |m| {
                    format!("memory.max {m} bytes")
                });
            log::warn!(
                "{name}: the kernel OOM-killed {oom_kills} process(es) of the container ({limit})"
            );
        }
        let setup_error = run.setup_error.take();
        self.emit(super::events::exit(name, &exit));
        self.drive(name, |machine, now| machine.exited(now, exit, setup_error));
        if self.shutting_down {
            // The units this one depended on may stop now.
            self.shutdown();
        }
    }

    pub(super) fn on_report(&mut self, name: &str) {
        if self.read_report(name) {
            self.drive(name, |machine, now| machine.setup_finished(now));
        }
    }

    /// Reads the setup report pipe. Returns true when it closed without a
    /// message: the workload was executed.
    fn read_report(&mut self, name: &str) -> bool {
        let Some(run) = self.entries.get_mut(name).and_then(|e| e.run.as_mut()) else {
            return false;
        };
        let Some((file, _)) = run.report.as_mut() else {
            return false;
        };
        let mut chunk = [0u8; 4096];
        let closed = loop {
            match file.read(&mut chunk) {
                Ok(0) => break true,
                Ok(n) => run.report_bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        if !closed {
            return false;
        }
        if let Some((file, token)) = run.report.take() {
            let _ = self.epoll.delete(file.as_fd());
            self.sources.remove(&token);
        }
        let Some(run) = self.entries.get_mut(name).and_then(|e| e.run.as_mut()) else {
            return false;
        };
        if run.report_bytes.is_empty() {
            return true;
        }
        let text = String::from_utf8_lossy(&run.report_bytes);
        run.setup_error = Some(
            serde_json::from_str::<SetupError>(text.trim()).unwrap_or_else(|_| {
                SetupError::message("setup", None::<&str>, text.trim().to_string())
            }),
        );
        false
    }

    pub(super) fn on_output(&mut self, name: &str, stream: Stream) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let Some((mut file, token)) = entry.pipes[stream.index()].take() else {
            return;
        };
        let mut buffer = vec![0u8; OUTPUT_CHUNK];
        let closed = loop {
            match file.read(&mut buffer) {
                Ok(0) => break true,
                Ok(n) => {
                    entry.take_output(stream, &buffer[..n]);
                    if n < buffer.len() {
                        break false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break false,
            }
        };
        entry.check_storage(super::monotonic_now());
        if closed {
            entry.finish_output(stream);
            self.unregister(file.as_fd(), token);
        } else {
            entry.pipes[stream.index()] = Some((file, token));
        }
        self.flush_entry_events(name);
    }
}

/// The CPU time the run's cgroup has used so far.
pub(super) fn cgroup_usage(entry: &super::entry::Entry) -> Option<u64> {
    entry.run.as_ref()?.cgroup.stats().cpu_usage_ns
}
