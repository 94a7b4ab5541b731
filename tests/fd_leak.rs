//! Issue 20, the soak's fd leak: the daemon's open files return to where they
//! were once the containers that restarted are gone. API restarts race the
//! `--restart always` policy's restarts (and stops, starts, kills, and runs
//! that end on their own while a stop or restart waits for them), then every
//! container is removed; execs in a container that restarts release theirs.
//! One daemon serves every check (run one after the other: the counts are
//! the daemon's).

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Daemon;

/// The daemon's open fds, each as `readlink` shows it.
fn fds_of(pid: i32) -> Vec<String> {
    let dir = format!("/proc/{pid}/fd");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir)
        .expect("read the daemon's fd dir")
        .flatten()
    {
        if let Ok(t) = std::fs::read_link(e.path()) {
            out.push(t.to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// The kinds of fds and how many of each (pipes, sockets, anon inodes, files).
fn kinds(fds: &[String]) -> String {
    let mut m = std::collections::BTreeMap::<String, usize>::new();
    for f in fds {
        let k = match f.split_once(':') {
            Some((k, _)) if !f.starts_with('/') => k.to_string(),
            _ => f.clone(),
        };
        *m.entry(k).or_default() += 1;
    }
    format!("{m:?}")
}

/// One request on its own connection; the status (0: no answer in time).
fn call(sock: &std::path::Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let Ok(mut s) = UnixStream::connect(sock) else {
        return (0, "connect failed".into());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(40)));
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, "send failed".into());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn create(d: &Daemon, body: &str) -> String {
    let r = d.request("POST", "/containers/create", Some(body));
    assert_eq!(r.status, 201, "create: {r:?}");
    r.json()["Id"].as_str().expect("Id").to_string()
}

fn start(d: &Daemon, id: &str) {
    let r = d.request("POST", &format!("/containers/{id}/start"), None);
    assert_eq!(r.status, 204, "start: {r:?}");
}

fn remove(d: &Daemon, id: &str) {
    let r = d.request("DELETE", &format!("/containers/{id}?force=1"), None);
    assert_eq!(r.status, 204, "rm -f: {r:?}");
}

/// Wait (up to `secs`) for the daemon's fd count to come down to `limit`;
/// the fds at the end.
fn settle(pid: i32, limit: usize, secs: u64) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let fds = fds_of(pid);
        if fds.len() <= limit || Instant::now() > deadline {
            return fds;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The fds in `now` that `before` did not have (as many of each as are new).
fn extra(before: &[String], now: &[String]) -> Vec<String> {
    let mut left = before.to_vec();
    let mut out = Vec::new();
    for f in now {
        // Pipes and sockets are new objects whatever their number: compare kinds.
        let key = |s: &String| match s.split_once(':') {
            Some((k, _)) if !s.starts_with('/') => k.to_string(),
            _ => s.clone(),
        };
        match left.iter().position(|b| key(b) == key(f)) {
            Some(i) => {
                left.remove(i);
            }
            None => out.push(f.clone()),
        }
    }
    out
}

/// Four clients changing `ids` at random with `ops` for `secs` seconds; each
/// answer other than 204, 304 (already so) or 409 (kill of a container that
/// is not running) is recorded in `bad`.
fn race(
    ids: &[String],
    sock: &std::path::Path,
    ops: &[&'static str],
    secs: u64,
    done: &Arc<AtomicUsize>,
    bad: &Arc<Mutex<Vec<String>>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4usize)
        .map(|k| {
            let (ids, ops, stop, done, bad, sock) = (
                ids.to_vec(),
                ops.to_vec(),
                stop.clone(),
                done.clone(),
                bad.clone(),
                sock.to_path_buf(),
            );
            std::thread::spawn(move || {
                let mut n = k * 7;
                while !stop.load(Ordering::SeqCst) {
                    n = n.wrapping_mul(31).wrapping_add(17);
                    let id = &ids[n % ids.len()];
                    let op = ops[(n / 3) % ops.len()];
                    let (status, text) =
                        call(&sock, "POST", &format!("/containers/{id}/{op}"), None);
                    if !matches!(status, 204 | 304 | 409) {
                        bad.lock().unwrap().push(format!("{op}: {text}"));
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis((n % 150) as u64));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread");
    }
}

/// A small fixed slack for fds the daemon opens once and keeps (none are
/// expected after the warm-up; this only absorbs a connection being closed).
const SLACK: usize = 3;

#[test]
fn fds_return_after_racing_restarts_and_execs() {
    let d = Daemon::with_busybox();
    let pid = d.pid();
    let sock = d.sock.clone();

    // Warm-up: whatever the daemon opens once (and keeps) on a first start.
    let w = create(
        &d,
        r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"none"}}"#,
    );
    start(&d, &w);
    common::cli::wait_exited(&d, &w, 20);
    remove(&d, &w);
    std::thread::sleep(Duration::from_millis(500));
    let before = fds_of(pid);

    // 1. Three `--restart always` containers whose runs last a second, and
    //    four clients restarting, stopping, starting and killing them at
    //    random for ~12 s: API restarts race the policy's, runs end on their
    //    own while a stop or restart (t=3) waits for them.
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let id = create(
                &d,
                r#"{"Image":"busybox","Cmd":["sleep","1"],
                    "HostConfig":{"NetworkMode":"none","RestartPolicy":{"Name":"always"}}}"#,
            );
            start(&d, &id);
            id
        })
        .collect();
    let done = Arc::new(AtomicUsize::new(0));
    let bad = Arc::new(Mutex::new(Vec::<String>::new()));
    // First restarts only: nothing stops a container for good, so each one
    // must still be under its policy afterwards (a restart that met the
    // policy's own restart while it launched once left it stopped for good).
    race(&ids, &sock, &["restart?t=0"], 6, &done, &bad);
    std::thread::sleep(Duration::from_secs(4));
    for id in &ids {
        let r = d.request("GET", &format!("/containers/{id}/json"), None);
        let status = r.json()["State"]["Status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(
            status == "running" || status == "restarting",
            "a --restart always container after API restarts only is {status}"
        );
    }
    // Then every kind of change, and runs ending while a stop or restart
    // (t=3) waits for them.
    let ops = [
        "restart?t=0",
        "restart?t=0",
        "restart?t=3",
        "stop?t=0",
        "start",
        "kill",
    ];
    race(&ids, &sock, &ops, 8, &done, &bad);
    let bad = bad.lock().unwrap().clone();
    assert!(bad.is_empty(), "API calls failed: {bad:#?}");
    assert!(done.load(Ordering::SeqCst) >= 20, "too few API calls ran");
    let restarts: u64 = ids
        .iter()
        .map(|id| {
            let r = d.request("GET", &format!("/containers/{id}/json"), None);
            r.json()["RestartCount"].as_u64().unwrap_or(0)
        })
        .sum();
    for id in &ids {
        remove(&d, id);
    }
    let now = settle(pid, before.len() + SLACK, 15);
    assert!(
        now.len() <= before.len() + SLACK,
        "after {} API calls and {restarts} policy restarts, every container removed: \
         {} fds, {} before ({})\nbefore: {}\nnow:    {}\nnew: {:#?}",
        done.load(Ordering::SeqCst),
        now.len(),
        before.len(),
        SLACK,
        kinds(&before),
        kinds(&now),
        extra(&before, &now)
    );

    // 2. Execs in a container that restarts: their pipes go with the run
    //    that held them (the exec's processes die with the container's PID
    //    namespace).
    let before = fds_of(pid);
    let id = create(
        &d,
        r#"{"Image":"busybox","Cmd":["sleep","1000"],"HostConfig":{"NetworkMode":"none"}}"#,
    );
    start(&d, &id);
    for _ in 0..4 {
        for attach in [false, true] {
            let body = format!(
                r#"{{"Cmd":["sleep","1000"],"AttachStdout":{attach},"AttachStderr":{attach}}}"#
            );
            let r = d.request("POST", &format!("/containers/{id}/exec"), Some(&body));
            assert_eq!(r.status, 201, "exec create: {r:?}");
            let exec = r.json()["Id"].as_str().expect("exec Id").to_string();
            let r = d.request(
                "POST",
                &format!("/exec/{exec}/start"),
                Some(r#"{"Detach":true}"#),
            );
            assert_eq!(r.status, 200, "exec start: {r:?}");
        }
        let (status, text) = call(
            &sock,
            "POST",
            &format!("/containers/{id}/restart?t=0"),
            None,
        );
        assert_eq!(status, 204, "restart: {text}");
    }
    remove(&d, &id);
    let now = settle(pid, before.len() + SLACK, 15);
    assert!(
        now.len() <= before.len() + SLACK,
        "after 8 execs in a container restarted 4 times, then removed: {} fds, {} before\n\
         before: {}\nnow:    {}\nnew: {:#?}",
        now.len(),
        before.len(),
        kinds(&before),
        kinds(&now),
        extra(&before, &now)
    );
}
