//! Project quota (XFS's and ext4's per-directory quota): the layer's directory gets a
//! project id with the inherit flag, so everything created below it is
//! charged to that project, and the project gets a hard block limit.
//! Works on XFS and on ext4 with the `project` and `quota` features where
//! the kernel has quota support and the file system enforces project quota.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

const EXT4_SUPER_MAGIC: i64 = 0xEF53;
const XFS_SUPER_MAGIC: i64 = 0x5846_5342;

const PRJQUOTA: u32 = 2;
const Q_SETQUOTA: u32 = 0x80_0008;
const Q_XGETQSTAT: u32 = ((b'X' as u32) << 8) + 5;
const FS_QUOTA_PDQ_ACCT: u16 = 1 << 4;
const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;
const QIF_BLIMITS: u32 = 1;
/// Quota block limits are in 1 KiB units (QIF_DQBLKSIZE).
const QUOTA_BLOCK: u64 = 1024;

const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801C_581F;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401C_5820;
const FS_XFLAG_PROJINHERIT: u32 = 0x200;

/// Project ids supd gives its layers start here, well above the small
/// numbers administrators hand out by hand in /etc/projid.
pub const FIRST_PROJECT_ID: u32 = 0x5350_0000;

/// `struct fsxattr` of <linux/fs.h>.
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}

/// `struct if_dqblk` of <linux/quota.h>.
#[repr(C)]
#[derive(Default)]
struct DqBlk {
    bhardlimit: u64,
    bsoftlimit: u64,
    curspace: u64,
    ihardlimit: u64,
    isoftlimit: u64,
    curinodes: u64,
    btime: u64,
    itime: u64,
    valid: u32,
}

fn qcmd(cmd: u32, kind: u32) -> libc::c_int {
    ((cmd << 8) | (kind & 0xff)) as libc::c_int
}

fn quotactl(dir: &File, cmd: libc::c_int, id: u32, addr: *mut libc::c_void) -> io::Result<()> {
    // SAFETY: quotactl_fd reads or writes the structure `addr` points to,
    // which the callers size for `cmd`.
    let ret = unsafe { libc::syscall(libc::SYS_quotactl_fd, dir.as_raw_fd(), cmd, id, addr) };
    super::os_result(ret)
}

/// Whether the file system holding `dir` accounts and enforces project
/// quota. Kernels without quota support or quotactl_fd (before 5.14) and
/// other file systems answer no.
pub fn enforced(dir: &Path) -> bool {
    let Ok(stat) = nix::sys::statfs::statfs(dir) else {
        return false;
    };
    // The field is 32 bits wide on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    let magic = stat.filesystem_type().0 as i64;
    if magic != EXT4_SUPER_MAGIC && magic != XFS_SUPER_MAGIC {
        return false;
    }
    let Ok(file) = File::open(dir) else {
        return false;
    };
    // `struct fs_quota_stat`: qs_flags is the u16 at offset 2.
    let mut state = [0u8; 128];
    if quotactl(
        &file,
        qcmd(Q_XGETQSTAT, PRJQUOTA),
        0,
        state.as_mut_ptr().cast(),
    )
    .is_err()
    {
        return false;
    }
    let flags = u16::from_ne_bytes([state[2], state[3]]);
    flags & FS_QUOTA_PDQ_ACCT != 0 && flags & FS_QUOTA_PDQ_ENFD != 0
}

fn get_xattr(dir: &File) -> io::Result<FsXattr> {
    let mut attr = FsXattr::default();
    // SAFETY: FS_IOC_FSGETXATTR fills a struct fsxattr.
    let ret = unsafe { libc::ioctl(dir.as_raw_fd(), FS_IOC_FSGETXATTR as _, &mut attr) };
    super::os_result(ret).map(|()| attr)
}

/// The project id of `dir` (0: none).
pub fn project_of(dir: &Path) -> io::Result<u32> {
    get_xattr(&File::open(dir)?).map(|attr| attr.projid)
}

/// Gives `dir` the project `id`, inherited by what is created below it.
pub fn assign(dir: &Path, id: u32) -> io::Result<()> {
    let file = File::open(dir)?;
    let mut attr = get_xattr(&file)?;
    attr.projid = id;
    attr.xflags |= FS_XFLAG_PROJINHERIT;
    // SAFETY: FS_IOC_FSSETXATTR reads the struct fsxattr we pass.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FSSETXATTR as _, &attr) };
    super::os_result(ret)
}

/// Sets project `id`'s hard block limit to `bytes` (0 lifts it).
pub fn set_limit(dir: &Path, id: u32, bytes: u64) -> io::Result<()> {
    let file = File::open(dir)?;
    let blocks = bytes.div_ceil(QUOTA_BLOCK);
    let mut quota = DqBlk {
        bhardlimit: blocks,
        bsoftlimit: blocks,
        valid: QIF_BLIMITS,
        ..DqBlk::default()
    };
    quotactl(
        &file,
        qcmd(Q_SETQUOTA, PRJQUOTA),
        id,
        (&mut quota as *mut DqBlk).cast(),
    )
}

/// The lowest id from FIRST_PROJECT_ID that no other unit's layer in
/// `state_root` uses.
pub fn free_id(state_root: &Path, layer_name: &str) -> u32 {
    let mut used: Vec<u32> = fs::read_dir(state_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| project_of(&entry.path().join(layer_name)).ok())
        .filter(|&id| id >= FIRST_PROJECT_ID)
        .collect();
    used.sort_unstable();
    let mut id = FIRST_PROJECT_ID;
    for taken in used {
        if taken == id {
            id = id.saturating_add(1);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structs_and_commands_have_the_kernel_values() {
        assert_eq!(std::mem::size_of::<FsXattr>(), 28);
        assert_eq!(std::mem::size_of::<DqBlk>(), 72);
        assert_eq!(qcmd(Q_SETQUOTA, PRJQUOTA), 0x8000_0802_u32 as i32);
        assert_eq!(qcmd(Q_XGETQSTAT, PRJQUOTA), 0x0058_0502);
    }

    #[test]
    fn a_file_system_without_project_quota_says_so() {
        assert!(!enforced(Path::new("/proc")));
        assert!(!enforced(Path::new("/nonexistent")));
    }
}
