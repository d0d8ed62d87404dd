//! The cgroup v2 device filter: v2 has no devices.allow, so, as runc and
//! systemd do, a BPF_PROG_TYPE_CGROUP_DEVICE program attached to the
//! container's cgroup answers each open and mknod. Written as raw eBPF
//! instructions (a handful per rule) and loaded with the bpf(2) syscall:
//! no compiler, no libbpf.

use crate::unit::inputs::{DeviceKind, DeviceRule};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Programs of the cgroups above and below still run: a booted systemd
/// inside can attach its own to the cgroups it makes, and only narrow it.
const BPF_F_ALLOW_MULTI: u32 = 2;

// The context (struct bpf_cgroup_dev_ctx): access_type = access << 16 | type.
const DEV_TYPE_BLOCK: i32 = 1;
const DEV_TYPE_CHAR: i32 = 2;
const ACCESS_MKNOD: i32 = 1;
const ACCESS_READ: i32 = 2;
const ACCESS_WRITE: i32 = 4;

/// One eBPF instruction (struct bpf_insn).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// dst register in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const LDX_W: u8 = 0x61;
const AND_K: u8 = 0x57;
const RSH_K: u8 = 0x77;
const MOV_X: u8 = 0xbf;
const MOV_K: u8 = 0xb7;
const JNE_K: u8 = 0x55;
const JNE_X: u8 = 0x5d;
const EXIT: u8 = 0x95;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

// Registers: r1 is the context; r2 type, r3 requested access, r4 major,
// r5 minor; r6 scratch; r0 the verdict.
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
const SCRATCH: u8 = 6;

/// The filter: allow (1) what a rule matches, deny (0) the rest.
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut out = vec![
        insn(LDX_W, TYPE, 1, 0, 0),
        insn(MOV_X, ACCESS, TYPE, 0, 0),
        insn(AND_K, TYPE, 0, 0, 0xffff),
        insn(RSH_K, ACCESS, 0, 0, 16),
        insn(LDX_W, MAJOR, 1, 4, 0),
        insn(LDX_W, MINOR, 1, 8, 0),
    ];
    for rule in rules {
        out.extend(rule_block(rule));
    }
    out.push(insn(MOV_K, 0, 0, 0, 0));
    out.push(insn(EXIT, 0, 0, 0, 0));
    out
}

/// Tests that each jump to the end of the block on a mismatch, then
/// `return 1`.
fn rule_block(rule: &DeviceRule) -> Vec<Insn> {
    // Each entry: the test, with its jump offset filled in below.
    let mut block: Vec<Insn> = Vec::new();
    match rule.kind {
        DeviceKind::All => {}
        DeviceKind::Char => block.push(insn(JNE_K, TYPE, 0, 0, DEV_TYPE_CHAR)),
        DeviceKind::Block => block.push(insn(JNE_K, TYPE, 0, 0, DEV_TYPE_BLOCK)),
    }
    let mut allowed = 0;
    for (on, bit) in [
        (rule.access.read, ACCESS_READ),
        (rule.access.write, ACCESS_WRITE),
        (rule.access.mknod, ACCESS_MKNOD),
    ] {
        if on {
            allowed |= bit;
        }
    }
    if allowed != ACCESS_READ | ACCESS_WRITE | ACCESS_MKNOD {
        // The request must ask for nothing outside the rule's letters.
        block.push(insn(MOV_X, SCRATCH, ACCESS, 0, 0));
        block.push(insn(AND_K, SCRATCH, 0, 0, allowed));
        block.push(insn(JNE_X, SCRATCH, ACCESS, 0, 0));
    }
    for (register, number) in [(MAJOR, rule.major), (MINOR, rule.minor)] {
        if let Some(number) = number {
            // Device numbers are at most 32 bits wide (12 + 20 in the kernel).
            block.push(insn(JNE_K, register, 0, 0, number as i32));
        }
    }
    block.push(insn(MOV_K, 0, 0, 0, 1));
    block.push(insn(EXIT, 0, 0, 0, 0));
    let len = block.len();
    for (index, instruction) in block.iter_mut().enumerate() {
        if instruction.code == JNE_K || instruction.code == JNE_X {
            // To the first instruction after this block.
            instruction.off = (len - index - 1) as i16;
        }
    }
    block
}

fn bpf<T>(command: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of union bpf_attr for this
    // command, valid for its size; the kernel reads (and for QUERY writes)
    // only within that size.
    let result = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
            attr as *mut T,
            std::mem::size_of::<T>(),
        )
    };
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf returned an odd fd"))?;
    // SAFETY: a fresh descriptor the kernel just returned, owned by no one.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

fn load(insns: &[Insn]) -> io::Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..9].copy_from_slice(b"supd_devs");
    let mut attr = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::other("too many rules"))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        ..ProgLoad::default()
    };
    owned(bpf(BPF_PROG_LOAD, &mut attr)?)
}

#[repr(C)]
#[derive(Default)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFdById {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn fd_u32(fd: &impl AsRawFd) -> u32 {
    // Descriptors are never negative.
    fd.as_raw_fd() as u32
}

/// The device programs attached to the cgroup itself (not inherited).
fn attached(cgroup: &impl AsRawFd) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = Query {
        target_fd: fd_u32(cgroup),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: 64,
        ..Query::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    ids.truncate(attr.prog_cnt.min(64) as usize);
    Ok(ids)
}

/// Makes `rules` the cgroup's device filter: the new program is attached
/// before the old ones go, so no device opens in between.
pub fn replace(cgroup: &std::fs::File, rules: &[DeviceRule]) -> io::Result<()> {
    let old = attached(cgroup)?;
    let prog = load(&program(rules))?;
    let mut attr = Attach {
        target_fd: fd_u32(cgroup),
        attach_bpf_fd: fd_u32(&prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut attr)?;
    for id in old {
        let mut by_id = GetFdById {
            prog_id: id,
            ..GetFdById::default()
        };
        let old_prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id) {
            Ok(fd) => owned(fd)?,
            // Detached and freed meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let mut detach = Attach {
            target_fd: fd_u32(cgroup),
            attach_bpf_fd: fd_u32(&old_prog),
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: 0,
        };
        match bpf(BPF_PROG_DETACH, &mut detach) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one request, as the kernel would.
    fn run(insns: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut regs = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = insns[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_W => regs[dst] = u64::from(ctx[(i.off / 4) as usize]),
                AND_K => regs[dst] &= i.imm as i64 as u64,
                RSH_K => regs[dst] >>= i.imm,
                MOV_X => regs[dst] = regs[src],
                MOV_K => regs[dst] = i.imm as i64 as u64,
                JNE_K if regs[dst] != i.imm as i64 as u64 => pc += i.off as usize,
                JNE_X if regs[dst] != regs[src] => pc += i.off as usize,
                JNE_K | JNE_X => {}
                EXIT => return regs[0],
                other => panic!("unknown opcode {other:#x}"),
            }
        }
    }

    /// The kernel's verdict, where this host has a cgroup2 hierarchy (the
    /// hybrid's `unified` too: BPF device programs work without any v2
    /// controller) and the test runs as root.
    #[test]
    fn the_kernel_loads_the_program_and_enforces_it_live() {
        let mount = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(std::path::Path::new)
            .find(|p| p.join("cgroup.procs").exists() && !p.join("tasks").exists());
        let Some(mount) = mount.filter(|_| nix::unistd::geteuid().is_root()) else {
            eprintln!("skipped: no cgroup2 hierarchy or not root");
            return;
        };
        let dir = mount.join(format!("supd-bpf-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        // Removed even when an assertion (or an emulator without bpf(2))
        // fails the test.
        struct Removed<'a>(&'a std::path::Path);
        impl Drop for Removed<'_> {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(self.0);
            }
        }
        let _removed = Removed(&dir);
        let cgroup = std::fs::File::open(&dir).unwrap();
        let probe = || {
            let script = format!(
                "echo $$ > {}/cgroup.procs; head -c1 /dev/null && echo null-ok; head -c1 /dev/zero | wc -c",
                dir.display()
            );
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .stderr(std::process::Stdio::piped())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
        };
        let rule = |text: &str| DeviceRule::parse(text).unwrap();
        replace(&cgroup, &[rule("c 1:3 rw")]).unwrap();
        let only_null = probe();
        assert_eq!(attached(&cgroup).unwrap().len(), 1);
        replace(&cgroup, &[rule("c 1:5 r")]).unwrap();
        let only_zero = probe();
        assert_eq!(attached(&cgroup).unwrap().len(), 1, "the old one went");
        assert!(only_null.contains("null-ok"), "{only_null}");
        assert!(only_null.contains("Operation not permitted"), "{only_null}");
        assert!(!only_zero.contains("null-ok"), "{only_zero}");
        assert!(only_zero.contains("Operation not permitted"), "{only_zero}");
        assert!(only_zero.contains("1\n"), "{only_zero}");
    }

    #[test]
    fn the_program_allows_exactly_what_the_rules_name() {
        let rules: Vec<DeviceRule> = ["c 1:3 rwm", "c 136:* rw", "b *:* m", "c 10:200 r"]
            .iter()
            .map(|r| DeviceRule::parse(r).unwrap())
            .collect();
        let p = program(&rules);
        let (r, w, m) = (ACCESS_READ, ACCESS_WRITE, ACCESS_MKNOD);
        assert_eq!(run(&p, DEV_TYPE_CHAR, r | w, 1, 3), 1);
        assert_eq!(run(&p, DEV_TYPE_CHAR, m, 1, 3), 1);
        assert_eq!(run(&p, DEV_TYPE_CHAR, r, 1, 4), 0, "unlisted minor");
        assert_eq!(run(&p, DEV_TYPE_BLOCK, r, 1, 3), 0, "block is not char");
        assert_eq!(run(&p, DEV_TYPE_CHAR, w, 136, 7), 1);
        assert_eq!(run(&p, DEV_TYPE_CHAR, m, 136, 7), 0, "no m for pts");
        assert_eq!(run(&p, DEV_TYPE_BLOCK, m, 8, 0), 1);
        assert_eq!(run(&p, DEV_TYPE_BLOCK, r, 8, 0), 0);
        assert_eq!(run(&p, DEV_TYPE_CHAR, r, 10, 200), 1);
        assert_eq!(run(&p, DEV_TYPE_CHAR, r | w, 10, 200), 0, "read-only");
        assert_eq!(run(&program(&[]), DEV_TYPE_CHAR, r, 1, 3), 0);
        let all = [DeviceRule::parse("a *:* rwm").unwrap()];
        assert_eq!(run(&program(&all), DEV_TYPE_BLOCK, r | w | m, 8, 1), 1);
    }
}
