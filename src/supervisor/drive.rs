//! Feeding events to a unit's state machine and carrying out the effects
//! it returns: the one bridge between the pure `machine` and the world.

use super::machine::{Effect, Effects, Machine};
use super::{monotonic_now, Supervisor};
use std::os::fd::AsFd;
use std::time::Duration;

impl Supervisor {
    /// Runs one event on the unit's machine, then its effects.
    pub(super) fn drive(
        &mut self,
        name: &str,
        event: impl FnOnce(&mut Machine, Duration) -> Effects,
    ) {
        let now = monotonic_now();
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let effects = event(&mut entry.machine, now);
        self.emit_transitions(name, now);
        self.dirty.insert(name.to_string());
        for effect in effects {
            self.execute(name, effect, now);
        }
        self.emit_transitions(name, now);
        self.follow_image(name);
    }

    /// The machine's state changes as events; a change to backoff also
    /// as a restart, with its reason.
    pub(super) fn emit_transitions(&mut self, name: &str, now: Duration) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        let transitions = entry.machine.take_transitions();
        if transitions.is_empty() {
            return;
        }
        let why = entry.machine.error().map(str::to_string);
        let restart = super::events::restart_reason(&entry.machine, now);
        for (from, to) in transitions {
            let failed = matches!(
                to,
                super::entry::State::Backoff | super::entry::State::Failed
            );
            let why = why.as_deref().filter(|_| failed);
            self.emit(super::events::state_change(name, from, to, why));
            if to == super::entry::State::Backoff {
                self.emit(super::events::event(
                    Some(name),
                    crate::control::protocol::EventKind::Restart,
                    restart.clone(),
                ));
            }
        }
    }

    fn execute(&mut self, name: &str, effect: Effect, now: Duration) {
        match effect {
            Effect::Launch => self.launch_now(name, now),
            Effect::Start => self.start_unit(name),
            Effect::Signal(signal) => {
                let run = self.entries.get(name).and_then(|e| e.run.as_ref());
                if let Some(Err(e)) = run.map(|run| run.signal(signal)) {
                    log::warn!("{name}: cannot send stop signal: {e}");
                }
            }
            Effect::KillAll => {
                if let Some(run) = self.entries.get(name).and_then(|e| e.run.as_ref()) {
                    run.kill_all(name);
                }
            }
            Effect::StartDependents => self.start_waiting_dependents(name),
            Effect::HoldStopped => self.hold_stopped(name),
            Effect::HoldFailed(error) => self.hold_failed(name, &error),
            Effect::ReleaseIntent => self.release_intent(name),
            Effect::ReleaseLeases => {
                self.ipam.release(name);
                self.id_ranges.release(name);
            }
            Effect::Forget => {
                self.dirty.insert(name.to_string());
                self.remove_storage(name);
                if let Some(entry) = self.entries.remove(name) {
                    for (file, token) in entry.pipes.into_iter().flatten() {
                        self.unregister(file.as_fd(), token);
                    }
                }
            }
        }
    }

    /// Asks the machine to start the unit, telling it which dependencies
    /// are not up yet. Nothing starts while supd shuts down.
    pub(super) fn start_unit(&mut self, name: &str) {
        if self.shutting_down {
            return;
        }
        let Some(depends_on) = self
            .entries
            .get(name)
            .and_then(|e| Some(e.unit.as_ref()?.depends_on.clone()))
        else {
            return;
        };
        let unmet = self.unmet_dependencies(&depends_on);
        self.drive(name, |machine, now| machine.start(now, unmet));
    }

    /// Why the unit cannot start yet, if a dependency is not up.
    pub(super) fn unmet_dependencies(&self, depends_on: &[String]) -> Option<String> {
        use super::entry::State;
        let unmet: Vec<String> = depends_on
            .iter()
            .filter_map(|dep| match self.entries.get(dep) {
                None => Some(format!("{dep} (no such unit)")),
                Some(e) if e.machine.is_up_for_dependents() => None,
                Some(e) if e.machine.is_up() => Some(format!("{dep} (not healthy yet)")),
                Some(e) if e.state() == State::Running => Some(format!("{dep} (not ready yet)")),
                Some(e) => Some(format!("{dep} ({})", e.state())),
            })
            .collect();
        (!unmet.is_empty()).then(|| format!("waiting for dependencies: {}", unmet.join(", ")))
    }

    /// A unit came up: start the units that waited for it.
    fn start_waiting_dependents(&mut self, name: &str) {
        let dependents: Vec<String> = self
            .entries
            .values()
            .filter(|e| e.machine.is_waiting())
            .filter(|e| {
                e.unit
                    .as_ref()
                    .is_some_and(|u| u.depends_on.iter().any(|d| d == name))
            })
            .map(|e| e.name.clone())
            .collect();
        for dependent in dependents {
            self.start_unit(&dependent);
        }
    }
}
