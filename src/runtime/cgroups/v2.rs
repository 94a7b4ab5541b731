//! cgroup v2: one unified directory; controllers enabled top-down through
//! each ancestor's `cgroup.subtree_control`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    backoff, blkio_to_io_weight, check_cpuset, host_cpus, io_err, keyed_value, plan, read_file,
    remove_tree, require, shares_to_weight, write_file, CgroupError, DeviceRule, HostSupport,
    Resources, FREEZE_TIMEOUT,
};

/// Controllers we enable for container cgroups, in the order the kernel
/// prefers (cpuset before cpu is not required, but harmless).
const WANTED: &[&str] = &["cpuset", "cpu", "io", "memory", "pids"];

fn controllers(dir: &Path) -> BTreeSet<String> {
    read_file(&dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

pub(super) fn probe(root: &Path) -> HostSupport {
    let c = controllers(root);
    let has = |n: &str| c.contains(n);
    HostSupport {
        memory: has("memory"),
        // dockerd assumes swap accounting with the v2 memory controller;
        // `apply` still refuses MemorySwap when memory.swap.max is absent.
        swap: has("memory"),
        memory_reservation: has("memory"),
        cpu_shares: has("cpu"),
        cpu_cfs: has("cpu"),
        cpuset: has("cpuset"),
        pids: has("pids"),
        blkio_weight: has("io"),
        // cgroup.freeze is core v2 (kernel 5.2+), not a controller.
        freezer: true,
        // An eBPF device program (CONFIG_CGROUP_BPF, assumed; attaching
        // reports it otherwise).
        devices: true,
        kernel_memory_tcp: false,
    }
}

/// Enable in `dir`'s subtree_control every wanted controller `dir` has.
/// Failures are logged, not fatal: a non-root cgroup with processes of its
/// own cannot delegate (EBUSY), and `apply` then reports the missing files.
fn enable_controllers(dir: &Path) {
    let avail = controllers(dir);
    let enabled: BTreeSet<String> = read_file(&dir.join("cgroup.subtree_control"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let missing: Vec<&str> = WANTED
        .iter()
        .copied()
        .filter(|c| avail.contains(*c) && !enabled.contains(*c))
        .collect();
    if missing.is_empty() {
        return;
    }
    let file = dir.join("cgroup.subtree_control");
    let all: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    if write_file(&file, &all.join(" ")).is_ok() {
        return;
    }
    for c in all {
        if let Err(e) = write_file(&file, &c) {
            log::warn!("cgroup v2: cannot enable {c} in {}: {e}", file.display());
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Group {
    dir: PathBuf,
}

impl Group {
    pub(super) fn create(root: &Path, rel: &Path) -> Result<Group, CgroupError> {
        if !root.is_dir() {
            return Err(io_err(root, std::io::ErrorKind::NotFound.into()));
        }
        let mut cur = root.to_path_buf();
        for comp in rel.components() {
            enable_controllers(&cur);
            let next = cur.join(comp);
            match std::fs::create_dir(&next) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&next, e)),
            }
            cur = next;
        }
        Ok(Group { dir: cur })
    }

    pub(super) fn open(root: &Path, rel: &Path) -> Option<Group> {
        let dir = root.join(rel);
        dir.is_dir().then_some(Group { dir })
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> Option<PathBuf> {
        Some(self.dir.join(name)).filter(|p| p.exists())
    }

    pub(super) fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        write_file(&self.dir.join("cgroup.procs"), &pid.to_string())
    }

    pub(super) fn apply(&self, r: &Resources, default_swap: bool) -> Result<(), CgroupError> {
        let swap = self.file("memory.swap.max");
        let p = plan(r, default_swap && swap.is_some(), host_cpus())?;

        let mem = self.file("memory.max");
        let low = self.file("memory.low");
        let weight = self.file("cpu.weight");
        let max = self.file("cpu.max");
        let cpus = self.file("cpuset.cpus");
        let mems = self.file("cpuset.mems");
        let pids = self.file("pids.max");
        let bfq = self.file("io.bfq.weight");
        let io = self.file("io.weight");
        require(p.memory.is_none() || mem.is_some(), "Memory")?;
        require(p.memory_swap.is_none() || swap.is_some(), "MemorySwap")?;
        require(
            p.memory_reservation.is_none() || low.is_some(),
            "MemoryReservation",
        )?;
        let cpu_field = match (r.nano_cpus > 0, p.cpu_quota.is_some()) {
            (true, _) => "NanoCpus",
            (false, true) => "CpuQuota",
            (false, false) => "CpuPeriod",
        };
        require(
            (p.cpu_quota.is_none() && p.cpu_period.is_none()) || max.is_some(),
            cpu_field,
        )?;
        require(p.cpu_shares.is_none() || weight.is_some(), "CpuShares")?;
        require(p.cpuset_cpus.is_none() || cpus.is_some(), "CpusetCpus")?;
        require(p.cpuset_mems.is_none() || mems.is_some(), "CpusetMems")?;
        require(p.pids_max.is_none() || pids.is_some(), "PidsLimit")?;
        require(
            p.blkio_weight.is_none() || bfq.is_some() || io.is_some(),
            "BlkioWeight",
        )?;
        if let Some(parent) = self.dir.parent() {
            let avail = |f: &str| read_file(&parent.join(f)).unwrap_or_default();
            if let Some(c) = &p.cpuset_cpus {
                check_cpuset(c, &avail("cpuset.cpus.effective"), "CPUs")?;
            }
            if let Some(m) = &p.cpuset_mems {
                check_cpuset(m, &avail("cpuset.mems.effective"), "memory nodes")?;
            }
        }
        // memory.swap.max is swap alone: Docker's memory+swap minus memory.
        let swap_value = match p.memory_swap {
            None => None,
            Some(-1) => Some("max".to_string()),
            Some(s) => {
                let m = match p.memory {
                    Some(m) => m,
                    None => mem
                        .as_ref()
                        .and_then(|f| read_file(f).ok())
                        .and_then(|v| v.parse::<i64>().ok())
                        .ok_or_else(|| {
                            CgroupError::InvalidValue(
                                "unable to set swap limit without memory limit".into(),
                            )
                        })?,
                };
                if s < m {
                    return Err(CgroupError::InvalidValue(
                        "Minimum memoryswap limit should be larger than memory limit, see usage"
                            .into(),
                    ));
                }
                Some((s - m).to_string())
            }
        };

        if let (Some(f), Some(v)) = (&mem, p.memory) {
            write_file(f, &v.to_string())?;
        }
        if let (Some(f), Some(v)) = (&swap, &swap_value) {
            write_file(f, v)?;
        }
        if let (Some(f), Some(v)) = (&low, p.memory_reservation) {
            write_file(f, &v.to_string())?;
        }
        if let Some(f) = &max {
            if p.cpu_quota.is_some() || p.cpu_period.is_some() {
                // Keep whichever half was not given.
                let cur = read_file(f).unwrap_or_default();
                let mut it = cur.split_whitespace();
                let (cur_q, cur_p) = (it.next().unwrap_or("max"), it.next().unwrap_or("100000"));
                let q = match p.cpu_quota {
                    Some(q) if q > 0 => q.to_string(),
                    Some(_) => "max".to_string(),
                    None => cur_q.to_string(),
                };
                let pe = p.cpu_period.map_or(cur_p.to_string(), |v| v.to_string());
                write_file(f, &format!("{q} {pe}"))?;
            }
        }
        if let (Some(f), Some(v)) = (&weight, p.cpu_shares) {
            write_file(f, &shares_to_weight(v).to_string())?;
        }
        if let (Some(f), Some(v)) = (&cpus, &p.cpuset_cpus) {
            write_file(f, v)?;
        }
        if let (Some(f), Some(v)) = (&mems, &p.cpuset_mems) {
            write_file(f, v)?;
        }
        if let (Some(f), Some(v)) = (&pids, p.pids_max) {
            write_file(f, &if v < 0 { "max".into() } else { v.to_string() })?;
        }
        if let Some(w) = p.blkio_weight {
            match (&bfq, &io) {
                (Some(f), _) => write_file(f, &w.to_string())?,
                (None, Some(f)) => write_file(f, &format!("default {}", blkio_to_io_weight(w)))?,
                (None, None) => {}
            }
        }
        Ok(())
    }

    pub(super) fn apply_devices(&self, rules: &[DeviceRule]) -> Result<(), CgroupError> {
        if rules.iter().any(|r| r.allow && r.kind == 'a') {
            // No program attached = every device allowed.
            return Ok(());
        }
        super::bpf::attach(&self.dir, rules)
    }

    pub(super) fn freeze(&self) -> Result<(), CgroupError> {
        let freeze = self.file("cgroup.freeze").ok_or_else(|| {
            CgroupError::NotSupported("pause (cgroup.freeze, kernel 5.2+)".into())
        })?;
        write_file(&freeze, "1")?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut round = 0;
        loop {
            if self.is_frozen() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = write_file(&freeze, "0");
                return Err(CgroupError::Busy(format!(
                    "cgroup {} did not freeze within {:?}",
                    self.dir.display(),
                    FREEZE_TIMEOUT
                )));
            }
            backoff(&mut round);
        }
    }

    pub(super) fn thaw(&self) -> Result<(), CgroupError> {
        let freeze = self.file("cgroup.freeze").ok_or_else(|| {
            CgroupError::NotSupported("pause (cgroup.freeze, kernel 5.2+)".into())
        })?;
        write_file(&freeze, "0")
    }

    /// One non-blocking step of `freeze`: ask and report whether the kernel
    /// says frozen.
    pub(super) fn freeze_step(&self) -> Result<bool, CgroupError> {
        let freeze = self.file("cgroup.freeze").ok_or_else(|| {
            CgroupError::NotSupported("pause (cgroup.freeze, kernel 5.2+)".into())
        })?;
        write_file(&freeze, "1")?;
        Ok(self.is_frozen())
    }

    pub(super) fn is_frozen(&self) -> bool {
        read_file(&self.dir.join("cgroup.events"))
            .ok()
            .and_then(|t| keyed_value(&t, "frozen"))
            == Some(1)
    }

    /// SIGKILL everything through `cgroup.kill` (kernel 5.14+); false when
    /// the file is absent or refused.
    pub(super) fn kill_via_file(&self) -> bool {
        self.file("cgroup.kill")
            .is_some_and(|f| write_file(&f, "1").is_ok())
    }

    pub(super) fn oom_kills(&self) -> u64 {
        read_file(&self.dir.join("memory.events"))
            .ok()
            .and_then(|t| keyed_value(&t, "oom_kill"))
            .unwrap_or(0)
    }

    #[cfg_attr(not(test), allow(dead_code))] // through `Cgroup::memory_usage`
    pub(super) fn memory_usage(&self) -> Option<u64> {
        read_file(&self.file("memory.current")?).ok()?.parse().ok()
    }

    pub(super) fn remove(&self) -> Result<(), CgroupError> {
        remove_tree(&self.dir, 0)
    }
}
