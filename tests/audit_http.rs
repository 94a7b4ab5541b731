//! The HTTP-side holes of the audit (issue 10, items 2, 3, 4, 5, 7, 10, 13),
//! each driven against the real binary over raw sockets (and the docker CLI
//! where a client's habits matter). Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{children_of, Daemon};

/// Poll `f` every 50 ms for up to `secs`; true once it held.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// Paths under `root` whose name starts with `.tmp`.
fn temp_entries(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".tmp") {
                out.push(e.path().display().to_string());
            } else if e.file_type().is_ok_and(|t| t.is_dir()) && !name.starts_with("diff") {
                stack.push(e.path());
            }
        }
    }
    out
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Read what the daemon sends until it closes (or `limit` passes).
fn read_until_close(s: &mut UnixStream, limit: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < end {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

// ---------------------------------------------------------------------------
// Item 2: a chunked upload whose client leaves inside the framing.
// ---------------------------------------------------------------------------

#[test]
fn chunked_upload_closed_inside_framing_frees_slot_worker_and_temp_dir() {
    let d = Daemon::start();
    d.wait_serving();
    let pid = d.pid();
    let fds_before = fd_count(pid);
    // A real tar header as the first chunk: the worker waits for its data.
    let first = tar_header(b"x/layer.tar", 1 << 20, b'0').to_vec();
    // Ends inside a size line, inside the CRLF after data, inside a trailer.
    let tails: [&[u8]; 4] = [b"3f", b"4\r\nabcd\r", b"4\r\nabcd", b"0\r\nX-Trailer: y"];
    for (path, tail) in [
        ("/images/load", tails[0]),
        ("/images/load", tails[1]),
        ("/images/load", tails[2]),
        ("/images/load", tails[3]),
        ("/images/create?fromSrc=-&repo=cut", tails[0]),
        ("/images/create?fromSrc=-&repo=cut", tails[3]),
    ] {
        let mut s = d.connect();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(format!("{:x}\r\n", first.len()).as_bytes())
            .unwrap();
        s.write_all(&first).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.write_all(tail).unwrap();
        assert!(
            eventually(10, || !children_of(pid).is_empty()),
            "no worker started for {path}"
        );
        drop(s);
        assert!(
            eventually(10, || children_of(pid).is_empty()),
            "worker still alive after the client left inside {:?} ({path}): {:?}",
            String::from_utf8_lossy(tail),
            children_of(pid)
        );
    }
    assert!(
        eventually(10, || temp_entries(&d.data_root).is_empty()),
        "temp dirs left: {:?}",
        temp_entries(&d.data_root)
    );
    assert!(
        eventually(10, || fd_count(pid) <= fds_before),
        "fds grew from {fds_before} to {}",
        fd_count(pid)
    );
    d.wait_serving();
}

// ---------------------------------------------------------------------------
// Item 3: bodies that stop arriving.
// ---------------------------------------------------------------------------

fn stalled_body(d: &Daemon) -> UnixStream {
    let mut s = d.connect();
    s.write_all(
        b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"Image\"",
    )
    .unwrap();
    s
}

#[test]
fn stalled_body_times_out() {
    let d = Daemon::start_with(&["--head-timeout", "2"], false);
    d.wait_serving();
    let mut s = stalled_body(&d);
    let t = Instant::now();
    let (_, closed) = read_until_close(&mut s, Duration::from_secs(8));
    assert!(closed, "a stalled body was not timed out within 8 s");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "closed too early: {:?}",
        t.elapsed()
    );
    // A body that keeps trickling in (one byte a second) is not cut off.
    let mut s = d.connect();
    s.write_all(
        b"POST /containers/prune HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 4\r\n\r\n",
    )
    .unwrap();
    for b in b"{} " {
        std::thread::sleep(Duration::from_millis(1200));
        s.write_all(&[*b]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1200));
    s.write_all(b"\n").unwrap();
    let (out, _) = read_until_close(&mut s, Duration::from_secs(3));
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "trickled body: {text}");
}

#[test]
fn stalled_bodies_at_the_limit_do_not_lock_new_clients_out() {
    let max = 16;
    let d = Daemon::start_with(&["--max-connections", &max.to_string()], false);
    d.wait_serving();
    let stalled: Vec<UnixStream> = (0..max).map(|_| stalled_body(&d)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // More stalled bodies: each is let in by shedding the stalest one.
    let more: Vec<UnixStream> = (0..4).map(|_| stalled_body(&d)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // New clients are served.
    for i in 0..4 {
        let r = d.request("GET", "/_ping", None);
        assert_eq!(r.status, 200, "client {i} at the limit: {r:?}");
    }
    // The docker CLI too.
    let o = d.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(
        o.status.success(),
        "docker version at the limit: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The shed ones were the stalled bodies: some of them are closed now.
    let mut closed = 0;
    for mut s in stalled {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        let gone = match s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        if gone {
            closed += 1;
        }
    }
    assert!(closed >= 4, "only {closed} stalled connections were shed");
    drop(more);
}

// ---------------------------------------------------------------------------
// Item 4: Content-Length beside Transfer-Encoding.
// ---------------------------------------------------------------------------

#[test]
fn content_length_with_chunked_is_chunked_then_closed() {
    let d = Daemon::start();
    d.wait_serving();
    let mut s = d.connect();
    // Read as Content-Length the body would end early and "0\r\n\r\nGET..."
    // would be smuggled in as a request; chunked it is "{}".
    s.write_all(
        b"POST /containers/prune HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\nGET /_ping HTTP/1.1\r\nHost: d\r\n\r\n",
    )
    .unwrap();
    let (out, closed) = read_until_close(&mut s, Duration::from_secs(5));
    let text = String::from_utf8_lossy(&out);
    assert!(closed, "connection kept open: {text}");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert_eq!(
        text.matches("HTTP/1.1 ").count(),
        1,
        "a request after the conflicting body was served: {text}"
    );
}

// ---------------------------------------------------------------------------
// Item 5: extension headers of the outer docker-load archive are capped.
// ---------------------------------------------------------------------------

fn tar_header(name: &[u8], size: u64, kind: u8) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = kind;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[test]
fn outer_archive_long_names_and_pax_records_are_capped() {
    let d = Daemon::start();
    d.wait_serving();
    let size: u64 = 8 << 20;
    for (kind, name) in [(b'L', &b"././@LongLink"[..]), (b'x', &b"PaxHeaders/x"[..])] {
        let mut body = tar_header(name, size, kind).to_vec();
        body.resize(512 + size as usize, b'a');
        let r = d.request_bytes(
            "POST",
            "/images/load?quiet=1",
            &[("Content-Type", "application/x-tar")],
            Some(&body),
        );
        let msg = r.message();
        assert!(
            msg.contains("over 1 MiB"),
            "kind {}: {} {msg}",
            kind as char,
            r.status
        );
    }
    // A real archive still loads.
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    let o = d.docker(&["load", "-i", &tar]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

// ---------------------------------------------------------------------------
// Item 7: what a web page could send.
// ---------------------------------------------------------------------------

fn post(d: &Daemon, path: &str, headers: &[(&str, &str)], body: &str) -> common::RawResponse {
    d.request_bytes("POST", path, headers, Some(body.as_bytes()))
}

#[test]
fn json_endpoints_require_application_json() {
    let mut d = Daemon::start();
    d.load_busybox();
    let body = r#"{"Image":"busybox","Cmd":["true"]}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/plain; charset=utf-8",
    ] {
        let r = post(&d, "/containers/create", &[("Content-Type", ct)], body);
        assert_eq!(r.status, 400, "{ct}: {}", r.text());
        assert_eq!(
            r.message(),
            format!("unsupported Content-Type header ({ct}): must be 'application/json'")
        );
    }
    let r = post(&d, "/containers/create", &[], body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.message(),
        "malformed Content-Type header (): mime: no media type"
    );
    // Nothing was created.
    let list = d.request("GET", "/containers/json?all=1", None).json();
    assert_eq!(list, serde_json::json!([]));
    // application/json with parameters is fine, and so is a bodiless exec start check.
    let r = post(
        &d,
        "/containers/create?name=ok",
        &[("Content-Type", "application/json; charset=utf-8")],
        body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = post(
        &d,
        "/containers/ok/update",
        &[("Content-Type", "text/plain")],
        "{}",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let r = post(
        &d,
        "/containers/ok/exec",
        &[("Content-Type", "text/plain")],
        r#"{"Cmd":["true"]}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // The docker CLI sends application/json.
    let o = d.docker(&["create", "--name", "cli", "busybox", "true"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Python's http.client, as docker-py drives it.
    let script = format!(
        r#"
import http.client, json, socket
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect({sock:?})
c = C("localhost")
c.request("POST", "/v1.45/containers/create?name=py", json.dumps({{"Image": "busybox"}}), {{"Content-Type": "application/json"}})
r = c.getresponse(); print(r.status); r.read()
"#,
        sock = d.sock.display().to_string()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "201",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn requests_with_a_foreign_origin_are_refused() {
    let mut d = Daemon::start();
    d.load_busybox();
    let body = r#"{"Image":"busybox","HostConfig":{"Privileged":true,"Binds":["/:/host"]}}"#;
    let origin = ("Origin", "http://evil.example");
    let r = post(
        &d,
        "/containers/create?name=x",
        &[origin, ("Content-Type", "application/json")],
        body,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.message().contains("http://evil.example"), "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        r.text()
    );
    for (m, p) in [("GET", "/containers/json"), ("POST", "/containers/x/start")] {
        let r = d.request_bytes(m, p, &[origin], None);
        assert_eq!(r.status, 403, "{m} {p}: {}", r.text());
    }
    let list = d.request("GET", "/containers/json?all=1", None).json();
    assert_eq!(list, serde_json::json!([]));
    // curl (no Origin) is served.
    let o = Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(&d.sock)
        .arg("http://d/_ping")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "OK");
}

#[test]
fn api_cors_header_allows_its_origin() {
    let d = Daemon::start_with(&["--api-cors-header", "http://ui.example"], false);
    d.wait_serving();
    let r = d.request_bytes("GET", "/_ping", &[("Origin", "http://ui.example")], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://ui.example")
    );
    let r = d.request_bytes(
        "OPTIONS",
        "/containers/create",
        &[
            ("Origin", "http://ui.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let r = d.request_bytes("GET", "/_ping", &[("Origin", "http://other.example")], None);
    assert_eq!(r.status, 403, "{}", r.text());
}

// ---------------------------------------------------------------------------
// Item 10: the pidfile is a lock, not a number.
// ---------------------------------------------------------------------------

fn spawn_second(dir: &Path, pidfile: &Path) -> std::process::Child {
    Command::new(common::binary())
        .arg("--config-file")
        .arg(dir.join("daemon.json"))
        .arg("--data-root")
        .arg(dir.join("root2"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("d2.sock").display()))
        .arg("--pidfile")
        .arg(pidfile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn pidfile_lock_refuses_a_second_daemon_and_survives_kill9() {
    let dir = common::temp_dir("pidlock");
    let pidfile = dir.join("coracle.pid");
    // A stale file naming a live, unrelated process (PID 1) does not block.
    std::fs::write(&pidfile, "1\n").unwrap();
    let p = pidfile.to_str().unwrap().to_string();
    let mut d = Daemon::start_with(&["--pidfile", &p], false);
    d.wait_serving();
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        d.pid().to_string()
    );
    // A second daemon on the same pidfile fails while the first runs.
    let mut second = spawn_second(&d.dir, &pidfile);
    let status = common::wait_timeout(&mut second, Duration::from_secs(10))
        .expect("the second daemon should exit");
    let mut err = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(err.contains("pid file found"), "{err}");
    d.wait_serving();
    // kill -9 and restart at once, before the old process is even reaped.
    let mut child = d.child.take().unwrap();
    common::signal(child.id() as i32, 9);
    assert!(eventually(5, || !common::proc_alive(child.id() as i32)));
    let mut third = spawn_second(&d.dir, &pidfile);
    let sock = d.dir.join("d2.sock");
    let up = eventually(10, || UnixStream::connect(&sock).is_ok());
    let _ = child.wait();
    let exited = third.try_wait().unwrap();
    let _ = third.kill();
    let _ = third.wait();
    let mut err = String::new();
    third
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        up && exited.is_none(),
        "restart after kill -9 failed: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// Item 13: a fromSrc URL cannot carry header lines.
// ---------------------------------------------------------------------------

#[test]
fn from_src_url_with_control_characters_or_spaces_is_refused() {
    let d = Daemon::start();
    d.wait_serving();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    for (src, want) in [
        (
            format!("http://127.0.0.1:{port}/x%0d%0aInjected:%20yes"),
            "invalid control character in URL",
        ),
        (
            format!("http://127.0.0.1:{port}/x%20HTTP/1.0"),
            "invalid character \" \" in URL",
        ),
    ] {
        let r = d.request_bytes(
            "POST",
            &format!("/images/create?fromSrc={src}&repo=inj"),
            &[],
            None,
        );
        assert_eq!(r.status, 400, "{src}: {}", r.text());
        assert!(r.message().contains(want), "{src}: {}", r.text());
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        listener.accept().is_err(),
        "the daemon connected to the URL's server"
    );
}
