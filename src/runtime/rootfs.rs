//! Mount steps of the init stage, in the order `setup::prepare` runs them.
//! All of them happen in the container's private mount namespace, so nothing
//! here is visible on the host and everything vanishes with the container.

use super::{SetupError, Spec};
use crate::unit::{Mount, MountKind, Volatile};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, DirBuilderExt};
use std::path::{Component, Path, PathBuf};

pub(super) fn mount_step(
    step: &str,
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), SetupError> {
    mount(source, target, fstype, flags, data)
        .map_err(|e| SetupError::new(step, Some(target), io::Error::from(e)))
}

pub(super) fn mkdir_step(step: &str, path: &Path, mode: u32) -> Result<(), SetupError> {
    match fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
    {
        Ok(()) => Ok(()),
        Err(e) => Err(SetupError::new(step, Some(path), e)),
    }
}

/// Stops mount events from propagating back to the host's namespace.
pub fn make_private() -> Result<(), SetupError> {
    mount_step(
        "make-private",
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
}

/// Mounts the container's root at `STAGING/root` and returns that path.
pub fn assemble(spec: &Spec) -> Result<PathBuf, SetupError> {
    let unit = &spec.unit;
    let lowers: Vec<PathBuf> = match &unit.rootfs {
        Some(dir) => vec![dir.clone()],
        None => unit.layers.iter().rev().cloned().collect(),
    };
    for lower in &lowers {
        match std::fs::metadata(lower) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(SetupError::message(
                    "rootfs",
                    Some(lower),
                    "not a directory",
                ))
            }
            Err(e) => return Err(SetupError::new("rootfs", Some(lower), e)),
        }
    }
    mount_step(
        "staging",
        None,
        &spec.staging,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0700"),
    )?;
    let root = spec.staging.join("root");
    mkdir_step("staging", &root, 0o755)?;
    let upper_base = match (&unit.rootfs, unit.volatile) {
        (Some(rootfs), Volatile::No) => {
            mount_step(
                "rootfs",
                Some(rootfs),
                &root,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            return Ok(root);
        }
        (_, Volatile::Overlay) => match unit.resources.storage_size {
            Some(size) => sized_tmpfs(&spec.staging.join("layer"), size)?,
            None => spec.staging.clone(),
        },
        _ if unit.resources.storage_size.is_some() => super::storage::layer_dir(&spec.state_dir),
        _ => spec.state_dir.clone(),
    };
    let upper = upper_base.join("upper");
    let work = upper_base.join("work");
    mkdir_step("overlay", &upper, 0o755)?;
    mkdir_step("overlay", &work, 0o700)?;
    let mut options = String::from("lowerdir=");
    for (index, lower) in lowers.iter().enumerate() {
        if index > 0 {
            options.push(':');
        }
        options.push_str(&overlay_path(lower)?);
    }
    options.push_str(&format!(
        ",upperdir={},workdir={}",
        overlay_path(&upper)?,
        overlay_path(&work)?
    ));
    mount_step(
        "overlay",
        Some(Path::new("overlay")),
        &root,
        Some("overlay"),
        MsFlags::empty(),
        Some(&options),
    )?;
    Ok(root)
}

/// `volatile: overlay` with `resources.storage`: the upper and work
/// directories on a tmpfs of that size, so a full layer is ENOSPC rather
/// than memory pressure.
fn sized_tmpfs(dir: &Path, size: u64) -> Result<PathBuf, SetupError> {
    mkdir_step("storage", dir, 0o755)?;
    mount_step(
        "storage",
        Some(Path::new("tmpfs")),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(&format!("size={size},mode=0755")),
    )?;
    Ok(dir.to_path_buf())
}

fn overlay_path(path: &Path) -> Result<String, SetupError> {
    let text = path.to_str().unwrap_or("");
    if text.is_empty() || text.contains([',', ':', '\\']) {
        return Err(SetupError::message(
            "overlay",
            Some(path),
            "overlay paths must be UTF-8 without ',', ':' or '\\'",
        ));
    }
    Ok(text.to_string())
}

/// The unit's bind and tmpfs mounts.
pub fn mount_volumes(root: &Path, mounts: &[Mount]) -> Result<(), SetupError> {
    for m in mounts {
        let step = format!("mount {}", m.target.display());
        match m.kind {
            MountKind::Bind => {
                let source = m.source.as_deref().unwrap_or(Path::new(""));
                let is_dir = fs::metadata(source)
                    .map_err(|e| SetupError::new(&step, Some(source), e))?
                    .is_dir();
                let target = prepare_target(root, &m.target, is_dir, &step)?;
                mount_step(
                    &step,
                    Some(source),
                    &target,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )?;
                if m.readonly {
                    remount_readonly(&step, &target, MsFlags::empty())?;
                }
            }
            MountKind::Tmpfs => {
                let target = prepare_target(root, &m.target, true, &step)?;
                let mut options = format!("mode={:o}", m.mode.unwrap_or(0o755));
                if let Some(size) = m.size {
                    options.push_str(&format!(",size={size}"));
                }
                let mut flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                if m.readonly {
                    flags |= MsFlags::MS_RDONLY;
                }
                mount_step(&step, None, &target, Some("tmpfs"), flags, Some(&options))?;
            }
        }
    }
    Ok(())
}

pub(super) fn remount_readonly(
    step: &str,
    target: &Path,
    extra: MsFlags,
) -> Result<(), SetupError> {
    mount_step(
        step,
        None,
        target,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | extra,
        None,
    )
}

/// Resolves `target` inside `root` (symlinks are followed as if `root` were
/// `/`, so a hostile rootfs cannot point a mount outside itself) and creates
/// the mount point if missing.
pub(super) fn prepare_target(
    root: &Path,
    target: &Path,
    dir: bool,
    step: &str,
) -> Result<PathBuf, SetupError> {
    let resolved =
        resolve_in_root(root, target).map_err(|e| SetupError::new(step, Some(target), e))?;
    if fs::symlink_metadata(&resolved).is_err() {
        let created = if dir {
            fs::create_dir_all(&resolved)
        } else {
            resolved
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|()| fs::File::create(&resolved).map(drop))
        };
        created.map_err(|e| SetupError::new(step, Some(target), e))?;
    }
    Ok(resolved)
}

pub fn resolve_in_root(root: &Path, target: &Path) -> io::Result<PathBuf> {
    let mut current = root.to_path_buf();
    let mut pending: VecDeque<PathBuf> = target
        .components()
        .map(|c| PathBuf::from(c.as_os_str()))
        .collect();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        match part.components().next() {
            Some(Component::Normal(name)) => {
                let next = current.join(name);
                match fs::symlink_metadata(&next) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        links += 1;
                        if links > 40 {
                            return Err(io::Error::from_raw_os_error(libc::ELOOP));
                        }
                        let link = fs::read_link(&next)?;
                        if link.is_absolute() {
                            current = root.to_path_buf();
                        }
                        for component in link.components().rev() {
                            pending.push_front(PathBuf::from(component.as_os_str()));
                        }
                    }
                    _ => current = next,
                }
            }
            Some(Component::ParentDir) if current != root => {
                current.pop();
            }
            _ => {}
        }
    }
    Ok(current)
}

/// A fresh /proc for the new PID namespace and a read-only /sys.
pub fn mount_proc_sys(root: &Path) -> Result<(), SetupError> {
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = prepare_target(root, Path::new("/proc"), true, "proc")?;
    mount_step(
        "proc",
        Some(Path::new("proc")),
        &proc_dir,
        Some("proc"),
        hardened,
        None,
    )?;
    let sys_dir = prepare_target(root, Path::new("/sys"), true, "sys")?;
    let fresh = mount(
        Some(Path::new("sysfs")),
        &sys_dir,
        Some("sysfs"),
        hardened | MsFlags::MS_RDONLY,
        None::<&str>,
    );
    match fresh {
        Ok(()) => Ok(()),
        // A user namespace may not mount sysfs for a network namespace it
        // does not own (host networking): bind the host's, read-only.
        Err(nix::Error::EPERM) => {
            mount_step(
                "sys",
                Some(Path::new("/sys")),
                &sys_dir,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )?;
            remount_readonly("sys", &sys_dir, hardened)
        }
        Err(e) => Err(SetupError::new("sys", Some(&sys_dir), io::Error::from(e))),
    }
}

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// A minimal /dev: the six safe character devices bind-mounted from the
/// host, a private devpts, /dev/shm and the usual symlinks.
pub fn mount_dev(root: &Path) -> Result<(), SetupError> {
    let dev = prepare_target(root, Path::new("/dev"), true, "dev")?;
    mount_step(
        "dev",
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )?;
    for name in DEVICES {
        let host = Path::new("/dev").join(name);
        let node = dev.join(name);
        let step = format!("dev {name}");
        fs::File::create(&node).map_err(|e| SetupError::new(&step, Some(&node), e))?;
        mount_step(&step, Some(&host), &node, None, MsFlags::MS_BIND, None)?;
    }
    let pts = dev.join("pts");
    mkdir_step("devpts", &pts, 0o755)?;
    mount_step(
        "devpts",
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    mkdir_step("shm", &shm, 0o1777)?;
    mount_step(
        "shm",
        Some(Path::new("shm")),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )?;
    let links = [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ];
    for (name, target) in links {
        let link = dev.join(name);
        symlink(target, &link).map_err(|e| SetupError::new("dev links", Some(&link), e))?;
    }
    Ok(())
}

/// Writes the resolv.conf supd made to a file on the container's private
/// staging tmpfs and bind-mounts it over /etc/resolv.conf: the rootfs itself
/// is not modified.
pub fn mount_resolv_conf(root: &Path, staging: &Path, text: &str) -> Result<(), SetupError> {
    let file = staging.join("resolv.conf");
    fs::write(&file, text).map_err(|e| SetupError::new("resolv.conf", Some(&file), e))?;
    bind_file_readonly(root, &file, "/etc/resolv.conf", "resolv.conf")
}

/// Bind-mounts the hosts file supd keeps current over /etc/hosts.
pub fn mount_hosts(root: &Path, file: &Path) -> Result<(), SetupError> {
    bind_file_readonly(root, file, "/etc/hosts", "hosts")
}

pub(super) fn bind_file_readonly(
    root: &Path,
    file: &Path,
    target: &str,
    step: &str,
) -> Result<(), SetupError> {
    let target = prepare_target(root, Path::new(target), false, step)?;
    mount_step(step, Some(file), &target, None, MsFlags::MS_BIND, None)?;
    remount_readonly(step, &target, MsFlags::empty())
}

/// After the sysctls are written: /proc/sys becomes read-only, so the
/// workload cannot change them (nor reach the host's non-namespaced ones).
pub fn make_proc_sys_readonly() -> Result<(), SetupError> {
    let sys = Path::new("/proc/sys");
    mount_step(
        "proc/sys",
        Some(sys),
        sys,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    remount_readonly(
        "proc/sys",
        sys,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
    )
}

/// On cgroup v2, the container sees its own cgroup (its cgroup namespace's
/// root) read-only at /sys/fs/cgroup. On v1 nothing is mounted there.
pub fn mount_cgroupfs(root: &Path) -> Result<(), SetupError> {
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Ok(());
    }
    let target = root.join("sys/fs/cgroup");
    // With a user namespace and host networking /sys is the host's, bound
    // with its submounts: a cgroupfs is already there, and the container's
    // root, not being host root, cannot write to it.
    if target.join("cgroup.controllers").exists() {
        return Ok(());
    }
    mount_step(
        "cgroupfs",
        Some(Path::new("cgroup2")),
        &target,
        Some("cgroup2"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
}

/// Docker's masked paths (hidden) and read-only paths, after pivot_root.
const MASKED: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
const READ_ONLY: [&str; 4] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sysrq-trigger"];

/// Masks a file with /dev/null and a directory with an empty read-only
/// tmpfs; paths this kernel lacks are skipped.
pub fn mask_paths() -> Result<(), SetupError> {
    for path in MASKED.iter().map(Path::new) {
        let Ok(meta) = fs::symlink_metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            mount_step(
                "mask",
                None,
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0,mode=0555"),
            )?;
        } else {
            mount_step(
                "mask",
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )?;
        }
    }
    for path in READ_ONLY.iter().map(Path::new) {
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        mount_step(
            "read-only",
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        remount_readonly(
            "read-only",
            path,
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        )?;
    }
    Ok(())
}

/// Makes the root mount itself read-only; the mounts below it (/dev, /proc,
/// tmpfs volumes) keep their own flags.
pub fn make_readonly(root: &Path) -> Result<(), SetupError> {
    remount_readonly("readonly-rootfs", root, MsFlags::MS_NOSUID)
        .or_else(|_| remount_readonly("readonly-rootfs", root, MsFlags::empty()))
}

/// pivot_root into `root` and detach the old root, so the host's file system
/// is no longer reachable from the container.
pub fn pivot(root: &Path) -> Result<(), SetupError> {
    let fail = |e: nix::Error| SetupError::new("pivot_root", Some(root), io::Error::from(e));
    nix::unistd::chdir(root).map_err(fail)?;
    nix::unistd::pivot_root(".", ".").map_err(fail)?;
    umount2(".", MntFlags::MNT_DETACH).map_err(fail)?;
    nix::unistd::chdir("/").map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_in_root_keeps_symlinks_inside_the_root() {
        let root = std::env::temp_dir().join(format!("supd-resolve-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("real/dir")).unwrap();
        symlink("/real", root.join("abs")).unwrap();
        symlink("../../../..", root.join("real/up")).unwrap();
        symlink("/etc", root.join("etc")).unwrap();
        symlink("real", root.join("rel")).unwrap();
        let r = |p: &str| resolve_in_root(&root, Path::new(p)).unwrap();
        assert_eq!(r("/abs/dir"), root.join("real/dir"));
        assert_eq!(r("/real/up/x"), root.join("x"));
        assert_eq!(r("/rel/dir"), root.join("real/dir"));
        assert!(
            resolve_in_root(&root, Path::new("/etc/passwd")).is_err(),
            "a self loop is ELOOP"
        );
        assert_eq!(r("/../../x"), root.join("x"));
        assert_eq!(r("/new/path"), root.join("new/path"));
        fs::remove_dir_all(&root).unwrap();
    }
}
