//! Seccomp filters that map syscall numbers to actions, compiled as a
//! binary search over the numbers. seccompiler emits one comparison per
//! syscall in a row; the kernel runs such a chain for every syscall number
//! when it installs a filter (to cache the ones that are always allowed),
//! with interrupts off, which cost a quarter of a millisecond on every
//! container start for the default profile. A search tree decides each
//! number in a handful of steps, then checks the few arguments the default
//! profile looks at.

use seccompiler::{sock_filter, BpfProgram};
use std::collections::BTreeMap;

const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
#[cfg(test)]
const ALU_AND_K: u16 = 0x54;
const RET_K: u16 = 0x06;
/// `seccomp_data.args[i]` starts at 16 + 8 i; on the little-endian
/// targets supd supports its low half first.
const DATA_ARGS: u32 = 16;

const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
/// x32 syscalls carry this bit; the arch check cannot tell them apart, so
/// they are refused before any per-syscall decision.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

pub const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const RET_KILL_PROCESS: u32 = libc::SECCOMP_RET_KILL_PROCESS;

pub fn ret_errno(errno: i32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

/// What a listed syscall gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Always(u32),
    /// Decided by its arguments.
    Check(ArgCheck),
}

/// A condition on (the low half of) one argument, with the action when it
/// holds; otherwise the filter's default applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgCheck {
    /// Any bit of `mask` is set.
    AnyBit { arg: u8, mask: u32, action: u32 },
}

/// Leaves compare this many numbers one by one: about as fast as another
/// level of the tree, and shorter.
const LEAF: usize = 4;

fn statement(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// One architecture's part of a filter: its AUDIT_ARCH_* value and what
/// each of its syscall numbers gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchVerdicts {
    pub audit_arch: u32,
    /// x86_64: x32 syscalls (numbers with X32_SYSCALL_BIT) come with the
    /// same audit arch; they are refused with EPERM.
    pub refuse_x32: bool,
    pub verdicts: BTreeMap<u32, Verdict>,
}

impl ArchVerdicts {
    /// Every listed number gets a plain action.
    pub fn actions(audit_arch: u32, refuse_x32: bool, actions: &BTreeMap<u32, u32>) -> Self {
        ArchVerdicts {
            audit_arch,
            refuse_x32,
            verdicts: actions
                .iter()
                .map(|(nr, action)| (*nr, Verdict::Always(*action)))
                .collect(),
        }
    }
}

/// A filter over `arches` (the target's own first, then its 32-bit
/// compat ABI): each decides its numbers with its own search tree, where
/// an unlisted number gets `otherwise`; another architecture kills the
/// process.
pub fn syscall_verdicts(arches: &[ArchVerdicts], otherwise: u32) -> Result<BpfProgram, String> {
    let mut bodies = Vec::with_capacity(arches.len());
    for arch in arches {
        let mut body = vec![statement(LD_W_ABS, DATA_NR)];
        if arch.refuse_x32 {
            body.push(jump(JMP_JGE_K, X32_SYSCALL_BIT, 0, 1));
            body.push(statement(RET_K, ret_errno(libc::EPERM)));
        }
        let entries: Vec<(u32, Verdict)> = arch
            .verdicts
            .iter()
            .map(|(nr, v)| (*nr, v.clone()))
            .collect();
        body.extend(tree(&entries, otherwise)?);
        bodies.push(body);
    }
    // The dispatch: per arch a test and a long jump to its body.
    let mut program = vec![statement(LD_W_ABS, DATA_ARCH)];
    let dispatch_len = 2 * arches.len() + 1;
    let mut body_start = dispatch_len + 1;
    for (index, (arch, body)) in arches.iter().zip(&bodies).enumerate() {
        program.push(jump(JMP_JEQ_K, arch.audit_arch, 0, 1));
        // From after this JA (at 1 + 2 index + 1) to the body's start.
        let here = 2 * index + 3;
        let skip = u32::try_from(body_start - here).map_err(|e| e.to_string())?;
        program.push(statement(JMP_JA, skip));
        body_start += body.len();
    }
    program.push(statement(RET_K, RET_KILL_PROCESS));
    program.extend(bodies.into_iter().flatten());
    if program.len() > libc::BPF_MAXINSNS as usize {
        return Err(format!(
            "seccomp filter too long ({} instructions)",
            program.len()
        ));
    }
    Ok(program)
}

/// Decides the syscall number in the accumulator among sorted `entries`.
/// Every path ends in a return, so subtrees can be laid out one after the
/// other.
fn tree(entries: &[(u32, Verdict)], otherwise: u32) -> Result<Vec<sock_filter>, String> {
    if entries.len() <= LEAF {
        return Ok(leaf(entries, otherwise));
    }
    let (low, high) = entries.split_at(entries.len() / 2);
    let left = tree(low, otherwise)?;
    let right = tree(high, otherwise)?;
    let pivot = high[0].0;
    let mut code = Vec::with_capacity(left.len() + right.len() + 2);
    match u8::try_from(left.len()) {
        Ok(skip) => code.push(jump(JMP_JGE_K, pivot, skip, 0)),
        Err(_) => {
            // Conditional jumps reach 255 instructions; JA reaches any.
            let skip = u32::try_from(left.len()).map_err(|e| e.to_string())?;
            code.push(jump(JMP_JGE_K, pivot, 0, 1));
            code.push(statement(JMP_JA, skip));
        }
    }
    code.extend(left);
    code.extend(right);
    Ok(code)
}

/// n comparisons, the `otherwise` return, then one slot per entry (from
/// comparison i, entry i's slot is always n instructions on): a return, or
/// a jump to the entry's argument checks, which follow the slots.
fn leaf(entries: &[(u32, Verdict)], otherwise: u32) -> Vec<sock_filter> {
    let n = entries.len() as u8;
    let mut code: Vec<sock_filter> = entries
        .iter()
        .map(|(nr, _)| jump(JMP_JEQ_K, *nr, n, 0))
        .collect();
    code.push(statement(RET_K, otherwise));
    let mut blocks: Vec<Vec<sock_filter>> = Vec::new();
    for (_, verdict) in entries {
        match verdict {
            Verdict::Always(action) => code.push(statement(RET_K, *action)),
            Verdict::Check(check) => {
                blocks.push(argument_checks(check, otherwise));
                code.push(statement(JMP_JA, 0));
            }
        }
    }
    // Point each jump slot at its block: past the later slots and the
    // blocks before it.
    let first_slot = entries.len() + 1;
    let mut block_start = code.len();
    let mut block = blocks.iter();
    for (slot, instruction) in code.iter_mut().enumerate().skip(first_slot) {
        if instruction.code == JMP_JA {
            instruction.k = (block_start - slot - 1) as u32;
            block_start += block.next().map_or(0, Vec::len);
        }
    }
    code.extend(blocks.into_iter().flatten());
    code
}

fn argument_checks(check: &ArgCheck, otherwise: u32) -> Vec<sock_filter> {
    let load = |arg: u8| statement(LD_W_ABS, DATA_ARGS + 8 * u32::from(arg));
    match check {
        ArgCheck::AnyBit { arg, mask, action } => vec![
            load(*arg),
            jump(JMP_JSET_K, *mask, 0, 1),
            statement(RET_K, *action),
            statement(RET_K, otherwise),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit values of x86_64 and i386, as test data.
    const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;

    fn syscall_map(actions: &BTreeMap<u32, u32>, otherwise: u32) -> Result<BpfProgram, String> {
        syscall_verdicts(
            &[ArchVerdicts::actions(AUDIT_ARCH_X86_64, true, actions)],
            otherwise,
        )
    }

    /// Runs the subset of classic BPF that `syscall_map` emits: the action
    /// and how many instructions it took.
    fn run_counting(program: &[sock_filter], arch: u32, nr: u32) -> (u32, usize) {
        run_with_args(program, arch, nr, [0; 6])
    }

    fn run_with_args(program: &[sock_filter], arch: u32, nr: u32, args: [u32; 6]) -> (u32, usize) {
        let (mut pc, mut acc, mut steps) = (0usize, 0u32, 0usize);
        loop {
            let i = &program[pc];
            pc += 1;
            steps += 1;
            match i.code {
                LD_W_ABS => {
                    acc = match i.k {
                        DATA_NR => nr,
                        DATA_ARCH => arch,
                        k => args[((k - DATA_ARGS) / 8) as usize],
                    }
                }
                ALU_AND_K => acc &= i.k,
                JMP_JSET_K => pc += usize::from(if acc & i.k != 0 { i.jt } else { i.jf }),
                JMP_JA => pc += i.k as usize,
                JMP_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                JMP_JGE_K => pc += usize::from(if acc >= i.k { i.jt } else { i.jf }),
                RET_K => return (i.k, steps),
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn run(program: &[sock_filter], arch: u32, nr: u32) -> u32 {
        run_counting(program, arch, nr).0
    }

    #[test]
    fn every_number_gets_its_action() {
        for size in [0usize, 1, 3, 4, 5, 17, 60, 400] {
            // Every third number, with two different actions.
            let actions: BTreeMap<u32, u32> = (0..size as u32)
                .map(|i| {
                    (
                        i * 3,
                        if i % 2 == 0 {
                            ret_errno(1)
                        } else {
                            ret_errno(38)
                        },
                    )
                })
                .collect();
            let program = syscall_map(&actions, RET_ALLOW).unwrap();
            for nr in 0..(size as u32 * 3 + 10) {
                let want = actions.get(&nr).copied().unwrap_or(RET_ALLOW);
                assert_eq!(
                    run(&program, AUDIT_ARCH_X86_64, nr),
                    want,
                    "size {size} nr {nr}"
                );
            }
            assert_eq!(
                run(&program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 3),
                ret_errno(libc::EPERM)
            );
            assert_eq!(run(&program, AUDIT_ARCH_I386, 3), RET_KILL_PROCESS);
        }
    }

    #[test]
    fn a_search_takes_a_few_steps() {
        // As many as Docker's allowlist, so that JA long jumps are used.
        let actions: BTreeMap<u32, u32> = (0..400).map(|i| (i * 2, RET_ALLOW)).collect();
        let program = syscall_map(&actions, ret_errno(1)).unwrap();
        assert!(program.iter().any(|i| i.code == JMP_JA));
        let most = (0..900)
            .map(|nr| run_counting(&program, AUDIT_ARCH_X86_64, nr).1)
            .max()
            .unwrap();
        // The prologue, about log2(100) levels of up to two jumps, a leaf.
        assert!(most <= 6 + 2 * 7 + LEAF + 1, "{most} steps");
    }

    #[test]
    fn argument_checks_decide_with_the_arguments() {
        let eperm = ret_errno(libc::EPERM);
        let verdicts = BTreeMap::from([
            (2, Verdict::Always(eperm)),
            (
                5,
                Verdict::Check(ArgCheck::AnyBit {
                    arg: 0,
                    mask: 0x30,
                    action: eperm,
                }),
            ),
            (7, Verdict::Always(ret_errno(38))),
            (
                11,
                Verdict::Check(ArgCheck::AnyBit {
                    arg: 1,
                    mask: 1,
                    action: eperm,
                }),
            ),
        ]);
        let program = syscall_verdicts(
            &[ArchVerdicts {
                audit_arch: AUDIT_ARCH_X86_64,
                refuse_x32: true,
                verdicts,
            }],
            RET_ALLOW,
        )
        .unwrap();
        let run = |nr, args| run_with_args(&program, AUDIT_ARCH_X86_64, nr, args).0;
        assert_eq!(run(2, [0; 6]), eperm);
        assert_eq!(run(3, [0xff; 6]), RET_ALLOW);
        assert_eq!(run(5, [0x10, 0, 0, 0, 0, 0]), eperm);
        assert_eq!(run(5, [0x0f, 0xff, 0, 0, 0, 0]), RET_ALLOW);
        assert_eq!(run(7, [0; 6]), ret_errno(38));
        assert_eq!(run(11, [0, 1, 0, 0, 0, 0]), eperm);
        assert_eq!(run(11, [1, 0, 0, 0, 0, 0]), RET_ALLOW);
    }

    #[test]
    fn each_architecture_decides_with_its_own_numbers() {
        let eperm = ret_errno(libc::EPERM);
        // A long native tree, so that the compat body starts far away.
        let native: BTreeMap<u32, u32> = (0..300).map(|i| (i * 2, eperm)).collect();
        let compat = BTreeMap::from([(5, eperm)]);
        let program = syscall_verdicts(
            &[
                ArchVerdicts::actions(AUDIT_ARCH_X86_64, true, &native),
                ArchVerdicts::actions(AUDIT_ARCH_I386, false, &compat),
            ],
            RET_ALLOW,
        )
        .unwrap();
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 4), eperm);
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 5), RET_ALLOW);
        assert_eq!(run(&program, AUDIT_ARCH_I386, 5), eperm);
        assert_eq!(run(&program, AUDIT_ARCH_I386, 4), RET_ALLOW);
        assert_eq!(
            run(&program, AUDIT_ARCH_I386, X32_SYSCALL_BIT | 5),
            RET_ALLOW,
            "the x32 bit means nothing to i386"
        );
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 5), eperm);
        assert_eq!(run(&program, 0xC000_00B7, 4), RET_KILL_PROCESS);
    }
}
