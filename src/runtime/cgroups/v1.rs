//! cgroup v1: one directory per controller hierarchy, runc's file names and
//! write orders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{
    backoff, check_cpuset, collect_pids, host_cpus, io_err, keyed_value, plan, read_file,
    remove_tree, require, write_file, CgroupError, DeviceRule, HostSupport, Resources,
    FREEZE_TIMEOUT,
};

pub(super) fn probe(mounts: &BTreeMap<String, PathBuf>) -> HostSupport {
    let has = |ctrl: &str, file: &str| {
        mounts
            .get(ctrl)
            .is_some_and(|m| file.is_empty() || m.join(file).exists())
    };
    HostSupport {
        memory: has("memory", "memory.limit_in_bytes"),
        swap: has("memory", "memory.memsw.limit_in_bytes"),
        memory_reservation: has("memory", "memory.soft_limit_in_bytes"),
        cpu_shares: has("cpu", "cpu.shares"),
        cpu_cfs: has("cpu", "cpu.cfs_quota_us"),
        cpuset: has("cpuset", "cpuset.cpus"),
        // pids.max is not offered on the root cgroup.
        pids: has("pids", ""),
        // blkio.bfq.weight is never on the root cgroup; BFQ's stat files
        // there show its policy is registered, so children will have it.
        blkio_weight: has("blkio", "blkio.weight")
            || has("blkio", "blkio.bfq.weight")
            || has("blkio", "blkio.bfq.io_service_bytes"),
        freezer: has("freezer", ""),
        devices: has("devices", "devices.allow"),
        kernel_memory_tcp: has("memory", "memory.kmem.tcp.limit_in_bytes"),
    }
}

#[derive(Debug, Clone)]
pub(super) struct Group {
    /// Controller name -> this cgroup's directory in its hierarchy.
    dirs: BTreeMap<String, PathBuf>,
}

impl Group {
    pub(super) fn create(
        mounts: &BTreeMap<String, PathBuf>,
        rel: &Path,
    ) -> Result<Group, CgroupError> {
        if mounts.is_empty() {
            return Err(CgroupError::NotSupported(
                "cgroups (no v1 controller mounted)".into(),
            ));
        }
        let mut dirs = BTreeMap::new();
        for (ctrl, mount) in mounts {
            let dir = mount.join(rel);
            if ctrl == "cpuset" {
                create_cpuset(mount, rel)?;
            } else {
                std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            }
            dirs.insert(ctrl.clone(), dir);
        }
        Ok(Group { dirs })
    }

    pub(super) fn open(mounts: &BTreeMap<String, PathBuf>, rel: &Path) -> Option<Group> {
        let dirs: BTreeMap<String, PathBuf> = mounts
            .iter()
            .map(|(c, m)| (c.clone(), m.join(rel)))
            .filter(|(_, d)| d.is_dir())
            .collect();
        (!dirs.is_empty()).then_some(Group { dirs })
    }

    #[cfg_attr(not(test), allow(dead_code))] // through `Cgroup::path`
    pub(super) fn dir(&self, ctrl: &str) -> Option<&Path> {
        self.dirs.get(ctrl).map(PathBuf::as_path)
    }

    /// Each directory once (co-mounted controllers share one).
    fn unique_dirs(&self) -> BTreeSet<&Path> {
        self.dirs.values().map(PathBuf::as_path).collect()
    }

    fn file(&self, ctrl: &str, name: &str) -> Option<PathBuf> {
        self.dirs
            .get(ctrl)
            .map(|d| d.join(name))
            .filter(|p| p.exists())
    }

    pub(super) fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        let pid = pid.to_string();
        for dir in self.unique_dirs() {
            write_file(&dir.join("cgroup.procs"), &pid)?;
        }
        Ok(())
    }

    pub(super) fn apply(&self, r: &Resources, default_swap: bool) -> Result<(), CgroupError> {
        let memsw = self.file("memory", "memory.memsw.limit_in_bytes");
        let p = plan(r, default_swap && memsw.is_some(), host_cpus())?;

        // Check everything first so a refused field writes nothing.
        let mem = self.file("memory", "memory.limit_in_bytes");
        let soft = self.file("memory", "memory.soft_limit_in_bytes");
        let shares = self.file("cpu", "cpu.shares");
        let quota = self.file("cpu", "cpu.cfs_quota_us");
        let period = self.file("cpu", "cpu.cfs_period_us");
        let cpus = self.file("cpuset", "cpuset.cpus");
        let mems = self.file("cpuset", "cpuset.mems");
        let pids = self.file("pids", "pids.max");
        let weight = self
            .file("blkio", "blkio.bfq.weight")
            .or_else(|| self.file("blkio", "blkio.weight"));
        require(p.memory.is_none() || mem.is_some(), "Memory")?;
        require(p.memory_swap.is_none() || memsw.is_some(), "MemorySwap")?;
        require(
            p.memory_reservation.is_none() || soft.is_some(),
            "MemoryReservation",
        )?;
        let cpu_field = if r.nano_cpus > 0 {
            "NanoCpus"
        } else {
            "CpuQuota"
        };
        require(p.cpu_quota.is_none() || quota.is_some(), cpu_field)?;
        let cpu_field = if r.nano_cpus > 0 {
            "NanoCpus"
        } else {
            "CpuPeriod"
        };
        require(p.cpu_period.is_none() || period.is_some(), cpu_field)?;
        require(p.cpu_shares.is_none() || shares.is_some(), "CpuShares")?;
        require(p.cpuset_cpus.is_none() || cpus.is_some(), "CpusetCpus")?;
        require(p.cpuset_mems.is_none() || mems.is_some(), "CpusetMems")?;
        require(p.pids_max.is_none() || pids.is_some(), "PidsLimit")?;
        require(p.blkio_weight.is_none() || weight.is_some(), "BlkioWeight")?;
        if let Some(parent) = self.dirs.get("cpuset").and_then(|d| d.parent()) {
            let avail = |f: &str| read_file(&parent.join(f)).unwrap_or_default();
            if let Some(c) = &p.cpuset_cpus {
                check_cpuset(c, &avail("cpuset.effective_cpus"), "CPUs")?;
            }
            if let Some(m) = &p.cpuset_mems {
                check_cpuset(m, &avail("cpuset.effective_mems"), "memory nodes")?;
            }
        }

        // memory and memory+swap: memsw must stay >= limit at every step,
        // so raise swap first when it grows past the current limit (runc).
        if let (Some(mem), Some(memsw)) = (&mem, &memsw) {
            if let (Some(m), Some(s)) = (p.memory, p.memory_swap) {
                let cur: u64 = read_file(mem)?.parse().unwrap_or(u64::MAX);
                if s == -1 || cur < s as u64 {
                    write_file(memsw, &s.to_string())?;
                    write_file(mem, &m.to_string())?;
                } else {
                    write_file(mem, &m.to_string())?;
                    write_file(memsw, &s.to_string())?;
                }
            } else if let Some(m) = p.memory {
                write_file(mem, &m.to_string())?;
            } else if let Some(s) = p.memory_swap {
                write_file(memsw, &s.to_string())?;
            }
        } else if let (Some(mem), Some(m)) = (&mem, p.memory) {
            write_file(mem, &m.to_string())?;
        }
        if let (Some(f), Some(v)) = (&soft, p.memory_reservation) {
            write_file(f, &v.to_string())?;
        }

        // cpu: period then quota; if the period is refused against the
        // current quota, the other way round (runc).
        if let (Some(period), Some(quota)) = (&period, &quota) {
            match (p.cpu_period, p.cpu_quota) {
                (Some(pe), Some(q)) => {
                    if write_file(period, &pe.to_string()).is_err() {
                        write_file(quota, &q.to_string())?;
                        write_file(period, &pe.to_string())?;
                    } else {
                        write_file(quota, &q.to_string())?;
                    }
                }
                (Some(pe), None) => write_file(period, &pe.to_string())?,
                (None, Some(q)) => write_file(quota, &q.to_string())?,
                (None, None) => {}
            }
        }
        if let (Some(f), Some(v)) = (&shares, p.cpu_shares) {
            write_file(f, &v.to_string())?;
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
        if let (Some(f), Some(v)) = (&weight, p.blkio_weight) {
            write_file(f, &v.to_string())?;
        }
        Ok(())
    }

    pub(super) fn apply_devices(&self, rules: &[DeviceRule]) -> Result<(), CgroupError> {
        let dir = self
            .dirs
            .get("devices")
            .ok_or_else(|| CgroupError::NotSupported("device access rules".into()))?;
        let allow = dir.join("devices.allow");
        let deny = dir.join("devices.deny");
        if rules.iter().any(|r| r.allow && r.kind == 'a') {
            return write_file(&allow, "a");
        }
        write_file(&deny, "a")?;
        for r in rules {
            write_file(if r.allow { &allow } else { &deny }, &r.to_string())?;
        }
        Ok(())
    }

    fn freezer_state(&self) -> Result<PathBuf, CgroupError> {
        self.file("freezer", "freezer.state")
            .ok_or_else(|| CgroupError::NotSupported("pause (freezer controller)".into()))
    }

    pub(super) fn freeze(&self) -> Result<(), CgroupError> {
        let state = self.freezer_state()?;
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        let mut round = 0;
        loop {
            // Rewriting FROZEN re-kicks tasks that were busy forking.
            write_file(&state, "FROZEN")?;
            if read_file(&state)? == "FROZEN" {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = write_file(&state, "THAWED");
                return Err(CgroupError::Busy(format!(
                    "cgroup {} did not freeze within {:?}",
                    state.display(),
                    FREEZE_TIMEOUT
                )));
            }
            backoff(&mut round);
        }
    }

    pub(super) fn thaw(&self) -> Result<(), CgroupError> {
        write_file(&self.freezer_state()?, "THAWED")
    }

    /// One non-blocking step of `freeze`: ask (again) and report whether
    /// the kernel says FROZEN.
    pub(super) fn freeze_step(&self) -> Result<bool, CgroupError> {
        let state = self.freezer_state()?;
        // Rewriting FROZEN re-kicks tasks that were busy forking.
        write_file(&state, "FROZEN")?;
        Ok(read_file(&state)? == "FROZEN")
    }

    pub(super) fn is_frozen(&self) -> bool {
        self.freezer_state()
            .and_then(|p| read_file(&p))
            .is_ok_and(|s| s == "FROZEN")
    }

    pub(super) fn collect_pids(&self, out: &mut BTreeSet<i32>) {
        let dir = ["pids", "memory", "freezer", "cpu"]
            .iter()
            .find_map(|c| self.dirs.get(*c))
            .or_else(|| self.dirs.values().next());
        if let Some(dir) = dir {
            collect_pids(dir, 0, out);
        }
    }

    pub(super) fn oom_kills(&self) -> u64 {
        let Some(dir) = self.dirs.get("memory") else {
            return 0;
        };
        if let Some(n) = read_file(&dir.join("memory.oom_control"))
            .ok()
            .and_then(|t| keyed_value(&t, "oom_kill"))
        {
            return n;
        }
        read_file(&dir.join("memory.failcnt"))
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0)
    }

    #[cfg_attr(not(test), allow(dead_code))] // through `Cgroup::memory_usage`
    pub(super) fn memory_usage(&self) -> Option<u64> {
        read_file(&self.file("memory", "memory.usage_in_bytes")?)
            .ok()?
            .parse()
            .ok()
    }

    pub(super) fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in self.unique_dirs() {
            if let Err(e) = remove_tree(dir, 0) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// mkdir each level of `rel` under the cpuset hierarchy, copying the
/// parent's cpus and mems into any level that has none: a cpuset cgroup
/// with empty cpus or mems refuses tasks (ENOSPC).
fn create_cpuset(mount: &Path, rel: &Path) -> Result<(), CgroupError> {
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let next = cur.join(comp);
        match std::fs::create_dir(&next) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&next, e)),
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if read_file(&next.join(f))?.is_empty() {
                write_file(&next.join(f), &read_file(&cur.join(f))?)?;
            }
        }
        cur = next;
    }
    Ok(())
}
