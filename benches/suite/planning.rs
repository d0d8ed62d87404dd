//! The pure part of a reconcile (no daemon, no root): loading 500 unit files
//! and planning against the running set.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use supd::plan::{plan, Action, Actual};
use supd::unit::loader::{load_dirs, Outcome};

fn write_units(dir: &Path, count: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let text = format!(
            "description: unit {i}\nrootfs: /srv/root\nexec: [/bin/sleep, '{i}']\nenv: {{ N: '{i}' }}\nrestart: {{ policy: always, delay: 1s }}\nmounts: [{{ type: tmpfs, target: /tmp, size: 8M }}]\n"
        );
        fs::write(dir.join(format!("u{i}.yaml")), text).unwrap();
    }
}

fn desired(dirs: &[std::path::PathBuf]) -> BTreeMap<String, Outcome> {
    load_dirs(dirs, None)
        .into_iter()
        .map(|(name, loaded)| (name, loaded.outcome))
        .collect()
}

fn as_actual(desired: &BTreeMap<String, Outcome>) -> BTreeMap<String, Actual> {
    desired
        .iter()
        .map(|(name, outcome)| {
            let unit = match outcome {
                Outcome::Valid(unit) => Some((**unit).clone()),
                _ => None,
            };
            let actual = Actual {
                unit,
                active: true,
                masked: false,
            };
            (name.clone(), actual)
        })
        .collect()
}

pub struct Planning {
    pub cold: Vec<Duration>,
    pub after_edit: Vec<Duration>,
    /// The plan alone, over units already loaded (what a reconcile for one
    /// edited file still does for every unit).
    pub replan: Vec<Duration>,
}

pub fn measure(units: usize, rounds: usize) -> Planning {
    let dir = std::env::temp_dir().join(format!("supd-bench-plan-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    write_units(&dir, units);
    let dirs = vec![dir.clone()];
    let mut result = Planning {
        cold: Vec::new(),
        after_edit: Vec::new(),
        replan: Vec::new(),
    };
    for _ in 0..rounds {
        let began = Instant::now();
        let actions = plan(&desired(&dirs), &BTreeMap::new());
        result.cold.push(began.elapsed());
        assert_eq!(actions.len(), units);
    }
    let actual = as_actual(&desired(&dirs));
    for round in 0..rounds {
        let text = format!("rootfs: /srv/root\nexec: [/bin/echo, '{round}']\n");
        fs::write(dir.join("u7.yaml"), text).unwrap();
        let began = Instant::now();
        let actions = plan(&desired(&dirs), &actual);
        result.after_edit.push(began.elapsed());
        let changed = actions
            .iter()
            .filter(|(_, action)| !matches!(action, Action::Keep(_)))
            .count();
        assert_eq!(changed, 1);
    }
    let loaded = desired(&dirs);
    for _ in 0..rounds {
        let began = Instant::now();
        let actions = plan(&loaded.clone(), &actual);
        result.replan.push(began.elapsed());
        assert_eq!(actions.len(), units);
    }
    fs::remove_dir_all(&dir).unwrap();
    result
}
