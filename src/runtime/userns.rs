//! User namespaces: the id maps a container runs with, `auto` ranges kept
//! across restarts, and writing the maps from the host side.

use crate::unit::security::{IdMap, UserNamespace};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where `auto` ranges start: above the ranges /etc/subuid usually hands to
/// users (100000 and up), as podman's and nspawn's automatic ranges do.
pub const AUTO_BASE: u32 = 0x1000_0000;
pub const AUTO_SIZE: u32 = 65536;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
}

impl IdMaps {
    /// The host uid and gid of the container's root.
    pub fn root_on_host(&self) -> (u32, u32) {
        let root = |maps: &[IdMap]| maps.iter().find(|m| m.inside == 0).map_or(0, |m| m.outside);
        (root(&self.uid), root(&self.gid))
    }
}

fn render(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.inside, m.outside, m.count))
        .collect()
}

/// Writes the maps of the (waiting) child `pid`; supd is root on the host,
/// so no setgroups restriction is needed.
pub fn write_maps(pid: nix::unistd::Pid, maps: &IdMaps) -> Result<(), String> {
    for (file, lines) in [
        ("uid_map", render(&maps.uid)),
        ("gid_map", render(&maps.gid)),
    ] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, lines).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// `auto` ranges, one per unit, persisted in `STATE_DIR/idranges.json`.
pub struct IdRanges {
    file: PathBuf,
    bases: BTreeMap<String, u32>,
}

impl IdRanges {
    pub fn load(state_dir: &Path) -> Self {
        let file = state_dir.join("idranges.json");
        let bases = std::fs::read(&file)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        IdRanges { file, bases }
    }

    /// The unit's maps for `config`, leasing a range for `auto`.
    pub fn maps(&mut self, unit: &str, config: &UserNamespace) -> Option<IdMaps> {
        let (uid, gid) = match config {
            UserNamespace::Maps { uid, gid } => (uid.clone(), gid.clone()),
            UserNamespace::Auto => {
                let base = self.lease(unit)?;
                let map = vec![IdMap {
                    inside: 0,
                    outside: base,
                    count: AUTO_SIZE,
                }];
                (map.clone(), map)
            }
        };
        Some(IdMaps { uid, gid })
    }

    fn lease(&mut self, unit: &str) -> Option<u32> {
        if let Some(base) = self.bases.get(unit) {
            return Some(*base);
        }
        let base = (0..u32::MAX / AUTO_SIZE)
            .filter_map(|k| AUTO_BASE.checked_add(k.checked_mul(AUTO_SIZE)?))
            .find(|base| !self.bases.values().any(|b| b == base))?;
        self.bases.insert(unit.to_string(), base);
        let result = serde_json::to_vec_pretty(&self.bases)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::supervisor::write_atomically(&self.file, &bytes));
        if let Err(e) = result {
            log::error!("cannot save id ranges to {}: {e}", self.file.display());
        }
        Some(base)
    }

    pub fn release(&mut self, unit: &str) {
        if self.bases.remove(unit).is_some() {
            if let Ok(bytes) = serde_json::to_vec_pretty(&self.bases) {
                let _ = crate::supervisor::write_atomically(&self.file, &bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_ranges_are_unique_and_kept() {
        let dir = std::env::temp_dir().join(format!("supd-idranges-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut ranges = IdRanges::load(&dir);
        let a = ranges.maps("a", &UserNamespace::Auto).unwrap();
        let b = ranges.maps("b", &UserNamespace::Auto).unwrap();
        assert_eq!(a.root_on_host(), (AUTO_BASE, AUTO_BASE));
        assert_eq!(
            b.root_on_host(),
            (AUTO_BASE + AUTO_SIZE, AUTO_BASE + AUTO_SIZE)
        );
        let mut reloaded = IdRanges::load(&dir);
        assert_eq!(reloaded.maps("b", &UserNamespace::Auto).unwrap(), b);
        reloaded.release("a");
        assert_eq!(
            reloaded
                .maps("c", &UserNamespace::Auto)
                .unwrap()
                .root_on_host()
                .0,
            AUTO_BASE
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
