//! What a container gets from the host besides its root: devices and the
//! device cgroup, env files, secrets, the time zone. Real containers, as
//! root, on v1 here and on v2 in the VM tier.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::time::Duration;

fn has_tun() -> bool {
    host_has("/dev/net/tun", Path::new("/dev/net/tun").exists())
}

#[test]
fn a_passed_device_keeps_its_numbers_and_creates_a_tun_interface() {
    if !has_tun() {
        return;
    }
    let d = Daemon::start();
    let script = "echo node=$(stat -c '%F %t:%T %a %u' /dev/net/tun); \
                  tunctl -t tun7 >/dev/null && ip link show tun7 >/dev/null && echo tun=ok; \
                  exec sleep 1000";
    d.write_unit(
        "vpn",
        &sh_unit(
            &d,
            script,
            "devices: [/dev/net/tun]\nsecurity: { capabilities: { add: [NET_ADMIN] } }\n",
        ),
    );
    let log = d.wait_log("vpn", "node=");
    let log = if log.contains("tun=") {
        log
    } else {
        d.wait_log("vpn", "tun=")
    };
    assert!(
        log.contains("node=character special file a:c8 600 0"),
        "the host's type, numbers, mode and owner: {log}"
    );
    assert!(log.contains("tun=ok"), "{log}");
    d.stop();
}

#[test]
fn an_unlisted_node_can_be_made_but_not_opened_until_a_rule_allows_it() {
    if !has_tun() {
        return;
    }
    let d = Daemon::start();
    // mknod is in Docker's default set (c *:* m); opening is not.
    let script = "mknod /dev/mytun c 10 200 && echo made; \
                  cat /dev/mytun 2>&1 | head -n 1; echo first-open-done; \
                  while ! (exec 3</dev/mytun) 2>/dev/null; do sleep 0.1; done; echo opened; \
                  exec sleep 1000";
    let unit = sh_unit(&d, script, "");
    d.write_unit("dev", &unit);
    let log = d.wait_log("dev", "first-open-done");
    assert!(log.contains("made"), "{log}");
    assert!(log.contains("Operation not permitted"), "{log}");
    assert!(!log.contains("opened"), "{log}");
    let pid = d.pid("dev");
    d.write_unit("dev", &format!("{unit}device_rules: ['c 10:200 rw']\n"));
    d.supctl(&["reload"]);
    let log = d.wait_log("dev", "opened");
    assert!(log.contains("opened"), "{log}");
    assert_eq!(d.pid("dev"), pid, "device rules change without a restart");
    assert!(
        d.daemon_log()
            .contains("dev: devices and device rules updated without restart"),
        "{}",
        d.daemon_log()
    );
    d.stop();
}

#[test]
fn a_device_added_to_a_running_unit_appears_and_goes_again_without_a_restart() {
    if !has_tun() {
        return;
    }
    let d = Daemon::start();
    // Each second: does the node exist, and can a tun interface be made?
    let script = "i=0; while true; do i=$((i+1)); \
                  if [ -e /dev/net/tun ]; then \
                    if tunctl -t tun$i >/dev/null 2>&1; then echo round=$i tun=yes; else echo round=$i tun=refused; fi; \
                  else echo round=$i tun=absent; fi; sleep 0.2; done";
    let unit = sh_unit(
        &d,
        script,
        "security: { capabilities: { add: [NET_ADMIN] } }\n",
    );
    d.write_unit("vpn", &unit);
    d.wait_log("vpn", "tun=absent");
    let pid = d.pid("vpn");
    d.write_unit("vpn", &format!("{unit}devices: [/dev/net/tun]\n"));
    d.supctl(&["reload"]);
    let log = d.wait_log("vpn", "tun=yes");
    assert!(log.contains("tun=yes"), "{log}");
    assert_eq!(d.pid("vpn"), pid, "no restart");
    d.write_unit("vpn", &unit);
    d.supctl(&["reload"]);
    let mut log = String::new();
    d.wait_for("the node to go", Duration::from_secs(20), || {
        log = d.log("vpn");
        log.rsplit_once("tun=yes")
            .is_some_and(|(_, after)| after.contains("tun=absent"))
    });
    assert_eq!(d.pid("vpn"), pid, "no restart");
    d.stop();
}

#[test]
fn devices_reach_a_container_in_a_user_namespace_at_start_and_live() {
    if !has_tun() {
        return;
    }
    let d = Daemon::start();
    let rootfs = rootfs_owned_by(&d, 300_000);
    let script = "while true; do echo tun=$(stat -c %t:%T /dev/net/tun) zero2=$(head -c 1 /dev/zero2 2>/dev/null | wc -c); sleep 0.2; done";
    let unit = format!(
        "rootfs: {}\nexec: [/bin/sh, -c, {}]\nenv: {{ SUPD_TEST_DIR: {}/ }}\nsecurity: {{ user_namespace: {{ uid_map: \"0:300000:65536\", gid_map: \"0:300000:65536\" }} }}\n",
        rootfs.display(),
        serde_json::to_string(script).unwrap(),
        d.dir.display()
    );
    d.write_unit("ns", &format!("{unit}devices: [/dev/net/tun]\n"));
    let log = d.wait_log("ns", "zero2=");
    assert!(
        log.contains("tun=a:c8 zero2=0"),
        "bound in at the start: {log}"
    );
    let pid = d.pid("ns");
    d.write_unit(
        "ns",
        &format!("{unit}devices: [/dev/net/tun, {{ path: /dev/zero, target: /dev/zero2 }}]\n"),
    );
    d.supctl(&["reload"]);
    let log = d.wait_log("ns", "zero2=1");
    assert!(log.contains("tun=a:c8 zero2=1"), "added live: {log}");
    assert_eq!(d.pid("ns"), pid);
    d.stop();
}

#[test]
fn a_missing_device_fails_the_start_naming_it() {
    let d = Daemon::start();
    d.write_unit(
        "modem",
        &sh_unit(&d, "exec sleep 1000", "devices: [/dev/ttyNOPE0]\n"),
    );
    d.supctl(&["reload"]);
    let mut error = String::new();
    d.wait_for("the start error", Duration::from_secs(20), || {
        error = d.status("modem")["error"]
            .as_str()
            .unwrap_or("")
            .to_string();
        !error.is_empty()
    });
    assert!(error.contains("/dev/ttyNOPE0"), "{error}");
    assert!(error.contains("No such file or directory"), "{error}");
    d.stop();
}

#[test]
fn an_env_file_change_restarts_the_unit_with_the_new_value() {
    let d = Daemon::start();
    let env = d.dir.join("env/app.env");
    fs::create_dir_all(env.parent().unwrap()).unwrap();
    fs::write(
        &env,
        "# systemd syntax\nGREETING=\"hello world\"\nFROM_FILE='a $b'\nSUPD_TEST_DIR=overridden\n",
    )
    .unwrap();
    let script = "echo greeting=$GREETING from=$FROM_FILE dir=$SUPD_TEST_DIR; exec sleep 1000";
    d.write_unit(
        "app",
        &sh_unit(&d, script, &format!("env_file: [{}]\n", env.display())),
    );
    let log = d.wait_log("app", "greeting=");
    assert!(log.contains("greeting=hello world from=a $b"), "{log}");
    assert!(
        !log.contains("dir=overridden"),
        "the unit's own env wins: {log}"
    );
    let pid = d.pid("app");
    // No `supctl reload`: the file is watched like a unit file.
    fs::write(&env, "GREETING=changed\n").unwrap();
    let log = d.wait_log("app", "greeting=changed");
    assert!(log.contains("greeting=changed"), "{log}");
    assert_ne!(d.pid("app"), pid, "a new container");
    // A broken file is reported with its line, and the container stays.
    let pid = d.pid("app");
    fs::write(&env, "GREETING=ok\nthis is not an assignment\n").unwrap();
    let mut error = String::new();
    d.wait_for("the env file error", Duration::from_secs(20), || {
        error = d.status("app")["error"].as_str().unwrap_or("").to_string();
        !error.is_empty()
    });
    assert!(
        error.contains(&format!(
            "{}:2:1: env_file: expected KEY=VALUE",
            env.display()
        )),
        "{error}"
    );
    assert_eq!(d.pid("app"), pid, "the running container is not hurt");
    d.stop();
}

#[test]
fn a_secret_is_readable_by_the_container_user_only_and_never_shown() {
    let d = Daemon::start();
    let secret = d.dir.join("secrets/db-password");
    fs::create_dir_all(secret.parent().unwrap()).unwrap();
    fs::write(&secret, "s3cret-value").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let script = "echo perms=$(stat -c '%a %u:%g' /run/secrets/db-password); \
                  echo len=$(wc -c < /run/secrets/db-password); \
                  echo x > /run/secrets/new 2>/dev/null || echo read-only; \
                  exec sleep 1000";
    d.write_unit(
        "db",
        &sh_unit(
            &d,
            script,
            &format!(
                "volatile: overlay\nuser: \"1000:1000\"\nsecrets: [{{ source: {} }}]\n",
                secret.display()
            ),
        ),
    );
    let log = d.wait_log("db", "read-only");
    assert!(log.contains("perms=400 1000:1000"), "{log}");
    assert!(log.contains("len=12"), "readable by its user: {log}");
    let show = d.supctl(&["show", "db"]);
    let status = d.supctl(&["status", "--json"]);
    for output in [&show, &status] {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(!text.contains("s3cret"), "{text}");
    }
    assert!(!d.daemon_log().contains("s3cret"));
    // A changed secret is a changed unit (its digest): a new container.
    let pid = d.pid("db");
    fs::write(&secret, "rotated").unwrap();
    let log = d.wait_log("db", "len=7");
    assert!(log.contains("len=7"), "{log}");
    assert_ne!(d.pid("db"), pid);
    // 0400 and the container user's: the kernel keeps every other user
    // of the container out.
    d.stop();
}

#[test]
fn a_time_zone_is_the_containers_localtime() {
    let zone = Path::new("/usr/share/zoneinfo/Europe/Berlin");
    if !host_has("tzdata", zone.exists()) {
        return;
    }
    let d = Daemon::start();
    let script = "echo zone=$(date -d @0 +%H:%Z) tz=${TZ:-unset}; exec sleep 1000";
    d.write_unit(
        "berlin",
        &sh_unit(&d, script, "volatile: overlay\ntimezone: Europe/Berlin\n"),
    );
    d.write_unit(
        "local",
        &sh_unit(&d, script, "volatile: overlay\ntimezone: host\n"),
    );
    let berlin = d.wait_log("berlin", "zone=");
    // 1970-01-01 00:00 UTC was 01:00 CET.
    assert!(berlin.contains("zone=01:CET"), "{berlin}");
    assert!(
        berlin.contains("tz=unset"),
        "the busybox root has no zoneinfo of its own, so no TZ: {berlin}"
    );
    let local = d.wait_log("local", "zone=");
    let host = std::process::Command::new("date")
        .args(["-d", "@0", "+%H:%Z"])
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&host.stdout).trim().to_string();
    assert!(local.contains(&format!("zone={host}")), "{local} vs {host}");
    d.write_unit("bad", &sh_unit(&d, script, "timezone: Mars/Olympus_Mons\n"));
    d.supctl(&["reload"]);
    let error = d.status("bad")["error"].as_str().unwrap_or("").to_string();
    assert!(
        error.contains("Mars/Olympus_Mons") && error.contains("timezone"),
        "{error}"
    );
    d.stop();
}
