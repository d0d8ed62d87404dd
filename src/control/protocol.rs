//! JSON lines over a Unix socket: one request object per line, one response
//! per line, each carrying the protocol version.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub const PROTOCOL_VERSION: u32 = 1;
/// Longest request line the daemon reads before answering with an error.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub v: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Command {
    /// Status of the named units, or of all.
    Status {
        #[serde(default)]
        names: Vec<String>,
    },
    /// With `wait`, the answer comes once every unit settled.
    Start {
        names: Vec<String>,
        #[serde(default)]
        wait: bool,
    },
    Stop {
        names: Vec<String>,
        #[serde(default)]
        wait: bool,
    },
    Restart {
        names: Vec<String>,
        #[serde(default)]
        wait: bool,
    },
    ResetFailed {
        #[serde(default)]
        names: Vec<String>,
    },
    /// Re-read the unit directories now.
    Reload,
    /// Where a unit's log files are, oldest first, or that it logs to the
    /// journal.
    Logs {
        name: String,
    },
    /// The effective unit (after drop-ins) and the files it came from.
    Show {
        name: String,
    },
    /// A signal to the named units' workloads (their init passes it on).
    Kill {
        names: Vec<String>,
        signal: i32,
    },
    /// What `supctl exec` needs to enter a running container.
    Exec {
        name: String,
    },
    /// Re-execute the supd binary at its path in the same process, which
    /// then adopts every container (an upgrade without downtime).
    DaemonReexec,
    /// Import an image from a path on supd's host; progress lines come
    /// before the answer.
    ImageImport {
        path: PathBuf,
        /// The tag to give it (else the name the image carries).
        #[serde(default)]
        name: Option<String>,
        /// Which image of a layout holding several (its ref name).
        #[serde(default)]
        reference: Option<String>,
    },
    ImageList,
    ImageInspect {
        name: String,
    },
    ImageRm {
        name: String,
    },
    ImagePrune,
    /// A subscription: the events since `since` (RFC 3339) that supd
    /// still holds, then each new one as it happens, of the named units
    /// (or all, and those of no unit).
    Events {
        #[serde(default)]
        since: Option<String>,
        #[serde(default)]
        names: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u32,
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Body {
    /// The first answer to `events`; events follow, one per line.
    Subscribed,
    Event {
        event: Event,
    },
    Status {
        units: Vec<UnitStatus>,
    },
    /// A command was carried out; `failed` lists units that did not reach
    /// the asked-for state, with why.
    Done {
        message: String,
        #[serde(default)]
        failed: Vec<UnitFailure>,
    },
    Logs {
        files: Vec<PathBuf>,
        /// The unit logs to the journal: read it with journalctl.
        #[serde(default)]
        journal: bool,
    },
    Show {
        /// The merged YAML in force with the defaults filled in; None when
        /// masked.
        yaml: Option<String>,
        /// The unit file, then its drop-ins in merge order.
        files: Vec<PathBuf>,
        masked: bool,
        /// The current validation error, if the files are invalid now.
        error: Option<String>,
        /// `image:` units: the reference and the digest it resolved to.
        #[serde(default)]
        image: Option<String>,
    },
    /// A running container, for `supctl exec`.
    Exec {
        /// The host PID of the container's PID 1.
        pid: i32,
        /// The configuration it runs with.
        unit: Box<crate::unit::Unit>,
        /// Its cgroup directories, to join.
        cgroups: Vec<PathBuf>,
    },
    /// How far an import is; the final answer follows.
    ImportProgress {
        done: u64,
        total: u64,
        layer: usize,
        layers: usize,
    },
    Images {
        images: Vec<ImageSummary>,
    },
    /// `image inspect`: the image record with its tags and users.
    ImageInspect {
        image: serde_json::Value,
    },
    Error {
        message: String,
    },
}

/// One image in `supctl image list --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// The tags naming it (none: kept as a tag's previous image, or
    /// left for `image prune`).
    pub tags: Vec<String>,
    pub digest: String,
    /// Bytes its layers hold on disk (layers shared with other images
    /// count in each).
    pub size: u64,
    pub created: Option<String>,
    pub used_by: Vec<String>,
    /// Tags whose rollback target it is.
    #[serde(default)]
    pub previous_of: Vec<String>,
}

impl Response {
    pub fn new(body: Body) -> Self {
        Response {
            v: PROTOCOL_VERSION,
            body,
        }
    }

    pub fn error(message: impl Into<String>) -> Self {
        Response::new(Body::Error {
            message: message.into(),
        })
    }
}

/// A unit's state as DESIGN section 6 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Starting,
    Running,
    /// A `notify` unit whose workload sent READY=1.
    Ready,
    Stopping,
    Stopped,
    Backoff,
    Failed,
    Invalid,
    Masked,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Ready => "ready",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Backoff => "backoff",
            State::Failed => "failed",
            State::Invalid => "invalid",
            State::Masked => "masked",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitFailure {
    pub name: String,
    pub state: State,
    pub error: Option<String>,
}

/// One unit in `supctl status --json`, exactly as DESIGN section 6.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    pub state: State,
    pub pid: Option<i32>,
    pub since: Option<String>,
    pub restarts: u32,
    pub last_exit: Option<LastExit>,
    pub oom_kills: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
    pub working_set_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// The container's addresses (bridge, macvlan, ipvlan modes), IPv4
    /// first.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Published ports: `[HOST_IP:]HOST_PORT->CONTAINER_PORT/PROTOCOL`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Units with `health:` while they run.
    #[serde(default)]
    pub health: Option<HealthStatus>,
    /// The workload's last STATUS= (units with `notify: true`).
    #[serde(default)]
    pub status_text: Option<String>,
    /// `image:` units: the image and the digest in force.
    #[serde(default)]
    pub image: Option<String>,
    /// Set while a unit runs an earlier image because the new one never
    /// got running: "rolled back from sha256:...: why".
    #[serde(default)]
    pub rollback: Option<String>,
    /// Units with `resources.storage`.
    #[serde(default)]
    pub storage: Option<StorageStatus>,
    /// Output records the journal did not take (it was not reading) and
    /// supd dropped rather than wait.
    #[serde(default)]
    pub log_dropped: Option<u64>,
    pub error: Option<String>,
}

/// Something that happened, for `supctl events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339 UTC, nanoseconds.
    pub time: String,
    /// None for supd's own (a reconcile of the unit directories).
    pub unit: Option<String>,
    pub kind: EventKind,
    /// What an operator reads: `running -> backoff`, `exited with code 1`.
    pub message: String,
    /// `state`: the state before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<State>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<State>,
    /// `exit`: how the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<LastExit>,
    /// `health`: the new health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A state change of the unit.
    State,
    /// The container exited (code, signal, OOM kill).
    Exit,
    /// A restart was scheduled, with its reason.
    Restart,
    Health,
    /// A change of the unit files applied to the unit (started, restarted,
    /// updated live, stopped, removed, masked), or a reconcile of them all.
    Reconcile,
    /// The unit file is invalid.
    Invalid,
    /// The writable layer filled up, or has room again.
    Storage,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::State => "state",
            EventKind::Exit => "exit",
            EventKind::Restart => "restart",
            EventKind::Health => "health",
            EventKind::Reconcile => "reconcile",
            EventKind::Invalid => "invalid",
            EventKind::Storage => "storage",
        }
    }
}

/// The writable layer of a unit with `resources.storage`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageStatus {
    /// `project-quota`, `image` (a loop-mounted ext4 image) or `tmpfs`.
    pub mechanism: String,
    pub limit_bytes: u64,
    /// While the container runs.
    pub used_bytes: Option<u64>,
    pub available_bytes: Option<u64>,
    /// Less than 1% left: the container's writes fail with ENOSPC.
    pub full: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub oom_killed: bool,
    /// The run ended because supd stopped it (`supctl stop` or `restart`,
    /// a changed file, shutdown): not a failure of the workload.
    #[serde(default)]
    pub stopped: bool,
    /// supd ended the run because a check failed: not healthy for
    /// `retries` probes, or no WATCHDOG=1 in time.
    #[serde(default)]
    pub failed_check: Option<FailedCheck>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No probe passed yet.
    Starting,
    Healthy,
    /// `retries` probes in a row failed.
    Unhealthy,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    pub state: Health,
    /// Consecutive failed probes.
    pub failures: u32,
    /// RFC 3339 UTC.
    pub last_probe: Option<String>,
    /// "exit 0", "HTTP 503", "connect: Connection refused", "timed out after 5s".
    pub last_result: Option<String>,
    /// The last 4 KiB an exec probe printed (an http probe: its status line).
    pub output: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailedCheck {
    Unhealthy,
    Watchdog,
}

pub use super::clock::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let request: Request =
            serde_json::from_str(r#"{"v":1,"cmd":"stop","names":["a"],"wait":true}"#).unwrap();
        assert_eq!(
            request.command,
            Command::Stop {
                names: vec!["a".into()],
                wait: true
            }
        );
        let text = serde_json::to_string(&Response::error("nope")).unwrap();
        assert_eq!(text, r#"{"v":1,"type":"error","message":"nope"}"#);
        assert!(serde_json::from_str::<Request>(r#"{"v":1,"cmd":"explode"}"#).is_err());
    }
}
