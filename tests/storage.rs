//! `resources.storage`: a container that fills its writable layer gets
//! ENOSPC at its size while the host writes on; the size grows live,
//! survives a restart and goes with the unit, leaving no image, mount or
//! loop device. Real containers, as root: the ext4 image here (this
//! kernel has no quota format), project quota on an ext4 file system with
//! the `project` feature where the kernel enforces it (the v2 VM tier).

mod common;

use common::*;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const MIB: u64 = 1 << 20;
/// What dd says at the limit.
const FULL: &str = "No space left on device";
/// What it says at an ext4 project quota's limit (EDQUOT; XFS says ENOSPC).
const QUOTA_FULL: &str = "Disk quota exceeded";

/// Fills `/fill` once (a restart keeps it), then sleeps.
const FILL: &str = "if [ ! -e /fill ]; then \
                      dd if=/dev/zero of=/fill bs=64k 2>&1 | grep -o 'No space left on device\\|Disk quota exceeded'; \
                      echo filled=$(stat -c %s /fill); \
                    fi; echo ready; exec sleep 1000";

fn unit(d: &Daemon, extra: &str, size: &str) -> String {
    sh_unit(
        d,
        FILL,
        &format!("{extra}resources: {{ storage: {{ size: {size} }} }}\n"),
    )
}

/// The number after `key=` in the unit's log.
fn logged_number(log: &str, key: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.strip_prefix(key))
        .next_back()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {log}"))
}

fn assert_about(bytes: u64, size: u64, what: &str) {
    let low = size - size / 20;
    let high = size + size / 20;
    assert!(
        (low..=high).contains(&bytes),
        "{what}: {bytes} bytes, not within 5% of {size}"
    );
}

fn storage(d: &Daemon, name: &str) -> Value {
    d.status(name)["storage"].clone()
}

/// Bytes a `dd` run by `supctl exec` wrote to `path` before it stopped.
fn write_more(d: &Daemon, name: &str, path: &str) -> (u64, String) {
    let script = format!(
        "df -k /; dd if=/dev/zero of={path} bs=64k 2>&1 | grep -o '{FULL}\\|{QUOTA_FULL}'; stat -c %s {path} 2>/dev/null || echo 0"
    );
    let out = d.supctl(&["exec", name, "--", "/bin/sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let bytes = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("exec printed {text:?}, stderr {:?}", out.stderr));
    (bytes, text)
}

/// Loop devices backed by a file under `dir`.
fn loops_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    fs::read_dir("/sys/block")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| fs::read_to_string(e.path().join("loop/backing_file")).ok())
        .filter(|backing| backing.contains(&needle))
        .collect()
}

fn has_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    // CAP_SYS_RESOURCE is capability 24.
    effective & (1 << 24) != 0
}

/// `supctl restart`, until a new run is up; its pid.
fn restart(d: &Daemon, name: &str, pid: i32) -> i32 {
    d.supctl(&["restart", name]);
    d.wait_for("a new run", Duration::from_secs(20), || {
        d.status(name)["pid"]
            .as_i64()
            .is_some_and(|p| p as i32 != pid)
            && d.state(name) == "running"
    });
    d.pid(name)
}

/// The whole story on one unit: ENOSPC at the size, the host unaffected,
/// reported; grown live; kept over a restart; gone with the unit.
fn fill_grow_restart_remove(d: &Daemon, mechanism: &str, extra: &str) {
    d.write_unit("disk", &unit(d, extra, "64M"));
    let log = d.wait_log("disk", "ready");
    let met = |said: &str| {
        said.contains(FULL) || (mechanism == "project-quota" && said.contains(QUOTA_FULL))
    };
    assert!(met(&log), "the container met the limit: {log}");
    assert_about(
        logged_number(&log, "filled="),
        64 * MIB,
        "written before ENOSPC",
    );
    // The host's file system is not full: a file next to STATE_DIR.
    fs::write(d.dir.join("state/host-file"), vec![7u8; MIB as usize])
        .expect("the host still writes next to the state directory");
    let status = storage(d, "disk");
    assert_eq!(status["mechanism"], mechanism, "{status}");
    assert_eq!(status["limit_bytes"], 64 * MIB, "{status}");
    assert_eq!(status["full"], true, "{status}");
    assert_about(status["used_bytes"].as_u64().unwrap(), 64 * MIB, "used");
    let text = String::from_utf8_lossy(&d.supctl(&["status", "disk"]).stdout).to_string();
    assert!(
        text.contains("storage: ") && text.contains("full, writes fail with ENOSPC"),
        "{text}"
    );
    assert!(
        d.daemon_log().contains("disk: storage full"),
        "{}",
        d.daemon_log()
    );

    let mut pid = d.pid("disk");
    d.write_unit("disk", &unit(d, extra, "128M"));
    d.supctl(&["reload"]);
    if mechanism == "image" && !has_cap_sys_resource() {
        // Online resize needs CAP_SYS_RESOURCE, which this host withholds:
        // the image grows at the next start.
        d.wait_for("the note", Duration::from_secs(20), || {
            d.daemon_log()
                .contains("storage size 128.0M applies at the next start")
        });
        assert_eq!(d.pid("disk"), pid, "the container keeps running");
        pid = restart(d, "disk", pid);
    }
    let grown = poll(Duration::from_secs(20), || {
        storage(d, "disk")["limit_bytes"] == 128 * MIB
            && !storage(d, "disk")["full"].as_bool().unwrap_or(true)
    });
    assert!(grown, "grown: {}\n{}", storage(d, "disk"), d.daemon_log());
    assert_eq!(d.pid("disk"), pid, "no restart for a larger size");
    let (more, said) = write_more(d, "disk", "/more");
    assert_about(more, 64 * MIB, &format!("written after growing: {said}"));
    assert!(met(&said), "{said}");

    restart(d, "disk", pid);
    let kept = d.supctl(&[
        "exec",
        "disk",
        "--",
        "/bin/sh",
        "-c",
        "stat -c %s /fill /more",
    ]);
    let kept = String::from_utf8_lossy(&kept.stdout).to_string();
    assert_eq!(kept.lines().count(), 2, "the layer persists: {kept}");
    let (after, _) = write_more(d, "disk", "/after-restart");
    assert!(
        after < 2 * MIB,
        "still limited after the restart: {after} more bytes"
    );
    assert_eq!(storage(d, "disk")["limit_bytes"], 128 * MIB);

    fs::remove_file(d.units.join("disk.yaml")).unwrap();
    d.supctl(&["reload"]);
    d.wait_for("the unit to go", Duration::from_secs(20), || {
        !d.supctl(&["status", "disk"]).status.success()
    });
    let state = d.dir.join("state/disk");
    assert!(!state.join("storage.img").exists(), "image removed");
    assert!(!state.join("storage").exists(), "layer removed");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&state.display().to_string()),
        "no mount left: {mounts}"
    );
    assert!(
        poll(Duration::from_secs(10), || loops_under(&d.dir).is_empty()),
        "loop devices left: {:?}",
        loops_under(&d.dir)
    );
}

#[test]
fn an_image_limits_the_layer_grows_live_survives_a_restart_and_goes_with_the_unit() {
    let d = Daemon::start();
    fill_grow_restart_remove(&d, "image", "volatile: state\n");
    d.stop();
}

#[test]
fn a_tmpfs_upper_gets_the_size_too() {
    let d = Daemon::start();
    d.write_unit("scratch", &unit(&d, "volatile: overlay\n", "32M"));
    let log = d.wait_log("scratch", "ready");
    assert!(log.contains("No space left on device"), "{log}");
    assert_about(
        logged_number(&log, "filled="),
        32 * MIB,
        "written to the tmpfs",
    );
    let status = storage(&d, "scratch");
    assert_eq!(status["mechanism"], "tmpfs", "{status}");
    assert_eq!(status["full"], true, "{status}");
    assert!(!d.dir.join("state/scratch/storage.img").exists());
    d.stop();
}

#[test]
fn a_user_namespace_root_writes_into_its_image_up_to_the_size() {
    let d = Daemon::start();
    let rootfs = rootfs_owned_by(&d, 300_000);
    let text = format!(
        "rootfs: {}\nvolatile: state\nexec: [/bin/sh, -c, {}]\nenv: {{ SUPD_TEST_DIR: {}/ }}\n\
         security: {{ user_namespace: {{ uid_map: \"0:300000:65536\", gid_map: \"0:300000:65536\" }} }}\n\
         resources: {{ storage: {{ size: 32M }} }}\n",
        rootfs.display(),
        serde_json::to_string(FILL).unwrap(),
        d.dir.display()
    );
    d.write_unit("mapped", &text);
    let log = d.wait_log("mapped", "ready");
    assert!(log.contains("No space left on device"), "{log}");
    assert_about(
        logged_number(&log, "filled="),
        32 * MIB,
        "written as the mapped root",
    );
    let dir = d.dir.clone();
    d.stop();
    assert!(
        poll(Duration::from_secs(10), || loops_under(&dir).is_empty()),
        "a stopped supd leaves no loop device: {:?}",
        loops_under(&dir)
    );
}

#[test]
fn a_size_below_the_minimum_is_refused_naming_file_line_and_field() {
    let d = Daemon::start();
    d.write_unit("tiny", &unit(&d, "volatile: state\n", "1M"));
    let out = d.supctl(&["validate", &d.units.join("tiny.yaml").display().to_string()]);
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("tiny.yaml:")
            && said.contains("resources.storage.size: must be at least 16M"),
        "{said}"
    );
    d.stop();
}

/// An ext4 file system with project quota, mounted with prjquota on the
/// daemon's state directory. None where the kernel cannot.
fn quota_file_system(dir: &Path) -> Option<PathBuf> {
    let image = std::env::temp_dir().join(format!(
        "supd-quota-{}.img",
        dir.file_name().unwrap().to_string_lossy()
    ));
    let state = dir.join("state");
    fs::create_dir_all(&state).unwrap();
    let made = Command::new("truncate")
        .args(["-s", "512M"])
        .arg(&image)
        .status()
        .unwrap();
    assert!(made.success());
    let made = Command::new("mke2fs")
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "quota,project",
            "-E",
            "quotatype=prjquota",
        ])
        .arg(&image)
        .status()
        .expect("mke2fs (apt-get install e2fsprogs)");
    assert!(made.success());
    let mounted = Command::new("mount")
        .args(["-o", "loop,prjquota"])
        .arg(&image)
        .arg(&state)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    // The image's space is the mount's: the file can go now.
    let _ = fs::remove_file(&image);
    mounted.success().then_some(state)
}

#[test]
fn project_quota_limits_the_layer_where_the_file_system_enforces_it() {
    let mut state = None;
    let d = Daemon::start_after(|dir| state = quota_file_system(dir));
    let Some(state) = state else {
        drop(d);
        host_has("project-quota", false);
        return;
    };
    fill_grow_restart_remove(&d, "project-quota", "volatile: state\n");
    // The daemon's own files stay on the test file system until it exits.
    let unmounted = Command::new("umount")
        .arg("-l")
        .arg(&state)
        .status()
        .unwrap();
    assert!(unmounted.success());
    d.stop();
}

#[test]
fn a_limited_container_outlives_a_supd_crash_and_is_cleaned_up_after() {
    let mut d = Daemon::start();
    d.write_unit("kept", &unit(&d, "volatile: state\n", "32M"));
    d.wait_log("kept", "ready");
    let pid = d.pid("kept");
    d.crash_and_restart();
    d.wait_for("adoption", Duration::from_secs(20), || {
        d.state("kept") == "running"
    });
    assert_eq!(d.pid("kept"), pid, "adopted, not restarted");
    let status = storage(&d, "kept");
    assert_eq!(status["full"], true, "{status}");
    assert_about(status["used_bytes"].as_u64().unwrap(), 32 * MIB, "used");
    let dir = d.dir.clone();
    d.stop();
    assert!(
        poll(Duration::from_secs(10), || loops_under(&dir).is_empty()),
        "{:?}",
        loops_under(&dir)
    );
}
