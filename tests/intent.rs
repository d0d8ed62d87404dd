//! What an operator asked for, and what a changed file means: a unit that
//! is failed, exited for good or stopped starts afresh when its file
//! changes; a stop reads as a stop, not as a failure.

mod common;

use common::*;

const SLEEPER: &str = "echo up; exec sleep 1000";

fn edited(d: &Daemon, name: &str, extra: &str) {
    d.write_unit(name, &sh_unit(d, SLEEPER, extra));
}

#[test]
fn a_changed_file_gives_failed_exited_and_stopped_units_a_fresh_start() {
    let d = Daemon::start();
    let limit =
        "restart: { policy: always, delay: 100ms, start_limit: { burst: 2, interval: 1m } }\n";
    d.write_unit("crashy", &sh_unit(&d, "exit 3", limit));
    d.wait_state("crashy", "failed");
    d.write_unit(
        "once",
        &sh_unit(&d, "exit 4", "restart: { policy: never }\n"),
    );
    d.wait_state("once", "failed");
    d.write_unit(
        "quiet",
        &sh_unit(&d, "exit 0", "restart: { policy: never }\n"),
    );
    d.wait_state("quiet", "stopped");
    edited(&d, "held", "");
    d.pid("held");
    assert!(d.supctl(&["stop", "held"]).status.success());
    for name in ["crashy", "once", "quiet", "held"] {
        // Any change counts; crashy keeps its start limit and still runs.
        let extra = if name == "crashy" { limit } else { "" };
        edited(&d, name, &format!("description: edited\n{extra}"));
        d.pid(name);
        let status = d.status(name);
        assert_eq!(status["error"], serde_json::Value::Null, "{status}");
    }
    d.stop();
}

#[test]
fn a_stop_is_shown_as_stopped_and_restart_says_restarted() {
    let d = Daemon::start();
    let script = "sd-notify READY=1 'STATUS=Saving the final snapshot'; trap 'exit 143' TERM; \
                  while true; do sleep 0.05; done";
    d.write_unit("noted", &sh_unit(&d, script, "notify: true\n"));
    d.wait_state("noted", "ready");
    d.wait_for("the status text", WAIT, || {
        d.status("noted")["status_text"] == "Saving the final snapshot"
    });
    for args in [
        &["restart", "noted"][..],
        &["restart", "--no-block", "noted"][..],
    ] {
        let out = d.supctl(args);
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("restarted: noted"),
            "{out:?}"
        );
        d.wait_state("noted", "ready");
    }
    assert!(d.supctl(&["stop", "noted"]).status.success());
    let status = d.wait_state("noted", "stopped");
    assert_eq!(status["status_text"], serde_json::Value::Null, "{status}");
    assert_eq!(status["last_exit"]["code"], 143, "{status}");
    assert_eq!(status["last_exit"]["stopped"], true, "{status}");
    let table = String::from_utf8_lossy(&d.supctl(&["status", "noted"]).stdout).to_string();
    let row = table
        .lines()
        .find(|l| l.starts_with("noted"))
        .unwrap_or_default();
    assert!(row.ends_with("stopped"), "{table}");
    assert!(!row.contains("code 143"), "{table}");
    d.stop();
}

#[test]
fn stopped_and_failed_survive_a_supd_restart_until_start_or_a_change() {
    let mut d = Daemon::start();
    edited(&d, "held", "");
    d.pid("held");
    assert!(d.supctl(&["stop", "held"]).status.success());
    edited(&d, "kept", "");
    d.pid("kept");
    d.write_unit(
        "broken",
        &sh_unit(&d, "exit 5", "restart: { policy: never }\n"),
    );
    let before = d.wait_state("broken", "failed")["error"].clone();
    d.write_unit(
        "edited",
        &sh_unit(&d, "exit 6", "restart: { policy: never }\n"),
    );
    d.wait_state("edited", "failed");
    d.crash_and_restart_after(|d| {
        d.write_unit("edited", &sh_unit(d, SLEEPER, "description: changed\n"));
    });
    d.pid("kept");
    // The file changed while supd was away: a fresh start.
    d.pid("edited");
    // The supd that comes back honours what the operator and the policy did.
    assert_eq!(
        d.wait_state("held", "stopped")["pid"],
        serde_json::Value::Null
    );
    assert_eq!(d.wait_state("broken", "failed")["error"], before);
    // Neither comes back by itself a moment later.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(d.state("held"), "stopped");
    assert_eq!(d.state("broken"), "failed");
    // Start and a changed file release it.
    assert!(d.supctl(&["start", "held"]).status.success());
    d.pid("held");
    edited(&d, "broken", "");
    d.pid("broken");
    d.crash_and_restart();
    for name in ["held", "broken", "edited", "kept"] {
        d.pid(name);
    }
    d.stop();
}
