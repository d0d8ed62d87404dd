//! Hostile input: unit files, state files and clients that once crashed,
//! wedged or exhausted supd. Each test names the defect it guards against.

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

const SLEEPER: &str = "echo up; exec sleep 1000";

/// supd's resident memory, in kB.
fn rss_kb(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// supd's CPU time so far (user + system), in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0)
}

fn error_of(d: &Daemon, name: &str) -> String {
    d.wait_state(name, "invalid")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Defect 1: durations past what a timer can hold passed validation and
/// then aborted supd (and every supd after it) on overflow.
#[test]
fn huge_durations_are_invalid_and_supd_keeps_running() {
    let d = Daemon::start();
    let good = sh_unit(&d, SLEEPER, "");
    d.write_unit("good", &good);
    let before = d.pid("good");
    for (name, extra) in [
        ("stop", "stop: { timeout: 18446744073709551615 }\n"),
        ("delay", "restart: { delay: 213503982334601d }\n"),
        ("start", "start_timeout: 366d\n"),
    ] {
        d.write_unit(name, &sh_unit(&d, "exit 1", extra));
        let error = error_of(&d, name);
        assert!(error.contains("is too long: at most 365d"), "{error}");
    }
    let file = d.units.join("stop.yaml");
    let out = d.supctl(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(d.pid("good"), before, "the good unit was not disturbed");
    // At the bound, every timer still works: stop, back-off, start.
    d.write_unit(
        "bound",
        &sh_unit(
            &d,
            "exit 1",
            "stop: { timeout: 365d }\nstart_timeout: 365d\nrestart: { delay: 365d, max_delay: 365d }\n",
        ),
    );
    d.wait_state("bound", "backoff");
    assert_eq!(d.pid("good"), before);
    d.stop();
}

/// Defects 2 and 3: a FIFO wedged supd in open(); a link to /dev/zero or
/// a huge file made it read without limit.
#[test]
fn special_and_huge_unit_files_are_invalid_without_blocking() {
    let d = Daemon::start();
    d.write_unit("good", &sh_unit(&d, "sleep 0.3; exit 3", ""));
    d.pid("good");
    nix::unistd::mkfifo(
        &d.units.join("fifo.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.units.join("zero.yaml")).unwrap();
    let huge = format!("{}\nexec: [/bin/true]\n", "# padding\n".repeat(120_000));
    d.write_unit("huge", &huge);
    fs::create_dir_all(d.units.join("dropped.yaml.d")).unwrap();
    d.write_unit("dropped", &sh_unit(&d, SLEEPER, ""));
    nix::unistd::mkfifo(
        &d.units.join("dropped.yaml.d/10-fifo.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert!(error_of(&d, "fifo").ends_with("not a regular file but a FIFO"));
    assert!(error_of(&d, "zero").ends_with("not a regular file but a character device"));
    assert!(error_of(&d, "huge").contains("larger than 1048576 bytes"));
    assert!(error_of(&d, "dropped").contains("10-fifo.yaml: not a regular file"));
    // The loop goes on: the good unit keeps being restarted after its exits.
    d.wait_for("good to be restarted", WAIT, || {
        d.status("good")["restarts"].as_u64().unwrap_or(0) >= 2
    });
    assert!(rss_kb(d.daemon_pid()) < 64 * 1024);
    d.stop();
}

/// Defect 3, in the init stage: a seccomp profile that is a device.
#[test]
fn a_seccomp_profile_that_is_a_device_fails_the_start_step() {
    let d = Daemon::start();
    d.write_unit(
        "zero",
        &sh_unit(
            &d,
            "true",
            "security: { seccomp: /dev/zero }\nrestart: { policy: never }\n",
        ),
    );
    let status = d.wait_state("zero", "failed");
    let error = status["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("seccomp: /dev/zero: not a regular file but a character device"),
        "{error}"
    );
    d.stop();
}

/// Defect 5: deep nesting cost the YAML parser quadratic time, stalling
/// every reconcile; now it is refused before parsing.
#[test]
fn deeply_nested_yaml_is_refused_before_parsing() {
    let d = Daemon::start();
    let deep = format!("exec: {}{}\n", "[".repeat(200_000), "]".repeat(200_000));
    d.write_unit("deep", &deep);
    let error = error_of(&d, "deep");
    assert!(
        error.contains(":1:38: nested deeper than 32 levels"),
        "{error}"
    );
    // Each later reconcile reads it again; an edit still takes effect.
    d.write_unit("after", &sh_unit(&d, SLEEPER, ""));
    d.pid("after");
    d.stop();
}

/// Defect 4: a client that writes without reading grew supd's output
/// queue without bound; connections per peer were unlimited.
#[test]
fn a_client_that_never_reads_cannot_grow_supd() {
    let d = Daemon::start();
    let pid = d.daemon_pid();
    let before = rss_kb(pid);
    let mut flood = UnixStream::connect(&d.socket).unwrap();
    flood.set_nonblocking(true).unwrap();
    let line = b"{}\n".repeat(4096);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut sent = 0usize;
    while Instant::now() < deadline {
        match flood.write(&line) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(_) => break,
        }
    }
    let grown = rss_kb(pid).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "supd grew by {grown} kB after {sent} bytes of requests"
    );
    // Others are still served while the flooder sits there.
    assert_eq!(d.supctl(&["status"]).status.code(), Some(0));
    drop(flood);
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..80 {
        let mut stream = UnixStream::connect(&d.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut answer = [0u8; 256];
        if let Ok(n) = std::io::Read::read(&mut stream, &mut answer) {
            if n > 0 {
                refused = Some(String::from_utf8_lossy(&answer[..n]).to_string());
                break;
            }
        }
        held.push(stream);
    }
    assert_eq!(held.len(), 64, "{refused:?}");
    assert!(refused
        .unwrap()
        .contains("too many connections: at most 64 per user"));
    drop(held);
    d.wait_for("the connections to close", WAIT, || {
        d.supctl(&["status"]).status.success()
    });
    d.stop();
}

/// Defect 9: accept failing with EMFILE spun at 100% CPU and flooded the
/// log; now supd pauses accepting.
#[test]
fn running_out_of_descriptors_pauses_accepting_instead_of_spinning() {
    let d = Daemon::start();
    let pid = d.daemon_pid();
    let open = fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    // The soft limit only: lowering the hard one could not be undone here.
    let set_soft = |soft: Option<libc::rlim_t>| -> libc::rlim_t {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit with a null new limit only reads into `old`.
        let rc =
            unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
        assert_eq!(rc, 0);
        if let Some(soft) = soft {
            let new = libc::rlimit {
                rlim_cur: soft,
                rlim_max: old.rlim_max,
            };
            // SAFETY: both pointers are to live rlimit values.
            let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, &mut old) };
            assert_eq!(rc, 0);
        }
        old.rlim_cur
    };
    let soft = set_soft(Some(open as libc::rlim_t + 2));
    let clients: Vec<UnixStream> = (0..20)
        .filter_map(|_| UnixStream::connect(&d.socket).ok())
        .collect();
    let ticks = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ticks(pid) - ticks;
    let log = d.daemon_log();
    let warnings = log.matches("pausing new connections").count();
    assert!(
        spent < 50,
        "supd used {spent} ticks in 2 s while out of descriptors"
    );
    // One warning per shortage (a descriptor freed in between ends one),
    // not one per 200 ms pause: ten of those pass in 2 s.
    assert!((1..=5).contains(&warnings), "{warnings} warnings: {log}");
    drop(clients);
    set_soft(Some(soft));
    d.wait_for("supd to answer again", WAIT, || {
        d.supctl(&["status"]).status.success()
    });
    assert!(d.daemon_log().contains("accepting connections again"));
    d.stop();
}

/// Defect 6: a fixed address leased to another unit was accepted, and two
/// containers answered ARP for it.
#[test]
fn an_address_held_by_another_unit_is_refused_naming_it() {
    let d = Daemon::start();
    let bridge = "network: { mode: bridge, bridge: hbr0, address: auto }\n";
    d.write_unit("first", &sh_unit(&d, SLEEPER, bridge));
    let first = d.pid("first");
    let address = d.status("first")["addresses"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(address.starts_with("10.88.0.2"), "{address}");
    let fixed = "network: { mode: bridge, bridge: hbr0, address: 10.88.0.2/16 }\n";
    d.write_unit("second", &sh_unit(&d, SLEEPER, fixed));
    let error = error_of(&d, "second");
    assert!(
        error.ends_with(
            "network.address: address 10.88.0.2 on bridge hbr0 is already used by unit first"
        ),
        "{error}"
    );
    assert_eq!(d.pid("first"), first);
    // Once the holder gives the address up, the refused unit gets it.
    let moved = "network: { mode: bridge, bridge: hbr0, address: 10.88.0.9/16 }\n";
    d.write_unit("first", &sh_unit(&d, SLEEPER, moved));
    d.wait_for("first to move", WAIT, || {
        d.status("first")["addresses"][0] == "10.88.0.9/16"
    });
    d.wait_state("second", "running");
    assert_eq!(d.status("second")["addresses"][0], "10.88.0.2/16");
    d.stop();
}

/// Defect 7: lost or corrupt state files lost leases silently (user
/// namespace ranges swapped owners), and the bridges file could make supd
/// delete any link.
#[test]
fn corrupt_state_files_are_kept_aside_and_what_runs_is_rederived() {
    let mut d = Daemon::start();
    let ns = "volatile: state\nsecurity: { user_namespace: auto }\n";
    d.write_unit("one", &sh_unit(&d, SLEEPER, ns));
    let uid_map = |pid: i32| fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let map = uid_map(d.pid("one"));
    let made = add_parent(&d, "notabr");
    let index = in_daemon_netns(&d, || {
        let mut netlink = supd::runtime::net::netlink::Netlink::open().unwrap();
        netlink.link_index("notabr").unwrap().unwrap()
    });
    // Disabled across the crash, so that zzz leases first after the loss.
    d.write_unit(
        "one",
        &sh_unit(&d, SLEEPER, &format!("{ns}enabled: false\n")),
    );
    d.wait_state("one", "stopped");
    let state = d.dir.join("state");
    let run = d.dir.join("run");
    fs::remove_file(state.join("idranges.json")).unwrap();
    fs::write(state.join("addresses.json"), "{ torn").unwrap();
    fs::write(run.join("bridges.json"), format!("{{\"notabr\": {index}}}")).unwrap();
    d.write_unit("zzz", &sh_unit(&d, SLEEPER, ns));
    d.crash_and_restart();
    // A unit that leases first after the loss must not take one's range.
    d.pid("zzz");
    d.write_unit("one", &sh_unit(&d, SLEEPER, ns));
    assert_eq!(
        uid_map(d.pid("one")),
        map,
        "range re-derived from the state dir"
    );
    d.wait_for("the warning about the address leases", WAIT, || {
        d.daemon_log()
            .contains("address leases (units with `address: auto` get new addresses) lost")
    });
    let log = d.daemon_log();
    assert!(log.contains("addresses.json.corrupt-"), "{log}");
    let kept: Vec<_> = fs::read_dir(&state)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(fs::read_to_string(kept[0].path()).unwrap(), "{ torn");
    assert!(log.contains("not removing notabr"), "{log}");
    assert!(daemon_links(&d).contains(&"notabr".to_string()));
    // Bytes that are not even text are kept aside too.
    d.supctl(&["stop", "zzz"]);
    fs::write(run.join("bridges.json"), [0xff, 0xfe, b'\n']).unwrap();
    d.crash_and_restart();
    d.wait_for("the warning about the bridges list", WAIT, || {
        d.daemon_log()
            .contains("the list of bridges supd created (they are not removed) lost")
    });
    d.stop();
    drop(made);
}

/// Defect 8: the container's init kept every capability, no seccomp and
/// no no_new_privs.
#[test]
fn the_init_keeps_only_cap_kill_under_seccomp_and_no_new_privs() {
    let d = Daemon::start();
    d.write_unit(
        "look",
        &sh_unit(
            &d,
            "grep -E '^(CapEff|CapPrm|CapBnd|CapInh|CapAmb|NoNewPrivs|Seccomp):' /proc/1/status; echo done; sleep 1000",
            "user: \"101:102\"\n",
        ),
    );
    let log = d.wait_log("look", "done");
    for want in [
        "CapEff:\t0000000000000020",
        "CapPrm:\t0000000000000020",
        "CapBnd:\t0000000000000020",
        "CapInh:\t0000000000000000",
        "CapAmb:\t0000000000000000",
        "NoNewPrivs:\t1",
        "Seccomp:\t2",
    ] {
        assert!(log.contains(want), "{want} in\n{log}");
    }
    // With only CAP_KILL it still forwards the stop signal to a workload
    // of another user.
    d.write_unit(
        "trap",
        &sh_unit(
            &d,
            "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.05; done",
            "user: \"101:102\"\n",
        ),
    );
    d.pid("trap");
    d.supctl(&["stop", "trap"]);
    d.wait_log("trap", "got TERM");
    d.stop();
}

/// Defect 9, smaller ones: a unit linked to /etc/shadow echoed a line of it
/// to the read group; misnamed files were ignored without a word; a zero
/// back-off gave a busy restart loop.
#[test]
fn small_defects_of_input_handling() {
    let d = Daemon::start();
    let secret = d.dir.join("shadow");
    fs::write(&secret, "root:$6$secrethash:19000:0:99999:7:::\n").unwrap();
    std::os::unix::fs::symlink(&secret, d.units.join("shadow.yaml")).unwrap();
    let error = error_of(&d, "shadow");
    assert!(!error.contains("secrethash"), "{error}");
    assert!(error.contains("unknown field (not shown"), "{error}");
    for name in [
        "Upper.yaml",
        "a b.yaml",
        &format!("{}.yaml", "x".repeat(64)),
    ] {
        fs::write(d.units.join(name), "exec: [/bin/true]\n").unwrap();
    }
    fs::write(d.units.join(".hidden.yaml.swp"), "").unwrap();
    d.wait_for("the warnings", WAIT, || {
        d.daemon_log()
            .matches(": ignored: a unit file name is")
            .count()
            == 3
    });
    d.write_unit("fast", &sh_unit(&d, "exit 1", "restart: { delay: 0s }\n"));
    assert!(error_of(&d, "fast").contains("restart.delay: must be at least 100ms"));
    d.stop();
}
