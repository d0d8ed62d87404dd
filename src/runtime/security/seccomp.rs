//! The default seccomp profile, modelled on Docker's: the syscalls Docker
//! keeps from a container with the default capabilities return EPERM.
//! Compiled in pure Rust by `bpf` (so the binary stays static) rather than
//! by libseccomp, whose static build needs libseccomp.a and extra flags;
//! seccompiler installs the result.

use super::bpf::{self, ArgCheck, Verdict};
use super::syscalls::syscall_u32;
use crate::unit::security::Seccomp;
use seccompiler::BpfProgram;
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

/// The programs to install for `profile`, in order (none when unconfined).
pub fn programs(profile: &Seccomp) -> Result<Vec<BpfProgram>, String> {
    match profile {
        Seccomp::Unconfined => Ok(Vec::new()),
        Seccomp::Default { allow } => default_programs(allow),
        Seccomp::Profile(path) => super::docker_profile::programs(path),
    }
}

fn default_programs(allow: &[String]) -> Result<Vec<BpfProgram>, String> {
    let eperm = bpf::ret_errno(libc::EPERM);
    let mut verdicts = BTreeMap::new();
    for name in DENIED
        .iter()
        .filter(|name| !allow.iter().any(|a| a == *name))
    {
        let nr = super::syscalls::number(name).ok_or_else(|| format!("unknown syscall {name}"))?;
        verdicts.insert(syscall_u32(nr)?, Verdict::Always(eperm));
    }
    // clone3 passes its flags in memory, out of a filter's reach: answer
    // ENOSYS so that the C library falls back to clone, which is checked.
    verdicts.insert(
        syscall_u32(libc::SYS_clone3)?,
        Verdict::Always(bpf::ret_errno(libc::ENOSYS)),
    );
    let namespaces = NAMESPACE_FLAGS
        .iter()
        .fold(0, |mask, flag| mask | *flag as u32);
    verdicts.insert(
        syscall_u32(libc::SYS_clone)?,
        Verdict::Check(ArgCheck::AnyBit {
            arg: 0,
            mask: namespaces,
            action: eperm,
        }),
    );
    // Device nodes: cgroup v2 has no devices file, so without this a
    // container with CAP_MKNOD could make a node for a host disk and open
    // it. FIFOs and sockets stay allowed.
    for (syscall, mode_arg) in [(libc::SYS_mknod, 1), (libc::SYS_mknodat, 2)] {
        let devices = Verdict::Check(ArgCheck::MaskedIn {
            arg: mode_arg,
            mask: libc::S_IFMT,
            values: vec![libc::S_IFBLK, libc::S_IFCHR],
            action: eperm,
        });
        verdicts.insert(syscall_u32(syscall)?, devices);
    }
    Ok(vec![bpf::syscall_verdicts(&verdicts, bpf::RET_ALLOW)?])
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
