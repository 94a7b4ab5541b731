//! One reading of a container's cgroup counters for `docker stats`: the
//! files runc's cgroup managers read, v1 and v2. Small files only (a few
//! hundred bytes each), read on the loop.

use std::collections::BTreeMap;
use std::path::Path;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::{keyed_value, Cgroup, CgroupVersion, Inner};

/// USER_HZ: the unit of v1 `cpuacct.stat` and `/proc/stat`.
const CLOCK_TICKS: u64 = 100;
const NS_PER_TICK: u64 = 1_000_000_000 / CLOCK_TICKS;

/// One row of a blkio/io table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// Counters as dockerd reports them (nanoseconds, bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    pub version: Option<CgroupVersion>,
    pub cpu_total: u64,
    /// v1 only (`cpuacct.usage_percpu`).
    pub cpu_percpu: Vec<u64>,
    pub cpu_user: u64,
    pub cpu_system: u64,
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
    pub mem_usage: u64,
    /// v1 only.
    pub mem_max_usage: Option<u64>,
    /// v1 only.
    pub mem_failcnt: Option<u64>,
    /// None: unlimited.
    pub mem_limit: Option<u64>,
    pub mem_stat: BTreeMap<String, u64>,
    pub io_bytes: Vec<BlkioEntry>,
    /// v1 only.
    pub io_ops: Vec<BlkioEntry>,
    pub pids_current: Option<u64>,
    /// None: unlimited.
    pub pids_limit: Option<u64>,
}

/// The counter files one stats stream reads every second, kept open
/// between readings: a reading is then one `pread` at offset 0 per file (a
/// seq_file regenerates its text at offset 0) instead of a path walk, open,
/// read and close. A file that is missing stays missing (a host's set of
/// cgroup files does not change); one whose read fails (its cgroup was
/// recreated by a restart) is opened again once.
#[derive(Default)]
pub struct StatFiles {
    keep: bool,
    open: Vec<(PathBuf, Option<File>)>,
}

impl StatFiles {
    /// Files kept open across readings.
    pub fn kept() -> StatFiles {
        StatFiles {
            keep: true,
            open: Vec::new(),
        }
    }

    /// A small file, trimmed: plain reads into a stack buffer (no stat for a
    /// size hint: cgroup files report size 0 anyway).
    pub fn read(&mut self, p: &Path) -> Result<String, std::io::Error> {
        if !self.keep {
            return read_from(&File::open(p)?);
        }
        let i = match self.open.iter().position(|(q, _)| q == p) {
            Some(i) => i,
            None => {
                if self.open.len() >= 64 {
                    // Paths of a restarted container's old pid: start over.
                    self.open.clear();
                }
                self.open.push((p.to_path_buf(), File::open(p).ok()));
                self.open.len() - 1
            }
        };
        let slot = &mut self.open[i].1;
        let Some(f) = slot else {
            return Err(std::io::ErrorKind::NotFound.into());
        };
        match read_from(f) {
            Ok(t) => Ok(t),
            Err(_) => {
                *slot = None;
                let f = File::open(p)?;
                let text = read_from(&f);
                *slot = Some(f);
                text
            }
        }
    }

    fn number(&mut self, p: &Path) -> Option<u64> {
        self.read(p).ok()?.parse().ok()
    }

    /// A limit file: "max" or a v1 "unlimited" value (above 2^62) is None.
    fn limit(&mut self, p: &Path) -> Option<u64> {
        let t = self.read(p).ok()?;
        t.parse().ok().filter(|v: &u64| *v < (1 << 62))
    }
}

/// A seq_file (every cgroup and /proc file read here) fills a read up to
/// the buffer or its end, so a short read is the end: one `pread` per file.
fn read_from(f: &File) -> Result<String, std::io::Error> {
    let mut buf = [0u8; 16384];
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => {
                n += k;
                if n < buf.len() {
                    break;
                }
            }
        }
    }
    Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
}

fn flat_map(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// v1 blkio: "8:0 Read 4096" rows; "Total" rows are skipped.
fn blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (maj, min) = it.next()?.split_once(':')?;
            let op = it.next()?.to_string();
            let value = it.next()?.parse().ok()?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op,
                value,
            })
        })
        .collect()
}

/// v2 `io.stat`: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." as dockerd maps
/// it: a "read" and a "write" row of bytes per device.
fn io_v2(text: &str) -> Vec<BlkioEntry> {
    let mut out = Vec::new();
    for l in text.lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        let kv: BTreeMap<&str, u64> = it
            .filter_map(|f| {
                let (k, v) = f.split_once('=')?;
                Some((k, v.parse().ok()?))
            })
            .collect();
        for (op, key) in [("read", "rbytes"), ("write", "wbytes")] {
            out.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value: kv.get(key).copied().unwrap_or(0),
            });
        }
    }
    out
}

impl Cgroup {
    /// Read the counters now through `files` (kept open by a stream, or
    /// `StatFiles::default()`: opened and closed each time); files a host
    /// lacks stay zero.
    pub fn sample_with(&self, files: &mut StatFiles) -> Sample {
        match &self.inner {
            Inner::V1(_) => self.sample_v1(files),
            Inner::V2(g) => sample_v2(g.dir(), files),
        }
    }

    fn sample_v1(&self, f: &mut StatFiles) -> Sample {
        let mut s = Sample {
            version: Some(CgroupVersion::V1),
            ..Sample::default()
        };
        if let Some(d) = self.path("cpuacct") {
            s.cpu_total = f.number(&d.join("cpuacct.usage")).unwrap_or(0);
            s.cpu_percpu = f
                .read(&d.join("cpuacct.usage_percpu"))
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if let Ok(t) = f.read(&d.join("cpuacct.stat")) {
                s.cpu_user = keyed_value(&t, "user").unwrap_or(0) * NS_PER_TICK;
                s.cpu_system = keyed_value(&t, "system").unwrap_or(0) * NS_PER_TICK;
            }
        }
        if let Some(t) = self
            .path("cpu")
            .and_then(|d| f.read(&d.join("cpu.stat")).ok())
        {
            s.periods = keyed_value(&t, "nr_periods").unwrap_or(0);
            s.throttled_periods = keyed_value(&t, "nr_throttled").unwrap_or(0);
            s.throttled_time = keyed_value(&t, "throttled_time").unwrap_or(0);
        }
        if let Some(d) = self.path("memory") {
            s.mem_usage = f.number(&d.join("memory.usage_in_bytes")).unwrap_or(0);
            s.mem_max_usage = f.number(&d.join("memory.max_usage_in_bytes"));
            s.mem_failcnt = f.number(&d.join("memory.failcnt"));
            s.mem_limit = f.limit(&d.join("memory.limit_in_bytes"));
            s.mem_stat = f
                .read(&d.join("memory.stat"))
                .map(|t| flat_map(&t))
                .unwrap_or_default();
        }
        if let Some(d) = self.path("blkio") {
            // The throttle tables see every bio of the cgroup whatever the
            // I/O scheduler (no rows there: no block I/O at all); the BFQ and
            // CFQ ones (runc's first choice) serve kernels without
            // throttling. Two reads per sample instead of six.
            let mut table = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| f.read(&d.join(n)).ok())
                    .map(|t| blkio_v1(&t))
                    .unwrap_or_default()
            };
            s.io_bytes = table(&[
                "blkio.throttle.io_service_bytes_recursive",
                "blkio.bfq.io_service_bytes_recursive",
                "blkio.io_service_bytes_recursive",
            ]);
            s.io_ops = table(&[
                "blkio.throttle.io_serviced_recursive",
                "blkio.bfq.io_serviced_recursive",
                "blkio.io_serviced_recursive",
            ]);
        }
        if let Some(d) = self.path("pids") {
            s.pids_current = f.number(&d.join("pids.current"));
            s.pids_limit = f.limit(&d.join("pids.max"));
        }
        s
    }
}

fn sample_v2(d: &Path, f: &mut StatFiles) -> Sample {
    let mut s = Sample {
        version: Some(CgroupVersion::V2),
        ..Sample::default()
    };
    if let Ok(t) = f.read(&d.join("cpu.stat")) {
        s.cpu_total = keyed_value(&t, "usage_usec").unwrap_or(0) * 1000;
        s.cpu_user = keyed_value(&t, "user_usec").unwrap_or(0) * 1000;
        s.cpu_system = keyed_value(&t, "system_usec").unwrap_or(0) * 1000;
        s.periods = keyed_value(&t, "nr_periods").unwrap_or(0);
        s.throttled_periods = keyed_value(&t, "nr_throttled").unwrap_or(0);
        s.throttled_time = keyed_value(&t, "throttled_usec").unwrap_or(0) * 1000;
    }
    s.mem_usage = f.number(&d.join("memory.current")).unwrap_or(0);
    s.mem_limit = f.limit(&d.join("memory.max"));
    s.mem_stat = f
        .read(&d.join("memory.stat"))
        .map(|t| flat_map(&t))
        .unwrap_or_default();
    s.io_bytes = f
        .read(&d.join("io.stat"))
        .map(|t| io_v2(&t))
        .unwrap_or_default();
    s.pids_current = f.number(&d.join("pids.current"));
    s.pids_limit = f.limit(&d.join("pids.max"));
    s
}

/// Host CPU time (all CPUs, nanoseconds) and online CPUs, from /proc/stat,
/// as dockerd computes `system_cpu_usage` and `online_cpus`.
pub fn system_cpu() -> (u64, u32) {
    let Ok(text) = std::fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let mut total = 0;
    let mut cpus = 0;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("cpu ") {
            total = rest
                .split_whitespace()
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                * NS_PER_TICK;
        } else if l.starts_with("cpu") {
            cpus += 1;
        } else if !l.starts_with("cpu") && cpus > 0 {
            break;
        }
    }
    (total, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tables() {
        let v1 = blkio_v1("8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 1\nTotal 12288\n");
        assert_eq!(v1.len(), 3);
        assert_eq!(v1[1].op, "Write");
        assert_eq!(v1[1].value, 8192);
        let v2 = io_v2("8:16 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(
            v2,
            vec![
                BlkioEntry {
                    major: 8,
                    minor: 16,
                    op: "read".into(),
                    value: 10
                },
                BlkioEntry {
                    major: 8,
                    minor: 16,
                    op: "write".into(),
                    value: 20
                },
            ]
        );
        let m = flat_map("cache 1\nrss 2\ntotal_inactive_file 3\n");
        assert_eq!(m["total_inactive_file"], 3);
        let (total, cpus) = system_cpu();
        assert!(total > 0 && cpus > 0);
    }
}
