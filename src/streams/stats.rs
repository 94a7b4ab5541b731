//! `GET /containers/{id}/stats`: a reading every second, pulled by the
//! connection at the instant it asks for (no thread, no per-container
//! timer: the connection's own deadline wakes it), in dockerd's JSON shape
//! for cgroup v1 and v2.

use std::time::{Duration, Instant};

use crate::json;
use serde_json::{Map, Value};

use crate::engine::stats::Reading;
use crate::engine::Engine;
use crate::reply::{BodySource, ConnId, Pull};
use crate::runtime::cgroups::{BlkioEntry, CgroupVersion, StatFiles};
use crate::timefmt::rfc3339_nano;

/// dockerd's collector interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Go's zero `time.Time`, which dockerd writes for a missing reading.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

pub struct StatsStream {
    pub id: String,
    pub name: String,
    /// More than one object (`stream=true`).
    pub stream: bool,
    /// The first object at once, without a previous reading (`one-shot`).
    pub one_shot: bool,
    pub next_at: Instant,
    pub prev: Option<Reading>,
    /// The container's counter files, open while the stream lasts.
    pub files: StatFiles,
}

impl StatsStream {
    pub fn new(id: String, name: String, stream: bool, one_shot: bool) -> StatsStream {
        StatsStream {
            id,
            name,
            stream,
            one_shot,
            next_at: Instant::now(),
            prev: None,
            files: StatFiles::kept(),
        }
    }
}

impl BodySource<Engine> for StatsStream {
    fn pull(&mut self, engine: &mut Engine, _me: ConnId, out: &mut Vec<u8>) -> Pull {
        let now = Instant::now();
        if now < self.next_at {
            return Pull::Wait(Some(self.next_at));
        }
        if engine.containers.get(&self.id).is_none() {
            // Removed while streamed: dockerd ends the stream.
            return Pull::End;
        }
        self.next_at = now + INTERVAL;
        let cur = engine.stats_reading(&self.id, &mut self.files);
        // A single answer for a running container carries a previous
        // reading, as dockerd's (which waits for the collector's second
        // tick); one-shot answers at once without one.
        if !self.stream && !self.one_shot && self.prev.is_none() && cur.is_some() {
            self.prev = cur;
            return Pull::Wait(Some(self.next_at));
        }
        let v = stats_json(&self.name, &self.id, cur.as_ref(), self.prev.as_ref());
        out.extend_from_slice(&crate::json::bytes(&v));
        out.push(b'\n');
        self.prev = cur;
        if self.stream {
            Pull::Data
        } else {
            Pull::End
        }
    }
}

/// v1 tables are always arrays (dockerd copies them); v2's one table is
/// null without devices.
fn blkio_rows(rows: &[BlkioEntry], v1: bool) -> Value {
    if rows.is_empty() && !v1 {
        return Value::Null;
    }
    rows.iter()
        .map(|r| json!({ "major": r.major, "minor": r.minor, "op": r.op, "value": r.value }))
        .collect()
}

fn cpu_json(r: Option<&Reading>) -> Value {
    let Some(r) = r else {
        return json!({
            "cpu_usage": { "total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0 },
            "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
        });
    };
    let s = &r.cgroup;
    let mut usage = json!({
        "total_usage": s.cpu_total,
        "usage_in_kernelmode": s.cpu_system,
        "usage_in_usermode": s.cpu_user,
    });
    if !s.cpu_percpu.is_empty() {
        usage["percpu_usage"] = json!(s.cpu_percpu);
    }
    json!({
        "cpu_usage": usage,
        "system_cpu_usage": r.system_cpu,
        "online_cpus": r.online_cpus,
        "throttling_data": {
            "periods": s.periods,
            "throttled_periods": s.throttled_periods,
            "throttled_time": s.throttled_time,
        },
    })
}

/// One stats object. `cur` None: the container is not running (dockerd
/// then sends only name and id, every other field zero).
pub fn stats_json(name: &str, id: &str, cur: Option<&Reading>, prev: Option<&Reading>) -> Value {
    let time = |r: Option<&Reading>| {
        r.map(|r| rfc3339_nano(r.read))
            .unwrap_or_else(|| ZERO_TIME.to_string())
    };
    let mut v = json!({
        "read": time(cur),
        "preread": time(prev),
        "pids_stats": {},
        "blkio_stats": {
            "io_service_bytes_recursive": null,
            "io_serviced_recursive": null,
            "io_queue_recursive": null,
            "io_service_time_recursive": null,
            "io_wait_time_recursive": null,
            "io_merged_recursive": null,
            "io_time_recursive": null,
            "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(cur),
        "precpu_stats": cpu_json(prev),
        "memory_stats": {},
        "name": name,
        "id": id,
    });
    let Some(r) = cur else {
        return v;
    };
    let s = &r.cgroup;
    let mut pids = Map::new();
    if let Some(c) = s.pids_current {
        pids.insert("current".into(), c.into());
    }
    if let Some(l) = s.pids_limit.filter(|l| *l > 0) {
        pids.insert("limit".into(), l.into());
    }
    v["pids_stats"] = Value::Object(pids);
    let v1 = s.version == Some(CgroupVersion::V1);
    v["blkio_stats"]["io_service_bytes_recursive"] = blkio_rows(&s.io_bytes, v1);
    if v1 {
        v["blkio_stats"]["io_serviced_recursive"] = blkio_rows(&s.io_ops, v1);
        // The CFQ-only tables: empty on current kernels.
        for k in [
            "io_queue_recursive",
            "io_service_time_recursive",
            "io_wait_time_recursive",
            "io_merged_recursive",
            "io_time_recursive",
            "sectors_recursive",
        ] {
            v["blkio_stats"][k] = json!([]);
        }
    }
    let mut mem = Map::new();
    mem.insert("usage".into(), s.mem_usage.into());
    if let Some(m) = s.mem_max_usage.filter(|m| *m > 0) {
        mem.insert("max_usage".into(), m.into());
    }
    mem.insert("stats".into(), json!(s.mem_stat));
    if let Some(f) = s.mem_failcnt.filter(|f| *f > 0) {
        mem.insert("failcnt".into(), f.into());
    }
    mem.insert("limit".into(), r.mem_limit.into());
    v["memory_stats"] = Value::Object(mem);
    if !r.networks.is_empty() {
        let nets: Map<String, Value> = r
            .networks
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    json!({
                        "rx_bytes": n.rx_bytes,
                        "rx_packets": n.rx_packets,
                        "rx_errors": n.rx_errors,
                        "rx_dropped": n.rx_dropped,
                        "tx_bytes": n.tx_bytes,
                        "tx_packets": n.tx_packets,
                        "tx_errors": n.tx_errors,
                        "tx_dropped": n.tx_dropped,
                    }),
                )
            })
            .collect();
        v["networks"] = Value::Object(nets);
    }
    v
}
