//! Reading the unit directories: `NAME.yaml` files (the first directory that
//! has one wins) and `NAME.yaml.d/*.yaml` drop-ins from all of them (merged in
//! lexical order of file name; a same-named drop-in in a higher directory
//! replaces the lower one).

use super::dropin::attribute;
use super::host::{check_host, HostInfo};
use super::{parse_layers, valid_unit_name, Layer, Unit, UnitError};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One unit name as found in the directories.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedUnit {
    /// The file that defines it (the highest-precedence one).
    pub source: PathBuf,
    /// The drop-ins merged over it, in merge order.
    pub dropins: Vec<PathBuf>,
    pub outcome: Outcome,
    /// The merged YAML, when the files could be read and merged.
    pub effective: Option<String>,
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
/// `host`, when given, also validates each unit against this host.
pub fn load_dirs(dirs: &[PathBuf], host: Option<&HostInfo>) -> BTreeMap<String, LoadedUnit> {
    let mut sources: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut dropins: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for dir in dirs {
        for (name, path) in unit_files(dir) {
            sources.entry(name).or_insert(path);
        }
        for (name, file_name, path) in dropin_files(dir) {
            dropins
                .entry(name)
                .or_default()
                .entry(file_name)
                .or_insert(path);
        }
    }
    sources
        .into_iter()
        .map(|(name, source)| {
            let extra: Vec<PathBuf> = dropins
                .remove(&name)
                .map(|files| files.into_values().collect())
                .unwrap_or_default();
            let unit = loaded_unit(&name, source, extra, host);
            (name, unit)
        })
        .collect()
}

fn loaded_unit(
    name: &str,
    source: PathBuf,
    dropins: Vec<PathBuf>,
    host: Option<&HostInfo>,
) -> LoadedUnit {
    let (outcome, effective) = load_unit(name, &source, &dropins, host);
    LoadedUnit {
        source,
        dropins,
        outcome,
        effective,
    }
}

/// Reads these units again, as `load_dirs` would find them, without
/// listing the directories: None for a name no directory defines any more.
/// What an event named is all a reconcile needs to read.
pub fn load_units(
    dirs: &[PathBuf],
    names: &BTreeSet<String>,
    host: Option<&HostInfo>,
) -> BTreeMap<String, Option<LoadedUnit>> {
    names
        .iter()
        .map(|name| {
            let file_name = format!("{name}.yaml");
            let source = dirs
                .iter()
                .map(|dir| dir.join(&file_name))
                .find(|path| path.symlink_metadata().is_ok() && !path.is_dir());
            let loaded = source.map(|source| {
                let mut dropins: BTreeMap<String, PathBuf> = BTreeMap::new();
                for dir in dirs {
                    for (file_name, file) in dropins_in(&dir.join(format!("{file_name}.d"))) {
                        dropins.entry(file_name).or_insert(file);
                    }
                }
                loaded_unit(name, source, dropins.into_values().collect(), host)
            });
            (name.clone(), loaded)
        })
        .collect()
}

/// Loads one unit file by path (used by `supctl validate`).
pub fn load_file(name: &str, path: &Path, host: Option<&HostInfo>) -> Outcome {
    load_unit(name, path, &[], host).0
}

fn load_unit(
    name: &str,
    path: &Path,
    dropins: &[PathBuf],
    host: Option<&HostInfo>,
) -> (Outcome, Option<String>) {
    if is_masked(path) {
        return (Outcome::Masked, None);
    }
    let mut layers = Vec::with_capacity(1 + dropins.len());
    for file in std::iter::once(path).chain(dropins.iter().map(PathBuf::as_path)) {
        match read_unit_text(file) {
            Ok(text) => layers.push(Layer {
                path: file.to_path_buf(),
                text,
            }),
            Err(message) => {
                let error = UnitError {
                    file: file.to_path_buf(),
                    line: 0,
                    column: 0,
                    field: String::new(),
                    message,
                };
                return (Outcome::Invalid(error), None);
            }
        }
    }
    match parse_layers(name, &layers) {
        Ok((mut unit, text)) => match host.map_or(Ok(()), |host| check_host(&unit, host)) {
            Ok(()) => match read_inputs(&mut unit) {
                Ok(()) => {
                    boot_capabilities_of_this_host(&mut unit);
                    (Outcome::Valid(Box::new(unit)), Some(text))
                }
                Err(error) => (Outcome::Invalid(error), None),
            },
            Err((field, message)) => {
                let error = UnitError {
                    file: path.to_path_buf(),
                    line: 0,
                    column: 0,
                    field,
                    message,
                };
                (Outcome::Invalid(attribute(error, &layers)), None)
            }
        },
        Err(e) => (Outcome::Invalid(e), None),
    }
}

/// The files a unit names besides itself: env files (merged into `env`
/// under the unit's own variables), secrets (only their digest goes into
/// the unit) and the zone file. Errors name the file they are about.
fn read_inputs(unit: &mut Unit) -> Result<(), UnitError> {
    use crate::files::{read_regular, read_text, Links, MAX_FILE_BYTES};
    let fail = |file: &Path, line: usize, field: &str, message: String| UnitError {
        file: file.to_path_buf(),
        line,
        column: usize::from(line > 0),
        field: field.to_string(),
        message,
    };
    let mut from_files = BTreeMap::new();
    for file in &unit.env_file {
        let text = read_text(file, Links::Follow, MAX_FILE_BYTES)
            .map_err(|e| fail(file, 0, "env_file", e.to_string()))?;
        let pairs = super::envfile::parse(&text)
            .map_err(|(line, message)| fail(file, line, "env_file", message))?;
        // A later file overrides an earlier one, as in systemd.
        from_files.extend(pairs);
    }
    for (key, value) in from_files {
        unit.env.entry(key).or_insert(value);
    }
    for secret in &mut unit.secrets {
        let bytes = read_regular(&secret.source, Links::Follow, MAX_FILE_BYTES)
            .map_err(|e| fail(&secret.source, 0, "secrets", e.to_string()))?;
        use sha2::Digest;
        secret.digest = format!("sha256:{:x}", sha2::Sha256::digest(&bytes));
    }
    if let Some(zone) = &unit.timezone {
        let file = zone.zone_file();
        if !file.is_file() {
            return Err(fail(
                &file,
                0,
                "timezone",
                "no such zone file on the host (is tzdata installed?)".to_string(),
            ));
        }
    }
    Ok(())
}

/// A system container starts from nspawn's capabilities; those supd
/// itself cannot grant (CAP_SYS_RESOURCE where its service lacks it) are
/// left out rather than failing every start.
fn boot_capabilities_of_this_host(unit: &mut Unit) {
    if !unit.boot {
        return;
    }
    let Ok(bounding) = caps::read(None, caps::CapSet::Bounding) else {
        return;
    };
    unit.security.capabilities.retain(|name| {
        let grantable = name
            .parse::<caps::Capability>()
            .is_ok_and(|c| bounding.contains(&c));
        grantable || !super::security::BOOT_CAPABILITIES.contains(&name.as_str())
    });
}

/// A unit file or drop-in: a regular file (or a link to one) of at most
/// `MAX_FILE_BYTES`, opened without blocking, so that a FIFO or a link to
/// /dev/zero is an invalid unit rather than a wedged or exhausted supd.
fn read_unit_text(path: &Path) -> Result<String, String> {
    use crate::files::{read_text, FileError, Links, MAX_FILE_BYTES};
    read_text(path, Links::Follow, MAX_FILE_BYTES).map_err(|e| match e {
        FileError::Open { source, .. } => format!("cannot read: {source}"),
        FileError::NotRegular { kind, .. } => format!("not a regular file but a {kind}"),
        FileError::TooLarge { limit, .. } => {
            format!("larger than {limit} bytes: a unit file is a few kilobytes")
        }
        FileError::NotText { .. } => "not UTF-8 text".to_string(),
        other => other.to_string(),
    })
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

/// Whether a file name in a drop-in directory is a drop-in (editors' temp
/// and backup files are not).
pub fn is_dropin_name(file_name: &str) -> bool {
    file_name.ends_with(".yaml") && !file_name.starts_with('.')
}

/// The unit a drop-in directory name (`NAME.yaml.d`) belongs to.
pub fn dropin_dir_unit(dir_name: &str) -> Option<&str> {
    dir_name.strip_suffix(".d").and_then(unit_name)
}

fn read_dir_names(dir: &Path) -> Vec<(String, PathBuf)> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Vec::new()
        }
        Err(e) => {
            log::warn!("cannot read directory {}: {e}", dir.display());
            return Vec::new();
        }
    };
    let mut names: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| Some((entry.file_name().to_str()?.to_string(), entry.path())))
        .collect();
    names.sort();
    names
}

fn unit_files(dir: &Path) -> Vec<(String, PathBuf)> {
    read_dir_names(dir)
        .into_iter()
        .filter_map(|(file_name, path)| Some((unit_name(&file_name)?.to_string(), path)))
        .filter(|(_, path)| !path.is_dir())
        .collect()
}

/// Files in the unit directories that look like units (`*.yaml`, not an
/// editor's hidden temp file) but whose name is not a valid unit name:
/// they are not loaded, and the operator should hear why.
pub fn misnamed_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    dirs.iter()
        .flat_map(|dir| read_dir_names(dir))
        .filter(|(file_name, _)| is_dropin_name(file_name) && unit_name(file_name).is_none())
        .map(|(_, path)| path)
        .collect()
}

/// (unit name, drop-in file name, path) for every drop-in under `dir`.
pub fn dropin_files(dir: &Path) -> Vec<(String, String, PathBuf)> {
    let mut found = Vec::new();
    for (dir_name, path) in read_dir_names(dir) {
        let Some(unit) = dropin_dir_unit(&dir_name) else {
            continue;
        };
        for (file_name, file) in dropins_in(&path) {
            found.push((unit.to_string(), file_name, file));
        }
    }
    found
}

/// (file name, path) of the drop-ins in one `NAME.yaml.d` directory.
fn dropins_in(dropin_dir: &Path) -> impl Iterator<Item = (String, PathBuf)> {
    read_dir_names(dropin_dir)
        .into_iter()
        .filter(|(file_name, file)| is_dropin_name(file_name) && !file.is_dir())
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

    /// Reading named units gives what reading the directories whole gives.
    #[test]
    fn named_units_load_as_in_a_full_read() {
        let high = temp_dir("named-high");
        let low = temp_dir("named-low");
        fs::write(high.join("web.yaml"), "exec: [/bin/high]\n").unwrap();
        fs::write(low.join("web.yaml"), "exec: [/bin/low]\n").unwrap();
        fs::create_dir_all(low.join("web.yaml.d")).unwrap();
        fs::write(low.join("web.yaml.d/10-env.yaml"), "env: {A: b}\n").unwrap();
        fs::write(low.join("db.yaml"), "exec: [/bin/db]\n").unwrap();
        fs::write(high.join("off.yaml"), "").unwrap();
        let dirs = [high.clone(), low.clone()];
        let full = load_dirs(&dirs, None);
        let names: BTreeSet<String> = ["web", "db", "off", "gone"].map(String::from).into();
        let named = load_units(&dirs, &names, None);
        for name in ["web", "db", "off"] {
            assert_eq!(named[name].as_ref(), full.get(name), "{name}");
        }
        assert_eq!(named["gone"], None);
        fs::remove_dir_all(&high).unwrap();
        fs::remove_dir_all(&low).unwrap();
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
        let units = load_dirs(
            &[high.clone(), low.clone(), PathBuf::from("/nonexistent")],
            None,
        );
        assert_eq!(units.keys().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
        assert!(units["a"].effective.as_deref().unwrap().contains("/high"));
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

    #[test]
    fn dropins_from_all_directories_merge_in_file_name_order() {
        let high = temp_dir("dhigh");
        let low = temp_dir("dlow");
        fs::write(
            low.join("a.yaml"),
            "rootfs: /r\nexec: [/x]\nenv: {BASE: '1'}\n",
        )
        .unwrap();
        fs::create_dir_all(high.join("a.yaml.d")).unwrap();
        fs::create_dir_all(low.join("a.yaml.d")).unwrap();
        fs::write(low.join("a.yaml.d/10-low.yaml"), "env: {TEN: low}\n").unwrap();
        fs::write(high.join("a.yaml.d/10-low.yaml"), "env: {TEN: high}\n").unwrap();
        fs::write(
            low.join("a.yaml.d/20-x.yaml"),
            "env: {TWENTY: '20', TEN: twenty}\n",
        )
        .unwrap();
        fs::write(high.join("a.yaml.d/.20-x.yaml.swp"), "garbage").unwrap();
        fs::write(high.join("a.yaml.d/20-x.yaml~"), "garbage").unwrap();
        fs::create_dir_all(high.join("orphan.yaml.d")).unwrap();
        fs::write(high.join("orphan.yaml.d/x.yaml"), "exec: [/x]\n").unwrap();
        let units = load_dirs(&[high.clone(), low.clone()], None);
        assert_eq!(
            units.keys().collect::<Vec<_>>(),
            ["a"],
            "drop-ins alone make no unit"
        );
        let a = &units["a"];
        assert_eq!(
            a.dropins,
            [
                high.join("a.yaml.d/10-low.yaml"),
                low.join("a.yaml.d/20-x.yaml")
            ]
        );
        match &a.outcome {
            Outcome::Valid(unit) => {
                let env: Vec<(&str, &str)> = unit
                    .env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(env, [("BASE", "1"), ("TEN", "twenty"), ("TWENTY", "20")]);
            }
            other => panic!("{other:?}"),
        }
        fs::write(
            low.join("a.yaml.d/30-bad.yaml"),
            "\nrestart: {delay: never}\n",
        )
        .unwrap();
        let units = load_dirs(&[high.clone(), low.clone()], None);
        match &units["a"].outcome {
            Outcome::Invalid(e) => {
                assert_eq!(
                    (e.file.clone(), e.line),
                    (low.join("a.yaml.d/30-bad.yaml"), 2)
                )
            }
            other => panic!("{other:?}"),
        }
        fs::remove_dir_all(high).unwrap();
        fs::remove_dir_all(low).unwrap();
    }
}
