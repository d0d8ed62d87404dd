//! The unit's `devices:` inside the container's fresh /dev: a node with the
//! host's type, numbers, mode and owner. A user namespace may not mknod, so
//! there the host node is bind-mounted instead (its owner then shows as
//! mapped). The device cgroup decides what may actually be opened.

use super::SetupError;
use crate::unit::inputs::Device;
use nix::sys::stat::{Mode, SFlag};
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

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
