//! Pure reconcile: what the unit files want against what supd has, as a list
//! of actions. No I/O here, so every decision is tested without root.

pub mod claims;

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
    /// A unit to run that is not active: adopt the config and start it
    /// afresh (no back-off, a new start-limit budget, `failed` cleared).
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
/// Units in a `depends_on` cycle are planned as invalid, naming the cycle.
pub fn plan(
    desired: &BTreeMap<String, Outcome>,
    actual: &BTreeMap<String, Actual>,
) -> Vec<(String, Action)> {
    let cycles = dependency_cycles(desired);
    let names: BTreeSet<&String> = desired.keys().chain(actual.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| {
            if let Some(cycle) = cycles.get(name) {
                return Some((
                    name.clone(),
                    Action::Invalid(cycle_error(name, desired, cycle)),
                ));
            }
            let action = decide(desired.get(name), actual.get(name))?;
            Some((name.clone(), action))
        })
        .collect()
}

fn cycle_error(name: &str, desired: &BTreeMap<String, Outcome>, cycle: &[String]) -> UnitError {
    let mut path = cycle.to_vec();
    if let Some(first) = path.first().cloned() {
        path.push(first);
    }
    let file = match desired.get(name) {
        Some(Outcome::Valid(unit)) => std::path::PathBuf::from(format!("{}.yaml", unit.name)),
        _ => std::path::PathBuf::from(format!("{name}.yaml")),
    };
    UnitError {
        file,
        line: 0,
        column: 0,
        field: "depends_on".into(),
        message: format!("dependency cycle: {}", path.join(" -> ")),
    }
}

/// For every valid unit that lies on a `depends_on` cycle, the cycle (in
/// dependency order, starting from the smallest name). Tarjan's strongly
/// connected components, iteratively, so 500 units cost nothing.
pub fn dependency_cycles(desired: &BTreeMap<String, Outcome>) -> BTreeMap<String, Vec<String>> {
    let deps = |name: &str| -> Vec<&str> {
        match desired.get(name) {
            Some(Outcome::Valid(unit)) => unit
                .depends_on
                .iter()
                .map(String::as_str)
                .filter(|d| matches!(desired.get(*d), Some(Outcome::Valid(_))))
                .collect(),
            _ => Vec::new(),
        }
    };
    let names: Vec<&str> = desired
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Valid(_)))
        .map(|(n, _)| n.as_str())
        .collect();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut low: BTreeMap<&str, usize> = BTreeMap::new();
    let mut on_stack: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut result = BTreeMap::new();
    let mut counter = 0;
    for &root in &names {
        if index.contains_key(root) {
            continue;
        }
        let mut work: Vec<(&str, usize)> = vec![(root, 0)];
        while let Some((node, child)) = work.pop() {
            if child == 0 {
                index.insert(node, counter);
                low.insert(node, counter);
                counter += 1;
                stack.push(node);
                on_stack.insert(node);
            }
            let children = deps(node);
            if let Some(&next) = children.get(child) {
                work.push((node, child + 1));
                if !index.contains_key(next) {
                    work.push((next, 0));
                } else if on_stack.contains(next) {
                    let lowest = low[node].min(index[next]);
                    low.insert(node, lowest);
                }
                continue;
            }
            if let Some(&(parent, _)) = work.last() {
                let lowest = low[parent].min(low[node]);
                low.insert(parent, lowest);
            }
            if low[node] == index[node] {
                let mut component = Vec::new();
                while let Some(member) = stack.pop() {
                    on_stack.remove(member);
                    component.push(member.to_string());
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    let ordered = order_cycle(&component, &deps);
                    for member in &component {
                        result.insert(member.clone(), ordered.clone());
                    }
                }
            }
        }
    }
    result
}

/// Walks the component from its smallest name along dependencies inside it,
/// so the message reads as a path: a -> b -> c.
fn order_cycle<'a>(component: &[String], deps: &dyn Fn(&str) -> Vec<&'a str>) -> Vec<String> {
    let members: BTreeSet<&str> = component.iter().map(String::as_str).collect();
    let Some(&start) = members.iter().next() else {
        return Vec::new();
    };
    let mut path = vec![start.to_string()];
    let mut current = start;
    while let Some(next) = deps(current)
        .into_iter()
        .find(|d| members.contains(d) && !path.iter().any(|p| p == d))
    {
        path.push(next.to_string());
        current = next;
    }
    path
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
    // A changed file always gets a fresh start, whatever stopped the unit
    // (an operator, its restart policy, its start limit).
    Some(if !actual.active {
        Action::Start(unit)
    } else if only_live_fields_differ(previous, &unit) {
        Action::UpdateLive(unit)
    } else {
        Action::Restart(unit)
    })
}

/// Fields that can change without a new container: the description, the
/// restart, stop and logging policies (supd applies them itself), the
/// cgroup limits and the devices and device rules (written into the
/// running container's cgroup, nodes bound into its /dev). The
/// oom_score_adj is a process attribute set at start, so it is not live.
/// A storage size changes live (a project quota, a grown ext4 image), but
/// adding or removing the limit moves the writable layer, and a tmpfs
/// upper is gone with its mount namespace: those need a new container.
fn only_live_fields_differ(old: &Unit, new: &Unit) -> bool {
    let storage_live = match (old.resources.storage_size, new.resources.storage_size) {
        (Some(_), Some(_)) => new.volatile != crate::unit::Volatile::Overlay,
        (None, None) => true,
        _ => false,
    };
    if !storage_live {
        return false;
    }
    let mut old = old.clone();
    old.description.clone_from(&new.description);
    old.restart = new.restart.clone();
    old.stop = new.stop.clone();
    old.logging = new.logging.clone();
    old.devices.clone_from(&new.devices);
    old.device_rules.clone_from(&new.device_rules);
    let oom_score_adj = old.resources.oom_score_adj;
    old.resources = new.resources.clone();
    old.resources.oom_score_adj = oom_score_adj;
    old == *new
}

#[cfg(test)]
mod tests;
