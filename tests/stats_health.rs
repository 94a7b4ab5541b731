//! What a container sees of its cgroups (namespace, read-only
//! /sys/fs/cgroup with its limits) and `docker stats` / the stats endpoint,
//! driven by the docker CLI, raw HTTP and docker-py.

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::Value;
use std::time::{Duration, Instant};

fn host_is_v1() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            !m.lines()
                .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
        })
        .unwrap_or(true)
}

// ---------------------------------------------------------------- cgroups inside

#[test]
fn sys_fs_cgroup_shows_own_limits_read_only() {
    let d = Daemon::with_busybox();
    let script = if host_is_v1() {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; \
         cat /sys/fs/cgroup/pids/pids.max; \
         echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes && echo WROTE; \
         mkdir /sys/fs/cgroup/memory/sub && echo MKDIR; \
         touch /sys/fs/cgroup/x && echo TOUCHED; \
         grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo"
    } else {
        "cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/cpu.max; cat /sys/fs/cgroup/pids.max; \
         echo 1 > /sys/fs/cgroup/memory.max && echo WROTE; \
         mkdir /sys/fs/cgroup/sub && echo MKDIR; touch /sys/fs/cgroup/x && echo TOUCHED; \
         grep ' /sys/fs/cgroup ' /proc/self/mountinfo"
    };
    let o = dk(
        &d,
        &[
            "run",
            "--rm",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "77",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let l: Vec<&str> = out.lines().collect();
    if host_is_v1() {
        assert_eq!(l.first(), Some(&"67108864"), "{}", show(&o));
        assert_eq!(l.get(1..3), Some(&["150000", "100000"][..]), "{}", show(&o));
        assert_eq!(l.get(3), Some(&"77"), "{}", show(&o));
    } else {
        assert_eq!(l.first(), Some(&"67108864"), "{}", show(&o));
        assert_eq!(l.get(1), Some(&"150000 100000"), "{}", show(&o));
        assert_eq!(l.get(2), Some(&"77"), "{}", show(&o));
    }
    assert!(
        !out.contains("WROTE") && !out.contains("MKDIR") && !out.contains("TOUCHED"),
        "the container wrote to /sys/fs/cgroup: {}",
        show(&o)
    );
    assert!(err.contains("Read-only file system"), "{}", show(&o));
    let mnt = l.last().unwrap_or(&"");
    assert!(
        mnt.contains(" ro,") || mnt.contains(" ro "),
        "not read-only: {mnt}"
    );
}

#[test]
fn cgroup_namespace_host_by_default_on_v1_private_on_request() {
    let d = Daemon::with_busybox();
    let id = ok(&d, &["create", "busybox", "cat", "/proc/self/cgroup"]);
    let id = id.trim();
    let mode = inspect(&d, id)["HostConfig"]["CgroupnsMode"].clone();
    let want = if host_is_v1() { "host" } else { "private" };
    assert_eq!(mode, want);
    let o = ok(&d, &["start", "-a", id]);
    // Host mode shows the container's path in the host's hierarchy; a
    // private namespace makes that path its root.
    let mem_line = |text: &str| {
        text.lines()
            .find(|l| l.contains(":memory:") || l.starts_with("0::"))
            .unwrap_or("")
            .to_string()
    };
    if host_is_v1() {
        assert!(mem_line(&o).ends_with(&format!("/coracle/{id}")), "{o}");
    } else {
        assert_eq!(mem_line(&o), "0::/", "{o}");
    }
    let p = ok(
        &d,
        &[
            "run",
            "--rm",
            "--cgroupns",
            "private",
            "busybox",
            "cat",
            "/proc/self/cgroup",
        ],
    );
    assert!(mem_line(&p).ends_with(":/"), "{p}");
    // An exec joins the container's cgroup namespace too.
    let id2 = ok(
        &d,
        &[
            "run",
            "-d",
            "--cgroupns",
            "private",
            "busybox",
            "sleep",
            "30",
        ],
    );
    let e = ok(&d, &["exec", id2.trim(), "cat", "/proc/self/cgroup"]);
    assert!(mem_line(&e).ends_with(":/"), "{e}");
    assert_eq!(
        inspect(&d, id2.trim())["HostConfig"]["CgroupnsMode"],
        "private"
    );
    let r = d.request(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"CgroupnsMode":"shared"}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "invalid cgroup namespace mode: shared");
}

// ---------------------------------------------------------------- stats

/// A cgroup file of container `id`, v1 (`controller` dir) or v2.
fn cg_file(id: &str, controller: &str, v1_name: &str, v2_name: &str) -> String {
    let p = if host_is_v1() {
        std::path::PathBuf::from(format!(
            "/sys/fs/cgroup/{controller}/coracle/{id}/{v1_name}"
        ))
    } else {
        std::path::PathBuf::from(format!("/sys/fs/cgroup/coracle/{id}/{v2_name}"))
    };
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

fn cpu_usage_ns(id: &str) -> u64 {
    if host_is_v1() {
        cg_file(id, "cpuacct", "cpuacct.usage", "").parse().unwrap()
    } else {
        let t = cg_file(id, "", "", "cpu.stat");
        let us: u64 = t
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .unwrap()
            .parse()
            .unwrap();
        us * 1000
    }
}

const KEYS: &[&str] = &[
    "read",
    "preread",
    "cpu_stats",
    "precpu_stats",
    "memory_stats",
    "blkio_stats",
    "pids_stats",
    "num_procs",
    "name",
    "id",
    "storage_stats",
];

fn assert_shape(v: &Value) {
    for k in KEYS {
        assert!(v.get(*k).is_some(), "stats lack {k}: {v}");
    }
    for k in ["total_usage", "usage_in_kernelmode", "usage_in_usermode"] {
        assert!(v["cpu_stats"]["cpu_usage"][k].is_u64(), "{k}: {v}");
    }
    for k in ["periods", "throttled_periods", "throttled_time"] {
        assert!(v["cpu_stats"]["throttling_data"][k].is_u64(), "{k}: {v}");
    }
}

/// Read `n` JSON lines of a streamed response (chunk framing skipped).
fn stream_objects(d: &Daemon, path: &str, n: usize) -> (Vec<Value>, Vec<Instant>) {
    use std::io::{BufRead, BufReader, Write};
    let mut s = d.connect();
    write!(s, "GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut out = Vec::new();
    let mut times = Vec::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
    while out.len() < n {
        line.clear();
        if r.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.starts_with('{') {
            out.push(serde_json::from_str(line.trim()).unwrap());
            times.push(Instant::now());
        }
    }
    (out, times)
}

#[test]
fn stats_one_shot_and_single_agree_with_the_cgroup() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "st",
            // Only lo (the default is the bridge now).
            "--network",
            "none",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            "busybox",
            "sh",
            "-c",
            "sleep 1000 & sleep 1000 & while :; do :; done",
        ],
    );
    let id = id.trim().to_string();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_usage_ns(&id);
    let t0 = Instant::now();
    let r = d.request("GET", "/containers/st/stats?stream=false", None);
    let waited = t0.elapsed();
    let after = cpu_usage_ns(&id);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_shape(&v);
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["name"], "/st");
    // Two readings a second apart: the CPU delta a client draws.
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_ne!(v["preread"], "0001-01-01T00:00:00Z");
    let total = v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap();
    let pre = v["precpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .unwrap();
    assert!(
        before <= total && total <= after,
        "{before} <= {total} <= {after}"
    );
    assert!(pre >= before && pre < total, "busy loop: {pre} < {total}");
    assert!(
        v["cpu_stats"]["system_cpu_usage"].as_u64().unwrap()
            > v["precpu_stats"]["system_cpu_usage"].as_u64().unwrap()
    );
    assert!(v["cpu_stats"]["online_cpus"].as_u64().unwrap() >= 1);
    assert_eq!(v["memory_stats"]["limit"], 67108864);
    assert!(v["memory_stats"]["usage"].as_u64().unwrap() > 0);
    let stats = v["memory_stats"]["stats"].as_object().unwrap();
    let want_key = if host_is_v1() {
        "total_inactive_file"
    } else {
        "inactive_file"
    };
    assert!(stats.contains_key(want_key), "{stats:?}");
    assert_eq!(v["pids_stats"]["limit"], 50);
    assert_eq!(
        v["pids_stats"]["current"].as_u64().unwrap().to_string(),
        cg_file(&id, "pids", "pids.current", "pids.current")
    );
    assert_eq!(v["pids_stats"]["current"], 3);
    assert!(v["blkio_stats"]["io_service_bytes_recursive"].is_array() || !host_is_v1());
    // --network none: only lo, which dockerd leaves out.
    assert!(v.get("networks").is_none(), "{v}");

    // one-shot: at once, no previous reading.
    let t0 = Instant::now();
    let r = d.request(
        "GET",
        "/containers/st/stats?stream=false&one-shot=true",
        None,
    );
    assert!(t0.elapsed() < Duration::from_millis(800));
    let v = r.json();
    assert_shape(&v);
    assert_eq!(v["preread"], "0001-01-01T00:00:00Z");
    assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    assert!(v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap() > 0);

    // Errors as dockerd words them.
    let r = d.request(
        "GET",
        "/containers/st/stats?stream=true&one-shot=true",
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "cannot have stream=true and one-shot=true"
    );
    let r = d.request("GET", "/containers/nope/stats?stream=false", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such container: nope");

    // A stopped container: name and id, zeros, at once.
    ok(&d, &["create", "--name", "idle", "busybox", "true"]);
    let t0 = Instant::now();
    let v = d
        .request("GET", "/containers/idle/stats?stream=false", None)
        .json();
    assert!(t0.elapsed() < Duration::from_millis(800));
    assert_shape(&v);
    assert_eq!(v["name"], "/idle");
    assert_eq!(v["read"], "0001-01-01T00:00:00Z");
    assert_eq!(v["memory_stats"], serde_json::json!({}));
}

#[test]
fn stats_stream_once_a_second_until_removed() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "sx",
            "busybox",
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    let id = id.trim().to_string();
    let (objs, times) = stream_objects(&d, "/containers/sx/stats", 3);
    assert_eq!(objs.len(), 3);
    for o in &objs {
        assert_shape(o);
    }
    // Each object's previous reading is the one sent before it.
    for w in objs.windows(2) {
        assert_eq!(w[1]["preread"], w[0]["read"]);
        assert_eq!(w[1]["precpu_stats"], w[0]["cpu_stats"]);
    }
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap > Duration::from_millis(700) && gap < Duration::from_millis(1600),
            "{gap:?}"
        );
    }
    // The stream ends when the container is removed.
    use std::io::{BufRead, BufReader, Write};
    let mut s = d.connect();
    write!(
        s,
        "GET /containers/{id}/stats HTTP/1.1\r\nHost: docker\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    ok(&d, &["rm", "-f", "sx"]);
    let t0 = Instant::now();
    // The last chunk arrives (the connection itself stays open).
    loop {
        line.clear();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "closed without the last chunk"
        );
        if line == "0\r\n" {
            break;
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
}

fn parse_row(out: &str, name: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no row for {name}: {out}"));
    line.split("   ")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn docker_stats_table_live_and_no_stream() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "tb",
            // No interface but lo: NetIO stays 0B / 0B.
            "--network",
            "none",
            "-m",
            "64m",
            "busybox",
            "sh",
            "-c",
            "sleep 1000 & while :; do :; done",
        ],
    );
    let out = ok(
        &d,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}",
        ],
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("tb|"))
        .unwrap_or_else(|| panic!("{out}"));
    let cols: Vec<&str> = row.split('|').collect();
    let cpu: f64 = cols[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu > 1.0, "a busy loop shows CPU: {row}");
    assert!(cols[2].ends_with("/ 64MiB"), "{row}");
    assert_eq!(cols[3], "0B / 0B", "{row}");
    assert!(cols[4].contains(" / "), "{row}");
    assert_eq!(cols[5], "2", "{row}");
    // The default table too.
    let out = ok(&d, &["stats", "--no-stream"]);
    assert!(out.starts_with("CONTAINER ID"), "{out}");
    let row = parse_row(&out, "tb");
    assert_eq!(row.last().map(String::as_str), Some("2"), "{out}");

    // Live: redraws every second until interrupted.
    let mut c = docker_cmd(&d, &["stats", "--format", "{{.Name}} {{.PIDs}}", "tb"]);
    let child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    unsafe_kill(child.id());
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    let draws = text.matches("tb 2").count();
    assert!(draws >= 2, "live stats redraw: {text:?}");
}

fn unsafe_kill(pid: u32) {
    let _ = std::process::Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status();
}

#[test]
fn docker_py_stats_keys() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &["run", "-d", "--name", "py", "busybox", "sleep", "1000"],
    );
    let script = format!(
        r#"
import docker, json
c = docker.DockerClient(base_url="unix://{}")
s = c.containers.get("py").stats(stream=False)
print(json.dumps(sorted(s.keys())))
print(json.dumps(s["memory_stats"]))
g = c.containers.get("py").stats(stream=True, decode=True)
a = next(g); b = next(g)
print(json.dumps([a["read"], b["preread"]]))
"#,
        d.sock.display()
    );
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3 with docker-py");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let keys: Vec<&str> = lines[0]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for k in KEYS {
        assert!(keys.contains(k), "{k} missing from {keys:?}");
    }
    for k in ["usage", "stats", "limit"] {
        assert!(lines[1].get(k).is_some(), "{k}: {}", lines[1]);
    }
    assert_eq!(lines[2][0], lines[2][1]);
}

#[test]
fn stats_networks_per_interface() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "nw",
            "--network",
            "none",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let pid = inspect(&d, id.trim())["State"]["Pid"]
        .as_i64()
        .unwrap()
        .to_string();
    let ip = |args: &[&str]| {
        let o = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let host_end = format!("cst{}", std::process::id() % 100000);
    ip(&[
        "link", "add", &host_end, "type", "veth", "peer", "name", "eth7", "netns", &pid,
    ]);
    let v = d
        .request(
            "GET",
            "/containers/nw/stats?stream=false&one-shot=true",
            None,
        )
        .json();
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &host_end])
        .status();
    let nets = v["networks"].as_object().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(
        nets.keys().collect::<Vec<_>>(),
        ["eth7"],
        "lo is left out: {v}"
    );
    for k in [
        "rx_bytes",
        "rx_packets",
        "rx_errors",
        "rx_dropped",
        "tx_bytes",
        "tx_packets",
        "tx_errors",
        "tx_dropped",
    ] {
        assert!(nets["eth7"][k].is_u64(), "{k}: {v}");
    }
    // --network host: dockerd reports no interfaces.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "hn",
            "--network",
            "host",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let v = d
        .request(
            "GET",
            "/containers/hn/stats?stream=false&one-shot=true",
            None,
        )
        .json();
    assert!(v.get("networks").is_none(), "{v}");
}

// ---------------------------------------------------------------- healthchecks

fn health(d: &Daemon, name: &str) -> Value {
    inspect(d, name)["State"]["Health"].clone()
}

fn wait_health(d: &Daemon, name: &str, want: &str, secs: u64) -> Value {
    let t0 = Instant::now();
    loop {
        let h = health(d, name);
        if h["Status"] == want {
            return h;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "{name} never became {want}: {h}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ps_names(d: &Daemon, filter: &str) -> Vec<String> {
    ok(d, &["ps", "--filter", filter, "--format", "{{.Names}}"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn health_starting_unhealthy_healthy_with_events_ps_and_filter() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "hc",
            "--health-cmd",
            "test -f /ok && echo fine",
            "--health-interval",
            "1s",
            "--health-retries",
            "2",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let id = id.trim();
    ok(
        &d,
        &["run", "-d", "--name", "plain", "busybox", "sleep", "1000"],
    );
    let h = health(&d, "hc");
    assert_eq!(h["Status"], "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0);
    let status = ok(
        &d,
        &["ps", "--filter", "name=hc", "--format", "{{.Status}}"],
    );
    assert!(status.trim().ends_with("(health: starting)"), "{status}");
    assert_eq!(ps_names(&d, "health=starting"), ["hc"]);

    let h = wait_health(&d, "hc", "unhealthy", 10);
    assert_eq!(h["FailingStreak"], 2, "{h}");
    assert_eq!(h["Log"][0]["ExitCode"], 1, "{h}");
    let status = ok(
        &d,
        &["ps", "--filter", "name=hc", "--format", "{{.Status}}"],
    );
    assert!(status.trim().ends_with("(unhealthy)"), "{status}");
    assert_eq!(ps_names(&d, "health=unhealthy"), ["hc"]);
    assert_eq!(ps_names(&d, "health=none"), ["plain"]);
    assert!(inspect(&d, "plain")["State"].get("Health").is_none());

    ok(&d, &["exec", "hc", "touch", "/ok"]);
    let h = wait_health(&d, "hc", "healthy", 5);
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let log = h["Log"].as_array().unwrap();
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0, "{h}");
    assert_eq!(last["Output"], "fine\n", "{h}");
    assert!(last["Start"].as_str().unwrap() <= last["End"].as_str().unwrap());
    let status = ok(
        &d,
        &["ps", "--filter", "name=hc", "--format", "{{.Status}}"],
    );
    assert!(status.trim().ends_with("(healthy)"), "{status}");
    assert_eq!(ps_names(&d, "health=healthy"), ["hc"]);

    // At most the last 5 results.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(health(&d, "hc")["Log"].as_array().unwrap().len(), 5);

    let events: Vec<String> = d
        .events(Some(&format!(r#"{{"container":["{id}"]}}"#)))
        .iter()
        .map(|e| e["Action"].as_str().unwrap_or("").to_string())
        .filter(|a| a.starts_with("health_status"))
        .collect();
    assert_eq!(
        events,
        ["health_status: unhealthy", "health_status: healthy"],
        "{events:?}"
    );
    let r = d.request(
        "GET",
        "/containers/json?filters=%7B%22health%22%3A%5B%22bad%22%5D%7D",
        None,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Unrecognised filter value for health: bad"
    );
}

/// Every file under the data root with its size and mtime.
fn tree_state(root: &std::path::Path) -> Vec<(String, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                // The overlay's merged view is the container's own rootfs.
                if p.file_name().is_some_and(|n| n == "merged") {
                    continue;
                }
                todo.push(p.clone());
            }
            out.push((
                p.display().to_string(),
                md.len(),
                md.mtime_nsec() + md.mtime() * 1_000_000_000,
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn health_probes_write_nothing_to_the_data_root() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "quiet",
            "--health-cmd",
            "true",
            "--health-interval",
            "500ms",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    wait_health(&d, "quiet", "healthy", 5);
    let before = tree_state(&d.data_root);
    let ends_before = health(&d, "quiet")["Log"].clone();
    std::thread::sleep(Duration::from_millis(2600));
    let after = tree_state(&d.data_root);
    let ends_after = health(&d, "quiet")["Log"].clone();
    assert_ne!(ends_before, ends_after, "probes ran meanwhile");
    assert_eq!(before, after, "the data root changed while probes ran");
}

#[test]
fn health_timeout_no_healthcheck_and_bad_settings() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "slow",
            "--health-cmd",
            "sleep 5",
            "--health-interval",
            "1s",
            "--health-timeout",
            "300ms",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let h = wait_health(&d, "slow", "unhealthy", 6);
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    assert_eq!(
        h["Log"][0]["Output"], "Health check exceeded timeout (300ms)",
        "{h}"
    );

    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "off",
            "--no-healthcheck",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let i = inspect(&d, "off");
    assert_eq!(
        i["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(i["State"].get("Health").is_none(), "{}", i["State"]);

    for (hc, msg) in [
        (
            r#"{"Test":["CMD","true"],"Interval":1000}"#,
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            r#"{"Test":["CMD","true"],"Timeout":-5}"#,
            "Timeout in Healthcheck cannot be less than 1ms",
        ),
        (
            r#"{"Test":["CMD","true"],"Retries":-1}"#,
            "Retries in Healthcheck cannot be negative",
        ),
        (
            r#"{"Test":["CMD","true"],"StartPeriod":10}"#,
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ),
    ] {
        let body = format!(r#"{{"Image":"busybox","Healthcheck":{hc}}}"#);
        let r = d.request("POST", "/containers/create", Some(&body));
        assert_eq!(r.status, 400, "{hc}: {}", r.body);
        assert_eq!(r.json()["message"], msg);
    }
}

/// The busybox archive with a HEALTHCHECK in its config, tagged `hc:img`.
fn image_with_healthcheck(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("hc.tar");
    let script = r#"
import hashlib, io, json, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
t = tarfile.open(src)
files = {m.name: (m, t.extractfile(m).read() if m.isfile() else None) for m in t.getmembers()}
manifest = json.loads(files["manifest.json"][1])
cfg = json.loads(files[manifest[0]["Config"]][1])
cfg["config"]["Healthcheck"] = {"Test": ["CMD-SHELL", "test -f /img-ok"], "Interval": 1000000000, "Retries": 1}
raw = json.dumps(cfg).encode()
name = hashlib.sha256(raw).hexdigest() + ".json"
del files[manifest[0]["Config"]]
manifest[0]["Config"] = name
manifest[0]["RepoTags"] = ["hc:img"]
files.pop("repositories", None)
with tarfile.open(dst, "w") as o:
    for n, (m, data) in files.items():
        if n == "manifest.json":
            continue
        if data is None:
            o.addfile(m)
        else:
            m.size = len(data); o.addfile(m, io.BytesIO(data))
    for n, data in [(name, raw), ("manifest.json", json.dumps(manifest).encode())]:
        ti = tarfile.TarInfo(n); ti.size = len(data); o.addfile(ti, io.BytesIO(data))
"#;
    let o = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(common::busybox_tar())
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn healthcheck_from_the_image_config() {
    let d = Daemon::with_busybox();
    let tar = image_with_healthcheck(&d.dir);
    ok(&d, &["load", "-i", tar.to_str().unwrap()]);
    ok(
        &d,
        &["run", "-d", "--name", "fromimg", "hc:img", "sleep", "1000"],
    );
    let i = inspect(&d, "fromimg");
    assert_eq!(
        i["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /img-ok"])
    );
    wait_health(&d, "fromimg", "unhealthy", 6);
    ok(&d, &["exec", "fromimg", "touch", "/img-ok"]);
    wait_health(&d, "fromimg", "healthy", 5);
    // Flags override field by field; the image's test stays.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "merged",
            "--health-retries",
            "7",
            "hc:img",
            "sleep",
            "1000",
        ],
    );
    let hc = inspect(&d, "merged")["Config"]["Healthcheck"].clone();
    assert_eq!(
        hc["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /img-ok"]),
        "{hc}"
    );
    assert_eq!(hc["Retries"], 7, "{hc}");
    assert_eq!(hc["Interval"], 1000000000_i64, "{hc}");
    // --no-healthcheck disables the image's.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "none",
            "--no-healthcheck",
            "hc:img",
            "sleep",
            "1000",
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(inspect(&d, "none")["State"].get("Health").is_none());
}
