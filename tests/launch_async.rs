//! `start` answers when the launch's error pipe reports, without the loop
//! waiting on it: a container whose setup is stuck on a FUSE mount that
//! never answers leaves `/_ping` fast and other containers starting and
//! stopping, and fails with dockerd's error at its (test-shortened)
//! deadline; a burst of concurrent `docker run --rm` all succeed.

mod common;

use common::{pinger, Daemon};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A FUSE mount at `dir` whose server never answers: the helper holds
/// /dev/fuse open and sleeps (killed by the guard, which unmounts).
struct StuckFuse {
    helper: std::process::Child,
    dir: std::path::PathBuf,
}

impl StuckFuse {
    fn mount(dir: &std::path::Path) -> StuckFuse {
        let script = r#"
import ctypes, os, sys, time
fd = os.open("/dev/fuse", os.O_RDWR)
libc = ctypes.CDLL(None, use_errno=True)
opts = "fd=%d,rootmode=40000,user_id=0,group_id=0" % fd
r = libc.mount(b"stuck", sys.argv[1].encode(), b"fuse", 0, opts.encode())
if r != 0:
    print("mount failed", ctypes.get_errno(), flush=True); sys.exit(1)
print("mounted", flush=True)
time.sleep(600)
"#;
        let mut helper = Command::new("python3")
            .args(["-c", script, dir.to_str().unwrap_or("")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        let out = helper.stdout.take().expect("stdout");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("helper");
        assert_eq!(line.trim(), "mounted", "fuse helper: {line}");
        StuckFuse {
            helper,
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for StuckFuse {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = self.helper.kill();
        let _ = self.helper.wait();
    }
}

#[test]
fn launch_async() {
    // A debug build reads the deadline from the environment; a release
    // binary (CORACLE_BIN, the musl run) keeps its 30 s.
    std::env::set_var("CORACLE_DEBUG_LAUNCH_DEADLINE_SECS", "4");
    let deadline: u64 = if std::env::var("CORACLE_BIN").is_ok_and(|b| !b.is_empty()) {
        30
    } else {
        4
    };
    let d = Daemon::with_busybox();

    // A burst of concurrent runs: each answers once its process exec'd.
    let runs: Vec<_> = (0..20)
        .map(|_| {
            let sock = d.sock.clone();
            std::thread::spawn(move || {
                Command::new("docker")
                    .args(["-H", &format!("unix://{}", sock.display())])
                    .args(["run", "--rm", "busybox", "true"])
                    .output()
                    .expect("docker")
            })
        })
        .collect();
    for r in runs {
        let o = r.join().expect("run thread");
        assert!(o.status.success(), "run: {o:?}");
    }

    // A start whose setup is stuck on a FUSE mount that never answers.
    let dir = common::temp_dir("launch-fuse");
    let src = dir.join("mnt");
    std::fs::create_dir_all(&src).expect("mkdir");
    let o = d.docker(&[
        "create",
        "--name",
        "stuck",
        "--mount",
        &format!("type=bind,source={},target=/data", src.display()),
        "busybox",
        "true",
    ]);
    assert!(o.status.success(), "create: {o:?}");
    let o = d.docker(&["run", "-d", "--name", "alive", "busybox", "sleep", "60"]);
    assert!(o.status.success(), "run alive: {o:?}");
    let fuse = StuckFuse::mount(&src);
    let stop = Arc::new(AtomicBool::new(false));
    let pings = pinger(&d, stop.clone());
    let t = Instant::now();
    let sock = d.sock.clone();
    let stuck = std::thread::spawn(move || {
        Command::new("docker")
            .args(["-H", &format!("unix://{}", sock.display())])
            .args(["start", "stuck"])
            .output()
            .expect("docker")
    });
    std::thread::sleep(Duration::from_millis(500));
    // Meanwhile others start and stop.
    let o = d.docker(&["run", "--rm", "busybox", "echo", "meanwhile"]);
    assert!(o.status.success(), "run meanwhile: {o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "meanwhile");
    // Execs launch (and report failures) meanwhile too.
    let o = d.docker(&["exec", "alive", "echo", "exec-meanwhile"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "exec-meanwhile",
        "{o:?}"
    );
    let o = d.docker(&["exec", "-d", "alive", "true"]);
    assert!(o.status.success(), "exec -d: {o:?}");
    let o = d.docker(&["exec", "alive", "nope"]);
    assert_eq!(o.status.code(), Some(127), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("executable file not found in $PATH"),
        "{o:?}"
    );
    let o = d.docker(&["inspect", "-f", "{{.State.Status}}", "stuck"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "created",
        "{o:?}"
    );
    let o = stuck.join().expect("start thread");
    let took = t.elapsed();
    stop.store(true, Ordering::SeqCst);
    let mut pings = pings.join().expect("pinger");
    assert!(!o.status.success(), "stuck start succeeded: {o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "container setup did not finish within {deadline} s"
        )),
        "stderr: {err}"
    );
    assert!(
        took >= Duration::from_secs(deadline - 1) && took < Duration::from_secs(deadline + 16),
        "{took:?}"
    );
    pings.sort();
    assert!(pings.len() >= 5, "only {} pings", pings.len());
    let p90 = pings[pings.len() * 9 / 10];
    assert!(p90 < Duration::from_millis(50), "p90 /_ping {p90:?}");
    // Nothing left behind: no process in its cgroup, no cgroup.
    let o = d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "stuck"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "created 0",
        "{o:?}"
    );
    let id = String::from_utf8_lossy(&d.docker(&["inspect", "-f", "{{.Id}}", "stuck"]).stdout)
        .trim()
        .to_string();
    let leftover = Command::new("sh")
        .args([
            "-c",
            &format!("find /sys/fs/cgroup -maxdepth 3 -name '*{id}*'"),
        ])
        .output()
        .expect("find");
    assert!(leftover.stdout.is_empty(), "cgroup left: {leftover:?}");
    let o = d.docker(&["rm", "-f", "alive"]);
    assert!(o.status.success(), "rm alive: {o:?}");
    // No child left (a removal's delete worker may still be finishing).
    let t = Instant::now();
    while !common::children_of(d.pid()).is_empty() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(common::children_of(d.pid()).is_empty(), "children left");
    drop(fuse);
    let o = d.docker(&["rm", "stuck"]);
    assert!(o.status.success(), "rm: {o:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
