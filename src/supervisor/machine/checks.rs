//! The machine's health-check and watchdog events: a run that fails a
//! check is stopped and its end counts as a failure, so the restart
//! policy, back-off and start limit treat it like a crash.

use super::{Effect, Effects, Machine, TimerKind};
use crate::control::protocol::{FailedCheck, State};
use std::time::Duration;

impl Machine {
    /// WATCHDOG=1: the workload is alive; the watchdog starts over.
    pub fn watchdog_ping(&mut self, now: Duration) {
        if self.state == State::Ready {
            self.arm_watchdog(now);
        }
    }

    /// WATCHDOG=trigger: the workload asks to be restarted as failed.
    pub fn watchdog_trigger(&mut self, now: Duration) -> Effects {
        self.check_failed(
            now,
            FailedCheck::Watchdog,
            "the workload sent WATCHDOG=trigger".into(),
        )
    }

    /// A health probe passed: dependents may start now.
    pub fn health_passed(&mut self) -> Effects {
        match self.run.as_mut() {
            Some(run) if !run.healthy => {
                run.healthy = true;
                self.dependents_if_up()
            }
            _ => Vec::new(),
        }
    }

    /// The health check failed `retries` times in a row. With
    /// `on_unhealthy: restart` the caller follows with `check_failed`.
    pub fn health_lost(&mut self) {
        if let Some(run) = self.run.as_mut() {
            run.healthy = false;
        }
    }

    /// A check failed (unhealthy with `on_unhealthy: restart`, or the
    /// watchdog): stop the run gracefully; its end is a failure that the
    /// restart policy, back-off and start limit handle like any other.
    pub fn check_failed(&mut self, now: Duration, check: FailedCheck, why: String) -> Effects {
        let stop = self
            .settings
            .as_ref()
            .map(|s| (s.stop_signal, s.stop_timeout));
        let Some(run) = self.run.as_mut() else {
            return Vec::new();
        };
        if run.stop_requested || run.failed_check.is_some() {
            return Vec::new();
        }
        run.failed_check = Some(check);
        log::warn!("{}: {why}: restarting it", self.name);
        self.error = Some(why);
        self.set_state(State::Stopping, now);
        let Some((signal, timeout)) = stop else {
            return vec![Effect::KillAll];
        };
        self.timer = Some((now.saturating_add(timeout), TimerKind::Kill));
        vec![Effect::Signal(signal)]
    }

    /// Up as its dependents need it: up, and healthy if it has a check.
    pub fn is_up_for_dependents(&self) -> bool {
        let checked = self.settings.as_ref().is_some_and(|s| s.health_checked);
        self.is_up() && (!checked || self.run.as_ref().is_some_and(|r| r.healthy))
    }

    pub(super) fn arm_watchdog(&mut self, now: Duration) {
        if let Some(limit) = self.settings.as_ref().and_then(|s| s.watchdog) {
            self.timer = Some((now.saturating_add(limit), TimerKind::Watchdog));
        }
    }

    pub(super) fn dependents_if_up(&self) -> Effects {
        if self.is_up_for_dependents() {
            vec![Effect::StartDependents]
        } else {
            Vec::new()
        }
    }
}
