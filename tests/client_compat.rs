//! Issue 14's client-visible differences from dockerd, each driven the way
//! the client that met it drives the daemon: docker-py 7 (Python's buffered
//! `http.client`), raw HTTP, and the docker CLI.
//!
//! docker-py comes from `common::docker_py()` (a venv built on first use, or
//! `CORACLE_DOCKER_PY`).

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cli::{dk, dk_t, inspect, ok, show, state, wait_for};
use common::{docker_py, Daemon};
use serde_json::Value;

/// Run a docker-py script against `d` (`c` is a DockerClient, `api` its
/// APIClient); returns its stdout, failing the test on a non-zero exit.
fn py(d: &Daemon, script: &str) -> String {
    let prelude = format!(
        "import docker, json, sys, time\nc = docker.DockerClient(base_url='unix://{}', version='1.45', timeout=30)\napi = c.api\n",
        d.sock.display()
    );
    let o = Command::new(docker_py())
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .output()
        .expect("run python");
    assert!(o.status.success(), "docker-py script failed: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn started(d: &Daemon, name: &str, cmd: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(cmd);
    ok(d, &args);
}

/// `exec_run` in every tty/stream/demux combination: the output is all
/// there (the head no longer shares a read with the stream), with the pty's
/// `\r\n`, framed as dockerd frames it.
#[test]
fn exec_run_outputs_as_dockerd() {
    let d = Daemon::with_busybox();
    started(&d, "ex", &["busybox", "sleep", "300"]);
    let out = py(
        &d,
        r#"
ct = c.containers.get('ex')
res = {}
for i in range(5):
    for tty in (False, True):
        for stream in (False, True):
            for demux in (False, True):
                r = ct.exec_run(['sh', '-c', 'echo out; echo err >&2'], tty=tty, stream=stream, demux=demux)
                o = list(r.output) if stream else r.output
                if demux:
                    if stream:
                        o = (b''.join(x[0] or b'' for x in o), b''.join(x[1] or b'' for x in o))
                    o = [None if x is None else x.decode() for x in o]
                else:
                    o = (b''.join(o) if stream else o).decode()
                res.setdefault(f'{tty}-{stream}-{demux}', set()).add(json.dumps(o))
print(json.dumps({k: sorted(v) for k, v in res.items()}))
"#,
    );
    let v: Value = serde_json::from_str(out.trim()).expect("script output");
    let one = |k: &str| -> Value {
        let all = v[k]
            .as_array()
            .unwrap_or_else(|| panic!("{k} missing: {v}"));
        assert_eq!(all.len(), 1, "{k}: differs between runs: {all:?}");
        serde_json::from_str(all[0].as_str().unwrap()).unwrap()
    };
    for stream in ["False", "True"] {
        // No TTY: stdout and stderr apart (multiplexed), nothing lost.
        let plain = one(&format!("False-{stream}-False"));
        let plain = plain.as_str().unwrap();
        assert!(
            plain.contains("out\n") && plain.contains("err\n"),
            "{plain:?}"
        );
        assert_eq!(
            one(&format!("False-{stream}-True")),
            serde_json::json!(["out\n", "err\n"]),
            "stream={stream} demux"
        );
        // TTY: the pty's output processing gives \r\n; one raw stream.
        assert_eq!(
            one(&format!("True-{stream}-False")),
            Value::from("out\r\nerr\r\n"),
            "stream={stream} tty"
        );
        let tty_demux = one(&format!("True-{stream}-True"));
        assert_eq!(tty_demux[0], "out\r\nerr\r\n", "tty demux: {tty_demux}");
        // Nothing on stderr (None, or nothing joined from the stream).
        assert!(
            tty_demux[1].is_null() || tty_demux[1] == "",
            "tty demux: {tty_demux}"
        );
    }
}

/// Send a request on a fresh connection and read the response head byte by
/// byte (nothing of what follows it).
fn head_of(s: &mut std::os::unix::net::UnixStream, req: &str) -> String {
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "EOF in head: {head:?}");
        head.push(b[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn exec_create(d: &Daemon, ct: &str, body: &str) -> String {
    let r = d.request("POST", &format!("/containers/{ct}/exec"), Some(body));
    assert_eq!(r.status, 201, "{r:?}");
    r.json()["Id"].as_str().unwrap().to_string()
}

/// dockerd's rule: the process gets the TTY its create asked for; the
/// start's `Tty` (default false) decides the framing and content type.
#[test]
fn exec_start_framing_follows_the_start_tty() {
    let d = Daemon::with_busybox();
    started(&d, "fr", &["busybox", "sleep", "300"]);
    let create = r#"{"Cmd":["echo","hi"],"Tty":true,"AttachStdout":true,"AttachStderr":true}"#;
    let cases = [
        // (start body, upgrade, content type, framed)
        (
            "{}",
            true,
            "application/vnd.docker.multiplexed-stream",
            true,
        ),
        (
            r#"{"Tty":true}"#,
            true,
            "application/vnd.docker.raw-stream",
            false,
        ),
        ("{}", false, "application/vnd.docker.raw-stream", true),
    ];
    for (body, upgrade, ctype, framed) in cases {
        let id = exec_create(&d, "fr", create);
        let up = if upgrade {
            "Connection: Upgrade\r\nUpgrade: tcp\r\n"
        } else {
            ""
        };
        let req = format!(
            "POST /v1.45/exec/{id}/start HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n{up}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut s = d.connect();
        let head = head_of(&mut s, &req);
        assert!(
            head.contains(&format!("Content-Type: {ctype}")),
            "{body} upgrade={upgrade}: {head}"
        );
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        // The pty's "hi\r\n", in one stdout frame or raw.
        if framed {
            assert_eq!(rest.first(), Some(&1), "{body}: {rest:?}");
            assert_eq!(&rest[8..], b"hi\r\n", "{body}: {rest:?}");
        } else {
            assert_eq!(rest, b"hi\r\n", "{body}: {rest:?}");
        }
        let j = d.request("GET", &format!("/exec/{id}/json"), None).json();
        assert_eq!(j["ProcessConfig"]["tty"], true, "{j}");
    }
}

/// The head of an exec start goes out before the process runs: a client
/// that reads only the head sees it alone, then the output (as a buffered
/// client needs), and an exec that cannot start reports inside the stream.
#[test]
fn exec_head_before_the_process() {
    let d = Daemon::with_busybox();
    started(&d, "hd", &["busybox", "sleep", "300"]);
    let id = exec_create(&d, "hd", r#"{"Cmd":["echo","first"],"AttachStdout":true}"#);
    let body = r#"{"Detach":false,"Tty":false}"#;
    let req = format!(
        "POST /exec/{id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = d.connect();
    let head = head_of(&mut s, &req);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert_eq!(&rest[8..], b"first\n", "{rest:?}");

    let id = exec_create(&d, "hd", r#"{"Cmd":["/no/such"],"AttachStdout":true}"#);
    let req = format!(
        "POST /exec/{id}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut s = d.connect();
    let head = head_of(&mut s, &req);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("OCI runtime exec failed"), "{text:?}");
    let j = d.request("GET", &format!("/exec/{id}/json"), None).json();
    assert_eq!(j["ExitCode"], 127, "{j}");
}

/// `kill` answers once the container has exited: the inspect right after
/// it shows the exit (dockerd waits for it).
#[test]
fn kill_waits_for_the_exit() {
    let d = Daemon::with_busybox();
    for i in 0..3 {
        let name = format!("k{i}");
        started(&d, &name, &["busybox", "sleep", "300"]);
        let r = d.request("POST", &format!("/containers/{name}/kill"), None);
        assert_eq!(r.status, 204, "{r:?}");
        let s = state(&d, &name);
        assert_eq!(s["Running"], false, "{s}");
        assert_eq!(s["ExitCode"], 137, "{s}");
        assert_eq!(s["Status"], "exited", "{s}");
    }
    // Another signal is delivered and answered at once (it may not end it).
    started(
        &d,
        "hup",
        &["busybox", "sh", "-c", "trap '' HUP; sleep 300"],
    );
    let t = Instant::now();
    let r = d.request("POST", "/containers/hup/kill?signal=HUP", None);
    assert_eq!(r.status, 204, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(state(&d, "hup")["Running"], true);
}

/// `restart` of a stopped container starts it and answers at once.
#[test]
fn restart_of_a_stopped_container_answers_at_once() {
    let d = Daemon::with_busybox();
    ok(&d, &["create", "--name", "rs", "busybox", "sleep", "30"]);
    let t = Instant::now();
    let o = dk_t(&d, &["restart", "rs"], 20);
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(state(&d, "rs")["Running"], true);
    ok(&d, &["kill", "rs"]);
    let t = Instant::now();
    let r = d.request("POST", "/containers/rs/restart", None);
    assert_eq!(r.status, 204, "{r:?}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(state(&d, "rs")["Running"], true);
}

/// `wait` (not-running) returns at the first exit of a `--restart always`
/// container; removing it without force then fails with dockerd's text.
#[test]
fn wait_returns_at_the_first_exit_under_restart_always() {
    let d = Daemon::with_busybox();
    let out = py(
        &d,
        r#"
ct = c.containers.run('busybox', ['sh', '-c', 'sleep 1; exit 3'], detach=True, name='ra',
                      restart_policy={'Name': 'always'})
t = time.time()
r = api.wait(ct.id, timeout=20, condition='not-running')
took = time.time() - t
try:
    ct.remove()
    err = None
except docker.errors.APIError as e:
    err = [e.status_code, e.explanation]
print(json.dumps({'wait': r, 'took': took, 'rm': err}))
"#,
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["wait"]["StatusCode"], 3, "{v}");
    assert!(v["took"].as_f64().unwrap() < 10.0, "{v}");
    assert_eq!(v["rm"][0], 409, "{v}");
    let msg = v["rm"][1].as_str().unwrap();
    assert!(
        msg.starts_with("cannot remove container \"/ra\": container is")
            && msg.ends_with("stop the container before removing or force remove"),
        "{msg}"
    );
    ok(&d, &["rm", "-f", "ra"]);
}

/// `max-file` above 99 is accepted (docker-py's tests use 100), and the
/// number of files stays bounded; an unknown driver gets dockerd's text.
#[test]
fn log_config_as_dockerd() {
    let d = Daemon::with_busybox();
    let out = py(
        &d,
        r#"
ct = c.containers.run('busybox', ['sh', '-c', 'i=0; while [ $i -lt 4000 ]; do echo line-$i; i=$((i+1)); done'],
                      detach=True, name='lf',
                      log_config={'type': 'json-file', 'config': {'max-file': '100', 'max-size': '1k'}})
print(ct.wait(timeout=30)['StatusCode'])
try:
    c.containers.create('busybox', 'true', log_config={'type': 'nosuchdriver', 'config': {}})
    print('created')
except docker.errors.APIError as e:
    print(e.status_code, e.explanation)
"#,
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    assert_eq!(
        lines.next(),
        Some("400 logger: no log driver named 'nosuchdriver' is registered"),
        "{out}"
    );
    let id = inspect(&d, "lf")["Id"].as_str().unwrap().to_string();
    let dir = d.data_root.join("containers").join(&id);
    let logs = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .count();
    assert!(
        (2..=99).contains(&logs),
        "{logs} log files in {}",
        dir.display()
    );
    let o = dk(&d, &["logs", "lf"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.ends_with("line-3999\n"), "{}", show(&o));
    // Retention as asked: 100 x 1k of log lines (each ~60 bytes on disk).
    assert!(
        text.lines().count() > 1000,
        "{} lines kept",
        text.lines().count()
    );
}

/// `/images/load`: a stream docker-py can split, and a bad archive as a 200
/// whose `errorDetail` docker-py turns into `ImageLoadError`.
#[test]
fn image_load_stream_as_dockerd() {
    let d = Daemon::with_busybox();
    ok(&d, &["tag", "busybox:latest", "second:tag"]);
    let tar = d.dir.join("two.tar");
    ok(
        &d,
        &[
            "save",
            "-o",
            tar.to_str().unwrap(),
            "busybox:latest",
            "second:tag",
        ],
    );
    let out = py(
        &d,
        &format!(
            r#"
data = open('{}', 'rb').read()
print(json.dumps(list(api.load_image(data))))
imgs = c.images.load(data)
print(sorted(set(t for i in imgs for t in i.tags)))
try:
    c.images.load(b'this is not a tar archive' * 100)
    print('loaded')
except docker.errors.ImageLoadError as e:
    print('ImageLoadError', e)
"#,
            tar.display()
        ),
    );
    let mut lines = out.lines();
    let msgs: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(msgs.as_array().map(Vec::len), Some(2), "{msgs}");
    assert_eq!(
        lines.next(),
        Some("['busybox:latest', 'second:tag']"),
        "{out}"
    );
    let err = lines.next().unwrap_or_default();
    assert!(err.starts_with("ImageLoadError "), "{out}");
    // The CLI reports the same failure and exits non-zero.
    let bad = d.dir.join("bad.tar");
    std::fs::write(&bad, b"garbage".repeat(200)).unwrap();
    let o = dk(&d, &["load", "-i", bad.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", show(&o));
}

/// Inspect: `HostConfig.Runtime` is runc; with `--network none`, published
/// and exposed ports are not listed in `NetworkSettings.Ports` (dockerd's
/// null driver reports none).
#[test]
fn inspect_runtime_and_ports_with_network_none() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "pn",
            "--network",
            "none",
            "-p",
            "8080:80",
            "--expose",
            "90",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let j = inspect(&d, "pn");
    assert_eq!(j["HostConfig"]["Runtime"], "runc", "{}", j["HostConfig"]);
    assert_eq!(j["NetworkSettings"]["Ports"], serde_json::json!({}), "{j}");
    assert_eq!(
        j["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
        "8080"
    );
    assert_eq!(ok(&d, &["port", "pn"]).trim(), "");
    let out = py(
        &d,
        "print(c.containers.get('pn').attrs['HostConfig']['Runtime'])",
    );
    assert_eq!(out.trim(), "runc");
}

/// `docker top` with `ps_args`: the same table the host's `ps` prints for
/// the container's processes (`-o` columns, `aux`, `-ef`).
#[test]
fn top_with_ps_args() {
    let d = Daemon::with_busybox();
    started(
        &d,
        "tp",
        &["busybox", "sh", "-c", "sleep 301 & sleep 302 & wait"],
    );
    let top = |args: &str| -> Value {
        let r = d.request(
            "GET",
            &format!("/containers/tp/top?ps_args={}", common::url_encode(args)),
            None,
        );
        assert_eq!(r.status, 200, "{args}: {r:?}");
        r.json()
    };
    wait_for("sh and two sleeps", 10, || {
        let p = top("-o pid,args")["Processes"].clone();
        p.as_array().map(Vec::len) == Some(3) && p.to_string().contains("sleep 302")
    });
    let pids: Vec<String> = top("-o pid")["Processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    // Compare with procps' ps on the host, column by column.
    let ps = |fmt: &str| -> (Vec<String>, Vec<Vec<String>>) {
        let o = Command::new("ps")
            .args(["-o", fmt, "-p", &pids.join(",")])
            .output()
            .expect("run ps");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        let mut lines = text.lines();
        let titles = lines
            .next()
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let rows = lines
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect();
        (titles, rows)
    };
    // Both read /proc at their own moment: compare until they agree (a
    // process may still be between fork and exec at first).
    let fmt = "pid,ppid,pgid,stat,comm,nlwp,ni";
    let mut last = (Value::Null, Value::Null);
    wait_for("docker top -o to match ps -o", 10, || {
        let ours = top(&format!("-o {fmt}"));
        let (titles, rows) = ps(fmt);
        last = (ours.clone(), serde_json::json!(rows));
        ours["Titles"] == serde_json::json!(titles) && ours["Processes"] == last.1
    });
    eprintln!("top -o {fmt}: {:?}", last.0);

    let aux = top("aux");
    assert_eq!(
        aux["Titles"],
        serde_json::json!([
            "USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"
        ])
    );
    let (_, vsz) = ps("pid,vsz,user");
    for row in aux["Processes"].as_array().unwrap() {
        let want = vsz
            .iter()
            .find(|r| r[0] == row[1].as_str().unwrap())
            .unwrap();
        assert_eq!(row[4], want[1].as_str(), "VSZ of {row}");
        assert_eq!(row[0], want[2].as_str(), "USER of {row}");
    }
    let ef = top("-ef");
    assert_eq!(
        ef["Titles"],
        serde_json::json!(["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"])
    );
    assert!(ef["Processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r[7] == "sleep 301"));
    // The CLI passes its extra arguments as ps_args.
    let o = ok(&d, &["top", "tp", "-o", "pid,args"]);
    assert!(o.starts_with("PID") && o.contains("sleep 302"), "{o}");
    // dockerd's refusals.
    let r = d.request("GET", "/containers/tp/top?ps_args=-o%20comm", None);
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(r.json()["message"], "Couldn't find PID field in ps output");
    let r = d.request("GET", "/containers/tp/top?ps_args=-o%20user%3DPID", None);
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(
        r.json()["message"],
        "specifying \"user=PID\" is not allowed"
    );
}

/// docker-py's `attach(logs=True)`: the log backlog follows the head, and
/// none of it is lost to the buffer the head was read through.
#[test]
fn attach_logs_through_docker_py() {
    let d = Daemon::with_busybox();
    let out = py(
        &d,
        r#"
ct = c.containers.run('busybox', ['sh', '-c', 'echo hello; echo err >&2'], detach=True, name='at')
ct.wait(timeout=20)
for i in range(5):
    print(repr(ct.attach(stdout=True, stderr=True, logs=True, stream=False, demux=True)))
"#,
    );
    for line in out.lines() {
        assert_eq!(line, "(b'hello\\n', b'err\\n')", "{out}");
    }
    assert_eq!(out.lines().count(), 5, "{out}");
}
