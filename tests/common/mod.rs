//! Shared scaffolding for the root integration tests: a busybox-static rootfs
//! built once per target dir, and a supd daemon in a temp dir and a fresh
//! network namespace, checked for leftovers when dropped.

#![allow(dead_code)]

pub mod world;

use serde_json::Value;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const SUPD: &str = env!("CARGO_BIN_EXE_supd");
/// How long a test waits for something to happen: an upper bound for slow
/// machines (the cgroup v2 tier runs under software emulation), never a
/// timing assertion.
pub const WAIT: Duration = Duration::from_secs(30);
pub const SUPCTL: &str = env!("CARGO_BIN_EXE_supctl");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the integration tests create namespaces and mounts: run them as root"
    );
}

/// A minimal root filesystem: busybox-static and its applets, passwd and
/// group files. Built once and shared read-only by all tests.
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-rootfs-2");
        if target.join("bin/sd-notify").is_file() {
            return target;
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .expect("busybox not found: apt-get install busybox-static");
        let build = target.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&build);
        for dir in ["bin", "etc", "tmp", "root", "var/www"] {
            fs::create_dir_all(build.join(dir)).unwrap();
        }
        fs::copy(busybox, build.join("bin/busybox")).unwrap();
        fs::copy(notify_helper(), build.join("bin/sd-notify")).unwrap();
        let list = Command::new(busybox).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" && !applet.is_empty() {
                let _ = symlink("busybox", build.join("bin").join(applet));
            }
        }
        fs::write(
            build.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:101:102:web:/var/www:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            build.join("etc/group"),
            "root:x:0:\nwww:x:102:\nlog:x:4:www\n",
        )
        .unwrap();
        // Another test binary may have won the race; either copy is fine.
        if fs::rename(&build, &target).is_err() {
            let _ = fs::remove_dir_all(&build);
        }
        target
    })
}

/// `tests/helpers/sd-notify.c`, built static so that it runs in the busybox
/// rootfs. The VM tier builds it on the host into the same place.
fn notify_helper() -> PathBuf {
    let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sd-notify");
    if binary.is_file() {
        return binary;
    }
    let partial = binary.with_extension(format!("tmp{}", std::process::id()));
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/sd-notify.c");
    let status = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&partial)
        .arg(&source)
        .status()
        .expect("run cc (apt-get install gcc libc6-dev)");
    assert!(status.success(), "cannot build {}", source.display());
    fs::rename(&partial, &binary).unwrap();
    binary
}

/// A running supd with its own directories, in a new network namespace.
pub struct Daemon {
    pub dir: PathBuf,
    pub units: PathBuf,
    pub socket: PathBuf,
    child: Option<Child>,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Daemon {
    pub fn start() -> Daemon {
        Self::start_with_units(&[])
    }

    /// Writes the given units before starting, so they run from the first
    /// reconcile.
    pub fn start_with_units(units: &[(&str, &str)]) -> Daemon {
        Self::launch("units", true, units, &[], &[])
    }

    /// A daemon with extra command-line options.
    pub fn start_with_args(args: &[&str]) -> Daemon {
        Self::launch("units", true, &[], args, &[])
    }

    /// A daemon whose units directory (`units_path` under its temp dir) does
    /// not exist yet.
    pub fn start_without_units_dir(units_path: &str) -> Daemon {
        Self::launch(units_path, false, &[], &[], &[])
    }

    /// A daemon with extra environment (NOTIFY_SOCKET, say).
    pub fn start_with_env(units: &[(&str, &str)], env: &[(&str, &str)]) -> Daemon {
        Self::launch("units", true, units, &[], env)
    }

    /// `prepare` gets the daemon's directory before supd starts (to mount
    /// a file system on its state directory, say).
    pub fn start_after(prepare: impl FnOnce(&Path)) -> Daemon {
        let dir = Self::new_dir();
        prepare(&dir);
        Self::launch_in(dir, "units", true, &[], &[], &[])
    }

    fn new_dir() -> PathBuf {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("supd-test-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn launch(
        units_path: &str,
        create: bool,
        units: &[(&str, &str)],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::launch_in(Self::new_dir(), units_path, create, units, args, env)
    }

    fn launch_in(
        dir: PathBuf,
        units_path: &str,
        create: bool,
        units: &[(&str, &str)],
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Daemon {
        let units_dir = dir.join(units_path);
        if create {
            fs::create_dir_all(&units_dir).unwrap();
        }
        for (name, text) in units {
            fs::write(units_dir.join(format!("{name}.yaml")), text).unwrap();
        }
        let daemon = Daemon {
            socket: dir.join("run/supd.sock"),
            child: Some(spawn(&dir, &units_dir, args, env, None)),
            dir,
            units: units_dir,
        };
        daemon.wait_for("the control socket", WAIT, || {
            std::os::unix::net::UnixStream::connect(&daemon.socket).is_ok()
        });
        daemon
    }

    /// SIGKILLs supd, as a crash would, leaving its containers behind, and
    /// starts a new one on the same directories, cgroup parent and network
    /// namespace (both write to the same log).
    pub fn crash_and_restart(&mut self) {
        self.crash_and_restart_after(|_| {});
    }

    /// `crash_and_restart`, running `while_away` (given the daemon) while
    /// no supd runs.
    pub fn crash_and_restart_after(&mut self, while_away: impl FnOnce(&Daemon)) {
        let netns = fs::File::open(format!("/proc/{}/ns/net", self.daemon_pid())).unwrap();
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        while_away(self);
        self.child = Some(spawn(&self.dir, &self.units, &[], &[], Some(netns)));
        self.wait_for("the control socket", WAIT, || {
            std::os::unix::net::UnixStream::connect(&self.socket).is_ok()
        });
    }

    pub fn daemon_pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn write_unit(&self, name: &str, text: &str) {
        fs::write(self.units.join(format!("{name}.yaml")), text).unwrap();
    }

    /// Runs supctl; one that has not answered within twice WAIT is killed
    /// and the test fails with the daemon's log, rather than hanging.
    pub fn supctl(&self, args: &[&str]) -> Output {
        let mut command = Command::new(SUPCTL);
        command.env("SUPD_SOCKET", &self.socket).args(args);
        run_timed(&mut command, || self.daemon_log())
    }

    /// `supctl status --json NAME` as a JSON object.
    /// Null while the daemon does not know the unit (yet).
    pub fn status(&self, name: &str) -> Value {
        let out = self.supctl(&["status", "--json", name]);
        let units: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("status json: {e}: {}", String::from_utf8_lossy(&out.stdout))
        });
        units
            .as_array()
            .and_then(|a| a.first())
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub fn state(&self, name: &str) -> String {
        self.status(name)["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn wait_state(&self, name: &str, state: &str) -> Value {
        let mut last = Value::Null;
        let found = poll(WAIT, || {
            last = self.status(name);
            last["state"] == state
        });
        assert!(
            found,
            "{name} never reached {state}; last status {last}\n{}",
            self.daemon_log()
        );
        last
    }

    pub fn pid(&self, name: &str) -> i32 {
        self.wait_state(name, "running")["pid"]
            .as_i64()
            .unwrap_or(0) as i32
    }

    /// The unit's current log file as `supctl logs` prints it: the
    /// messages of its records, one per line.
    pub fn log(&self, name: &str) -> String {
        let text = fs::read_to_string(self.dir.join("log").join(format!("{name}.log")))
            .unwrap_or_default();
        text.lines()
            .map(|line| supd::supervisor::logs::parse_record(line).message)
            .map(|message| format!("{message}\n"))
            .collect()
    }

    /// The raw records of the unit's current log file.
    pub fn log_records(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join("log").join(format!("{name}.log"))).unwrap_or_default()
    }

    pub fn wait_log(&self, name: &str, needle: &str) -> String {
        let mut text = String::new();
        let found = poll(WAIT, || {
            text = self.log(name);
            text.contains(needle)
        });
        assert!(
            found,
            "{needle:?} never appeared in {name}'s log:\n{text}\n{}",
            self.daemon_log()
        );
        text
    }

    pub fn daemon_log(&self) -> String {
        fs::read_to_string(self.dir.join("supd.log")).unwrap_or_default()
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
        assert!(
            poll(timeout, condition),
            "timed out waiting for {what}\n{}",
            self.daemon_log()
        );
    }

    /// SIGTERM, wait for exit 0, then check that nothing of ours is left.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Never panics while the test is already panicking (that would abort
    /// the whole test binary): then it kills supd and everything the test
    /// started, and leaves the assertions to the test that failed.
    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            // A test that failed while supd was away (in
            // crash_and_restart_after) leaves containers nobody stops.
            if std::thread::panicking() {
                kill_everything(&self.dir);
            }
            return;
        };
        if std::thread::panicking() {
            let _ = child.kill();
            let _ = child.wait();
            kill_everything(&self.dir);
            return;
        }
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = self.daemon_log();
                kill_everything(&self.dir);
                panic!("supd did not exit on SIGTERM\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "supd exited with {status}\n{}",
            self.daemon_log()
        );
        assert_no_leftovers(&self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// supd's options for units in `units_dir` and everything else under `dir`.
pub fn directory_args(dir: &Path, units_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args = vec!["--units-dir".into(), units_dir.into()];
    for (option, name) in [
        ("--state-dir", "state"),
        ("--runtime-dir", "run"),
        ("--log-dir", "log"),
        ("--socket", "run/supd.sock"),
    ] {
        args.push(option.into());
        args.push(dir.join(name).into());
    }
    args
}

/// Starts supd on the directories under `dir`, in a new network namespace
/// or in `netns`, logging to `dir/supd.log` (appended, so that a restart
/// keeps the story).
fn spawn(
    dir: &Path,
    units_dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    netns: Option<fs::File>,
) -> Child {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supd.log"))
        .unwrap();
    let mut command = Command::new("unshare");
    // With INVOCATION_ID supd believes systemd started it: it then runs
    // in a service cgroup of its own and picks its cgroup parent itself.
    let as_service = env.iter().any(|(k, _)| *k == "INVOCATION_ID");
    if as_service {
        let service = service_cgroup(dir);
        fs::create_dir_all(&service).unwrap();
        let procs = service.join("cgroup.procs");
        // SAFETY: the hook only writes a file before exec; no locks held.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                fs::write(&procs, "0")
            });
        }
    }
    match netns {
        None => {
            command.arg("-n");
        }
        Some(netns) => {
            // SAFETY: the hook only calls setns(2) on a descriptor it owns.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                    nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)
                });
            }
        }
    }
    command
        .arg(SUPD)
        .args(directory_args(dir, units_dir))
        .args(args);
    if !as_service {
        command.arg("--cgroup-parent").arg(cgroup_parent(dir));
    }
    command
        .env("RUST_LOG", "debug")
        // The test runner may itself run under systemd or journald.
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start supd")
}

/// Each test daemon has its own parent cgroup, named after its directory.
pub fn cgroup_parent(dir: &Path) -> String {
    dir.file_name().unwrap().to_string_lossy().to_string()
}

/// The daemon's parent cgroup directories, wherever they exist.
pub fn cgroup_dirs(dir: &Path) -> Vec<PathBuf> {
    let parent = cgroup_parent(dir);
    let root = Path::new("/sys/fs/cgroup");
    let mut candidates = vec![root.join(&parent)];
    for hierarchy in fs::read_dir(root).unwrap().filter_map(Result::ok) {
        candidates.push(hierarchy.path().join(&parent));
    }
    candidates.into_iter().filter(|p| p.is_dir()).collect()
}

/// No process, mount, cgroup or staging directory of the daemon remains.
/// The cgroup a daemon started "as a systemd service" runs in (v2 only).
pub fn service_cgroup(dir: &Path) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(format!("{}.service", cgroup_parent(dir)))
}

pub fn assert_no_leftovers(dir: &Path) {
    // What systemd would remove once the service stopped.
    let service = service_cgroup(dir);
    let _ = fs::remove_dir(service.join("supervisor"));
    let _ = fs::remove_dir(&service);
    assert!(!service.exists(), "service cgroup left behind");
    let cgroups = cgroup_dirs(dir);
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
    let needle = format!("{}/", dir.display());
    let mut processes = processes_mentioning(&needle);
    processes.extend(processes_in_cgroups_of(dir));
    assert!(processes.is_empty(), "processes left behind: {processes:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let leaked: Vec<&str> = mounts.lines().filter(|l| l.contains(&needle)).collect();
    assert!(leaked.is_empty(), "mounts left behind: {leaked:?}");
    let staging = dir.join("run/containers");
    let left: Vec<_> = fs::read_dir(&staging)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "staging directories left behind: {left:?}");
}

/// After a failed test: SIGKILL every process in the daemon's cgroups,
/// unmount what is left under its directory and remove its cgroups, so
/// that one failure does not leave containers behind for the next test.
pub fn kill_everything(dir: &Path) {
    let mut cgroups: Vec<PathBuf> = Vec::new();
    for top in cgroup_dirs(dir).into_iter().chain([service_cgroup(dir)]) {
        collect_dirs(&top, &mut cgroups);
    }
    // A process freeing a lot of memory takes a while to leave its cgroup.
    for _ in 0..500 {
        let mut alive = 0;
        for cgroup in &cgroups {
            let procs = fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                alive += 1;
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if alive == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let needle = format!("{}/", dir.display());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.contains(&needle))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
    }
    // Deepest first: a cgroup with children cannot go.
    cgroups.sort_by_key(|c| std::cmp::Reverse(c.components().count()));
    for cgroup in cgroups {
        let _ = fs::remove_dir(cgroup);
    }
}

fn collect_dirs(dir: &Path, into: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    into.push(dir.to_path_buf());
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&entry.path(), into);
        }
    }
}

/// Processes in a cgroup under the daemon's parent, whatever their
/// command line or environment says.
pub fn processes_in_cgroups_of(dir: &Path) -> Vec<String> {
    let needle = format!("/{}/", cgroup_parent(dir));
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let cgroups = fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        // An adopted init whose supd was killed belongs to the host's init
        // once it exits, which reaps it in its own time.
        let orphaned_zombie = pid
            .parse()
            .ok()
            .and_then(stat)
            .is_some_and(|(ppid, state)| state == 'Z' && ppid == 1);
        if !orphaned_zombie && cgroups.lines().any(|l| l.contains(&needle)) {
            let cmd = fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{pid}: {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

/// Runs a command to completion within twice WAIT; one that takes longer
/// is killed and fails the test with `context()` (the daemon's log, say).
pub fn run_timed(command: &mut Command, context: impl FnOnce() -> String) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the command");
    let deadline = Instant::now() + 2 * WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A long-running helper process (`supctl logs -f`) that is killed when
/// the test ends, failed or not.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A host feature a test needs. Where it is missing the test fails,
/// unless SUPD_TEST_ALLOW_MISSING (comma-separated) names the feature: a
/// gap of the host is then said out loud, never passed over in silence.
/// scripts/test.sh names what this kind of host may lack, and the cgroup
/// v2 tier (scripts/vm-test.sh), whose kernel has them, runs those tests.
pub fn host_has(feature: &str, present: bool) -> bool {
    if present {
        return true;
    }
    let allowed = std::env::var("SUPD_TEST_ALLOW_MISSING").unwrap_or_default();
    if allowed.split(',').any(|f| f.trim() == feature) {
        eprintln!("skipped: this host lacks {feature} (SUPD_TEST_ALLOW_MISSING)");
        return false;
    }
    panic!("this host lacks {feature}: set SUPD_TEST_ALLOW_MISSING={feature} to run without it");
}

/// Processes whose command line or environment mentions `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let pid = entry.file_name().to_string_lossy().to_string();
        if !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        for file in ["cmdline", "environ"] {
            let bytes = fs::read(entry.path().join(file)).unwrap_or_default();
            if String::from_utf8_lossy(&bytes).contains(needle) {
                let cmd = String::from_utf8_lossy(
                    &fs::read(entry.path().join("cmdline")).unwrap_or_default(),
                )
                .replace('\0', " ");
                found.push(format!("{pid}: {cmd}"));
                break;
            }
        }
    }
    found
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn poll(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unit on the busybox rootfs running `script` with /bin/sh -c, with a
/// marker in its environment so that leftover checks can find its processes.
pub fn sh_unit(daemon: &Daemon, script: &str, extra: &str) -> String {
    format!(
        "rootfs: {}\nexec: [/bin/sh, -c, {}]\nenv: {{ SUPD_TEST_DIR: {}/ }}\n{extra}",
        busybox_rootfs().display(),
        serde_json::to_string(script).unwrap(),
        daemon.dir.display()
    )
}

/// Parent PID and state letter from /proc/PID/stat.
pub fn stat(pid: i32) -> Option<(i32, char)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &text[text.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Host PIDs of the children of `parent`.
pub fn children(parent: i32) -> Vec<(i32, char)> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter_map(|pid| {
            stat(pid)
                .filter(|(ppid, _)| *ppid == parent)
                .map(|(_, s)| (pid, s))
        })
        .collect()
}

/// A file of a container's cgroup, wherever the host's layout puts it: the
/// test asks the layout (v2: one directory; v1: the controller's hierarchy).
pub fn cgroup_file(daemon: &Daemon, unit: &str, controller: &str, file: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup");
    let parent = cgroup_parent(&daemon.dir);
    if root.join("cgroup.controllers").exists() {
        root.join(parent).join(unit).join(file)
    } else {
        root.join(controller).join(parent).join(unit).join(file)
    }
}

pub fn is_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Runs `f` on a thread that joined the daemon's network namespace.
pub fn in_daemon_netns<T: Send + 'static>(
    daemon: &Daemon,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let ns = fs::File::open(format!("/proc/{}/ns/net", daemon.daemon_pid())).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// Interface names in the daemon's network namespace.
pub fn daemon_links(daemon: &Daemon) -> Vec<String> {
    in_daemon_netns(daemon, || {
        let mut netlink = supd::runtime::net::netlink::Netlink::open().unwrap();
        let mut names = netlink.link_names().unwrap();
        names.sort();
        names
    })
}

/// Creates an up interface in the daemon's network namespace to serve as a
/// parent for macvlan and ipvlan: a dummy where the kernel has it, else one
/// end of a veth pair (whose peer is named NAME-p). Returns the links made.
pub fn add_parent(daemon: &Daemon, name: &str) -> Vec<String> {
    let name = name.to_string();
    in_daemon_netns(daemon, move || {
        use netlink_packet_route::link::{
            InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
        };
        let mut netlink = supd::runtime::net::netlink::Netlink::open().unwrap();
        let message = |name: &str, info: Vec<LinkInfo>| {
            let mut message = LinkMessage::default();
            message
                .attributes
                .push(LinkAttribute::IfName(name.to_string()));
            message.attributes.push(LinkAttribute::LinkInfo(info));
            message
        };
        let mut made = vec![name.clone()];
        if netlink
            .new_link(
                "create dummy",
                message(&name, vec![LinkInfo::Kind(InfoKind::Dummy)]),
            )
            .is_err()
        {
            let peer_name = format!("{name}-p");
            let peer = message(&peer_name, Vec::new());
            let veth = message(
                &name,
                vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
                ],
            );
            netlink.new_link("create veth", veth).unwrap();
            let index = netlink.link_index(&peer_name).unwrap().unwrap();
            netlink.set_link(index, true, Vec::new()).unwrap();
            made.push(peer_name);
        }
        let index = netlink.link_index(&name).unwrap().unwrap();
        netlink.set_link(index, true, Vec::new()).unwrap();
        made.sort();
        made
    })
}

/// Whether the kernel can make links of `kind` (ipvlan may be missing).
pub fn kernel_has_link_kind(
    daemon: &Daemon,
    parent: &str,
    kind: netlink_packet_route::link::InfoKind,
) -> bool {
    let parent = parent.to_string();
    in_daemon_netns(daemon, move || {
        use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
        let mut netlink = supd::runtime::net::netlink::Netlink::open().unwrap();
        let parent_index = netlink.link_index(&parent).unwrap().unwrap();
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName("probe0".into()));
        message.attributes.push(LinkAttribute::Link(parent_index));
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
        let made = netlink.new_link("probe", message).is_ok();
        if let Ok(Some(index)) = netlink.link_index("probe0") {
            netlink.delete_link(index).unwrap();
        }
        made
    })
}

/// A sysfs file as seen from the daemon's network namespace: mounted afresh
/// in a private mount namespace, as `ip netns exec` does.
pub fn daemon_sysfs(daemon: &Daemon, path: &str) -> String {
    let script = format!("mount -t sysfs sysfs /sys && cat /sys/{path}");
    let out = Command::new("unshare")
        .args([
            "-m",
            "nsenter",
            "-t",
            &daemon.daemon_pid().to_string(),
            "-n",
            "sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A copy of the busybox rootfs owned by the range the container maps its
/// root to: the documented requirement for user namespaces.
pub fn rootfs_owned_by(d: &Daemon, uid: u32) -> std::path::PathBuf {
    let copy = d.dir.join("rootfs-userns");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let owner = format!("{uid}:{uid}");
    let status = std::process::Command::new("chown")
        .args(["-R", &owner])
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    copy
}
