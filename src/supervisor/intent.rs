//! Operator intent that outlives supd: a unit stopped with `supctl stop`
//! stays stopped and a `failed` one stays failed, across supd restarts and
//! reboots, until `start`, `restart`, `reset-failed` or a change of its
//! file. Kept in `STATE_DIR/intent.json` with a hash of the file it was
//! about, so that a changed file is recognised even while supd was away.

use super::machine::Held;
use super::Supervisor;
use crate::files::{LeaseTable, Loaded};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "held", rename_all = "kebab-case")]
pub enum Intent {
    Stopped { file: u64 },
    Failed { file: u64, error: String },
}

impl Intent {
    fn file(&self) -> u64 {
        match self {
            Intent::Stopped { file } | Intent::Failed { file, .. } => *file,
        }
    }
}

pub(super) fn load(state_dir: &Path) -> (LeaseTable<Intent>, Loaded) {
    LeaseTable::load(
        state_dir.join("intent.json"),
        "operator intent",
        |table| match table
            .keys()
            .find(|name| !crate::unit::valid_unit_name(name))
        {
            Some(name) => Err(format!("{name:?} is not a unit name")),
            None => Ok(()),
        },
    )
}

/// FNV-1a of the effective unit text: stable across supd versions, unlike
/// std's hasher, so an upgrade does not read as a changed file.
pub fn file_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Supervisor {
    /// The file's hash; for a failed unit with the image it resolved to,
    /// since a new image under the tag deserves a fresh start as much as
    /// an edit does. A stopped unit stays stopped whatever is imported.
    fn current_file(&self, name: &str, with_image: bool) -> u64 {
        let entry = self.entries.get(name);
        let mut text = entry.and_then(|e| e.effective.clone()).unwrap_or_default();
        let digest = entry
            .and_then(|e| e.unit.as_ref()?.image.as_ref()?.digest.as_deref())
            .unwrap_or_default();
        if with_image && !digest.is_empty() {
            text.push_str("\n# image ");
            text.push_str(digest);
        }
        file_hash(&text)
    }

    /// An operator stopped the unit.
    pub(super) fn hold_stopped(&mut self, name: &str) {
        let file = self.current_file(name, false);
        self.intent.insert(name, Intent::Stopped { file });
    }

    /// The unit reached `failed`.
    pub(super) fn hold_failed(&mut self, name: &str, error: &str) {
        let file = self.current_file(name, true);
        let error = error.to_string();
        self.intent.insert(name, Intent::Failed { file, error });
    }

    /// Start, restart, reset-failed, a changed or removed file.
    pub(super) fn release_intent(&mut self, name: &str) {
        self.intent.remove(name);
    }

    /// For a unit about to start: keeps it stopped or failed if an earlier
    /// supd (or this one) held it so for this very file. Returns true when
    /// the unit must not start.
    pub(super) fn honour_intent(&mut self, name: &str) -> bool {
        let held = self.intent.get(name).cloned();
        let current =
            |intent: &Intent| self.current_file(name, matches!(intent, Intent::Failed { .. }));
        let Some(intent) = held.filter(|intent| intent.file() == current(intent)) else {
            self.release_intent(name);
            return false;
        };
        let held = match intent {
            Intent::Stopped { .. } => {
                log::info!("{name}: stays stopped, as an operator left it");
                Held::Stopped
            }
            Intent::Failed { error, .. } => {
                log::info!(
                    "{name}: stays failed until restart, reset-failed or a change of its file"
                );
                Held::Failed(error)
            }
        };
        let Some(entry) = self.entries.get_mut(name) else {
            return false;
        };
        let now = super::monotonic_now();
        entry.machine.held(held, now);
        self.emit_transitions(name, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(file_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(file_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(file_hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
