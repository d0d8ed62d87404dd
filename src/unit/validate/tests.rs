use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Unit, UnitError> {
    parse_unit("web", Path::new("/etc/supd/units/web.yaml"), text)
}

const MINIMAL: &str = "rootfs: /srv/root\nexec: [/bin/sh]\n";

#[test]
fn minimal_unit_gets_documented_defaults() {
    let unit = parse(MINIMAL).unwrap();
    assert_eq!(unit.hostname, "web");
    assert!(unit.enabled && unit.init && !unit.readonly_rootfs);
    assert_eq!(unit.workdir, PathBuf::from("/"));
    assert_eq!(unit.restart, RestartConfig::default());
    assert_eq!(unit.restart.delay, Duration::from_secs(1));
    assert_eq!(unit.stop.signal, libc::SIGTERM);
    assert_eq!(unit.stop.timeout, Duration::from_secs(10));
    assert_eq!(unit.logging.max_size, 10 << 20);
    assert_eq!(unit.logging.max_files, 3);
    assert_eq!(unit.network.mode, super::super::NetworkMode::Host);
}

#[test]
fn full_unit_parses() {
    let text = r#"
description: demo
enabled: false
rootfs: /
volatile: overlay
readonly_rootfs: true
exec: ["/bin/sh", "-c", "sleep 1"]
env: { TZ: UTC, N: 5 }
workdir: /tmp
user: "101:102"
hostname: demo-1
init: false
restart:
  policy: always
  delay: 500ms
  max_delay: 1m
  reset_after: 10m
  start_limit: { burst: 3, interval: 30s }
stop: { signal: INT, timeout: 2s }
mounts:
  - { type: bind, source: /srv/data, target: /data, readonly: true }
  - { type: tmpfs, target: /tmp, size: 64M, mode: 1777 }
logging: { max_size: 1M, max_files: 2 }
network: { mode: none }
"#;
    let unit = parse(text).unwrap();
    assert!(!unit.enabled);
    assert_eq!(unit.env["N"], "5");
    assert_eq!(unit.restart.policy, RestartPolicy::Always);
    assert_eq!(unit.restart.delay, Duration::from_millis(500));
    assert_eq!(unit.restart.start_limit_burst, 3);
    assert_eq!(unit.stop.signal, libc::SIGINT);
    assert_eq!(unit.mounts[1].size, Some(64 << 20));
    assert_eq!(unit.mounts[1].mode, Some(0o1777));
    assert_eq!(
        unit.user,
        Some(super::super::UserSpec {
            user: super::super::IdOrName::Id(101),
            group: Some(super::super::IdOrName::Id(102))
        })
    );
}

use super::super::RestartPolicy;

/// Each case: unit text, then the exact rendered error.
#[test]
fn errors_name_file_line_column_and_field() {
    let f = "/etc/supd/units/web.yaml";
    let cases: &[(&str, String)] = &[
        (
            "rootfs: /r\nexec: [/x]\nrestart:\n  polcy: always\n",
            format!("{f}:4:3: restart: unknown field `polcy`, expected one of `policy`, `delay`, `max_delay`, `reset_after`, `start_limit` (did you mean `policy`?)"),
        ),
        (
            "rootfs: /r\nexec: [/x]\nexcec: [/y]\n",
            format!("{f}:3:1: unknown field `excec`, expected one of `description`, `enabled`, `rootfs`, `volatile`, `layers`, `image`, `args`, `readonly_rootfs`, `exec`, `env`, `workdir`, `user`, `hostname`, `init`, `restart`, `stop`, `mounts`, `logging`, `network`, `depends_on`, `notify`, `start_timeout`, `resources`, `sysctls`, `security`, `health`, `watchdog`, `devices`, `device_rules`, `env_file`, `secrets`, `timezone`, `boot` (did you mean `exec`?)"),
        ),
        (
            "rootfs: /r\nexec: [/x]\nrestart:\n  delay: 10x\n",
            format!("{f}:4:10: restart.delay: invalid duration \"10x\": expected a number with ms, s, m, h or d (for example 500ms, 10s, 5m, 1h)"),
        ),
        (
            "rootfs: /r\nexec: [/x]\nlogging:\n  max_size: lots\n",
            format!("{f}:4:13: logging.max_size: invalid size \"lots\": expected bytes or a number with K, M, G or T (for example 512K, 64M, 1.5G)"),
        ),
        (
            "rootfs: /r\nexec: [/x]\nenabled: maybe\n",
            format!("{f}:3:10: enabled: invalid type: string \"maybe\", expected a boolean"),
        ),
        (
            "rootfs: /r\nexec: /x\n",
            format!("{f}:2:7: exec: invalid type: string \"/x\", expected a sequence"),
        ),
        (
            "rootfs: /r\n",
            format!("{f}: exec: required: the command to run as a list, for example [\"/bin/sh\", \"-c\", \"...\"]"),
        ),
        (
            "exec: [/x]\n",
            format!("{f}: rootfs: required: a root filesystem directory (or `layers`, or `image`)"),
        ),
        (
            "image: app:1\nrootfs: /r\n",
            format!("{f}:1:1: image: use one of rootfs, layers or image: an image brings its own layers"),
        ),
        (
            "image: App\n",
            format!("{f}:1:8: image: invalid image name \"App\": expected NAME[:TAG] with a lowercase NAME (letters, digits, . _ - / and a registry's :port)"),
        ),
        (
            "image: app\nexec: [/x]\nargs: [-v]\n",
            format!("{f}:3:1: args: use exec (replaces the image's Entrypoint and Cmd) or args (replaces its Cmd), not both"),
        ),
        (
            "rootfs: /r\nexec: [/x]\nargs: [-v]\n",
            format!("{f}:3:1: args: args replaces an image's Cmd and needs `image`; without one, put the arguments in exec"),
        ),
        (
            "exec: [/x]\nrootfs: /\n",
            format!("{f}:2:1: rootfs: the host's / can only be used with `volatile: overlay` or `volatile: state`"),
        ),
        (
            "exec: [/x]\nrootfs: /\nvolatile: overlay\nsecurity:\n  user_namespace: auto\n",
            format!("{f}:5:3: security.user_namespace: {}", super::HOST_ROOT_IN_USERNS),
        ),
        (
            "exec: [/x]\nrootfs: relative/dir\n",
            format!("{f}:2:9: rootfs: path \"relative/dir\" must be absolute"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nnotify:\n  maybe\n",
            format!("{f}:4:3: notify: invalid type: string \"maybe\", expected a boolean"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nstart_timeout: 0s\n",
            format!("{f}:3:1: start_timeout: must be longer than 0s"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nnetwork:\n  mode: bridged\n",
            format!("{f}:4:9: network.mode: unknown network mode \"bridged\": expected host, none, bridge, macvlan or ipvlan"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nrestart:\n  policy: alwayz\n",
            format!("{f}:4:11: restart.policy: unknown variant `alwayz`, expected one of `always`, `on-failure`, `never` (did you mean `always`?)"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nstop: { signal: SIGKILL }\n",
            format!("{f}:3:17: stop.signal: invalid stop signal \"SIGKILL\": expected a catchable signal name such as SIGTERM or SIGRTMIN+3"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nmounts:\n  - { type: bind, target: /data }\n",
            format!("{f}:3:1: mounts[0].source: required for a bind mount"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nrestart:\n  delay: 10s\n  max_delay: 1s\n",
            format!("{f}:5:3: restart.max_delay: must not be shorter than restart.delay"),
        ),
        (
            "exec: [/x]\nrootfs: /r\nhostname: bad_name\n",
            format!("{f}:3:11: hostname: invalid hostname \"bad_name\": letters, digits, '-' and '.', at most 64 characters"),
        ),
        (
            "exec: [/x\n",
            format!("{f}:2:1: did not find expected ',' or ']', while parsing a flow sequence at line 1 column 7"),
        ),
    ];
    for (text, want) in cases {
        let got = parse(text).expect_err(text).to_string();
        assert_eq!(got, want.as_str(), "for unit text:\n{text}");
    }
}

#[test]
fn invalid_unit_names_are_rejected() {
    for name in ["", "Web", "-x", "a b", &"x".repeat(64)] {
        assert!(
            parse_unit(name, Path::new("f"), MINIMAL).is_err(),
            "{name:?}"
        );
    }
    for name in ["a", "web-1", "db_2.prod", &"x".repeat(63)] {
        assert!(
            parse_unit(name, Path::new("f"), MINIMAL).is_ok(),
            "{name:?}"
        );
    }
}

#[test]
fn default_hostname_is_sanitised() {
    let unit = parse_unit("db_2.prod", Path::new("f"), MINIMAL).unwrap();
    assert_eq!(unit.hostname, "db-2-prod");
}

#[test]
fn volatile_accepts_yaml11_booleans() {
    let unit = parse("rootfs: /\nvolatile: overlay\nexec: [/x]\n").unwrap();
    assert_eq!(unit.volatile, Volatile::Overlay);
    let unit = parse("rootfs: /r\nvolatile: no\nexec: [/x]\n").unwrap();
    assert_eq!(unit.volatile, Volatile::No);
}

#[test]
fn canonical_form_ignores_comments_and_key_order() {
    let a = parse("rootfs: /r\nexec: [/x]\nenv: {A: 1, B: 2}\n").unwrap();
    let b = parse("# comment\nenv: {B: 2, A: 1}\nexec: [/x]   # trailing\nrootfs: /r\n").unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
}

#[test]
fn network_modes_validate_their_keys() {
    let base = "rootfs: /r\nexec: [/x]\n";
    let ok = |network: &str| {
        parse(&format!("{base}network: {network}\n"))
            .unwrap()
            .network
    };
    let auto = ok("{ mode: bridge }");
    assert_eq!(auto.address, None);
    assert_eq!(auto.subnet.unwrap().to_string(), "10.88.0.0/16");
    assert_eq!(auto.gateway.unwrap().to_string(), "10.88.0.1");
    assert_eq!(
        (auto.bridge.as_str(), auto.interface.as_str()),
        ("supbr0", "eth0")
    );
    let fixed = ok("{ mode: bridge, address: 10.5.0.7/24 }");
    assert_eq!(
        fixed.gateway.unwrap().to_string(),
        "10.5.0.1",
        "defaults to the subnet's first address"
    );
    let custom = ok("{ mode: bridge, gateway: 192.168.77.1/24, interface: net0, mtu: 1400 }");
    assert_eq!(custom.subnet.unwrap().to_string(), "192.168.77.0/24");
    let mac =
        ok("{ mode: macvlan, parent: eth1, address: 192.168.1.50/24, macvlan_mode: private }");
    assert_eq!(
        (mac.gateway, mac.macvlan_mode),
        (None, crate::unit::MacvlanMode::Private)
    );
    let f = "/etc/supd/units/web.yaml";
    let cases = [
        ("{ mode: none, address: 10.0.0.2/24 }", format!("{f}:3:24: network.address: has no meaning with network mode none")),
        ("{ mode: host, dns: [1.1.1.1] }", format!("{f}:3:24: network.dns: has no meaning with network mode host")),
        ("{ mode: macvlan, address: 10.0.0.2/24 }", format!("{f}:3:1: network.parent: required: the host interface to attach to")),
        ("{ mode: ipvlan, parent: eth0 }", format!("{f}:3:1: network.address: required: a fixed address such as 192.168.1.50/24 (auto needs bridge mode)")),
        ("{ mode: bridge, address: 10.0.0.2 }", format!("{f}:3:35: network.address: address \"10.0.0.2\" needs a prefix length, such as 10.0.0.2/24 (or use auto)")),
        ("{ mode: bridge, gateway: 10.0.0.1 }", format!("{f}:3:26: network.gateway: with address: auto, give the gateway with its prefix length, such as 10.88.0.1/16")),
        ("{ mode: bridge, address: 10.0.0.2/24, gateway: 10.1.0.1 }", format!("{f}:3:48: network.gateway: 10.1.0.1 is outside 10.0.0.0/24")),
        ("{ mode: bridge, address: 10.0.0.1/24, gateway: 10.0.0.1 }", format!("{f}:3:26: network.address: must differ from the gateway")),
        ("{ mode: bridge, address: 10.0.0.255/24 }", format!("{f}:3:26: network.address: 10.0.0.255/24 is the network or broadcast address")),
        ("{ mode: bridge, rps: true, parent: eth0 }", format!("{f}:3:37: network.parent: has no meaning with network mode bridge")),
        ("{ mode: bridge, interface: a-very-long-name0 }", format!("{f}:3:37: network.interface: invalid interface name \"a-very-long-name0\": 1 to 15 characters without '/', ':' or blanks")),
        ("{ mode: macvlan, parent: eth0, address: 1.2.3.4/24, macvlan_mode: l2 }", format!("{f}:3:76: network.macvlan_mode: unknown variant `l2`, expected one of `bridge`, `private`, `vepa`, `passthru`")),
    ];
    for (network, want) in cases {
        let got = parse(&format!("{base}network: {network}\n"))
            .expect_err(network)
            .to_string();
        assert_eq!(got, want, "{network}");
    }
}

#[test]
fn only_namespaced_sysctls_are_accepted() {
    let unit = |extra: &str| parse(&format!("rootfs: /r\nexec: [/x]\n{extra}"));
    let ok = unit("network: { mode: none }\nsysctls:\n  net.ipv4.tcp_keepalive_time: 600\n  kernel.shmmax: 1000\n  kernel.msgmax: 9\n  kernel.sem: 250 32000 32 128\n  fs.mqueue.msg_max: 20\n  kernel.domainname: example\n").unwrap();
    assert_eq!(ok.sysctls["net.ipv4.tcp_keepalive_time"], "600");
    assert_eq!(ok.sysctls["kernel.sem"], "250 32000 32 128");
    let f = "/etc/supd/units/web.yaml";
    let cases = [
        ("network: { mode: none }\nsysctls:\n  vm.swappiness: 10\n", format!("{f}:5:3: sysctls.vm.swappiness: vm.swappiness is not namespaced: it would change the host (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, kernel.domainname)")),
        ("sysctls:\n  kernel.pid_max: 100\n", format!("{f}:4:3: sysctls.kernel.pid_max: kernel.pid_max is not namespaced: it would change the host (allowed: net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*, kernel.domainname)")),
        ("sysctls:\n  net.core.somaxconn: 1024\n", format!("{f}:4:3: sysctls.net.core.somaxconn: net.core.somaxconn needs a network namespace of its own: with network mode host it would change the host")),
        ("sysctls:\n  kernel.hostname: x\n", format!("{f}:4:3: sysctls.kernel.hostname: use the unit's `hostname` key instead")),
    ];
    for (extra, want) in cases {
        assert_eq!(unit(extra).expect_err(extra).to_string(), want, "{extra}");
    }
}

#[test]
fn security_keys() {
    let unit = |extra: &str| parse(&format!("rootfs: /r\nexec: [/x]\n{extra}"));
    let defaults = unit("").unwrap().security;
    assert_eq!(defaults.capabilities.len(), 14);
    assert!(defaults.no_new_privileges);
    let custom = unit("security:\n  capabilities: { drop: [all], add: [net_admin, CAP_KILL] }\n  no_new_privileges: false\n  seccomp: unconfined\n  user_namespace: { uid_map: \"0:100000:65536\", gid_map: \"0:100000:65536\" }\n").unwrap().security;
    assert_eq!(custom.capabilities, ["CAP_KILL", "CAP_NET_ADMIN"]);
    assert!(!custom.no_new_privileges);
    assert_eq!(custom.seccomp, crate::unit::security::Seccomp::Unconfined);
    assert!(custom.user_namespace.is_some());
    let perf = unit("security: { seccomp_allow: [perf_event_open] }\n")
        .unwrap()
        .security;
    assert_eq!(
        perf.seccomp,
        crate::unit::security::Seccomp::Default {
            allow: vec!["perf_event_open".into()],
            boot: false,
        }
    );
    let f = "/etc/supd/units/web.yaml";
    let cases = [
        ("security: { capabilities: { add: [FLY] } }\n", format!("{f}:3:29: security.capabilities.add: unknown capability \"FLY\"")),
        ("security: { seccomp: strict }\n", format!("{f}:3:13: security.seccomp: \"strict\": expected default, unconfined or an absolute path to a profile")),
        ("security: { seccomp_allow: [mount] }\n", format!("{f}:3:13: security.seccomp_allow: \"mount\" cannot be allowed: choose from perf_event_open, ptrace, process_vm_readv, process_vm_writev, userfaultfd, syslog")),
        ("security: { user_namespace: { uid_map: \"1:100000:10\", gid_map: \"0:1:1\" } }\n", format!("{f}:3:31: security.user_namespace.uid_map: id map \"1:100000:10\" must map id 0 (the container's root)")),
    ];
    for (extra, want) in cases {
        assert_eq!(unit(extra).expect_err(extra).to_string(), want, "{extra}");
    }
}

#[test]
fn an_image_unit_leaves_to_the_image_what_it_does_not_set() {
    let unit = parse("image: registry:5000/app\n").unwrap();
    let image = unit.image.expect("an image unit");
    assert_eq!(image.reference, "registry:5000/app:latest");
    assert!(unit.exec.is_empty() && unit.rootfs.is_none() && unit.layers.is_empty());
    let all = crate::unit::Inherit {
        exec: true,
        workdir: true,
        user: true,
        stop_signal: true,
    };
    assert_eq!(image.inherit, all);
    let unit =
        parse("image: app:2\nexec: [/x]\nworkdir: /w\nuser: '1'\nstop: { signal: INT }\n").unwrap();
    assert_eq!(unit.image.unwrap().inherit, crate::unit::Inherit::default());
}

#[test]
fn boot_runs_the_rootfs_init_with_system_container_defaults() {
    let unit = parse_unit(
        "os",
        Path::new("os.yaml"),
        "rootfs: /srv/debian\nboot: true\nnetwork: { mode: none }\n",
    )
    .unwrap();
    assert!(unit.boot && !unit.init);
    assert_eq!(unit.exec[0], "/sbin/init");
    assert_eq!(unit.stop.signal, libc::SIGRTMIN() + 3);
    assert!(!unit.security.no_new_privileges);
    for cap in ["CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_SYS_BOOT"] {
        assert!(unit.security.capabilities.iter().any(|c| c == cap), "{cap}");
    }
    assert_eq!(
        unit.security.seccomp,
        crate::unit::security::Seccomp::Default {
            allow: vec![],
            boot: true
        }
    );
    let own = parse_unit(
        "os",
        Path::new("os.yaml"),
        "rootfs: /srv/debian\nboot: true\nexec: [/lib/systemd/systemd]\nstop: { signal: SIGTERM }\n",
    )
    .unwrap();
    assert_eq!(own.exec, ["/lib/systemd/systemd"]);
    assert_eq!(own.stop.signal, libc::SIGTERM);
    assert!(
        !own.security
            .capabilities
            .iter()
            .any(|c| c == "CAP_NET_ADMIN"),
        "host network: no NET_ADMIN"
    );
    let error = parse_unit(
        "os",
        Path::new("os.yaml"),
        "rootfs: /r\nboot: true\ninit: true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("init: boot: true runs the rootfs's own init"),
        "{error}"
    );
}

#[test]
fn storage_needs_a_size_and_a_layer_supd_makes() {
    let with = |head: &str, storage: &str| {
        parse(&format!(
            "{head}exec: [/x]\nresources:\n  storage: {storage}\n"
        ))
    };
    let unit = with("rootfs: /r\nvolatile: state\n", "{ size: 1G }").unwrap();
    assert_eq!(unit.resources.storage_size, Some(1 << 30));
    let layers = with("layers: [/a, /b]\n", "{ size: 64M }").unwrap();
    assert_eq!(layers.resources.storage_size, Some(64 << 20));
    assert!(with("image: app:1\n", "{ size: 1G }").is_ok());
    assert!(with("rootfs: /\nvolatile: overlay\n", "{ size: 1G }").is_ok());
    let message = |e: UnitError| e.to_string();
    assert!(message(with("rootfs: /r\n", "{ size: 1G }").unwrap_err())
        .contains("resources.storage: the rootfs is written in place"));
    assert!(
        message(with("rootfs: /r\nvolatile: state\n", "{}").unwrap_err())
            .contains("resources.storage.size: required")
    );
    let small = message(with("rootfs: /r\nvolatile: state\n", "{ size: 1M }").unwrap_err());
    assert!(
        small.contains(":5:") && small.contains("at least 16M"),
        "{small}"
    );
    let typo = message(with("rootfs: /r\nvolatile: state\n", "{ sise: 1G }").unwrap_err());
    assert!(typo.contains("unknown field `sise`"), "{typo}");
}
