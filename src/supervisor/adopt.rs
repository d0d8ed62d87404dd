//! Live restore: the unit records this supd keeps up to date, and the
//! adoption, at start-up, of the containers an earlier supd left running.

use super::entry::{Entry, Run};
use super::machine::{Machine, Settings};
use super::output::Stream;
use super::records::{self, Found, Record, RunRecord};
use super::{monotonic_now, Source, Supervisor};
use crate::control::protocol::LastExit;
use crate::runtime::{ERROR_HOLD_FD, OUTPUT_HOLD_FD};
use std::os::fd::{AsFd, OwnedFd};

impl Supervisor {
    /// Writes the record of every unit whose state changed since the last
    /// call; an idle unit's record is removed.
    pub(super) fn save_records(&mut self) {
        for name in std::mem::take(&mut self.dirty) {
            let record = self.entries.get(&name).and_then(|e| self.record_of(e));
            let Some(record) = record else {
                if self.saved.remove(&name).is_some() {
                    records::remove(&self.options.dirs, &name);
                }
                continue;
            };
            // Each write is fsynced: skip the ones that would change nothing
            // (a reconcile that keeps the unit, an adoption).
            let hash = records::hash(&record);
            if self.saved.get(&name) == Some(&hash) {
                continue;
            }
            match records::save(&self.options.dirs, &name, &record) {
                Ok(()) => {
                    self.saved.insert(name, hash);
                }
                Err(e) => log::warn!("{name}: cannot write its unit record: {e}"),
            }
        }
    }

    fn record_of(&self, entry: &Entry) -> Option<Record> {
        if !entry.machine.is_active() {
            return None;
        }
        Some(Record {
            version: records::RECORD_VERSION,
            boot_id: self.boot_id.clone(),
            unit: entry.unit.clone()?,
            machine: entry.machine.snapshot(),
            oom_kills: entry.oom_kills,
            run: entry.run.as_ref().map(|run| RunRecord {
                pid: run.pid.as_raw(),
                start_time: run.start_time,
                network: run.network.clone(),
            }),
        })
    }

    /// Takes over what the records found at start-up describe, before the
    /// first reconcile, which then treats a changed or removed file as
    /// usual (a restart or a stop).
    pub(super) fn adopt_found(&mut self) {
        for (name, found) in std::mem::take(&mut self.found) {
            match found {
                Found::Running(record, pidfd) => self.adopt_running(&name, record, pidfd),
                Found::Exited(record, exit) => self.adopt_exited(&name, record, exit),
                Found::Idle(record) => {
                    let entry = self.restored_entry(&name, record, false);
                    log::info!("{name}: carried over in state {}", entry.state());
                    self.entries.insert(name, entry);
                }
                Found::Unusable(_) => {}
            }
        }
    }

    fn restored_entry(&mut self, name: &str, record: Record, with_run: bool) -> Entry {
        self.saved.insert(name.to_string(), records::hash(&record));
        let now = monotonic_now();
        let mut entry = Entry::new(name, &self.options.dirs, now);
        let settings = Settings::of(&record.unit);
        entry.adopt(record.unit, now);
        entry.machine = Machine::restore(name, record.machine, settings, with_run);
        entry.oom_kills = record.oom_kills;
        entry
    }

    fn adopt_running(&mut self, name: &str, record: Record, pidfd: OwnedFd) {
        let Some(run) = record.run.clone() else {
            return;
        };
        let holds_output = record.unit.init;
        let notify = record.unit.notify;
        let journal = self
            .logs_to_journal(&record.unit)
            .then(|| super::journal::JournalSink::new(&self.options.journal_socket, name));
        let mut entry = self.restored_entry(name, record, true);
        let pipes = if holds_output {
            Stream::BOTH.map(|stream| take_pipe(name, &pidfd, stream))
        } else {
            log::warn!("{name}: `init: false`: its output went with the earlier supd");
            [None, None]
        };
        let exit_token = self.register(pidfd.as_fd(), Source::Exit(name.to_string()));
        let now = monotonic_now();
        entry.run = Some(Run {
            console: None,
            pid: nix::unistd::Pid::from_raw(run.pid),
            pidfd,
            started: now,
            start_time: run.start_time,
            exit_token,
            report: None,
            report_bytes: Vec::new(),
            setup_error: None,
            cgroup: self.cgroups.existing(name),
            network: run.network,
            notify: None,
        });
        entry.cpu_sample = super::lifecycle::cgroup_usage(&entry).map(|usage| (now, usage));
        entry.journal = journal;
        self.entries.insert(name.to_string(), entry);
        for (stream, file) in Stream::BOTH.into_iter().zip(pipes) {
            let Some(file) = file else { continue };
            let token = self.register(file.as_fd(), Source::Output(name.to_string(), stream));
            if let (Some(token), Some(entry)) = (token, self.entries.get_mut(name)) {
                entry.pipes[stream.index()] = Some((file, token));
            }
        }
        if notify {
            match self.open_notify(name) {
                Ok((socket, token, _)) => {
                    if let Some(run) = self.entries.get_mut(name).and_then(|e| e.run.as_mut()) {
                        run.notify = Some((socket, token));
                    }
                }
                Err(e) => log::warn!("{name}: cannot reopen its notify socket: {e}"),
            }
        }
        log::info!(
            "{name}: adopted the running container (init pid {})",
            run.pid
        );
        self.begin_health(name, now);
        // Output written while supd was away is waiting in the pipes.
        for stream in Stream::BOTH {
            self.on_output(name, stream);
        }
        self.dirty.insert(name.to_string());
    }

    fn adopt_exited(&mut self, name: &str, record: Record, exit: LastExit) {
        let network = record.run.as_ref().and_then(|r| r.network.clone());
        let entry = self.restored_entry(name, record, true);
        self.entries.insert(name.to_string(), entry);
        log::info!(
            "{name}: the container exited while supd was away (code {:?}, signal {:?})",
            exit.code,
            exit.signal
        );
        if let Some(plan) = &network {
            // Usually gone with the container's network namespace already.
            if let Err(e) = crate::runtime::net::teardown_host(plan) {
                log::debug!("{name}: removing {}: {e}", plan.host_link);
            }
        }
        let staging = self.options.dirs.staging(name);
        if let Err(e) = std::fs::remove_dir(&staging) {
            log::debug!("{name}: {}: {e}", staging.display());
        }
        let notify_dir = self.notify_dir(name);
        if let Err(e) = std::fs::remove_dir_all(&notify_dir) {
            log::debug!("{name}: {}: {e}", notify_dir.display());
        }
        self.drive(name, |machine, now| machine.exited(now, exit, None));
    }
}

/// The init's copy of one output pipe's read end, non-blocking. An init
/// of an older supd has one pipe for both streams (and no ERROR_HOLD_FD:
/// whatever it has at that number is not a pipe, and is left alone).
fn take_pipe(name: &str, pidfd: &OwnedFd, stream: Stream) -> Option<std::fs::File> {
    use std::os::unix::fs::FileTypeExt;
    let fd = match stream {
        Stream::Stdout => OUTPUT_HOLD_FD,
        Stream::Stderr => ERROR_HOLD_FD,
    };
    let file = match records::pidfd_getfd(pidfd, fd) {
        Ok(file) => file,
        Err(e) if stream == Stream::Stderr => {
            log::debug!("{name}: no stderr pipe to take over ({e}): one pipe for both");
            return None;
        }
        Err(e) => {
            log::warn!("{name}: cannot take over the output pipe: {e}; output is lost");
            return None;
        }
    };
    if !file.metadata().is_ok_and(|m| m.file_type().is_fifo()) {
        return None;
    }
    if let Err(e) = nix::fcntl::fcntl(
        &file,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    ) {
        log::warn!("{name}: {} pipe: {e}", stream.name());
    }
    Some(file)
}
