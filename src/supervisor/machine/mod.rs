//! The per-unit state machine of DESIGN section 5, in one place and pure:
//! every event is a method that takes the monotonic time, changes the
//! state and returns the effects the `Supervisor` must carry out (launch a
//! container, signal it, persist operator intent, ...). Processes, pipes,
//! cgroups and files stay with the supervisor; the machine only knows that
//! a run exists, so every transition is unit-tested without root.
//!
//! ```text
//!            start                setup done          READY=1 (notify)
//! stopped ─────────► starting ────────────► running ────────► ready
//!   ▲  ▲  deps unmet: starting (waiting)      │ stop             │
//!   │  │                                      ▼                  │
//!   │  └──────── exit after a stop ◄──── stopping ◄──────────────┘
//!   │                                                 exit by itself:
//!   └─ clean exit, policy does not restart ◄──────── restart policy
//!        backoff ──(delay passed)──► start      ──► backoff | failed
//! ```
//! A change of the unit file, `start`, `restart` and `reset-failed` are a
//! fresh start: they clear `failed`, `stopped`-by-operator and back-off.

use super::restart::{Decision, RestartTracker};
use crate::control::protocol::{FailedCheck, LastExit, State};
use crate::runtime::SetupError;
use crate::unit::RestartConfig;
use std::time::Duration;

#[cfg(test)]
mod check_tests;
mod checks;
mod snapshot;
#[cfg(test)]
mod tests;
mod vocabulary;

pub use snapshot::Snapshot;

pub use vocabulary::{AfterStop, Effect, Effects, Goal, Held, Settings, TimerKind};

/// The machine's view of a container that exists.
#[derive(Clone, Debug)]
struct Run {
    started: Duration,
    stop_requested: bool,
    /// Set when start_timeout passed: the run's failure, once it exits.
    timed_out: Option<SetupError>,
    /// READY=1 came before the setup report closed: the init may still
    /// hold the report's write end while the workload already runs.
    ready_early: bool,
    /// Its health check passed (and has not failed `retries` times since).
    healthy: bool,
    /// supd is ending the run because a check failed: a failure, whatever
    /// the exit code.
    failed_check: Option<FailedCheck>,
}

#[derive(Clone, Debug)]
pub struct Machine {
    name: String,
    state: State,
    /// Monotonic time of the last state change.
    changed_at: Duration,
    /// None while no valid configuration is in force (never valid, masked).
    settings: Option<Settings>,
    masked: bool,
    /// Should run, but a dependency is not up yet.
    waiting: bool,
    run: Option<Run>,
    after_stop: AfterStop,
    timer: Option<(Duration, TimerKind)>,
    tracker: RestartTracker,
    restarts: u32,
    last_exit: Option<LastExit>,
    error: Option<String>,
    status_text: Option<String>,
    /// The last run was killed at start_timeout (until a fresh start).
    last_timed_out: bool,
    /// State changes not yet reported as events (see `take_transitions`).
    transitions: Vec<(State, State)>,
}

impl Machine {
    pub fn new(name: &str, now: Duration) -> Self {
        Machine {
            name: name.to_string(),
            state: State::Stopped,
            changed_at: now,
            settings: None,
            masked: false,
            waiting: false,
            run: None,
            after_stop: AfterStop::Nothing,
            timer: None,
            tracker: RestartTracker::new(RestartConfig::default()),
            restarts: 0,
            last_exit: None,
            error: None,
            status_text: None,
            last_timed_out: false,
            transitions: Vec::new(),
        }
    }

    // ---- configuration events (the reconciler) ----

    /// A valid configuration is in force; the process is not touched. The
    /// restart history is kept: an edit alone is not a reset.
    pub fn configure(&mut self, settings: Settings, now: Duration) {
        self.tracker.reconfigure(settings.restart.clone());
        self.settings = Some(settings);
        self.masked = false;
        if matches!(self.state, State::Invalid | State::Masked) {
            self.set_state(State::Stopped, now);
        }
    }

    /// The file does not validate. A unit that never had a valid
    /// configuration is `invalid`; one that had keeps it and its state.
    pub fn invalid(&mut self, now: Duration) {
        if self.settings.is_none() && !self.masked {
            self.set_state(State::Invalid, now);
        }
    }

    pub fn mask(&mut self, now: Duration) -> Effects {
        self.masked = true;
        let effects = self.stop(now, AfterStop::Nothing);
        self.settings = None;
        if self.run.is_none() {
            self.set_state(State::Masked, now);
        }
        effects
    }

    /// A new or changed file of a unit that is not active: a fresh start
    /// (intent an operator persisted for the same file is honoured first,
    /// through `held`).
    pub fn file_start(&mut self, now: Duration) -> Effects {
        self.fresh_start(now);
        vec![Effect::Start]
    }

    /// The file of an active unit changed in a way that needs a new
    /// container: a fresh start once the current run is gone.
    pub fn file_changed(&mut self, now: Duration) -> Effects {
        self.restart(now)
    }

    /// The unit was disabled (`enabled: false`).
    pub fn disable(&mut self, now: Duration) -> Effects {
        self.stop(now, AfterStop::Nothing)
    }

    /// The file is gone: stop, then drop the unit and its leases.
    pub fn remove(&mut self, now: Duration) -> Effects {
        let mut effects = vec![Effect::ReleaseIntent, Effect::ReleaseLeases];
        effects.extend(self.stop(now, AfterStop::Forget));
        effects
    }

    /// A live update could (or could not) be written to the cgroup.
    pub fn live_update(&mut self, result: Result<(), String>) {
        self.error = result.err().map(|e| format!("resources not applied: {e}"));
    }

    /// Intent persisted for this very file: stay stopped or failed.
    pub fn held(&mut self, held: Held, now: Duration) {
        match held {
            Held::Stopped => self.set_state(State::Stopped, now),
            Held::Failed(error) => {
                self.error = Some(error);
                self.set_state(State::Failed, now);
            }
        }
    }

    // ---- operator events (the control socket) ----

    pub fn operator_start(&mut self, now: Duration) -> Effects {
        match &self.run {
            None => {
                self.fresh_start(now);
                vec![Effect::ReleaseIntent, Effect::Start]
            }
            // Started while stopping: start again once it is down.
            Some(run) if run.stop_requested && self.after_stop == AfterStop::Nothing => {
                self.fresh_start(now);
                self.after_stop = AfterStop::Start;
                vec![Effect::ReleaseIntent]
            }
            Some(_) => Vec::new(),
        }
    }

    pub fn operator_stop(&mut self, now: Duration) -> Effects {
        let mut effects = self.stop(now, AfterStop::Nothing);
        effects.push(Effect::HoldStopped);
        effects
    }

    pub fn operator_restart(&mut self, now: Duration) -> Effects {
        self.restart(now)
    }

    /// Clears `failed`; the unit starts again if it is enabled.
    pub fn reset_failed(&mut self, now: Duration) -> Effects {
        if self.state != State::Failed {
            return Vec::new();
        }
        self.fresh_start(now);
        let mut effects = vec![Effect::ReleaseIntent];
        if self.settings.as_ref().is_some_and(|s| s.enabled) {
            effects.push(Effect::Start);
        }
        effects
    }

    /// supd is shutting down: stop, and stay stopped.
    pub fn shutdown(&mut self, now: Duration) -> Effects {
        self.stop(now, AfterStop::Nothing)
    }

    // ---- container events ----

    /// Start if configured, idle and not masked. `unmet` says which
    /// dependencies are not up yet: then the unit waits in `starting`.
    pub fn start(&mut self, now: Duration, unmet: Option<String>) -> Effects {
        if self.run.is_some() || self.masked || self.settings.is_none() {
            return Vec::new();
        }
        self.timer = None;
        if let Some(why) = unmet {
            if !self.waiting {
                log::info!("{}: {why}", self.name);
            }
            self.waiting = true;
            self.error = None;
            self.set_state(State::Starting, now);
            return Vec::new();
        }
        self.waiting = false;
        self.after_stop = AfterStop::Nothing;
        self.tracker.record_start(now);
        vec![Effect::Launch]
    }

    /// The container exists; its setup runs.
    pub fn launched(&mut self, now: Duration) {
        self.run = Some(Run {
            started: now,
            stop_requested: false,
            timed_out: None,
            ready_early: false,
            healthy: false,
            failed_check: None,
        });
        self.status_text = None;
        let start_timeout = self.settings.as_ref().map(|s| s.start_timeout);
        self.timer = start_timeout.map(|t| (now.saturating_add(t), TimerKind::StartTimeout));
        self.set_state(State::Starting, now);
    }

    /// The host side could not create the container: a failed start.
    pub fn launch_failed(&mut self, now: Duration, error: SetupError) -> Effects {
        self.conclude(now, now, false, Some(error))
    }

    /// The setup report closed cleanly: the workload was executed.
    pub fn setup_finished(&mut self, now: Duration) -> Effects {
        if self.run.is_none() || self.state != State::Starting {
            return Vec::new();
        }
        self.error = None;
        self.set_state(State::Running, now);
        if self.run.as_ref().is_some_and(|r| r.ready_early) {
            self.set_state(State::Ready, now);
        }
        // A `notify` unit keeps its start timeout until READY=1.
        if self.is_up() {
            self.timer = None;
            if self.state == State::Ready {
                self.arm_watchdog(now);
            }
            return self.dependents_if_up();
        }
        Vec::new()
    }

    /// A message on the unit's notify socket.
    pub fn notified(&mut self, now: Duration, ready: bool, status: Option<String>) -> Effects {
        let Some(run) = self.run.as_mut() else {
            return Vec::new();
        };
        if status.is_some() {
            self.status_text = status;
        }
        if ready && self.state == State::Starting {
            run.ready_early = true;
            return Vec::new();
        }
        if ready && self.state == State::Running {
            self.timer = None;
            self.set_state(State::Ready, now);
            self.arm_watchdog(now);
            return self.dependents_if_up();
        }
        Vec::new()
    }

    /// The timer armed by the machine (see `deadline`) may have expired.
    pub fn timer_fired(&mut self, now: Duration) -> Effects {
        let Some((_, kind)) = self.timer.filter(|(at, _)| *at <= now) else {
            return Vec::new();
        };
        self.timer = None;
        match kind {
            TimerKind::Restart => vec![Effect::Start],
            TimerKind::Kill => {
                log::warn!(
                    "{}: stop timeout passed, killing every process of the container",
                    self.name
                );
                vec![Effect::KillAll]
            }
            TimerKind::StartTimeout => self.start_timed_out(),
            TimerKind::Watchdog => {
                let limit = self.settings.as_ref().and_then(|s| s.watchdog);
                let why = format!(
                    "no WATCHDOG=1 within {}",
                    crate::unit::quantity::Span(limit.unwrap_or_default())
                );
                self.check_failed(now, FailedCheck::Watchdog, why)
            }
        }
    }

    /// The container's init exited. `setup_error` is what its setup
    /// reported, if it failed before the workload ran.
    pub fn exited(
        &mut self,
        now: Duration,
        mut exit: LastExit,
        setup_error: Option<SetupError>,
    ) -> Effects {
        let Some(run) = self.run.take() else {
            return Vec::new();
        };
        exit.stopped = run.stop_requested;
        exit.failed_check = run.failed_check;
        self.last_exit = Some(exit);
        // The workload's last STATUS= described a run that is over.
        self.status_text = None;
        if run.stop_requested {
            self.timer = None;
            self.set_state(self.idle_state(), now);
            return self.after_stop();
        }
        self.conclude(now, run.started, true, setup_error.or(run.timed_out))
    }

    // ---- queries ----

    /// The state changes since the last call, oldest first.
    pub fn take_transitions(&mut self) -> Vec<(State, State)> {
        std::mem::take(&mut self.transitions)
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// How long ago (on the monotonic clock) the state last changed.
    pub fn in_state_for(&self, now: Duration) -> Duration {
        now.saturating_sub(self.changed_at)
    }

    pub fn is_masked(&self) -> bool {
        self.masked
    }

    pub fn is_waiting(&self) -> bool {
        self.waiting
    }

    /// A process exists or is scheduled to: something a stop must undo.
    pub fn is_active(&self) -> bool {
        self.run.is_some() || self.state == State::Backoff || self.waiting
    }

    /// Up as dependents and `start --wait` see it: running, and ready if
    /// the unit promised to say so.
    pub fn is_up(&self) -> bool {
        let notify = self.settings.as_ref().is_some_and(|s| s.notify);
        match self.state {
            State::Ready => true,
            State::Running => !notify,
            _ => false,
        }
    }

    /// When the machine wants `timer_fired` called.
    pub fn deadline(&self) -> Option<Duration> {
        self.timer.map(|(at, _)| at)
    }

    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    pub fn last_exit(&self) -> Option<&LastExit> {
        self.last_exit.as_ref()
    }

    /// Whether the last run was killed for not getting up within
    /// start_timeout.
    pub fn last_start_timed_out(&self) -> bool {
        self.last_timed_out
    }

    /// Why the last start or run failed (or a live update was refused).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    pub fn status_text(&self) -> Option<&str> {
        self.status_text.as_deref()
    }

    /// Whether a client waiting for `goal` can be answered.
    pub fn settled(&self, goal: Goal) -> bool {
        if self.after_stop != AfterStop::Nothing {
            return false;
        }
        match goal {
            Goal::Stopped => self.run.is_none() && self.state != State::Backoff,
            Goal::Running => {
                let unready = self.state == State::Running && !self.is_up();
                self.waiting
                    || !(unready || matches!(self.state, State::Starting | State::Stopping))
            }
        }
    }

    /// Once settled: whether the unit got where `goal` asked.
    pub fn reached(&self, goal: Goal) -> bool {
        match goal {
            Goal::Stopped => true,
            Goal::Running => {
                !self.waiting
                    && (self.is_up() || (self.state == State::Stopped && self.error.is_none()))
            }
        }
    }

    // ---- the transitions the events share ----

    fn set_state(&mut self, state: State, now: Duration) {
        if self.state != state {
            log::info!("{}: {} -> {}", self.name, self.state, state);
            self.transitions.push((self.state, state));
            self.state = state;
            self.changed_at = now;
        }
    }

    fn idle_state(&self) -> State {
        if self.masked {
            State::Masked
        } else {
            State::Stopped
        }
    }

    /// Forgets back-off, the start-limit history and the last failure.
    fn fresh_start(&mut self, now: Duration) {
        self.tracker.reset();
        self.error = None;
        self.last_timed_out = false;
        if self.run.is_none() {
            self.timer = None;
        }
        if matches!(self.state, State::Failed | State::Backoff) {
            self.set_state(State::Stopped, now);
        }
    }

    fn restart(&mut self, now: Duration) -> Effects {
        self.fresh_start(now);
        let mut effects = vec![Effect::ReleaseIntent];
        if self.run.is_some() {
            effects.extend(self.stop(now, AfterStop::Start));
        } else {
            self.waiting = false;
            effects.push(Effect::Start);
        }
        effects
    }

    /// The stop signal now, SIGKILL after stop.timeout; `then` runs once
    /// the container is gone (at once if nothing runs).
    fn stop(&mut self, now: Duration, then: AfterStop) -> Effects {
        if self.waiting {
            self.waiting = false;
            self.error = None;
            self.set_state(self.idle_state(), now);
        }
        if self.state == State::Backoff {
            self.timer = None;
            self.set_state(self.idle_state(), now);
        }
        // A removed file stays removed, whatever is asked meanwhile.
        if self.after_stop != AfterStop::Forget {
            self.after_stop = then;
        }
        let stop = self
            .settings
            .as_ref()
            .map(|s| (s.stop_signal, s.stop_timeout));
        let Some(run) = self.run.as_mut() else {
            return self.after_stop();
        };
        if run.stop_requested {
            return Vec::new();
        }
        run.stop_requested = true;
        self.set_state(State::Stopping, now);
        let Some((signal, timeout)) = stop else {
            return vec![Effect::KillAll];
        };
        self.timer = Some((now.saturating_add(timeout), TimerKind::Kill));
        vec![Effect::Signal(signal)]
    }

    fn after_stop(&mut self) -> Effects {
        match std::mem::replace(&mut self.after_stop, AfterStop::Nothing) {
            AfterStop::Nothing => Vec::new(),
            AfterStop::Start => {
                self.timer = None;
                vec![Effect::Start]
            }
            AfterStop::Forget => vec![Effect::Forget],
        }
    }

    fn start_timed_out(&mut self) -> Effects {
        let waiting_for = if self.state == State::Starting {
            "container setup did not finish"
        } else {
            "the workload did not send READY=1"
        };
        let timeout = self
            .settings
            .as_ref()
            .map_or(0.0, |s| s.start_timeout.as_secs_f64());
        let Some(run) = self.run.as_mut() else {
            return Vec::new();
        };
        log::error!("{}: {waiting_for} within {timeout}s, killing it", self.name);
        run.timed_out = Some(SetupError::message(
            "start_timeout",
            None::<&str>,
            format!("{waiting_for} within {timeout}s"),
        ));
        vec![Effect::KillAll]
    }

    /// Applies the restart policy to a run that ended by itself (`ran`) or
    /// never got going.
    fn conclude(
        &mut self,
        now: Duration,
        started: Duration,
        ran: bool,
        setup_error: Option<SetupError>,
    ) -> Effects {
        self.last_timed_out = setup_error
            .as_ref()
            .is_some_and(|e| e.step == "start_timeout");
        let clean = ran
            && setup_error.is_none()
            && self
                .last_exit
                .as_ref()
                .is_some_and(|e| e.code == Some(0) && e.failed_check.is_none());
        if let Some(error) = &setup_error {
            log::error!("{}: start failed: {error}", self.name);
            self.error = Some(format!("start failed: {error}"));
            if !ran {
                self.last_exit = None;
            }
        }
        let mut effects = Vec::new();
        match self.tracker.on_exit(now, started, clean) {
            Decision::RestartAfter(delay) => {
                log::info!(
                    "{}: restarting in {}",
                    self.name,
                    crate::unit::quantity::Span(delay)
                );
                self.timer = Some((now.saturating_add(delay), TimerKind::Restart));
                self.restarts = self.restarts.saturating_add(1);
                self.set_state(State::Backoff, now);
            }
            Decision::Stop if clean => self.set_state(State::Stopped, now),
            Decision::Stop => self.fail(now, None, &mut effects),
            Decision::Fail(why) => {
                log::error!("{}: {why}", self.name);
                let error = match setup_error {
                    Some(error) => format!("{why}; last start failed: {error}"),
                    None => why,
                };
                self.fail(now, Some(error), &mut effects);
            }
        }
        effects.extend(self.after_stop());
        effects
    }

    fn fail(&mut self, now: Duration, error: Option<String>, effects: &mut Effects) {
        if error.is_some() {
            self.error = error;
        }
        self.set_state(State::Failed, now);
        let error = self.error.clone().unwrap_or_else(|| "failed".into());
        effects.push(Effect::HoldFailed(error));
    }
}
