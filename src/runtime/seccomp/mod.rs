//! Seccomp without libseccomp: profiles (dockerd's default built in as
//! data, or a user's JSON), compiled by `bpf.rs` into a classic BPF program
//! for the running architecture, installed in the container's process.

pub mod bpf;
pub mod default;
pub mod install;
pub mod profile;
pub mod syscalls;

#[cfg(test)]
mod tests;

use super::errors::LaunchError;
pub use install::{supported, Confine};
pub use profile::Profile;

/// The architectures a filter can cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    X86,
    X32,
    Aarch64,
    Arm,
}

/// Set in an x32 syscall's number (its audit arch is x86_64's).
pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

impl Arch {
    /// The running architecture, if coracle can filter for it.
    pub fn native() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "x86" => Some(Arch::X86),
            "aarch64" => Some(Arch::Aarch64),
            "arm" => Some(Arch::Arm),
            _ => None,
        }
    }

    pub fn from_scmp(name: &str) -> Option<Arch> {
        match name {
            "SCMP_ARCH_X86_64" => Some(Arch::X86_64),
            "SCMP_ARCH_X86" => Some(Arch::X86),
            "SCMP_ARCH_X32" => Some(Arch::X32),
            "SCMP_ARCH_AARCH64" => Some(Arch::Aarch64),
            "SCMP_ARCH_ARM" => Some(Arch::Arm),
            _ => None,
        }
    }

    /// Go's name for it, as profiles' `includes.arches` spell it.
    pub fn go_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::X86 => "386",
            Arch::X32 => "x32",
            Arch::Aarch64 => "arm64",
            Arch::Arm => "arm",
        }
    }

    /// `AUDIT_ARCH_*`, what `seccomp_data.arch` holds.
    pub fn audit(self) -> u32 {
        match self {
            Arch::X86_64 | Arch::X32 => 0xC000_003E,
            Arch::X86 => 0x4000_0003,
            Arch::Aarch64 => 0xC000_00B7,
            Arch::Arm => 0x4000_0028,
        }
    }

    /// Arguments are 32 bits wide: only the low word is compared.
    pub fn is_32bit(self) -> bool {
        matches!(self, Arch::X86 | Arch::Arm)
    }

    /// Its numbers; empty for an architecture this build cannot run on
    /// (only the native one and its compat modes are built in).
    fn table(self) -> &'static [u16] {
        match self {
            #[cfg(any(test, target_arch = "x86_64"))]
            Arch::X86_64 => &syscalls::X86_64,
            #[cfg(any(test, target_arch = "x86_64", target_arch = "x86"))]
            Arch::X86 => &syscalls::X86,
            #[cfg(any(test, target_arch = "x86_64"))]
            Arch::X32 => &syscalls::X32,
            #[cfg(any(test, target_arch = "aarch64"))]
            Arch::Aarch64 => &syscalls::AARCH64,
            #[cfg(any(test, target_arch = "aarch64", target_arch = "arm"))]
            Arch::Arm => &syscalls::ARM,
            #[allow(unreachable_patterns)]
            _ => &[],
        }
    }

    fn decode(self, v: u16) -> u32 {
        match self {
            Arch::Arm if v >= 0xF000 => 0x000F_0000 + u32::from(v - 0xF000),
            Arch::X32 => X32_SYSCALL_BIT | u32::from(v),
            _ => u32::from(v),
        }
    }

    /// The number `seccomp_data.nr` holds for `name`, if it exists here.
    pub fn syscall(self, name: &str) -> Option<u32> {
        let i = syscalls::NAMES.split(' ').position(|n| n == name)?;
        let v = *self.table().get(i)?;
        (v != syscalls::NONE).then(|| self.decode(v))
    }

    /// Every syscall number this architecture has, ascending.
    pub fn numbers(self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .table()
            .iter()
            .filter(|n| **n != syscalls::NONE)
            .map(|n| self.decode(*n))
            .collect();
        crate::sort::sort(&mut v);
        v.dedup();
        v
    }
}

/// A container's seccomp setting, from `--security-opt seccomp=...`.
#[derive(Debug, Clone)]
pub enum Seccomp {
    Unconfined,
    /// dockerd's default profile.
    Builtin,
    Custom(Box<Profile>),
}

/// The running kernel's (major, minor).
fn kernel() -> (u32, u32) {
    nix::sys::utsname::uname()
        .ok()
        .and_then(|u| profile::kernel_version(&u.release().to_string_lossy()))
        .unwrap_or((0, 0))
}

/// The BPF program for a process holding capabilities `caps`, or None
/// when unconfined. Runs in the daemon, before the fork.
pub fn filter_for(s: &Seccomp, caps: u64) -> Result<Option<Vec<libc::sock_filter>>, LaunchError> {
    let built;
    let p = match s {
        Seccomp::Unconfined => return Ok(None),
        Seccomp::Builtin => {
            built = default::builtin();
            &built
        }
        Seccomp::Custom(p) => p.as_ref(),
    };
    let Some(native) = Arch::native().filter(|_| supported()) else {
        return match s {
            // dockerd runs without the default profile where it cannot apply it.
            Seccomp::Builtin => Ok(None),
            _ if !supported() => Err(LaunchError::Setup(
                "seccomp is not enabled in your kernel, cannot run a custom seccomp profile".into(),
            )),
            _ => Err(LaunchError::Setup(format!(
                "seccomp profiles are not supported by coracle on {}",
                std::env::consts::ARCH
            ))),
        };
    };
    if matches!(s, Seccomp::Builtin) {
        return builtin_cached(caps, || bpf::compile(p, native, caps, kernel())).map(Some);
    }
    bpf::compile(p, native, caps, kernel())
        .map(Some)
        .map_err(LaunchError::Setup)
}

/// The default profile's program depends only on the capability set (the
/// architecture and kernel are the daemon's own): compiled once per set,
/// not at every start. A few sets at most are kept.
fn builtin_cached(
    caps: u64,
    compile: impl FnOnce() -> Result<Vec<libc::sock_filter>, String>,
) -> Result<Vec<libc::sock_filter>, LaunchError> {
    use std::sync::Mutex;
    static CACHE: Mutex<Vec<(u64, Vec<libc::sock_filter>)>> = Mutex::new(Vec::new());
    let hit = CACHE
        .lock()
        .ok()
        .and_then(|c| c.iter().find(|(k, _)| *k == caps).map(|(_, f)| f.clone()));
    if let Some(f) = hit {
        return Ok(f);
    }
    let f = compile().map_err(LaunchError::Setup)?;
    if let Ok(mut c) = CACHE.lock() {
        if c.len() >= 8 {
            c.remove(0);
        }
        c.push((caps, f.clone()));
    }
    Ok(f)
}
