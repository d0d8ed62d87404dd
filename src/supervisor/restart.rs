//! The restart policy as a pure state machine: given when a run started and
//! how it ended, decide whether to restart, after what back-off, or to give up.
//! Time is a monotonic `Duration` supplied by the caller, so tests use a fake
//! clock.

use crate::unit::{RestartConfig, RestartPolicy};
use std::collections::VecDeque;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start again once the back-off has passed.
    RestartAfter(Duration),
    /// The run ended and the policy does not restart it.
    Stop,
    /// Give up: the unit goes to `failed` until an operator intervenes.
    Fail(String),
}

#[derive(Clone, Debug)]
pub struct RestartTracker {
    config: RestartConfig,
    consecutive_failures: u32,
    recent_starts: VecDeque<Duration>,
}

impl RestartTracker {
    pub fn new(config: RestartConfig) -> Self {
        RestartTracker {
            config,
            consecutive_failures: 0,
            recent_starts: VecDeque::new(),
        }
    }

    /// A new configuration keeps the history: an edit is not a reset.
    pub fn reconfigure(&mut self, config: RestartConfig) {
        self.config = config;
    }

    /// An operator's restart or reset-failed clears back-off and start limit.
    pub fn reset(&mut self) {
        self.consecutive_failures = 0;
        self.recent_starts.clear();
    }

    /// What a restarted supd carries over: consecutive failures and the
    /// starts in the start-limit window (monotonic times, valid across
    /// processes until the next boot).
    pub fn history(&self) -> (u32, Vec<Duration>) {
        (
            self.consecutive_failures,
            self.recent_starts.iter().copied().collect(),
        )
    }

    pub fn with_history(config: RestartConfig, failures: u32, starts: Vec<Duration>) -> Self {
        RestartTracker {
            config,
            consecutive_failures: failures,
            recent_starts: starts.into(),
        }
    }

    pub fn record_start(&mut self, now: Duration) {
        self.recent_starts.push_back(now);
    }

    /// A run that started at `started` ended at `now`; `success` is a clean
    /// exit (code 0). A failed setup is an unsuccessful run of zero length.
    pub fn on_exit(&mut self, now: Duration, started: Duration, success: bool) -> Decision {
        if now.saturating_sub(started) >= self.config.reset_after {
            self.consecutive_failures = 0;
        }
        match (self.config.policy, success) {
            (RestartPolicy::Never, true) | (RestartPolicy::OnFailure, true) => {
                return Decision::Stop
            }
            (RestartPolicy::Never, false) => {
                return Decision::Fail("exited with an error and restart.policy is never".into())
            }
            _ => {}
        }
        let window_start = now.saturating_sub(self.config.start_limit_interval);
        while self
            .recent_starts
            .front()
            .is_some_and(|&start| start < window_start)
        {
            self.recent_starts.pop_front();
        }
        if self.recent_starts.len() >= self.config.start_limit_burst as usize {
            return Decision::Fail(format!(
                "start limit hit: {} starts within {}",
                self.recent_starts.len(),
                crate::unit::quantity::Span(self.config.start_limit_interval)
            ));
        }
        let delay = self.backoff();
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        Decision::RestartAfter(delay)
    }

    fn backoff(&self) -> Duration {
        let factor = 1u32
            .checked_shl(self.consecutive_failures)
            .unwrap_or(u32::MAX);
        self.config
            .delay
            .checked_mul(factor)
            .unwrap_or(self.config.max_delay)
            .min(self.config.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    fn config(policy: RestartPolicy) -> RestartConfig {
        RestartConfig {
            policy,
            delay: s(1),
            max_delay: s(8),
            reset_after: s(60),
            start_limit_burst: 100,
            start_limit_interval: s(10),
        }
    }

    /// Runs a crash loop on a fake clock; each run lasts `run` seconds.
    fn crash_loop(tracker: &mut RestartTracker, runs: usize, run: u64) -> Vec<Decision> {
        let mut now = s(1000);
        let mut out = Vec::new();
        for _ in 0..runs {
            tracker.record_start(now);
            let started = now;
            now += s(run);
            let decision = tracker.on_exit(now, started, false);
            if let Decision::RestartAfter(d) = &decision {
                now += *d;
            }
            out.push(decision);
        }
        out
    }

    #[test]
    fn backoff_doubles_up_to_max_delay() {
        let mut tracker = RestartTracker::new(config(RestartPolicy::Always));
        let delays: Vec<Decision> = crash_loop(&mut tracker, 6, 0);
        let want: Vec<Decision> = [1, 2, 4, 8, 8, 8]
            .iter()
            .map(|&d| Decision::RestartAfter(s(d)))
            .collect();
        assert_eq!(delays, want);
    }

    #[test]
    fn long_run_resets_backoff() {
        let mut tracker = RestartTracker::new(config(RestartPolicy::Always));
        crash_loop(&mut tracker, 4, 0);
        let decisions = crash_loop(&mut tracker, 1, 61);
        assert_eq!(decisions, vec![Decision::RestartAfter(s(1))]);
    }

    #[test]
    fn policies_decide_clean_and_failed_exits() {
        let cases = [
            (RestartPolicy::Always, true, true),
            (RestartPolicy::Always, false, true),
            (RestartPolicy::OnFailure, true, false),
            (RestartPolicy::OnFailure, false, true),
            (RestartPolicy::Never, true, false),
            (RestartPolicy::Never, false, false),
        ];
        for (policy, success, restarts) in cases {
            let mut tracker = RestartTracker::new(config(policy));
            tracker.record_start(s(0));
            let decision = tracker.on_exit(s(1), s(0), success);
            assert_eq!(
                matches!(decision, Decision::RestartAfter(_)),
                restarts,
                "{policy:?} success={success}: {decision:?}"
            );
        }
        let mut never = RestartTracker::new(config(RestartPolicy::Never));
        assert!(matches!(
            never.on_exit(s(1), s(0), false),
            Decision::Fail(_)
        ));
        assert_eq!(never.on_exit(s(1), s(0), true), Decision::Stop);
    }

    #[test]
    fn start_limit_turns_crash_loop_into_failed_and_reset_clears_it() {
        let mut cfg = config(RestartPolicy::Always);
        cfg.start_limit_burst = 3;
        cfg.start_limit_interval = s(60);
        let mut tracker = RestartTracker::new(cfg);
        let decisions = crash_loop(&mut tracker, 3, 0);
        assert!(matches!(decisions[0], Decision::RestartAfter(_)));
        assert!(matches!(decisions[1], Decision::RestartAfter(_)));
        match &decisions[2] {
            Decision::Fail(why) => assert_eq!(why, "start limit hit: 3 starts within 1m"),
            other => panic!("{other:?}"),
        }
        tracker.reset();
        assert_eq!(
            crash_loop(&mut tracker, 1, 0),
            vec![Decision::RestartAfter(s(1))]
        );
    }

    #[test]
    fn starts_outside_the_interval_do_not_count() {
        let mut cfg = config(RestartPolicy::Always);
        cfg.start_limit_burst = 2;
        cfg.start_limit_interval = s(5);
        let mut tracker = RestartTracker::new(cfg);
        // Each run lasts 10 s, longer than the interval: never hits the limit.
        let decisions = crash_loop(&mut tracker, 10, 10);
        assert!(decisions
            .iter()
            .all(|d| matches!(d, Decision::RestartAfter(_))));
    }
}
