//! Pure reconcile: what the unit files want against what supd has, as a list
//! of actions. No I/O here, so every decision is tested without root.

use crate::unit::loader::Outcome;
use crate::unit::{Unit, UnitError};
use std::collections::{BTreeMap, BTreeSet};

/// What supd currently holds for a name.
#[derive(Clone, Debug, PartialEq)]
pub struct Actual {
    /// The configuration in force (the last valid one), if any.
    pub unit: Option<Unit>,
    /// A container process exists or is scheduled (running, starting,
    /// back-off): something a stop has to undo.
    pub active: bool,
    pub masked: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A unit to run that is not active: adopt the config and start it.
    Start(Box<Unit>),
    /// The config changed in a way that needs a new container.
    Restart(Box<Unit>),
    /// Only live-settable fields changed: apply them to the running container.
    UpdateLive(Box<Unit>),
    /// Adopt the (possibly new) config without touching any process.
    Keep(Box<Unit>),
    /// The unit is disabled: adopt the config and stop what runs.
    Stop(Box<Unit>),
    /// An empty file or /dev/null symlink: stop and show as masked.
    Mask,
    /// The file is invalid: keep whatever runs, show the error.
    Invalid(UnitError),
    /// The file is gone: stop and forget the unit.
    Remove,
}

/// Compares the canonical forms (the validated unit with defaults applied),
/// so comments, key order and identical rewrites change nothing.
pub fn plan(
    desired: &BTreeMap<String, Outcome>,
    actual: &BTreeMap<String, Actual>,
) -> Vec<(String, Action)> {
    let names: BTreeSet<&String> = desired.keys().chain(actual.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            let action = decide(desired.get(name), actual.get(name))?;
            Some((name.clone(), action))
        })
        .collect()
}

fn decide(desired: Option<&Outcome>, actual: Option<&Actual>) -> Option<Action> {
    let desired = match desired {
        None => return actual.map(|_| Action::Remove),
        Some(d) => d,
    };
    let unit = match desired {
        Outcome::Masked => {
            return match actual {
                Some(a) if a.masked && !a.active => None,
                _ => Some(Action::Mask),
            }
        }
        Outcome::Invalid(error) => return Some(Action::Invalid(error.clone())),
        Outcome::Valid(unit) => unit.clone(),
    };
    let Some(actual) = actual else {
        return Some(if unit.enabled {
            Action::Start(unit)
        } else {
            Action::Keep(unit)
        });
    };
    if !unit.enabled {
        return Some(if actual.active {
            Action::Stop(unit)
        } else {
            Action::Keep(unit)
        });
    }
    let previous = match (&actual.unit, actual.masked) {
        (Some(previous), false) => previous,
        _ => return Some(Action::Start(unit)),
    };
    if !previous.enabled {
        return Some(Action::Start(unit));
    }
    if *previous == *unit {
        return Some(Action::Keep(unit));
    }
    Some(if !actual.active {
        Action::Keep(unit)
    } else if only_live_fields_differ(previous, &unit) {
        Action::UpdateLive(unit)
    } else {
        Action::Restart(unit)
    })
}

/// Fields that can change without a new container: the description and the
/// restart, stop and logging policies, which supd itself applies.
fn only_live_fields_differ(old: &Unit, new: &Unit) -> bool {
    let mut old = old.clone();
    old.description.clone_from(&new.description);
    old.restart = new.restart.clone();
    old.stop = new.stop.clone();
    old.logging = new.logging.clone();
    old == *new
}

#[cfg(test)]
mod tests;
