//! Reconcile benchmarks: `cargo bench --bench reconcile` (as root for the
//! live part). Prints median and p95 of each measurement.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use supd::plan::{plan, Actual};
use supd::unit::loader::{load_dirs, Outcome};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[index]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    let median = percentile(&mut samples, 0.5);
    let p95 = percentile(&mut samples, 0.95);
    println!(
        "{what:<48} median {:>9.3} ms   p95 {:>9.3} ms   (n={})",
        median.as_secs_f64() * 1e3,
        p95.as_secs_f64() * 1e3,
        samples.len()
    );
}

fn write_units(dir: &Path, count: usize) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        let text = format!(
            "description: unit {i}\nrootfs: /srv/root\nexec: [/bin/sleep, '{i}']\nenv: {{ N: '{i}' }}\nrestart: {{ policy: always, delay: 1s }}\nmounts: [{{ type: tmpfs, target: /tmp, size: 8M }}]\n"
        );
        fs::write(dir.join(format!("u{i}.yaml")), text).unwrap();
    }
}

fn as_actual(desired: &BTreeMap<String, Outcome>) -> BTreeMap<String, Actual> {
    desired
        .iter()
        .map(|(name, outcome)| {
            let unit = match outcome {
                Outcome::Valid(unit) => Some((**unit).clone()),
                _ => None,
            };
            (
                name.clone(),
                Actual {
                    unit,
                    active: true,
                    masked: false,
                },
            )
        })
        .collect()
}

fn pure_benchmarks() {
    let dir = std::env::temp_dir().join(format!("supd-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    write_units(&dir, 500);
    let dirs = vec![dir.clone()];
    let mut load_and_plan = Vec::new();
    for _ in 0..30 {
        let began = Instant::now();
        let loaded = load_dirs(&dirs, None);
        let desired: BTreeMap<String, Outcome> =
            loaded.into_iter().map(|(n, u)| (n, u.outcome)).collect();
        let actions = plan(&desired, &BTreeMap::new());
        load_and_plan.push(began.elapsed());
        assert_eq!(actions.len(), 500);
    }
    report("load and plan 500 units (cold)", load_and_plan);

    let loaded = load_dirs(&dirs, None);
    let desired: BTreeMap<String, Outcome> =
        loaded.into_iter().map(|(n, u)| (n, u.outcome)).collect();
    let actual = as_actual(&desired);
    let mut replan = Vec::new();
    for round in 0..30 {
        fs::write(
            dir.join("u7.yaml"),
            format!("rootfs: /srv/root\nexec: [/bin/echo, '{round}']\n"),
        )
        .unwrap();
        let began = Instant::now();
        let loaded = load_dirs(&dirs, None);
        let desired: BTreeMap<String, Outcome> =
            loaded.into_iter().map(|(n, u)| (n, u.outcome)).collect();
        let actions = plan(&desired, &actual);
        replan.push(began.elapsed());
        let changed = actions
            .iter()
            .filter(|(_, a)| !matches!(a, supd::plan::Action::Keep(_)))
            .count();
        assert_eq!(changed, 1);
    }
    report("re-plan after one edit among 500 units", replan);
    fs::remove_dir_all(&dir).unwrap();
}

/// From the unit file written to the workload having run (it creates a file
/// on a bind mount), through inotify, the debounce, planning and spawning.
fn live_benchmark() {
    if !nix::unistd::geteuid().is_root() {
        println!("(not root: skipping the live daemon benchmark)");
        return;
    }
    let daemon = common::Daemon::start();
    let data: PathBuf = daemon.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    let mut samples = Vec::new();
    for i in 0..30 {
        let marker = data.join(format!("ran-{i}"));
        let unit = common::sh_unit(
            &daemon,
            &format!(": > /data/ran-{i}; exec sleep 1000"),
            &format!(
                "mounts: [{{ type: bind, source: {}, target: /data }}]\n",
                data.display()
            ),
        );
        let began = Instant::now();
        daemon.write_unit(&format!("b{i}"), &unit);
        while !marker.exists() {
            std::thread::sleep(Duration::from_micros(200));
            assert!(
                began.elapsed() < Duration::from_secs(10),
                "unit b{i} never ran"
            );
        }
        samples.push(began.elapsed());
    }
    report(
        "unit file written -> workload ran (20 ms debounce)",
        samples,
    );
    daemon.stop();
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // we need: run everything either way.
    pure_benchmarks();
    live_benchmark();
}
