//! A run's health from its probes' results: consecutive failures against
//! `retries`, the start period, and when the next probe is due. Pure.

use crate::control::protocol::Health;
use crate::unit::health::HealthCheck;
use std::time::Duration;

/// The first probe comes this soon after the start (or after `interval`
/// if that is shorter), so that dependents need not wait a whole interval.
pub const FIRST_PROBE: Duration = Duration::from_secs(1);

/// The most of a probe's output that is kept.
pub const OUTPUT_LIMIT: usize = 4096;

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub passed: bool,
    /// "exit 0", "HTTP 503", "connection refused", "timed out after 5s".
    pub detail: String,
    /// The last OUTPUT_LIMIT bytes of an exec probe's output.
    pub output: String,
}

/// What a result changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    None,
    BecameHealthy,
    BecameUnhealthy,
}

#[derive(Clone, Debug)]
pub struct Tracker {
    check: HealthCheck,
    started: Duration,
    health: Health,
    failures: u32,
    next_at: Duration,
    last: Option<(u64, Outcome)>,
}

impl Tracker {
    pub fn new(check: HealthCheck, now: Duration) -> Self {
        let first = check.interval.min(FIRST_PROBE);
        Tracker {
            check,
            started: now,
            health: Health::Starting,
            failures: 0,
            next_at: now.saturating_add(first),
            last: None,
        }
    }

    pub fn check(&self) -> &HealthCheck {
        &self.check
    }

    pub fn health(&self) -> Health {
        self.health
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// (wall-clock seconds, outcome) of the last probe.
    pub fn last(&self) -> Option<&(u64, Outcome)> {
        self.last.as_ref()
    }

    /// When the next probe should start.
    pub fn next_probe_at(&self) -> Duration {
        self.next_at
    }

    /// No probe now (the unit is not running yet, or stopping): the next
    /// comes an interval later.
    pub fn skip(&mut self, now: Duration) {
        self.next_at = now.saturating_add(self.check.interval);
    }

    /// A probe ended at `now` (`wall`: seconds since the epoch).
    pub fn record(&mut self, now: Duration, wall: u64, outcome: Outcome) -> Change {
        self.next_at = now.saturating_add(self.check.interval);
        let passed = outcome.passed;
        self.last = Some((wall, outcome));
        if passed {
            self.failures = 0;
            if self.health != Health::Healthy {
                self.health = Health::Healthy;
                return Change::BecameHealthy;
            }
            return Change::None;
        }
        // Docker's start period: failures while the workload is still
        // coming up do not count, unless it was healthy already.
        let starting = now < self.started.saturating_add(self.check.start_period);
        if starting && self.health == Health::Starting {
            return Change::None;
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.check.retries && self.health != Health::Unhealthy {
            self.health = Health::Unhealthy;
            return Change::BecameUnhealthy;
        }
        Change::None
    }
}

/// Keeps the last `OUTPUT_LIMIT` bytes of what a probe printed.
pub fn keep_tail(buffer: &mut Vec<u8>, more: &[u8]) {
    buffer.extend_from_slice(more);
    if buffer.len() > OUTPUT_LIMIT {
        let cut = buffer.len().saturating_sub(OUTPUT_LIMIT);
        buffer.drain(..cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit::health::{OnUnhealthy, Probe};

    fn check(retries: u32, start_period: u64) -> HealthCheck {
        HealthCheck {
            probe: Probe::Tcp { port: 80 },
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            retries,
            start_period: Duration::from_secs(start_period),
            on_unhealthy: OnUnhealthy::Restart,
        }
    }

    fn outcome(passed: bool) -> Outcome {
        Outcome {
            passed,
            detail: if passed { "exit 0" } else { "exit 1" }.into(),
            output: String::new(),
        }
    }

    const T0: Duration = Duration::from_secs(100);

    #[test]
    fn healthy_after_a_pass_unhealthy_after_retries_failures() {
        let mut tracker = Tracker::new(check(3, 0), T0);
        assert_eq!(tracker.health(), Health::Starting);
        assert_eq!(tracker.next_probe_at(), T0 + FIRST_PROBE);
        let s = Duration::from_secs;
        assert_eq!(
            tracker.record(T0 + s(1), 1, outcome(true)),
            Change::BecameHealthy
        );
        assert_eq!(tracker.next_probe_at(), T0 + s(3), "then every interval");
        assert_eq!(tracker.record(T0 + s(3), 3, outcome(false)), Change::None);
        assert_eq!(tracker.record(T0 + s(5), 5, outcome(false)), Change::None);
        assert_eq!(tracker.failures(), 2);
        assert_eq!(
            tracker.record(T0 + s(7), 7, outcome(false)),
            Change::BecameUnhealthy
        );
        assert_eq!(
            tracker.record(T0 + s(9), 9, outcome(false)),
            Change::None,
            "once"
        );
        assert_eq!(tracker.last().unwrap().0, 9);
        assert_eq!(
            tracker.record(T0 + s(11), 11, outcome(true)),
            Change::BecameHealthy
        );
        assert_eq!(tracker.failures(), 0);
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let mut tracker = Tracker::new(check(1, 10), T0);
        let s = Duration::from_secs;
        assert_eq!(tracker.record(T0 + s(1), 1, outcome(false)), Change::None);
        assert_eq!(tracker.record(T0 + s(9), 9, outcome(false)), Change::None);
        assert_eq!(tracker.failures(), 0);
        assert_eq!(
            tracker.record(T0 + s(10), 10, outcome(false)),
            Change::BecameUnhealthy
        );
        // Healthy within the period: later failures count at once.
        let mut tracker = Tracker::new(check(1, 10), T0);
        tracker.record(T0 + s(1), 1, outcome(true));
        assert_eq!(
            tracker.record(T0 + s(2), 2, outcome(false)),
            Change::BecameUnhealthy
        );
    }

    #[test]
    fn output_keeps_its_tail() {
        let mut buffer = Vec::new();
        keep_tail(&mut buffer, &vec![b'a'; OUTPUT_LIMIT]);
        keep_tail(&mut buffer, b"end");
        assert_eq!(buffer.len(), OUTPUT_LIMIT);
        assert!(buffer.ends_with(b"aend"));
    }
}
