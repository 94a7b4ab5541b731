//! Docker's `HostConfig` resource fields, validated like dockerd
//! (`verifyPlatformContainerResources`) into a plan both versions write, and
//! dockerd's warnings for what the host cannot honour.

use std::collections::BTreeSet;

use super::{
    CgroupError, HostSupport, MAX_CPU_SHARES, MIN_CPU_SHARES, MIN_MEMORY, NANO_CPUS_PERIOD,
};

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

/// Limits after Docker's validation, in v1 terms; None = leave alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Bytes (≥ 6 MiB).
    pub(super) memory: Option<i64>,
    /// Memory + swap bytes, or -1 unlimited.
    pub(super) memory_swap: Option<i64>,
    pub(super) memory_reservation: Option<i64>,
    pub(super) cpu_shares: Option<i64>,
    /// µs or -1 unlimited.
    pub(super) cpu_quota: Option<i64>,
    pub(super) cpu_period: Option<i64>,
    pub(super) cpuset_cpus: Option<String>,
    pub(super) cpuset_mems: Option<String>,
    /// n > 0, or -1 unlimited ("max").
    pub(super) pids_max: Option<i64>,
    pub(super) blkio_weight: Option<u16>,
}

pub(super) fn host_cpus() -> i64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1)
}

/// Validate like dockerd's `verifyPlatformContainerResources` and turn the
/// fields into concrete values. `swap_accounting` decides runc/dockerd's
/// default swap (2 × memory) when `memory_swap` is unset.
pub(super) fn plan(r: &Resources, swap_accounting: bool, ncpu: i64) -> Result<Plan, CgroupError> {
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
pub(super) fn check_cpuset(
    requested: &str,
    available: &str,
    what: &str,
) -> Result<(), CgroupError> {
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
#[cfg_attr(not(test), allow(dead_code))] // dockerd's per-field discard; not yet used by create/update
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
#[cfg_attr(not(test), allow(dead_code))] // as `adapt`
pub fn warnings_for(r: &Resources) -> Vec<String> {
    adapt(r, &HostSupport::host()).1
}
