//! One generic table of per-unit leases (addresses, id ranges, bridges),
//! persisted as a JSON object. A file that is unreadable or fails its check
//! is moved aside for inspection, never silently overwritten.

use super::{read_regular, write_atomically, Links, MAX_FILE_BYTES};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub struct LeaseTable<V> {
    file: PathBuf,
    /// What the table holds, for messages: "address leases".
    what: &'static str,
    entries: BTreeMap<String, V>,
}

/// How a table came back from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Loaded {
    /// There was no file: a first start.
    Missing,
    Read,
    /// The file could not be used; it was moved to `kept_as` (when the move
    /// worked) and the table starts empty.
    Lost {
        reason: String,
        kept_as: Option<PathBuf>,
    },
}

impl<V: Serialize + DeserializeOwned> LeaseTable<V> {
    /// Loads `file`; `check` rejects content that parses but cannot be
    /// right (duplicates, values out of range).
    pub fn load(
        file: PathBuf,
        what: &'static str,
        check: impl Fn(&BTreeMap<String, V>) -> Result<(), String>,
    ) -> (Self, Loaded) {
        let parsed = read_regular(&file, Links::Refuse, MAX_FILE_BYTES)
            .map_err(|e| (e.is_not_found(), e.to_string()))
            .and_then(|bytes| {
                let entries: BTreeMap<String, V> =
                    serde_json::from_slice(&bytes).map_err(|e| (false, e.to_string()))?;
                check(&entries).map_err(|e| (false, e))?;
                Ok(entries)
            });
        let (entries, loaded) = match parsed {
            Ok(entries) => (entries, Loaded::Read),
            Err((true, _)) => (BTreeMap::new(), Loaded::Missing),
            Err((false, reason)) => {
                let kept_as = move_aside(&file);
                (BTreeMap::new(), Loaded::Lost { reason, kept_as })
            }
        };
        let table = LeaseTable {
            file,
            what,
            entries,
        };
        (table, loaded)
    }

    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter()
    }

    pub fn insert(&mut self, key: &str, value: V) {
        self.entries.insert(key.to_string(), value);
        self.save();
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let removed = self.entries.remove(key);
        if removed.is_some() {
            self.save();
        }
        removed
    }

    /// A failed save keeps the table in memory: supd goes on with what it
    /// knows, and the next save tries again.
    fn save(&self) {
        let result = serde_json::to_vec_pretty(&self.entries)
            .map_err(|e| e.to_string())
            .and_then(|bytes| write_atomically(&self.file, &bytes).map_err(|e| e.to_string()));
        if let Err(e) = result {
            log::error!("cannot save {}: {e}", self.what);
        }
    }
}

/// `FILE.corrupt-SECONDS`, beside the file.
fn move_aside(file: &std::path::Path) -> Option<PathBuf> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut kept = file.as_os_str().to_owned();
    kept.push(format!(".corrupt-{seconds}"));
    let kept = PathBuf::from(kept);
    std::fs::rename(file, &kept).ok().map(|()| kept)
}

impl Loaded {
    /// A warning for the log, or None when nothing was lost.
    pub fn warning(&self, what: &str) -> Option<String> {
        match self {
            Loaded::Lost {
                reason,
                kept_as: Some(kept),
            } => Some(format!(
                "{what} lost: {reason}; the file is kept as {}",
                kept.display()
            )),
            Loaded::Lost {
                reason,
                kept_as: None,
            } => Some(format!("{what} lost: {reason}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_check(_: &BTreeMap<String, u32>) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn corrupt_tables_are_kept_aside_and_start_empty() {
        let dir = std::env::temp_dir().join(format!("supd-lease-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("t.json");
        let (mut table, loaded) = LeaseTable::<u32>::load(file.clone(), "test leases", no_check);
        assert_eq!(loaded, Loaded::Missing);
        table.insert("a", 1);
        table.insert("b", 2);
        let (table, loaded) = LeaseTable::<u32>::load(file.clone(), "test leases", no_check);
        assert_eq!((loaded, table.get("b")), (Loaded::Read, Some(&2)));
        let unique = |t: &BTreeMap<String, u32>| {
            let values: std::collections::BTreeSet<_> = t.values().collect();
            (values.len() == t.len())
                .then_some(())
                .ok_or("duplicate".to_string())
        };
        std::fs::write(&file, br#"{"a": 1, "b": 1}"#).unwrap();
        let (table, loaded) = LeaseTable::<u32>::load(file.clone(), "test leases", unique);
        assert!(table.get("a").is_none());
        let Loaded::Lost {
            reason,
            kept_as: Some(kept),
        } = loaded
        else {
            panic!("{loaded:?}")
        };
        assert_eq!(reason, "duplicate");
        assert_eq!(std::fs::read(&kept).unwrap(), br#"{"a": 1, "b": 1}"#);
        assert!(!file.exists(), "moved, not copied");
        std::fs::write(&file, [0xff, b'{']).unwrap();
        let (_, loaded) = LeaseTable::<u32>::load(file.clone(), "test leases", no_check);
        assert!(loaded.warning("leases").unwrap().contains("kept as"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
