//! Least-privilege defaults, checked from inside real containers.

mod common;

use common::*;
use std::fs;

const STATUS: &str =
    "grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/self/status; echo done; exec sleep 1000";

fn field<'a>(log: &'a str, name: &str) -> &'a str {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("{name} missing in:\n{log}"))
        .trim()
}

#[test]
fn default_capabilities_are_dockers_fourteen_with_no_new_privs_and_seccomp() {
    let d = Daemon::start();
    d.write_unit("defaults", &sh_unit(&d, STATUS, ""));
    let log = d.wait_log("defaults", "done");
    for set in ["CapEff", "CapPrm", "CapBnd", "CapInh"] {
        assert_eq!(field(&log, set), "00000000a80425fb", "{set}");
    }
    assert_eq!(field(&log, "CapAmb"), "0000000000000000");
    assert_eq!(field(&log, "NoNewPrivs"), "1");
    assert_eq!(field(&log, "Seccomp"), "2", "a filter is installed");
    d.stop();
}

#[test]
fn capabilities_can_be_dropped_and_added() {
    let d = Daemon::start();
    d.write_unit(
        "none",
        &sh_unit(&d, STATUS, "security: { capabilities: { drop: [ALL] } }\n"),
    );
    d.write_unit(
        "admin",
        &sh_unit(
            &d,
            STATUS,
            "security: { capabilities: { add: [NET_ADMIN], drop: [CAP_MKNOD] } }\n",
        ),
    );
    let none = d.wait_log("none", "done");
    assert_eq!(field(&none, "CapEff"), "0000000000000000");
    assert_eq!(field(&none, "CapBnd"), "0000000000000000");
    let admin = d.wait_log("admin", "done");
    // + NET_ADMIN (bit 12), - MKNOD (bit 27)
    assert_eq!(field(&admin, "CapEff"), "00000000a00435fb");
    d.write_unit(
        "typo",
        &sh_unit(
            &d,
            STATUS,
            "security: { capabilities: { add: [NET_ADMINN] } }\n",
        ),
    );
    let error = d.wait_state("typo", "invalid")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.ends_with("security.capabilities.add: unknown capability \"NET_ADMINN\""),
        "{error}"
    );
    d.stop();
}

#[test]
fn a_non_root_user_gets_capabilities_only_as_ambient() {
    let d = Daemon::start();
    d.write_unit("plain", &sh_unit(&d, STATUS, "user: www\n"));
    d.write_unit("amb", &sh_unit(&d, STATUS, "user: www\nsecurity: { capabilities: { drop: [ALL], add: [NET_BIND_SERVICE], ambient: true } }\n"));
    let plain = d.wait_log("plain", "done");
    assert_eq!(field(&plain, "CapEff"), "0000000000000000");
    assert_eq!(field(&plain, "CapPrm"), "0000000000000000");
    assert_eq!(field(&plain, "CapBnd"), "00000000a80425fb");
    let amb = d.wait_log("amb", "done");
    for set in ["CapEff", "CapPrm", "CapAmb", "CapBnd"] {
        assert_eq!(field(&amb, set), "0000000000000400", "{set}");
    }
    d.stop();
}

#[test]
fn seccomp_default_denies_and_unconfined_allows() {
    let d = Daemon::start();
    let script = "unshare -U true 2>&1; echo rc=$?; exec sleep 1000";
    d.write_unit(
        "confined",
        &sh_unit(&d, script, "network: { mode: none }\n"),
    );
    d.write_unit(
        "free",
        &sh_unit(
            &d,
            script,
            "network: { mode: none }\nsecurity: { seccomp: unconfined }\n",
        ),
    );
    let confined = d.wait_log("confined", "rc=");
    assert!(
        confined.contains("Operation not permitted") && confined.contains("rc=1"),
        "{confined}"
    );
    let free = d.wait_log("free", "rc=");
    assert!(free.contains("rc=0"), "{free}");
    d.stop();
}

#[test]
fn a_docker_json_profile_is_loaded() {
    let d = Daemon::start();
    let profile = d.dir.join("deny-mkdir.json");
    fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#).unwrap();
    let extra = format!("security: {{ seccomp: {} }}\n", profile.display());
    d.write_unit(
        "json",
        &sh_unit(&d, "mkdir /tmp/x 2>&1; echo rc=$?; exec sleep 1000", &extra),
    );
    let log = d.wait_log("json", "rc=");
    assert!(
        log.contains("Operation not permitted") && log.contains("rc=1"),
        "{log}"
    );
    let bad = d.dir.join("bad.json");
    fs::write(&bad, r#"{"defaultAction":"SCMP_ACT_LOG"}"#).unwrap();
    d.write_unit(
        "badjson",
        &sh_unit(
            &d,
            "exit 0",
            &format!(
                "security: {{ seccomp: {} }}\nrestart: {{ policy: never }}\n",
                bad.display()
            ),
        ),
    );
    let status = d.wait_state("badjson", "failed");
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("start failed: seccomp: "),
        "{status}"
    );
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("action SCMP_ACT_LOG is not supported"),
        "{status}"
    );
    d.stop();
}

#[test]
fn masked_and_read_only_paths() {
    let d = Daemon::start();
    let script = "for f in /proc/keys /proc/timer_list /proc/sched_debug /proc/interrupts; do [ -e $f ] && echo $f=$(wc -c < $f); done; \
                  echo firmware=$(ls /sys/firmware | wc -l); \
                  echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq=writable || echo sysrq=denied; \
                  touch /sys/x 2>/dev/null && echo sys=writable || echo sys=read-only; echo done; exec sleep 1000";
    d.write_unit("masked", &sh_unit(&d, script, ""));
    let log = d.wait_log("masked", "done");
    for line in log.lines().filter(|l| l.starts_with("/proc/")) {
        assert!(line.ends_with("=0"), "{line} should read empty");
    }
    assert!(log.contains("firmware=0"), "{log}");
    assert!(
        log.contains("sysrq=denied") && log.contains("sys=read-only"),
        "{log}"
    );
    d.stop();
}
