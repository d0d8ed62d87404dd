//! The unit's `devices:` inside the container's fresh /dev: a node with the
//! host's type, numbers, mode and owner. A user namespace may not mknod, so
//! there the host node is bind-mounted instead (its owner then shows as
//! mapped). The device cgroup decides what may actually be opened. A change
//! to `devices` reaches a running container the same way, without a
//! restart.

use super::SetupError;
use crate::unit::inputs::Device;
use nix::sys::stat::{Mode, SFlag};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

pub fn make_nodes(
    root: &Path,
    devices: &[Device],
    in_user_namespace: bool,
) -> Result<(), SetupError> {
    for device in devices {
        let step = format!("device {}", device.path.display());
        let meta = fs::metadata(&device.path)
            .map_err(|e| SetupError::new(&step, Some(&device.path), e))?;
        let kind = SFlag::from_bits_truncate(meta.mode() & libc::S_IFMT);
        if kind != SFlag::S_IFCHR && kind != SFlag::S_IFBLK {
            return Err(SetupError::message(
                &step,
                Some(&device.path),
                "not a character or block device",
            ));
        }
        let node = super::rootfs::resolve_in_root(root, &device.target)
            .map_err(|e| SetupError::new(&step, Some(&device.target), e))?;
        if let Some(parent) = node.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| SetupError::new(&step, Some(parent), e))?;
        }
        if in_user_namespace {
            fs::File::create(&node).map_err(|e| SetupError::new(&step, Some(&device.target), e))?;
            nix::mount::mount(
                Some(&device.path),
                &node,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| SetupError::new(&step, Some(&device.target), e.into()))?;
            continue;
        }
        let permissions = Mode::from_bits_truncate(meta.mode() & 0o7777);
        let made = nix::sys::stat::mknod(&node, kind, permissions, meta.rdev())
            // mknod honours the umask: the mode is set again below.
            .and_then(|()| {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&node, fs::Permissions::from_mode(permissions.bits()))
                    .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            })
            .and_then(|()| {
                nix::unistd::chown(
                    &node,
                    Some(nix::unistd::Uid::from_raw(meta.uid())),
                    Some(nix::unistd::Gid::from_raw(meta.gid())),
                )
            });
        made.map_err(|e| SetupError::new(&step, Some(&device.target), e.into()))?;
    }
    Ok(())
}

/// Why a running container's /dev could not follow its unit's devices.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", .path.display())]
pub struct LiveDeviceError {
    pub step: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

fn live_error(step: &'static str, path: &Path) -> impl FnOnce(io::Error) -> LiveDeviceError {
    let path = path.to_path_buf();
    move |source| LiveDeviceError { step, path, source }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// A detached copy of the mount of a host node, to be attached inside
/// the container, where the host's paths are out of sight.
fn detached_node(path: &Path) -> Result<OwnedFd, LiveDeviceError> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| live_error("open", path)(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: a NUL-terminated path alive across the call; the flags ask
    // for a new descriptor, owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(live_error("open_tree", path)(io::Error::last_os_error()));
    }
    let fd = i32::try_from(fd)
        .map_err(|_| live_error("open_tree", path)(io::ErrorKind::InvalidData.into()))?;
    // SAFETY: open_tree returned this descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn attach(tree: &OwnedFd, target: &Path) -> Result<(), LiveDeviceError> {
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(live_error("mkdir", parent))?;
    }
    if fs::symlink_metadata(target).is_err() {
        fs::File::create(target).map_err(live_error("create", target))?;
    }
    let c_target = std::ffi::CString::new(target.as_os_str().as_bytes())
        .map_err(|_| live_error("mount", target)(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: a descriptor we own, an empty path (the descriptor itself)
    // and a NUL-terminated target, all alive across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            c_target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if ret < 0 {
        return Err(live_error("move_mount", target)(io::Error::last_os_error()));
    }
    Ok(())
}

fn take_out(target: &Path) -> Result<(), LiveDeviceError> {
    // A node bound in (under a user namespace, or added live) is a mount;
    // one made with mknod at the start is not.
    match nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(live_error("umount", target)(e.into())),
    }
    match fs::remove_file(target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(live_error("remove", target)(e)),
    }
}

/// The host ids of the container's root when it has a user namespace
/// (from its init's uid_map and gid_map), else None.
fn container_root(pid: i32) -> Result<Option<(u32, u32)>, LiveDeviceError> {
    let outside = |file: &str| -> Result<Option<u32>, LiveDeviceError> {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        let text = fs::read_to_string(&path).map_err(live_error("read", &path))?;
        let root = text.lines().find_map(|line| {
            let fields: Vec<u32> = line
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            match fields[..] {
                // The initial namespace's identity map: no user namespace.
                [0, 0, count] if count == u32::MAX => None,
                [0, outside, _] => Some(outside),
                _ => None,
            }
        });
        Ok(root)
    };
    Ok(outside("uid_map")?.zip(outside("gid_map")?))
}

/// A running container's /dev after its unit's `devices` changed: the
/// nodes of `added` bound in (the host's own nodes, so type, numbers, mode
/// and owner are the host's), those of `removed` taken out. Done from a
/// short-lived thread that enters only the container's mount namespace
/// (a thread may, once it has its own file system context), so supd's
/// loop and its single reaper are not involved.
pub fn update_live(pid: i32, added: &[Device], removed: &[Device]) -> Result<(), LiveDeviceError> {
    let ns = PathBuf::from(format!("/proc/{pid}/ns/mnt"));
    let mount_ns = fs::File::open(&ns).map_err(live_error("open", &ns))?;
    let mut trees = Vec::with_capacity(added.len());
    for device in added {
        trees.push((device.target.clone(), detached_node(&device.path)?));
    }
    let removed: Vec<PathBuf> = removed.iter().map(|d| d.target.clone()).collect();
    let owner = container_root(pid)?;
    let worker = std::thread::spawn(move || -> Result<(), LiveDeviceError> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS)
            .map_err(|e| live_error("unshare", Path::new("CLONE_FS"))(e.into()))?;
        nix::sched::setns(mount_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNS)
            .map_err(|e| live_error("setns", &ns)(e.into()))?;
        if let Some((uid, gid)) = owner {
            // A file system mounted inside a user namespace (the /dev
            // tmpfs) only takes owners it maps: this thread creates and
            // removes files as the container's root. Per thread, and it
            // keeps CAP_SYS_ADMIN for the mount.
            // SAFETY: setfsgid/setfsuid take plain ids and change only
            // this thread's file system ids.
            unsafe {
                libc::setfsgid(gid);
                libc::setfsuid(uid);
            }
        }
        for target in &removed {
            take_out(target)?;
        }
        for (target, tree) in &trees {
            attach(tree, target)?;
        }
        Ok(())
    });
    worker.join().unwrap_or_else(|_| {
        Err(live_error("update", Path::new("/dev"))(io::Error::other(
            "the device thread panicked",
        )))
    })
}
