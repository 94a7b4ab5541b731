//! A client that hangs up while its prune is still deleting: the objects are
//! already gone from the engine, so the deletion must finish anyway. Found by
//! `scripts/fuzz-http.py` (issue 10's leak check): 263 `.tmp-rm-*` container
//! trees were left after 10 minutes of fuzzing, one per prune whose client
//! left before the answer (the worker was killed with the connection).

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::Daemon;

/// Names under `dir` that are temporary (renamed aside, waiting for deletion).
fn temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// Send `POST path` behind a `/_ping` and hang up once the ping's answer
/// has arrived, unread, and before the prune's: closing a unix socket with
/// unread data resets it, as a client killed mid-request does.
fn post_and_leave(d: &Daemon, path: &str) {
    let mut s = d.connect();
    let req = format!(
        "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\n\
         POST {path} HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    s.write_all(req.as_bytes()).expect("send prune");
    std::thread::sleep(Duration::from_millis(20));
    drop(s);
}

/// Wait up to 20 s for `dir` to hold no temporary entries.
fn settles(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = temps(dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn prunes_finish_when_their_client_leaves() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;

    // A container with many files in its upper dir, so deleting it takes
    // long enough for the hang-up to arrive first.
    let script = "mkdir /d && cd /d && seq 5000 | xargs touch";
    let o = d.docker(&["run", "--network", "none", "busybox", "sh", "-c", script]);
    assert!(o.status.success(), "{o:?}");
    let containers = d.data_root.join("containers");
    post_and_leave(&d, "/containers/prune");
    let left = settles(&containers);
    assert!(left.is_empty(), "container trees left behind: {left:?}");
    let ps = d.docker(&["ps", "-aq"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "{ps:?}"
    );

    // The same for volumes.
    let o = d.docker(&["volume", "create", "leave"]);
    assert!(o.status.success(), "{o:?}");
    let fill = "cd /v && seq 5000 | xargs touch";
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "leave:/v",
        "busybox",
        "sh",
        "-c",
        fill,
    ]);
    assert!(o.status.success(), "{o:?}");
    let volumes = d.data_root.join("volumes");
    post_and_leave(
        &d,
        "/volumes/prune?filters=%7B%22all%22%3A%5B%22true%22%5D%7D",
    );
    let left = settles(&volumes);
    assert!(left.is_empty(), "volume trees left behind: {left:?}");
    let ls = d.docker(&["volume", "ls", "-q"]);
    assert!(
        String::from_utf8_lossy(&ls.stdout).trim().is_empty(),
        "{ls:?}"
    );

    // The daemon still answers, and a prune whose client stays gets its answer.
    let r = d.request("POST", "/containers/prune", Some("{}"));
    assert_eq!(r.status, 200, "{}", r.body);
}
