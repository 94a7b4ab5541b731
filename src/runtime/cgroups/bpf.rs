//! cgroup v2 device access: a `BPF_PROG_TYPE_CGROUP_DEVICE` program built
//! from the allow-list (runc's devicefilter, reduced to allow rules over a
//! default deny), loaded and attached with bpf(2). No libbpf, no C.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::{io_err, CgroupError, DeviceRule};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
// access_type = (access << 16) | type
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Insn {
    code: u8,
    regs: u8, // dst | src << 4
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}
/// r_dst = *(u32 *)(r_src + off)
const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
/// w_dst &= imm
const fn and32(dst: u8, imm: i32) -> Insn {
    insn(0x54, dst, 0, 0, imm)
}
/// w_dst >>= imm
const fn rsh32(dst: u8, imm: i32) -> Insn {
    insn(0x74, dst, 0, 0, imm)
}
/// w_dst = w_src
const fn mov32_reg(dst: u8, src: u8) -> Insn {
    insn(0xbc, dst, src, 0, 0)
}
/// r_dst = imm
const fn mov64(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// if r_dst != imm goto pc + off
const fn jne(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}
const EXIT: Insn = insn(0x95, 0, 0, 0, 0);

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |a, c| {
        a | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// The program: allow (return 1) when any allow rule matches, else deny.
/// Deny rules are not needed over a default deny and are ignored; a lone
/// `a` allow rule allows everything.
pub(super) fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        ldx_w(2, 1, 0), // r2 = access_type
        and32(2, 0xffff),
        ldx_w(3, 1, 0), // r3 = access
        rsh32(3, 16),
        ldx_w(4, 1, 4), // r4 = major
        ldx_w(5, 1, 8), // r5 = minor
    ];
    for r in rules.iter().filter(|r| r.allow) {
        if r.kind == 'a' {
            p.extend([mov64(0, 1), EXIT]);
            return p;
        }
        let mut block: Vec<Insn> = Vec::new();
        // Each check jumps past the end of this block on mismatch; offsets
        // are patched once the block's length is known.
        let ty = if r.kind == 'b' { DEV_BLOCK } else { DEV_CHAR };
        block.push(jne(2, ty, 0));
        let acc = access_bits(&r.access);
        if acc != ACC_READ | ACC_WRITE | ACC_MKNOD {
            // Requested access must be within the rule's: (r3 & ~acc) == 0.
            block.push(mov32_reg(1, 3));
            block.push(and32(1, !acc & 7));
            block.push(jne(1, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(jne(4, m as i32, 0));
        }
        if let Some(m) = r.minor {
            block.push(jne(5, m as i32, 0));
        }
        block.push(mov64(0, 1));
        block.push(EXIT);
        let len = block.len();
        for (i, ins) in block.iter_mut().enumerate() {
            if ins.code == 0x55 {
                ins.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.extend([mov64(0, 0), EXIT]);
    p
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
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
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<i32> {
    // SAFETY: attr is a properly laid out, fully initialised bpf_attr
    // prefix; the kernel reads at most size_of::<T>() bytes from it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r as i32)
    }
}

fn load(insns: &[Insn], with_log: bool) -> std::io::Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; if with_log { 16384 } else { 0 }];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    if with_log {
        attr.log_level = 1;
        attr.log_size = log.len() as u32;
        attr.log_buf = log.as_mut_ptr() as u64;
    }
    attr.prog_name[..7].copy_from_slice(b"coracle");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        // SAFETY: a new fd the kernel just returned, owned by nobody else.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd) }),
        Err(e) => {
            if with_log {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let verifier = String::from_utf8_lossy(&log[..end]);
                log::warn!("cgroup device program rejected: {e}: {verifier}");
            }
            Err(e)
        }
    }
}

/// Load the program for `rules` and attach it to the cgroup `dir`,
/// replacing the one attached before (single-program mode).
pub(super) fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    let insns = program(rules);
    let prog = load(&insns, false).or_else(|e| match e.raw_os_error() {
        // Load again with the verifier's log, only to say why.
        Some(libc::EINVAL) | Some(libc::EACCES) => load(&insns, true),
        _ => Err(e),
    });
    let prog = prog.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) | Some(libc::EINVAL) => {
            CgroupError::NotSupported("device access rules (kernel without cgroup eBPF)".into())
        }
        _ => io_err(dir, e),
    })?;
    let cg = std::fs::File::open(dir).map_err(|e| io_err(dir, e))?;
    let mut att = ProgAttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut att).map_err(|e| io_err(dir, e))?;
    Ok(())
}
