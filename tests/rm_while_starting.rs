//! `docker rm -f` of a container whose start is still launching: the
//! launch's child is killed and, once it is reaped, its cgroup removed.
//! Found by the release soak (issue 20): a force-removal racing a start left
//! the container's cgroup, empty, in every controller.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{cgroup_dirs, Daemon};

/// Send a raw request on a fresh connection; the stream, to read later.
fn send(d: &Daemon, method: &str, path: &str) -> std::os::unix::net::UnixStream {
    let mut s = d.connect();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    s
}

fn status(mut s: std::os::unix::net::UnixStream) -> String {
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or("").to_string()
}

#[test]
fn force_removal_during_a_start_leaves_no_cgroup() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let mut ids = Vec::new();
    for _ in 0..25 {
        let r = d.request(
            "POST",
            "/containers/create",
            Some(r#"{"Image":"busybox","Cmd":["sleep","60"],"HostConfig":{"NetworkMode":"none"}}"#),
        );
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.json()["Id"].as_str().unwrap_or_default().to_string();
        // The start's launch takes milliseconds; the removal lands in it.
        let start = send(&d, "POST", &format!("/containers/{id}/start"));
        let rm = send(&d, "DELETE", &format!("/containers/{id}?force=1"));
        let (a, b) = (status(start), status(rm));
        assert!(b.contains(" 204 "), "rm -f: {b} (start: {a})");
        ids.push(id);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left: Vec<_> = ids.iter().flat_map(|id| cgroup_dirs(id)).collect();
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let ps = d.docker(&["ps", "-aq"]);
    assert!(
        String::from_utf8_lossy(&ps.stdout).trim().is_empty(),
        "{ps:?}"
    );
}
