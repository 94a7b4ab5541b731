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

/// One `ps -ef` row (UID PID PPID C STIME TTY TIME CMD) for a process, read
/// from /proc, for `docker top`; user names from `passwd` (the host's
/// /etc/passwd, read once per request by the caller).
pub fn process_row(pid: i32, passwd: &str) -> Option<serde_json::Value> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_string();
    let fields: Vec<&str> = stat.get(close + 2..)?.split_whitespace().collect();
    let num = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ppid = num(1);
    let tty_nr = num(4);
    let (utime, stime, start) = (num(11), num(12), num(19));
    let hz = 100;
    let cpu_secs = (utime + stime) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid: u32 = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let user = passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f[0].to_string())
        })
        .unwrap_or_else(|| uid.to_string());
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ")
    };
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("btime"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let started = boot + start / hz;
    let hm = started % 86_400;
    let tty = if tty_nr == 0 {
        "?".to_string()
    } else {
        let major = (tty_nr >> 8) & 0xfff;
        let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
        if major == 136 {
            format!("pts/{minor}")
        } else {
            format!("tty{minor}")
        }
    };
    Some(serde_json::json!([
        user,
        pid.to_string(),
        ppid.to_string(),
        "0",
        format!("{:02}:{:02}", hm / 3600, hm / 60 % 60),
        tty,
        format!(
            "{:02}:{:02}:{:02}",
            cpu_secs / 3600,
            cpu_secs / 60 % 60,
            cpu_secs % 60
        ),
        cmd,
    ]))
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
