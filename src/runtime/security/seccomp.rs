//! The default seccomp profile, modelled on Docker's: the syscalls Docker
//! keeps from a container with the default capabilities return EPERM.
//! Compiled with seccompiler (pure Rust, so the binary stays static) rather
//! than libseccomp, whose static build needs libseccomp.a and extra flags.

use crate::unit::security::Seccomp;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;

/// Denied outright: kernel modules, kexec, reboot, clock and swap control,
/// keyrings, BPF, perf, mounting, namespaces, tracing other processes, NUMA
/// policy, quotas, accounting, io_uring (a known seccomp bypass surface).
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "sysfs",
    "_sysctl",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
];

/// clone() may not create namespaces (Docker's rule for the default caps).
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWCGROUP,
];

/// x32 syscalls carry this bit; the arch check cannot tell them apart, so
/// they are refused before the per-syscall rules.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// The programs to install for `profile`, in order (none when unconfined).
pub fn programs(profile: &Seccomp) -> Result<Vec<BpfProgram>, String> {
    match profile {
        Seccomp::Unconfined => Ok(Vec::new()),
        Seccomp::Default { allow } => default_programs(allow),
        Seccomp::Profile(path) => super::docker_profile::programs(path),
    }
}

fn default_programs(allow: &[String]) -> Result<Vec<BpfProgram>, String> {
    let error = |e: seccompiler::BackendError| e.to_string();
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for name in DENIED
        .iter()
        .filter(|name| !allow.iter().any(|a| a == *name))
    {
        let nr = super::syscalls::number(name).ok_or_else(|| format!("unknown syscall {name}"))?;
        rules.insert(nr, Vec::new());
    }
    let namespace_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let flag = *flag as u64;
            SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )
            .and_then(|c| SeccompRule::new(vec![c]))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(error)?;
    rules.insert(libc::SYS_clone, namespace_rules);
    // Device nodes: cgroup v2 has no devices file, so without this a
    // container with CAP_MKNOD could make a node for a host disk and open
    // it. FIFOs and sockets stay allowed.
    for (syscall, mode_arg) in [(libc::SYS_mknod, 1), (libc::SYS_mknodat, 2)] {
        let device_rules = [libc::S_IFBLK, libc::S_IFCHR]
            .iter()
            .map(|kind| {
                let condition = SeccompCondition::new(
                    mode_arg,
                    SeccompCmpArgLen::Dword,
                    SeccompCmpOp::MaskedEq(u64::from(libc::S_IFMT)),
                    u64::from(*kind),
                );
                condition.and_then(|c| SeccompRule::new(vec![c]))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(error)?;
        rules.insert(syscall, device_rules);
    }
    let eperm = compile(rules, SeccompAction::Errno(libc::EPERM as u32))?;
    // clone3 passes its flags in memory, out of a filter's reach: answer
    // ENOSYS so that the C library falls back to clone, which is checked.
    let clone3 = compile(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    Ok(vec![with_x32_guard(eperm), clone3])
}

pub(super) fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    on_match: SeccompAction,
) -> Result<BpfProgram, String> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, on_match, TargetArch::x86_64)
        .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

/// Prepends: load the syscall number; if it has the x32 bit, return EPERM.
pub(super) fn with_x32_guard(program: BpfProgram) -> BpfProgram {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_JMP_JGE_K: u16 = 0x35;
    const BPF_RET_K: u16 = 0x06;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let mut guarded = vec![
        sock_filter {
            code: BPF_LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        },
        sock_filter {
            code: BPF_JMP_JGE_K,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        sock_filter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
    ];
    guarded.extend(program);
    guarded
}

pub fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for program in programs {
        seccompiler::apply_filter(program).map_err(|e| e.to_string())?;
    }
    Ok(())
}
