//! Container cgroups, v1 (one hierarchy per controller) and v2 (unified),
//! the way dockerd's cgroupfs driver and runc lay them out: one directory
//! `<hierarchy>/<parent>/<id>` per container, `parent` defaulting to
//! `coracle`.
//!
//! Everything here is plain file I/O on cgroupfs; nothing spawns or blocks
//! for long. The only waits are bounded polls: freezing (up to 1 s) and
//! removing a directory the kernel still calls busy (about 100 ms).
//!
//! Layout of the code: this file holds what both versions share (errors,
//! the host's layout from `/proc/self/mountinfo`, Docker's resource
//! validation and warnings, the `Cgroup` facade); `v1.rs` and `v2.rs` hold
//! the per-version file names and write orders.
#![allow(dead_code)]

mod bpf;
mod v1;
mod v2;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

/// Default parent directory for container cgroups.
pub const DEFAULT_PARENT: &str = "coracle";

/// dockerd's `linuxMinMemory`: 6 MiB.
pub const MIN_MEMORY: i64 = 6 * 1024 * 1024;
const MIN_CPU_SHARES: i64 = 2;
const MAX_CPU_SHARES: i64 = 262_144;
/// NanoCpus are applied with this CFS period (µs), as dockerd does.
pub const NANO_CPUS_PERIOD: i64 = 100_000;
/// How long `freeze` waits for the kernel to report FROZEN.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long `remove` retries an rmdir the kernel calls busy.
const RMDIR_TIMEOUT: Duration = Duration::from_millis(100);
/// Sub-cgroups a container made itself are walked at most this deep.
const MAX_DEPTH: usize = 8;

// ---------------------------------------------------------------- errors

#[derive(Debug)]
pub enum CgroupError {
    /// The host cannot do this (controller not mounted, file absent); names
    /// the Docker field or the feature.
    NotSupported(String),
    /// A value Docker itself would refuse; the message is dockerd's.
    InvalidValue(String),
    /// `Memory` below 6 MiB (dockerd: "Minimum memory limit allowed is 6MB").
    MemoryTooLow,
    /// The cgroup still has processes, or did not freeze in time.
    Busy(String),
    /// A cgroupfs file or directory operation failed.
    Io(PathBuf, std::io::Error),
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupError::NotSupported(what) => {
                write!(f, "{what} is not supported by this host's cgroups")
            }
            CgroupError::InvalidValue(msg) => f.write_str(msg),
            CgroupError::MemoryTooLow => f.write_str("Minimum memory limit allowed is 6MB"),
            CgroupError::Busy(msg) => f.write_str(msg),
            CgroupError::Io(path, e) => write!(f, "cgroup {}: {e}", path.display()),
        }
    }
}

impl std::error::Error for CgroupError {}

fn io_err(path: &Path, e: std::io::Error) -> CgroupError {
    CgroupError::Io(path.to_path_buf(), e)
}

// ---------------------------------------------------------------- file helpers

/// Read a cgroup file, trimmed.
fn read_file(path: &Path) -> Result<String, CgroupError> {
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| io_err(path, e))?;
    Ok(s.trim().to_string())
}

/// Write a value to an existing cgroup file in one write(2), O_TRUNC like
/// runc (cgroupfs ignores it; plain files in fake roots need it). Never
/// creates the file: a missing interface file means the kernel does not offer it.
fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    log::debug!("cgroup write {} <- {value}", path.display());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(|e| io_err(path, e))?;
    f.write_all(value.as_bytes()).map_err(|e| io_err(path, e))
}

/// The value of `key` in a flat-keyed file ("oom_kill 3\n...").
fn keyed_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key))
            .then(|| it.next())
            .flatten()
            .and_then(|v| v.parse().ok())
    })
}

/// Pids in a `cgroup.procs` file and in those of sub-cgroups below `dir`.
fn collect_pids(dir: &Path, depth: usize, out: &mut BTreeSet<i32>) {
    if let Ok(text) = read_file(&dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    if depth >= MAX_DEPTH {
        return;
    }
    for sub in subdirs(dir) {
        collect_pids(&sub, depth + 1, out);
    }
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect()
}

/// rmdir `dir` and any sub-cgroups below it, deepest first. A missing
/// directory is success. EBUSY (tasks still leaving) is retried briefly.
fn remove_tree(dir: &Path, depth: usize) -> Result<(), CgroupError> {
    if depth < MAX_DEPTH {
        for sub in subdirs(dir) {
            remove_tree(&sub, depth + 1)?;
        }
    }
    let deadline = Instant::now() + RMDIR_TIMEOUT;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                let mut pids = BTreeSet::new();
                collect_pids(dir, 0, &mut pids);
                return Err(CgroupError::Busy(format!(
                    "cgroup {} is busy: {} process(es) remain",
                    dir.display(),
                    pids.len()
                )));
            }
            Err(e) => return Err(io_err(dir, e)),
        }
    }
}

/// Sleep a little, longer each round (0.1 ms doubling up to 10 ms).
fn backoff(round: &mut u32) {
    let us = 100u64 << (*round).min(7);
    std::thread::sleep(Duration::from_micros(us.min(10_000)));
    *round += 1;
}

fn signal_pids(pids: &[i32], sig: Signal) {
    for &pid in pids {
        if pid <= 0 {
            continue;
        }
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => log::warn!("cgroup kill_all: signal {sig} to pid {pid}: {e}"),
        }
    }
}

/// `NotSupported(field)` unless `ok`.
fn require(ok: bool, field: &str) -> Result<(), CgroupError> {
    if ok {
        Ok(())
    } else {
        Err(CgroupError::NotSupported(field.to_string()))
    }
}

/// `parent/id` checked: relative, no `.`/`..`, no empty parts, id one part.
fn relative_path(parent: &str, id: &str) -> Result<PathBuf, CgroupError> {
    let bad = |what: &str| CgroupError::InvalidValue(format!("invalid cgroup {what}"));
    let clean = |s: &str| -> bool {
        !s.is_empty()
            && !s.contains('\0')
            && Path::new(s)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
            && !s.split('/').any(|p| p.is_empty() || p == "." || p == "..")
    };
    if !clean(parent) {
        return Err(bad(&format!("parent {parent:?}")));
    }
    if !clean(id) || id.contains('/') {
        return Err(bad(&format!("name {id:?}")));
    }
    Ok(Path::new(parent).join(id))
}

// ---------------------------------------------------------------- layout

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// v1 controllers we create directories in.
pub const V1_CONTROLLERS: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

/// Where the host's cgroup hierarchies are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Controller name -> mount point of its hierarchy (co-mounted
    /// controllers such as `cpu,cpuacct` share one).
    V1 { mounts: BTreeMap<String, PathBuf> },
    /// The cgroup2 mount point.
    V2 { root: PathBuf },
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push((v & 0xff) as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct MountLine {
    root: String,
    mount_point: PathBuf,
    fs_type: String,
    super_opts: Vec<String>,
}

fn parse_mountinfo_line(line: &str) -> Option<MountLine> {
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split(' ').collect();
    let r: Vec<&str> = right.split(' ').collect();
    if l.len() < 6 || r.len() < 3 {
        return None;
    }
    Some(MountLine {
        root: unescape_mountinfo(l[3]),
        mount_point: PathBuf::from(unescape_mountinfo(l[4])),
        fs_type: r[0].to_string(),
        super_opts: r[2].split(',').map(str::to_string).collect(),
    })
}

impl Layout {
    /// The layout described by a `/proc/self/mountinfo` text. cgroup2 on
    /// `/sys/fs/cgroup` is the unified mode; otherwise any v1 controller
    /// hierarchy we use means v1 (hybrid hosts: the controllers live in v1,
    /// the cgroup2 mount beside them has none); otherwise a cgroup2 mount
    /// anywhere. `None` when no hierarchy is mounted.
    pub fn from_mountinfo(text: &str) -> Option<Layout> {
        let lines: Vec<MountLine> = text.lines().filter_map(parse_mountinfo_line).collect();
        if let Some(m) = lines
            .iter()
            .find(|m| m.fs_type == "cgroup2" && m.mount_point == Path::new("/sys/fs/cgroup"))
        {
            return Some(Layout::V2 {
                root: m.mount_point.clone(),
            });
        }
        let mut mounts: BTreeMap<String, PathBuf> = BTreeMap::new();
        let mut roots: BTreeMap<String, bool> = BTreeMap::new();
        for m in lines.iter().filter(|m| m.fs_type == "cgroup") {
            for c in m
                .super_opts
                .iter()
                .filter(|o| V1_CONTROLLERS.contains(&o.as_str()))
            {
                // Prefer a mount of the hierarchy's root over a bind mount of a subtree.
                let is_root = m.root == "/";
                if !mounts.contains_key(c) || (is_root && !roots.get(c).copied().unwrap_or(false)) {
                    mounts.insert(c.clone(), m.mount_point.clone());
                    roots.insert(c.clone(), is_root);
                }
            }
        }
        if !mounts.is_empty() {
            return Some(Layout::V1 { mounts });
        }
        lines
            .iter()
            .find(|m| m.fs_type == "cgroup2")
            .map(|m| Layout::V2 {
                root: m.mount_point.clone(),
            })
    }

    /// The host's layout, read from `/proc/self/mountinfo` once.
    pub fn host() -> Result<&'static Layout, CgroupError> {
        static HOST: OnceLock<Option<Layout>> = OnceLock::new();
        HOST.get_or_init(|| {
            let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            Layout::from_mountinfo(&text)
        })
        .as_ref()
        .ok_or_else(|| CgroupError::NotSupported("cgroups (no cgroup hierarchy mounted)".into()))
    }

    pub fn version(&self) -> CgroupVersion {
        match self {
            Layout::V1 { .. } => CgroupVersion::V1,
            Layout::V2 { .. } => CgroupVersion::V2,
        }
    }
}

/// The host's cgroup version (v1 also when nothing is mounted; `Layout::host`
/// tells that case apart).
pub fn detect() -> CgroupVersion {
    Layout::host()
        .map(Layout::version)
        .unwrap_or(CgroupVersion::V1)
}

// ---------------------------------------------------------------- resources

/// Docker `HostConfig` resource fields; 0 / empty / None = unset (leave
/// the current value alone, which on a new cgroup is "unlimited").
#[derive(Default, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Bytes.
    pub memory: i64,
    /// Memory plus swap, bytes; -1 = unlimited swap.
    pub memory_swap: i64,
    /// Soft limit, bytes.
    pub memory_reservation: i64,
    /// CPUs × 1e9.
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    /// µs per period; -1 = unlimited.
    pub cpu_quota: i64,
    /// µs.
    pub cpu_period: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    /// Some(n <= 0) = unlimited.
    pub pids_limit: Option<i64>,
    /// 10..=1000.
    pub blkio_weight: u16,
}

/// What the host's cgroups can enforce (dockerd's `sysinfo`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostSupport {
    pub memory: bool,
    pub swap: bool,
    pub memory_reservation: bool,
    pub cpu_shares: bool,
    pub cpu_cfs: bool,
    pub cpuset: bool,
    pub pids: bool,
    pub blkio_weight: bool,
    pub freezer: bool,
    pub devices: bool,
}

impl HostSupport {
    /// Probe the hierarchy roots of `layout`.
    pub fn probe(layout: &Layout) -> HostSupport {
        match layout {
            Layout::V1 { mounts } => v1::probe(mounts),
            Layout::V2 { root } => v2::probe(root),
        }
    }

    pub fn host() -> HostSupport {
        Layout::host().map(HostSupport::probe).unwrap_or_default()
    }
}

/// Limits after Docker's validation, in v1 terms; None = leave alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Plan {
    /// Bytes (≥ 6 MiB).
    memory: Option<i64>,
    /// Memory + swap bytes, or -1 unlimited.
    memory_swap: Option<i64>,
    memory_reservation: Option<i64>,
    cpu_shares: Option<i64>,
    /// µs or -1 unlimited.
    cpu_quota: Option<i64>,
    cpu_period: Option<i64>,
    cpuset_cpus: Option<String>,
    cpuset_mems: Option<String>,
    /// n > 0, or -1 unlimited ("max").
    pids_max: Option<i64>,
    blkio_weight: Option<u16>,
}

fn host_cpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// Validate like dockerd's `verifyPlatformContainerResources` and turn the
/// fields into concrete values. `swap_accounting` decides runc/dockerd's
/// default swap (2 × memory) when `memory_swap` is unset.
fn plan(r: &Resources, swap_accounting: bool, ncpu: i64) -> Result<Plan, CgroupError> {
    let inv = |m: String| Err(CgroupError::InvalidValue(m));
    let mut p = Plan::default();

    // memory
    if r.memory != 0 && r.memory < MIN_MEMORY {
        return Err(CgroupError::MemoryTooLow);
    }
    if r.memory > 0 && r.memory_swap > 0 && r.memory_swap < r.memory {
        return inv(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if r.memory_swap < -1 {
        return inv(format!("invalid memory swap limit {}", r.memory_swap));
    }
    if r.memory_reservation < 0 {
        return inv(format!(
            "invalid memory reservation {}",
            r.memory_reservation
        ));
    }
    if r.memory_reservation > 0 && r.memory_reservation < MIN_MEMORY {
        return inv("Minimum memory reservation allowed is 6MB".into());
    }
    if r.memory > 0 && r.memory_reservation > 0 && r.memory < r.memory_reservation {
        return inv(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        );
    }
    if r.memory > 0 {
        p.memory = Some(r.memory);
    }
    p.memory_swap = match r.memory_swap {
        0 if r.memory > 0 && swap_accounting => Some(r.memory.saturating_mul(2)),
        0 => None,
        s => Some(s),
    };
    if r.memory_reservation > 0 {
        p.memory_reservation = Some(r.memory_reservation);
    }

    // cpu
    if r.nano_cpus > 0 && r.cpu_period > 0 {
        return inv("Conflicting options: Nano CPUs and CPU Period cannot both be set".into());
    }
    if r.nano_cpus > 0 && r.cpu_quota > 0 {
        return inv("Conflicting options: Nano CPUs and CPU Quota cannot both be set".into());
    }
    if r.nano_cpus < 0 || r.nano_cpus > ncpu.saturating_mul(1_000_000_000) {
        return inv(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        ));
    }
    if r.cpu_period != 0 && !(1000..=1_000_000).contains(&r.cpu_period) {
        return inv(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        );
    }
    if r.cpu_quota > 0 && r.cpu_quota < 1000 {
        return inv("CPU cfs quota can not be less than 1ms (i.e. 1000)".into());
    }
    if r.cpu_quota < -1 {
        return inv(format!("invalid CPU cfs quota {}", r.cpu_quota));
    }
    if r.cpu_shares < 0 {
        return inv(format!(
            "invalid CPU shares ({}): value must be a positive integer",
            r.cpu_shares
        ));
    }
    if r.nano_cpus > 0 {
        let (quota, period) = nano_cpus_to_cfs(r.nano_cpus);
        if quota < 1000 {
            return inv(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            ));
        }
        p.cpu_quota = Some(quota);
        p.cpu_period = Some(period);
    } else {
        if r.cpu_quota != 0 {
            p.cpu_quota = Some(r.cpu_quota);
        }
        if r.cpu_period != 0 {
            p.cpu_period = Some(r.cpu_period);
        }
    }
    if r.cpu_shares > 0 {
        p.cpu_shares = Some(r.cpu_shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES));
    }

    // cpuset
    if !r.cpuset_cpus.is_empty() {
        if parse_cpu_list(&r.cpuset_cpus).is_none() {
            let v = &r.cpuset_cpus;
            return inv(format!(
                "Invalid value {v} for cpuset cpus: invalid format: {v}"
            ));
        }
        p.cpuset_cpus = Some(r.cpuset_cpus.clone());
    }
    if !r.cpuset_mems.is_empty() {
        if parse_cpu_list(&r.cpuset_mems).is_none() {
            let v = &r.cpuset_mems;
            return inv(format!(
                "Invalid value {v} for cpuset mems: invalid format: {v}"
            ));
        }
        p.cpuset_mems = Some(r.cpuset_mems.clone());
    }

    // pids, blkio
    p.pids_max = r.pids_limit.map(|n| if n <= 0 { -1 } else { n });
    if r.blkio_weight > 0 {
        if !(10..=1000).contains(&r.blkio_weight) {
            return inv("Range of blkio weight is from 10 to 1000".into());
        }
        p.blkio_weight = Some(r.blkio_weight);
    }
    Ok(p)
}

/// dockerd's create-time check of the resource fields (the same rules the
/// cgroup applies at start), and of a cpuset against the host's online CPUs
/// and memory nodes, so a bad value is refused before a container exists.
pub fn validate(r: &Resources) -> Result<(), CgroupError> {
    plan(r, false, host_cpus())?;
    let online = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if !r.cpuset_cpus.is_empty() {
        if let Some(avail) = online("/sys/devices/system/cpu/online") {
            check_cpuset(&r.cpuset_cpus, &avail, "CPUs")?;
        }
    }
    if !r.cpuset_mems.is_empty() {
        let avail = online("/sys/devices/system/node/online").unwrap_or_else(|| "0".into());
        check_cpuset(&r.cpuset_mems, &avail, "memory nodes")?;
    }
    Ok(())
}

/// NanoCpus -> (cfs quota, cfs period) in µs, as dockerd does.
pub fn nano_cpus_to_cfs(nano_cpus: i64) -> (i64, i64) {
    let quota = (nano_cpus as i128 * NANO_CPUS_PERIOD as i128 / 1_000_000_000) as i64;
    (quota, NANO_CPUS_PERIOD)
}

/// CPU shares -> cgroup v2 cpu.weight, runc's formula.
pub fn shares_to_weight(shares: i64) -> i64 {
    if shares <= 0 {
        return 0;
    }
    1 + ((shares.clamp(MIN_CPU_SHARES, MAX_CPU_SHARES) - 2) * 9999) / 262_142
}

/// blkio weight (10..1000) -> cgroup v2 io.weight (1..10000), runc's formula.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (u64::from(w.clamp(10, 1000)) - 10) * 9999 / 990
}

/// A cpuset list ("0-3,5"); None when malformed. Bounded to ids < 4096 so
/// a hostile "0-4294967295" costs nothing.
pub fn parse_cpu_list(s: &str) -> Option<BTreeSet<u32>> {
    let mut set = BTreeSet::new();
    let s = s.trim();
    if s.is_empty() {
        return Some(set);
    }
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let v = part.trim().parse::<u32>().ok()?;
                (v, v)
            }
        };
        if a > b || b >= 4096 {
            return None;
        }
        set.extend(a..=b);
    }
    Some(set)
}

/// dockerd's check that a requested cpuset is within what the parent has.
fn check_cpuset(requested: &str, available: &str, what: &str) -> Result<(), CgroupError> {
    let (Some(req), Some(avail)) = (parse_cpu_list(requested), parse_cpu_list(available)) else {
        return Ok(());
    };
    if avail.is_empty() || req.is_subset(&avail) {
        return Ok(());
    }
    Err(CgroupError::InvalidValue(format!(
        "Requested {what} are not available - requested {requested}, available: {available}"
    )))
}

/// Split `r` into what this host can honour and dockerd's warnings for the
/// rest. The daemon applies the first and shows the second.
pub fn adapt(r: &Resources, host: &HostSupport) -> (Resources, Vec<String>) {
    let mut r = r.clone();
    let mut w = Vec::new();
    if r.memory > 0 && !host.memory {
        w.push("Your kernel does not support memory limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        r.memory = 0;
        r.memory_swap = 0;
    }
    if r.memory > 0 && r.memory_swap != 0 && !host.swap {
        w.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        r.memory_swap = 0;
    }
    if r.memory_reservation > 0 && !host.memory_reservation {
        w.push("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        r.memory_reservation = 0;
    }
    if r.nano_cpus > 0 && !host.cpu_cfs {
        w.push("Your kernel does not support CPU cfs period/quota or the cgroup is not mounted. NanoCPUs discarded.".into());
        r.nano_cpus = 0;
    }
    if r.cpu_shares > 0 && !host.cpu_shares {
        w.push("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.".into());
        r.cpu_shares = 0;
    }
    if r.cpu_shares > 0 && r.cpu_shares < MIN_CPU_SHARES {
        w.push(format!(
            "Changing requested CPUShares of {} to minimum allowed of {MIN_CPU_SHARES}",
            r.cpu_shares
        ));
        r.cpu_shares = MIN_CPU_SHARES;
    }
    if r.cpu_shares > MAX_CPU_SHARES {
        w.push(format!(
            "Changing requested CPUShares of {} to maximum allowed of {MAX_CPU_SHARES}",
            r.cpu_shares
        ));
        r.cpu_shares = MAX_CPU_SHARES;
    }
    if r.cpu_period > 0 && !host.cpu_cfs {
        w.push("Your kernel does not support CPU cfs period or the cgroup is not mounted. Period discarded.".into());
        r.cpu_period = 0;
    }
    if r.cpu_quota > 0 && !host.cpu_cfs {
        w.push("Your kernel does not support CPU cfs quota or the cgroup is not mounted. Quota discarded.".into());
        r.cpu_quota = 0;
    }
    if (!r.cpuset_cpus.is_empty() || !r.cpuset_mems.is_empty()) && !host.cpuset {
        w.push(
            "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded."
                .into(),
        );
        r.cpuset_cpus.clear();
        r.cpuset_mems.clear();
    }
    if r.pids_limit.is_some_and(|n| n > 0) && !host.pids {
        w.push("Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. PIDs limit discarded.".into());
        r.pids_limit = None;
    }
    if r.blkio_weight > 0 && !host.blkio_weight {
        w.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        r.blkio_weight = 0;
    }
    (r, w)
}

/// What this host cannot honour of `r`, in dockerd's words.
pub fn warnings_for(r: &Resources) -> Vec<String> {
    adapt(r, &HostSupport::host()).1
}

// ---------------------------------------------------------------- devices

/// One device-cgroup rule, runc's/v1's `type major:minor access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    /// None = `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Some of "rwm".
    pub access: String,
}

impl DeviceRule {
    pub fn allow(kind: char, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: access.to_string(),
        }
    }
}

impl fmt::Display for DeviceRule {
    /// The v1 `devices.allow` / `devices.deny` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == 'a' {
            return f.write_str("a");
        }
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The allow-list for a non-privileged container (everything else denied):
/// mknod of any device, and use of null, zero, full, random, urandom, tty,
/// console, ptmx and the pty slaves. Append `--device` rules to it.
pub fn default_device_rules() -> Vec<DeviceRule> {
    let c = |maj, min| DeviceRule::allow('c', Some(maj), Some(min), "rwm");
    vec![
        DeviceRule::allow('c', None, None, "m"),
        DeviceRule::allow('b', None, None, "m"),
        c(1, 3),                                        // null
        c(1, 5),                                        // zero
        c(1, 7),                                        // full
        c(1, 8),                                        // random
        c(1, 9),                                        // urandom
        c(5, 0),                                        // tty
        c(5, 1),                                        // console
        c(5, 2),                                        // ptmx
        DeviceRule::allow('c', Some(136), None, "rwm"), // pts/*
    ]
}

// ---------------------------------------------------------------- facade

#[derive(Debug)]
enum Inner {
    V1(v1::Group),
    V2(v2::Group),
}

/// One container's cgroup, across every controller we use.
#[derive(Debug)]
pub struct Cgroup {
    inner: Inner,
}

impl Cgroup {
    /// Create `<root>/<parent>/<id>` in every controller we use; idempotent.
    pub fn create(parent: &str, id: &str) -> Result<Cgroup, CgroupError> {
        Cgroup::create_in(Layout::host()?, parent, id)
    }

    /// `create` on an explicit layout (tests, or a daemon told where to look).
    pub fn create_in(layout: &Layout, parent: &str, id: &str) -> Result<Cgroup, CgroupError> {
        let rel = relative_path(parent, id)?;
        let inner = match layout {
            Layout::V1 { mounts } => Inner::V1(v1::Group::create(mounts, &rel)?),
            Layout::V2 { root } => Inner::V2(v2::Group::create(root, &rel)?),
        };
        Ok(Cgroup { inner })
    }

    /// An existing cgroup (daemon restart recovery); None if it does not exist.
    pub fn open(parent: &str, id: &str) -> Option<Cgroup> {
        Cgroup::open_in(Layout::host().ok()?, parent, id)
    }

    pub fn open_in(layout: &Layout, parent: &str, id: &str) -> Option<Cgroup> {
        let rel = relative_path(parent, id).ok()?;
        let inner = match layout {
            Layout::V1 { mounts } => Inner::V1(v1::Group::open(mounts, &rel)?),
            Layout::V2 { root } => Inner::V2(v2::Group::open(root, &rel)?),
        };
        Some(Cgroup { inner })
    }

    pub fn version(&self) -> CgroupVersion {
        match &self.inner {
            Inner::V1(_) => CgroupVersion::V1,
            Inner::V2(_) => CgroupVersion::V2,
        }
    }

    /// The directory of one v1 controller ("memory", "pids", ...) or, on
    /// v2, the cgroup's directory whatever the name.
    pub fn path(&self, controller: &str) -> Option<&Path> {
        match &self.inner {
            Inner::V1(g) => g.dir(controller),
            Inner::V2(g) => Some(g.dir()),
        }
    }

    /// Move `pid` (a whole process) into the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        if pid <= 0 {
            return Err(CgroupError::InvalidValue(format!("invalid pid {pid}")));
        }
        match &self.inner {
            Inner::V1(g) => g.add_pid(pid),
            Inner::V2(g) => g.add_pid(pid),
        }
    }

    /// Apply or update (`docker update`) limits. Fields left unset are left
    /// alone. Checks every field before writing any: an unsupported one is
    /// `NotSupported(<Docker field name>)` (use `adapt` first to drop them
    /// with dockerd's warnings).
    /// `Memory` without `MemorySwap` also sets memory+swap to twice the
    /// memory when the host accounts swap, as dockerd does at create.
    pub fn apply(&self, r: &Resources) -> Result<(), CgroupError> {
        self.set(r, true)
    }

    /// `docker update`: like `apply` but without the swap default (the
    /// daemon resolves "memory above the current swap limit" against the
    /// stored HostConfig first, as dockerd does).
    pub fn update(&self, r: &Resources) -> Result<(), CgroupError> {
        self.set(r, false)
    }

    fn set(&self, r: &Resources, default_swap: bool) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(g) => g.apply(r, default_swap),
            Inner::V2(g) => g.apply(r, default_swap),
        }
    }

    /// Device access: everything for privileged containers, otherwise
    /// `default_device_rules`.
    pub fn apply_devices(&self, privileged: bool) -> Result<(), CgroupError> {
        if privileged {
            self.apply_device_rules(&[DeviceRule::allow('a', None, None, "rwm")])
        } else {
            self.apply_device_rules(&default_device_rules())
        }
    }

    /// Deny everything, then allow `rules` (a lone `a` rule allows all).
    pub fn apply_device_rules(&self, rules: &[DeviceRule]) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(g) => g.apply_devices(rules),
            Inner::V2(g) => g.apply_devices(rules),
        }
    }

    /// Freeze every process; waits (≤ 1 s, polling) until the kernel says frozen.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(g) => g.freeze(),
            Inner::V2(g) => g.freeze(),
        }
    }

    pub fn thaw(&self) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(g) => g.thaw(),
            Inner::V2(g) => g.thaw(),
        }
    }

    pub fn is_frozen(&self) -> bool {
        match &self.inner {
            Inner::V1(g) => g.is_frozen(),
            Inner::V2(g) => g.is_frozen(),
        }
    }

    /// Every process in the cgroup and in sub-cgroups the container made.
    pub fn pids(&self) -> Vec<i32> {
        let mut set = BTreeSet::new();
        match &self.inner {
            Inner::V1(g) => g.collect_pids(&mut set),
            Inner::V2(g) => collect_pids(g.dir(), 0, &mut set),
        }
        set.into_iter().collect()
    }

    /// Signal every process. SIGKILL on v2 uses `cgroup.kill` when the
    /// kernel has it (5.14+). Otherwise runc's way: freeze (so nothing forks
    /// past us), signal the listed pids, thaw; a cgroup that was paused
    /// stays paused unless the signal is SIGKILL (a frozen task cannot die
    /// on v1 until thawed).
    pub fn kill_all(&self, sig: Signal) {
        if let Inner::V2(g) = &self.inner {
            if sig == Signal::SIGKILL && g.kill_via_file() {
                return;
            }
        }
        let was_frozen = self.is_frozen();
        let froze = was_frozen || self.freeze().is_ok();
        // Two rounds catch a process forked between listing and freezing
        // when the freezer is unavailable.
        let rounds = if froze { 1 } else { 2 };
        for _ in 0..rounds {
            signal_pids(&self.pids(), sig);
        }
        if froze && (!was_frozen || sig == Signal::SIGKILL) {
            if let Err(e) = self.thaw() {
                log::warn!("cgroup kill_all: thaw: {e}");
            }
        }
    }

    /// OOM kills inside the cgroup. v2: `memory.events` `oom_kill`. v1:
    /// `memory.oom_control` `oom_kill` (kernel 4.13+), else `memory.failcnt`
    /// (times the limit was hit, an upper bound for kills).
    pub fn oom_kills(&self) -> u64 {
        match &self.inner {
            Inner::V1(g) => g.oom_kills(),
            Inner::V2(g) => g.oom_kills(),
        }
    }

    /// Bytes charged to the cgroup (page cache included, as dockerd reads it).
    pub fn memory_usage(&self) -> Option<u64> {
        match &self.inner {
            Inner::V1(g) => g.memory_usage(),
            Inner::V2(g) => g.memory_usage(),
        }
    }

    /// rmdir everywhere (sub-cgroups first). Retries briefly while the
    /// kernel calls it busy; fails if processes remain.
    pub fn remove(&self) -> Result<(), CgroupError> {
        match &self.inner {
            Inner::V1(g) => g.remove(),
            Inner::V2(g) => g.remove(),
        }
    }
}
