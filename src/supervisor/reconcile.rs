//! Reading the unit directories and applying the planner's actions.

use super::entry::{AfterStop, Entry, State};
use super::Supervisor;
use crate::plan::{plan, Action, Actual};
use crate::unit::loader::{load_dirs, Outcome};
use std::collections::BTreeMap;

impl Supervisor {
    pub(super) fn reload(&mut self) {
        let loaded = load_dirs(&self.options.units_dirs, Some(&self.host));
        let mut origins = BTreeMap::new();
        let desired: BTreeMap<String, Outcome> = loaded
            .into_iter()
            .map(|(name, unit)| {
                origins.insert(name.clone(), (unit.source, unit.dropins, unit.effective));
                (name, unit.outcome)
            })
            .collect();
        let actual: BTreeMap<String, Actual> = self
            .entries
            .values()
            .map(|e| {
                let actual = Actual {
                    unit: e.unit.clone(),
                    active: e.is_active(),
                    masked: e.masked,
                };
                (e.name.clone(), actual)
            })
            .collect();
        for (name, action) in plan(&desired, &actual) {
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

    fn entry(&mut self, name: &str) -> &mut Entry {
        let log_path = self.options.dirs.log_file(name);
        self.entries
            .entry(name.to_string())
            .or_insert_with(|| Entry::new(name, log_path))
    }

    fn apply(&mut self, name: &str, action: Action) {
        match action {
            Action::Start(unit) => {
                log::info!("{name}: starting");
                self.entry(name).adopt(*unit);
                self.start_unit(name);
            }
            Action::Restart(unit) => {
                log::info!("{name}: unit changed, restarting");
                let entry = self.entry(name);
                entry.adopt(*unit);
                if entry.run.is_some() {
                    self.stop_unit(name, AfterStop::Start);
                } else {
                    entry.timer = None;
                    self.start_unit(name);
                }
            }
            Action::UpdateLive(unit) => self.update_live(name, *unit),
            Action::Keep(unit) => self.entry(name).adopt(*unit),
            Action::Stop(unit) => {
                log::info!("{name}: disabled, stopping");
                self.entry(name).adopt(*unit);
                self.stop_unit(name, AfterStop::Nothing);
            }
            Action::Mask => {
                log::info!("{name}: masked");
                let entry = self.entry(name);
                entry.masked = true;
                entry.config_error = None;
                self.stop_unit(name, AfterStop::Nothing);
                let entry = self.entry(name);
                entry.unit = None;
                if entry.run.is_none() {
                    entry.set_state(State::Masked);
                }
            }
            Action::Invalid(error) => {
                let entry = self.entry(name);
                if entry.config_error.as_deref() != Some(error.to_string().as_str()) {
                    log::warn!("{error}");
                }
                entry.config_error = Some(error.to_string());
                if entry.unit.is_none() && !entry.masked {
                    entry.set_state(State::Invalid);
                }
            }
            Action::Remove => {
                log::info!("{name}: unit file removed, stopping");
                self.ipam.release(name);
                self.id_ranges.release(name);
                let active = self.entry(name).run.is_some();
                if active {
                    self.stop_unit(name, AfterStop::Forget);
                } else {
                    self.entries.remove(name);
                }
            }
        }
    }
}
