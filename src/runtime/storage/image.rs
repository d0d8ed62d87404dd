//! The fallback where project quota is not available: a sparse ext4 image
//! per container, loop-mounted where the layer's directories live. The
//! image only takes the host disk space its files use, and never more
//! than its size.

use super::loopdev::{self, LoopDevice};
use super::{io_error, StorageError};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXT4_IOC_RESIZE_FS: libc::c_ulong = 0x4008_6610;
const BLOCK: u64 = 4096;
/// The image grows in steps of this much past what the data needs.
const GROW_ROUNDING: u64 = 1 << 20;
/// mke2fs on a sparse file takes milliseconds; this bounds a stuck one.
const E2FSPROGS_TIMEOUT: Duration = Duration::from_secs(30);
/// A size this far below the image's is a shrink, which ext4 cannot do
/// while mounted.
const SHRINK_SLACK: u64 = 16 << 20;
/// The kernel detaches an autoclear loop device just after its last user
/// goes; a device still attached after this is held by another mount.
const DETACH_WAIT: Duration = Duration::from_secs(1);

/// What fitting the mounted image to a size did.
#[derive(Debug, PartialEq, Eq)]
pub enum Fit {
    /// It holds the size already.
    Unchanged,
    /// Grown online to hold it.
    Grown,
    /// It is larger and stays so; `capacity` is what it holds.
    CannotShrink { capacity: u64 },
    /// Online resize is not allowed here: grow to `blocks` while unmounted.
    Offline { blocks: u64 },
}

/// Creates the image if it is missing, mounts it on `dir` unless it is
/// mounted there already and fits it to `size`. A fresh image is made
/// again with room for ext4's own blocks (journal, inode tables) until
/// `size` is what the container can write.
pub fn mount_image(image: &Path, dir: &Path, size: u64) -> Result<Fit, StorageError> {
    fs::create_dir_all(dir).map_err(io_error("create", dir))?;
    if !image.exists() {
        return create(image, dir, size);
    }
    let already = super::is_mount_point(dir);
    let mut device = attach_and_mount(image, dir)?;
    for _ in 0..3 {
        match fit(image, dir, &device, size)? {
            Fit::Offline { blocks } if !already => {
                drop(device);
                grow_offline(image, dir, blocks)?;
                device = attach_and_mount(image, dir)?;
            }
            fit => return Ok(fit),
        }
    }
    Ok(Fit::Grown)
}

fn attach_and_mount(image: &Path, dir: &Path) -> Result<LoopDevice, StorageError> {
    let device = match loopdev::find_attached(image) {
        Some(device) => device,
        None => loopdev::attach(image).map_err(io_error("attach a loop device to", image))?,
    };
    if !super::is_mount_point(dir) {
        // A sparse file reads as zeros: its inode tables need no zeroing
        // (noinit_itable), which would otherwise fill the image on the host.
        mount(
            Some(device.path.as_path()),
            dir,
            Some("ext4"),
            MsFlags::empty(),
            Some("noinit_itable"),
        )
        .map_err(|e| StorageError::Io {
            op: "mount",
            path: device.path.clone(),
            source: e.into(),
        })?;
    }
    Ok(device)
}

/// Makes the sparse image under a temporary name, so that an interrupted
/// mke2fs never leaves an image that looks made, measures what it holds
/// and makes it again larger by what ext4 took.
fn create(image: &Path, dir: &Path, size: u64) -> Result<Fit, StorageError> {
    let partial = image.with_extension("img.partial");
    let made = (|| {
        let mut length = size.next_multiple_of(GROW_ROUNDING);
        for _ in 0..3 {
            format(&partial, length)?;
            let device = attach_and_mount(&partial, dir)?;
            let held = capacity(dir);
            drop(device);
            unmount(&partial, dir)?;
            let held = held?;
            if held >= size {
                break;
            }
            length = length
                .saturating_add(size - held)
                .next_multiple_of(GROW_ROUNDING);
        }
        fs::rename(&partial, image).map_err(io_error("rename", &partial))
    })();
    if made.is_err() {
        let _ = unmount(&partial, dir);
        let _ = fs::remove_file(&partial);
    }
    made?;
    mount_image(image, dir, size)
}

fn format(image: &Path, length: u64) -> Result<(), StorageError> {
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(image)
        .map_err(io_error("create", image))?;
    file.set_len(length).map_err(io_error("size", image))?;
    drop(file);
    run_e2fsprogs(
        "mke2fs",
        &[
            "-q",
            "-F",
            "-t",
            "ext4",
            "-b",
            "4096",
            "-i",
            "16384",
            "-I",
            "256",
            "-m",
            "0",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
        ],
        image,
        &[],
    )
}

/// Where online resize is not allowed (it needs CAP_SYS_RESOURCE), the
/// image grows while nothing has it mounted.
fn grow_offline(image: &Path, dir: &Path, blocks: u64) -> Result<(), StorageError> {
    unmount(image, dir)?;
    // Another mount namespace (a container of an earlier supd) may hold it
    // still: an offline resize under a mounted file system would wreck it.
    if loopdev::find_attached(image).is_some() {
        return Err(StorageError::Image {
            path: image.to_path_buf(),
            message: "cannot grow: the image is still mounted elsewhere".into(),
        });
    }
    let size = format!("{}K", blocks.saturating_mul(BLOCK) / 1024);
    run_e2fsprogs("resize2fs", &["-f"], image, &[&size])
}

fn e2fsprogs_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `NAME OPTIONS... IMAGE AFTER...`: mke2fs or resize2fs. No syscall
/// makes or grows an ext4 file system offline, so these two are the one
/// place supd runs a program (e2fsprogs, which the package depends on).
fn run_e2fsprogs(
    name: &str,
    options: &[&str],
    image: &Path,
    after: &[&str],
) -> Result<(), StorageError> {
    let fail = |message: String| StorageError::Image {
        path: image.to_path_buf(),
        message: format!("{name}: {message}"),
    };
    let binary = e2fsprogs_binary(name)
        .ok_or_else(|| fail("not found: install e2fsprogs, which makes the ext4 image".into()))?;
    let mut child = Command::new(&binary)
        .args(options)
        .arg(image)
        .args(after)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("{}: {e}", binary.display())))?;
    let deadline = Instant::now() + E2FSPROGS_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "timed out after {}s",
                    E2FSPROGS_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    Err(fail(format!("{status}: {}", stderr.trim())))
}

/// The data the mounted file system holds (its blocks less ext4's own).
fn capacity(dir: &Path) -> Result<u64, StorageError> {
    let stat = nix::sys::statfs::statfs(dir).map_err(|e| StorageError::Io {
        op: "statfs",
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    Ok((stat.blocks() as u64).saturating_mul(stat.block_size() as u64))
}

/// Grows the image until the file system holds `size` bytes of data: the
/// journal, inode tables and group descriptors come on top, so `size` is
/// what the container can write.
fn fit(image: &Path, dir: &Path, device: &LoopDevice, size: u64) -> Result<Fit, StorageError> {
    let mut grown = false;
    for _ in 0..4 {
        let held = capacity(dir)?;
        if held >= size {
            if held > size.saturating_add(SHRINK_SLACK.max(size / 20)) {
                return Ok(Fit::CannotShrink { capacity: held });
            }
            return Ok(if grown { Fit::Grown } else { Fit::Unchanged });
        }
        let file = File::options()
            .write(true)
            .open(image)
            .map_err(io_error("open", image))?;
        let length = file.metadata().map_err(io_error("stat", image))?.len();
        // The new groups bring their own inode tables and bitmaps (about
        // 1.6% of their size): asked for up front, one round does.
        let deficit = size - held;
        let wanted = length
            .saturating_add(deficit + deficit / 32)
            .next_multiple_of(GROW_ROUNDING);
        file.set_len(wanted).map_err(io_error("grow", image))?;
        loopdev::set_capacity(device).map_err(io_error("resize", &device.path))?;
        match resize_fs(dir, wanted / BLOCK) {
            Err(StorageError::Io { source, .. }) if source.raw_os_error() == Some(libc::EPERM) => {
                // Nothing was written past the old end: the file goes back
                // to the length the file system has.
                file.set_len(length)
                    .map_err(io_error("shrink back", image))?;
                loopdev::set_capacity(device).map_err(io_error("resize", &device.path))?;
                return Ok(Fit::Offline {
                    blocks: wanted / BLOCK,
                });
            }
            result => result?,
        }
        grown = true;
    }
    Ok(Fit::Grown)
}

/// Online resize (what resize2fs does on a mounted file system).
fn resize_fs(dir: &Path, blocks: u64) -> Result<(), StorageError> {
    let file = File::open(dir).map_err(io_error("open", dir))?;
    // SAFETY: EXT4_IOC_RESIZE_FS reads the u64 block count we pass.
    let ret = unsafe { libc::ioctl(file.as_raw_fd(), EXT4_IOC_RESIZE_FS as _, &blocks) };
    super::os_result(ret).map_err(io_error("resize the ext4 file system on", dir))
}

/// Unmounts supd's mount of the image; the loop device detaches itself
/// once the container's copy is gone too. Waits a moment for that, so
/// that a start right after never picks up a device on its way out.
pub fn unmount(image: &Path, dir: &Path) -> Result<(), StorageError> {
    if !super::is_mount_point(dir) {
        return Ok(());
    }
    umount2(dir, MntFlags::MNT_DETACH).map_err(|e| StorageError::Io {
        op: "unmount",
        path: dir.to_path_buf(),
        source: e.into(),
    })?;
    let deadline = Instant::now() + DETACH_WAIT;
    while loopdev::find_attached(image).is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
