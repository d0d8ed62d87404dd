//! Syscall numbers by name for the architectures a filter covers: the
//! target's own, and the 32-bit ABI its kernel also runs (x86 beside
//! x86_64, arm beside aarch64), which Docker's profile allows too. The
//! tables are generated from the kernel's headers
//! (scripts/gen-syscall-tables.py); a unit test checks the target's own
//! against libc.

// Every table is compiled for the tests, whatever the target.
#[cfg(any(test, target_arch = "aarch64"))]
pub(super) mod aarch64;
#[cfg(any(test, target_arch = "aarch64", target_arch = "arm"))]
pub(super) mod arm;
#[cfg(any(test, target_arch = "x86_64", target_arch = "x86"))]
pub(super) mod i386;
#[cfg(any(test, target_arch = "x86_64"))]
pub(super) mod x86_64;

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm"
)))]
compile_error!("supd's seccomp filters know x86_64, x86, aarch64 and arm: add the target's syscall table (scripts/gen-syscall-tables.py)");

/// An architecture as seccomp sees it.
#[derive(Debug)]
pub struct Arch {
    /// libseccomp's name, as Docker profiles list it.
    pub name: &'static str,
    /// AUDIT_ARCH_*: seccomp_data.arch.
    pub audit: u32,
    pub table: &'static [(&'static str, i64)],
    /// x86_64 only: the x32 ABI shares its audit arch.
    pub has_x32: bool,
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const AUDIT_64BIT: u32 = 0x8000_0000;
const AUDIT_LE: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
pub const ARCHES: &[Arch] = &[
    Arch {
        name: "SCMP_ARCH_X86_64",
        audit: 62 | AUDIT_64BIT | AUDIT_LE,
        table: x86_64::SYSCALLS,
        has_x32: true,
    },
    I386,
];
#[cfg(target_arch = "x86")]
pub const ARCHES: &[Arch] = &[I386];
#[cfg(target_arch = "aarch64")]
pub const ARCHES: &[Arch] = &[
    Arch {
        name: "SCMP_ARCH_AARCH64",
        audit: 183 | AUDIT_64BIT | AUDIT_LE,
        table: aarch64::SYSCALLS,
        has_x32: false,
    },
    ARM,
];
#[cfg(target_arch = "arm")]
pub const ARCHES: &[Arch] = &[ARM];

#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const I386: Arch = Arch {
    name: "SCMP_ARCH_X86",
    audit: 3 | AUDIT_LE,
    table: i386::SYSCALLS,
    has_x32: false,
};
/// EABI (armhf, armel); the old ABI is not supported by these kernels.
#[cfg(any(target_arch = "aarch64", target_arch = "arm"))]
const ARM: Arch = Arch {
    name: "SCMP_ARCH_ARM",
    audit: 40 | AUDIT_LE,
    table: arm::SYSCALLS,
    has_x32: false,
};

impl Arch {
    pub fn number(&self, name: &str) -> Option<u32> {
        self.table
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, nr)| u32::try_from(*nr).ok())
    }
}

/// The target's own architecture.
pub fn native() -> &'static Arch {
    &ARCHES[0]
}

/// Whether any covered architecture has this syscall.
pub fn known(name: &str) -> bool {
    ARCHES.iter().any(|arch| arch.number(name).is_some())
}

#[cfg(test)]
mod tests;
