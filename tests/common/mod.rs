//! Test harness: starts the real `coracle` binary on a temporary data root
//! and unix socket (and optionally TCP), and talks to it with raw HTTP or the
//! real docker CLI.
#![allow(dead_code)]

pub mod cli;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The daemon under test: this build's `coracle`, or the binary `CORACLE_BIN` names
/// (scripts/ci-musl.sh runs the suite against the static musl release binary that way).
pub fn binary() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var("CORACLE_BIN") {
        Ok(b) if !b.is_empty() => b,
        _ => env!("CARGO_BIN_EXE_coracle").to_string(),
    })
}

/// A fresh, empty temporary directory (removed by the owner's Drop).
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("coracle-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub data_root: PathBuf,
    pub tcp_port: Option<u16>,
    pub log: PathBuf,
    /// Set once containers may exist: Drop then removes them (and, if the
    /// daemon is gone, kills what is left in their cgroups).
    pub has_containers: bool,
}

impl Daemon {
    pub fn start() -> Daemon {
        Daemon::start_with(&[], false)
    }

    /// Start with extra flags; `tcp` adds a `-H tcp://127.0.0.1:PORT` listener.
    pub fn start_with(extra: &[&str], tcp: bool) -> Daemon {
        let dir = temp_dir("daemon");
        let sock = dir.join("d.sock");
        let data_root = dir.join("root");
        let config = dir.join("daemon.json");
        std::fs::write(&config, "{}").expect("write config");
        let tcp_port = tcp.then(free_port);
        let mut d = Daemon {
            child: None,
            dir,
            sock,
            data_root,
            tcp_port,
            log: PathBuf::new(),
            has_containers: false,
        };
        d.log = d.dir.join("daemon.log");
        d.spawn(&config, extra);
        d
    }

    fn spawn(&mut self, config: &Path, extra: &[&str]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open log");
        let mut cmd = Command::new(binary());
        cmd.arg("--config-file")
            .arg(config)
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .arg("--log-level")
            .arg("debug");
        if let Some(p) = self.tcp_port {
            cmd.arg("-H").arg(format!("tcp://127.0.0.1:{p}"));
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        self.child = Some(cmd.spawn().expect("spawn coracle"));
        self.wait_ready();
    }

    /// Start the same daemon again (same data root, socket and port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart a stopped daemon only");
        let config = self.dir.join("daemon.json");
        self.spawn(&config, &[]);
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if UnixStream::connect(&self.sock).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "coracle exited early with {status}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "coracle did not listen within 10 s; log:\n{}",
            self.log_text()
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|c| c.id() as i32)
            .expect("daemon running")
    }

    pub fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(&self.sock).expect("connect to daemon");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    }

    /// Send raw bytes on a new connection, half-close, read to EOF.
    pub fn raw(&self, request: &[u8]) -> String {
        let mut s = self.connect();
        s.write_all(request).expect("send request");
        let _ = s.shutdown(std::net::Shutdown::Write);
        read_all(&mut s)
    }

    /// A simple request; returns (status, headers lower-cased, body).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> HttpResponse {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
        if let Some(b) = body {
            req.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            ));
        } else {
            req.push_str("\r\n");
        }
        let mut s = self.connect();
        s.write_all(req.as_bytes()).expect("send request");
        parse_response(&read_all(&mut s))
    }

    /// Run the real docker CLI against this daemon (unix socket).
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_at(&format!("unix://{}", self.sock.display()), args)
    }

    /// Run the docker CLI against `host` (e.g. tcp://127.0.0.1:PORT).
    pub fn docker_at(&self, host: &str, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", host)
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null())
            .output()
            .expect("the docker CLI must be installed (it is the acceptance client)")
    }

    /// Send SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        signal(child.id() as i32, libc_sig::TERM);
        wait_timeout(&mut child, Duration::from_secs(15)).unwrap_or_else(|| {
            panic!(
                "coracle did not exit after SIGTERM; log:\n{}",
                self.log_text()
            )
        })
    }

    /// SIGKILL, as a power cut would.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.has_containers {
            self.remove_all_containers();
            self.kill9();
            kill_cgroup_leftovers(&self.data_root);
        }
        self.kill9();
        if std::thread::panicking() {
            eprintln!("daemon log ({}):\n{}", self.log.display(), self.log_text());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub mod libc_sig {
    pub const HUP: i32 = 1;
    pub const TERM: i32 = 15;
}

pub fn signal(pid: i32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

pub fn read_all(s: &mut impl Read) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Parse one response (fixed-length or chunked) from the start of `raw`.
pub fn parse_response(raw: &str) -> HttpResponse {
    parse_responses(raw)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no response in {raw:?}"))
}

/// A response head: the status and the headers (names lower-cased).
pub fn parse_head(head: &str) -> (u16, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers)
}

/// Parse every response in `raw` (for pipelining tests).
pub fn parse_responses(mut raw: &str) -> Vec<HttpResponse> {
    let mut out = Vec::new();
    while let Some(head_end) = raw.find("\r\n\r\n") {
        let (status, headers) = parse_head(&raw[..head_end]);
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut rest = &raw[head_end + 4..];
        let body;
        if status == 100 {
            raw = rest;
            continue;
        }
        if find("transfer-encoding").as_deref() == Some("chunked") {
            let mut b = String::new();
            while let Some(line_end) = rest.find("\r\n") {
                let size = usize::from_str_radix(
                    rest[..line_end].split(';').next().unwrap_or("").trim(),
                    16,
                )
                .unwrap_or(0);
                rest = &rest[line_end + 2..];
                if size == 0 {
                    rest = rest.strip_prefix("\r\n").unwrap_or(rest);
                    break;
                }
                b.push_str(&rest[..size.min(rest.len())]);
                rest = rest.get(size + 2..).unwrap_or("");
            }
            body = b;
        } else if let Some(len) = find("content-length").and_then(|l| l.parse::<usize>().ok()) {
            body = rest[..len.min(rest.len())].to_string();
            rest = rest.get(len..).unwrap_or("");
        } else if matches!(status, 204 | 304) {
            body = String::new();
        } else {
            body = rest.to_string();
            rest = "";
        }
        out.push(HttpResponse {
            status,
            headers,
            body,
        });
        raw = rest;
    }
    out
}

/// A response with a binary body (tar archives).
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `message` of an error body (panics if the body is not JSON with one).
    pub fn message(&self) -> String {
        let v: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {:?}", self.text()));
        v["message"]
            .as_str()
            .unwrap_or_else(|| panic!("error body has no message: {v}"))
            .to_string()
    }
}

/// Parse one response (fixed-length, chunked or to-EOF) with a binary body.
pub fn parse_raw_response(mut raw: &[u8]) -> RawResponse {
    loop {
        let head_end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
        let (status, headers) = parse_head(&String::from_utf8_lossy(&raw[..head_end]));
        let rest = &raw[head_end + 4..];
        if status == 100 {
            raw = rest;
            continue;
        }
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut b = Vec::new();
            let mut rest = rest;
            while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&rest[..line_end]).into_owned();
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                rest = &rest[line_end + 2..];
                if size == 0 {
                    break;
                }
                assert!(rest.len() >= size, "chunked body cut short");
                b.extend_from_slice(&rest[..size]);
                rest = rest.get(size + 2..).unwrap_or(&[]);
            }
            b
        } else if let Some(len) = find("content-length").and_then(|l| l.parse::<usize>().ok()) {
            rest[..len.min(rest.len())].to_vec()
        } else {
            rest.to_vec()
        };
        return RawResponse {
            status,
            headers,
            body,
        };
    }
}

impl Daemon {
    /// One request with optional extra headers and a binary body (sent with
    /// Content-Length); reads the whole response. `Connection: close`.
    pub fn request_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> RawResponse {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            head.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        head.push_str("\r\n");
        let mut s = self.connect();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        s.write_all(head.as_bytes()).expect("send request head");
        if let Some(b) = body {
            // The daemon may answer (and stop reading) early: a failed write
            // is fine as long as a response arrives.
            let _ = s.write_all(b);
        }
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        parse_raw_response(&out)
    }

    /// The docker CLI with `data` piped into its stdin (as `cat f | docker ...`).
    pub fn docker_with_stdin(&self, args: &[&str], data: Vec<u8>) -> Output {
        let mut child = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the docker CLI must be installed (it is the acceptance client)");
        let mut stdin = child.stdin.take().expect("stdin pipe");
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait for docker");
        let _ = feeder.join();
        out
    }
}

/// Direct children of `pid` (scans /proc/*/stat for the parent pid).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(child) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if proc_ppid(child) == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// The parent pid of `pid` from /proc/<pid>/stat (None if it is gone).
pub fn proc_ppid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Is `pid` alive and not a zombie?
pub fn proc_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
    !matches!(state, Some('Z') | Some('X') | None)
}

/// VmRSS of a process in KiB.
pub fn vm_rss_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Daemon {
    /// Wait for a real answer to `GET /_ping`. `start`/`restart` return once
    /// the socket accepts connections, but the daemon binds before it opens
    /// (and cleans) its stores; a first response proves start-up is over.
    pub fn wait_serving(&self) {
        let r = self.request("GET", "/_ping", None);
        assert_eq!(r.status, 200, "/_ping after start: {r:?}");
    }
}

/// The busybox image archive (`busybox:latest`), built once per test run by
/// `scripts/make-busybox-image.sh` into the cargo target tmp dir.
pub fn busybox_tar() -> &'static Path {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).expect("create target tmp dir");
        let out = dir.join(format!("busybox-{}.tar", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-busybox-image.sh");
        let o = Command::new(&script)
            .arg(&out)
            .output()
            .expect("run scripts/make-busybox-image.sh");
        assert!(
            o.status.success(),
            "make-busybox-image.sh failed: {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        // Archives of earlier runs are stale; keep only this run's.
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(6 * 3600));
                if name.starts_with("busybox-") && name.ends_with(".tar") && old {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        out
    })
}

impl Daemon {
    /// A fresh daemon with `busybox:latest` loaded.
    pub fn with_busybox() -> Daemon {
        let mut d = Daemon::start();
        d.load_busybox();
        d
    }

    /// `docker load -i` the busybox archive into this daemon.
    pub fn load_busybox(&mut self) {
        self.has_containers = true;
        let tar = busybox_tar().to_str().expect("utf-8 path").to_string();
        let o = self.docker(&["load", "-i", &tar]);
        assert!(
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains("busybox:latest"),
            "docker load of busybox failed: {}\nstdout: {}\nstderr: {}\nlog:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log_text()
        );
    }

    /// Force-remove every container through the API (best effort, bounded).
    pub fn remove_all_containers(&self) {
        if self.child.is_none() {
            return;
        }
        let Ok(mut s) = UnixStream::connect(&self.sock) else {
            return;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let req =
            "GET /containers/json?all=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n";
        if s.write_all(req.as_bytes()).is_err() {
            return;
        }
        let raw = read_all(&mut s);
        let Some(resp) = parse_responses(&raw).into_iter().next() else {
            return;
        };
        let Ok(serde_json::Value::Array(list)) = serde_json::from_str(&resp.body) else {
            return;
        };
        for c in list {
            if let Some(id) = c["Id"].as_str() {
                if let Ok(mut s) = UnixStream::connect(&self.sock) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                    let req = format!(
                        "DELETE /containers/{id}?force=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
                    );
                    if s.write_all(req.as_bytes()).is_ok() {
                        let _ = read_all(&mut s);
                    }
                }
            }
        }
    }

    /// Events recorded so far (history up to now), optionally filtered by a
    /// filters JSON such as `{"container":["ID"]}`.
    pub fn events(&self, filters: Option<&str>) -> Vec<serde_json::Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let mut path = format!(
            "/events?since=0&until={}.{:09}",
            now.as_secs(),
            now.subsec_nanos()
        );
        if let Some(f) = filters {
            path.push_str("&filters=");
            path.push_str(&url_encode(f));
        }
        let r = self.request("GET", &path, None);
        assert_eq!(r.status, 200, "events: {r:?}");
        serde_json::Deserializer::from_str(&r.body)
            .into_iter::<serde_json::Value>()
            .map(|v| v.unwrap_or_else(|e| panic!("bad event JSON ({e}): {:?}", r.body)))
            .collect()
    }
}

/// Percent-encode everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Cgroup directories (`/sys/fs/cgroup/<ctrl>/coracle/<id>` on v1, or
/// `/sys/fs/cgroup/coracle/<id>` on v2) that exist for container `id`.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut out = Vec::new();
    let v2 = root.join("coracle").join(id);
    if v2.is_dir() {
        out.push(v2);
    }
    if let Ok(rd) = std::fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path().join("coracle").join(id);
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

/// After the daemon is gone: kill any process still in the cgroups of the
/// containers under `data_root` and remove those cgroups, so a failed test
/// does not leak processes or cgroup directories.
pub fn kill_cgroup_leftovers(data_root: &Path) {
    let Ok(rd) = std::fs::read_dir(data_root.join("containers")) else {
        return;
    };
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        if id.len() != 64 {
            continue;
        }
        let dirs = cgroup_dirs(&id);
        for d in &dirs {
            if d.join("freezer.state").exists() {
                let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            }
            if d.join("cgroup.freeze").exists() {
                let _ = std::fs::write(d.join("cgroup.freeze"), "0");
            }
        }
        for _ in 0..50 {
            let mut any = false;
            for d in &dirs {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for pid in procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    any = true;
                    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                }
            }
            if !any {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for d in &dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// A file of `shared/fixtures` (beside this repository, or where
/// `CORACLE_FIXTURES` says), failing loudly when it is missing.
pub fn fixture(name: &str) -> PathBuf {
    let dir = std::env::var_os("CORACLE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"));
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "fixture {} is missing (set CORACLE_FIXTURES to the shared/fixtures directory)",
        p.display()
    );
    p
}

/// The failure a JSON progress stream reports as dockerd does (a 200 whose
/// last message carries `errorDetail`, e.g. `/images/load` of a bad archive);
/// panics if the response is anything else.
pub fn stream_error(r: &RawResponse) -> String {
    assert_eq!(r.status, 200, "expected a 200 stream: {}", r.text());
    let text = r.text();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last stream message is not JSON ({e}): {text:?}"));
    v["errorDetail"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no errorDetail in the stream: {text:?}"))
        .to_string()
}

/// A python that can `import docker` (docker-py 7): `CORACLE_DOCKER_PY`, or
/// the venv `tests/client_compat.rs` builds (`$CARGO_TARGET_TMPDIR/venv-docker-py`),
/// built here the same way when it is missing.
pub fn docker_py() -> &'static Path {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let works = |py: &Path| {
            Command::new(py)
                .args([
                    "-c",
                    "import docker, sys; sys.exit(0 if docker.__version__.startswith('7') else 1)",
                ])
                .status()
                .is_ok_and(|s| s.success())
        };
        if let Some(p) = std::env::var_os("CORACLE_DOCKER_PY").map(PathBuf::from) {
            assert!(
                works(&p),
                "CORACLE_DOCKER_PY={} cannot import docker 7",
                p.display()
            );
            return p;
        }
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("venv-docker-py");
        let py = venv.join("bin/python");
        if works(&py) {
            return py;
        }
        let _ = std::fs::remove_dir_all(&venv);
        let o = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .expect("run python3 -m venv (install python3-venv)");
        assert!(o.status.success(), "python3 -m venv: {o:?}");
        let o = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "docker>=7,<8"])
            .output()
            .expect("run pip");
        assert!(o.status.success(), "pip install docker: {o:?}");
        assert!(works(&py), "docker-py not importable after pip install");
        py
    })
}

impl Daemon {
    /// A fresh daemon whose daemon.json is `config` (e.g. its own bridge),
    /// with busybox loaded.
    pub fn with_config_and_busybox(config: &str) -> Daemon {
        let dir = temp_dir("daemon");
        let file = dir.join("daemon.json");
        std::fs::write(&file, config).expect("write config");
        let mut d = Daemon {
            child: None,
            sock: dir.join("d.sock"),
            data_root: dir.join("root"),
            tcp_port: None,
            log: dir.join("daemon.log"),
            has_containers: false,
            dir,
        };
        d.spawn(&file, &[]);
        d.load_busybox();
        d
    }
}

impl Daemon {
    /// A daemon on a data root the caller prepared (e.g. a small filesystem
    /// mounted there); the caller removes it after this `Daemon` is dropped.
    pub fn start_on(data_root: &Path, extra: &[&str]) -> Daemon {
        let dir = temp_dir("daemon");
        let file = dir.join("daemon.json");
        std::fs::write(&file, "{}").expect("write config");
        let mut d = Daemon {
            child: None,
            sock: dir.join("d.sock"),
            data_root: data_root.to_path_buf(),
            tcp_port: None,
            log: dir.join("daemon.log"),
            has_containers: false,
            dir,
        };
        d.spawn(&file, extra);
        d
    }
}

/// Ping the daemon's socket in a loop until `stop`, recording each latency.
pub fn pinger(
    d: &Daemon,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Vec<std::time::Duration>> {
    let sock = d.sock.clone();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let t = std::time::Instant::now();
            let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .expect("send ping");
            let text = read_all(&mut s);
            assert!(text.starts_with("HTTP/1.1 200"), "ping: {text}");
            out.push(t.elapsed());
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        out
    })
}
pub mod build;
pub mod netlab;
pub mod raw_api;
pub mod registry;
