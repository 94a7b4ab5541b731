//! The loop stays responsive while long work happens: `/_ping` is answered
//! quickly while `docker logs --tail 5` reads a 500 MiB log (and the
//! daemon's memory stays small), while `docker rm` deletes a container
//! whose upper dir holds 200,000 files, while `docker pause` waits on a
//! freezer a task in the kernel keeps from finishing, and while containers
//! start from an image whose /etc/passwd is a FIFO.
//!
//! Latency: on this shared two-core machine a scheduler hiccup can delay one
//! answer of an idle daemon by tens of milliseconds, so the check is that
//! 90 % of the pings take under 50 ms and none takes a second. A loop that
//! blocks on the work (reads the whole log, walks the tree) misses both by
//! seconds.

mod common;

use common::{pinger, Daemon};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    // than a MiB. The issue's absolute 8 MiB holds for the release binary
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

/// A process that sits in the kernel where the freezer cannot stop it: a
/// `process_vm_readv` of its own page registered with userfaultfd and never
/// served waits (killable, not freezable) in `handle_userfault`, so the
/// cgroup stays FREEZING until it is killed. It joins the cgroup given on
/// the command line, prints `ready PID` once it is in D state, and is
/// killed when stdin closes.
const STUCK_IN_KERNEL: &str = r#"
import ctypes, fcntl, os, struct, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
procs = sys.argv[1]
pid = os.fork()
if pid == 0:
    open(procs, "w").write(str(os.getpid()))
    uffd = libc.syscall(ctypes.c_long(323), ctypes.c_long(os.O_CLOEXEC))
    fcntl.ioctl(uffd, 0xC018AA3F, bytearray(struct.pack("QQQ", 0xAA, 0, 0)))  # UFFDIO_API
    page = libc.mmap(None, 4096, 3, 0x22, -1, 0)
    fcntl.ioctl(uffd, 0xC020AA00, bytearray(struct.pack("QQQQ", page, 4096, 1, 0)))  # UFFDIO_REGISTER
    local = ctypes.create_string_buffer(16)
    liov, riov = iovec(ctypes.addressof(local), 16), iovec(page, 16)
    libc.syscall(ctypes.c_long(310), ctypes.c_long(os.getpid()), ctypes.byref(liov),
                 ctypes.c_ulong(1), ctypes.byref(riov), ctypes.c_ulong(1), ctypes.c_ulong(0))
    os._exit(0)
for _ in range(100):
    if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "D":
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9); sys.exit("the helper never blocked in the kernel")
print("ready", pid, flush=True)
sys.stdin.read()
os.kill(pid, 9)
os.waitpid(pid, 0)
"#;

/// The cgroup.procs file of the freezer hierarchy a process is in (v1's
/// `freezer` controller, or the v2 unified hierarchy).
fn freezer_procs_of(pid: u64) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrl.split(',').any(|c| c == "freezer") {
            return Path::new("/sys/fs/cgroup/freezer")
                .join(path.trim_start_matches('/'))
                .join("cgroup.procs");
        }
    }
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("no cgroup");
    Path::new("/sys/fs/cgroup")
        .join(path.trim_start_matches('/'))
        .join("cgroup.procs")
}

#[test]
fn pause_on_a_freezer_that_cannot_finish_leaves_the_loop_free() {
    let d = Daemon::with_busybox();
    let o = d.docker(&["run", "-d", "--name", "frz", "busybox", "sleep", "1000"]);
    assert!(o.status.success(), "run: {o:?}");
    let pid = d.request("GET", "/containers/frz/json", None).json()["State"]["Pid"]
        .as_u64()
        .expect("State.Pid");
    let mut helper = std::process::Command::new("python3")
        .args(["-c", STUCK_IN_KERNEL])
        .arg(freezer_procs_of(pid))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(helper.stdout.as_mut().expect("stdout")),
        &mut line,
    )
    .expect("helper output");
    assert!(line.starts_with("ready "), "helper: {line:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let pings = pinger(&d, stop.clone());
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let r = d.request("POST", "/containers/frz/pause", None);
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    let pings = pings.join().expect("pinger");
    // The freezer never finishes: the pause gives up (and thaws) after its
    // timeout, answering an error; meanwhile the loop answered everyone.
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.body.contains("did not freeze"), "{}", r.body);
    assert!(
        took >= Duration::from_millis(900),
        "answered after {took:?}"
    );
    assert_responsive("pause on a stuck freezer", pings);
    let st = d.request("GET", "/containers/frz/json", None).json()["State"].clone();
    assert_eq!(st["Status"], "running", "{st}");

    // Once the stuck task is gone, the same pause succeeds.
    drop(helper.stdin.take());
    let _ = helper.wait();
    assert_eq!(d.request("POST", "/containers/frz/pause", None).status, 204);
    assert_eq!(
        d.request("POST", "/containers/frz/unpause", None).status,
        204
    );
    assert!(d.docker(&["rm", "-f", "frz"]).status.success());
}

#[test]
fn a_fifo_at_etc_passwd_does_not_stall_a_start() {
    let d = Daemon::with_busybox();
    for args in [
        &[
            "run",
            "--name",
            "mk",
            "busybox",
            "sh",
            "-c",
            "rm /etc/passwd /etc/group && mkfifo /etc/passwd /etc/group",
        ][..],
        &["commit", "mk", "fifo:1"][..],
    ] {
        let o = d.docker(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let pings = pinger(&d, stop.clone());
    let t = Instant::now();
    // Root needs no lookup; a named user cannot be found in a FIFO.
    let root = d.docker(&["run", "--rm", "fifo:1", "echo", "ran"]);
    let named = d.docker(&["run", "--rm", "--user", "nobody", "fifo:1", "true"]);
    let took = t.elapsed();
    stop.store(true, Ordering::SeqCst);
    let pings = pings.join().expect("pinger");
    assert_eq!(
        String::from_utf8_lossy(&root.stdout).trim(),
        "ran",
        "{root:?}"
    );
    assert!(!named.status.success(), "{named:?}");
    assert!(
        String::from_utf8_lossy(&named.stderr).contains("unable to find user nobody"),
        "{named:?}"
    );
    assert!(took < Duration::from_secs(10), "two runs took {took:?}");
    assert_responsive("starts with a FIFO at /etc/passwd", pings);
}
