//! The cached JSON of `GET /containers/json` rows and `GET /containers/{id}/json`
//! bodies (engine/views.rs): every state change shows at once, through raw HTTP
//! and the docker CLI, and a cached body equals a freshly built one (the
//! `size=1` answers are built anew each time).

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::Value;
use std::process::Command;

/// Links this test's daemon makes, deleted after it is gone.
struct Links(Vec<&'static str>);

impl Drop for Links {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
    }
}

/// The `ps -a` row of `id` over raw HTTP (None when it is not listed).
fn row(d: &Daemon, id: &str) -> Option<Value> {
    let r = d.request("GET", "/containers/json?all=1", None);
    assert_eq!(r.status, 200, "{r:?}");
    r.json().as_array()?.iter().find(|c| c["Id"] == id).cloned()
}

/// The same row built anew (`size=1` bypasses the cache), sizes dropped.
fn fresh_row(d: &Daemon, id: &str) -> Option<Value> {
    let r = d.request("GET", "/containers/json?all=1&size=1", None);
    assert_eq!(r.status, 200, "{r:?}");
    let mut v = r
        .json()
        .as_array()?
        .iter()
        .find(|c| c["Id"] == id)
        .cloned()?;
    let m = v.as_object_mut()?;
    m.remove("SizeRw");
    m.remove("SizeRootFs");
    Some(v)
}

fn fresh_inspect(d: &Daemon, id: &str) -> Value {
    let r = d.request("GET", &format!("/containers/{id}/json?size=1"), None);
    assert_eq!(r.status, 200, "{r:?}");
    let mut v = r.json();
    if let Some(m) = v.as_object_mut() {
        m.remove("SizeRw");
        m.remove("SizeRootFs");
    }
    v
}

/// Fill the caches (list row and inspect body, twice each) before a change.
fn warm(d: &Daemon, id: &str) {
    for _ in 0..2 {
        assert!(row(d, id).is_some(), "{id} listed");
        inspect(d, id);
    }
}

/// The cached answers equal freshly built ones (`Status` of a row can tick
/// between the two requests: "Up 1 second" / "Up 2 seconds").
fn same_as_fresh(d: &Daemon, id: &str) {
    let mut cached = row(d, id).expect("listed");
    let mut fresh = fresh_row(d, id).expect("listed");
    cached["Status"] = Value::Null;
    fresh["Status"] = Value::Null;
    assert_eq!(cached, fresh, "cached ps row differs from a fresh one");
    assert_eq!(
        inspect(d, id),
        fresh_inspect(d, id),
        "cached inspect differs from a fresh one"
    );
}

fn run_id(d: &Daemon, args: &[&str]) -> String {
    ok(d, args).trim().to_string()
}

#[test]
fn list_and_inspect_show_every_change_at_once() {
    let _links = Links(vec!["cpa0", "cpa1"]);
    let d = Daemon::with_config_and_busybox(r#"{"bridge": "cpa0", "bip": "10.231.7.1/24"}"#);

    // create, then rename (CLI): list and inspect both show the new name.
    let id = run_id(
        &d,
        &["create", "--name", "pa-one", "busybox", "sleep", "600"],
    );
    warm(&d, &id);
    assert_eq!(row(&d, &id).unwrap()["State"], "created");
    ok(&d, &["rename", "pa-one", "pa-two"]);
    assert_eq!(row(&d, &id).unwrap()["Names"][0], "/pa-two");
    assert_eq!(inspect(&d, &id)["Name"], "/pa-two");
    let ps = ok(&d, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert!(ps.contains("pa-two created"), "{ps}");
    same_as_fresh(&d, &id);

    // start (raw HTTP): running, with a pid and the bridge's address.
    warm(&d, &id);
    let r = d.request("POST", &format!("/containers/{id}/start"), None);
    assert_eq!(r.status, 204, "{r:?}");
    let rw = row(&d, &id).unwrap();
    assert_eq!(rw["State"], "running");
    assert!(rw["Status"].as_str().unwrap().starts_with("Up"), "{rw}");
    let i = inspect(&d, &id);
    assert_eq!(i["State"]["Running"], true);
    assert!(i["State"]["Pid"].as_i64().unwrap() > 0, "{i}");
    let ip = i["NetworkSettings"]["Networks"]["bridge"]["IPAddress"].clone();
    assert!(ip.as_str().unwrap().starts_with("10.231.7."), "{i}");
    assert_eq!(rw["NetworkSettings"]["Networks"]["bridge"]["IPAddress"], ip);
    same_as_fresh(&d, &id);

    // pause / unpause (CLI).
    warm(&d, &id);
    ok(&d, &["pause", "pa-two"]);
    let rw = row(&d, &id).unwrap();
    assert_eq!(rw["State"], "paused");
    assert!(rw["Status"].as_str().unwrap().contains("(Paused)"), "{rw}");
    assert_eq!(inspect(&d, &id)["State"]["Paused"], true);
    let ps = ok(&d, &["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("pa-two Up") && ps.contains("(Paused)"), "{ps}");
    ok(&d, &["unpause", "pa-two"]);
    assert_eq!(row(&d, &id).unwrap()["State"], "running");
    assert_eq!(inspect(&d, &id)["State"]["Paused"], false);

    // update without labels (CLI): the new settings in inspect at once.
    warm(&d, &id);
    ok(
        &d,
        &[
            "update",
            "--cpu-shares",
            "512",
            "--restart",
            "on-failure:3",
            "pa-two",
        ],
    );
    let i = inspect(&d, &id);
    assert_eq!(i["HostConfig"]["CpuShares"], 512, "{}", i["HostConfig"]);
    assert_eq!(i["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    let f = ok(
        &d,
        &["inspect", "-f", "{{.HostConfig.CpuShares}}", "pa-two"],
    );
    assert_eq!(f.trim(), "512");
    same_as_fresh(&d, &id);

    // network connect / disconnect (CLI; a user network on its own bridge).
    ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.231.8.0/24",
            "-o",
            "com.docker.network.bridge.name=cpa1",
            "pa-net",
        ],
    );
    warm(&d, &id);
    ok(&d, &["network", "connect", "pa-net", "pa-two"]);
    let rw = row(&d, &id).unwrap();
    assert!(
        rw["NetworkSettings"]["Networks"]["pa-net"].is_object(),
        "{rw}"
    );
    let i = inspect(&d, &id);
    let a = i["NetworkSettings"]["Networks"]["pa-net"]["IPAddress"].clone();
    assert!(a.as_str().unwrap().starts_with("10.231.8."), "{i}");
    same_as_fresh(&d, &id);
    warm(&d, &id);
    ok(&d, &["network", "disconnect", "pa-net", "pa-two"]);
    assert!(row(&d, &id).unwrap()["NetworkSettings"]["Networks"]["pa-net"].is_null());
    assert!(inspect(&d, &id)["NetworkSettings"]["Networks"]["pa-net"].is_null());

    // stop (raw HTTP): exited, its code and Status text at once.
    warm(&d, &id);
    let r = d.request("POST", &format!("/containers/{id}/stop?t=0"), None);
    assert_eq!(r.status, 204, "{r:?}");
    let rw = row(&d, &id).unwrap();
    assert_eq!(rw["State"], "exited");
    assert!(
        rw["Status"].as_str().unwrap().starts_with("Exited (137)"),
        "{rw}"
    );
    let i = inspect(&d, &id);
    assert_eq!(i["State"]["Status"], "exited");
    assert_eq!(i["State"]["Pid"], 0);
    assert!(
        i["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == "",
        "{i}"
    );
    same_as_fresh(&d, &id);
    // Not running: gone from the default (running only) list.
    let r = d.request("GET", "/containers/json", None);
    assert!(!r.body.contains(&id), "{}", r.body);

    // health: the probe's verdict reaches the row as soon as inspect has it.
    let hid = run_id(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "pa-health",
            "--network",
            "none",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            "busybox",
            "sleep",
            "600",
        ],
    );
    warm(&d, &hid);
    wait_for("pa-health healthy", 30, || {
        inspect(&d, &hid)["State"]["Health"]["Status"] == "healthy"
    });
    let rw = row(&d, &hid).unwrap();
    assert!(
        rw["Status"].as_str().unwrap().ends_with("(healthy)"),
        "{rw}"
    );
    let r = d.request(
        "GET",
        "/containers/json?filters=%7B%22health%22%3A%5B%22healthy%22%5D%7D",
        None,
    );
    assert!(r.body.contains(&hid), "{}", r.body);
    // Each probe adds to the health log: inspect shows the newest at once.
    let last_end = |v: &Value| {
        let log = &v["State"]["Health"]["Log"];
        log.as_array()
            .and_then(|a| a.last())
            .map(|e| e["End"].clone())
            .unwrap_or(Value::Null)
    };
    let before = last_end(&inspect(&d, &hid));
    wait_for("another probe in the health log", 30, || {
        last_end(&inspect(&d, &hid)) != before
    });
    same_as_fresh(&d, &hid);

    // exec: a running exec is in inspect's ExecIDs at once, and gone after
    // it ends.
    warm(&d, &hid);
    ok(&d, &["exec", "-d", "pa-health", "sleep", "2"]);
    let ids = inspect(&d, &hid)["ExecIDs"].clone();
    assert_eq!(ids.as_array().map(Vec::len), Some(1), "{ids}");
    wait_for("the exec to end", 20, || {
        inspect(&d, &hid)["ExecIDs"].is_null()
    });
    same_as_fresh(&d, &hid);

    // rm -f (CLI): gone from the list, inspect 404.
    warm(&d, &hid);
    ok(&d, &["rm", "-f", "pa-health"]);
    assert!(row(&d, &hid).is_none());
    let r = d.request("GET", &format!("/containers/{hid}/json"), None);
    assert_eq!(r.status, 404, "{r:?}");
    let ps = ok(&d, &["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!ps.contains("pa-health"), "{ps}");

    // An old API version's shape is not served from the newest one's cache.
    warm(&d, &id);
    let r = d.request("GET", "/v1.11/containers/json?all=1", None);
    assert_eq!(r.status, 200, "{r:?}");
    let old = r.json();
    let o = old
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Id"] == id)
        .unwrap();
    assert!(o["Status"].as_str().unwrap().starts_with("Exit 137"), "{o}");
    let r = d.request("GET", &format!("/v1.11/containers/{id}/json"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["State"]["Running"], false);

    ok(&d, &["rm", "-f", "pa-two"]);
    ok(&d, &["network", "rm", "pa-net"]);
}

/// The next stats object of a streaming `GET /containers/{id}/stats`.
fn next_stats(r: &mut impl std::io::BufRead) -> Value {
    let mut line = String::new();
    loop {
        line.clear();
        let n = r.read_line(&mut line).expect("read the stats stream");
        assert!(n > 0, "stats stream ended");
        let t = line.trim();
        if t.starts_with('{') {
            return serde_json::from_str(t).expect("a stats object");
        }
    }
}

fn cpu_total(v: &Value) -> u64 {
    v["cpu_stats"]["cpu_usage"]["total_usage"]
        .as_u64()
        .unwrap_or(0)
}

/// A stats stream keeps its counter files open between readings: the
/// readings still move, and follow the container into a new cgroup when
/// it restarts.
#[test]
fn streamed_stats_stay_fresh_across_a_restart() {
    use std::io::{BufReader, Write};
    let d = Daemon::with_busybox();
    let id = run_id(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "pa-busy",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    let mut s = d.connect();
    s.write_all(format!("GET /containers/{id}/stats HTTP/1.1\r\nHost: d\r\n\r\n").as_bytes())
        .unwrap();
    let mut r = BufReader::new(s);
    let first = next_stats(&mut r);
    let mut last = cpu_total(&first);
    for _ in 0..2 {
        let v = next_stats(&mut r);
        assert!(cpu_total(&v) > last, "cpu did not move: {last} then {v}");
        assert!(v["pids_stats"]["current"].as_u64().unwrap_or(0) >= 1, "{v}");
        assert!(v["memory_stats"]["usage"].as_u64().unwrap_or(0) > 0, "{v}");
        last = cpu_total(&v);
    }
    ok(&d, &["restart", "-t", "0", "pa-busy"]);
    // Readings from the new cgroup: its counters start again from zero.
    let mut fresh = None;
    for _ in 0..15 {
        let v = next_stats(&mut r);
        let t = cpu_total(&v);
        if t > 0 && t < last {
            fresh = Some(t);
            break;
        }
    }
    let t = fresh.expect("no reading from the restarted container's cgroup");
    let v = next_stats(&mut r);
    assert!(
        cpu_total(&v) > t,
        "cpu did not move after the restart: {t} then {v}"
    );
    assert!(v["pids_stats"]["current"].as_u64().unwrap_or(0) >= 1, "{v}");
    ok(&d, &["rm", "-f", "pa-busy"]);
}
