//! A profile compiled into a classic BPF seccomp program.
//!
//! Layout: load `arch`, jump to that architecture's block (unknown arch:
//! kill). On x86_64 a number with the x32 bit goes to the x32 block. A
//! block walks the syscall numbers in ascending runs: a run of neighbouring
//! numbers with the same unconditional action is one range test; a
//! syscall with argument rules gets its own test and rule chain. Numbers
//! above the highest one the profile names answer ENOSYS (runc's rule, so
//! libc falls back from syscalls newer than the profile); the others get
//! the default action. Jumps are resolved by a small assembler that turns
//! conditional jumps further than 255 instructions into `ja` hops.

use super::profile::{Action, Cond, Op, Profile, Rule};
use super::{Arch, X32_SYSCALL_BIT};

/// The kernel's BPF_MAXINSNS.
pub const MAX_INSNS: usize = 4096;

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JGE: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const AND: u16 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K

/// `struct seccomp_data` offsets.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const fn off_arg(i: u8, high: bool) -> u32 {
    // Little-endian on every architecture coracle supports.
    16 + 8 * i as u32 + if high { 4 } else { 0 }
}

const ENOSYS: u16 = 38;
/// arm's private syscalls start here (__ARM_NR_BASE).
const ARM_PRIVATE: u32 = 0x000F_0000;

type Label = usize;

enum Item {
    Stmt(u16, u32),
    Jump(u16, u32, Label, Label),
    Ja(Label),
    Mark(Label),
}

#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels - 1
    }
    fn mark(&mut self, l: Label) {
        self.items.push(Item::Mark(l));
    }
    fn ld(&mut self, off: u32) {
        self.items.push(Item::Stmt(LD_W_ABS, off));
    }
    fn and(&mut self, k: u32) {
        self.items.push(Item::Stmt(AND, k));
    }
    fn ret(&mut self, a: Action) {
        self.items.push(Item::Stmt(RET, a.ret()));
    }
    /// Conditional jump; `None` means the next instruction.
    fn jump(&mut self, code: u16, k: u32, jt: Option<Label>, jf: Option<Label>) {
        let next = if jt.is_none() || jf.is_none() {
            Some(self.label())
        } else {
            None
        };
        let t = jt.or(next).unwrap_or_default();
        let f = jf.or(next).unwrap_or_default();
        self.items.push(Item::Jump(code, k, t, f));
        if let Some(n) = next {
            self.mark(n);
        }
    }

    fn positions(&self) -> (Vec<usize>, Vec<usize>) {
        let mut at = vec![usize::MAX; self.labels];
        let mut pos = Vec::with_capacity(self.items.len());
        let mut n = 0;
        for it in &self.items {
            pos.push(n);
            match it {
                Item::Mark(l) => at[*l] = n,
                _ => n += 1,
            }
        }
        (at, pos)
    }

    fn finish(mut self) -> Result<Vec<libc::sock_filter>, String> {
        loop {
            let (at, pos) = self.positions();
            let far = self.items.iter().enumerate().find_map(|(i, it)| match it {
                Item::Jump(_, _, t, f)
                    if at[*t].saturating_sub(pos[i] + 1) > 255
                        || at[*f].saturating_sub(pos[i] + 1) > 255 =>
                {
                    Some(i)
                }
                _ => None,
            });
            let Some(i) = far else { break };
            let Item::Jump(code, k, t, f) = self.items[i] else {
                break;
            };
            let (lt, lf) = (self.label(), self.label());
            self.items[i] = Item::Jump(code, k, lt, lf);
            for (n, it) in [Item::Mark(lt), Item::Ja(t), Item::Mark(lf), Item::Ja(f)]
                .into_iter()
                .enumerate()
            {
                self.items.insert(i + 1 + n, it);
            }
        }
        let (at, pos) = self.positions();
        let mut out = Vec::new();
        for (i, it) in self.items.iter().enumerate() {
            let here = pos[i] + 1;
            let rel = |l: Label| -> Result<usize, String> {
                at[l]
                    .checked_sub(here)
                    .ok_or_else(|| "seccomp compiler: backward jump".to_string())
            };
            let (code, jt, jf, k) = match it {
                Item::Mark(_) => continue,
                Item::Stmt(c, k) => (*c, 0, 0, *k),
                Item::Ja(l) => (JA, 0, 0, rel(*l)? as u32),
                Item::Jump(c, k, t, f) => (*c, rel(*t)? as u8, rel(*f)? as u8, *k),
            };
            out.push(libc::sock_filter { code, jt, jf, k });
        }
        if out.len() > MAX_INSNS {
            return Err(format!(
                "seccomp profile too large: {} BPF instructions (the kernel takes {MAX_INSNS})",
                out.len()
            ));
        }
        Ok(out)
    }
}

/// Argument conditions (all must hold) and the action when they do.
type ArgRule = (Vec<Cond>, Action);

/// What a syscall number does on one architecture.
#[derive(Clone, PartialEq)]
enum Outcome {
    Always(Action),
    /// (conditions, action) tried in order, then the fallback.
    Rules(Vec<ArgRule>, Action),
}

fn has_cap(caps: u64, name: &str) -> bool {
    crate::runtime::caps::bit_of(name).is_some_and(|b| caps & b != 0)
}

/// dockerd's include/exclude test, against the host's architecture.
fn applies(r: &Rule, native: Arch, caps: u64, kernel: (u32, u32)) -> bool {
    let inc = &r.includes;
    let exc = &r.excludes;
    if !inc.arches.is_empty() && !inc.arches.iter().any(|a| a == native.go_name()) {
        return false;
    }
    if !inc.caps.iter().all(|c| has_cap(caps, c)) {
        return false;
    }
    if inc.min_kernel.is_some_and(|k| kernel < k) {
        return false;
    }
    if exc.arches.iter().any(|a| a == native.go_name()) || exc.caps.iter().any(|c| has_cap(caps, c))
    {
        return false;
    }
    exc.min_kernel.is_none_or(|k| kernel < k)
}

/// runc's reading of a rule's arguments: all must hold, except when one
/// argument index repeats, where each condition is a rule of its own.
fn alternatives(args: &[Cond]) -> Vec<Vec<Cond>> {
    let repeats = args
        .iter()
        .enumerate()
        .any(|(i, a)| args[..i].iter().any(|b| b.index == a.index));
    if repeats {
        args.iter().map(|a| vec![*a]).collect()
    } else {
        vec![args.to_vec()]
    }
}

/// Per architecture: (number, outcome) for the numbers the profile names
/// (a few hundred: searched linearly, which keeps the binary small), and
/// the highest number named.
fn outcomes(
    p: &Profile,
    arch: Arch,
    native: Arch,
    caps: u64,
    kernel: (u32, u32),
) -> (Vec<(u32, Outcome)>, Option<u32>) {
    let mut rules: Vec<(u32, Vec<ArgRule>, Option<Action>)> = Vec::new();
    let mut max = None;
    for r in p.rules.iter().filter(|r| applies(r, native, caps, kernel)) {
        for nr in r.names.iter().filter_map(|n| arch.syscall(n)) {
            // arm's private calls (0x0f0000+) would hide every newer
            // generic syscall from the ENOSYS rule.
            if arch != Arch::Arm || nr < ARM_PRIVATE {
                max = max.max(Some(nr));
            }
            let i = match rules.iter().position(|e| e.0 == nr) {
                Some(i) => i,
                None => {
                    rules.push((nr, Vec::new(), None));
                    rules.len() - 1
                }
            };
            let e = &mut rules[i];
            if r.args.is_empty() {
                e.2.get_or_insert(r.action);
            } else {
                for alt in alternatives(&r.args) {
                    e.1.push((alt, r.action));
                }
            }
        }
    }
    let out = rules
        .into_iter()
        .map(|(nr, conds, always)| {
            let o = match (conds.is_empty(), always) {
                (true, Some(a)) => Outcome::Always(a),
                (_, a) => Outcome::Rules(conds, a.unwrap_or(p.default)),
            };
            (nr, o)
        })
        .collect();
    (out, max)
}

/// Branch to `fail` unless the argument test holds; falls through if it does.
fn cond(asm: &mut Asm, c: &Cond, wide: bool, fail: Label) {
    let (vh, vl) = ((c.value >> 32) as u32, c.value as u32);
    let pass = asm.label();
    let hi = |asm: &mut Asm| asm.ld(off_arg(c.index, true));
    let lo = |asm: &mut Asm| asm.ld(off_arg(c.index, false));
    match c.op {
        Op::Eq | Op::Ne => {
            // Eq: both words equal. Ne: either differs.
            let (on_eq, on_ne) = if c.op == Op::Eq {
                (None, Some(fail))
            } else {
                (Some(fail), Some(pass))
            };
            if wide {
                hi(asm);
                asm.jump(
                    JEQ,
                    vh,
                    None,
                    if c.op == Op::Eq {
                        Some(fail)
                    } else {
                        Some(pass)
                    },
                );
            }
            lo(asm);
            asm.jump(JEQ, vl, on_eq, on_ne);
        }
        Op::MaskedEq => {
            let (mh, ml) = ((c.value >> 32) as u32, c.value as u32);
            let (dh, dl) = ((c.value_two >> 32) as u32, c.value_two as u32);
            if wide {
                hi(asm);
                asm.and(mh);
                asm.jump(JEQ, dh, None, Some(fail));
            }
            lo(asm);
            asm.and(ml);
            asm.jump(JEQ, dl, None, Some(fail));
        }
        Op::Gt | Op::Ge | Op::Lt | Op::Le => {
            // v > c (or >=): high word greater wins, equal decides on the low.
            // v < c is !(v >= c), v <= c is !(v > c).
            let strict = matches!(c.op, Op::Gt | Op::Le);
            let greater_passes = matches!(c.op, Op::Gt | Op::Ge);
            let (on_greater, on_less) = if greater_passes {
                (pass, fail)
            } else {
                (fail, pass)
            };
            if wide {
                hi(asm);
                asm.jump(JGT, vh, Some(on_greater), None);
                asm.jump(JEQ, vh, None, Some(on_less));
            }
            lo(asm);
            let code = if strict { JGT } else { JGE };
            asm.jump(code, vl, Some(on_greater), Some(on_less));
        }
    }
    asm.mark(pass);
}

/// One architecture's block; the accumulator holds the syscall number.
fn arch_block(asm: &mut Asm, p: &Profile, arch: Arch, native: Arch, caps: u64, kernel: (u32, u32)) {
    let (map, max) = outcomes(p, arch, native, caps, kernel);
    let wide = !arch.is_32bit();
    let enosys = !matches!(p.default, Action::Allow | Action::Log);
    if let (Some(max), true) = (max, enosys) {
        let ok = asm.label();
        if arch == Arch::Arm {
            asm.jump(JGE, ARM_PRIVATE, Some(ok), None);
        }
        asm.jump(JGT, max, None, Some(ok));
        asm.ret(Action::Errno(ENOSYS));
        asm.mark(ok);
    }
    // Ascending runs over the numbers this architecture has.
    let mut runs: Vec<(u32, u32, Outcome)> = Vec::new();
    // A number left to the default in between breaks a run.
    let mut broken = true;
    for nr in arch.numbers() {
        let Some((_, o)) = map.iter().find(|e| e.0 == nr) else {
            broken = true;
            continue;
        };
        match (runs.last_mut(), o) {
            (Some((_, hi, Outcome::Always(a))), Outcome::Always(b)) if !broken && a == b => {
                *hi = nr;
            }
            _ => runs.push((nr, nr, o.clone())),
        }
        broken = false;
    }
    for (lo, hi, o) in runs {
        let next = asm.label();
        let def = asm.label();
        asm.jump(JGT, hi, Some(next), None);
        asm.jump(JGE, lo, None, Some(def));
        match o {
            Outcome::Always(a) => asm.ret(a),
            Outcome::Rules(rules, fallback) => {
                for (conds, action) in rules {
                    let fail = asm.label();
                    for c in &conds {
                        cond(asm, c, wide, fail);
                    }
                    asm.ret(action);
                    asm.mark(fail);
                    asm.ld(OFF_NR);
                }
                asm.ret(fallback);
            }
        }
        asm.mark(def);
        asm.ret(p.default);
        asm.mark(next);
    }
    asm.ret(p.default);
}

/// The program for `p` on a `native` host, for a process holding `caps`,
/// on kernel `kernel` (major, minor).
pub fn compile(
    p: &Profile,
    native: Arch,
    caps: u64,
    kernel: (u32, u32),
) -> Result<Vec<libc::sock_filter>, String> {
    let arches = p.arches_for(native);
    let mut asm = Asm::default();
    let kill = Action::KillProcess;
    asm.ld(OFF_ARCH);
    let mut audits: Vec<u32> = Vec::new();
    for a in &arches {
        if !audits.contains(&a.audit()) {
            audits.push(a.audit());
        }
    }
    let blocks: Vec<(u32, Label)> = audits.iter().map(|au| (*au, asm.label())).collect();
    for (au, l) in &blocks {
        asm.jump(JEQ, *au, Some(*l), None);
    }
    asm.ret(kill);
    for (au, l) in blocks {
        asm.mark(l);
        asm.ld(OFF_NR);
        let here: Vec<Arch> = arches.iter().copied().filter(|a| a.audit() == au).collect();
        if au == Arch::X86_64.audit() {
            // x86_64 and x32 share the audit arch; the x32 bit tells them apart.
            let x32 = asm.label();
            asm.jump(JGE, X32_SYSCALL_BIT, Some(x32), None);
            if here.contains(&Arch::X86_64) {
                arch_block(&mut asm, p, Arch::X86_64, native, caps, kernel);
            } else {
                asm.ret(kill);
            }
            asm.mark(x32);
            if here.contains(&Arch::X32) {
                arch_block(&mut asm, p, Arch::X32, native, caps, kernel);
            } else {
                asm.ret(kill);
            }
        } else {
            arch_block(&mut asm, p, here[0], native, caps, kernel);
        }
    }
    asm.finish()
}
