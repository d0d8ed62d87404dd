//! User namespaces: the id maps a container runs with, `auto` ranges kept
//! across restarts, and writing the maps from the host side.

use crate::files::{LeaseTable, Loaded};
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
/// The table is not the only record: a unit's state directory belongs to
/// its container's root, so a lost table is rebuilt from the owners of the
/// state directories, and a new lease never takes a range that owns
/// another unit's files.
pub struct IdRanges {
    state_dir: PathBuf,
    bases: LeaseTable<u32>,
    /// The table was lost: each unit that leases again is told.
    lost: bool,
}

impl IdRanges {
    pub fn load(state_dir: &Path) -> (Self, Loaded) {
        let (bases, loaded) =
            LeaseTable::load(state_dir.join("idranges.json"), "id ranges", check_bases);
        let ranges = IdRanges {
            state_dir: state_dir.to_path_buf(),
            bases,
            lost: matches!(loaded, Loaded::Lost { .. }),
        };
        (ranges, loaded)
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

    /// Every leased range as (unit, first host id, count).
    pub fn leases(&self) -> impl Iterator<Item = (&str, u32, u32)> {
        self.bases
            .iter()
            .map(|(unit, base)| (unit.as_str(), *base, AUTO_SIZE))
    }

    fn lease(&mut self, unit: &str) -> Option<u32> {
        if let Some(base) = self.bases.get(unit) {
            return Some(*base);
        }
        let owners = self.state_dir_owners();
        let taken = |base: u32| {
            self.bases.iter().any(|(_, b)| *b == base)
                || owners.iter().any(|(name, b)| *b == base && name != unit)
        };
        let own = owners
            .iter()
            .find(|(name, _)| name == unit)
            .map(|(_, base)| *base)
            .filter(|base| !taken(*base));
        let base = own.or_else(|| {
            (0..u32::MAX / AUTO_SIZE)
                .filter_map(|k| AUTO_BASE.checked_add(k.checked_mul(AUTO_SIZE)?))
                .find(|base| !taken(*base))
        })?;
        if self.lost {
            match own {
                Some(_) => log::warn!(
                    "{unit}: id range {base} re-derived from its state directory (idranges.json was lost)"
                ),
                None => log::warn!(
                    "{unit}: the id ranges were lost (idranges.json); it now has range {base}"
                ),
            }
        }
        self.bases.insert(unit, base);
        Some(base)
    }

    /// (unit, base) for every unit state directory whose overlay upper
    /// belongs to the root of an `auto` range.
    fn state_dir_owners(&self) -> Vec<(String, u32)> {
        use std::os::unix::fs::MetadataExt;
        let Ok(entries) = std::fs::read_dir(&self.state_dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_string();
                let uid = std::fs::symlink_metadata(entry.path().join("upper"))
                    .ok()?
                    .uid();
                is_auto_base(uid).then_some((name, uid))
            })
            .collect()
    }

    pub fn release(&mut self, unit: &str) {
        self.bases.remove(unit);
    }
}

fn is_auto_base(id: u32) -> bool {
    id >= AUTO_BASE && (id - AUTO_BASE) % AUTO_SIZE == 0
}

/// Aligned `auto` bases, each held by one unit.
fn check_bases(bases: &BTreeMap<String, u32>) -> Result<(), String> {
    let mut seen = BTreeMap::new();
    for (name, base) in bases {
        if !is_auto_base(*base) {
            return Err(format!("{name}: {base} is not the start of an auto range"));
        }
        if let Some(other) = seen.insert(*base, name) {
            return Err(format!("range {base} is leased to both {other} and {name}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_ranges_are_unique_and_kept() {
        let dir = std::env::temp_dir().join(format!("supd-idranges-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (mut ranges, _) = IdRanges::load(&dir);
        let a = ranges.maps("a", &UserNamespace::Auto).unwrap();
        let b = ranges.maps("b", &UserNamespace::Auto).unwrap();
        assert_eq!(a.root_on_host(), (AUTO_BASE, AUTO_BASE));
        assert_eq!(
            b.root_on_host(),
            (AUTO_BASE + AUTO_SIZE, AUTO_BASE + AUTO_SIZE)
        );
        let (mut reloaded, _) = IdRanges::load(&dir);
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

    #[test]
    fn a_lost_table_is_rebuilt_from_the_state_directories() {
        let dir = std::env::temp_dir().join(format!("supd-idlost-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (mut ranges, _) = IdRanges::load(&dir);
        let first = |r: &mut IdRanges, unit: &str| {
            r.maps(unit, &UserNamespace::Auto).unwrap().root_on_host().0
        };
        let a = first(&mut ranges, "a");
        let b = first(&mut ranges, "b");
        for (unit, base) in [("a", a), ("b", b)] {
            let upper = dir.join(unit).join("upper");
            std::fs::create_dir_all(&upper).unwrap();
            std::os::unix::fs::chown(&upper, Some(base), Some(base)).unwrap();
        }
        // The table is lost; b leases first this time, and must not take a's.
        std::fs::write(dir.join("idranges.json"), "{ torn").unwrap();
        let (mut ranges, loaded) = IdRanges::load(&dir);
        assert!(matches!(loaded, Loaded::Lost { .. }));
        assert_eq!(first(&mut ranges, "b"), b);
        assert_eq!(first(&mut ranges, "c"), b + AUTO_SIZE, "skips what a owns");
        assert_eq!(first(&mut ranges, "a"), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
