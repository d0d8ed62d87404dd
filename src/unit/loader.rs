//! Reading the unit directories: `NAME.yaml` files, first directory wins.

use super::{parse_unit, valid_unit_name, Unit, UnitError};
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One unit name as found in the directories.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedUnit {
    /// The file that defines it (the highest-precedence one).
    pub source: PathBuf,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Valid(Box<Unit>),
    Invalid(UnitError),
    /// An empty file or a symlink to /dev/null: the unit must not run.
    Masked,
}

/// Reads every unit in `dirs` (highest precedence first). Directories that do
/// not exist are skipped; a file that cannot be read is an invalid unit.
pub fn load_dirs(dirs: &[PathBuf]) -> BTreeMap<String, LoadedUnit> {
    let mut units = BTreeMap::new();
    for dir in dirs {
        for (name, path) in unit_files(dir) {
            if units.contains_key(&name) {
                continue;
            }
            let outcome = load_file(&name, &path);
            units.insert(
                name,
                LoadedUnit {
                    source: path,
                    outcome,
                },
            );
        }
    }
    units
}

/// Loads one unit file by path (used by `supctl validate`).
pub fn load_file(name: &str, path: &Path) -> Outcome {
    if is_masked(path) {
        return Outcome::Masked;
    }
    match fs::read_to_string(path) {
        Ok(text) => match parse_unit(name, path, &text) {
            Ok(unit) => Outcome::Valid(Box::new(unit)),
            Err(e) => Outcome::Invalid(e),
        },
        Err(e) => Outcome::Invalid(UnitError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: String::new(),
            message: format!("cannot read: {e}"),
        }),
    }
}

/// The unit name for a file name, if the file is a unit at all.
pub fn unit_name(file_name: &str) -> Option<&str> {
    file_name
        .strip_suffix(".yaml")
        .filter(|name| valid_unit_name(name))
}

fn is_masked(path: &Path) -> bool {
    if fs::read_link(path).is_ok_and(|target| target == Path::new("/dev/null")) {
        return true;
    }
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == 0)
}

fn unit_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            log::warn!("cannot read unit directory {}: {e}", dir.display());
            return Vec::new();
        }
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let file_name = entry.file_name();
            let name = unit_name(file_name.to_str()?)?.to_string();
            Some((name, entry.path()))
        })
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("supd-loader-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn first_directory_wins_and_masks() {
        let high = temp_dir("high");
        let low = temp_dir("low");
        fs::write(low.join("a.yaml"), "rootfs: /low\nexec: [/x]\n").unwrap();
        fs::write(high.join("a.yaml"), "rootfs: /high\nexec: [/x]\n").unwrap();
        fs::write(low.join("b.yaml"), "rootfs: /low\nexec: [/x]\n").unwrap();
        fs::write(high.join("b.yaml"), "").unwrap();
        fs::write(low.join("c.yaml"), "rootfs: /low\nexec: [/x]\n").unwrap();
        std::os::unix::fs::symlink("/dev/null", high.join("c.yaml")).unwrap();
        fs::write(high.join("d.yaml"), "exec: [\n").unwrap();
        fs::write(high.join(".d.yaml.swp"), "junk").unwrap();
        fs::write(high.join("Bad Name.yaml"), "junk").unwrap();
        let units = load_dirs(&[high.clone(), low.clone(), PathBuf::from("/nonexistent")]);
        assert_eq!(units.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        match &units["a"].outcome {
            Outcome::Valid(unit) => assert_eq!(unit.rootfs, Some(PathBuf::from("/high"))),
            other => panic!("{other:?}"),
        }
        assert_eq!(units["b"].outcome, Outcome::Masked);
        assert_eq!(units["c"].outcome, Outcome::Masked);
        match &units["d"].outcome {
            Outcome::Invalid(e) => assert_eq!(e.line, 2),
            other => panic!("{other:?}"),
        }
        fs::remove_dir_all(high).unwrap();
        fs::remove_dir_all(low).unwrap();
    }
}
