//! HTTP/1.1 protocol behaviour of the real daemon, over raw sockets: keep-alive,
//! pipelining, chunked streams, HEAD, error framing, limits, timeouts and
//! signals. Every wait is bounded, so a hang fails instead of blocking.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{libc_sig, signal, Daemon};

/// Default time we allow for any single read before calling it a hang.
const READ_LIMIT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// A small strict HTTP/1.1 client that keeps unread bytes between responses.
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"message\" in {:?}", self.text()))
            .to_string()
    }

    fn is_chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }

    fn says_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

struct Client {
    s: UnixStream,
    buf: Vec<u8>,
}

impl Client {
    fn new(d: &Daemon) -> Client {
        let s = UnixStream::connect(&d.sock).expect("connect to daemon");
        s.set_read_timeout(Some(READ_LIMIT)).unwrap();
        s.set_write_timeout(Some(READ_LIMIT)).unwrap();
        Client { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send request");
    }

    /// One read; Ok(0) is EOF.
    fn fill(&mut self) -> std::io::Result<usize> {
        let mut tmp = [0u8; 65536];
        loop {
            match self.s.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn fill_or_panic(&mut self, what: &str) {
        match self.fill() {
            Ok(0) => panic!(
                "connection closed while waiting for {what}; unread: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Ok(_) => {}
            Err(e) => panic!(
                "no {what} within the read limit ({e}); unread: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    fn take_exact(&mut self, n: usize, what: &str) -> Vec<u8> {
        while self.buf.len() < n {
            self.fill_or_panic(what);
        }
        self.buf.drain(..n).collect()
    }

    /// A CRLF-terminated line (a bare LF is a framing error).
    fn take_line(&mut self, what: &str) -> String {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                assert!(
                    line.len() >= 2 && line[line.len() - 2] == b'\r',
                    "{what}: line not terminated by CRLF: {:?}",
                    String::from_utf8_lossy(&line)
                );
                return String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            }
            self.fill_or_panic(what);
        }
    }

    /// Status line and headers (interim 1xx responses are returned as they are).
    fn read_head_raw(&mut self) -> Resp {
        let status_line = self.take_line("status line");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        assert!(
            version == "HTTP/1.1" || version == "HTTP/1.0",
            "bad status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.take_line("header line");
            if line.is_empty() {
                break;
            }
            let (k, v) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("header line without colon: {line:?}"));
            assert!(!k.contains(' '), "space in header name {k:?}");
            headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
        }
        Resp {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// One complete response to a non-HEAD request, with strict framing checks.
    fn read_response(&mut self) -> Resp {
        let mut r = self.read_head_raw();
        assert_ne!(r.status / 100, 1, "unexpected interim response {r:?}");
        if r.is_chunked() {
            assert!(
                r.header("content-length").is_none(),
                "both Transfer-Encoding and Content-Length: {:?}",
                r.headers
            );
            let mut body = Vec::new();
            while let Some(chunk) = self.read_chunk() {
                body.extend_from_slice(&chunk);
            }
            r.body = body;
        } else if let Some(len) = r.header("content-length") {
            let len: usize = len
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {len:?}"));
            r.body = self.take_exact(len, "response body");
        } else if matches!(r.status, 204 | 304) {
        } else {
            // Delimited by close.
            loop {
                match self.fill() {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => panic!("close-delimited body did not end: {e}"),
                }
            }
            r.body = std::mem::take(&mut self.buf);
        }
        r
    }

    /// One response to a HEAD request: head only, whatever the headers say.
    fn read_head_response(&mut self) -> Resp {
        self.read_head_raw()
    }

    /// Next chunk of a chunked body; None after the last chunk and trailers.
    fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let line = self.take_line("chunk size");
        let size_text = line.split(';').next().unwrap_or("").trim();
        assert!(
            !size_text.is_empty() && size_text.bytes().all(|b| b.is_ascii_hexdigit()),
            "bad chunk-size line {line:?}"
        );
        let size = usize::from_str_radix(size_text, 16).unwrap();
        if size == 0 {
            // Trailers, then an empty line.
            while !self.take_line("trailer").is_empty() {}
            return None;
        }
        let data = self.take_exact(size, "chunk data");
        let end = self.take_exact(2, "chunk CRLF");
        assert_eq!(end, b"\r\n", "chunk data not followed by CRLF");
        Some(data)
    }

    /// Waits for the server to close (EOF or reset) within `limit`, with no
    /// stray bytes. Returns how long it took.
    fn expect_closed(&mut self, limit: Duration, what: &str) -> Duration {
        let start = Instant::now();
        assert!(
            self.buf.is_empty(),
            "{what}: stray bytes before close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.s.set_read_timeout(Some(limit)).unwrap();
        match self.fill() {
            Ok(0) => {}
            Ok(_) => panic!(
                "{what}: stray bytes where a close was expected: {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("{what}: connection still open after {limit:?}")
            }
            // A reset is a close too.
            Err(_) => {}
        }
        self.s.set_read_timeout(Some(READ_LIMIT)).unwrap();
        start.elapsed()
    }

    /// True when nothing arrives and the connection is not closed within `wait`.
    fn quiet_and_open(&mut self, wait: Duration) -> bool {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let r = self.fill();
        self.s.set_read_timeout(Some(READ_LIMIT)).unwrap();
        matches!(r, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n").into_bytes()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A fresh connection answers `/_ping` promptly: the daemon is healthy.
fn assert_healthy(d: &Daemon) -> Duration {
    let start = Instant::now();
    let mut c = Client::new(d);
    c.send(&get("/_ping"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    start.elapsed()
}

fn assert_json_error(r: &Resp, status: u16) {
    assert_eq!(r.status, status, "response: {r:?} body {:?}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "error without JSON content type: {:?}",
        r.headers
    );
    let _ = r.message();
}

// ---------------------------------------------------------------------------
// 1. Keep-alive
// ---------------------------------------------------------------------------

#[test]
fn keep_alive_serves_sequential_requests_on_one_connection() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    for (i, path) in ["/_ping", "/version", "/info", "/_ping", "/v1.45/version"]
        .iter()
        .enumerate()
    {
        c.send(&get(path));
        let r = c.read_response();
        assert_eq!(r.status, 200, "request {i} {path}");
        assert!(
            !r.says_close(),
            "request {i} {path} announced close: {:?}",
            r.headers
        );
        assert!(c.buf.is_empty(), "stray bytes after response {i}");
        assert!(r.header("date").is_some(), "no Date header");
    }
    assert!(
        c.quiet_and_open(Duration::from_millis(300)),
        "connection closed after keep-alive requests"
    );
    // And still usable after the pause.
    c.send(&get("/_ping"));
    assert_eq!(c.read_response().status, 200);
}

// ---------------------------------------------------------------------------
// 2. Pipelining
// ---------------------------------------------------------------------------

#[test]
fn pipelined_requests_are_answered_in_order() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    let mut all = Vec::new();
    for p in [
        "/_ping",
        "/version",
        "/v1.24/_ping",
        "/nope",
        "/v1.24/info",
        "/_ping",
    ] {
        all.extend_from_slice(&get(p));
    }
    c.send(&all);
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ApiVersion"], "1.45");
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let r = c.read_response();
    assert_eq!(r.status, 404);
    assert_eq!(r.message(), "page not found");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(r.json()["ID"].is_string());
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert!(
        c.quiet_and_open(Duration::from_millis(300)),
        "extra bytes or close after pipelined responses"
    );
}

#[test]
fn many_pipelined_requests_with_backpressure() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    let n = 2000;
    // ~70 KiB of requests (more than the server's read buffer) written while
    // we read: the server must throttle, not drop or reorder.
    let mut all = Vec::new();
    for i in 0..n {
        let p = if i % 2 == 0 { "/_ping" } else { "/version" };
        all.extend_from_slice(&get(p));
    }
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&all).map_err(|e| e.to_string()));
    let start = Instant::now();
    for i in 0..n {
        let r = c.read_response();
        assert_eq!(r.status, 200, "response {i}");
        if i % 2 == 0 {
            assert_eq!(r.text(), "OK", "response {i} out of order");
        } else {
            assert_eq!(r.json()["ApiVersion"], "1.45", "response {i} out of order");
        }
    }
    writer.join().unwrap().expect("writer");
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(c.quiet_and_open(Duration::from_millis(200)));
}

#[test]
fn pipelined_requests_split_across_writes_are_answered() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    let mut all = get("/_ping");
    all.extend_from_slice(&get("/version"));
    // Split the second request mid-header.
    let cut = get("/_ping").len() + 10;
    c.send(&all[..cut]);
    let r = c.read_response();
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(100));
    c.send(&all[cut..]);
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ApiVersion"], "1.45");
}

// ---------------------------------------------------------------------------
// 3. Chunked responses (/events)
// ---------------------------------------------------------------------------

#[test]
fn events_with_until_is_a_complete_chunked_response() {
    let d = Daemon::start();
    signal(d.pid(), libc_sig::HUP);
    std::thread::sleep(Duration::from_millis(300));
    let until = now_secs() + 1;
    let mut c = Client::new(&d);
    c.send(&get(&format!("/events?since=0&until={until}")));
    let start = Instant::now();
    let head = c.read_head_raw();
    assert_eq!(head.status, 200);
    assert!(
        head.is_chunked(),
        "events response not chunked: {:?}",
        head.headers
    );
    assert!(head.header("content-length").is_none());
    assert!(head
        .header("content-type")
        .is_some_and(|v| v.starts_with("application/json")));
    let mut body = Vec::new();
    while let Some(chunk) = c.read_chunk() {
        body.extend_from_slice(&chunk);
    }
    // read_chunk consumed "0\r\n" + "\r\n": nothing else may follow.
    assert!(
        c.buf.is_empty(),
        "bytes after last chunk: {:?}",
        String::from_utf8_lossy(&c.buf)
    );
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "stream did not end at until"
    );
    let text = String::from_utf8(body).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event line {l:?}: {e}")))
        .collect();
    assert_eq!(events.len(), 1, "events: {text}");
    assert_eq!(events[0]["Type"], "daemon");
    assert_eq!(events[0]["Action"], "reload");
    // The chunked response ended cleanly, so the connection is reusable.
    c.send(&get("/_ping"));
    assert_eq!(c.read_response().status, 200);
}

#[test]
fn events_with_until_raw_bytes_end_with_last_chunk() {
    let d = Daemon::start();
    let until = now_secs() + 1;
    let req = format!(
        "GET /events?since=0&until={until} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut c = Client::new(&d);
    c.send(req.as_bytes());
    c.s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    loop {
        match c.fill() {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!(
                "events stream with until did not end: {e}; got {:?}",
                String::from_utf8_lossy(&c.buf)
            ),
        }
    }
    let raw = String::from_utf8_lossy(&c.buf).into_owned();
    assert!(
        raw.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{raw:?}"
    );
    assert!(
        raw.ends_with("0\r\n\r\n"),
        "chunked body does not end with the last chunk: {raw:?}"
    );
}

#[test]
fn live_events_stream_delivers_new_events_and_stays_open() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(&get("/events"));
    let head = c.read_head_raw();
    assert_eq!(head.status, 200);
    assert!(head.is_chunked(), "{:?}", head.headers);
    // Nothing yet, and the stream stays open.
    assert!(
        c.quiet_and_open(Duration::from_millis(300)),
        "live stream sent data or closed early"
    );
    for round in 0..2 {
        let sent = Instant::now();
        signal(d.pid(), libc_sig::HUP);
        let chunk = c
            .read_chunk()
            .unwrap_or_else(|| panic!("round {round}: stream ended"));
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "event delivered late: {:?}",
            sent.elapsed()
        );
        let text = String::from_utf8(chunk).unwrap();
        let ev: serde_json::Value = serde_json::from_str(text.trim_end())
            .unwrap_or_else(|e| panic!("bad event {text:?}: {e}"));
        assert_eq!(ev["Type"], "daemon");
        assert_eq!(ev["Action"], "reload");
        assert!(
            text.ends_with('\n'),
            "event not newline-terminated: {text:?}"
        );
        assert!(
            c.quiet_and_open(Duration::from_millis(300)),
            "stream closed after an event"
        );
    }
}

// ---------------------------------------------------------------------------
// 4. HEAD
// ---------------------------------------------------------------------------

#[test]
fn head_requests_send_headers_without_body() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(&get("/version"));
    let full = c.read_response();
    assert_eq!(full.status, 200);

    c.send(b"HEAD /version HTTP/1.1\r\nHost: docker\r\n\r\n");
    let h = c.read_head_response();
    assert_eq!(h.status, 200);
    let len: usize = h
        .header("content-length")
        .expect("HEAD /version without Content-Length")
        .parse()
        .unwrap();
    // Version JSON may differ only if the kernel or build changed mid-test: it does not.
    assert_eq!(
        len,
        full.body.len(),
        "HEAD Content-Length differs from GET body length"
    );
    assert_eq!(h.header("content-type"), full.header("content-type"));
    assert!(
        c.quiet_and_open(Duration::from_millis(300)),
        "stray body bytes after HEAD /version: {:?}",
        String::from_utf8_lossy(&c.buf)
    );

    c.send(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n");
    let h = c.read_head_response();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("api-version"), Some("1.45"));
    assert!(h.header("content-length").is_some());
    assert!(
        c.quiet_and_open(Duration::from_millis(300)),
        "stray body bytes after HEAD /_ping: {:?}",
        String::from_utf8_lossy(&c.buf)
    );

    // A following request on the same connection parses cleanly.
    c.send(&get("/_ping"));
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
}

#[test]
fn head_then_get_pipelined_in_one_write() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    let mut req = b"HEAD /version HTTP/1.1\r\nHost: d\r\n\r\n".to_vec();
    req.extend_from_slice(&get("/_ping"));
    c.send(&req);
    let h = c.read_head_response();
    assert_eq!(h.status, 200);
    let r = c.read_response();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "OK"),
        "HEAD leaked body bytes into the next response"
    );
}

// ---------------------------------------------------------------------------
// 5. /_ping headers
// ---------------------------------------------------------------------------

#[test]
fn ping_headers_and_body() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(&get("/_ping"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    assert_eq!(r.header("content-length"), Some("2"));
    assert_eq!(r.header("api-version"), Some("1.45"));
    assert_eq!(r.header("docker-experimental"), Some("false"));
    assert_eq!(r.header("ostype"), Some("linux"));
    assert!(r.header("server").is_some_and(|s| !s.is_empty()));
    assert_eq!(r.header("builder-version"), Some("1"));
    assert_eq!(
        r.header("cache-control"),
        Some("no-cache, no-store, must-revalidate")
    );
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert!(r
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/plain")));
    // Each header once.
    for name in [
        "api-version",
        "server",
        "ostype",
        "content-length",
        "docker-experimental",
    ] {
        let n = r.headers.iter().filter(|(k, _)| k == name).count();
        assert_eq!(n, 1, "header {name} appears {n} times: {:?}", r.headers);
    }
}

// ---------------------------------------------------------------------------
// 6. Version prefix
// ---------------------------------------------------------------------------

#[test]
fn api_version_prefixes() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(&get("/v1.45/_ping"));
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    c.send(&get("/v1.24/info"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(r.json()["ID"].is_string());
    c.send(&get("/v1.0/version"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ApiVersion"], "1.45");

    c.send(&get("/v1.99/info"));
    let r = c.read_response();
    assert_json_error(&r, 400);
    assert_eq!(
        r.message(),
        "client version 1.99 is too new. Maximum supported API version is 1.45"
    );
    // A handler-level 400 does not cost the connection.
    c.send(&get("/_ping"));
    assert_eq!(c.read_response().status, 200);
}

// ---------------------------------------------------------------------------
// 7. 404 / 405
// ---------------------------------------------------------------------------

#[test]
fn unknown_paths_and_wrong_methods() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    for p in ["/nope", "/v1.45/nope"] {
        c.send(&get(p));
        let r = c.read_response();
        assert_json_error(&r, 404);
        // dockerd's JSON encoder ends the body with a newline; accept both.
        assert_eq!(
            r.text().trim_end_matches('\n'),
            r#"{"message":"page not found"}"#,
            "{p}"
        );
    }
    for (m, p) in [
        ("POST", "/info"),
        ("DELETE", "/_ping"),
        ("PUT", "/version"),
        ("POST", "/v1.45/_ping"),
    ] {
        c.send(format!("{m} {p} HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n").as_bytes());
        let r = c.read_response();
        assert_json_error(&r, 405);
        assert!(
            !r.says_close(),
            "{m} {p}: bodiless 405 should keep the connection"
        );
    }
    c.send(&get("/_ping"));
    assert_eq!(c.read_response().status, 200);
}

// ---------------------------------------------------------------------------
// 8. Malformed request heads
// ---------------------------------------------------------------------------

#[test]
fn malformed_heads_get_400_and_close() {
    let d = Daemon::start();
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET /x HTTP/9.9\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nHost: x\r\nThis line has no colon\r\n\r\n",
        b"GET /_ping HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET _ping HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /info HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST /info HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    ];
    for (i, case) in cases.iter().enumerate() {
        let mut c = Client::new(&d);
        c.send(case);
        let r = c.read_response();
        let shown = String::from_utf8_lossy(case);
        assert_eq!(r.status, 400, "case {i} {shown:?}: {r:?}");
        assert_json_error(&r, 400);
        assert!(
            r.says_close(),
            "case {i} {shown:?}: 400 without Connection: close"
        );
        c.expect_closed(Duration::from_secs(3), &format!("case {i} {shown:?}"));
        assert!(assert_healthy(&d) < Duration::from_secs(1));
    }
}

#[test]
fn malformed_head_after_good_request_on_same_connection() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    let mut req = get("/_ping");
    req.extend_from_slice(b"GARBAGE\r\n\r\n");
    c.send(&req);
    assert_eq!(c.read_response().status, 200);
    let r = c.read_response();
    assert_json_error(&r, 400);
    c.expect_closed(Duration::from_secs(3), "after malformed pipelined head");
}

// ---------------------------------------------------------------------------
// 9. Oversized heads
// ---------------------------------------------------------------------------

fn expect_431_and_close(d: &Daemon, req: Vec<u8>, what: &str) {
    let mut c = Client::new(d);
    // The server may stop reading at 64 KiB: write from another thread so a
    // full socket buffer cannot block the test.
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&req);
    });
    let r = c.read_response();
    assert_json_error(&r, 431);
    assert!(r.says_close(), "{what}: 431 without Connection: close");
    c.expect_closed(Duration::from_secs(4), what);
    writer.join().unwrap();
    assert!(assert_healthy(d) < Duration::from_secs(1));
}

#[test]
fn oversized_heads_get_431_and_close() {
    let d = Daemon::start();
    // One huge header.
    let big = format!(
        "GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(70 * 1024)
    );
    expect_431_and_close(&d, big.into_bytes(), "one 70 KiB header");
    // Many medium headers (fewer than the count limit) summing to > 64 KiB.
    let many: String = (0..90)
        .map(|i| format!("X-H{i}: {}\r\n", "b".repeat(800)))
        .collect();
    expect_431_and_close(
        &d,
        format!("GET /_ping HTTP/1.1\r\n{many}\r\n").into_bytes(),
        "90 headers of 800 bytes",
    );
    // A head that never ends and just keeps coming.
    let endless = format!(
        "GET /_ping HTTP/1.1\r\nX-Endless: {}",
        "c".repeat(200 * 1024)
    );
    expect_431_and_close(&d, endless.into_bytes(), "unterminated 200 KiB header");
    // 150 headers.
    let h150: String = (0..150).map(|i| format!("X-N{i}: y\r\n")).collect();
    expect_431_and_close(
        &d,
        format!("GET /_ping HTTP/1.1\r\n{h150}\r\n").into_bytes(),
        "150 headers",
    );
}

#[test]
fn moderately_large_heads_are_fine() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    let h: String = (0..50)
        .map(|i| format!("X-N{i}: {}\r\n", "v".repeat(100)))
        .collect();
    c.send(format!("GET /_ping HTTP/1.1\r\nHost: d\r\n{h}\r\n").as_bytes());
    assert_eq!(c.read_response().status, 200);
    let cookie = format!(
        "GET /_ping HTTP/1.1\r\nHost: d\r\nX-Auth: {}\r\n\r\n",
        "z".repeat(32 * 1024)
    );
    c.send(cookie.as_bytes());
    assert_eq!(c.read_response().status, 200);
}

// ---------------------------------------------------------------------------
// 10. Slowloris
// ---------------------------------------------------------------------------

#[test]
fn slowloris_head_is_cut_off_and_others_are_served() {
    let d = Daemon::start_with(&["--head-timeout", "2"], false);
    // The floor: the slowest of a few round trips before any slow client,
    // on the machine as loaded as it is now. A loop held by a partial head
    // keeps others waiting until that head is cut off (2 s), which the
    // bound (at most 1.5 s) still catches.
    let floor = (0..5).map(|_| assert_healthy(&d)).max().unwrap_or_default();
    let bound = (floor * 5).clamp(Duration::from_millis(500), Duration::from_millis(1500));
    let mut idle = Client::new(&d); // sends nothing: only the 300 s idle timeout applies
    let mut slow = Client::new(&d);
    let started = Instant::now();
    slow.send(b"GET /_ping HTTP/1.1\r\nHost: x\r\n");

    // A trickler: one byte every 300 ms never completes the head either.
    let mut trickle = Client::new(&d);
    let mut tw = trickle.s.try_clone().unwrap();
    let trickle_start = Instant::now();
    let trickler = std::thread::spawn(move || {
        let bytes =
            b"GET /_ping HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for b in bytes.iter() {
            if tw.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });

    // While the slow heads hang, others are answered at once.
    let mut worst = Duration::ZERO;
    while started.elapsed() < Duration::from_millis(1500) {
        worst = worst.max(assert_healthy(&d));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        worst < bound,
        "other clients slowed down to {worst:?} by a slowloris (floor {floor:?})"
    );

    // The partial head is closed after ~2 s.
    slow.s
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    let mut got = Vec::new();
    let closed_at = loop {
        match slow.s.read(&mut [0u8; 4096][..]) {
            Ok(0) | Err(_) => break started.elapsed(),
            Ok(n) => got.push(n),
        }
    };
    assert!(
        closed_at >= Duration::from_secs(1) && closed_at <= Duration::from_secs(6),
        "slowloris closed after {closed_at:?} (head timeout 2 s)"
    );
    let _ = got;

    trickle
        .s
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    let trickle_closed = loop {
        match trickle.fill() {
            Ok(0) | Err(_) => break trickle_start.elapsed(),
            Ok(_) => {}
        }
    };
    assert!(
        trickle_closed <= Duration::from_secs(6),
        "byte-trickling head not cut off: {trickle_closed:?}"
    );
    trickler.join().unwrap();

    // The silent connection is not subject to the head timeout.
    assert!(
        idle.quiet_and_open(Duration::from_millis(200)),
        "idle connection closed by head timeout"
    );
    idle.send(&get("/_ping"));
    assert_eq!(idle.read_response().status, 200);
    let last = assert_healthy(&d);
    assert!(last < bound, "/_ping took {last:?} (floor {floor:?})");
}

// ---------------------------------------------------------------------------
// 11. Connection limit
// ---------------------------------------------------------------------------

#[test]
fn connection_limit_sheds_the_stalest_then_refuses_when_all_are_busy() {
    let d = Daemon::start_with(&["--max-connections", "4"], false);
    let mut open: Vec<Client> = (0..4).map(|_| Client::new(&d)).collect();
    // Make sure all four are accepted and alive (keep-alive).
    for c in open.iter_mut() {
        c.send(&get("/_ping"));
        assert_eq!(c.read_response().status, 200);
    }
    // At the limit, the idle connection that waited longest makes room.
    let mut fifth = Client::new(&d);
    fifth.send(&get("/_ping"));
    assert_eq!(fifth.read_response().status, 200);
    open[0].expect_closed(Duration::from_secs(3), "the stalest idle connection");
    for c in open.iter_mut().skip(1) {
        c.send(&get("/_ping"));
        assert_eq!(c.read_response().status, 200);
    }
    drop(open);
    drop(fifth);
    std::thread::sleep(Duration::from_millis(300));

    // When every connection is busy (event streams), a new one gets 503.
    let mut open: Vec<Client> = (0..4)
        .map(|_| {
            let mut c = Client::new(&d);
            c.send(&get("/events"));
            assert_eq!(c.read_head_raw().status, 200);
            c
        })
        .collect();
    let mut fifth = Client::new(&d);
    let r = fifth.read_response();
    assert_json_error(&r, 503);
    assert!(r.says_close(), "503 without Connection: close");
    fifth.expect_closed(Duration::from_secs(3), "refused 5th connection");
    drop(fifth);

    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let mut c = Client::new(&d);
        c.send(&get("/_ping"));
        let r = c.read_response();
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused 2 s after a slot was freed: {r:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// 12. SIGTERM, socket and pidfile
// ---------------------------------------------------------------------------

#[test]
fn sigterm_exits_cleanly_and_removes_socket_and_pidfile() {
    let pid_dir = common::temp_dir("pid");
    let pidfile = pid_dir.join("coracle.pid");
    let mut d = Daemon::start_with(&["--pidfile", pidfile.to_str().unwrap()], false);
    let written = std::fs::read_to_string(&pidfile).expect("pidfile written");
    assert_eq!(written.trim(), d.pid().to_string());

    // A live client and a live event stream must not hold up shutdown.
    let mut c = Client::new(&d);
    c.send(&get("/events"));
    assert_eq!(c.read_head_raw().status, 200);
    let _idle = Client::new(&d);

    let sock = d.sock.clone();
    let start = Instant::now();
    let status = d.terminate();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        start.elapsed()
    );
    assert!(!sock.exists(), "socket file left behind");
    assert!(!pidfile.exists(), "pidfile left behind");
    let _ = std::fs::remove_dir_all(&pid_dir);
}

#[test]
fn second_daemon_on_same_socket_refuses_to_start() {
    let d = Daemon::start();
    let other = common::temp_dir("second");
    std::fs::write(other.join("daemon.json"), "{}").unwrap();
    let mut child = Command::new(common::binary())
        .arg("--config-file")
        .arg(other.join("daemon.json"))
        .arg("--data-root")
        .arg(other.join("root"))
        .arg("-H")
        .arg(format!("unix://{}", d.sock.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn second coracle");
    let status = common::wait_timeout(&mut child, Duration::from_secs(10));
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("second daemon kept running on an occupied socket");
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "second daemon exited 0");
    assert!(
        err.contains("another daemon") && err.contains("answering"),
        "second daemon's message: {err:?}"
    );
    // The first daemon's socket is untouched and it still answers.
    assert!(d.sock.exists(), "second daemon removed the live socket");
    assert!(assert_healthy(&d) < Duration::from_secs(1));
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn stale_socket_after_kill9_is_replaced() {
    let mut d = Daemon::start();
    d.kill9();
    assert!(
        d.sock.exists(),
        "kill -9 cannot remove the socket; test premise broken"
    );
    assert!(
        UnixStream::connect(&d.sock).is_err(),
        "stale socket still answers"
    );
    d.restart();
    assert!(assert_healthy(&d) < Duration::from_secs(1));
    assert!(
        !d.log_text().contains("another daemon"),
        "stale socket mistaken for a live daemon"
    );
}

// ---------------------------------------------------------------------------
// 13. Expect: 100-continue
// ---------------------------------------------------------------------------

#[test]
fn expect_continue_on_bodiless_endpoint_gets_final_response_directly() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(b"GET /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    // No body is sent; the final answer must come anyway, without a 100.
    let r = c.read_head_raw();
    assert_ne!(
        r.status, 100,
        "sent 100 Continue for a body that will never be read"
    );
    assert_eq!(r.status, 200);
    let len: usize = r.header("content-length").unwrap().parse().unwrap();
    assert_eq!(c.take_exact(len, "ping body"), b"OK");
    assert!(
        r.says_close(),
        "unread body but connection kept: {:?}",
        r.headers
    );
    c.expect_closed(Duration::from_secs(3), "after Expect on bodiless endpoint");

    let mut c = Client::new(&d);
    c.send(
        b"POST /info HTTP/1.1\r\nHost: d\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = c.read_response();
    assert_json_error(&r, 405);
    assert!(r.says_close());
    c.expect_closed(Duration::from_secs(3), "after Expect on 405");
}

// ---------------------------------------------------------------------------
// 14. Connection: close and HTTP/1.0
// ---------------------------------------------------------------------------

#[test]
fn connection_close_and_http10() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(r.says_close(), "{:?}", r.headers);
    c.expect_closed(Duration::from_secs(3), "HTTP/1.1 Connection: close");

    let mut c = Client::new(&d);
    c.send(b"GET /version HTTP/1.0\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ApiVersion"], "1.45");
    c.expect_closed(Duration::from_secs(3), "HTTP/1.0 without keep-alive");

    // HTTP/1.0 keep-alive is honoured.
    let mut c = Client::new(&d);
    c.send(b"GET /_ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(!r.says_close());
    c.send(b"GET /_ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(c.read_response().status, 200);

    // Token list form.
    let mut c = Client::new(&d);
    c.send(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: foo, Close\r\n\r\n");
    let r = c.read_response();
    assert!(r.says_close());
    c.expect_closed(Duration::from_secs(3), "Connection: foo, Close");
}

#[test]
fn http10_events_stream_is_close_delimited() {
    let d = Daemon::start();
    let until = now_secs() + 1;
    let mut c = Client::new(&d);
    c.send(format!("GET /events?since=0&until={until} HTTP/1.0\r\n\r\n").as_bytes());
    let r = c.read_head_raw();
    assert_eq!(r.status, 200);
    assert!(
        !r.is_chunked(),
        "chunked encoding sent to an HTTP/1.0 client"
    );
    c.s.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    loop {
        match c.fill() {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => panic!("HTTP/1.0 events stream did not end: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// 15. Events client disconnects
// ---------------------------------------------------------------------------

fn listeners(d: &Daemon) -> u64 {
    let mut c = Client::new(d);
    c.send(&get("/info"));
    let r = c.read_response();
    assert_eq!(r.status, 200);
    r.json()["NEventsListener"]
        .as_u64()
        .expect("NEventsListener")
}

#[test]
fn events_client_disconnect_releases_subscription() {
    let d = Daemon::start();
    assert_eq!(listeners(&d), 0);
    let mut c = Client::new(&d);
    c.send(&get("/events"));
    assert_eq!(c.read_head_raw().status, 200);
    let mut c2 = Client::new(&d);
    c2.send(&get("/events?since=0"));
    assert_eq!(c2.read_head_raw().status, 200);
    assert_eq!(listeners(&d), 2);
    drop(c);
    drop(c2);
    let deadline = Instant::now() + Duration::from_secs(3);
    while listeners(&d) != 0 {
        assert!(
            Instant::now() < deadline,
            "NEventsListener stuck at {}",
            listeners(&d)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Publishing to nobody is harmless.
    signal(d.pid(), libc_sig::HUP);
    std::thread::sleep(Duration::from_millis(100));
    assert!(assert_healthy(&d) < Duration::from_secs(1));
}

/// A client that pipelines >= 64 KiB behind a live `/events` request and then
/// hangs up: the daemon must still notice the hang-up and drop the stream.
#[test]
fn events_client_disconnect_noticed_with_unread_pipelined_input() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(&get("/events"));
    assert_eq!(c.read_head_raw().status, 200);
    let junk: Vec<u8> = get("/_ping").into_iter().cycle().take(100 * 1024).collect();
    let mut w = c.s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&junk);
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listeners(&d), 1);
    let _ = c.s.shutdown(std::net::Shutdown::Both);
    drop(c);
    writer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while listeners(&d) != 0 {
        assert!(
            Instant::now() < deadline,
            "events client hung up 3 s ago but NEventsListener is still {}",
            listeners(&d)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn events_client_half_close_does_not_break_daemon() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(&get("/events"));
    assert_eq!(c.read_head_raw().status, 200);
    c.s.shutdown(std::net::Shutdown::Write).unwrap();
    signal(d.pid(), libc_sig::HUP);
    std::thread::sleep(Duration::from_millis(200));
    assert!(assert_healthy(&d) < Duration::from_secs(1));
    let deadline = Instant::now() + Duration::from_secs(3);
    while listeners(&d) != 0 {
        assert!(
            Instant::now() < deadline,
            "half-closed events client still subscribed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------
// 16. /events query errors
// ---------------------------------------------------------------------------

#[test]
fn events_query_errors() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(&get(&format!("/events?filters={}", urlencode("{not json"))));
    let r = c.read_response();
    assert_json_error(&r, 400);

    c.send(&get(&format!(
        "/events?filters={}",
        urlencode(r#"{"bogus":["x"]}"#)
    )));
    let r = c.read_response();
    assert_json_error(&r, 400);
    assert_eq!(r.message(), "invalid filter 'bogus'");

    c.send(&get("/events?since=yesterday"));
    let r = c.read_response();
    assert_json_error(&r, 400);

    c.send(&get("/events?until=not-a-time"));
    let r = c.read_response();
    assert_json_error(&r, 400);

    // None of these subscribed anything or broke the connection.
    c.send(&get("/_ping"));
    assert_eq!(c.read_response().status, 200);
    assert_eq!(listeners(&d), 0);
}

// ---------------------------------------------------------------------------
// 17. Request body framing
// ---------------------------------------------------------------------------

#[test]
fn unread_chunked_body_gets_response_then_close() {
    let d = Daemon::start();
    let mut c = Client::new(&d);
    c.send(b"POST /info HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\nzz-not-hex\r\ngarbage\r\n");
    let r = c.read_response();
    assert_json_error(&r, 405);
    assert!(r.says_close(), "unread chunked body but connection kept");
    c.expect_closed(Duration::from_secs(3), "405 with unread chunked body");

    // A Content-Length body on a GET that ignores bodies: answered, then closed.
    let mut c = Client::new(&d);
    c.send(b"GET /_ping HTTP/1.1\r\nHost: d\r\nContent-Length: 21\r\n\r\nGET /version HTTP/1.1");
    let r = c.read_response();
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    assert!(r.says_close());
    c.expect_closed(
        Duration::from_secs(3),
        "GET with unread Content-Length body",
    );

    // A chunked body on GET, with a request smuggled inside it.
    let mut c = Client::new(&d);
    c.send(b"GET /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /version HTTP/1.1\r\nHost: d\r\n\r\n");
    let r = c.read_response();
    assert_eq!(r.status, 200);
    assert!(r.says_close());
    c.expect_closed(Duration::from_secs(3), "GET with chunked body");
}

#[test]
fn unsupported_transfer_encoding_gets_501() {
    let d = Daemon::start();
    for te in ["gzip", "chunked, gzip", "gzip, chunked"] {
        let mut c = Client::new(&d);
        c.send(
            format!("POST /info HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: {te}\r\n\r\n").as_bytes(),
        );
        let r = c.read_response();
        assert_json_error(&r, 501);
        assert!(r.says_close(), "TE {te}: 501 without close");
        c.expect_closed(Duration::from_secs(3), &format!("TE {te}"));
    }
}

/// Request smuggling: the body of a request must never be parsed as a second
/// request. `Transfer-Encoding: identity` was removed by RFC 7230; dockerd
/// (Go net/http) answers 501 to it. Whatever the daemon does, it must not
/// ignore the Content-Length and serve the body as a request.
#[test]
fn body_bytes_are_never_served_as_a_request() {
    let d = Daemon::start();
    let inner = "GET /version HTTP/1.1\r\nHost: d\r\n\r\n";
    let cases = [
        format!(
            "GET /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: identity\r\nContent-Length: {}\r\n\r\n{inner}",
            inner.len()
        ),
        format!(
            "GET /_ping HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{inner}\r\n0\r\n\r\n",
            inner.len()
        ),
    ];
    let mut failures = Vec::new();
    for (i, req) in cases.iter().enumerate() {
        let mut c = Client::new(&d);
        c.send(req.as_bytes());
        let first = c.read_response();
        // Collect anything else the server sends before it closes or goes quiet.
        c.s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        while let Ok(n) = c.fill() {
            if n == 0 {
                break;
            }
        }
        let rest = String::from_utf8_lossy(&c.buf).into_owned();
        if rest.contains("HTTP/1.") {
            failures.push(format!(
                "case {i}: body bytes were parsed as a second request (smuggling).\nrequest: {req:?}\nfirst response: {} {:?}\nthen: {rest:?}",
                first.status, first.headers
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
