//! `docker stats`: one reading of a running container's counters (its
//! cgroup, the host's CPU time, its network namespace's interfaces).

use std::time::SystemTime;

use super::Engine;
use crate::runtime::cgroups::{system_cpu, Sample, StatFiles};

/// One interface's counters from `/proc/<pid>/net/dev`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetDev {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// What one tick of a stats stream reports.
#[derive(Debug, Clone)]
pub struct Reading {
    pub read: SystemTime,
    pub cgroup: Sample,
    pub system_cpu: u64,
    pub online_cpus: u32,
    /// The memory limit as dockerd reports it: the cgroup's, capped at the
    /// host's memory.
    pub mem_limit: u64,
    /// Interfaces of the container's own network namespace, `lo` left out
    /// (none with `--network host`, as dockerd).
    pub networks: Vec<NetDev>,
}

impl Engine {
    /// A reading of the container `id`; None when it is not running.
    /// `files`: the stream's counter files, kept open between readings.
    pub fn stats_reading(&self, id: &str, files: &mut StatFiles) -> Option<Reading> {
        let e = self.containers.get(id)?;
        let live = e.live.as_ref().filter(|_| e.c.state.is_alive())?;
        let cgroup = live
            .cgroup
            .as_ref()
            .map(|cg| cg.sample_with(files))
            .unwrap_or_default();
        let (system_cpu, online_cpus) = host_cpu();
        let machine = machine_memory();
        let mem_limit = match cgroup.mem_limit {
            Some(l) if machine == 0 || l < machine => l,
            _ => machine,
        };
        let host_net = crate::container::create::network_mode(&e.c.host_config.network_mode)
            .is_ok_and(|m| m == "host");
        let networks = if host_net {
            Vec::new()
        } else {
            files
                .read(std::path::Path::new(&format!("/proc/{}/net/dev", live.pid)))
                .map(|t| parse_net_dev(&t))
                .unwrap_or_default()
        };
        Some(Reading {
            read: SystemTime::now(),
            cgroup,
            system_cpu,
            online_cpus,
            mem_limit,
            networks,
        })
    }
}

/// The host's memory, read once (dockerd reads it at start-up too).
fn machine_memory() -> u64 {
    static MEM: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MEM.get_or_init(crate::host::mem_total_bytes)
}

/// `/proc/stat`'s totals, shared by every stream sampled within 100 ms
/// (50 streams read it once per second, not 50 times).
fn host_cpu() -> (u64, u32) {
    thread_local! {
        static LAST: std::cell::Cell<Option<(std::time::Instant, u64, u32)>> =
            const { std::cell::Cell::new(None) };
    }
    let now = std::time::Instant::now();
    LAST.with(|last| match last.get() {
        Some((at, total, cpus))
            if now.duration_since(at) < std::time::Duration::from_millis(100) =>
        {
            (total, cpus)
        }
        _ => {
            let (total, cpus) = system_cpu();
            last.set(Some((now, total, cpus)));
            (total, cpus)
        }
    })
}

/// `/proc/net/dev` rows, `lo` left out.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if v.len() < 12 {
                return None;
            }
            Some(NetDev {
                name: name.to_string(),
                rx_bytes: v[0],
                rx_packets: v[1],
                rx_errors: v[2],
                rx_dropped: v[3],
                tx_bytes: v[8],
                tx_packets: v[9],
                tx_errors: v[10],
                tx_dropped: v[11],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_rows() {
        let t = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    1500      10    1    2    0     0          0         0     3000      20    3    4    0     0       0          0\n";
        let n = parse_net_dev(t);
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].name, "eth0");
        assert_eq!(
            (
                n[0].rx_bytes,
                n[0].rx_dropped,
                n[0].tx_packets,
                n[0].tx_dropped
            ),
            (1500, 2, 20, 4)
        );
    }
}
