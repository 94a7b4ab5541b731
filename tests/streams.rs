//! Attach, logs, TTY and exec, proved against the real binary with the real
//! docker CLI (interactive sessions under tmux) and raw HTTP.
//!
//! Every test starts its own daemon with `busybox:latest` loaded; the
//! harness's Drop removes containers (and kills cgroup leftovers) even when a
//! test fails. Tests that need tmux fail loudly when it is missing. Every wait
//! is bounded.

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------- helpers

/// Serialises the CPU-heavy tests (10 MiB through stdin, `yes` producers):
/// the timing bounds measure the daemon, not sibling tests fighting for the
/// same two cores.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

fn wait_running(d: &Daemon, name: &str, secs: u64) {
    wait_for(&format!("{name} to run"), secs, || {
        state(d, name)["Running"] == true
    });
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// `n` pseudo-random bytes (xorshift64*, fixed seed): incompressible and
/// covering every byte value, including the TTY control characters.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// RFC 3339 (UTC, nanoseconds) of a system time, as `docker logs --since` takes it.
fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).expect("time after the epoch");
    let secs = d.as_secs() as i64;
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        d.subsec_nanos()
    )
}

// ------------------------------------------------------- raw HTTP streams

/// Send `request` on a new connection and read the response head (up to
/// the blank line) byte by byte; the stream is left at the body.
fn open_stream(d: &Daemon, request: &str) -> (String, UnixStream) {
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).expect("send request");
    let head = read_head(&mut s);
    (head, s)
}

fn read_head(s: &mut UnixStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            other => panic!(
                "connection ended inside the response head ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
        assert!(head.len() < 16384, "response head too long");
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn head_status(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {head:?}"))
}

fn head_header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
}

/// Read bytes until EOF; panics if nothing ends the stream within `secs`.
fn read_to_eof(s: &mut UnixStream, secs: u64) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("read stream: {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "stream did not end within {secs} s; got so far: {:?}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// Read until `needle` shows up in what was read; Err(all read) if the
/// stream ends or `secs` pass first.
fn read_until(s: &mut UnixStream, needle: &[u8], secs: u64) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return Err(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(out),
        }
        if out.windows(needle.len()).any(|w| w == needle) {
            return Ok(out);
        }
    }
    Err(out)
}

/// Whether the peer ends the stream (EOF) within `secs`.
fn ends_within(s: &mut UnixStream, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Split a stdcopy stream strictly: every frame is `[stream, 0, 0, 0,
/// len_be32]` + payload, stream 1 or 2, and the frames cover the whole body.
/// Returns (stdout, stderr, frame count).
fn demux_strict(raw: &[u8]) -> (Vec<u8>, Vec<u8>, usize) {
    let (mut out, mut err, mut frames) = (Vec::new(), Vec::new(), 0);
    let mut i = 0;
    while i < raw.len() {
        assert!(
            i + 8 <= raw.len(),
            "truncated frame header at byte {i}: {:?}",
            &raw[i..]
        );
        let h = &raw[i..i + 8];
        assert!(
            matches!(h[0], 1 | 2) && h[1..4] == [0, 0, 0],
            "bad frame header {h:?} at byte {i} (stream {:?})",
            String::from_utf8_lossy(raw)
        );
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        assert!(
            i + 8 + len <= raw.len(),
            "frame at byte {i} claims {len} bytes but only {} follow",
            raw.len() - i - 8
        );
        let payload = &raw[i + 8..i + 8 + len];
        if h[0] == 1 {
            out.extend_from_slice(payload);
        } else {
            err.extend_from_slice(payload);
        }
        frames += 1;
        i += 8 + len;
    }
    (out, err, frames)
}

fn attach_request(path: &str, upgrade: bool) -> String {
    let up = if upgrade {
        "Connection: Upgrade\r\nUpgrade: tcp\r\n"
    } else {
        ""
    };
    format!("POST {path} HTTP/1.1\r\nHost: docker\r\n{up}Content-Length: 0\r\n\r\n")
}

fn create(d: &Daemon, name: &str, body: &str) -> String {
    let r = d.request(
        "POST",
        &format!("/containers/create?name={name}"),
        Some(body),
    );
    assert_eq!(r.status, 201, "create {name}: {r:?}");
    r.json()["Id"].as_str().expect("Id").to_string()
}

fn start(d: &Daemon, name: &str) {
    let r = d.request("POST", &format!("/containers/{name}/start"), None);
    assert_eq!(r.status, 204, "start {name}: {r:?}");
}

// ------------------------------------------------------------------- tmux

static TMUX_N: AtomicUsize = AtomicUsize::new(0);

/// One tmux server (own socket) running one command in a 100x30 pane; the
/// command's exit status is shown as `EXITED-<code>`. Killed on drop.
struct Tmux {
    sock: String,
}

impl Tmux {
    fn start(d: &Daemon, tag: &str, docker_args: &str) -> Tmux {
        let v = Command::new("tmux").arg("-V").output();
        assert!(
            v.as_ref().is_ok_and(|o| o.status.success()),
            "tmux is required for the interactive tests (apt-get install tmux): {v:?}"
        );
        let sock = format!(
            "coracle-{tag}-{}-{}",
            std::process::id(),
            TMUX_N.fetch_add(1, Ordering::SeqCst)
        );
        let cmd = format!(
            "unset DOCKER_CONTEXT DOCKER_API_VERSION; DOCKER_HOST=unix://{} DOCKER_CONFIG={} docker {docker_args}; echo EXITED-$?; sleep 60",
            d.sock.display(),
            d.dir.join("docker-config").display()
        );
        let t = Tmux { sock };
        let o = t
            .cmd(&["new-session", "-d", "-x", "100", "-y", "30", &cmd])
            .output()
            .expect("run tmux");
        assert!(o.status.success(), "tmux new-session: {}", show(&o));
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L")
            .arg(&self.sock)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .env_remove("TMUX")
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) {
        let o = self.cmd(args).output().expect("run tmux");
        assert!(o.status.success(), "tmux {}: {}", args.join(" "), show(&o));
    }

    /// Type `text` literally, then Enter.
    fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-l", text]);
        self.run(&["send-keys", "Enter"]);
    }

    /// The pane's text including its history.
    fn capture(&self) -> String {
        let o = self
            .cmd(&["capture-pane", "-p", "-J", "-S", "-"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Poll the pane until `f` holds; panic (showing the pane) after `secs`.
    fn wait(&self, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let pane = self.capture();
            if f(&pane) {
                return pane;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {secs} s waiting for {what}; pane:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_text(&self, text: &str, secs: u64) -> String {
        self.wait(&format!("{text:?}"), secs, |p| p.contains(text))
    }

    /// Wait until `text` occurs `n` times in the pane (for repeated outputs).
    fn wait_count(&self, text: &str, n: usize, secs: u64) -> String {
        self.wait(&format!("{n}x {text:?}"), secs, |p| {
            p.lines().filter(|l| l.trim() == text).count() >= n
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // kill-server leaves the socket file behind: remove it too.
        let path = self
            .cmd(&["display-message", "-p", "#{socket_path}"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty());
        let _ = self.cmd(&["kill-server"]).output();
        if let Some(p) = path {
            let _ = std::fs::remove_file(p);
        }
    }
}

// ------------------------------------------------------------ run and stdin

#[test]
fn run_prints_and_run_i_round_trips_10_mib_of_random_bytes() {
    let _heavy = heavy();
    let d = Daemon::with_busybox();
    let o = dk(&d, &["run", "--rm", "busybox", "echo", "hi"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");

    let data = random_bytes(10 << 20, 0x5eed);
    let dir = common::temp_dir("stdin");
    let file = dir.join("random.bin");
    std::fs::write(&file, &data).unwrap();
    let child = docker_cmd(&d, &["run", "--rm", "-i", "busybox", "cat"])
        .stdin(std::fs::File::open(&file).unwrap())
        .spawn()
        .expect("run docker");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let o = match rx.recv_timeout(Duration::from_secs(40)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("docker run -i cat < 10 MiB did not finish within 40 s");
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        o.status.success(),
        "status {} stderr {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        o.stdout.len(),
        data.len(),
        "byte count through run -i cat differs"
    );
    assert_eq!(
        sha256_hex(&o.stdout),
        sha256_hex(&data),
        "bytes through run -i cat differ"
    );
}

// --------------------------------------------------------- TTY under tmux

#[test]
fn run_it_under_tmux_types_resizes_detaches_reattaches_and_exits_3() {
    let d = Daemon::with_busybox();
    let t = Tmux::start(&d, "runit", "run -it --name t busybox sh");
    t.wait_text("/ #", 20);

    t.type_line("echo hello-$((6*7))");
    t.wait_count("hello-42", 1, 10);

    t.type_line("stty size");
    t.wait_count("30 100", 1, 10);

    t.run(&["resize-window", "-x", "120", "-y", "40"]);
    // The CLI sends the new size on SIGWINCH; the shell reads it with stty.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        t.type_line("stty size");
        std::thread::sleep(Duration::from_millis(300));
        let pane = t.capture();
        if pane.lines().any(|l| l.trim() == "40 120") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stty size never reported `40 120` after resize-window; pane:\n{pane}"
        );
    }

    // ctrl-p ctrl-q detaches: the CLI exits 0, the container keeps running.
    t.run(&["send-keys", "C-p", "C-q"]);
    t.wait_text("EXITED-0", 10);
    let st = state(&d, "t");
    assert_eq!(
        st["Running"], true,
        "detach must not stop the container: {st}"
    );

    // Reattach in a new terminal.
    let a = Tmux::start(&d, "attach", "attach t");
    // Nothing is redrawn on attach; wait for the attach to be in place by
    // typing until an answer comes back.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        a.type_line("echo back-$((50+5))");
        std::thread::sleep(Duration::from_millis(300));
        let pane = a.capture();
        if pane.lines().any(|l| l.trim() == "back-55") {
            break;
        }
        assert!(
            !pane.contains("EXITED-"),
            "docker attach ended early; pane:\n{pane}"
        );
        assert!(
            Instant::now() < deadline,
            "reattached shell never answered; pane:\n{pane}"
        );
    }
    a.type_line("exit 3");
    a.wait_text("EXITED-3", 10);
    let st = wait_exited(&d, "t", 10);
    assert_eq!(st["ExitCode"], 3, "{st}");
    ok(&d, &["rm", "t"]);
}

#[test]
fn run_it_under_tmux_exit_3_ends_the_cli_with_3() {
    let d = Daemon::with_busybox();
    let t = Tmux::start(&d, "exit3", "run -it --name e busybox sh");
    t.wait_text("/ #", 20);
    t.type_line("exit 3");
    t.wait_text("EXITED-3", 10);
    let st = wait_exited(&d, "e", 10);
    assert_eq!(st["ExitCode"], 3, "{st}");
    ok(&d, &["rm", "e"]);
}

#[test]
fn tty_stdin_once_half_close_ends_that_attach_and_keeps_stdin_for_the_next() {
    // What `docker run -it` then ctrl-p ctrl-q does on the wire: the CLI
    // spots the detach keys itself and half-closes its attach connection
    // (it never sends the keys). dockerd, for a TTY container, then ends
    // that attach's output and leaves the container's stdin open
    // (StdinOnce closes stdin only without a TTY), so `docker attach` works.
    let d = Daemon::with_busybox();
    create(
        &d,
        "h",
        r#"{"Image":"busybox","Cmd":["sh"],"Tty":true,"OpenStdin":true,"StdinOnce":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#,
    );
    let attach = attach_request(
        "/containers/h/attach?stream=1&stdin=1&stdout=1&stderr=1",
        true,
    );
    let (head, mut s) = open_stream(&d, &attach);
    assert_eq!(head_status(&head), 101, "{head}");
    start(&d, "h");
    s.write_all(b"echo one-$((1+1))\n").unwrap();
    if let Err(got) = read_until(&mut s, b"one-2", 10) {
        panic!(
            "first attach: no answer: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let first_ended = ends_within(&mut s, 5);
    drop(s);
    wait_running(&d, "h", 5);

    let (head, mut s2) = open_stream(&d, &attach);
    assert_eq!(head_status(&head), 101, "{head}");
    let second = {
        let deadline = Instant::now() + Duration::from_secs(6);
        let mut res = Err(Vec::new());
        while Instant::now() < deadline {
            s2.write_all(b"echo two-$((2+2))\n").unwrap();
            res = read_until(&mut s2, b"two-4", 1);
            if res.is_ok() {
                break;
            }
        }
        res
    };
    assert!(
        second.is_ok(),
        "after a StdinOnce TTY attach half-closed, a new attach's stdin never reached the shell (container still running); second attach read {:?}; first attach ended on half-close: {first_ended}",
        String::from_utf8_lossy(second.as_ref().unwrap_err())
    );
    assert!(
        first_ended,
        "a TTY attach's half-close must end that attach's stream (dockerd closes its output)"
    );
    ok(&d, &["rm", "-f", "h"]);
}

#[test]
fn exec_it_under_tmux_answers_and_reports_the_terminal_size() {
    let d = Daemon::with_busybox();
    ok(&d, &["run", "-d", "--name", "s", "busybox", "sleep", "60"]);
    let t = Tmux::start(&d, "execit", "exec -it s sh");
    t.wait_text("/ #", 20);
    t.type_line("echo exec-$((6*7))");
    t.wait_count("exec-42", 1, 10);
    t.type_line("stty size");
    t.wait_count("30 100", 1, 10);
    t.type_line("exit 5");
    t.wait_text("EXITED-5", 10);
    // The container itself is untouched.
    assert_eq!(state(&d, "s")["Running"], true);
    ok(&d, &["rm", "-f", "s"]);
}

// ------------------------------------------------------------------- logs

#[test]
fn logs_all_follow_tail_timestamps_since_until_and_stream_split() {
    let d = Daemon::with_busybox();
    // stdout and stderr stay apart.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "split",
            "busybox",
            "sh",
            "-c",
            "echo o1; echo e1 >&2; echo o2; echo e2 >&2",
        ],
    );
    // The follower starts while the producer runs and ends when it exits.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "f",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6; do echo n$i; sleep 0.2; done",
        ],
    );
    let st = state(&d, "f");
    assert_eq!(st["Running"], true, "follow must start while running: {st}");
    let t0 = Instant::now();
    let o = dk_t(&d, &["logs", "-f", "f"], 15);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "n1\nn2\nn3\nn4\nn5\nn6\n"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "logs -f returned after {:?}, before the container ended",
        t0.elapsed()
    );
    wait_exited(&d, "f", 5);

    assert_eq!(ok(&d, &["logs", "f"]), "n1\nn2\nn3\nn4\nn5\nn6\n");
    assert_eq!(ok(&d, &["logs", "--tail", "3", "f"]), "n4\nn5\nn6\n");
    let ts = ok(&d, &["logs", "-t", "--tail", "2", "f"]);
    let ts_lines: Vec<&str> = ts.lines().collect();
    assert_eq!(ts_lines.len(), 2, "{ts}");
    for (l, want) in ts_lines.iter().zip(["n5", "n6"]) {
        let (stamp, text) = l
            .split_once(' ')
            .unwrap_or_else(|| panic!("no timestamp: {l:?}"));
        assert_eq!(text, want, "{ts}");
        assert!(
            stamp.len() >= 20 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'),
            "not an RFC 3339 UTC timestamp: {stamp:?}"
        );
    }

    wait_exited(&d, "split", 5);
    let o = dk(&d, &["logs", "split"]);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "o1\no2\n",
        "{}",
        show(&o)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "e1\ne2\n",
        "{}",
        show(&o)
    );

    // --since / --until with an RFC 3339 time taken between two outputs.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "since",
            "busybox",
            "sh",
            "-c",
            "echo before; sleep 1.5; echo after1; echo after2",
        ],
    );
    wait_for("the first line of `since`", 10, || {
        ok(&d, &["logs", "since"]).contains("before")
    });
    let mid = rfc3339(SystemTime::now());
    wait_exited(&d, "since", 10);
    assert_eq!(ok(&d, &["logs", "since"]), "before\nafter1\nafter2\n");
    assert_eq!(
        ok(&d, &["logs", "--since", &mid, "since"]),
        "after1\nafter2\n",
        "--since {mid}"
    );
    assert_eq!(
        ok(&d, &["logs", "--until", &mid, "since"]),
        "before\n",
        "--until {mid}"
    );
    ok(&d, &["rm", "split", "f", "since"]);
}

#[test]
fn logs_of_a_tty_container_are_raw_and_non_tty_logs_are_framed() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "-t",
            "--name",
            "tl",
            "busybox",
            "sh",
            "-c",
            "echo tty-out; echo tty-err >&2",
        ],
    );
    wait_exited(&d, "tl", 10);
    let o = dk(&d, &["logs", "tl"]);
    assert!(o.status.success(), "{}", show(&o));
    // One terminal: both lines on stdout, with the pty's CRLF.
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "tty-out\r\ntty-err\r\n",
        "{}",
        show(&o)
    );
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    // The API sends the TTY log raw (no stdcopy header).
    let r = d.request_bytes("GET", "/containers/tl/logs?stdout=1&stderr=1", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "tty-out\r\ntty-err\r\n", "raw TTY log body");
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.docker.raw-stream")
    );
    // ... and a non-TTY log multiplexed.
    ok(&d, &["run", "--name", "nt", "busybox", "echo", "plain"]);
    let r = d.request_bytes("GET", "/containers/nt/logs?stdout=1&stderr=1", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.docker.multiplexed-stream")
    );
    let (out, err, _) = demux_strict(&r.body);
    assert_eq!(
        (out.as_slice(), err.as_slice()),
        (&b"plain\n"[..], &b""[..])
    );

    ok(&d, &["rm", "tl", "nt"]);
}

#[test]
fn logs_with_log_driver_none_fail_like_dockerd() {
    // dockerd: 501 NotImplemented, "configured logging driver does not support reading".
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--log-driver",
            "none",
            "--name",
            "ln",
            "busybox",
            "echo",
            "unlogged",
        ],
    );
    wait_exited(&d, "ln", 10);
    let o = dk(&d, &["logs", "ln"]);
    assert!(
        !o.status.success(),
        "logs with driver none must fail: {}",
        show(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("configured logging driver does not support reading"),
        "dockerd's message for driver none: {}",
        show(&o)
    );
    let r = d.request_bytes("GET", "/containers/ln/logs?stdout=1", &[], None);
    assert_eq!(
        r.status,
        501,
        "dockerd answers 501 NotImplemented: {}",
        r.text()
    );
    ok(&d, &["rm", "ln"]);
}

// ------------------------------------------------------------------- exec

#[test]
fn exec_exit_codes_user_stdin_errors_inspect_and_events() {
    let d = Daemon::with_busybox();
    let id = ok(&d, &["run", "-d", "--name", "s", "busybox", "sleep", "60"])
        .trim()
        .to_string();

    let ls = ok(&d, &["exec", "s", "ls", "/"]);
    assert!(ls.lines().any(|l| l == "bin"), "ls / inside: {ls}");

    let o = dk(&d, &["exec", "s", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", show(&o));

    let idout = ok(&d, &["exec", "-u", "nobody", "s", "id"]);
    assert!(idout.contains("uid=65534"), "exec -u nobody: {idout}");

    let small = b"small file\nsecond line\n\x00\x01\xff end".to_vec();
    let o = dk_in(&d, &["exec", "-i", "s", "cat"], Some(small.clone()), 15);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(o.stdout, small, "exec -i cat round trip");

    // The exec's inspect after it ended.
    let r = d.request(
        "POST",
        "/containers/s/exec",
        Some(r#"{"Cmd":["sh","-c","exit 9"],"AttachStdout":true}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let exec_id = r.json()["Id"].as_str().expect("exec Id").to_string();
    let j = d.request("GET", &format!("/exec/{exec_id}/json"), None);
    assert_eq!(j.status, 200, "{j:?}");
    let j = j.json();
    assert_eq!(j["Running"], false, "{j}");
    assert_eq!(j["ContainerID"], id.as_str(), "{j}");
    let r = d.request(
        "POST",
        &format!("/exec/{exec_id}/start"),
        Some(r#"{"Detach":true}"#),
    );
    assert!(matches!(r.status, 200 | 204), "{r:?}");
    let mut j = Value::Null;
    wait_for("the detached exec to end", 10, || {
        j = d
            .request("GET", &format!("/exec/{exec_id}/json"), None)
            .json();
        j["Running"] == false && j["ExitCode"].is_i64()
    });
    assert_eq!(j["ExitCode"], 9, "{j}");
    assert_eq!(j["ProcessConfig"]["entrypoint"], "sh", "{j}");
    assert_eq!(
        j["ProcessConfig"]["arguments"],
        serde_json::json!(["-c", "exit 9"]),
        "{j}"
    );
    assert!(j["Pid"].as_i64().is_some_and(|p| p > 0), "Pid: {j}");

    // exec events, in order, for the container.
    let evs = d.events(Some(&format!(r#"{{"container":["{id}"]}}"#)));
    let acts: Vec<String> = evs
        .iter()
        .filter(|e| e["Type"] == "container")
        .map(|e| e["Action"].as_str().unwrap_or("").to_string())
        .collect();
    let creates = acts.iter().filter(|a| a.starts_with("exec_create")).count();
    let starts = acts.iter().filter(|a| a.starts_with("exec_start")).count();
    let dies = acts.iter().filter(|a| a.starts_with("exec_die")).count();
    assert!(
        creates >= 5 && starts >= 5 && dies >= 5,
        "exec events (create {creates}, start {starts}, die {dies}): {acts:?}"
    );
    assert!(
        acts.iter().any(|a| a == "exec_create: sh -c exit 9"),
        "dockerd names the command in exec_create: {acts:?}"
    );
    let die9 = evs
        .iter()
        .find(|e| {
            e["Action"] == "exec_die" && e["Actor"]["Attributes"]["execID"] == exec_id.as_str()
        })
        .unwrap_or_else(|| panic!("no exec_die for {exec_id}: {evs:?}"));
    assert_eq!(die9["Actor"]["Attributes"]["exitCode"], "9", "{die9}");

    // exec on a stopped container: 409.
    ok(&d, &["stop", "-t", "1", "s"]);
    let r = d.request("POST", "/containers/s/exec", Some(r#"{"Cmd":["true"]}"#));
    assert_eq!(r.status, 409, "exec on a stopped container: {r:?}");
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("is not running")),
        "{r:?}"
    );
    ok(&d, &["rm", "s"]);
}

#[test]
fn exec_of_a_missing_command_fails_with_126_or_127_like_dockerd() {
    // dockerd answers the exec start with 101, writes the runtime's error
    // into the stream, and the CLI exits with the exec's ExitCode (127).
    let d = Daemon::with_busybox();
    ok(&d, &["run", "-d", "--name", "s", "busybox", "sleep", "60"]);
    let o = dk(&d, &["exec", "s", "nope"]);
    eprintln!("docker exec s nope -> {}", show(&o));
    assert!(
        matches!(o.status.code(), Some(126) | Some(127)),
        "missing command: dockerd exits 126/127: {}",
        show(&o)
    );
    // dockerd writes the runtime's error into the exec's stdout stream
    // (`stdout.Write([]byte(err.Error() + "\r\n"))` in its exec router).
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("executable file not found in $PATH"),
        "error should name the missing executable: {}",
        show(&o)
    );

    ok(&d, &["rm", "-f", "s"]);
}

// ---------------------------------------------------- backpressure, bounds

/// Unix-socket client with a small receive buffer.
fn small_rcvbuf_client(d: &Daemon) -> UnixStream {
    let s = d.connect();
    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &4096)
        .expect("set SO_RCVBUF");
    s
}

#[test]
fn unread_attach_of_yes_keeps_daemon_memory_bounded_and_responsive() {
    let _heavy = heavy();
    let d = Daemon::with_busybox();
    let _id = create(
        &d,
        "y",
        r#"{"Image":"busybox","Cmd":["yes"],"AttachStdout":true,"AttachStderr":true}"#,
    );
    // The floor: the slowest of a few round trips before the producer
    // runs, on the machine as loaded as it is now. The bound (1 s, or five
    // times the floor on a busy machine, at most 3 s) still catches a loop
    // that spins on or waits for the blocked producer.
    let round_trip = |path: &str| {
        let t = Instant::now();
        assert_eq!(d.request("GET", path, None).status, 200);
        t.elapsed()
    };
    let floor = (0..5)
        .map(|_| round_trip("/_ping").max(round_trip("/containers/json?all=1")))
        .max()
        .unwrap_or_default();
    let bound = (floor * 5).clamp(Duration::from_secs(1), Duration::from_secs(3));
    let mut s = small_rcvbuf_client(&d);
    s.write_all(attach_request("/containers/y/attach?stream=1&stdout=1&stderr=1", true).as_bytes())
        .unwrap();
    let head = read_head(&mut s);
    assert_eq!(head_status(&head), 101, "{head}");
    // Sample from the start: the first burst (until the client's buffer is
    // full) is part of the window.
    start(&d, "y");

    let pid = d.pid();
    let base = common::vm_rss_kib(pid).expect("daemon VmRSS");
    let log = d
        .data_root
        .join("containers")
        .join(&_id)
        .join(format!("{_id}-json.log"));
    let mut max_rss = base;
    let (mut max_ping, mut max_list) = (Duration::ZERO, Duration::ZERO);
    let mut log_sizes = Vec::new();
    let t0 = Instant::now();
    // 5 s and at least 20 samples (a busy machine makes each one slower).
    while t0.elapsed() < Duration::from_secs(5)
        || (log_sizes.len() < 20 && t0.elapsed() < Duration::from_secs(30))
    {
        let rss = common::vm_rss_kib(pid).expect("daemon alive");
        max_rss = max_rss.max(rss);
        assert!(
            rss < 32 * 1024,
            "daemon VmRSS {rss} KiB >= 32 MiB after {:?} (start {base} KiB)",
            t0.elapsed()
        );
        let t = Instant::now();
        let r = d.request("GET", "/_ping", None);
        let el = t.elapsed();
        max_ping = max_ping.max(el);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(el < bound, "/_ping took {el:?} (floor {floor:?})");
        let t = Instant::now();
        let r = d.request("GET", "/containers/json", None);
        let el = t.elapsed();
        max_list = max_list.max(el);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            r.body.contains("\"y\"") || r.body.contains("/y"),
            "{}",
            r.body
        );
        assert!(el < bound, "/containers/json took {el:?} (floor {floor:?})");
        log_sizes.push(std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "unread attach: VmRSS start {base} KiB, max {max_rss} KiB; max ping {max_ping:?}, max list {max_list:?}; json log size first {:?} last {:?}",
        log_sizes.first(),
        log_sizes.last()
    );
    assert_eq!(state(&d, "y")["Running"], true, "yes must still run");
    // Throttled, not buffered or dropped: with the client's buffer full the
    // pipe is left unread, so the json log stops growing too.
    let n = log_sizes.len();
    assert!(n >= 20, "only {n} samples in 5 s");
    assert_eq!(
        log_sizes[n / 2],
        log_sizes[n - 1],
        "the json log still grew in the second half of the window: the producer is not throttled ({log_sizes:?})"
    );
    // The client, reading at last, gets a well-formed stream of `y` lines.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; 8];
    s.read_exact(&mut buf).expect("read a frame header");
    assert_eq!(buf[..4], [1, 0, 0, 0], "stdout frame header: {buf:?}");
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    let mut payload = vec![0u8; len.min(4096)];
    s.read_exact(&mut payload).expect("read frame payload");
    assert!(
        payload.chunks(2).all(|c| c == b"y\n" || c == b"y"),
        "payload of yes: {:?}",
        String::from_utf8_lossy(&payload)
    );
    drop(s);
    ok(&d, &["rm", "-f", "y"]);
}

#[test]
fn log_rotation_keeps_a_yes_container_under_max_size_times_max_file() {
    let _heavy = heavy();
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "rot",
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=2",
            "busybox",
            "yes",
        ],
    )
    .trim()
    .to_string();
    let dir = d.data_root.join("containers").join(&id);
    let prefix = format!("{id}-json.log");
    const MIB: u64 = 1 << 20;
    let mut max_total = 0;
    let mut max_files = 0;
    let mut seen_rotated = false;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        let mut files = Vec::new();
        for e in std::fs::read_dir(&dir).expect("container dir").flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                // A file may be renamed or removed between listing and stat.
                let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                files.push((name, len));
            }
        }
        let total: u64 = files.iter().map(|f| f.1).sum();
        seen_rotated |= files.iter().any(|f| f.0 != prefix);
        max_total = max_total.max(total);
        max_files = max_files.max(files.len());
        assert!(
            files.len() <= 2,
            "more than max-file=2 log files after {:?}: {files:?}",
            t0.elapsed()
        );
        assert!(
            total <= 2 * MIB,
            "log files total {total} bytes > 2 MiB after {:?}: {files:?}",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("rotation: max total {max_total} bytes, max files {max_files}");
    assert!(
        seen_rotated,
        "5 s of `yes` never rotated the 1 MiB log (max total {max_total})"
    );
    assert_eq!(state(&d, "rot")["Running"], true, "yes must still run");
    // The rotated logs still read.
    let o = dk(&d, &["logs", "--tail", "3", "rot"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "y\ny\ny\n",
        "{}",
        show(&o)
    );
    ok(&d, &["rm", "-f", "rot"]);
}

// ---------------------------------------------------- raw attach framing

#[test]
fn raw_attach_framing_content_types_plain_200_and_exited_containers_reattach() {
    let d = Daemon::with_busybox();
    let script = r#"{"Image":"busybox","Cmd":["sh","-c","sleep 0.3; echo out1; echo err1 >&2; printf 'out2 no newline'; printf 'err2' >&2"],"AttachStdout":true,"AttachStderr":true}"#;

    // API 1.45 (no prefix), Upgrade: multiplexed-stream.
    create(&d, "a1", script);
    let (head, mut s) = open_stream(
        &d,
        &attach_request("/containers/a1/attach?stream=1&stdout=1&stderr=1", true),
    );
    assert_eq!(head_status(&head), 101, "{head}");
    assert_eq!(
        head_header(&head, "content-type").as_deref(),
        Some("application/vnd.docker.multiplexed-stream"),
        "{head}"
    );
    start(&d, "a1");
    let raw = read_to_eof(&mut s, 15);
    let (out, err, frames) = demux_strict(&raw);
    assert_eq!(String::from_utf8_lossy(&out), "out1\nout2 no newline");
    assert_eq!(String::from_utf8_lossy(&err), "err1\nerr2");
    assert!(frames >= 2, "{frames} frames");

    // /v1.41/: raw-stream content type, but still framed for non-TTY.
    create(&d, "a2", script);
    let (head, mut s) = open_stream(
        &d,
        &attach_request(
            "/v1.41/containers/a2/attach?stream=1&stdout=1&stderr=1",
            true,
        ),
    );
    assert_eq!(head_status(&head), 101, "{head}");
    assert_eq!(
        head_header(&head, "content-type").as_deref(),
        Some("application/vnd.docker.raw-stream"),
        "{head}"
    );
    start(&d, "a2");
    let (out, err, _) = demux_strict(&read_to_eof(&mut s, 15));
    assert_eq!(String::from_utf8_lossy(&out), "out1\nout2 no newline");
    assert_eq!(String::from_utf8_lossy(&err), "err1\nerr2");

    // No Upgrade header: 200 and the (framed) stream until the end.
    create(&d, "a3", script);
    let (head, mut s) = open_stream(
        &d,
        &attach_request("/containers/a3/attach?stream=1&stdout=1&stderr=1", false),
    );
    assert_eq!(head_status(&head), 200, "{head}");
    start(&d, "a3");
    let mut body = read_to_eof(&mut s, 15);
    if head_header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut full = head.clone().into_bytes();
        full.extend_from_slice(&body);
        body = common::parse_raw_response(&full).body;
    }
    let (out, err, _) = demux_strict(&body);
    assert_eq!(String::from_utf8_lossy(&out), "out1\nout2 no newline");
    assert_eq!(String::from_utf8_lossy(&err), "err1\nerr2");

    // A TTY container's attach is raw (no frame headers).
    create(
        &d,
        "a4",
        r#"{"Image":"busybox","Tty":true,"Cmd":["sh","-c","sleep 0.3; echo tty-line"],"AttachStdout":true}"#,
    );
    let (head, mut s) = open_stream(
        &d,
        &attach_request("/containers/a4/attach?stream=1&stdout=1&stderr=1", true),
    );
    assert_eq!(head_status(&head), 101, "{head}");
    assert_eq!(
        head_header(&head, "content-type").as_deref(),
        Some("application/vnd.docker.raw-stream"),
        "{head}"
    );
    start(&d, "a4");
    assert_eq!(
        String::from_utf8_lossy(&read_to_eof(&mut s, 15)),
        "tty-line\r\n"
    );

    // Attach with stream=1 to an exited container: dockerd accepts it and
    // the stream carries the container's next run (what `docker start -a`
    // relies on); only the CLI's own `docker attach` refuses a stopped one.
    wait_exited(&d, "a1", 10);
    let (head, mut s) = open_stream(
        &d,
        &attach_request("/containers/a1/attach?stream=1&stdout=1&stderr=1", true),
    );
    assert_eq!(head_status(&head), 101, "{head}");
    start(&d, "a1");
    let again = String::from_utf8_lossy(&read_to_eof(&mut s, 15)).into_owned();
    assert!(
        again.contains("out1") && again.contains("err2"),
        "the next run's output: {again:?}"
    );
    wait_exited(&d, "a1", 10);
    let o = dk(&d, &["start", "-a", "a1"]);
    assert!(
        o.status.success(),
        "docker start -a of an exited container: {}",
        show(&o)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out1\nout2 no newline");
    // A paused container refuses, with dockerd's words.
    ok(&d, &["run", "-d", "--name", "a5", "busybox", "sleep", "30"]);
    ok(&d, &["pause", "a5"]);
    let r = d.request("POST", "/containers/a5/attach?stream=1&stdout=1", None);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        r.body
            .contains("container a5 is paused, unpause the container before attach"),
        "{}",
        r.body
    );
    ok(&d, &["rm", "-f", "a5"]);
    ok(&d, &["rm", "-f", "a1", "a2", "a3", "a4"]);
}

// ------------------------------------------------------------- resize API

#[test]
fn resize_api_reaches_a_tty_container_and_is_a_noop_without_a_tty() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "-t",
            "--name",
            "rz",
            "busybox",
            "sh",
            "-c",
            "while true; do stty size; sleep 0.1; done",
        ],
    );
    wait_running(&d, "rz", 10);
    let r = d.request("POST", "/containers/rz/resize?h=20&w=60", None);
    assert!(matches!(r.status, 200 | 204), "resize: {r:?}");
    let mut last = String::new();
    wait_for("the TTY container to print `20 60`", 10, || {
        last = ok(&d, &["logs", "--tail", "2", "rz"]);
        last.lines().any(|l| l.trim() == "20 60")
    });
    // Also visible to an exec'd process on the same terminal (the exec has
    // no TTY of its own, so ask the container's pty via pid 1's stdin).
    let o = dk(&d, &["exec", "rz", "sh", "-c", "stty size < /proc/1/fd/0"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "20 60",
        "{}",
        show(&o)
    );

    ok(
        &d,
        &["run", "-d", "--name", "nrz", "busybox", "sleep", "60"],
    );
    // As dockerd (containerd resizes a process without a console as a
    // no-op): 200, and a stopped container is refused.
    let r = d.request("POST", "/containers/nrz/resize?h=20&w=60", None);
    assert_eq!(r.status, 200, "resize of a non-TTY container: {r:?}");
    ok(&d, &["kill", "nrz"]);
    let r = d.request("POST", "/containers/nrz/resize?h=20&w=60", None);
    assert_eq!(r.status, 409, "resize of a stopped container: {r:?}");
    assert!(r.body.contains("is not running"), "{r:?}");
    ok(&d, &["rm", "-f", "rz", "nrz"]);
}
