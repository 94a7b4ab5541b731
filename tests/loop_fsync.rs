//! No fsync on the event loop for the container cycle: create, start, exit
//! and rm make their records durable in workers (or in the started
//! container's own child), and a reply still leaves only once what it
//! reports is as durable as docs/ARCHITECTURE.md's table says.
//!
//! The loop is the daemon's only thread, so `strace -p PID` without `-f`
//! sees the loop's syscalls and none of its forked workers' or children's:
//! a cycle traced that way must show renames (the loop publishes records)
//! and not one fsync, fdatasync, syncfs or sync; nor may an untagged build
//! (its step images change no reference). Then the durability:
//! the start record is on disk when the 204 leaves, the exit record is
//! published by the sync worker soon after the exit, a kill -9 and a crash
//! at the sync worker's failpoint recover to the table's states.

mod common;

use common::build::{context, docker_build, text};
use common::raw_api::{create, start, wait_exit};
use common::Daemon;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Held while a daemon is spawned: the crash test arms its failpoint
/// through the environment the daemons inherit.
static SPAWN: Mutex<()> = Mutex::new(());

/// `strace` attached to the daemon's loop (its one thread, no `-f`).
struct Trace {
    child: Child,
    out: std::path::PathBuf,
}

impl Trace {
    fn attach(d: &Daemon) -> Trace {
        let out = d.dir.join("strace.txt");
        let child = Command::new("strace")
            .args([
                "-qq",
                "-e",
                "signal=none",
                "-e",
                "trace=fsync,fdatasync,syncfs,sync,sync_file_range,rename,renameat,renameat2",
                "-o",
            ])
            .arg(&out)
            .arg("-p")
            .arg(d.pid().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strace must be installed (apt-get install strace)");
        let t = Trace { child, out };
        // Attached once a traced syscall shows up: a start renames its
        // record in on the loop (the "probe" container runs `true`).
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            start(d, "probe");
            wait_exit(d, "probe");
            if t.text().contains("rename") {
                return t;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("strace did not attach to the daemon: {}", t.text());
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn record(d: &Daemon, id: &str) -> Value {
    let p = d.data_root.join("containers").join(id).join("config.json");
    serde_json::from_slice(&std::fs::read(&p).expect("read the record")).expect("a whole record")
}

fn state(d: &Daemon, name: &str) -> String {
    let r = d.request("GET", &format!("/containers/{name}/json"), None);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    format!("{} {}", v["State"]["Status"], v["State"]["ExitCode"])
}

fn remove(d: &Daemon, name: &str) {
    let r = d.request("DELETE", &format!("/containers/{name}?force=1"), None);
    assert_eq!(r.status, 204, "rm {name}: {r:?}");
}

/// What only the loop did during `work`: its fsync-family calls, and
/// whether it renamed anything (proof that the trace saw the loop).
fn traced(d: &Daemon, work: impl FnOnce()) -> (Vec<String>, usize) {
    let trace = Trace::attach(d);
    work();
    // Let strace write out what it saw.
    std::thread::sleep(Duration::from_millis(300));
    let text = trace.text();
    drop(trace);
    let syncs: Vec<String> = text
        .lines()
        .filter(|l| l.contains("sync"))
        .map(str::to_string)
        .collect();
    let renames = text.lines().filter(|l| l.contains("rename")).count();
    (syncs, renames)
}

#[test]
fn the_loop_never_fsyncs_in_the_container_cycle() {
    let mut d = {
        let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        Daemon::start()
    };
    d.load_busybox();
    create(&d, "probe", &json!({"Image": "busybox", "Cmd": ["true"]}));

    // 1. Traced: create, start, exit, wait, rm through the API (the default
    // bridge), a start that fails (its record too), a `docker run --rm`.
    let (syncs, renames) = traced(&d, || {
        for i in 0..3 {
            let name = format!("c{i}");
            create(
                &d,
                &name,
                &json!({"Image": "busybox", "Cmd": ["sh", "-c", "exit 3"]}),
            );
            start(&d, &name);
            assert_eq!(wait_exit(&d, &name), 3);
            remove(&d, &name);
        }
        create(
            &d,
            "bad",
            &json!({"Image": "busybox", "Cmd": ["/nonexistent"]}),
        );
        let r = d.request("POST", "/containers/bad/start", None);
        assert_eq!(r.status, 400, "{r:?}");
        remove(&d, "bad");
        let o = d.docker(&["run", "--rm", "--network", "none", "busybox", "true"]);
        assert!(o.status.success(), "{o:?}");
        // A build's untagged step images write no references.json.
        let ctx = context(
            "fsync-build",
            &[("Dockerfile", "FROM busybox\nENV A=1\nLABEL x=y\n")],
        );
        let o = docker_build(&d, &["-q", ctx.to_str().expect("utf-8")]);
        let _ = std::fs::remove_dir_all(&ctx);
        assert!(o.status.success(), "{}", text(&o));
    });
    assert!(
        renames >= 3,
        "the trace saw {renames} renames: not the loop?"
    );
    assert!(
        syncs.is_empty(),
        "the loop fsynced during the container cycle:\n{}",
        syncs.join("\n")
    );

    // 2. Durable when answered: the start record is on disk at the 204;
    // the exit record is published by the sync worker soon after the exit.
    let id = create(
        &d,
        "s",
        &json!({"Image": "busybox", "Cmd": ["sleep", "100"]}),
    );
    let before = record(&d, &id);
    assert_ne!(before["StartPending"], json!(true), "{before}");
    start(&d, "s");
    let pending = record(&d, &id);
    assert_eq!(pending["StartPending"], json!(true), "{pending}");
    assert_ne!(
        pending["State"]["StartedAt"], before["State"]["StartedAt"],
        "{pending}"
    );
    let e = create(
        &d,
        "e",
        &json!({"Image": "busybox", "Cmd": ["sh", "-c", "exit 7"]}),
    );
    start(&d, "e");
    assert_eq!(wait_exit(&d, "e"), 7);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = record(&d, &e);
        if r["StartPending"] != json!(true) && r["State"]["ExitCode"] == json!(7) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the exit record was not published: {r}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // No staged record is left beside it once published.
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("containers").join(&e))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // 3. kill -9: the running one had its start record (exited 255), the
    // exited one its exit record.
    d.kill9();
    {
        let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        d.restart();
    }
    assert_eq!(state(&d, "s"), "\"exited\" 255");
    assert_eq!(state(&d, "e"), "\"exited\" 7");
    remove(&d, "s");
    remove(&d, "e");
    remove(&d, "probe");
    d.terminate();
}

/// A crash at the sync worker's point (the exit record fdatasynced, not yet
/// renamed in) leaves the start's pending record: exited (255), as the
/// table says; a create cut in its worker leaves a whole container or none.
#[test]
fn crashes_in_the_sync_workers_recover_to_the_table() {
    if std::env::var("CORACLE_BIN").is_ok_and(|b| !b.is_empty()) {
        eprintln!("skipped: failpoints exist only in this debug build");
        return;
    }
    let mut base = {
        let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        Daemon::start()
    };
    base.load_busybox();
    base.terminate();
    let root = base.data_root.clone();
    for (point, op) in [
        ("record.synced", "run"),
        ("container.create_renamed", "create"),
        ("container.create_tmp", "create"),
    ] {
        {
            let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            std::env::set_var("CORACLE_FAILPOINT", point);
            base.restart();
            std::env::remove_var("CORACLE_FAILPOINT");
        }
        let o = match op {
            // No network: the first record synced is the exit's (on a
            // bridge, the start's endpoint record comes first).
            "run" => base.docker(&[
                "run",
                "--name",
                "x",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "exit 4",
            ]),
            _ => base.docker(&["create", "--name", "x", "busybox", "true"]),
        };
        let mut child = base.child.take().expect("daemon");
        let st = common::wait_timeout(&mut child, Duration::from_secs(20));
        assert!(
            st.is_some()
                && base
                    .log_text()
                    .contains(&format!("failpoint {point} fired")),
            "{point}: not fired ({o:?})\n{}",
            base.log_text()
        );
        {
            let _g = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
            base.restart();
        }
        let r = base.request("GET", "/containers/x/json", None);
        match point {
            "record.synced" => {
                assert_eq!(state(&base, "x"), "\"exited\" 255", "{point}");
            }
            // Renamed in before the crash: the whole container.
            "container.create_renamed" => {
                assert_eq!(r.status, 200, "{point}: {r:?}");
                assert_eq!(state(&base, "x"), "\"created\" 0", "{point}");
            }
            // Cut before the rename: nothing, and no temp dir left.
            _ => assert_eq!(r.status, 404, "{point}: {r:?}"),
        }
        let temps: Vec<_> = std::fs::read_dir(root.join("containers"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(temps.is_empty(), "{point}: {temps:?}");
        let o = base.docker(&["rm", "-f", "x"]);
        assert!(
            o.status.success() || point == "container.create_tmp",
            "{o:?}"
        );
        let o = base.docker(&["create", "--name", "x", "busybox", "true"]);
        assert!(o.status.success(), "{point}: redo: {o:?}");
        let o = base.docker(&["rm", "x"]);
        assert!(o.status.success(), "{o:?}");
        base.terminate();
    }
}
