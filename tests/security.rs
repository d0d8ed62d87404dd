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
fn no_new_privileges_false_and_seccomp_allow_take_effect() {
    let d = Daemon::start();
    d.write_unit(
        "privs",
        &sh_unit(&d, STATUS, "security: { no_new_privileges: false }\n"),
    );
    let log = d.wait_log("privs", "done");
    assert_eq!(field(&log, "NoNewPrivs"), "0");
    assert_eq!(field(&log, "Seccomp"), "2", "the filter stays");
    // syslog(2) needs CAP_SYSLOG and a filter that lets it through: with
    // the capability alone the default filter still refuses it.
    let script = "dmesg >/dev/null 2>&1 && echo read || echo refused; exec sleep 1000";
    let syslog = "security: { capabilities: { add: [SYSLOG] }";
    d.write_unit("denied", &sh_unit(&d, script, &format!("{syslog} }}\n")));
    d.write_unit(
        "allowed",
        &sh_unit(
            &d,
            script,
            &format!("{syslog}, seccomp_allow: [syslog] }}\n"),
        ),
    );
    assert!(d.wait_log("denied", "\n").contains("refused"));
    assert!(d.wait_log("allowed", "\n").contains("read"));
    d.stop();
}

/// `supctl exec` runs under the unit's filter and no_new_privs, not only
/// with its capabilities.
#[test]
fn exec_gets_the_units_seccomp_and_no_new_privs() {
    let d = Daemon::start();
    d.write_unit("box", &sh_unit(&d, "exec sleep 1000", ""));
    d.pid("box");
    let out = d.supctl(&[
        "exec",
        "box",
        "--",
        "grep",
        "-E",
        "^(NoNewPrivs|Seccomp):",
        "/proc/self/status",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(field(&text, "NoNewPrivs"), "1", "{out:?}");
    assert_eq!(field(&text, "Seccomp"), "2", "{out:?}");
    let out = d.supctl(&["exec", "box", "--", "unshare", "-U", "true"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the default filter refuses unshare"
    );
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
    let script = "for f in /proc/keys /proc/timer_list /proc/sched_debug /proc/interrupts; do [ -e $f ] && echo $f=$(wc -c < $f) || echo $f=absent; done; \
                  echo firmware=$(ls /sys/firmware | wc -l); \
                  echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq=writable || echo sysrq=denied; \
                  touch /sys/x 2>/dev/null && echo sys=writable || echo sys=read-only; echo done; exec sleep 1000";
    d.write_unit("masked", &sh_unit(&d, script, ""));
    let log = d.wait_log("masked", "done");
    // Each file the host has must be there, and read empty.
    let mut masked = 0;
    for file in [
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/interrupts",
    ] {
        if std::path::Path::new(file).exists() {
            assert!(
                log.contains(&format!("{file}=0\n")),
                "{file} should read empty: {log}"
            );
            masked += 1;
        }
    }
    assert!(
        masked >= 2,
        "this kernel has too few of the masked files to test: {log}"
    );
    assert!(log.contains("firmware=0"), "{log}");
    assert!(
        log.contains("sysrq=denied") && log.contains("sys=read-only"),
        "{log}"
    );
    d.stop();
}

/// Runs supctl as an unprivileged user (nobody, group nogroup).
fn supctl_as_nobody(d: &Daemon, args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    run_timed(
        std::process::Command::new(SUPCTL)
            .env("SUPD_SOCKET", &d.socket)
            .args(args)
            .gid(65534)
            .uid(65534),
        || d.daemon_log(),
    )
}

#[test]
fn an_unprivileged_peer_is_refused_even_if_the_socket_mode_is_open() {
    let d = Daemon::start();
    use std::os::unix::fs::PermissionsExt;
    // The directories and the socket opened up: only SO_PEERCRED stands.
    for path in [d.dir.clone(), d.dir.join("run"), d.socket.clone()] {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let out = supctl_as_nobody(&d, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("permission denied"),
        "{out:?}"
    );
    assert!(d.supctl(&["status"]).status.success(), "root still may");
    d.stop();
}

#[test]
fn a_read_group_may_look_but_not_touch() {
    let d = Daemon::start_with_args(&["--read-group", "nogroup"]);
    use std::os::unix::fs::PermissionsExt;
    for path in [d.dir.clone(), d.dir.join("run")] {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mode = fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "two groups: the peer check decides");
    d.write_unit("look", &sh_unit(&d, "exec sleep 1000", ""));
    d.pid("look");
    let status = supctl_as_nobody(&d, &["status", "look"]);
    assert!(status.status.success(), "{status:?}");
    let stop = supctl_as_nobody(&d, &["stop", "look"]);
    assert_eq!(stop.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&stop.stderr)
            .contains("permission denied: this client may only read"),
        "{stop:?}"
    );
    assert_eq!(d.state("look"), "running");
    d.stop();
}

#[test]
fn devices_outside_the_allowlist_cannot_be_opened() {
    let d = Daemon::start();
    let script = "mknod /tmp/loop0 b 7 0 && echo made; head -c 1 /tmp/loop0 > /dev/null 2>&1 && echo opened || echo refused; \
                  mknod /tmp/fifo p && echo fifo-made; head -c 4 /dev/urandom | wc -c; echo done; exec sleep 1000";
    d.write_unit("dev", &sh_unit(&d, script, "volatile: overlay\n"));
    d.write_unit(
        "devfree",
        &sh_unit(
            &d,
            script,
            "volatile: overlay\nsecurity: { seccomp: unconfined }\n",
        ),
    );
    for unit in ["dev", "devfree"] {
        let log = d.wait_log(unit, "done");
        assert!(log.contains("\n4\n"), "allowed devices still work: {log}");
        assert!(log.contains("fifo-made"), "FIFOs are not devices: {log}");
        // As Docker: mknod is allowed (b *:* m), opening the node is not,
        // by the devices cgroup on v1 and its BPF program on v2, with or
        // without seccomp.
        assert!(log.lines().any(|l| l == "made"), "{log}");
        assert!(log.contains("refused") && !log.contains("opened"), "{log}");
    }
    if !is_cgroup_v2() {
        let list = fs::read_to_string(cgroup_file(&d, "dev", "devices", "devices.list")).unwrap();
        assert!(
            list.contains("c 1:3 rwm") && list.contains("b *:* m") && !list.contains("a *:*"),
            "{list}"
        );
    }
    d.stop();
}

#[test]
fn a_user_namespace_maps_root_to_an_unprivileged_host_user() {
    let d = Daemon::start();
    let rootfs = rootfs_owned_by(&d, 300_000);
    let data = d.dir.join("data");
    fs::create_dir_all(&data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&data, fs::Permissions::from_mode(0o777)).unwrap();
    let extra = format!(
        "security: {{ user_namespace: {{ uid_map: \"0:300000:65536\", gid_map: \"0:300000:65536\" }} }}\nmounts: [{{ type: bind, source: {}, target: /data }}]\nnetwork: {{ mode: none }}\n",
        data.display()
    );
    let unit = sh_unit(
        &d,
        "echo id=$(id -u):$(id -g); touch /data/made-inside; echo done; exec sleep 1000",
        &extra,
    )
    .replace(
        &format!("rootfs: {}", busybox_rootfs().display()),
        &format!("rootfs: {}", rootfs.display()),
    );
    d.write_unit("mapped", &unit);
    let init = d.pid("mapped");
    let log = d.wait_log("mapped", "done");
    assert!(log.contains("id=0:0"), "{log}");
    let (workload, _) = children(init)[0];
    let status = fs::read_to_string(format!("/proc/{workload}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some("300000"),
        "{uid_line}"
    );
    use std::os::unix::fs::MetadataExt;
    let made = fs::metadata(data.join("made-inside")).unwrap();
    assert_eq!((made.uid(), made.gid()), (300_000, 300_000));
    d.stop();
}

#[test]
fn auto_user_namespaces_get_distinct_kept_ranges() {
    let d = Daemon::start();
    for name in ["ua", "ub"] {
        d.write_unit(
            name,
            &sh_unit(
                &d,
                "exec sleep 1000",
                "security: { user_namespace: auto }\n",
            ),
        );
    }
    let range = |name: &str| {
        let pid = d.pid(name);
        fs::read_to_string(format!("/proc/{pid}/uid_map"))
            .unwrap()
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let (a, b) = (range("ua"), range("ub"));
    assert_ne!(a, b);
    assert!(a.parse::<u64>().unwrap() >= 0x1000_0000, "{a}");
    assert!(d.supctl(&["restart", "ub"]).status.success());
    assert_eq!(range("ub"), b, "kept across restarts");
    d.stop();
}

/// `tests/helpers/compat32.c`, built static for 32-bit x86, or None
/// where the cross compiler is missing (said out loud by `host_has`).
fn compat32_helper() -> Option<std::path::PathBuf> {
    let binary = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("compat32");
    if binary.is_file() {
        return Some(binary);
    }
    let compiler = std::process::Command::new("i686-linux-gnu-gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !host_has("i686-linux-gnu-gcc", compiler) {
        return None;
    }
    let partial = binary.with_extension(format!("tmp{}", std::process::id()));
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/compat32.c");
    let status = std::process::Command::new("i686-linux-gnu-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&partial)
        .arg(&source)
        .status()
        .unwrap();
    assert!(status.success(), "cannot build {}", source.display());
    fs::rename(&partial, &binary).unwrap();
    Some(binary)
}

#[test]
#[cfg(target_arch = "x86_64")]
fn thirty_two_bit_programs_run_and_meet_the_same_profile() {
    let Some(helper) = compat32_helper() else {
        return;
    };
    let d = Daemon::start();
    let extra = format!(
        "volatile: overlay\nmounts: [{{ type: bind, source: {}, target: /compat32, readonly: true }}]\n",
        helper.display()
    );
    d.write_unit(
        "compat",
        &sh_unit(&d, "/compat32; echo exit=$?; exec sleep 1000", &extra),
    );
    let log = d.wait_log("compat", "exit=");
    // Killed by a filter that knew only x86_64, it would exit 159 (SIGSYS).
    assert!(log.contains("bits=32"), "{log}");
    assert!(log.contains("unshare=Operation not permitted"), "{log}");
    assert!(log.contains("keyctl=Operation not permitted"), "{log}");
    assert!(log.contains("exit=0"), "{log}");
    d.stop();
}
