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
//! the host's layout from `/proc/self/mountinfo`, the `HostSupport` probe,
//! the `Cgroup` facade); `resources.rs` Docker's resource validation and
//! warnings; `devices.rs` device rules; `v1.rs` and `v2.rs` the per-version
//! file names and write orders; `bpf.rs` the v2 device program.

mod bpf;
mod devices;
mod resources;
mod stats;
#[cfg(test)]
mod tests;
mod v1;
mod v2;
mod view;

pub use devices::{default_device_rules, DeviceRule};
#[cfg(test)]
use resources::{adapt, nano_cpus_to_cfs, parse_cpu_list, warnings_for};
pub use resources::{blkio_to_io_weight, shares_to_weight, validate, Resources};
use resources::{check_cpuset, host_cpus, plan};
pub use stats::{system_cpu, BlkioEntry, Sample, StatFiles};

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

/// How long `freeze` (and the engine polling `freeze_step`) waits for the
/// kernel to report FROZEN.
pub const FREEZE_TIMEOUT: Duration = Duration::from_secs(1);

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

impl Layout {
    /// The layout described by a `/proc/self/mountinfo` text. cgroup2 on
    /// `/sys/fs/cgroup` is the unified mode; otherwise any v1 controller
    /// hierarchy we use means v1 (hybrid hosts: the controllers live in v1,
    /// the cgroup2 mount beside them has none); otherwise a cgroup2 mount
    /// anywhere. `None` when no hierarchy is mounted.
    pub fn from_mountinfo(text: &str) -> Option<Layout> {
        let lines = crate::runtime::mountinfo::parse(text);
        if let Some(m) = lines
            .iter()
            .find(|m| m.fs_type == "cgroup2" && m.mount_point == "/sys/fs/cgroup")
        {
            return Some(Layout::V2 {
                root: PathBuf::from(&m.mount_point),
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
                    mounts.insert(c.clone(), PathBuf::from(&m.mount_point));
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
                root: PathBuf::from(&m.mount_point),
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
    /// v1 only: `memory.kmem.tcp.limit_in_bytes` (`/info`'s KernelMemoryTCP).
    pub kernel_memory_tcp: bool,
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

// ---------------------------------------------------------------- facade

#[derive(Debug, Clone)]
enum Inner {
    V1(v1::Group),
    V2(v2::Group),
}

/// One container's cgroup, across every controller we use.
#[derive(Debug, Clone)]
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

    #[cfg_attr(not(test), allow(dead_code))] // only tests ask a live cgroup its version
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
    #[cfg_attr(not(test), allow(dead_code))] // the daemon passes resolved rules (`apply_device_rules`)
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

    /// One non-blocking step of freezing: true once the kernel reports the
    /// cgroup frozen. The engine polls it with a timer (`pause`), where
    /// `freeze` would wait on the loop.
    pub fn freeze_step(&self) -> Result<bool, CgroupError> {
        match &self.inner {
            Inner::V1(g) => g.freeze_step(),
            Inner::V2(g) => g.freeze_step(),
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
    #[cfg_attr(not(test), allow(dead_code))] // for `docker stats`; tested against a fake cgroupfs
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
