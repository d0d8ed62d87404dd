//! `supctl validate PATH...`: unit files, drop-ins (checked with the unit
//! and its other drop-ins, as supd merges them) and unit directories,
//! without a daemon. Every error of every file; with the host's checks
//! (cgroup layout, CPUs, devices) and the references a unit makes (bind
//! sources, its program, a seccomp profile, dependencies, capabilities)
//! unless `--offline`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use supd::unit::loader::{self, dropin_dir_unit, unit_name, LoadedUnit, Outcome};
use supd::unit::UnitError;

/// The directories supd reads by default: dependencies may be in any.
const DEFAULT_DIRS: [&str; 3] = ["/etc/supd/units", "/run/supd/units", "/usr/lib/supd/units"];
/// supd's default --state-dir, where its image store is.
const DEFAULT_STATE_DIR: &str = "/var/lib/supd";

struct Report {
    unit: Option<String>,
    file: PathBuf,
    masked: bool,
    errors: Vec<UnitError>,
}

/// A unit to check: its name and the directory it is in.
fn targets(paths: &[PathBuf], reports: &mut Vec<Report>) -> BTreeSet<(String, PathBuf)> {
    let mut units = BTreeSet::new();
    for path in paths {
        let bad = |message: String| Report {
            unit: None,
            file: path.clone(),
            masked: false,
            errors: vec![UnitError {
                file: path.clone(),
                line: 0,
                column: 0,
                field: String::new(),
                message,
            }],
        };
        if path.is_dir() {
            for (name, _) in loader::load_dirs(std::slice::from_ref(path), None) {
                units.insert((name, path.clone()));
            }
            continue;
        }
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let parent = path.parent().unwrap_or(Path::new("."));
        let dir_name = parent.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(name) = unit_name(file_name).filter(|_| dropin_dir_unit(dir_name).is_none()) {
            units.insert((name.to_string(), parent.to_path_buf()));
        } else if let (Some(name), true) =
            (dropin_dir_unit(dir_name), loader::is_dropin_name(file_name))
        {
            // A drop-in: its unit, with every drop-in, from the directory
            // above.
            units.insert((
                name.to_string(),
                parent.parent().unwrap_or(Path::new(".")).to_path_buf(),
            ));
        } else {
            reports.push(bad(
                "not a unit file, a drop-in or a directory: expected NAME.yaml with NAME matching [a-z0-9][a-z0-9_.-]{0,62}, NAME.yaml.d/*.yaml, or a directory".into(),
            ));
        }
    }
    units
}

pub fn run(paths: &[PathBuf], offline: bool, json: bool) -> anyhow::Result<u8> {
    let host = (!offline)
        .then(|| supd::runtime::cgroup::probe_host(Path::new("/sys/fs/cgroup")))
        .flatten()
        .map(|cgroups| supd::unit::host::HostInfo {
            cgroups,
            online_cpus: supd::unit::host::HostInfo::online_cpus(),
        });
    let mut reports = Vec::new();
    let targets = targets(paths, &mut reports);
    let mut dirs: Vec<PathBuf> = targets.iter().map(|(_, dir)| dir.clone()).collect();
    dirs.dedup();
    // Every unit of those directories (and the default ones, on the target
    // host) is a name a unit may depend on.
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut loaded: BTreeMap<PathBuf, BTreeMap<String, LoadedUnit>> = BTreeMap::new();
    for dir in &dirs {
        let units = loader::load_dirs(std::slice::from_ref(dir), host.as_ref());
        known.extend(units.keys().cloned());
        loaded.insert(dir.clone(), units);
    }
    if !offline {
        let defaults: Vec<PathBuf> = DEFAULT_DIRS.iter().map(PathBuf::from).collect();
        known.extend(loader::load_dirs(&defaults, None).into_keys());
    }
    let bounding = (!offline)
        .then(supd::unit::check::own_bounding_set)
        .flatten();
    for (name, dir) in &targets {
        let Some(unit) = loaded.get_mut(dir).and_then(|units| units.remove(name)) else {
            continue;
        };
        reports.push(check_unit(name, unit, &known, offline, bounding.as_ref()));
    }
    let failed = reports.iter().any(|r| !r.errors.is_empty());
    if json {
        let list: Vec<serde_json::Value> = reports
            .iter()
            .map(|r| {
                serde_json::json!({
                    "unit": r.unit,
                    "file": r.file,
                    "ok": r.errors.is_empty(),
                    "masked": r.masked,
                    "errors": r.errors.iter().map(|e| serde_json::json!({
                        "file": e.file, "line": e.line, "column": e.column,
                        "field": e.field, "message": e.message,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        for report in &reports {
            if report.errors.is_empty() {
                let note = match (report.masked, &report.unit) {
                    (true, Some(name)) => format!(" (masks unit {name})"),
                    _ => String::new(),
                };
                println!("{}: ok{note}", report.file.display());
            }
            for error in &report.errors {
                eprintln!("{error}");
            }
        }
    }
    Ok(u8::from(failed))
}

fn check_unit(
    name: &str,
    unit: LoadedUnit,
    known: &BTreeSet<String>,
    offline: bool,
    bounding: Option<&BTreeSet<String>>,
) -> Report {
    let mut report = Report {
        unit: Some(name.to_string()),
        file: unit.source.clone(),
        masked: false,
        errors: Vec::new(),
    };
    match unit.outcome {
        Outcome::Masked => report.masked = true,
        Outcome::Invalid(error) => {
            report.errors = every_error(name, &unit.source, &unit.dropins, error);
        }
        Outcome::Valid(mut valid) if !offline => {
            let text = std::fs::read_to_string(&unit.source).unwrap_or_default();
            let mut findings = Vec::new();
            if valid.image.is_some() {
                if let Err(message) = resolve_image(&mut valid) {
                    findings.push(("image".to_string(), message));
                }
            }
            findings.extend(supd::unit::check::references(&valid, known, bounding));
            for (field, message) in findings {
                report.errors.push(supd::unit::locate_error(
                    &unit.source,
                    &text,
                    &field,
                    message,
                ));
            }
        }
        Outcome::Valid(_) => {}
    }
    report
}

/// An image unit against the image store of this machine's supd (its
/// default state directory): the image must be imported, and its program
/// is then looked for in its layers. Without a store nothing is said.
fn resolve_image(unit: &mut supd::unit::Unit) -> Result<(), String> {
    let root = supd::images::Store::root_in(Path::new(DEFAULT_STATE_DIR));
    if !root.is_dir() {
        return Ok(());
    }
    let (store, _) = supd::images::Store::load(&root, false);
    supd::images::resolve::resolve(unit, &store, None)
}

/// The loader stops at the first error; a unit file without drop-ins is
/// read again for all of them. With drop-ins the merge decides which
/// value counts, so the loader's error is the one. An error of the host
/// checks or an input file comes after parsing succeeded: it is the one.
fn every_error(name: &str, source: &Path, dropins: &[PathBuf], first: UnitError) -> Vec<UnitError> {
    if !dropins.is_empty() || first.file != source {
        return vec![first];
    }
    let text = std::fs::read_to_string(source).unwrap_or_default();
    let all = supd::unit::check::all_errors(name, source, &text);
    if all.is_empty() {
        vec![first]
    } else {
        all
    }
}
