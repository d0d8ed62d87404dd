//! One handler per control request. A handler returns the response, or None
//! when the client waits for units to settle (then `settle_waiters` answers).

use super::entry::State;
use super::logs::rotated_files;
use super::{Goal, Supervisor, Waiter};
use crate::control::protocol::{Body, Command, Response, UnitFailure, UnitStatus};
use std::path::Path;

impl Supervisor {
    pub(super) fn handle(&mut self, token: u64, command: Command) -> Option<Response> {
        match command {
            Command::Status { names } => Some(self.status(&names)),
            Command::Start { names, wait } => self.start_request(token, names, wait),
            Command::Stop { names, wait } => self.stop_request(token, names, wait),
            Command::Restart { names, wait } => self.restart_request(token, names, wait),
            Command::ResetFailed { names } => Some(self.reset_failed(names)),
            Command::Reload => {
                self.explicit_reload();
                Some(done("reloaded unit directories"))
            }
            Command::Logs { name } => Some(self.logs(&name)),
            Command::Show { name } => Some(self.show(&name)),
            Command::Exec { name } => Some(self.exec(&name)),
            Command::Kill { names, signal } => Some(self.kill(&names, signal)),
            Command::DaemonReexec => Some(self.request_reexec()),
            Command::ImageImport {
                path,
                name,
                reference,
            } => self.import_request(
                token,
                crate::images::import::Request {
                    path,
                    select: reference,
                    tag: name,
                },
            ),
            Command::ImageList => Some(self.image_list()),
            Command::ImageInspect { name } => Some(self.image_inspect(&name)),
            Command::ImageRm { name } => Some(self.image_rm(&name)),
            Command::ImagePrune => Some(self.image_prune()),
            Command::Events { since, names } => self.subscribe(token, since, names),
        }
    }

    /// `supctl kill`: through the init's pidfd, never a recycled pid.
    fn kill(&self, names: &[String], signal: i32) -> Response {
        if let Some(unknown) = self.unknown(names) {
            return unknown;
        }
        if !(1..=64).contains(&signal) {
            return Response::error(format!("no signal {signal}"));
        }
        let mut failed = Vec::new();
        let mut sent = Vec::new();
        for name in names {
            let Some(entry) = self.entries.get(name) else {
                continue;
            };
            let result = match entry.run.as_ref() {
                None => Err("not running".to_string()),
                Some(run) => run.signal(signal).map_err(|e| e.to_string()),
            };
            match result {
                Ok(()) => {
                    log::info!("{name}: sent signal {signal} on request");
                    sent.push(name.as_str());
                }
                Err(error) => failed.push(UnitFailure {
                    name: name.clone(),
                    state: entry.state(),
                    error: Some(error),
                }),
            }
        }
        Response::new(Body::Done {
            message: format!("sent signal {signal} to {}", sent.join(", ")),
            failed,
        })
    }

    fn show(&self, name: &str) -> Response {
        let Some(entry) = self.entries.get(name) else {
            return Response::error(format!("unknown unit: {name}"));
        };
        let files = entry
            .source
            .iter()
            .chain(entry.dropins.iter())
            .cloned()
            .collect();
        // The files as merged, with the defaults supd applies to what they
        // leave out.
        let yaml = match (entry.machine.is_masked(), &entry.effective, &entry.unit) {
            (true, _, _) => None,
            (false, Some(merged), Some(unit)) => {
                Some(crate::unit::defaults::effective_yaml(merged, unit))
            }
            (false, merged, _) => merged.clone(),
        };
        Response::new(Body::Show {
            yaml,
            files,
            masked: entry.machine.is_masked(),
            error: entry.config_error.clone(),
            image: image_line(entry.unit.as_ref()),
        })
    }

    fn exec(&self, name: &str) -> Response {
        let Some(entry) = self.entries.get(name) else {
            return Response::error(format!("unknown unit: {name}"));
        };
        let (Some(run), Some(unit)) = (&entry.run, &entry.unit) else {
            return Response::error(format!("{name} is not running"));
        };
        if !matches!(entry.state(), State::Running | State::Ready) {
            return Response::error(format!("{name} is {}", entry.state()));
        }
        Response::new(Body::Exec {
            pid: run.pid.as_raw(),
            unit: Box::new(unit.clone()),
            cgroups: run.cgroup.dirs().map(Path::to_path_buf).collect(),
        })
    }

    /// A waiting unit's error says what it waits for now, derived from its
    /// dependencies' states rather than stored; a config error comes first.
    fn live_error(&self, mut status: UnitStatus) -> UnitStatus {
        let Some(entry) = self
            .entries
            .get(&status.name)
            .filter(|e| e.machine.is_waiting())
        else {
            return status;
        };
        if entry.config_error.is_none() {
            let deps = entry.unit.as_ref().map_or(&[][..], |u| &u.depends_on);
            status.error = self.unmet_dependencies(deps).or(status.error);
        }
        status
    }

    fn status(&mut self, names: &[String]) -> Response {
        let now = super::monotonic_now();
        let units: Vec<_> = self
            .entries
            .values_mut()
            .filter(|e| names.is_empty() || names.contains(&e.name))
            .map(|e| e.status_now(now))
            .collect();
        self.flush_pending_events();
        let units = units
            .into_iter()
            .map(|u| self.live_error(u))
            .map(|mut u| {
                u.rollback = self.rollback_note(&u.name);
                u
            })
            .collect();
        Response::new(Body::Status { units })
    }

    fn unknown(&self, names: &[String]) -> Option<Response> {
        let unknown: Vec<&str> = names
            .iter()
            .filter(|n| !self.entries.contains_key(*n))
            .map(String::as_str)
            .collect();
        if names.is_empty() {
            return Some(Response::error("name at least one unit"));
        }
        (!unknown.is_empty())
            .then(|| Response::error(format!("unknown unit: {}", unknown.join(", "))))
    }

    fn start_request(&mut self, token: u64, names: Vec<String>, wait: bool) -> Option<Response> {
        if let Some(error) = self.unknown(&names) {
            return Some(error);
        }
        for name in &names {
            self.drive(name, |machine, now| machine.operator_start(now));
        }
        self.respond_or_wait(token, names, wait, Goal::Running, "started")
    }

    fn stop_request(&mut self, token: u64, names: Vec<String>, wait: bool) -> Option<Response> {
        if let Some(error) = self.unknown(&names) {
            return Some(error);
        }
        for name in &names {
            self.drive(name, |machine, now| machine.operator_stop(now));
        }
        self.respond_or_wait(token, names, wait, Goal::Stopped, "stopped")
    }

    fn restart_request(&mut self, token: u64, names: Vec<String>, wait: bool) -> Option<Response> {
        if let Some(error) = self.unknown(&names) {
            return Some(error);
        }
        for name in &names {
            self.drive(name, |machine, now| machine.operator_restart(now));
        }
        self.respond_or_wait(token, names, wait, Goal::Running, "restarted")
    }

    /// Clears `failed` and, the desired state being "running", starts the
    /// unit again with a fresh start-limit budget.
    fn reset_failed(&mut self, names: Vec<String>) -> Response {
        let failed: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.state() == State::Failed)
            .filter(|e| names.is_empty() || names.contains(&e.name))
            .map(|e| e.name.clone())
            .collect();
        for name in &failed {
            self.drive(name, |machine, now| machine.reset_failed(now));
        }
        done(&format!("reset {} failed unit(s)", failed.len()))
    }

    fn logs(&self, name: &str) -> Response {
        let max_files = self
            .entries
            .get(name)
            .and_then(|e| e.unit.as_ref())
            .map_or(crate::unit::LoggingConfig::default().max_files, |u| {
                u.logging.max_files
            });
        let files: Vec<_> = rotated_files(&self.options.dirs.log_file(name), max_files)
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        if files.is_empty() && !self.entries.contains_key(name) {
            return Response::error(format!("unknown unit: {name}"));
        }
        let journal = self
            .entries
            .get(name)
            .and_then(|e| e.unit.as_ref())
            .is_some_and(|unit| self.logs_to_journal(unit));
        Response::new(Body::Logs { files, journal })
    }

    fn respond_or_wait(
        &mut self,
        token: u64,
        names: Vec<String>,
        wait: bool,
        goal: Goal,
        verb: &'static str,
    ) -> Option<Response> {
        if !wait {
            return Some(done(&format!("{verb}: {}", names.join(", "))));
        }
        self.waiters.push(Waiter {
            token,
            names,
            goal,
            verb,
        });
        None
    }

    /// Answers every waiting client whose units have all settled.
    pub(super) fn settle_waiters(&mut self) {
        let mut index = 0;
        while index < self.waiters.len() {
            let waiter = &self.waiters[index];
            let settled = waiter
                .names
                .iter()
                .all(|name| self.settled(name, waiter.goal));
            if !settled {
                index = index.saturating_add(1);
                continue;
            }
            let waiter = self.waiters.remove(index);
            let response = self.outcome(&waiter);
            if let Some(connection) = self.clients.get_mut(&waiter.token) {
                connection.send(&response);
            }
            self.serve_client(waiter.token);
            self.update_client(waiter.token);
        }
    }

    fn settled(&self, name: &str, goal: Goal) -> bool {
        self.entries
            .get(name)
            .is_none_or(|entry| entry.machine.settled(goal))
    }

    fn outcome(&self, waiter: &Waiter) -> Response {
        let failed = waiter
            .names
            .iter()
            .filter_map(|name| {
                let entry = self.entries.get(name)?;
                (!entry.machine.reached(waiter.goal)).then(|| UnitFailure {
                    name: name.clone(),
                    state: entry.state(),
                    error: self.live_error(entry.status()).error,
                })
            })
            .collect();
        Response::new(Body::Done {
            message: format!("{}: {}", waiter.verb, waiter.names.join(", ")),
            failed,
        })
    }
}

fn done(message: &str) -> Response {
    Response::new(Body::Done {
        message: message.to_string(),
        failed: Vec::new(),
    })
}

/// `image: app:1.4 sha256:...` for status and show.
pub(super) fn image_line(unit: Option<&crate::unit::Unit>) -> Option<String> {
    let image = unit?.image.as_ref()?;
    Some(match &image.digest {
        Some(digest) => format!("{} {digest}", image.reference),
        None => image.reference.clone(),
    })
}
