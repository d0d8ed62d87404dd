//! The supervisor's side of `resources.storage`: the layer is made ready
//! before each start, released after each run, removed with the unit,
//! resized live, and watched for filling up. The watch costs no wake-ups:
//! the layer is looked at when the container writes output (a workload
//! that meets ENOSPC usually says so), when it exits and at each status.

use super::entry::Entry;
use super::Supervisor;
use crate::control::protocol::StorageStatus;
use crate::runtime::storage::{self, Prepared, StorageError};
use crate::unit::Unit;
use std::path::Path;
use std::time::Duration;

/// Output comes often: the layer is looked at no more than this often on
/// its account.
const OUTPUT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct StorageWatch {
    full: bool,
    checked_at: Option<Duration>,
}

/// Host side of a start: the layer's directories, on their mechanism.
pub(super) fn prepare(
    name: &str,
    unit: &Unit,
    state_dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<(), StorageError> {
    let Some(Prepared {
        mechanism,
        not_shrunk,
    }) = storage::prepare(unit, state_dir, owner)?
    else {
        return Ok(());
    };
    if let Some(why) = not_shrunk {
        log::warn!("{name}: {why}");
    }
    log::debug!("{name}: writable layer limited by {}", mechanism.describe());
    Ok(())
}

/// After a run, or a start that failed after `prepare`.
pub(super) fn release(name: &str, state_dir: &Path) {
    if let Err(e) = storage::release(state_dir) {
        log::warn!("{name}: {e}");
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1}{unit}")
}

impl Entry {
    /// The layer's figures for `supctl status`; notes a change of fullness.
    pub fn storage_status(&mut self, now: Duration) -> Option<StorageStatus> {
        let unit = self.unit.as_ref()?;
        let limit = unit.resources.storage_size?;
        let mechanism = storage::mechanism_of(unit, &self.state_dir)?;
        let usage = self.run_usage();
        let full = usage.is_some_and(|u| u.is_full(limit));
        self.note_fullness(full, usage.map_or(0, |u| u.used), limit, now);
        let mechanism = serde_json::to_value(mechanism)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Some(StorageStatus {
            mechanism,
            limit_bytes: limit,
            used_bytes: usage.map(|u| u.used),
            available_bytes: usage.map(|u| u.available),
            full,
        })
    }

    /// Looks at a running container's layer, at most once per
    /// OUTPUT_CHECK_INTERVAL.
    pub fn check_storage(&mut self, now: Duration) {
        let Some(limit) = self.unit.as_ref().and_then(|u| u.resources.storage_size) else {
            return;
        };
        let recent = self
            .storage
            .checked_at
            .is_some_and(|at| now.saturating_sub(at) < OUTPUT_CHECK_INTERVAL);
        if recent {
            return;
        }
        let Some(usage) = self.run_usage() else {
            return;
        };
        self.note_fullness(usage.is_full(limit), usage.used, limit, now);
    }

    /// The event: a warning when the layer fills, a note when it has room
    /// again, once per change.
    fn note_fullness(&mut self, full: bool, used: u64, limit: u64, now: Duration) {
        self.storage.checked_at = Some(now);
        if full == self.storage.full {
            return;
        }
        self.storage.full = full;
        let name = &self.name;
        let message = if full {
            let message = format!(
                "storage full: {} of {} used; the container's writes fail with \
                 ENOSPC (No space left on device) until it frees space or resources.storage.size grows",
                human(used),
                human(limit)
            );
            log::warn!("{name}: {message}");
            message
        } else {
            let message = format!(
                "storage has room again: {} of {} used",
                human(used),
                human(limit)
            );
            log::info!("{name}: {message}");
            message
        };
        self.pending_events.push(super::events::event(
            Some(name),
            crate::control::protocol::EventKind::Storage,
            message,
        ));
    }

    /// A run ended (its init is reaped, so the layer is looked at from the
    /// host, where an image or a quota directory still is): a workload
    /// that died of ENOSPC is reported, and the next run starts afresh.
    pub fn storage_run_ended(&mut self, now: Duration) {
        let layer = storage::layer_dir(&self.state_dir);
        // Only the layer itself answers: an image's mount, or a quota
        // directory (an empty mount point would give the host's figures).
        let own = storage::is_mount_point(&layer)
            || storage::quota::project_of(&layer).is_ok_and(|id| id != 0);
        let limit = self.unit.as_ref().and_then(|u| u.resources.storage_size);
        if let (true, Some(limit), Some(usage)) = (own, limit, storage::usage(&layer)) {
            self.note_fullness(usage.is_full(limit), usage.used, limit, now);
        }
        self.storage = StorageWatch::default();
    }

    /// The layer's figures as the running container sees them.
    fn run_usage(&self) -> Option<storage::Usage> {
        let run = self.run.as_ref()?;
        storage::usage(Path::new(&format!("/proc/{}/root", run.pid.as_raw())))
    }
}

impl Supervisor {
    /// A new `storage.size` for a running container.
    pub(super) fn live_storage(&self, name: &str, unit: &Unit) -> Result<(), String> {
        let state_dir = self.options.dirs.unit_state(name);
        let size = unit.resources.storage_size.map(human).unwrap_or_default();
        match storage::resize(unit, &state_dir) {
            Ok(true) => {
                log::info!("{name}: storage size is now {size}, without restart");
                Ok(())
            }
            Ok(false) => {
                log::info!("{name}: storage size {size} applies at the next start");
                Ok(())
            }
            Err(e) => {
                log::error!("{name}: {e}");
                Err(e.to_string())
            }
        }
    }

    /// The unit is gone: its layer goes with it, as `docker rm` removes a
    /// container's.
    pub(super) fn remove_storage(&self, name: &str) {
        let state_dir = self.options.dirs.unit_state(name);
        if !storage::layer_dir(&state_dir).exists() {
            return;
        }
        match storage::remove(&state_dir) {
            Ok(()) => log::info!("{name}: removed its storage"),
            Err(e) => log::warn!("{name}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_an_operator_writes_them() {
        assert_eq!(super::human(1 << 30), "1.0G");
        assert_eq!(super::human(100 << 20), "100.0M");
        assert_eq!(super::human(512), "512.0B");
    }
}
