//! The init stage's part of a system container (`boot: true`), as
//! systemd-nspawn --boot prepares one: a console, tmpfs where systemd
//! expects them, and a cgroup tree of its own that it may write.

use super::rootfs::{mkdir_step, mount_step, prepare_target, remount_readonly};
use super::SetupError;
use nix::mount::MsFlags;
use std::path::Path;

const HARDENED: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// After the container's /dev: the console and the tmpfs.
pub fn prepare(root: &Path, console: Option<&Path>) -> Result<(), SetupError> {
    if let Some(slave) = console {
        let target = prepare_target(root, Path::new("/dev/console"), false, "console")?;
        mount_step(
            "console",
            Some(slave),
            &target,
            None,
            MsFlags::MS_BIND,
            None,
        )?;
    }
    for (target, mode, flags) in [
        ("/run", "0755", MsFlags::MS_NOSUID | MsFlags::MS_NODEV),
        ("/run/lock", "1777", HARDENED),
        ("/tmp", "1777", MsFlags::MS_NOSUID | MsFlags::MS_NODEV),
    ] {
        let dir = prepare_target(root, Path::new(target), true, target)?;
        mount_step(
            target,
            Some(Path::new("tmpfs")),
            &dir,
            Some("tmpfs"),
            flags,
            Some(&format!("mode={mode}")),
        )?;
    }
    Ok(())
}

/// The container's own cgroup tree at /sys/fs/cgroup, writable: the
/// process is in the container's cgroup and in a cgroup namespace rooted
/// there, so each mount shows that cgroup as its root. Pure v2: cgroup2
/// itself. v1 and hybrid: a tmpfs with systemd's named hierarchy (and on a
/// hybrid host the cgroup2 beside it at `unified`), as nspawn mounts it;
/// the v1 controllers stay supd's.
pub fn mount_cgroups(root: &Path) -> Result<(), SetupError> {
    let target = root.join("sys/fs/cgroup");
    // `kind` is the file system type and its source name alike.
    let mount = |kind: &str, at: &Path, data: Option<&str>| {
        mount_step(
            "cgroupfs",
            Some(Path::new(kind)),
            at,
            Some(kind),
            HARDENED,
            data,
        )
    };
    // The tmpfs comes first on every layout. On v2 it is what lets cgroup2
    // go on top under a user namespace with the host's network, where /sys
    // is the host's, bound with its cgroup2: the kernel refuses (EBUSY) to
    // stack cgroup2 directly on a mount of itself.
    mount("tmpfs", &target, Some("mode=0755"))?;
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return mount("cgroup2", &target, None);
    }
    let systemd = target.join("systemd");
    mkdir_step("cgroupfs", &systemd, 0o755)?;
    mount("cgroup", &systemd, Some("none,name=systemd"))?;
    if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        let unified = target.join("unified");
        mkdir_step("cgroupfs", &unified, 0o755)?;
        mount("cgroup2", &unified, None)?;
    }
    remount_readonly("cgroupfs", &target, HARDENED)
}
