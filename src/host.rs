//! Facts about the host, read from /proc and /sys, for `/info` and
//! `/version`. Read on demand: nothing here is cached across requests except
//! what never changes.

use std::path::Path;

pub struct Uname {
    pub kernel: String,
    pub machine: String,
    pub hostname: String,
}

pub fn uname() -> Uname {
    match nix::sys::utsname::uname() {
        Ok(u) => Uname {
            kernel: u.release().to_string_lossy().into_owned(),
            machine: u.machine().to_string_lossy().into_owned(),
            hostname: u.nodename().to_string_lossy().into_owned(),
        },
        Err(_) => Uname {
            kernel: String::new(),
            machine: std::env::consts::ARCH.to_string(),
            hostname: String::new(),
        },
    }
}

/// Go's name for the architecture (what `docker version` shows as OS/Arch).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "mips" => "mips",
        other => other,
    }
}

/// (PRETTY_NAME, VERSION_ID) from os-release.
pub fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim_matches('"').to_string())
    };
    (
        field("PRETTY_NAME").unwrap_or_else(|| "Linux".to_string()),
        field("VERSION_ID").unwrap_or_default(),
    )
}

/// Id -> name from the host's `/etc/passwd` or `/etc/group` (the first
/// line for an id wins, as a lookup by id finds it). Missing file: empty.
pub fn account_names(path: &str) -> std::collections::HashMap<u32, String> {
    let mut out = std::collections::HashMap::new();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for l in text.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if let (Some(name), Some(Ok(id))) = (f.first(), f.get(2).map(|x| x.parse())) {
            out.entry(id).or_insert_with(|| name.to_string());
        }
    }
    out
}

pub fn mem_total_bytes() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0)
}

/// CPUs this process may run on (what Go's runtime.NumCPU reports).
pub fn ncpu() -> usize {
    nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .count()
        })
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn read_flag(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.trim() == "1")
}

pub fn ipv4_forwarding() -> bool {
    read_flag("/proc/sys/net/ipv4/ip_forward")
}

pub fn bridge_nf_iptables() -> bool {
    read_flag("/proc/sys/net/bridge/bridge-nf-call-iptables")
}

pub fn bridge_nf_ip6tables() -> bool {
    read_flag("/proc/sys/net/bridge/bridge-nf-call-ip6tables")
}

pub fn has_filesystem(name: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|t| t.lines().any(|l| l.split_whitespace().last() == Some(name)))
}

/// Name of the filesystem under `path` (dockerd's "Backing Filesystem").
pub fn backing_filesystem(path: &Path) -> String {
    use nix::sys::statfs::statfs;
    let Ok(st) = statfs(path) else {
        return "unknown".into();
    };
    // The field is i32 (glibc) or u32 (musl) on 32-bit boards, i64 (glibc) or u64 (musl) on
    // 64-bit ones; magics are 32 bits, so keep the low 32 (a sign-extended i32 included).
    #[allow(clippy::unnecessary_cast)]
    let magic = st.filesystem_type().0 as u64 & 0xffff_ffff;
    match magic {
        0xEF53 => "extfs",
        0x9123683E => "btrfs",
        0x58465342 => "xfs",
        0x01021994 => "tmpfs",
        0x794C7630 => "overlayfs",
        0x73717368 => "squashfs",
        0x4d44 => "vfat",
        0xF2F52010 => "f2fs",
        0x24051905 => "ubifs",
        0x2FC12FC1 => "zfs",
        0x858458f6 => "ramfs",
        _ => "unknown",
    }
    .to_string()
}

/// What the cgroup hierarchy offers, as `/info` reports it.
#[derive(Debug, Default, Clone)]
pub struct CgroupInfo {
    /// "1" or "2".
    pub version: &'static str,
    pub memory: bool,
    pub swap: bool,
    pub kernel_memory_tcp: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    pub cpu_shares: bool,
    pub cpuset: bool,
    pub pids: bool,
}

/// From the runtime's one probe of the host's cgroups (`HostSupport`).
pub fn cgroups() -> CgroupInfo {
    use crate::runtime::cgroups::{detect, CgroupVersion, HostSupport};
    let s = HostSupport::host();
    let v2 = detect() == CgroupVersion::V2;
    CgroupInfo {
        version: if v2 { "2" } else { "1" },
        memory: s.memory,
        swap: s.swap,
        kernel_memory_tcp: s.kernel_memory_tcp,
        cpu_cfs_period: s.cpu_cfs,
        cpu_cfs_quota: s.cpu_cfs,
        cpu_shares: s.cpu_shares,
        cpuset: s.cpuset,
        pids: s.pids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_real_host_facts() {
        assert!(ncpu() >= 1);
        assert!(mem_total_bytes() > 0);
        assert!(!uname().kernel.is_empty());
        assert!(has_filesystem("proc"));
        assert!(matches!(cgroups().version, "1" | "2"));
        assert_ne!(backing_filesystem(Path::new("/proc")), "");
    }
}
