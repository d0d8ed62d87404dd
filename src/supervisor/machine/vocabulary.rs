//! What goes in and out of the state machine: the settings it reads from a
//! unit, the effects it asks for, its timers and the goals clients wait for.

use crate::unit::{RestartConfig, Unit};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the machine needs from the unit in force.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub enabled: bool,
    pub notify: bool,
    pub start_timeout: Duration,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub restart: RestartConfig,
    /// notify units: the longest allowed gap between WATCHDOG=1 pings.
    pub watchdog: Option<Duration>,
    /// A health check gates dependents: they start once it passed.
    pub health_checked: bool,
}

impl Settings {
    pub fn of(unit: &Unit) -> Self {
        Settings {
            enabled: unit.enabled,
            notify: unit.notify,
            start_timeout: unit.start_timeout,
            stop_signal: unit.stop.signal,
            stop_timeout: unit.stop.timeout,
            restart: unit.restart.clone(),
            watchdog: unit.watchdog,
            health_checked: unit.health.is_some(),
        }
    }
}

/// What the supervisor must do after an event, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Dependencies are met: create the container now and report back
    /// with `launched` or `launch_failed`.
    Launch,
    /// Start again: check the dependencies and call `start`.
    Start,
    /// Send this signal to the container's init.
    Signal(i32),
    /// SIGKILL the container's init and everything in its cgroup.
    KillAll,
    /// The unit is up: start the units that wait for it.
    StartDependents,
    /// Persist that an operator stopped the unit.
    HoldStopped,
    /// Persist that the unit failed, with why.
    HoldFailed(String),
    /// Forget persisted intent: an operator or a file change overrode it.
    ReleaseIntent,
    /// The unit file is gone: release its address and id range leases.
    ReleaseLeases,
    /// The unit file is gone and nothing runs: drop the unit.
    Forget,
}

pub type Effects = Vec<Effect>;

/// What to do once the current run has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AfterStop {
    /// Stay stopped (or follow the restart policy if nobody asked to stop).
    Nothing,
    /// Start again at once (a restart or a changed unit).
    Start,
    /// The unit file is gone: drop the unit.
    Forget,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimerKind {
    /// Back-off is over: start again.
    Restart,
    /// The stop timeout passed: SIGKILL the container.
    Kill,
    /// Setup (or, with `notify`, READY=1) did not come within
    /// start_timeout: kill and fail it.
    StartTimeout,
    /// No WATCHDOG=1 within `watchdog`: restart it as a failure.
    Watchdog,
}

/// What a `start --wait` or `stop --wait` client waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goal {
    Running,
    Stopped,
}

/// Intent an earlier supd (or this one) persisted for the same file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    Stopped,
    Failed(String),
}
