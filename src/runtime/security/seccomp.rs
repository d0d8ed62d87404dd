//! The default seccomp profile, modelled on Docker's: the syscalls Docker
//! keeps from a container with the default capabilities return EPERM.
//! Compiled in pure Rust by `bpf` (so the binary stays static) rather than
//! by libseccomp, whose static build needs libseccomp.a and extra flags;
//! seccompiler installs the result.

use super::bpf::{self, ArchVerdicts, ArgCheck, Verdict};
use super::syscalls::ARCHES;
use crate::unit::security::Seccomp;
use seccompiler::BpfProgram;
use std::collections::BTreeMap;

/// Denied outright: kernel modules, kexec, reboot, clock and swap control,
/// keyrings, BPF, perf, mounting, namespaces, tracing other processes, NUMA
/// policy, quotas, accounting, io_uring (a known seccomp bypass surface).
/// By name on every architecture that has the syscall (the 32-bit ones add
/// `umount`, `stime` and the time64 clock calls).
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bdflush",
    "bpf",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_settime",
    "clock_settime64",
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
    "stime",
    "swapoff",
    "swapon",
    "syslog",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
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

/// The programs to install for `profile`, in order (none when unconfined).
pub fn programs(profile: &Seccomp) -> Result<Vec<BpfProgram>, String> {
    match profile {
        Seccomp::Unconfined => Ok(Vec::new()),
        Seccomp::Default { allow, boot } => default_programs(allow, *boot),
        Seccomp::Profile(path) => super::docker_profile::programs(path),
    }
}

/// What a system container's systemd needs beyond the default profile:
/// mounting (its own /run, /tmp, and services' private mounts) and new
/// namespaces for its services' sandboxing, as nspawn allows them. The
/// container's capabilities and, with a user namespace, the kernel's own
/// rules for it still decide what those calls may do.
pub const BOOT_ALLOWED: &[&str] = &[
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "open_tree",
    "pivot_root",
    "setns",
    "umount",
    "umount2",
    "unshare",
];

fn default_programs(allow: &[String], boot: bool) -> Result<Vec<BpfProgram>, String> {
    let mut allow = allow.to_vec();
    if boot {
        allow.extend(BOOT_ALLOWED.iter().map(|s| s.to_string()));
    }
    let arches: Vec<ArchVerdicts> = ARCHES
        .iter()
        .map(|arch| ArchVerdicts {
            audit_arch: arch.audit,
            refuse_x32: arch.has_x32,
            verdicts: default_verdicts(&allow, !boot, |name| arch.number(name)),
        })
        .collect();
    Ok(vec![bpf::syscall_verdicts(&arches, bpf::RET_ALLOW)?])
}

/// One architecture's verdicts; `number` is None for a syscall it lacks.
fn default_verdicts(
    allow: &[String],
    check_clone: bool,
    number: impl Fn(&str) -> Option<u32>,
) -> BTreeMap<u32, Verdict> {
    let eperm = bpf::ret_errno(libc::EPERM);
    let mut verdicts = BTreeMap::new();
    for name in DENIED
        .iter()
        .filter(|name| !allow.iter().any(|a| a == *name))
    {
        if let Some(nr) = number(name) {
            verdicts.insert(nr, Verdict::Always(eperm));
        }
    }
    // clone3 passes its flags in memory, out of a filter's reach: answer
    // ENOSYS so that the C library falls back to clone, which is checked.
    if let Some(nr) = number("clone3") {
        verdicts.insert(nr, Verdict::Always(bpf::ret_errno(libc::ENOSYS)));
    }
    let namespaces = NAMESPACE_FLAGS
        .iter()
        .fold(0, |mask, flag| mask | *flag as u32);
    // The flags are clone's first argument on every supported architecture.
    if let Some(nr) = number("clone").filter(|_| check_clone) {
        verdicts.insert(
            nr,
            Verdict::Check(ArgCheck::AnyBit {
                arg: 0,
                mask: namespaces,
                action: eperm,
            }),
        );
    }
    verdicts
}

// `install` hands seccompiler's instructions to the kernel as libc's.
const _: () = assert!(
    std::mem::size_of::<seccompiler::sock_filter>() == std::mem::size_of::<libc::sock_filter>()
);

/// Installs the filters. Not through seccompiler's `apply_filter`, which
/// always sets no_new_privs: a unit may say `no_new_privileges: false`, and
/// supd installs filters while it still holds CAP_SYS_ADMIN, so the kernel
/// does not require the flag.
pub fn install(programs: &[BpfProgram]) -> Result<(), String> {
    for program in programs {
        let len = u16::try_from(program.len())
            .map_err(|_| format!("seccomp filter of {} instructions", program.len()))?;
        let prog = libc::sock_fprog {
            len,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points to `program`, which lives across the call;
        // seccompiler's sock_filter has libc's layout (both are the
        // kernel's struct sock_filter), and the kernel copies the program.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(format!(
                "installing the filter: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod arch_tests {
    use super::super::syscalls::{aarch64, arm, i386, x86_64};

    /// A name that no table has would be a typo, denying nothing.
    #[test]
    fn every_denied_name_is_a_syscall_of_some_architecture() {
        let tables = [
            x86_64::SYSCALLS,
            i386::SYSCALLS,
            aarch64::SYSCALLS,
            arm::SYSCALLS,
        ];
        for name in super::DENIED.iter().chain(&["clone", "clone3"]) {
            assert!(
                tables.iter().any(|t| t.iter().any(|(n, _)| n == name)),
                "{name}"
            );
        }
        // Those every architecture has.
        for name in [
            "mount", "bpf", "unshare", "setns", "clone", "clone3", "ptrace",
        ] {
            for table in tables {
                assert!(table.iter().any(|(n, _)| *n == name), "{name}");
            }
        }
    }
}
