//! System containers: a debootstrapped Debian booted with `boot: true`,
//! its systemd as PID 1, as root, with a real supd.

mod common;

use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Debian bookworm with systemd, made by debootstrap once and kept under
/// target/ (a few hundred MB, about half a minute from a mirror). None,
/// said out loud, where the mirror or debootstrap is out of reach.
fn debian_rootfs() -> Option<&'static Path> {
    static ROOTFS: OnceLock<Option<PathBuf>> = OnceLock::new();
    let made = ROOTFS.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-bookworm-systemd");
        if target.join("lib/systemd/systemd").is_file() {
            return Some(target);
        }
        let build = target.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&build);
        let mirror = std::env::var("SUPD_TEST_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".to_string());
        let out = Command::new("debootstrap")
            .args([
                "--variant=minbase",
                "--include=systemd,systemd-sysv",
                "bookworm",
            ])
            .arg(&build)
            .arg(&mirror)
            .output();
        match out {
            Ok(out) if out.status.success() => {
                fs::rename(&build, &target).unwrap();
                Some(target)
            }
            other => {
                eprintln!("debootstrap from {mirror} failed: {other:?}");
                let _ = fs::remove_dir_all(&build);
                None
            }
        }
    });
    match made {
        Some(path) => Some(path.as_path()),
        None => {
            host_has("debian-mirror", false);
            None
        }
    }
}

/// Top-level cgroups of every hierarchy: the guest's systemd must make
/// none of its own there. (Test daemons' parents come and go meanwhile.)
fn top_level_cgroups() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = Path::new("/sys/fs/cgroup");
    let mut tops = vec![root.to_path_buf()];
    tops.extend(
        fs::read_dir(root)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.join("cgroup.procs").exists()),
    );
    for top in tops {
        for entry in fs::read_dir(&top).into_iter().flatten().flatten() {
            let daemon = entry
                .file_name()
                .to_string_lossy()
                .starts_with("supd-test-");
            if !daemon && entry.path().join("cgroup.procs").exists() {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    found
}

fn exec(d: &Daemon, args: &[&str]) -> (bool, String) {
    let mut all = vec!["exec", "os", "--"];
    all.extend_from_slice(args);
    let out = d.supctl(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("supctl exec {args:?}: {}", stderr.trim());
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn boots_and_stops(extra: &str, shift: Option<u32>) {
    let Some(rootfs) = debian_rootfs() else {
        return;
    };
    let before = top_level_cgroups();
    let d = Daemon::start();
    let rootfs = match shift {
        Some(base) => shifted_copy(rootfs, &d.dir.join("debian-shifted"), base),
        None => rootfs.to_path_buf(),
    };
    d.write_unit(
        "os",
        &format!(
            "rootfs: {}\nvolatile: overlay\nboot: true\n{extra}",
            rootfs.display()
        ),
    );
    d.supctl(&["reload"]);
    let mut state = String::new();
    let booted = poll(Duration::from_secs(180), || {
        let (_, out) = exec(&d, &["systemctl", "is-system-running"]);
        state = out;
        state == "running" || state == "degraded"
    });
    let log = d.log("os");
    assert!(
        booted,
        "is-system-running: {state:?}\n{log}\n{}",
        d.daemon_log()
    );
    let (_, pid1) = exec(&d, &["cat", "/proc/1/comm"]);
    assert_eq!(pid1, "systemd");
    let (_, failed) = exec(&d, &["systemctl", "--failed", "--no-legend"]);
    eprintln!("failed units (degraded is allowed): {failed:?}");
    // The journal reaches the unit's log through the console.
    let marker = format!("hello-from-the-journal-{}", std::process::id());
    assert!(exec(&d, &["logger", &marker]).0);
    let log = d.wait_log("os", &marker);
    eprintln!("the unit's log:\n{log}");
    assert!(log.contains("systemd"), "{log}");
    if let Some(base) = shift {
        let (_, map) = exec(&d, &["cat", "/proc/self/uid_map"]);
        assert!(
            map.split_whitespace().eq(["0", &base.to_string(), "65536"]),
            "{map}"
        );
    }
    let (_, cgroup) = exec(&d, &["cat", "/proc/self/cgroup"]);
    assert!(
        !cgroup.contains(&cgroup_parent(&d.dir)),
        "a cgroup namespace rooted at the container's: {cgroup}"
    );
    let started = Instant::now();
    let stop = d.supctl(&["stop", "os"]);
    assert!(stop.status.success(), "{stop:?}");
    let took = started.elapsed();
    let status = d.status("os");
    assert_eq!(status["state"], "stopped", "{status}");
    assert!(
        status["last_exit"]["killed_after_timeout"] != true,
        "a clean shutdown, not a kill after the timeout ({took:?}): {status}"
    );
    eprintln!("shut down in {took:?}: {}", status["last_exit"]);
    d.stop();
    assert_eq!(
        top_level_cgroups(),
        before,
        "nothing of the guest at the host's top level"
    );
}

/// A copy of the tree owned by the range a user namespace maps its ids to
/// (`base` + each id), as such a container's root must be.
fn shifted_copy(source: &Path, target: &Path, base: u32) -> PathBuf {
    let status = Command::new("cp")
        .arg("-a")
        .arg(source)
        .arg(target)
        .status()
        .unwrap();
    assert!(status.success());
    let mut pending = vec![target.to_path_buf()];
    while let Some(path) = pending.pop() {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::symlink_metadata(&path).unwrap();
        std::os::unix::fs::lchown(&path, Some(base + meta.uid()), Some(base + meta.gid())).unwrap();
        if meta.is_dir() {
            // chown clears set-id bits; directories keep theirs (setgid).
            let mode = meta.mode() & 0o7777;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            pending.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if meta.is_file() && meta.mode() & 0o6000 != 0 {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode() & 0o7777)).unwrap();
        }
    }
    target.to_path_buf()
}

#[test]
fn a_debian_boots_with_systemd_as_pid_1_and_shuts_down_cleanly() {
    boots_and_stops("", None);
}

#[test]
fn a_debian_boots_in_a_user_namespace() {
    boots_and_stops(
        "security: { user_namespace: { uid_map: \"0:300000:65536\", gid_map: \"0:300000:65536\" } }\n",
        Some(300_000),
    );
}
