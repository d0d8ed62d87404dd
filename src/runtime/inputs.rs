//! The init stage's side of a unit's secrets and time zone.

use super::rootfs::{bind_file_readonly, mount_step, prepare_target, remount_readonly};
use super::user::Credentials;
use super::SetupError;
use crate::unit::inputs::Timezone;
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Where secrets appear inside the container.
pub const SECRETS_DIR: &str = "/run/secrets";

/// One secret's content, read by supd (the container's user namespace
/// may not be able to read the host file) and passed in the spec memfd.
#[derive(Clone, Serialize, Deserialize)]
pub struct SecretFile {
    pub target: String,
    pub content: Vec<u8>,
}

/// Never print a secret, even in a debug dump.
impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SecretFile({}, {} bytes)",
            self.target,
            self.content.len()
        )
    }
}

const HARDENED: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

/// Before pivot_root (the root may be made read-only afterwards): a small
/// tmpfs, so secrets never touch a disk.
pub fn mount_secrets_dir(root: &Path) -> Result<(), SetupError> {
    let dir = prepare_target(root, Path::new(SECRETS_DIR), true, "secrets")?;
    mount_step(
        "secrets",
        Some(Path::new("tmpfs")),
        &dir,
        Some("tmpfs"),
        HARDENED,
        Some("mode=0755,size=16m"),
    )
}

/// After pivot_root, once the container's user is known: each secret
/// 0400 and owned by it, then the tmpfs read-only.
pub fn write_secrets(secrets: &[SecretFile], owner: &Credentials) -> Result<(), SetupError> {
    for secret in secrets {
        let path = Path::new(SECRETS_DIR).join(&secret.target);
        let step = format!("secret {}", secret.target);
        let mut file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o400)
            .open(&path)
            .map_err(|e| SetupError::new(&step, Some(&path), e))?;
        file.write_all(&secret.content)
            .map_err(|e| SetupError::new(&step, Some(&path), e))?;
        nix::unistd::fchown(
            &file,
            Some(nix::unistd::Uid::from_raw(owner.uid)),
            Some(nix::unistd::Gid::from_raw(owner.gid)),
        )
        .map_err(|e| SetupError::new(&step, Some(&path), e.into()))?;
    }
    remount_readonly("secrets", Path::new(SECRETS_DIR), HARDENED)
}

/// The zone file over the container's /etc/localtime. Returns the TZ
/// value to set: the zone's name when the container has that zone in its
/// own zoneinfo (as programs that read TZ look there), else none, and
/// /etc/localtime alone decides.
pub fn mount_localtime(root: &Path, zone: &Timezone) -> Result<Option<String>, SetupError> {
    let file = zone.zone_file();
    bind_file_readonly(root, &file, "/etc/localtime", "timezone")?;
    let name = zone.name();
    Ok(name.filter(|name| {
        let inside = Path::new(crate::unit::inputs::ZONEINFO).join(name);
        super::rootfs::resolve_in_root(root, &inside).is_ok_and(|p| p.is_file())
    }))
}
