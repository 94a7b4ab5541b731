//! A build is an engine job (issue 17): the engine serves the build worker
//! and pushes its lines to the connection that started it. Checked here:
//! the issue's timing goals (a cached rebuild of its multi-stage Dockerfile
//! in under 20 % of the first build's time, `/_ping` and another
//! container's log stream as fast during a build as before it), the RUN
//! step's container in `docker ps -a` while it runs, a client leaving
//! during the upload, a daemon shutdown cancelling a running build with
//! nothing left behind, and (with CORACLE_SLOW_TESTS=1) a 200 MiB context
//! keeping the daemon's memory small.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::build::{context, docker_build, tar_of, text};
use common::{pinger, Daemon};

/// The tests here time things: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Temp dirs of workers left anywhere under the data root.
fn temp_dirs(root: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(root)
        .args(["-maxdepth", "4", "-name", ".tmp-*"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn percentile(v: &[Duration], p: usize) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get((v.len().max(1) - 1) * p / 100)
        .copied()
        .unwrap_or_default()
}

/// The issue's multi-stage Dockerfile (ARG, ENV, WORKDIR, USER, COPY
/// --from, ADD of a tar, RUN, HEALTHCHECK, EXPOSE, VOLUME, ENTRYPOINT,
/// CMD); each RUN sleeps a second, as a real one takes time. 18 steps, two
/// of them FROM.
const MULTI_STAGE: &str = "ARG BASE=busybox\n\
     FROM ${BASE} AS first\n\
     LABEL stage=first\n\
     COPY sub /stage/\n\
     RUN echo built > /stage/run.txt && sleep 1\n\
     FROM $BASE AS final\n\
     ARG WHO=nobody\n\
     ENV GREETING=hi DIR=/opt/app\n\
     WORKDIR ${DIR}\n\
     COPY a.txt ./\n\
     COPY --from=first /stage /opt/fromfirst\n\
     ADD t.tar /opt/tar/\n\
     RUN echo \"$GREETING $WHO\" > greeting && sleep 1\n\
     EXPOSE 8080/tcp\n\
     USER 1000\n\
     VOLUME /data\n\
     HEALTHCHECK --interval=5s CMD true\n\
     ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
     CMD [\"cat greeting /opt/fromfirst/run.txt /opt/tar/inner.txt\"]\n";

/// Follow a container's log stream on a raw connection: the arrival time
/// of every read, until `stop`.
fn follow_logs(
    d: &Daemon,
    name: &str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Instant>> {
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let req =
        format!("GET /containers/{name}/logs?follow=1&stdout=1&tail=0 HTTP/1.1\r\nHost: d\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    std::thread::spawn(move || {
        let mut arrivals = Vec::new();
        let mut buf = [0u8; 4096];
        while !stop.load(Ordering::SeqCst) {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => arrivals.push(Instant::now()),
                Err(_) => {}
            }
        }
        arrivals
    })
}

fn gaps(arrivals: &[Instant]) -> Vec<Duration> {
    arrivals.windows(2).map(|w| w[1] - w[0]).collect()
}

/// Watch `/containers/json?all=1` until `stop`: the rows whose command has
/// `needle`.
fn watch_ps(
    d: &Daemon,
    needle: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<serde_json::Value>> {
    let sock = d.sock.clone();
    std::thread::spawn(move || {
        let mut rows = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            s.write_all(
                b"GET /containers/json?all=1 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            let r = common::parse_response(&common::read_all(&mut s));
            if let Ok(serde_json::Value::Array(list)) = serde_json::from_str(&r.body) {
                rows.extend(
                    list.into_iter()
                        .filter(|c| c["Command"].as_str().is_some_and(|x| x.contains(needle))),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        rows
    })
}

/// One daemon, several checks: the first build of the issue's Dockerfile
/// while `/_ping`, another container's log stream and `docker ps -a` are
/// watched; the cached rebuild's time; a client leaving mid-upload.
#[test]
fn a_build_runs_as_an_engine_job() {
    let _serial = serial();
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let ctx = context(
        "bj-multi",
        &[
            ("a.txt", "hello\n"),
            ("sub/b", "bee\n"),
            ("Dockerfile", MULTI_STAGE),
        ],
    );
    let t = context("bj-tar", &[("inner.txt", "from tar\n")]);
    std::fs::write(ctx.join("t.tar"), tar_of(&t)).unwrap();
    let _ = std::fs::remove_dir_all(&t);
    let c = ctx.to_str().unwrap();

    // Another container streams a line every 100 ms to a follower.
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.1; done",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let ticker_pid: i32 = String::from_utf8_lossy(
        &d.docker(&["inspect", "-f", "{{.State.Pid}}", "ticker"])
            .stdout,
    )
    .trim()
    .parse()
    .expect("ticker pid");

    // The floors: the idle daemon's pings and the stream's gaps.
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = follow_logs(&d, "ticker", stop.clone());
    let pings = pinger(&d, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let floor_pings = pings.join().unwrap();
    let floor_gaps = gaps(&ticks.join().unwrap());

    // The first build, watched.
    let stop = Arc::new(AtomicBool::new(false));
    let ticks = follow_logs(&d, "ticker", stop.clone());
    let pings = pinger(&d, stop.clone());
    let ps = watch_ps(&d, "sleep 1", stop.clone());
    let t0 = Instant::now();
    let o = docker_build(&d, &["-t", "bj-multi", "--build-arg", "WHO=me", c]);
    let first = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let build_pings = pings.join().unwrap();
    let build_gaps = gaps(&ticks.join().unwrap());
    let rows = ps.join().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // Both RUNs and the ten metadata steps (dockerd 20.10 commits those
    // from a container too).
    assert_eq!(out.matches(" ---> Running in ").count(), 12, "{out}");
    let r = d.docker(&["run", "--rm", "bj-multi"]);
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "hi me\nbuilt\nfrom tar\n",
        "{}",
        text(&r)
    );

    // /_ping during the build as fast as before it (50 ms over the floor).
    let (fp, bp) = (percentile(&floor_pings, 90), percentile(&build_pings, 90));
    eprintln!(
        "/_ping p90 idle {fp:?} ({} pings), during the build {bp:?} (max {:?}, {} pings)",
        floor_pings.len(),
        percentile(&build_pings, 100),
        build_pings.len()
    );
    assert!(build_pings.len() >= 20, "{} pings", build_pings.len());
    assert!(
        bp < fp + Duration::from_millis(50),
        "/_ping p90 {bp:?} during the build, {fp:?} idle"
    );
    assert!(percentile(&build_pings, 100) < Duration::from_secs(1));
    // The other container's stream kept flowing.
    let (fg, bg) = (percentile(&floor_gaps, 90), percentile(&build_gaps, 90));
    eprintln!(
        "ticker gaps p90 idle {fg:?}, during the build {bg:?} (max {:?}, {} lines)",
        percentile(&build_gaps, 100),
        build_gaps.len()
    );
    assert!(build_gaps.len() >= 10, "{} ticks", build_gaps.len());
    // The ticker's own `sleep` forks compete with the build for the CPU:
    // a daemon that blocked would stall the stream for seconds.
    assert!(
        bg < fg * 2,
        "ticker p90 gap {bg:?} during the build, {fg:?} idle"
    );
    assert!(percentile(&build_gaps, 100) < Duration::from_secs(1));

    // `docker ps -a` showed the RUN step's container while it ran, as
    // dockerd shows it: the step's image by ID, the shell command, running.
    let row = rows
        .iter()
        .find(|r| {
            r["Command"].as_str().unwrap_or("").contains("greeting") && r["State"] == "running"
        })
        .unwrap_or_else(|| panic!("the RUN container never showed running in ps -a: {rows:?}"));
    assert!(
        row["Status"].as_str().unwrap_or("").starts_with("Up "),
        "{row}"
    );
    assert!(
        row["Image"].as_str().unwrap_or("").starts_with("sha256:"),
        "{row}"
    );
    assert_eq!(row["Image"], row["ImageID"], "{row}");
    assert_eq!(
        row["Command"], "/bin/sh -c 'echo \"$GREETING $WHO\" > greeting && sleep 1'",
        "{row}"
    );
    // rm (the default): the step containers are gone.
    let all = d.docker(&["ps", "-aq"]);
    assert_eq!(
        String::from_utf8_lossy(&all.stdout).lines().count(),
        1,
        "only the ticker is left: {}",
        text(&all)
    );

    // The second build: every step from the cache, in under 20 % of the
    // first build's time.
    let t0 = Instant::now();
    let o = docker_build(&d, &["-t", "bj-multi", "--build-arg", "WHO=me", c]);
    let second = t0.elapsed();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    eprintln!("first build {first:?}, cached rebuild {second:?}");
    assert_eq!(out.matches(" ---> Using cache\n").count(), 16, "{out}");
    assert!(!out.contains("Running in"), "{out}");
    assert!(
        second * 5 < first,
        "the cached rebuild took {second:?}, the first build {first:?}"
    );

    // A client that leaves during the upload: the job is cancelled, its
    // worker ends and its files go.
    let big = context(
        "bj-upload",
        &[("Dockerfile", "FROM busybox\nCOPY big /big\n")],
    );
    let o = Command::new("head")
        .args(["-c", "4194304", "/dev/urandom"])
        .stdout(std::fs::File::create(big.join("big")).unwrap())
        .status()
        .unwrap();
    assert!(o.success());
    let body = tar_of(&big);
    let _ = std::fs::remove_dir_all(&big);
    // Only the ticker once the removals' workers are done.
    let before = vec![ticker_pid];
    let until = Instant::now() + Duration::from_secs(10);
    while common::children_of(d.pid()) != before {
        assert!(
            Instant::now() < until,
            "the daemon's children: {:?}",
            common::children_of(d.pid())
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = d.connect();
    let head = format!(
        "POST /build?t=bj-upload HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body[..body.len() / 2]).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while common::children_of(d.pid()).len() < 2 || temp_dirs(&d.data_root).is_empty() {
        assert!(Instant::now() < until, "no build worker started");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(s);
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let kids = common::children_of(d.pid());
        let tmp = temp_dirs(&d.data_root);
        if kids == before && tmp.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "leftovers: children {kids:?}, temp dirs {tmp:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = d.docker(&["image", "inspect", "bj-upload"]);
    assert!(!o.status.success(), "a cancelled build tagged its image");
    let _ = std::fs::remove_dir_all(&ctx);
}

/// A daemon shutdown cancels a running build: the client reads dockerd's
/// "Build cancelled", the RUN container (whose `sleep` ignores SIGTERM as
/// PID 1) is killed and removed at once, the worker's files go, and the
/// restarted daemon has no container and no tag of it; the steps made
/// before stay as cache.
#[test]
fn a_shutdown_cancels_a_running_build() {
    let _serial = serial();
    let mut d = Daemon::with_busybox();
    d.has_containers = true;
    let dir = context(
        "bj-shutdown",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY f.txt /f.txt\nRUN sleep 60\n",
            ),
            ("f.txt", "kept\n"),
        ],
    );
    let body = tar_of(&dir);
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /build?t=bj-shutdown HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let reader = std::thread::spawn(move || common::read_all(&mut s));
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let ps = d.request("GET", "/containers/json", None).json();
        if ps.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        assert!(Instant::now() < until, "the RUN container never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    let status = d.terminate();
    let took = t0.elapsed();
    assert!(status.success(), "daemon exit: {status}");
    assert!(
        took < Duration::from_secs(5),
        "shutdown took {took:?} (the RUN container waited for its stop timeout?)"
    );
    let stream = reader.join().unwrap();
    assert!(
        stream.contains(r#""errorDetail":{"message":"Build cancelled"}"#),
        "{stream}"
    );
    let tmp = temp_dirs(&d.data_root);
    assert!(tmp.is_empty(), "temp dirs left: {tmp:?}");
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "container dirs left: {left:?}");

    d.restart();
    d.wait_serving();
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(String::from_utf8_lossy(&ps.stdout), "", "{}", text(&ps));
    let o = d.docker(&["image", "inspect", "bj-shutdown"]);
    assert!(!o.status.success(), "a cancelled build tagged its image");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nCOPY f.txt /f.txt\nRUN true\n",
    )
    .unwrap();
    let o = docker_build(&d, &["-t", "bj-shutdown", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(text(&o).matches("Using cache").count(), 1, "{}", text(&o));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The issue's figure, with CORACLE_SLOW_TESTS=1: a 200 MiB context keeps
/// the daemon under 10 MiB of RSS (the release binary, CORACLE_BIN; a debug
/// one idles near that by itself, so there the growth is bounded) and
/// `/_ping` under 50 ms over the idle floor, sampled through the upload
/// and the build.
#[test]
fn a_200_mib_context_keeps_the_daemon_small() {
    if std::env::var("CORACLE_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set CORACLE_SLOW_TESTS=1 (a 200 MiB build)");
        return;
    }
    let _serial = serial();
    let d = Daemon::with_busybox();
    let dir = context(
        "bj-200",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY big /big\nRUN wc -c /big\n",
        )],
    );
    let o = Command::new("head")
        .args(["-c", &(200u64 << 20).to_string(), "/dev/urandom"])
        .stdout(std::fs::File::create(dir.join("big")).unwrap())
        .status()
        .unwrap();
    assert!(o.success());
    let pid = d.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let pings = pinger(&d, stop.clone());
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    let floor = percentile(&pings.join().unwrap(), 90);

    let base = common::vm_rss_kib(pid).expect("VmRSS");
    let max = Arc::new(Mutex::new(base));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, max) = (stop.clone(), max.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(r) = common::vm_rss_kib(pid) {
                    let mut m = max.lock().unwrap();
                    *m = (*m).max(r);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let pings = pinger(&d, stop.clone());
    let t0 = Instant::now();
    let child = Command::new("docker")
        .args(["build", "-t", "bj-200"])
        .arg(&dir)
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let took = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let pings = pings.join().unwrap();
    sampler.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(child.status.success(), "{}", text(&child));
    assert!(
        String::from_utf8_lossy(&child.stdout).contains(&(200u64 << 20).to_string()),
        "{}",
        text(&child)
    );
    let max = *max.lock().unwrap();
    let p90 = percentile(&pings, 90);
    eprintln!(
        "200 MiB context built in {took:?}: VmRSS {base} -> max {max} KiB; /_ping p90 {p90:?} \
         (idle {floor:?}), max {:?}, {} pings",
        percentile(&pings, 100),
        pings.len()
    );
    if std::env::var_os("CORACLE_BIN").is_some() {
        assert!(max < 10 * 1024, "daemon VmRSS reached {max} KiB");
    }
    assert!(
        max < base + 2 * 1024,
        "daemon VmRSS grew {base} -> {max} KiB"
    );
    assert!(
        p90 < floor + Duration::from_millis(50),
        "/_ping p90 {p90:?} during the build, {floor:?} idle"
    );
}
