use super::*;
use crate::unit::IoLimit;

fn temp_root(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("supd-cgfake-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn resources() -> Resources {
    Resources {
        memory_max: Some(256 << 20),
        memory_high: None,
        memory_swap: Some(0),
        memory_swappiness: None,
        oom_score_adj: None,
        cpu_max: Some(0.5),
        cpu_weight: Some(200),
        cpuset: Some("0-1".into()),
        pids_max: Some(64),
        io_weight: Some(300),
        io_limits: vec![IoLimit {
            device: "/dev/vda".into(),
            read_bps: Some(10 << 20),
            write_bps: None,
            read_iops: None,
            write_iops: Some(1000),
        }],
        storage_size: None,
    }
}

fn fake_devices(_: &Path) -> Result<(u64, u64), CgroupError> {
    Ok((254, 0))
}

fn values(writes: &[Write]) -> Vec<(&str, &str)> {
    writes.iter().map(|w| (w.file, w.value.as_str())).collect()
}

#[test]
fn detects_v1_hybrid_and_v2() {
    let v1 = temp_root("v1");
    fs::create_dir_all(v1.join("memory")).unwrap();
    assert_eq!(detect(&v1).unwrap(), Layout::V1 { hybrid: false });
    fs::create_dir_all(v1.join("unified")).unwrap();
    fs::write(v1.join("unified/cgroup.controllers"), "").unwrap();
    assert_eq!(detect(&v1).unwrap(), Layout::V1 { hybrid: true });
    let v2 = temp_root("v2");
    fs::write(v2.join("cgroup.controllers"), "cpu memory\n").unwrap();
    assert_eq!(detect(&v2).unwrap(), Layout::V2);
    assert!(detect(&temp_root("none")).is_err());
}

#[test]
fn v2_file_mapping() {
    let writes = plan_writes(Layout::V2, &resources(), None, &fake_devices).unwrap();
    assert_eq!(
        values(&writes),
        [
            ("memory.max", "268435456"),
            ("memory.high", "max"),
            ("memory.swap.max", "0"),
            ("cpu.max", "50000 100000"),
            ("cpu.weight", "200"),
            ("cpuset.cpus", "0-1"),
            ("pids.max", "64"),
            ("io.weight", "default 300"),
            (
                "io.max",
                "254:0 rbps=10485760 wbps=max riops=max wiops=1000"
            ),
        ]
    );
    let unset = plan_writes(
        Layout::V2,
        &Resources::default(),
        Some(&resources()),
        &fake_devices,
    )
    .unwrap();
    assert_eq!(
        values(&unset),
        [
            ("memory.max", "max"),
            ("memory.high", "max"),
            ("memory.swap.max", "max"),
            ("cpu.max", "max 100000"),
            ("cpu.weight", "100"),
            ("cpuset.cpus", ""),
            ("pids.max", "max"),
            ("io.weight", "default 100"),
            ("io.max", "254:0 rbps=max wbps=max riops=max wiops=max"),
        ],
        "a live update that drops limits resets them"
    );
    assert!(unset
        .iter()
        .filter(|w| w.file != "io.max")
        .all(|w| !w.required));
    let swappy = Resources {
        memory_swappiness: Some(10),
        ..Default::default()
    };
    let error = plan_writes(Layout::V2, &swappy, None, &fake_devices).unwrap_err();
    assert!(error
        .to_string()
        .contains("swappiness has no meaning on cgroup v2"));
}

#[test]
fn v1_file_mapping() {
    let mut r = resources();
    r.memory_swap = Some(64 << 20);
    r.memory_swappiness = Some(0);
    let writes = plan_writes(Layout::V1 { hybrid: true }, &r, None, &fake_devices).unwrap();
    assert_eq!(
        values(&writes),
        [
            ("memory.memsw.limit_in_bytes", "-1"),
            ("memory.limit_in_bytes", "268435456"),
            ("memory.memsw.limit_in_bytes", "335544320"),
            ("memory.swappiness", "0"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
            ("cpu.shares", "2048"),
            ("pids.max", "64"),
            ("blkio.weight", "1000"),
            ("cpuset.cpus", "0-1"),
            ("blkio.throttle.read_bps_device", "254:0 10485760"),
            ("blkio.throttle.write_bps_device", "254:0 0"),
            ("blkio.throttle.read_iops_device", "254:0 0"),
            ("blkio.throttle.write_iops_device", "254:0 1000"),
        ]
    );
    let high = Resources {
        memory_high: Some(1 << 30),
        ..Default::default()
    };
    assert!(
        plan_writes(Layout::V1 { hybrid: false }, &high, None, &fake_devices)
            .unwrap_err()
            .to_string()
            .contains("memory.high has no meaning on cgroup v1")
    );
}

#[test]
fn read_back_checks() {
    assert!(Check::Bytes.matches("268435456", "268435456\n"));
    assert!(
        Check::Bytes.matches("100000000", "99999744\n"),
        "rounded down to a page"
    );
    assert!(!Check::Bytes.matches("100000000", "50000000"));
    assert!(Check::Bytes.matches("max", "max\n"));
    assert!(Check::Bytes.matches("-1", "9223372036854771712\n"));
    assert!(!Check::Bytes.matches("max", "1048576"));
    assert!(Check::CpuList.matches("0,1", "0-1\n"));
    assert!(!Check::CpuList.matches("0-1", "0\n"));
    assert!(Check::DeviceLine.matches("8:0 100", "8:16 5\n8:0 100\n"));
    assert!(Check::DeviceLine.matches("8:0 0", "8:16 5\n"));
    assert!(!Check::DeviceLine.matches("8:0 0", "8:0 100\n"));
    assert!(Check::DeviceLine.matches("8:0 rbps=max wbps=max riops=max wiops=max", ""));
}

/// A fake v2 tree: Cgroups enables controllers, creates, applies and reads
/// back through the same code the daemon uses.
#[test]
fn v2_tree_in_a_temp_dir() {
    let root = temp_root("tree2");
    fs::write(
        root.join("cgroup.controllers"),
        "cpuset cpu io memory pids hugetlb\n",
    )
    .unwrap();
    fs::write(root.join("cgroup.subtree_control"), "memory\n").unwrap();
    let parent = root.join("supd");
    fs::create_dir_all(&parent).unwrap();
    fs::write(
        parent.join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    fs::write(parent.join("cgroup.subtree_control"), "").unwrap();
    let (cgroups, leftovers) = Cgroups::new(&root, "supd", &|_| false).unwrap();
    assert!(leftovers.is_empty());
    assert_eq!(cgroups.layout(), Layout::V2);
    assert_eq!(
        fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
        "+cpuset +cpu +io +pids"
    );
    assert_eq!(
        fs::read_to_string(parent.join("cgroup.subtree_control")).unwrap(),
        "+cpuset +cpu +io +memory +pids"
    );
    let cgroup = cgroups.create("web").unwrap();
    let dir = parent.join("web");
    for file in [
        "memory.max",
        "memory.high",
        "cpu.max",
        "cpu.weight",
        "pids.max",
        "memory.events",
    ] {
        fs::write(dir.join(file), "").unwrap();
    }
    let r = Resources {
        memory_max: Some(64 << 20),
        cpu_max: Some(0.2),
        pids_max: Some(32),
        ..Default::default()
    };
    let applied = cgroup.apply(&r, None).unwrap();
    assert_eq!(
        applied,
        ["memory.max=67108864", "cpu.max=20000 100000", "pids.max=32"]
    );
    assert_eq!(fs::read_to_string(dir.join("memory.high")).unwrap(), "max");
    assert!(
        !dir.join("memory.swap.max").exists(),
        "resets skip files the kernel lacks"
    );
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    )
    .unwrap();
    fs::write(dir.join("memory.current"), "1000000\n").unwrap();
    fs::write(dir.join("memory.stat"), "anon 10\ninactive_file 400000\n").unwrap();
    fs::write(dir.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").unwrap();
    let stats = cgroup.stats();
    assert_eq!(stats.oom_kills, Some(1));
    assert_eq!(stats.memory_bytes, Some(1_000_000));
    assert_eq!(stats.working_set_bytes, Some(600_000));
    assert_eq!(stats.cpu_usage_ns, Some(1_500_000));
    assert_eq!(stats.pids, None, "an unreadable figure is None, not 0");
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn v1_stats_parse() {
    let stats = stats::read_stats(Layout::V1 { hybrid: true }, |controller, file| {
        Some(
            match (controller, file) {
                ("memory", "memory.usage_in_bytes") => "2000\n",
                ("memory", "memory.stat") => "cache 5\ninactive_file 7\ntotal_inactive_file 500\n",
                ("memory", "memory.oom_control") => "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
                ("cpuacct", "cpuacct.usage") => "123456789\n",
                ("pids", "pids.current") => "3\n",
                _ => return None,
            }
            .to_string(),
        )
    });
    assert_eq!(
        stats,
        Stats {
            memory_bytes: Some(2000),
            working_set_bytes: Some(1500),
            cpu_usage_ns: Some(123_456_789),
            pids: Some(3),
            oom_kills: Some(2),
        }
    );
}
