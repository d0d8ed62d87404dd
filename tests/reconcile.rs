//! Live reconcile: the daemon follows file changes on its own (no reload).

mod common;

use common::*;
use std::fs;
use std::os::unix::fs::symlink;
use std::time::Duration;

const SLEEPER: &str = "echo up; exec sleep 1000";

/// Waits for a running container whose pid differs from `old`.
fn wait_new_pid(d: &Daemon, name: &str, old: i32) -> i32 {
    let mut pid = old;
    d.wait_for("a new container", WAIT, || {
        let status = d.status(name);
        pid = status["pid"].as_i64().unwrap_or(0) as i32;
        status["state"] == "running" && pid != old && pid != 0
    });
    pid
}

/// Gives the watcher time to react to something that must change nothing.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn files_added_changed_and_removed_are_followed_without_reload() {
    let d = Daemon::start();
    d.write_unit("web", &sh_unit(&d, SLEEPER, ""));
    let first = d.pid("web");
    // Touching, rewriting identically, comments and key order: no restart.
    // The rewrites replace the file whole (temp file, rename): a rewrite in
    // place can be read half-written, under emulation even after the
    // debounce, and that is a different unit.
    let path = d.units.join("web.yaml");
    let text = fs::read_to_string(&path).unwrap();
    let touched = fs::File::options().append(true).open(&path).unwrap();
    touched.set_modified(std::time::SystemTime::now()).unwrap();
    drop(touched);
    let replace = |content: &str| {
        let tmp = d.units.join(".web.yaml.tmp");
        fs::write(&tmp, content).unwrap();
        fs::rename(&tmp, &path).unwrap();
    };
    replace(&text);
    let reordered: Vec<&str> = text.lines().rev().collect();
    replace(&format!("# a comment\n{}\n", reordered.join("\n")));
    settle();
    assert_eq!(d.pid("web"), first);
    // A new exec restarts with a new pid.
    d.write_unit("web", &sh_unit(&d, "echo v2; exec sleep 1000", ""));
    wait_new_pid(&d, "web", first);
    d.wait_log("web", "v2");
    // Deleting the file stops the container and forgets the unit.
    fs::remove_file(&path).unwrap();
    d.wait_for("the unit to be forgotten", WAIT, || {
        d.supctl(&["status", "web"]).status.code() == Some(4)
    });
    let needle = format!("{}/", d.dir.display());
    let daemon = format!("{}: ", d.daemon_pid());
    let left: Vec<String> = processes_mentioning(&needle)
        .into_iter()
        .filter(|p| !p.starts_with(&daemon))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    d.stop();
}

#[test]
fn editor_saves_and_temp_files_are_handled() {
    let d = Daemon::start();
    d.write_unit("ed", &sh_unit(&d, SLEEPER, ""));
    let first = d.pid("ed");
    // vim's probe file, swap and backup files, other temp files: ignored.
    for junk in [
        "4913",
        ".ed.yaml.swp",
        "ed.yaml~",
        "ed.yaml.tmp",
        ".hidden.yaml",
    ] {
        fs::write(d.units.join(junk), "exec: [garbage\n").unwrap();
    }
    settle();
    assert_eq!(d.pid("ed"), first);
    let listed = String::from_utf8(d.supctl(&["status"]).stdout).unwrap();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    // Write to a temp file, then rename over the unit: one restart.
    let tmp = d.units.join(".ed.yaml.tmp123");
    fs::write(&tmp, sh_unit(&d, "echo renamed; exec sleep 1000", "")).unwrap();
    fs::rename(&tmp, d.units.join("ed.yaml")).unwrap();
    wait_new_pid(&d, "ed", first);
    d.wait_log("ed", "renamed");
    d.stop();
}

#[test]
fn kubernetes_style_data_symlink_swap() {
    let d = Daemon::start();
    let v1 = d.units.join("..v1");
    fs::create_dir_all(&v1).unwrap();
    fs::write(
        v1.join("cm.yaml"),
        sh_unit(&d, "echo one; exec sleep 1000", ""),
    )
    .unwrap();
    symlink("..v1", d.units.join("..data")).unwrap();
    symlink("..data/cm.yaml", d.units.join("cm.yaml")).unwrap();
    let first = d.pid("cm");
    d.wait_log("cm", "one");
    let v2 = d.units.join("..v2");
    fs::create_dir_all(&v2).unwrap();
    fs::write(
        v2.join("cm.yaml"),
        sh_unit(&d, "echo two; exec sleep 1000", ""),
    )
    .unwrap();
    symlink("..v2", d.units.join("..data_tmp")).unwrap();
    fs::rename(d.units.join("..data_tmp"), d.units.join("..data")).unwrap();
    wait_new_pid(&d, "cm", first);
    d.wait_log("cm", "two");
    d.stop();
}

#[test]
fn dropins_are_merged_and_followed() {
    let d = Daemon::start();
    d.write_unit(
        "app",
        &sh_unit(&d, "echo color=$COLOR; exec sleep 1000", "")
            .replace("env: {", "env: { COLOR: red,"),
    );
    let first = d.pid("app");
    d.wait_log("app", "color=red");
    let dropins = d.units.join("app.yaml.d");
    fs::create_dir_all(&dropins).unwrap();
    fs::write(dropins.join("10-color.yaml"), "env: { COLOR: blue }\n").unwrap();
    let second = wait_new_pid(&d, "app", first);
    d.wait_log("app", "color=blue");
    let show = String::from_utf8(d.supctl(&["show", "app"]).stdout).unwrap();
    assert!(
        show.starts_with(&format!(
            "# {}\n# {}\n",
            d.units.join("app.yaml").display(),
            dropins.join("10-color.yaml").display()
        )),
        "{show}"
    );
    assert!(show.contains("COLOR: blue"), "{show}");
    fs::remove_file(dropins.join("10-color.yaml")).unwrap();
    wait_new_pid(&d, "app", second);
    d.wait_for("red again", WAIT, || {
        d.log("app").matches("color=red").count() == 2
    });
    d.stop();
}

#[test]
fn masking_and_unmasking() {
    let d = Daemon::start();
    d.write_unit("m", &sh_unit(&d, SLEEPER, ""));
    d.pid("m");
    let path = d.units.join("m.yaml");
    let text = fs::read_to_string(&path).unwrap();
    fs::remove_file(&path).unwrap();
    symlink("/dev/null", &path).unwrap();
    d.wait_state("m", "masked");
    fs::remove_file(&path).unwrap();
    fs::write(&path, "").unwrap();
    settle();
    assert_eq!(d.state("m"), "masked", "an empty file masks too");
    fs::write(&path, text).unwrap();
    d.wait_state("m", "running");
    d.stop();
}

#[test]
fn an_invalid_edit_keeps_the_container_and_shows_the_error() {
    let d = Daemon::start();
    let good = sh_unit(&d, SLEEPER, "");
    d.write_unit("keep", &good);
    let pid = d.pid("keep");
    d.write_unit("keep", &format!("{good}restart:\n  delay: whenever\n"));
    d.wait_for("the error", WAIT, || !d.status("keep")["error"].is_null());
    let status = d.status("keep");
    assert_eq!(status["state"], "running");
    assert_eq!(status["pid"], pid);
    let error = status["error"].as_str().unwrap();
    let lines = good.lines().count();
    assert!(error.ends_with(&format!("keep.yaml:{}:10: restart.delay: invalid duration \"whenever\": expected a number with ms, s, m, h or d (for example 500ms, 10s, 5m, 1h)", lines + 2)), "{error}");
    // Fixing it back to the same content clears the error, no restart.
    d.write_unit("keep", &good);
    d.wait_for("the error to clear", WAIT, || {
        d.status("keep")["error"].is_null()
    });
    assert_eq!(d.pid("keep"), pid);
    // A unit that never validated shows `invalid`.
    d.write_unit("never", "exec: nope\n");
    d.wait_state("never", "invalid");
    d.stop();
}

#[test]
fn restart_policy_changes_apply_live() {
    let d = Daemon::start();
    d.write_unit("live", &sh_unit(&d, SLEEPER, ""));
    let pid = d.pid("live");
    d.write_unit(
        "live",
        &sh_unit(
            &d,
            SLEEPER,
            "restart: { policy: always, delay: 2s }\nstop: { timeout: 3s }\n",
        ),
    );
    d.wait_for("the change to be applied", WAIT, || {
        d.daemon_log()
            .contains("live: unit changed, applied without restart")
    });
    assert_eq!(d.pid("live"), pid);
    d.stop();
}

#[test]
fn disabled_units_stop_and_stay_listed() {
    let d = Daemon::start();
    let unit = sh_unit(&d, SLEEPER, "");
    d.write_unit("off", &unit);
    d.pid("off");
    d.write_unit("off", &format!("{unit}enabled: false\n"));
    d.wait_state("off", "stopped");
    d.write_unit("off", &unit);
    d.wait_state("off", "running");
    d.stop();
}

#[test]
fn a_units_directory_created_after_start_is_watched() {
    let d = Daemon::start_without_units_dir("later/units");
    fs::create_dir_all(&d.units).unwrap();
    d.write_unit("late", &sh_unit(&d, SLEEPER, ""));
    d.pid("late");
    // Removing and recreating the whole directory is followed too.
    fs::remove_dir_all(d.dir.join("later")).unwrap();
    d.wait_for("the unit to go", WAIT, || {
        d.supctl(&["status", "late"]).status.code() == Some(4)
    });
    fs::create_dir_all(&d.units).unwrap();
    d.write_unit("late", &sh_unit(&d, SLEEPER, ""));
    d.pid("late");
    d.stop();
}

#[test]
fn dependencies_order_start_and_stop() {
    let d = Daemon::start();
    // Outside the daemon's directory, which `stop` removes.
    let data = std::env::temp_dir().join(format!("supd-deps-{}", std::process::id()));
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&data).unwrap();
    let mount = format!(
        "mounts: [{{ type: bind, source: {}, target: /data }}]\n",
        data.display()
    );
    let unit = |name: &str, extra: &str| {
        let script = format!("trap 'echo {name} >> /data/stopped; exit 0' TERM; echo {name} >> /data/started; while true; do sleep 0.05; done");
        sh_unit(&d, &script, &format!("{mount}{extra}"))
    };
    d.write_unit("web", &unit("web", "depends_on: [db, cache]\n"));
    d.write_unit("cache", &unit("cache", "depends_on: [db]\n"));
    d.wait_for("web to wait", WAIT, || {
        d.status("web")["error"].as_str().is_some_and(|e| {
            e.contains("waiting for dependencies: cache (starting), db (no such unit)")
        })
    });
    assert_eq!(d.status("web")["state"], "starting");
    assert_eq!(d.status("web")["pid"], serde_json::Value::Null);
    d.write_unit("db", &unit("db", ""));
    d.wait_state("web", "running");
    d.wait_for("all three started", WAIT, || {
        fs::read_to_string(data.join("started"))
            .unwrap_or_default()
            .lines()
            .count()
            == 3
    });
    assert_eq!(
        fs::read_to_string(data.join("started")).unwrap(),
        "db\ncache\nweb\n"
    );
    d.stop();
    assert_eq!(
        fs::read_to_string(data.join("stopped")).unwrap(),
        "web\ncache\ndb\n"
    );
    fs::remove_dir_all(&data).unwrap();
}

#[test]
fn dependency_cycles_are_rejected_by_name() {
    let d = Daemon::start();
    d.write_unit("a", &sh_unit(&d, SLEEPER, "depends_on: [b]\n"));
    d.write_unit("b", &sh_unit(&d, SLEEPER, "depends_on: [a]\n"));
    for name in ["a", "b"] {
        let status = d.wait_state(name, "invalid");
        assert!(
            status["error"]
                .as_str()
                .unwrap()
                .ends_with("depends_on: dependency cycle: a -> b -> a"),
            "{status}"
        );
    }
    // Edits of one file (each read alone): breaking the cycle frees both;
    // closing it again through that one file marks both (they keep
    // running, as after any invalid edit, and say why).
    d.write_unit("b", &sh_unit(&d, SLEEPER, ""));
    d.wait_state("a", "running");
    d.wait_state("b", "running");
    d.write_unit("b", &sh_unit(&d, SLEEPER, "depends_on: [a]\n"));
    for name in ["a", "b"] {
        d.wait_for("the cycle to be reported", WAIT, || {
            d.status(name)["error"]
                .as_str()
                .is_some_and(|e| e.ends_with("dependency cycle: a -> b -> a"))
        });
        assert_eq!(d.status(name)["state"], "running");
    }
    d.stop();
}

#[test]
fn editing_one_of_many_units_restarts_only_that_one() {
    let d = Daemon::start();
    let names: Vec<String> = (0..40).map(|i| format!("many{i}")).collect();
    for name in &names {
        d.write_unit(name, &sh_unit(&d, SLEEPER, ""));
    }
    let pids: Vec<i32> = names.iter().map(|n| d.pid(n)).collect();
    d.write_unit("many7", &sh_unit(&d, "echo edited; exec sleep 1000", ""));
    wait_new_pid(&d, "many7", pids[7]);
    for (name, pid) in names.iter().zip(&pids) {
        if name != "many7" {
            assert_eq!(d.pid(name), *pid, "{name} was restarted");
        }
    }
    d.stop();
}
