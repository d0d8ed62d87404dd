//! Reading the unit directories and applying the planner's actions.

use super::entry::{Entry, State};
use super::{monotonic_now, Supervisor};
use crate::control::protocol::EventKind;
use crate::plan::claims::{self, Claim};
use crate::plan::{plan, Action, Actual};
use crate::unit::loader::{load_dirs, load_units, misnamed_files, Outcome};
use std::collections::{BTreeMap, BTreeSet};

type Origins = BTreeMap<String, (std::path::PathBuf, Vec<std::path::PathBuf>, Option<String>)>;

/// The error for a unit's `image:` key, at its line in the last file that
/// sets it.
fn image_error(files: &[&std::path::Path], message: String) -> crate::unit::UnitError {
    let found = files.iter().rev().find_map(|file| {
        let text = crate::files::read_text(
            file,
            crate::files::Links::Follow,
            crate::files::MAX_FILE_BYTES,
        )
        .ok()?;
        let line = text.lines().position(|l| l.starts_with("image:"))?;
        Some((file.to_path_buf(), line.saturating_add(1)))
    });
    let (file, line) = found.unwrap_or_else(|| {
        (
            files.first().map(|f| f.to_path_buf()).unwrap_or_default(),
            0,
        )
    });
    crate::unit::UnitError {
        file,
        line,
        column: usize::from(line > 0),
        field: "image".into(),
        message,
    }
}

impl Supervisor {
    /// Env files and secrets of every unit, and those an invalid unit could
    /// not read (creating them must bring it up).
    fn watch_inputs(&mut self) {
        let mut files = Vec::new();
        for loaded in self.loaded.values() {
            match &loaded.outcome {
                Outcome::Valid(unit) => {
                    files.extend(unit.env_file.iter().cloned());
                    files.extend(unit.secrets.iter().map(|s| s.source.clone()));
                }
                Outcome::Invalid(error)
                    if matches!(error.field.as_str(), "env_file" | "secrets") =>
                {
                    files.push(error.file.clone());
                }
                _ => {}
            }
        }
        // New watches may have missed a change made since the files were
        // read: a changed watch set reads them once more.
        let changed = self.watcher.watch_inputs(files);
        self.after_watch(super::watch::Changes::everything_if(changed));
    }

    /// Reads the unit directories whole and reconciles.
    pub(super) fn reload(&mut self) {
        self.warn_misnamed();
        // Whatever events were pending, this read sees.
        self.reload_scope = super::watch::Changes::default();
        self.loaded = load_dirs(&self.options.units_dirs, Some(&self.host));
        // Units that went away too: their plan is to be removed.
        let all = self
            .loaded
            .keys()
            .chain(self.entries.keys())
            .cloned()
            .collect();
        self.reconcile_loaded(
            &all,
            format!("unit directories read: {} units", self.loaded.len()),
        );
    }

    /// Reads the files of these units again (what events named) and
    /// reconciles; every other unit stays as the last read found it.
    pub(super) fn reload_units(&mut self, names: &BTreeSet<String>) {
        // Past this, listing the directories costs less than looking for
        // each name in each of them.
        const WHOLE_READ_PAST: usize = 64;
        if names.len() > WHOLE_READ_PAST {
            return self.reload();
        }
        for (name, loaded) in load_units(&self.options.units_dirs, names, Some(&self.host)) {
            match loaded {
                Some(unit) => self.loaded.insert(name, unit),
                None => self.loaded.remove(&name),
            };
        }
        let listed: Vec<&str> = names.iter().map(String::as_str).collect();
        let what = format!(
            "unit files read: {} ({} units)",
            listed.join(", "),
            self.loaded.len()
        );
        let affected = self.affected_by(names);
        self.reconcile_loaded(&affected, what);
    }

    /// The units whose plan a change of `names` can alter: those, whatever
    /// depends on them (a new dependency cycle runs through its
    /// dependents), every unit with a fixed address or port (conflicts are
    /// judged among all of them), and every unit now refused or invalid
    /// (the change may lift that). Any other unit keeps its plan.
    fn affected_by(&self, names: &BTreeSet<String>) -> BTreeSet<String> {
        let mut affected = names.clone();
        let mut dependents: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, loaded) in &self.loaded {
            let Outcome::Valid(unit) = &loaded.outcome else {
                continue;
            };
            if !claims::fixed_claims(unit).is_empty() {
                affected.insert(name.clone());
            }
            for dependency in &unit.depends_on {
                dependents.entry(dependency).or_default().push(name);
            }
        }
        let mut queue: Vec<String> = names.iter().cloned().collect();
        while let Some(name) = queue.pop() {
            for dependent in dependents.get(name.as_str()).into_iter().flatten() {
                if affected.insert(dependent.to_string()) {
                    queue.push(dependent.to_string());
                }
            }
        }
        affected.extend(
            self.entries
                .values()
                .filter(|e| e.config_error.is_some() || e.state() == State::Invalid)
                .map(|e| e.name.clone()),
        );
        affected
    }

    /// Plans these units as last read against what runs, and acts.
    fn reconcile_loaded(&mut self, names: &BTreeSet<String>, what: String) {
        let mut origins = BTreeMap::new();
        let mut desired: BTreeMap<String, Outcome> = self
            .loaded
            .iter()
            .filter(|(name, _)| names.contains(*name))
            .map(|(name, unit)| {
                let origin = (
                    unit.source.clone(),
                    unit.dropins.clone(),
                    unit.effective.clone(),
                );
                origins.insert(name.clone(), origin);
                (name.clone(), unit.outcome.clone())
            })
            .collect();
        let sources = origins
            .iter()
            .map(|(name, (source, _, _))| (name.clone(), source.clone()))
            .collect();
        self.watch_inputs();
        self.resolve_images(&mut desired, &origins);
        let held = self.held_claims(&desired);
        self.claims_refused = claims::refuse_conflicts(&mut desired, &held, &sources) > 0;
        let actual: BTreeMap<String, Actual> = names
            .iter()
            .filter_map(|name| self.entries.get(name))
            .map(|e| {
                let actual = Actual {
                    unit: e.unit.clone(),
                    active: e.machine.is_active(),
                    masked: e.machine.is_masked(),
                };
                (e.name.clone(), actual)
            })
            .collect();
        let actions = plan(&desired, &actual);
        let changed = actions
            .iter()
            .filter(|(_, action)| !matches!(action, Action::Keep(_)))
            .count();
        self.emit(super::events::event(
            None,
            EventKind::Reconcile,
            format!("{what}, {changed} to act on"),
        ));
        for (name, action) in actions {
            if let Some((source, dropins, effective)) = origins.remove(&name) {
                let entry = self.entry(&name);
                entry.source = Some(source);
                entry.dropins = dropins;
                // An invalid edit keeps showing the configuration in force.
                if effective.is_some() {
                    entry.effective = effective;
                }
            }
            self.apply(&name, action);
        }
    }

    /// Fills every `image:` unit in from the store (or the image a
    /// rollback pinned it to); a unit whose image is not there is invalid
    /// until an import brings it.
    fn resolve_images(&mut self, desired: &mut BTreeMap<String, Outcome>, origins: &Origins) {
        for (name, outcome) in desired.iter_mut() {
            let Outcome::Valid(unit) = outcome else {
                continue;
            };
            let Some(reference) = unit.image.as_ref().map(|i| i.reference.clone()) else {
                continue;
            };
            let pinned = self.pinned_image(name, &reference);
            if let Err(message) =
                crate::images::resolve::resolve(unit, &self.images, pinned.as_deref())
            {
                let files: Vec<&std::path::Path> = origins
                    .get(name)
                    .map(|(source, dropins, _)| {
                        std::iter::once(source.as_path())
                            .chain(dropins.iter().map(|d| d.as_path()))
                            .collect()
                    })
                    .unwrap_or_default();
                *outcome = Outcome::Invalid(image_error(&files, message));
            }
        }
    }

    /// What other units hold already: the fixed claims of running
    /// containers, and the `auto` addresses and id ranges leased to units.
    fn held_claims(&self, desired: &BTreeMap<String, Outcome>) -> Vec<(String, Claim)> {
        let mut held: Vec<(String, Claim)> = self
            .entries
            .values()
            .filter(|e| e.machine.is_active())
            .filter_map(|e| Some((e.name.clone(), claims::fixed_claims(e.unit.as_ref()?))))
            .flat_map(|(name, claims)| claims.into_iter().map(move |(_, c)| (name.clone(), c)))
            .collect();
        let config_of = |name: &str| match desired.get(name) {
            Some(Outcome::Valid(unit)) => Some(unit.as_ref()),
            _ => self.entries.get(name)?.unit.as_ref(),
        };
        // A lease counts while its unit still asks for `auto`.
        for (name, lease) in self.ipam.leases() {
            let Some(unit) = config_of(name).filter(|u| u.network.address.is_none()) else {
                continue;
            };
            if let Some(segment) = claims::segment(unit) {
                let ip = lease.ip;
                held.push((name.to_string(), Claim::Address { segment, ip }));
            }
        }
        let auto_range = |name: &str| {
            config_of(name).is_some_and(|u| {
                u.security.user_namespace == Some(crate::unit::security::UserNamespace::Auto)
            })
        };
        for (name, start, count) in self.id_ranges.leases().filter(|(n, _, _)| auto_range(n)) {
            let (start, end) = (
                u64::from(start),
                u64::from(start).saturating_add(count.into()),
            );
            held.push((name.to_string(), Claim::Uids { start, end }));
            held.push((name.to_string(), Claim::Gids { start, end }));
        }
        held
    }

    /// Once per file (again if it comes back after going away).
    fn warn_misnamed(&mut self) {
        let misnamed: std::collections::BTreeSet<std::path::PathBuf> =
            misnamed_files(&self.options.units_dirs)
                .into_iter()
                .collect();
        for path in misnamed.difference(&self.misnamed) {
            log::warn!(
                "{}: ignored: a unit file name is NAME.yaml with NAME matching [a-z0-9][a-z0-9_.-]{{0,62}}",
                path.display()
            );
        }
        self.misnamed = misnamed;
    }

    fn entry(&mut self, name: &str) -> &mut Entry {
        let dirs = &self.options.dirs;
        self.entries
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(name, dirs, monotonic_now()))
    }

    fn apply(&mut self, name: &str, action: Action) {
        let now = monotonic_now();
        // A unit kept as it was changes nothing its record holds.
        let unchanged = matches!(&action, Action::Keep(unit)
            if self.entries.get(name).and_then(|e| e.unit.as_ref()) == Some(unit.as_ref()));
        if !unchanged {
            self.dirty.insert(name.to_string());
        }
        let reconciled =
            |message: &str| super::events::event(Some(name), EventKind::Reconcile, message);
        match action {
            Action::Start(unit) => {
                self.entry(name).adopt(*unit, now);
                if self.honour_intent(name) {
                    return;
                }
                log::info!("{name}: starting");
                self.emit(reconciled("new or changed file: starting"));
                self.drive(name, |machine, now| machine.file_start(now));
            }
            Action::Restart(unit) => {
                log::info!("{name}: unit changed, restarting");
                self.emit(reconciled("unit changed: restarting"));
                self.entry(name).adopt(*unit, now);
                self.drive(name, |machine, now| machine.file_changed(now));
            }
            Action::UpdateLive(unit) => {
                self.emit(reconciled("unit changed: applied to the running container"));
                self.update_live(name, *unit)
            }
            Action::Keep(unit) => self.entry(name).adopt(*unit, now),
            Action::Stop(unit) => {
                log::info!("{name}: disabled, stopping");
                self.emit(reconciled("disabled: stopping"));
                self.entry(name).adopt(*unit, now);
                self.drive(name, |machine, now| machine.disable(now));
            }
            Action::Mask => {
                log::info!("{name}: masked");
                self.emit(reconciled("masked"));
                let entry = self.entry(name);
                entry.config_error = None;
                entry.unit = None;
                self.drive(name, |machine, now| machine.mask(now));
            }
            Action::Invalid(error) => {
                let entry = self.entry(name);
                let text = error.to_string();
                let new = entry.config_error.as_deref() != Some(text.as_str());
                entry.config_error = Some(text.clone());
                entry.machine.invalid(now);
                self.emit_transitions(name, now);
                if new {
                    log::warn!("{error}");
                    self.emit(super::events::event(Some(name), EventKind::Invalid, text));
                }
            }
            Action::Remove => {
                log::info!("{name}: unit file removed, stopping");
                self.emit(reconciled("unit file removed: stopping"));
                self.drive(name, |machine, now| machine.remove(now));
            }
        }
    }
}
