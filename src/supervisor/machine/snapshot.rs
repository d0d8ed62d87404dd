//! The machine as a restarted supd finds it: everything but the settings,
//! which come from the unit the record keeps beside it.

use super::{AfterStop, Machine, Run, Settings, TimerKind};
use crate::control::protocol::{LastExit, State};
use crate::supervisor::restart::RestartTracker;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    state: State,
    changed_at: Duration,
    waiting: bool,
    /// When the run began and whether supd had asked it to stop.
    run: Option<(Duration, bool)>,
    after_stop: AfterStop,
    timer: Option<(Duration, TimerKind)>,
    consecutive_failures: u32,
    recent_starts: Vec<Duration>,
    restarts: u32,
    last_exit: Option<LastExit>,
    error: Option<String>,
    status_text: Option<String>,
}

impl Snapshot {
    /// Whether a run was past its setup: a container still being set up
    /// cannot be adopted (its setup report went with the old supd).
    pub fn past_setup(&self) -> bool {
        self.run.is_some() && self.state != State::Starting
    }
}

impl Machine {
    pub fn snapshot(&self) -> Snapshot {
        let (consecutive_failures, recent_starts) = self.tracker.history();
        Snapshot {
            state: self.state,
            changed_at: self.changed_at,
            waiting: self.waiting,
            run: self.run.as_ref().map(|r| (r.started, r.stop_requested)),
            after_stop: self.after_stop,
            timer: self.timer,
            consecutive_failures,
            recent_starts,
            restarts: self.restarts,
            last_exit: self.last_exit.clone(),
            error: self.error.clone(),
            status_text: self.status_text.clone(),
        }
    }

    /// The machine an earlier supd left, for a container that is adopted
    /// (`with_run`) or that exited while supd was away.
    pub fn restore(name: &str, snapshot: Snapshot, settings: Settings, with_run: bool) -> Self {
        let tracker = RestartTracker::with_history(
            settings.restart.clone(),
            snapshot.consecutive_failures,
            snapshot.recent_starts,
        );
        let run = snapshot
            .run
            .filter(|_| with_run)
            .map(|(started, stop_requested)| Run {
                started,
                stop_requested,
                timed_out: None,
                ready_early: false,
                // A supd that adopts the container probes it afresh.
                healthy: false,
                failed_check: None,
            });
        Machine {
            name: name.to_string(),
            state: snapshot.state,
            changed_at: snapshot.changed_at,
            settings: Some(settings),
            masked: false,
            waiting: snapshot.waiting,
            run,
            after_stop: snapshot.after_stop,
            timer: snapshot.timer,
            tracker,
            restarts: snapshot.restarts,
            last_exit: snapshot.last_exit,
            error: snapshot.error,
            status_text: snapshot.status_text,
            last_timed_out: false,
            transitions: Vec::new(),
        }
    }
}
