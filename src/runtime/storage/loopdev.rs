//! Loop devices through their ioctls (what `losetup` does): a free device
//! from /dev/loop-control, LOOP_CONFIGURE with autoclear, so the kernel
//! detaches the device once its last user (the mounted file system) lets
//! go, and nothing is left behind when supd or a container dies.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_SET_CAPACITY: libc::c_ulong = 0x4C07;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// Another process may take the free device between GET_FREE and
/// CONFIGURE (EBUSY): ask again this many times.
const ATTACH_ATTEMPTS: usize = 8;

/// `struct loop_info64` of <linux/loop.h>.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` of <linux/loop.h> (Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device, open for as long as supd needs it.
pub struct LoopDevice {
    pub path: PathBuf,
    pub file: File,
}

fn device_path(number: u32) -> PathBuf {
    PathBuf::from(format!("/dev/loop{number}"))
}

fn open_device(path: &Path) -> io::Result<File> {
    File::options().read(true).write(true).open(path)
}

/// The loop device already backed by `image`, if any (a container that
/// outlived the supd which mounted it still holds one).
pub fn find_attached(image: &Path) -> Option<LoopDevice> {
    let wanted = fs::canonicalize(image).ok()?;
    let entries = fs::read_dir("/sys/block").ok()?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(number) = name
            .to_str()
            .and_then(|n| n.strip_prefix("loop"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let backing = entry.path().join("loop/backing_file");
        let Ok(text) = crate::files::read_text(&backing, crate::files::Links::Follow, 4096) else {
            continue;
        };
        if Path::new(text.trim_end_matches('\n')) == wanted {
            let path = device_path(number);
            if let Ok(file) = open_device(&path) {
                return Some(LoopDevice { path, file });
            }
        }
    }
    None
}

/// Attaches `image` to a free loop device, with autoclear.
pub fn attach(image: &Path) -> io::Result<LoopDevice> {
    let backing = File::options().read(true).write(true).open(image)?;
    let control = open_device(Path::new("/dev/loop-control"))?;
    let mut last = io::Error::from_raw_os_error(libc::EBUSY);
    for _ in 0..ATTACH_ATTEMPTS {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if number < 0 {
            return Err(io::Error::last_os_error());
        }
        let path = device_path(number as u32);
        let file = open_device(&path)?;
        let mut config = LoopConfig {
            fd: backing.as_raw_fd() as u32,
            block_size: 0,
            // SAFETY: plain integers and byte arrays: all zero is valid.
            info: unsafe { std::mem::zeroed() },
            reserved: [0; 8],
        };
        config.info.flags = LO_FLAGS_AUTOCLEAR;
        // SAFETY: `config` is a valid loop_config that outlives the call;
        // the kernel takes its own reference to the backing file.
        let ret = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &config as *const LoopConfig,
            )
        };
        if ret == 0 {
            return Ok(LoopDevice { path, file });
        }
        last = io::Error::last_os_error();
        if last.raw_os_error() != Some(libc::EBUSY) {
            return Err(last);
        }
    }
    Err(last)
}

/// Tells the device its backing file grew.
pub fn set_capacity(device: &LoopDevice) -> io::Result<()> {
    // SAFETY: LOOP_SET_CAPACITY takes no argument.
    let ret = unsafe { libc::ioctl(device.file.as_raw_fd(), LOOP_SET_CAPACITY as _, 0) };
    super::os_result(ret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
