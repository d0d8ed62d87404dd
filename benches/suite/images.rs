//! Images: importing a large one (time, and supd's peak RSS, which must not
//! grow with the image), starting a container from an imported image
//! against the same files as a rootfs directory, and podman loading and
//! running the same image as the anchor. The images are built here with
//! buildah, from the test rootfs plus incompressible payload.

use crate::common::{busybox_rootfs, Daemon};
use crate::lifecycle::start_latency_of;
use crate::probe::Probe;
use crate::stats::{summarize, Summary};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Import {
    pub megabytes: u64,
    pub took: Duration,
    /// supd's VmHWM after the import (a fresh supd: the import's peak).
    pub peak_rss_kib: u64,
    /// Reading the archive alone, cold: what the disk allows.
    pub read_took: Duration,
    /// GNU tar and gzip unpacking the same layer blob, then `sync -f`,
    /// cold: the usual tools' floor for the same work without digests.
    pub tar_took: Option<Duration>,
    /// The slowest `status` answer while the import ran.
    pub status_max: Duration,
}

pub struct Images {
    pub dir: PathBuf,
    pub big_oci: PathBuf,
    pub big_docker: PathBuf,
    pub small_oci: PathBuf,
    pub small_docker: PathBuf,
}

fn run(command: &mut Command) -> Result<(), String> {
    let out = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{command:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

fn buildah(dir: &Path) -> Command {
    let mut command = Command::new("buildah");
    command
        .env("STORAGE_DRIVER", "vfs")
        .env("BUILDAH_ISOLATION", "chroot")
        .arg("--root")
        .arg(dir.join("buildah"))
        .arg("--runroot")
        .arg(dir.join("buildah-run"));
    command
}

/// An image of the test rootfs, and one with `megabytes` of random files
/// on top, each as oci-archive and docker-archive.
pub fn build(megabytes: u64) -> Result<Images, String> {
    let dir = std::env::temp_dir().join(format!("supd-bench-images-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("payload")).map_err(|e| e.to_string())?;
    for i in 0..megabytes {
        let mut bytes = vec![0u8; 1 << 20];
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ i;
        for chunk in bytes.chunks_mut(8) {
            // xorshift: incompressible, so gzip cannot shrink the test.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(dir.join(format!("payload/{i}.bin")), bytes).map_err(|e| e.to_string())?;
    }
    let images = Images {
        big_oci: dir.join("big.oci.tar"),
        big_docker: dir.join("big.docker.tar"),
        small_oci: dir.join("small.oci.tar"),
        small_docker: dir.join("small.docker.tar"),
        dir: dir.clone(),
    };
    for (name, payload) in [("small", false), ("big", true)] {
        let out = buildah(&dir)
            .args(["from", "scratch"])
            .output()
            .map_err(|e| e.to_string())?;
        let container = String::from_utf8_lossy(&out.stdout).trim().to_string();
        run(buildah(&dir)
            .arg("copy")
            .arg(&container)
            .arg(busybox_rootfs())
            .arg("/"))?;
        if payload {
            run(buildah(&dir)
                .arg("copy")
                .arg(&container)
                .arg(dir.join("payload"))
                .arg("/payload"))?;
        }
        run(buildah(&dir).args(["commit", "-q", &container, &format!("localhost/{name}:1")]))?;
        run(buildah(&dir).args(["rm", &container]))?;
        for (transport, file) in [("oci-archive", "oci.tar"), ("docker-archive", "docker.tar")] {
            run(buildah(&dir).args([
                "push",
                "-q",
                &format!("localhost/{name}:1"),
                &format!(
                    "{transport}:{}/{name}.{file}:localhost/{name}:1",
                    dir.display()
                ),
            ]))?;
        }
    }
    Ok(images)
}

fn drop_caches() {
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn import(images: &Images, megabytes: u64) -> Import {
    drop_caches();
    let began = Instant::now();
    let _ = std::fs::read(&images.big_oci);
    let read_took = began.elapsed();
    let daemon = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    drop_caches();
    let importing = std::sync::atomic::AtomicBool::new(true);
    let began = Instant::now();
    // `status` over and over while the import runs: the event loop must
    // answer as if nothing were going on.
    let (out, took, status_max) = std::thread::scope(|scope| {
        let poller = scope.spawn(|| {
            let mut slowest = Duration::ZERO;
            while importing.load(std::sync::atomic::Ordering::Relaxed) {
                let asked = Instant::now();
                crate::probe::request(
                    &daemon,
                    supd::control::protocol::Command::Status { names: Vec::new() },
                );
                slowest = slowest.max(asked.elapsed());
                std::thread::sleep(Duration::from_millis(5));
            }
            slowest
        });
        let out = daemon.supctl(&["image", "import", &images.big_oci.display().to_string()]);
        let took = began.elapsed();
        importing.store(false, std::sync::atomic::Ordering::Relaxed);
        (out, took, poller.join().unwrap_or_default())
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peak_rss_kib = vm_hwm_kib(daemon.daemon_pid());
    daemon.stop();
    Import {
        megabytes,
        took,
        peak_rss_kib,
        read_took,
        tar_took: tar_anchor(images).ok(),
        status_max,
    }
}

fn tar_anchor(images: &Images) -> Result<Duration, String> {
    let blobs = images.dir.join("anchor-blobs");
    let into = images.dir.join("anchor-unpacked");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&into).map_err(|e| e.to_string())?;
    run(Command::new("tar")
        .arg("-xf")
        .arg(&images.big_oci)
        .arg("-C")
        .arg(&blobs))?;
    let layer = std::fs::read_dir(blobs.join("blobs/sha256"))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .max_by_key(|e| e.metadata().map_or(0, |m| m.len()))
        .ok_or("no blobs")?
        .path();
    drop_caches();
    let began = Instant::now();
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&into))?;
    run(Command::new("sync").arg("-f").arg(&into))?;
    Ok(began.elapsed())
}

pub struct Starts {
    pub image: Summary,
    /// The same files as a rootfs directory, bind-mounted.
    pub directory: Summary,
    /// That directory under an overlay with its upper layer in the state
    /// directory, as an image unit's root is.
    pub overlay: Summary,
}

/// `supctl start` until the workload ran: from the imported image, and
/// from the same files as a rootfs directory.
pub fn start_from_image(images: &Images, count: usize) -> Starts {
    let daemon = Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let out = daemon.supctl(&["image", "import", &images.small_oci.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = Probe::new(&daemon);
    let extra = "restart: { policy: never }\n";
    let exec = "[/bin/sd-notify, ran]";
    let units = [
        probe.image_unit("localhost/small:1", exec, extra),
        probe.unit(exec, extra),
        probe.unit(exec, &format!("{extra}volatile: state\n")),
    ];
    let mut times: [Vec<Duration>; 3] = Default::default();
    // Alternating rounds, so that drift hits all alike.
    let half = count.div_ceil(2);
    for _ in 0..2 {
        for (unit, samples) in units.iter().zip(times.iter_mut()) {
            samples.extend(start_latency_of(&daemon, &probe, unit, half, Duration::ZERO).ran);
        }
    }
    daemon.stop();
    Starts {
        image: summarize(&times[0]),
        directory: summarize(&times[1]),
        overlay: summarize(&times[2]),
    }
}

pub struct Podman {
    pub load: Duration,
    /// Or why podman could not run it here.
    pub run: Result<Summary, String>,
}

/// `podman load` of the big docker-archive, and `podman run --rm` of the
/// small image running /bin/true, in a storage of its own.
pub fn podman(images: &Images, count: usize) -> Result<Podman, String> {
    let storage = images.dir.join("podman");
    // podman refuses a runroot longer than 50 characters.
    let runroot = PathBuf::from(format!("/run/supd-bench-podman-{}", std::process::id()));
    let podman = || {
        let mut command = Command::new("podman");
        command
            .arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(&runroot)
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ]);
        command
    };
    drop_caches();
    let began = Instant::now();
    run(podman()
        .arg("load")
        .arg("-q")
        .arg("-i")
        .arg(&images.big_docker))?;
    let load = began.elapsed();
    run(podman()
        .arg("load")
        .arg("-q")
        .arg("-i")
        .arg(&images.small_docker))?;
    let mut runs = Vec::new();
    let mut failed = None;
    for _ in 0..count {
        let began = Instant::now();
        let ran = run(podman().args([
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/small:1",
            "/bin/true",
        ]));
        if let Err(e) = ran {
            failed = Some(e);
            break;
        }
        runs.push(began.elapsed());
    }
    let _ = run(podman().args(["system", "reset", "-f"]));
    let _ = std::fs::remove_dir_all(&runroot);
    Ok(Podman {
        load,
        run: match failed {
            Some(e) => Err(e),
            None => Ok(summarize(&runs)),
        },
    })
}

impl Drop for Images {
    fn drop(&mut self) {
        let _ = run(buildah(&self.dir).args(["rm", "-a"]));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
