//! The compiled BPF run by a small classic-BPF interpreter against a table
//! of (arch, syscall, args) -> expected action.

use super::bpf::{compile, MAX_INSNS};
use super::default::builtin;
use super::profile::{parse, Action};
use super::{Arch, X32_SYSCALL_BIT};
use crate::runtime::caps;

/// Runs `prog` on a `seccomp_data` built from (arch, nr, args).
fn run(prog: &[libc::sock_filter], audit: u32, nr: u32, args: [u64; 6]) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_le_bytes());
    data[4..8].copy_from_slice(&audit.to_le_bytes());
    for (i, a) in args.iter().enumerate() {
        data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
    }
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let ins = prog[pc];
        pc += 1;
        let k = ins.k;
        match ins.code {
            0x20 => {
                let o = k as usize;
                assert!(o + 4 <= 64 && o.is_multiple_of(4), "bad load offset {o}");
                acc = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
            }
            0x54 => acc &= k,
            0x06 => return k,
            0x05 => pc += k as usize,
            0x15 | 0x25 | 0x35 => {
                let t = match ins.code {
                    0x15 => acc == k,
                    0x25 => acc > k,
                    _ => acc >= k,
                };
                pc += usize::from(if t { ins.jt } else { ins.jf });
            }
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

const ALLOW: u32 = 0x7fff_0000;
const EPERM: u32 = 0x0005_0001;
const ENOSYS: u32 = 0x0005_0026;
const KILL: u32 = 0x8000_0000;

fn caps_default() -> u64 {
    caps::resolve(false, &[], &[], caps::last_cap()).unwrap()
}

fn nr(arch: Arch, name: &str) -> u32 {
    arch.syscall(name)
        .unwrap_or_else(|| panic!("{name} on {arch:?}"))
}

/// (native, the syscall's arch, caps (0: Docker's default set), name, args, expected).
type Case = (Arch, Arch, u64, &'static str, [u64; 6], u32);

#[test]
fn default_profile_table() {
    let p = builtin();
    let admin = caps_default() | caps::bit_of("SYS_ADMIN").unwrap();
    let ptrace_cap = caps_default() | caps::bit_of("SYS_PTRACE").unwrap();
    let ns = 0x1000_0000u64; // CLONE_NEWUSER
    let thread = 0x003d_0f00u64; // what glibc's pthread_create passes
    #[rustfmt::skip]
    let table: &[Case] = &[
        // (native, syscall's arch, caps, name, args, expected)
        (Arch::X86_64, Arch::X86_64, 0, "read", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "openat", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "getdents64", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "mount", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, admin, "mount", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "unshare", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "keyctl", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "add_key", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "io_uring_setup", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "perf_event_open", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "kexec_load", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "ptrace", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "kcmp", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86_64, ptrace_cap, "kcmp", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "arch_prctl", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "clone", [thread, 0, 0, 0, 0, 0], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "clone", [ns | 0x11, 0, 0, 0, 0, 0], EPERM),
        (Arch::X86_64, Arch::X86_64, admin, "clone", [ns, 0, 0, 0, 0, 0], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "clone3", [0; 6], ENOSYS),
        (Arch::X86_64, Arch::X86_64, admin, "clone3", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "socket", [1, 1, 0, 0, 0, 0], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "socket", [38, 5, 0, 0, 0, 0], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "socket", [39, 5, 0, 0, 0, 0], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "socket", [40, 1, 0, 0, 0, 0], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "socket", [41, 1, 0, 0, 0, 0], ALLOW),
        // The high word counts on a 64-bit architecture.
        (Arch::X86_64, Arch::X86_64, 0, "socket", [(1 << 32) | 40, 1, 0, 0, 0, 0], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "personality", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "personality", [0xffff_ffff, 0, 0, 0, 0, 0], ALLOW),
        (Arch::X86_64, Arch::X86_64, 0, "personality", [0x0040_0000, 0, 0, 0, 0, 0], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "personality", [(1 << 32) | 8, 0, 0, 0, 0, 0], EPERM),
        (Arch::X86_64, Arch::X86_64, 0, "removexattrat", [0; 6], ALLOW),
        // i386 on an x86_64 host.
        (Arch::X86_64, Arch::X86, 0, "read", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86, 0, "socketcall", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86, 0, "mount", [0; 6], EPERM),
        (Arch::X86_64, Arch::X86, 0, "modify_ldt", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86, 0, "clock_gettime64", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X86, 0, "socket", [(1 << 32) | 40, 1, 0, 0, 0, 0], EPERM),
        // x32.
        (Arch::X86_64, Arch::X32, 0, "read", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X32, 0, "rt_sigaction", [0; 6], ALLOW),
        (Arch::X86_64, Arch::X32, 0, "unshare", [0; 6], EPERM),
        (Arch::X86_64, Arch::X32, 0, "clone", [ns, 0, 0, 0, 0, 0], EPERM),
        // aarch64 and its arm compat mode.
        (Arch::Aarch64, Arch::Aarch64, 0, "read", [0; 6], ALLOW),
        (Arch::Aarch64, Arch::Aarch64, 0, "openat", [0; 6], ALLOW),
        (Arch::Aarch64, Arch::Aarch64, 0, "keyctl", [0; 6], EPERM),
        (Arch::Aarch64, Arch::Aarch64, 0, "clone", [ns, 0, 0, 0, 0, 0], EPERM),
        (Arch::Aarch64, Arch::Aarch64, 0, "clone", [thread, 0, 0, 0, 0, 0], ALLOW),
        (Arch::Aarch64, Arch::Arm, 0, "read", [0; 6], ALLOW),
        (Arch::Aarch64, Arch::Arm, 0, "set_tls", [0; 6], ALLOW),
        (Arch::Aarch64, Arch::Arm, 0, "keyctl", [0; 6], EPERM),
        // armhf: the time64 calls a new libc uses are in the profile.
        (Arch::Arm, Arch::Arm, 0, "clock_gettime64", [0; 6], ALLOW),
        (Arch::Arm, Arch::Arm, 0, "futex_time64", [0; 6], ALLOW),
        (Arch::Arm, Arch::Arm, 0, "cacheflush", [0; 6], ALLOW),
        (Arch::Arm, Arch::Arm, 0, "arm_fadvise64_64", [0; 6], ALLOW),
        (Arch::Arm, Arch::Arm, 0, "mount", [0; 6], EPERM),
        (Arch::Arm, Arch::Arm, 0, "add_key", [0; 6], EPERM),
        (Arch::Arm, Arch::Arm, 0, "personality", [(1 << 32) | 8, 0, 0, 0, 0, 0], ALLOW),
    ];
    for (native, arch, extra, name, args, want) in table {
        let caps = if *extra == 0 { caps_default() } else { *extra };
        let prog = compile(&p, *native, caps, (6, 1)).unwrap();
        assert!(prog.len() <= MAX_INSNS);
        let got = run(&prog, arch.audit(), nr(*arch, name), *args);
        assert_eq!(got, *want, "{native:?} {arch:?} {name} {args:x?}");
    }
}

#[test]
fn newer_syscalls_answer_enosys() {
    let p = builtin();
    let caps = caps_default();
    for (native, arch) in [
        (Arch::X86_64, Arch::X86_64),
        (Arch::X86_64, Arch::X86),
        (Arch::Aarch64, Arch::Aarch64),
        (Arch::Arm, Arch::Arm),
    ] {
        let prog = compile(&p, native, caps, (6, 1)).unwrap();
        assert_eq!(run(&prog, arch.audit(), 999, [0; 6]), ENOSYS, "{arch:?}");
        // Older and unlisted: the default.
        let kexec = nr(arch, "kexec_load");
        assert_eq!(run(&prog, arch.audit(), kexec, [0; 6]), EPERM, "{arch:?}");
    }
    let prog = compile(&p, Arch::X86_64, caps, (6, 1)).unwrap();
    assert_eq!(
        run(&prog, Arch::X32.audit(), X32_SYSCALL_BIT | 999, [0; 6]),
        ENOSYS
    );
    // ptrace needs kernel 4.8.
    let old = compile(&p, Arch::X86_64, caps, (4, 4)).unwrap();
    assert_eq!(run(&old, Arch::X86_64.audit(), 101, [0; 6]), EPERM);
}

#[test]
fn foreign_arch_is_killed() {
    let prog = compile(&builtin(), Arch::X86_64, caps_default(), (6, 1)).unwrap();
    assert_eq!(run(&prog, Arch::Aarch64.audit(), 63, [0; 6]), KILL);
    let prog = compile(&builtin(), Arch::Arm, caps_default(), (6, 1)).unwrap();
    assert_eq!(run(&prog, Arch::X86.audit(), 3, [0; 6]), KILL);
}

#[test]
fn json_profile_conditions() {
    let json = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 13,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": null}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"name": "kill", "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 15, "op": "SCMP_CMP_LE"}]},
            {"names": ["mmap"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 2, "value": 4, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"},
                      {"index": 0, "value": 4096, "op": "SCMP_CMP_GE"}]},
            {"names": ["dup"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                      {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5,
             "args": [{"index": 0, "value": 3, "op": "SCMP_CMP_NE"}]},
            {"names": ["gettid"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 0, "value": 7, "op": "SCMP_CMP_LT"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["no_such_call"], "action": "SCMP_ACT_ALLOW"}
        ]
    }"#;
    let p = parse(json).unwrap();
    let prog = compile(&p, Arch::X86_64, caps_default(), (6, 1)).unwrap();
    let x = Arch::X86_64;
    let eacces = 0x0005_000d;
    let r = |name: &str, args: [u64; 6]| run(&prog, x.audit(), nr(x, name), args);
    assert_eq!(r("read", [0; 6]), ALLOW);
    assert_eq!(r("open", [0; 6]), eacces);
    assert_eq!(r("kill", [1, 15, 0, 0, 0, 0]), ALLOW);
    assert_eq!(r("kill", [1, 16, 0, 0, 0, 0]), eacces);
    assert_eq!(r("kill", [1, 1 << 32, 0, 0, 0, 0]), eacces);
    assert_eq!(r("mmap", [4096, 0, 3, 0, 0, 0]), ALLOW);
    assert_eq!(r("mmap", [4096, 0, 7, 0, 0, 0]), eacces);
    assert_eq!(r("mmap", [4095, 0, 3, 0, 0, 0]), eacces);
    assert_eq!(r("mmap", [1 << 40, 0, 3, 0, 0, 0]), ALLOW);
    // Two conditions on one argument are alternatives (runc).
    assert_eq!(r("dup", [1; 6]), ALLOW);
    assert_eq!(r("dup", [2; 6]), ALLOW);
    assert_eq!(r("dup", [3; 6]), eacces);
    assert_eq!(r("getpid", [4; 6]), 0x0005_0005);
    assert_eq!(r("getpid", [3; 6]), eacces);
    assert_eq!(r("getpid", [(1 << 32) | 3; 6]), 0x0005_0005);
    assert_eq!(r("gettid", [6; 6]), KILL);
    assert_eq!(r("gettid", [7; 6]), eacces);
    assert_eq!(r("mount", [0; 6]), eacces);
    // i386 is not in this profile's arches.
    assert_eq!(run(&prog, Arch::X86.audit(), 3, [0; 6]), KILL);
    assert_eq!(p.default, Action::Errno(13));
}

#[test]
fn json_profile_errors() {
    for (json, want) in [
        ("{", "EOF"),
        (
            r#"{"defaultAction": "SCMP_ACT_NOPE"}"#,
            "unknown seccomp action",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"], "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]}"#,
            "use either 'architectures' or 'archMap'",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}"#,
            "use either 'name' or 'names'",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
            "out of range",
        ),
        (
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["b"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}"#,
            "unknown seccomp operator",
        ),
    ] {
        let e = parse(json).unwrap_err();
        assert!(e.contains(want), "{json}: {e}");
    }
}

#[test]
fn far_jumps_are_hopped() {
    // Every other syscall allowed: hundreds of runs, jumps beyond 255.
    let names: Vec<String> = (0..300)
        .step_by(2)
        .filter_map(|n| {
            super::syscalls::NAMES
                .split(' ')
                .zip(super::syscalls::X86_64.iter())
                .find(|(_, v)| u32::from(**v) == n)
                .map(|(name, _)| format!("\"{name}\""))
        })
        .collect();
    let json = format!(
        r#"{{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{{"names": [{}], "action": "SCMP_ACT_ALLOW"}}]}}"#,
        names.join(",")
    );
    let p = parse(&json).unwrap();
    let prog = compile(&p, Arch::X86_64, caps_default(), (6, 1)).unwrap();
    assert!(prog.len() > 300);
    for n in 0..299u32 {
        let want = if n % 2 == 0 { ALLOW } else { EPERM };
        if Arch::X86_64.numbers().contains(&n) {
            assert_eq!(run(&prog, Arch::X86_64.audit(), n, [0; 6]), want, "nr {n}");
        }
    }
}

/// The default profile's cached program is the one a fresh compile gives,
/// per capability set: CAP_SYS_ADMIN opens mount/unshare, and the cache
/// must not hand a container the program of another set.
#[test]
fn default_profile_cache_is_per_capability_set() {
    use super::{filter_for, Seccomp};
    let Some(native) = Arch::native().filter(|_| super::supported()) else {
        return;
    };
    let plain = caps_default();
    let admin = plain | 1 << 21; // CAP_SYS_ADMIN
    let fresh = |c| compile(&builtin(), native, c, super::kernel()).unwrap();
    for caps in [plain, admin, plain, admin] {
        let got = filter_for(&Seccomp::Builtin, caps).unwrap().unwrap();
        let want = fresh(caps);
        let same = got.len() == want.len()
            && got
                .iter()
                .zip(&want)
                .all(|(a, b)| (a.code, a.jt, a.jf, a.k) == (b.code, b.jt, b.jf, b.k));
        assert!(same, "cached program for caps {caps:#x} differs");
        let mount = run(&got, native.audit(), nr(native, "mount"), [0; 6]);
        assert_eq!(mount == ALLOW, caps == admin, "mount for caps {caps:#x}");
    }
}
