//! supd's benchmark suite, on a real daemon as root, with the anchors
//! (`unshare`, crun, runc) measured in the same run:
//! `cargo bench --bench suite` (or `scripts/bench.sh`, which installs the
//! anchors first). SUPD_BENCH_QUICK=1 runs a few iterations of everything,
//! as the test suite does to keep the benchmarks working; SUPD_BENCH_IDLE
//! sets the idle measurement in seconds (default 60); SUPD_BENCH_ONLY runs
//! one section: single, many, restore, images, network, health or planning.

#[path = "../../tests/common/mod.rs"]
mod common;

mod anchors;
mod fleet;
mod health;
mod images;
mod lifecycle;
mod network;
mod planning;
mod probe;
mod restore;
mod stats;

use stats::{kib, ms, ratio, summarize, timing, Summary, Table};
use std::time::Duration;

struct Sizes {
    starts: usize,
    idle_starts: usize,
    rounds: usize,
    churn: usize,
    edit_total: usize,
    /// Units for the reconcile measurements.
    plan_total: usize,
    footprint: usize,
    idle: Duration,
}

impl Sizes {
    fn from_env() -> Sizes {
        let quick = std::env::var_os("SUPD_BENCH_QUICK").is_some_and(|v| v != "0");
        let idle = std::env::var("SUPD_BENCH_IDLE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(if quick { 2 } else { 60 });
        let idle = Duration::from_secs(idle);
        if quick {
            Sizes {
                starts: 10,
                idle_starts: 5,
                rounds: 2,
                churn: 50,
                edit_total: 50,
                plan_total: 100,
                footprint: 20,
                idle,
            }
        } else {
            Sizes {
                starts: 100,
                idle_starts: 30,
                rounds: 10,
                churn: 50,
                edit_total: 500,
                plan_total: 1000,
                footprint: 100,
                idle,
            }
        }
    }
}

/// Idle time before each start of the "after idle" measurements: long
/// enough for the kernel to leave the fast path a previous cgroup migration
/// left it in (see README, Benchmarks).
const IDLE_GAP: Duration = Duration::from_millis(250);

struct Anchors {
    floor: Option<Summary>,
    crun: Option<Summary>,
    runc: Option<Summary>,
    crun_after_idle: Option<Summary>,
}

fn anchors(sizes: &Sizes, table: &mut Table) -> Anchors {
    let dir = std::env::temp_dir().join(format!("supd-bench-oci-{}", std::process::id()));
    let bundle = anchors::bundle(&dir, common::busybox_rootfs());
    let run = |tool: &str, count: usize, gap: Duration| -> Option<Summary> {
        if !anchors::installed(tool) {
            eprintln!("  ({tool} not installed: scripts/bench.sh installs it)");
            return None;
        }
        let bundle = bundle.as_ref()?.to_string_lossy().to_string();
        let state = dir.join(tool).to_string_lossy().to_string();
        let id = format!("supd-bench-{}-{{i}}", std::process::id());
        let argv = [tool, "--root", &state, "run", "--bundle", &bundle, &id];
        Some(summarize(&anchors::measure(count, gap, &argv)?))
    };
    let floor = ["unshare", "-fpmui", "--mount-proc", "true"];
    let floor = anchors::measure(sizes.starts, Duration::ZERO, &floor).map(|s| summarize(&s));
    let found = Anchors {
        floor,
        crun: run("crun", sizes.starts, Duration::ZERO),
        runc: run("runc", sizes.starts, Duration::ZERO),
        crun_after_idle: run("crun", sizes.idle_starts, IDLE_GAP),
    };
    let _ = std::fs::remove_dir_all(&dir);
    for (what, summary) in [
        ("floor: `unshare -fpmui --mount-proc true`", found.floor),
        ("crun 1.8 run /bin/true", found.crun),
        ("runc 1.1 run /bin/true", found.runc),
        (
            "crun 1.8 run /bin/true, each after 250 ms idle",
            found.crun_after_idle,
        ),
    ] {
        if let Some(summary) = summary {
            let compared = found
                .floor
                .map_or("-".into(), |f| ratio(summary, f) + " floor");
            table.add(what, timing(summary), compared, "anchor");
        }
    }
    found
}

/// "1.20x floor, crun 4.1x slower".
fn against(summary: Summary, anchors: &Anchors) -> String {
    let mut parts = Vec::new();
    if let Some(floor) = anchors.floor {
        parts.push(format!("{} floor", ratio(summary, floor)));
    }
    for (name, anchor) in [("crun", anchors.crun), ("runc", anchors.runc)] {
        if let Some(anchor) = anchor {
            parts.push(format!("{name} {} slower", ratio(anchor, summary)));
        }
    }
    parts.join(", ")
}

fn single_container(sizes: &Sizes, anchors: &Anchors, table: &mut Table) {
    let daemon = common::Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let probe = probe::Probe::new(&daemon);
    let one_shot = summarize(&lifecycle::one_shot(&daemon, sizes.starts));
    table.add(
        "one-shot /bin/true: start until reaped",
        timing(one_shot),
        against(one_shot, anchors),
        "",
    );
    let starts = lifecycle::start_latency(&daemon, &probe, sizes.starts, Duration::ZERO);
    let ran = summarize(&starts.ran);
    table.add(
        "`supctl start` until the workload ran",
        timing(ran),
        against(ran, anchors),
        "<= 1.5x floor, >= 3x faster than crun",
    );
    let answered = summarize(&starts.answered);
    table.add(
        "`supctl start` answered (it waits for the exec)",
        timing(answered),
        against(answered, anchors),
        "",
    );
    let idle_starts = lifecycle::start_latency(&daemon, &probe, sizes.idle_starts, IDLE_GAP);
    let after_idle = summarize(&idle_starts.ran);
    let compared = match (anchors.floor, anchors.crun_after_idle) {
        (Some(floor), Some(crun)) => format!(
            "{} floor, crun (after idle) {} slower",
            ratio(after_idle, floor),
            ratio(crun, after_idle)
        ),
        _ => String::new(),
    };
    table.add(
        "`supctl start` until the workload ran, each after 250 ms idle",
        timing(after_idle),
        compared,
        "",
    );
    let restart = summarize(&lifecycle::restart_after_exit(
        &daemon,
        &probe,
        sizes.starts,
    ));
    table.add(
        "restart after exit, zero back-off: exit until the new workload ran",
        timing(restart),
        String::new(),
        "< 5 ms",
    );
    let written = summarize(&lifecycle::file_written(&daemon, &probe, sizes.starts));
    table.add(
        "new unit file written until the workload ran (incl. the 20 ms wait a new file gets)",
        timing(written),
        String::new(),
        "",
    );
    let churn = fleet::churn(&daemon, &probe, sizes.churn, sizes.rounds);
    table.add(
        &format!("{} unit files dropped at once until all ran", sizes.churn),
        timing(summarize(&churn.up)),
        "crun 1.47 s, runc 1.80 s, podman 5.1 s (issue 9, not this run)".into(),
        "< 250 ms",
    );
    table.add(
        &format!(
            "{} unit files deleted until all stopped and cleaned",
            sizes.churn
        ),
        timing(summarize(&churn.down)),
        String::new(),
        "",
    );
    daemon.stop();
}

fn many_containers(sizes: &Sizes, table: &mut Table) {
    let daemon = common::Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let footprint = fleet::footprint(&daemon, sizes.footprint, sizes.idle);
    let n = sizes.footprint;
    table.add(
        "supd RSS, no container",
        kib(footprint.idle_rss),
        String::new(),
        "",
    );
    table.add(
        &format!("supd RSS, {n} containers"),
        kib(footprint.busy_rss),
        String::new(),
        "< 10 MB",
    );
    table.add(
        "init (PID 1 of a container): RSS / private dirty",
        format!(
            "{} / {}",
            kib(footprint.init_rss),
            kib(footprint.init_private_dirty)
        ),
        "catatonit 700 kB / 48 kB, tini-static 712 kB / 56 kB (issue 9)".into(),
        "private dirty <= 48 kB",
    );
    table.add(
        &format!(
            "supd idle {} s with {n} containers: CPU time / context switches",
            footprint.idle_for.as_secs()
        ),
        format!("{} / {}", ms(footprint.idle_cpu), footprint.idle_wakeups),
        String::new(),
        "0 wake-ups",
    );
    let probe = probe::Probe::new(&daemon);
    let total = sizes.edit_total;
    let edit = summarize(&fleet::edit_among(
        &daemon,
        &probe,
        total,
        sizes.starts.min(30),
    ));
    table.add(
        &format!("one unit edited among {total} running until its new workload ran"),
        timing(edit),
        String::new(),
        "",
    );
    daemon.stop();
    let daemon = common::Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let total = sizes.plan_total;
    let scale = fleet::scale(&daemon, total, sizes.starts.min(30), sizes.idle);
    table.add(
        &format!("{total} unit files written until all {total} containers ran"),
        timing(summarize(&[scale.start_all])),
        String::new(),
        "",
    );
    table.add(
        &format!("supd RSS, {total} containers"),
        kib(scale.rss),
        String::new(),
        "< 20 MB",
    );
    table.add(
        &format!("`status` of all {total} units"),
        timing(summarize(&scale.status_all)),
        String::new(),
        "< 50 ms",
    );
    table.add(
        &format!("`status` of one unit among {total}"),
        timing(summarize(&scale.status_one)),
        String::new(),
        "< 2 ms",
    );
    table.add(
        &format!(
            "supd idle {} s with {total} containers: CPU time / context switches",
            sizes.idle.as_secs()
        ),
        format!("{} / {}", ms(scale.idle_cpu), scale.idle_wakeups),
        String::new(),
        "0 wake-ups",
    );
    let edit = summarize(&fleet::edit_until_restart(
        &daemon,
        total,
        sizes.starts.min(30),
    ));
    table.add(
        &format!("one unit edited in place among {total} running until its restart began"),
        timing(edit),
        String::new(),
        "< 5 ms",
    );
    daemon.stop();
    let daemon = common::Daemon::start_with_env(&[], &[("RUST_LOG", "warn")]);
    let planned = summarize(&fleet::drop_until_planned(
        &daemon,
        total,
        sizes.rounds.min(5),
    ));
    table.add(
        &format!("{total} unit files dropped at once into a running supd until all planned"),
        timing(planned),
        String::new(),
        "< 100 ms",
    );
    daemon.stop();
}

fn live_restore(sizes: &Sizes, table: &mut Table) {
    for (what, event) in [
        (
            "workload output gap across `kill -9` of supd and a new supd",
            restore::kill_and_restart as fn(&mut common::Daemon),
        ),
        (
            "workload output gap across `supctl daemon-reexec`",
            restore::reexec,
        ),
    ] {
        let downtime = restore::downtime(event);
        let restarted = if downtime.restarted {
            "RESTARTED"
        } else {
            "not restarted"
        };
        table.add(
            what,
            format!(
                "{} (usual gap {})",
                ms(downtime.largest),
                ms(downtime.usual)
            ),
            restarted.to_string(),
            "0 ms downtime: never restarted",
        );
    }
    let n = sizes.footprint;
    table.add(
        &format!("`kill -9` of supd until a new one answers `status` with {n} containers adopted"),
        ms(restore::adoption(n)),
        String::new(),
        "< 100 ms",
    );
    let survival = restore::survival();
    let rate = survival.bytes as f64 / survival.lasted.as_secs_f64().max(1e-3) / 1e6;
    table.add(
        "a workload writing ~1 MB/s with no supd: its writes go on for",
        ms(survival.lasted),
        format!(
            "{} kB at {rate:.2} MB/s, then they block (pipe-max-size)",
            survival.bytes / 1000
        ),
        "",
    );
}

fn image_section(sizes: &Sizes, table: &mut Table) {
    let megabytes = if sizes.starts < 100 { 10 } else { 100 };
    let built = match images::build(megabytes) {
        Ok(built) => built,
        Err(e) => {
            table.add("images", format!("not measured: {e}"), String::new(), "");
            return;
        }
    };
    let import = images::import(&built, megabytes);
    let rate = import.megabytes as f64 / import.took.as_secs_f64().max(1e-3);
    table.add(
        &format!("`supctl image import` of a {megabytes} MB oci-archive (gzip), cold cache"),
        ms(import.took),
        format!(
            "{rate:.0} MB/s; reading the archive alone {}; GNU tar -xzf of its layer + sync -f {}",
            ms(import.read_took),
            import.tar_took.map_or_else(|| "-".to_string(), ms)
        ),
        "disk-bound",
    );
    table.add(
        "slowest `supctl status` answer during that import",
        ms(import.status_max),
        String::new(),
        "the loop never waits for an import",
    );
    table.add(
        "supd peak RSS (VmHWM) through that import",
        kib(import.peak_rss_kib * 1024),
        String::new(),
        "< 64 MB",
    );
    let starts = images::start_from_image(&built, sizes.starts);
    let from_image = starts.image;
    table.add(
        "`supctl start` until the workload ran, from the imported image",
        timing(from_image),
        format!(
            "{} the same files as a rootfs directory ({}), {} them under a `volatile: state` overlay ({})",
            ratio(from_image, starts.directory),
            ms(starts.directory.median),
            ratio(from_image, starts.overlay),
            ms(starts.overlay.median)
        ),
        "within 10% of a rootfs directory",
    );
    match images::podman(&built, sizes.idle_starts) {
        Ok(podman) => {
            table.add(
                &format!("anchor: `podman load` of the same {megabytes} MB image (docker-archive)"),
                ms(podman.load),
                String::new(),
                "",
            );
            match podman.run {
                Ok(run) => table.add(
                    "anchor: `podman run --rm` of the small image, /bin/true",
                    timing(run),
                    format!("{} supd's image start", ratio(run, from_image)),
                    "",
                ),
                Err(e) => table.add(
                    "anchor: `podman run --rm` of the small image",
                    "not measured".into(),
                    e.rsplit(": ").take(3).collect::<Vec<_>>().join(" <- "),
                    "",
                ),
            }
        }
        Err(e) => table.add(
            "anchor: podman",
            format!("not measured: {e}"),
            String::new(),
            "",
        ),
    }
}

fn planning(sizes: &Sizes, table: &mut Table) {
    let units = sizes.plan_total;
    let planned = planning::measure(units, sizes.rounds.max(5));
    table.add(
        &format!("load and plan {units} unit files (pure, no daemon)"),
        timing(summarize(&planned.cold)),
        String::new(),
        "",
    );
    table.add(
        &format!("re-load and re-plan after one edit among {units}"),
        timing(summarize(&planned.after_edit)),
        String::new(),
        "",
    );
    table.add(
        &format!("plan {units} units already loaded (copy and compare each)"),
        timing(summarize(&planned.replan)),
        String::new(),
        "",
    );
}

fn health_section(sizes: &Sizes, table: &mut Table) {
    let quick = sizes.starts < 100;
    let (count, seconds, rounds) = if quick { (10, 3, 2) } else { (100, 30, 10) };
    let cost = health::cost(count, seconds);
    table.add(
        &format!("supd with {count} containers, each with a 1 s tcp check: CPU / context switches per second"),
        format!(
            "{:.2}% / {:.0}",
            cost.cpu_percent, cost.switches_per_second
        ),
        format!(
            "{:.3}% and {:.1} per check",
            cost.cpu_percent / count as f64,
            cost.switches_per_second / count as f64
        ),
        "",
    );
    let detection = summarize(&health::detection(rounds));
    table.add(
        "check page removed until the restart (http check, 500 ms interval, 3 retries)",
        timing(detection),
        format!(
            "{:.2}x interval x retries (1.5 s)",
            detection.median.as_secs_f64() / 1.5
        ),
        "about interval x retries",
    );
}

fn network_section(sizes: &Sizes, table: &mut Table) {
    let quick = sizes.starts < 100;
    let (seconds, trips) = if quick { (1, 200) } else { (5, 5000) };
    let m = network::measure(seconds, trips);
    let gbits = |b: f64| format!("{:.2} Gbit/s", b / 1e9);
    let share = |a: f64, b: f64| {
        if b > 0.0 {
            format!("{:.2}x", a / b)
        } else {
            "-".to_string()
        }
    };
    table.add(
        "TCP throughput, container -> outside through NAT (iperf3)",
        gbits(m.container_out.bits_per_second),
        format!(
            "{} the host -> outside directly ({})",
            share(m.container_out.bits_per_second, m.host_out.bits_per_second),
            gbits(m.host_out.bits_per_second)
        ),
        "",
    );
    table.add(
        "TCP throughput, outside -> container through a published port",
        gbits(m.world_to_published.bits_per_second),
        format!(
            "{} outside -> a host port directly ({})",
            share(
                m.world_to_published.bits_per_second,
                m.world_to_host.bits_per_second
            ),
            gbits(m.world_to_host.bits_per_second)
        ),
        "",
    );
    table.add(
        "TCP round trip, container -> outside through NAT",
        timing(m.container_out.round_trip),
        format!(
            "{} the host -> outside directly ({})",
            ratio(m.container_out.round_trip, m.host_out.round_trip),
            ms(m.host_out.round_trip.median)
        ),
        "",
    );
    table.add(
        "TCP round trip, outside -> container through a published port",
        timing(m.world_to_published.round_trip),
        format!(
            "{} outside -> a host port directly ({})",
            ratio(m.world_to_published.round_trip, m.world_to_host.round_trip),
            ms(m.world_to_host.round_trip.median)
        ),
        "",
    );
    let rounds = if quick { 5 } else { 50 };
    table.add(
        "nftables batch for a container with 100 published ports (IPv4 + IPv6, 200 DNAT rules)",
        timing(network::rule_insertion(100, rounds)),
        String::new(),
        "one transaction",
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == anchors::HELPER_ARG) {
        anchors::helper(&args[at + 1..]);
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the benchmarks start real containers: run them as root");
        std::process::exit(1);
    }
    let sizes = Sizes::from_env();
    let mut table = Table::default();
    // SUPD_BENCH_ONLY=restore (say) runs one section.
    let only = std::env::var("SUPD_BENCH_ONLY").ok();
    let wanted = |section: &str| only.as_deref().is_none_or(|o| o == section);
    if wanted("single") {
        eprintln!("anchors:");
        let anchors = anchors(&sizes, &mut table);
        eprintln!("one container at a time:");
        single_container(&sizes, &anchors, &mut table);
    }
    if wanted("many") {
        eprintln!("many containers:");
        many_containers(&sizes, &mut table);
    }
    if wanted("restore") {
        eprintln!("live restore:");
        live_restore(&sizes, &mut table);
    }
    if wanted("images") {
        eprintln!("images:");
        image_section(&sizes, &mut table);
    }
    if wanted("network") {
        eprintln!("network:");
        network_section(&sizes, &mut table);
    }
    if wanted("health") {
        eprintln!("health checks:");
        health_section(&sizes, &mut table);
    }
    if wanted("planning") {
        eprintln!("planning:");
        planning(&sizes, &mut table);
    }
    println!();
    table.print();
}
