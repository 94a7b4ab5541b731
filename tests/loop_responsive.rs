//! The loop stays responsive while long work happens: `/_ping` is answered
//! quickly while `docker logs --tail 5` reads a 500 MiB log (and the
//! daemon's memory stays small), and while `docker rm` deletes a container
//! whose upper dir holds 200,000 files.
//!
//! Latency: on this shared two-core machine a scheduler hiccup can delay one
//! answer of an idle daemon by tens of milliseconds, so the check is that
//! 90 % of the pings take under 50 ms and none takes a second. A loop that
//! blocks on the work (reads the whole log, walks the tree) misses both by
//! seconds.

mod common;

use common::Daemon;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ping the daemon's socket in a loop until `stop`, recording each latency.
fn pinger(d: &Daemon, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    let sock = d.sock.clone();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
            s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .expect("send ping");
            let text = common::read_all(&mut s);
            assert!(text.starts_with("HTTP/1.1 200"), "ping: {text}");
            out.push(t.elapsed());
            std::thread::sleep(Duration::from_millis(5));
        }
        out
    })
}

fn assert_responsive(what: &str, mut pings: Vec<Duration>) {
    assert!(pings.len() >= 5, "{what}: only {} pings", pings.len());
    pings.sort();
    let p90 = pings[pings.len() * 9 / 10];
    let max = *pings.last().unwrap_or(&Duration::ZERO);
    assert!(
        p90 < Duration::from_millis(50),
        "{what}: 90th percentile /_ping {p90:?} (max {max:?}, {} pings)",
        pings.len()
    );
    assert!(
        max < Duration::from_secs(1),
        "{what}: slowest /_ping {max:?}"
    );
}

fn create(d: &Daemon, name: &str) -> String {
    let o = d.docker(&["create", "--name", name, "busybox", "true"]);
    assert!(o.status.success(), "create: {o:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A json-file log of `mib` MiB of stdout lines, ending in `last-1..last-5`.
fn write_big_log(path: &Path, mib: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create log"));
    let line = "{\"log\":\"a line of filler text for the log\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:00.000000001Z\"}\n";
    let mut block = String::new();
    while block.len() < (1 << 20) {
        block.push_str(line);
    }
    for _ in 0..mib {
        f.write_all(block.as_bytes()).expect("write log");
    }
    for i in 1..=5 {
        writeln!(
            f,
            "{{\"log\":\"last-{i}\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-01T00:00:01.000000001Z\"}}"
        )
        .expect("write log");
    }
    f.flush().expect("flush log");
}

#[test]
fn logs_tail_of_a_500_mib_log_is_quick_small_and_leaves_the_loop_free() {
    let d = Daemon::with_busybox();
    let id = create(&d, "biglog");
    let log = d
        .data_root
        .join("containers")
        .join(&id)
        .join(format!("{id}-json.log"));
    write_big_log(&log, 500);
    let pid = d.pid();
    let base = common::vm_rss_kib(pid).expect("daemon VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(Mutex::new(base));
    let sampler = {
        let (stop, max_rss) = (stop.clone(), max_rss.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(r) = common::vm_rss_kib(pid) {
                    let mut m = max_rss.lock().unwrap();
                    *m = (*m).max(r);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let pings = pinger(&d, stop.clone());
    let t = Instant::now();
    let o = d.docker(&["logs", "--tail", "5", "biglog"]);
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let pings = pings.join().expect("pinger");
    sampler.join().expect("sampler");

    assert!(o.status.success(), "docker logs: {o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "last-1\nlast-2\nlast-3\nlast-4\nlast-5\n"
    );
    assert!(
        took < Duration::from_secs(10),
        "docker logs --tail 5 took {took:?}"
    );
    let max_rss = *max_rss.lock().unwrap();
    // The tail is found without reading the log: the daemon grows by far less
    // than a MiB. The absolute 8 MiB holds for the release binary
    // (CORACLE_BIN, as CI runs it); the debug build alone idles near it.
    assert!(
        max_rss < base + 1024,
        "daemon VmRSS reached {max_rss} KiB (started at {base} KiB) for a 5-line tail"
    );
    if std::env::var_os("CORACLE_BIN").is_some() {
        assert!(
            max_rss < 8 * 1024,
            "release daemon VmRSS reached {max_rss} KiB for a 5-line tail"
        );
    }
    assert_responsive("logs --tail 5 of 500 MiB", pings);

    // The whole log streams in bounded pieces: read its first 50 MiB (then
    // hang up) while watching the daemon's memory and the loop.
    let mut r = std::process::Command::new("docker")
        .args(["logs", "biglog"])
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("docker logs");
    let stop = Arc::new(AtomicBool::new(false));
    let pings = pinger(&d, stop.clone());
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let mut out = r.stdout.take().expect("stdout");
    let mut max_rss = 0;
    let mut last_sample = Instant::now();
    while got < 50 << 20 {
        let n = std::io::Read::read(&mut out, &mut buf).expect("read logs");
        assert!(n > 0, "docker logs ended after {got} bytes");
        assert!(
            buf[..n].starts_with(b"a line") || got > 0,
            "the log starts with the filler"
        );
        got += n;
        if last_sample.elapsed() > Duration::from_millis(20) {
            max_rss = max_rss.max(common::vm_rss_kib(pid).unwrap_or(0));
            last_sample = Instant::now();
        }
    }
    let _ = r.kill();
    let _ = r.wait();
    stop.store(true, Ordering::SeqCst);
    let pings = pings.join().expect("pinger");
    // Pings are answered between the stream's turns (each connection yields
    // after a bounded quantum); in a debug build on a loaded machine a turn
    // of JSON parsing costs tens of ms, so only a loop held by the stream
    // for good (seconds) fails here.
    let slowest = pings.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(5),
        "slowest /_ping {slowest:?} while streaming"
    );
    // The tail above keeps to the 8 MiB bound; streaming everything may add
    // the connection's bounded buffers, never the log.
    assert!(
        max_rss < base + 4 * 1024,
        "daemon VmRSS {max_rss} KiB (started at {base} KiB) streaming the whole log"
    );
}

#[test]
fn rm_of_a_container_with_200000_files_leaves_the_loop_free() {
    let d = Daemon::with_busybox();
    let id = create(&d, "manyfiles");
    let upper = d.data_root.join("containers").join(&id).join("upper");
    for i in 0..200 {
        let dir = upper.join(format!("d{i}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        for j in 0..1000 {
            std::fs::File::create(dir.join(format!("f{j}"))).expect("create file");
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pings = pinger(&d, stop.clone());
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let r = d.request("DELETE", "/containers/manyfiles", None);
    let took = t.elapsed();
    assert_eq!(r.status, 204, "{r:?}");
    // The container is gone for every client at once.
    assert_eq!(
        d.request("GET", "/containers/manyfiles/json", None).status,
        404
    );
    assert!(!d.data_root.join("containers").join(&id).exists());
    // Its files go in the background: wait for them while pinging.
    let containers = d.data_root.join("containers");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left: Vec<_> = std::fs::read_dir(&containers)
            .expect("read containers dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&id))
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still there after 120 s: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let pings = pings.join().expect("pinger");
    assert!(
        took < Duration::from_secs(1),
        "docker rm answered after {took:?}"
    );
    assert_responsive("rm of 200,000 files", pings);
}

/// The endpoint added as the route table's worked example (one route line,
/// one handler): `docker plugin ls` lists no plugins, as dockerd with none.
#[test]
fn plugin_ls_is_one_route_and_one_handler() {
    let d = Daemon::start();
    let r = d.request("GET", "/plugins", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!([]));
    let o = d.docker(&["plugin", "ls", "--format", "{{.Name}}"]);
    assert!(o.status.success(), "docker plugin ls: {o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
}
