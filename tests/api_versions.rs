//! Issue 18: the old API versions. The example requests of the v1.3, v1.11
//! and v1.24 docs (`shared/api-spec/`) by raw HTTP, with their documented
//! status and response keys; docker-py pinned to 1.24 and the CLI with
//! `DOCKER_API_VERSION=1.24` through the lifecycle, logs and exec; a
//! browser-style websocket client (Python's stdlib socket, hand-framed)
//! attached to `sh`; CORS preflights answered only when enabled.
//!
//! One daemon (started with `--api-enable-cors`) serves every check of the
//! first test; the second starts a plain daemon for what must be refused.

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use common::cli::{show, wait_for};
use common::{docker_py, Daemon};
use serde_json::Value;

/// `v` has every dotted key path in `keys`; an array is checked on its
/// first element.
fn has_keys(what: &str, v: &Value, keys: &[&str]) {
    let v = match v {
        Value::Array(a) => a
            .first()
            .unwrap_or_else(|| panic!("{what}: empty array, expected rows")),
        other => other,
    };
    for k in keys {
        let mut cur = v;
        for part in k.split('.') {
            cur = cur
                .get(part)
                .unwrap_or_else(|| panic!("{what}: no key {k:?} in {v}"));
        }
    }
}

/// One documented exchange: request, expected status; the JSON body when
/// there is one.
fn call(d: &Daemon, method: &str, path: &str, body: Option<&str>, status: u16) -> Value {
    let r = d.request(method, path, body);
    assert_eq!(r.status, status, "{method} {path}: {r:?}");
    if r.body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&r.body).unwrap_or(Value::String(r.body.clone()))
    }
}

/// A container from the docs' create body (v1.3's fields, `Image` ours).
fn create(d: &Daemon, v: &str, cmd: &str, open_stdin: bool) -> String {
    let body = format!(
        r#"{{"Hostname":"","User":"","Memory":0,"MemorySwap":0,"AttachStdin":false,
        "AttachStdout":true,"AttachStderr":true,"PortSpecs":null,"Tty":false,
        "OpenStdin":{open_stdin},"StdinOnce":false,"Env":null,"Cmd":{cmd},"Dns":null,
        "Image":"busybox","Volumes":{{}},"VolumesFrom":""}}"#
    );
    let v = call(
        d,
        "POST",
        &format!("/{v}/containers/create"),
        Some(&body),
        201,
    );
    has_keys("create", &v, &["Id", "Warnings"]);
    v["Id"].as_str().expect("Id").to_string()
}

fn running(d: &Daemon, id: &str) -> bool {
    d.request("GET", &format!("/containers/{id}/json"), None)
        .json()["State"]["Running"]
        == true
}

/// GET /events?since=T (the docs' polling form): the history comes first,
/// then the stream stays open; read until `until` appears in it.
fn events_since(d: &Daemon, v: &str, since: u64, until: &str) -> String {
    let mut s = d.connect();
    let req = format!("GET /{v}/events?since={since} HTTP/1.1\r\nHost: docker\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let text = dechunk(&got);
        if text.contains(until) {
            return text;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    panic!(
        "events since {since}: {until:?} not seen in {:?}",
        String::from_utf8_lossy(&got)
    );
}

/// The complete chunks of a chunked response read so far.
fn dechunk(raw: &[u8]) -> String {
    let raw = String::from_utf8_lossy(raw);
    let Some((_, mut rest)) = raw.split_once("\r\n\r\n") else {
        return String::new();
    };
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n + 2 {
            break;
        }
        body.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    body
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The v1.3 doc's examples, in its order.
fn walk_v1_3(d: &Daemon) {
    let v = "v1.3";
    let t0 = now_secs() - 1;
    let id = create(
        d,
        v,
        r#"["sh","-c","echo out; echo err >&2; cat /tmp/marker"]"#,
        false,
    );
    // The doc's start carries a HostConfig (`Binds`): applied before v1.24.
    let host = d.dir.join("bind");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("marker"), "from-host\n").unwrap();
    let start = format!(r#"{{"Binds":["{}:/tmp"]}}"#, host.display());
    call(
        d,
        "POST",
        &format!("/{v}/containers/{id}/start"),
        Some(&start),
        204,
    );
    wait_for("the echo container to exit", 10, || !running(d, &id));
    // The doc's request names a container in `before`: one created later.
    let later = create(d, v, r#"["true"]"#, false);
    let rows = call(
        d,
        "GET",
        &format!("/{v}/containers/json?all=1&before={later}&size=1"),
        None,
        200,
    );
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    assert_eq!(rows[0]["Id"], id.as_str());
    assert_eq!(rows[0]["Status"], "Exit 0", "the docs' status text");
    assert_eq!(rows[0]["Ports"], "", "no published port");
    // A bad start HostConfig is refused and changes nothing.
    let r = d.request(
        "POST",
        &format!("/{v}/containers/{later}/start"),
        Some(r#"{"RestartPolicy":{"Name":"bogus"}}"#),
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = d.request(
        "POST",
        &format!("/{v}/containers/{later}/start"),
        Some("[1]"),
    );
    assert_eq!(r.status, 400, "{r:?}");
    let c = call(
        d,
        "GET",
        &format!("/{v}/containers/{later}/json"),
        None,
        200,
    );
    assert_eq!(c["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(c["State"]["StartedAt"], "0001-01-01T00:00:00Z");
    call(d, "DELETE", &format!("/{v}/containers/{later}"), None, 204);
    has_keys(
        "v1.3 ps",
        &rows,
        &[
            "Id",
            "Image",
            "Command",
            "Created",
            "Status",
            "Ports",
            "SizeRw",
            "SizeRootFs",
        ],
    );
    assert!(
        rows[0]["Ports"].is_string(),
        "v1.3 Ports is a string: {rows}"
    );
    let c = call(d, "GET", &format!("/{v}/containers/{id}/json"), None, 200);
    has_keys(
        "v1.3 inspect",
        &c,
        &[
            "Id",
            "Created",
            "Path",
            "Args",
            "Config.Hostname",
            "Config.Cmd",
            "State.Running",
            "State.Pid",
            "State.ExitCode",
            "State.StartedAt",
            "State.Ghost",
            "Image",
            "NetworkSettings.IpAddress",
            "NetworkSettings.IpPrefixLen",
            "NetworkSettings.Gateway",
            "NetworkSettings.Bridge",
            "NetworkSettings.PortMapping",
            "SysInitPath",
            "ResolvConfPath",
            "Volumes",
        ],
    );
    assert_eq!(c["State"]["Ghost"], false);
    assert_eq!(
        c["HostConfig"]["Binds"][0],
        format!("{}:/tmp", host.display())
    );
    // Attach without Upgrade: the stream follows on the same connection;
    // before v1.6 stdout and stderr are merged, without stdcopy's framing.
    let r = d.request_bytes(
        "POST",
        &format!("/{v}/containers/{id}/attach?logs=1&stream=0&stdout=1&stderr=1"),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "v1.3 attach: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.docker.raw-stream")
    );
    let text = r.text();
    assert!(
        text.contains("out\n")
            && text.contains("err\n")
            && text.contains("from-host\n")
            && !r.body.contains(&1u8),
        "v1.3 attach is unframed: {:?}",
        r.body
    );
    call(
        d,
        "GET",
        &format!("/{v}/containers/{id}/changes"),
        None,
        200,
    );
    let r = d.request_bytes("GET", &format!("/{v}/containers/{id}/export"), &[], None);
    assert_eq!(r.status, 200);
    assert!(r.body.len() > 1024, "export is a tar stream");
    let w = call(d, "POST", &format!("/{v}/containers/{id}/wait"), None, 200);
    has_keys("wait", &w, &["StatusCode"]);

    // A running one for top, stop, restart, kill.
    let sl = create(d, v, r#"["sleep","60"]"#, false);
    call(d, "POST", &format!("/{v}/containers/{sl}/start"), None, 204);
    let top = call(d, "GET", &format!("/{v}/containers/{sl}/top"), None, 200);
    has_keys("v1.3 top", &top, &["PID", "Tty", "Time", "Cmd"]);
    assert!(top[0]["Cmd"].as_str().unwrap().contains("sleep"), "{top}");
    call(
        d,
        "POST",
        &format!("/{v}/containers/{sl}/stop?t=5"),
        None,
        204,
    );
    call(
        d,
        "POST",
        &format!("/{v}/containers/{sl}/restart?t=5"),
        None,
        204,
    );
    call(d, "POST", &format!("/{v}/containers/{sl}/kill"), None, 204);
    call(d, "DELETE", &format!("/{v}/containers/{sl}?v=1"), None, 204);

    // Images.
    let imgs = call(d, "GET", &format!("/{v}/images/json?all=0"), None, 200);
    has_keys(
        "v1.3 images",
        &imgs,
        &["Repository", "Tag", "Id", "Created", "Size", "VirtualSize"],
    );
    assert!(
        imgs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["Repository"] == "busybox" && r["Tag"] == "latest"),
        "{imgs}"
    );
    let r = d.request("GET", &format!("/{v}/images/viz"), None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(
        r.body.starts_with("digraph docker {")
            && r.body.contains("\\nbusybox\"")
            && r.body.trim_end().ends_with('}'),
        "{}",
        r.body
    );
    // Gone since v1.7: the path is then only `DELETE /images/{name}`'s.
    call(d, "GET", "/v1.7/images/viz", None, 405);
    let i = call(d, "GET", &format!("/{v}/images/busybox/json"), None, 200);
    has_keys(
        "v1.3 image inspect",
        &i,
        &[
            "id",
            "parent",
            "created",
            "container",
            "container_config",
            "Size",
        ],
    );
    let h = call(d, "GET", &format!("/{v}/images/busybox/history"), None, 200);
    has_keys("history", &h, &["Id", "Created", "CreatedBy"]);
    call(
        d,
        "POST",
        &format!("/{v}/images/busybox/tag?repo=myrepo&force=0&tag=v42"),
        None,
        201,
    );
    let del = call(d, "DELETE", &format!("/{v}/images/myrepo:v42"), None, 200);
    assert_eq!(del[0]["Untagged"], "myrepo:v42", "{del}");
    insert_v1_3(d);
    // Registry-backed: the registry client answers them. Pointed at a closed
    // loopback port (a test never reaches an outside address): a clear JSON
    // error that names the registry.
    for (method, path, body) in [
        (
            "GET",
            format!("/{v}/images/search?term=127.0.0.1:1/sshd"),
            None,
        ),
        (
            "POST",
            format!("/{v}/auth"),
            Some(
                r#"{"username":"hannibal","password":"xxxx","email":"hannibal@a-team.com","serveraddress":"127.0.0.1:1"}"#,
            ),
        ),
    ] {
        let r = d.request(method, &path, body);
        assert!(r.status == 500 || r.status == 501, "{path}: {r:?}");
        let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains("127.0.0.1:1"), "{path}: {r:?}");
    }

    // Misc.
    let info = call(d, "GET", &format!("/{v}/info"), None, 200);
    has_keys(
        "v1.3 info",
        &info,
        &[
            "Containers",
            "Images",
            "Debug",
            "NFd",
            "NGoroutines",
            "MemoryLimit",
            "SwapLimit",
            "EventsListeners",
            "LXCVersion",
            "KernelVersion",
        ],
    );
    let ver = call(d, "GET", &format!("/{v}/version"), None, 200);
    has_keys("version", &ver, &["Version", "GitCommit", "GoVersion"]);
    let ev = events_since(d, v, t0, "\"status\":\"die\"");
    for line in ev.lines().filter(|l| l.starts_with('{')) {
        let e: Value = serde_json::from_str(line).unwrap();
        has_keys("v1.3 event", &e, &["status", "id", "time"]);
    }
    assert!(ev.contains("\"status\":\"create\""), "{ev}");
    call(d, "DELETE", &format!("/{v}/containers/{id}?v=1"), None, 204);
}

/// One HTTP GET answered with `body` on 127.0.0.1 (the URL `insert`
/// fetches); the server thread ends after one request.
fn serve_once(body: &'static [u8]) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = l.accept() {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b).is_ok_and(|n| n == 1) {
                head.push(b[0]);
            }
            let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(resp.as_bytes());
            let _ = s.write_all(body);
        }
    });
    format!("http://127.0.0.1:{port}/file.txt")
}

/// v1.3's `POST /images/{name}/insert`: the URL's file in a new layer; a
/// container of the new image reads it.
fn insert_v1_3(d: &Daemon) {
    let url = serve_once(b"inserted content\n");
    let path = format!(
        "/v1.3/images/busybox/insert?path=/usr/share/ins.txt&url={}",
        common::url_encode(&url)
    );
    let r = d.request("POST", &path, None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let msgs: Vec<Value> = r
        .body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(msgs[0]["status"], "Inserting...", "{msgs:?}");
    let new_id = msgs.last().unwrap()["status"].as_str().unwrap().to_string();
    assert_eq!(new_id.len(), 64, "{msgs:?}");
    let body =
        format!(r#"{{"Image":"{new_id}","Cmd":["cat","/usr/share/ins.txt","/bin/busybox"]}}"#);
    let c = call(d, "POST", "/v1.3/containers/create", Some(&body), 201);
    let cid = c["Id"].as_str().unwrap();
    call(
        d,
        "POST",
        &format!("/v1.3/containers/{cid}/start"),
        None,
        204,
    );
    call(
        d,
        "POST",
        &format!("/v1.3/containers/{cid}/wait"),
        None,
        200,
    );
    let r = d.request_bytes(
        "POST",
        &format!("/v1.3/containers/{cid}/attach?logs=1&stream=0&stdout=1"),
        &[],
        None,
    );
    assert!(
        r.text().starts_with("inserted content\n"),
        "the file, then the base's layers: {:?}",
        &r.text()[..40.min(r.body.len())]
    );
    call(d, "DELETE", &format!("/v1.3/containers/{cid}"), None, 204);
    let hist = call(
        d,
        "GET",
        &format!("/v1.11/images/{new_id}/history"),
        None,
        200,
    );
    assert!(
        hist[0]["CreatedBy"]
            .as_str()
            .unwrap()
            .starts_with("echo insert http://127.0.0.1:"),
        "{hist}"
    );
    call(d, "DELETE", &format!("/v1.3/images/{new_id}"), None, 200);
    // Bad input, answered before anything is fetched.
    let r = d.request(
        "POST",
        "/v1.3/images/busybox/insert?path=/../x&url=http://127.0.0.1:9/f",
        None,
    );
    assert_eq!(r.status, 400, "{r:?}");
    let r = d.request(
        "POST",
        "/v1.3/images/nosuch/insert?path=/x&url=http://127.0.0.1:9/f",
        None,
    );
    assert_eq!(r.status, 404, "{r:?}");
    // Gone in v1.12.
    let r = d.request(
        "POST",
        "/v1.12/images/busybox/insert?path=/x&url=http://127.0.0.1:9/f",
        None,
    );
    assert_eq!(r.status, 405, "{r:?}");
}

/// The v1.11 doc's examples that differ from v1.3's, and its additions.
fn walk_v1_11(d: &Daemon) {
    let v = "v1.11";
    let id = create(
        d,
        v,
        r#"["sh","-c","echo data > /test.txt; ln -s /../../../../etc/hostname /esc; echo out; sleep 60"]"#,
        false,
    );
    call(
        d,
        "POST",
        &format!("/{v}/containers/{id}/start"),
        Some("{}"),
        204,
    );
    let rows = call(
        d,
        "GET",
        &format!("/{v}/containers/json?all=1&size=1"),
        None,
        200,
    );
    has_keys(
        "v1.11 ps",
        &rows,
        &[
            "Id",
            "Image",
            "Command",
            "Created",
            "Status",
            "Ports",
            "SizeRw",
            "SizeRootFs",
        ],
    );
    assert!(rows[0]["Ports"].is_array(), "v1.11 Ports is a list: {rows}");
    let c = call(d, "GET", &format!("/{v}/containers/{id}/json"), None, 200);
    has_keys(
        "v1.11 inspect",
        &c,
        &[
            "Id",
            "Config.WorkingDir",
            "State.Ghost",
            "NetworkSettings.IpAddress",
            "Volumes",
            "HostConfig.Binds",
            "HostConfig.Privileged",
            "HostConfig.PortBindings",
        ],
    );
    let top = call(d, "GET", &format!("/{v}/containers/{id}/top"), None, 200);
    has_keys("v1.11 top", &top, &["Titles", "Processes"]);
    wait_for("the log line", 10, || {
        let r = d.request_bytes(
            "GET",
            &format!("/{v}/containers/{id}/logs?stderr=1&stdout=1&timestamps=1&follow=0&tail=10"),
            &[],
            None,
        );
        r.status == 200 && r.text().contains("out")
    });
    // Framed since v1.6: stdout's 8-byte header, then the line.
    let r = d.request_bytes(
        "POST",
        &format!("/{v}/containers/{id}/attach?logs=1&stream=0&stdout=1"),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        &r.body[..8],
        &[1, 0, 0, 0, 0, 0, 0, 4],
        "v1.11 attach is multiplexed: {:?}",
        r.body
    );
    copy_v1_11(d, &id);
    let imgs = call(d, "GET", &format!("/{v}/images/json?all=0"), None, 200);
    has_keys(
        "v1.11 images",
        &imgs,
        &["RepoTags", "Id", "Created", "Size", "VirtualSize"],
    );
    let i = call(d, "GET", &format!("/{v}/images/busybox/json"), None, 200);
    has_keys(
        "v1.11 image inspect",
        &i,
        &[
            "id",
            "parent",
            "created",
            "container",
            "container_config",
            "Size",
        ],
    );
    call(d, "GET", &format!("/{v}/images/viz"), None, 405);
    let r = d.request("GET", &format!("/{v}/_ping"), None);
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    let info = call(d, "GET", &format!("/{v}/info"), None, 200);
    has_keys(
        "v1.11 info",
        &info,
        &[
            "Containers",
            "Images",
            "Driver",
            "ExecutionDriver",
            "KernelVersion",
            "Debug",
            "NFd",
            "NGoroutines",
            "NEventsListener",
            "InitPath",
            "IndexServerAddress",
            "MemoryLimit",
            "SwapLimit",
        ],
    );
    let ev = events_since(d, v, now_secs() - 30, "\"status\":\"start\"");
    let line = ev
        .lines()
        .find(|l| l.contains("\"status\":\"start\""))
        .unwrap();
    let e: Value = serde_json::from_str(line).unwrap();
    has_keys("v1.11 event", &e, &["status", "id", "from", "time"]);
    // The image tarball by its v1.11 names, and back.
    let r = d.request_bytes("GET", &format!("/{v}/images/busybox/get"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    let tar = r.body;
    let r = d.request_bytes(
        "POST",
        &format!("/{v}/images/load"),
        &[("Content-Type", "application/x-tar")],
        Some(&tar),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    call(
        d,
        "DELETE",
        &format!("/{v}/containers/{id}?force=1"),
        None,
        204,
    );
}

/// v1.11's `POST /containers/{id}/copy`: a file, a directory, a symlink
/// that points out of the container (resolved inside it), a missing path.
fn copy_v1_11(d: &Daemon, id: &str) {
    let copy = |resource: &str| {
        let body = format!(r#"{{"Resource":"{resource}"}}"#);
        d.request_bytes(
            "POST",
            &format!("/v1.11/containers/{id}/copy"),
            &[("Content-Type", "application/json")],
            Some(body.as_bytes()),
        )
    };
    let entries = |r: &common::RawResponse| -> Vec<(String, String)> {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("application/x-tar"));
        let mut a = tar::Archive::new(r.body.as_slice());
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().display().to_string();
                let mut text = String::new();
                let _ = e.read_to_string(&mut text);
                (name, text)
            })
            .collect()
    };
    wait_for("the files the container writes", 10, || {
        copy("esc").status == 200
    });
    let r = copy("test.txt");
    assert_eq!(
        entries(&r),
        vec![("test.txt".to_string(), "data\n".to_string())]
    );
    let r = copy("/etc");
    let names: Vec<String> = entries(&r).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"etc/".to_string()) && names.contains(&"etc/passwd".to_string()),
        "{names:?}"
    );
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let r = copy("esc");
    let got = entries(&r);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "hostname");
    assert_ne!(got[0].1, host, "a symlink is resolved inside the container");
    let inside = entries(&copy("/etc/hostname"));
    assert_eq!(got[0].1, inside[0].1, "the container's own /etc/hostname");
    let r = copy("nope");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.message(),
        format!("Could not find the file nope in container {id}")
    );
    let r = copy("");
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "Path cannot be empty");
    let r = copy(&"a/..".repeat(2000));
    assert_eq!(r.status, 400, "{}", r.text());
    // Gone in v1.24.
    let r = d.request(
        "POST",
        &format!("/v1.24/containers/{id}/copy"),
        Some(r#"{"Resource":"test.txt"}"#),
    );
    assert_eq!(r.status, 404, "{r:?}");
}

/// The v1.24 doc's examples for the endpoints served here.
fn walk_v1_24(d: &Daemon) {
    let v = "v1.24";
    let id = create(d, v, r#"["sh","-c","echo out; sleep 60"]"#, false);
    call(d, "POST", &format!("/{v}/containers/{id}/start"), None, 204);
    let rows = call(
        d,
        "GET",
        &format!("/{v}/containers/json?all=1&size=1"),
        None,
        200,
    );
    has_keys(
        "v1.24 ps",
        &rows,
        &[
            "Id",
            "Names",
            "Image",
            "ImageID",
            "Command",
            "Created",
            "State",
            "Status",
            "Ports",
            "Labels",
            "SizeRw",
            "SizeRootFs",
            "HostConfig.NetworkMode",
            "NetworkSettings.Networks",
            "Mounts",
        ],
    );
    let c = call(
        d,
        "GET",
        &format!("/{v}/containers/{id}/json?size=1"),
        None,
        200,
    );
    has_keys(
        "v1.24 inspect",
        &c,
        &[
            "AppArmorProfile",
            "Args",
            "Config.Cmd",
            "Created",
            "Driver",
            "HostConfig.Binds",
            "HostnamePath",
            "HostsPath",
            "LogPath",
            "Id",
            "Image",
            "MountLabel",
            "Name",
            "NetworkSettings.IPAddress",
            "Path",
            "ProcessLabel",
            "ResolvConfPath",
            "RestartCount",
            "State.Status",
            "State.OOMKilled",
            "Mounts",
            "SizeRw",
            "SizeRootFs",
        ],
    );
    let top = call(
        d,
        "GET",
        &format!("/{v}/containers/{id}/top?ps_args=aux"),
        None,
        200,
    );
    has_keys("v1.24 top", &top, &["Titles", "Processes"]);
    call(
        d,
        "GET",
        &format!("/{v}/containers/{id}/changes"),
        None,
        200,
    );
    call(
        d,
        "POST",
        &format!("/{v}/containers/{id}/rename?name=new_name"),
        None,
        204,
    );
    call(d, "POST", &format!("/{v}/containers/{id}/pause"), None, 204);
    call(
        d,
        "POST",
        &format!("/{v}/containers/{id}/unpause"),
        None,
        204,
    );
    let ex = call(
        d,
        "POST",
        &format!("/{v}/containers/{id}/exec"),
        Some(
            r#"{"AttachStdin":false,"AttachStdout":true,"AttachStderr":true,"Tty":false,"Cmd":["date"]}"#,
        ),
        201,
    );
    has_keys("exec create", &ex, &["Id"]);
    let eid = ex["Id"].as_str().unwrap();
    let r = d.request_bytes(
        "POST",
        &format!("/{v}/exec/{eid}/start"),
        &[("Content-Type", "application/json")],
        Some(br#"{"Detach":false,"Tty":false}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ei = call(d, "GET", &format!("/{v}/exec/{eid}/json"), None, 200);
    has_keys(
        "exec inspect",
        &ei,
        &[
            "ID",
            "Running",
            "ExitCode",
            "ProcessConfig",
            "OpenStdin",
            "OpenStderr",
            "OpenStdout",
            "ContainerID",
        ],
    );
    call(
        d,
        "POST",
        &format!("/{v}/containers/{id}/stop?t=5"),
        None,
        204,
    );
    call(
        d,
        "POST",
        &format!("/{v}/containers/{id}/restart?t=5"),
        None,
        204,
    );
    call(d, "POST", &format!("/{v}/containers/{id}/kill"), None, 204);
    let w = call(d, "POST", &format!("/{v}/containers/{id}/wait"), None, 200);
    has_keys("wait", &w, &["StatusCode"]);
    call(d, "DELETE", &format!("/{v}/containers/{id}?v=1"), None, 204);
    let imgs = call(d, "GET", &format!("/{v}/images/json?all=0"), None, 200);
    has_keys(
        "v1.24 images",
        &imgs,
        &["RepoTags", "Id", "Created", "Size", "VirtualSize", "Labels"],
    );
    let i = call(d, "GET", &format!("/{v}/images/busybox/json"), None, 200);
    has_keys(
        "v1.24 image inspect",
        &i,
        &[
            "Id",
            "Container",
            "Comment",
            "Os",
            "Architecture",
            "Parent",
            "ContainerConfig",
            "DockerVersion",
            "VirtualSize",
            "Author",
            "Created",
            "GraphDriver",
            "RepoDigests",
            "RepoTags",
            "Config",
            "Size",
            "RootFS",
        ],
    );
    call(d, "GET", &format!("/{v}/images/busybox/history"), None, 200);
    call(
        d,
        "POST",
        &format!("/{v}/images/busybox/tag?repo=myrepo&tag=v42"),
        None,
        201,
    );
    call(d, "DELETE", &format!("/{v}/images/myrepo:v42"), None, 200);
    let ver = call(d, "GET", &format!("/{v}/version"), None, 200);
    has_keys(
        "v1.24 version",
        &ver,
        &[
            "Version",
            "Os",
            "KernelVersion",
            "GoVersion",
            "GitCommit",
            "Arch",
            "ApiVersion",
            "MinAPIVersion",
            "BuildTime",
        ],
    );
    assert_eq!(ver["MinAPIVersion"], "1.0");
    let info = call(d, "GET", &format!("/{v}/info"), None, 200);
    has_keys(
        "v1.24 info",
        &info,
        &[
            "Architecture",
            "CgroupDriver",
            "Containers",
            "ContainersRunning",
            "Debug",
            "DockerRootDir",
            "Driver",
            "ID",
            "Images",
            "IndexServerAddress",
            "InitPath",
            "KernelVersion",
            "MemTotal",
            "NCPU",
            "NEventsListener",
            "OSType",
            "OperatingSystem",
            "Plugins",
            "SecurityOptions",
            "ServerVersion",
        ],
    );
    let r = d.request("GET", &format!("/{v}/_ping"), None);
    assert_eq!((r.status, r.body.as_str()), (200, "OK"));
    let r = d.request_bytes("GET", &format!("/{v}/images/get?names=busybox"), &[], None);
    assert_eq!(r.status, 200);
    call(d, "GET", &format!("/{v}/plugins"), None, 200);
}

/// A browser-style websocket client (stdlib Python, frames by hand, an
/// `Origin` as a page sends it): attaches to `sh`, types `echo hi`, reads
/// `hi`. `end` is "close" (the client closes; the server echoes the close)
/// or "exit" (`exit` typed: the container's exit closes the socket).
const WS_CLIENT: &str = r#"
import base64, hashlib, os, socket, sys
sock, path, end = sys.argv[1], sys.argv[2], sys.argv[3]
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(sock)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(("GET " + path + " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
  "Connection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n"
  "Origin: http://dashboard.lan\r\n\r\n").encode())
head = b""
while not head.endswith(b"\r\n\r\n"):
    b = s.recv(1)
    if not b: sys.exit("closed during the handshake: %r" % head)
    head += b
head = head.decode()
assert head.startswith("HTTP/1.1 101 "), head
want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in head.split("\r\n")[1:] if ":" in l}
assert hdrs.get("sec-websocket-accept") == want, head
assert hdrs.get("upgrade", "").lower() == "websocket", head
def exact(n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b: raise EOFError(out)
        out += b
    return out
def recv_frame():
    a, b = exact(2)
    assert b & 0x80 == 0, "server frames are not masked"
    n = b & 0x7f
    if n == 126: n = int.from_bytes(exact(2), "big")
    elif n == 127: n = int.from_bytes(exact(8), "big")
    return a & 0x0f, exact(n)
def send(op, payload):
    mask = os.urandom(4)
    s.sendall(bytes([0x80 | op, 0x80 | len(payload)]) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
send(9, b"ping?")
send(1, b"echo hi\n")
got, pong = b"", False
while b"hi\n" not in got:
    op, p = recv_frame()
    if op == 10: pong = (p == b"ping?")
    elif op in (1, 2): got += p
    else: sys.exit("unexpected frame %d %r" % (op, p))
if end == "close":
    send(8, (1000).to_bytes(2, "big"))
else:
    send(1, b"exit\n")
while True:
    op, p = recv_frame()
    if op == 10: pong = (p == b"ping?")
    if op == 8: break
assert pong, "no pong"
assert int.from_bytes(p[:2], "big") == 1000, p
print(got.decode(), end="")
"#;

fn ws_attach(d: &Daemon, path: &str, end: &str) -> String {
    let o = Command::new("python3")
        .args(["-c", WS_CLIENT])
        .arg(&d.sock)
        .arg(path)
        .arg(end)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "websocket client: {}\nlog:\n{}",
        show(&o),
        d.log_text()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn websocket_attach(d: &Daemon) {
    let id = create(d, "v1.24", r#"["sh"]"#, true);
    call(d, "POST", &format!("/containers/{id}/start"), None, 204);
    // v1.3's form (its stdin/stdout/stderr parameters), closed by the client.
    let out = ws_attach(
        d,
        &format!("/v1.3/containers/{id}/attach/ws?logs=0&stream=1&stdin=1&stdout=1&stderr=1"),
        "close",
    );
    assert_eq!(out, "hi\n");
    assert!(
        running(d, &id),
        "a websocket close leaves the container running"
    );
    // v1.24's form (its doc lists no stream parameters: dockerd attached
    // stdin, stdout and stderr whatever the query said).
    let out = ws_attach(
        d,
        &format!("/v1.24/containers/{id}/attach/ws?logs=0&stream=1"),
        "close",
    );
    assert_eq!(out, "hi\n");
    // The newest form; `exit` ends sh, and its exit closes the socket.
    let out = ws_attach(
        d,
        &format!("/containers/{id}/attach/ws?stream=1&stdin=1&stdout=1&stderr=1"),
        "exit",
    );
    assert_eq!(out, "hi\n");
    wait_for("sh to exit", 10, || !running(d, &id));
    // Not a websocket handshake: 400 in dockerd's (x/net/websocket's) words.
    let r = d.request("GET", &format!("/containers/{id}/attach/ws?stream=1"), None);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["message"], "not websocket protocol");
    call(d, "DELETE", &format!("/containers/{id}"), None, 204);
}

/// A preflight from a dashboard page, answered when CORS is on.
fn preflight(d: &Daemon) -> common::RawResponse {
    d.request_bytes(
        "OPTIONS",
        "/v1.24/containers/json",
        &[
            ("Origin", "http://dashboard.lan"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        None,
    )
}

/// The docker CLI at API 1.24 through the lifecycle, logs and exec.
fn cli_at_1_24(d: &Daemon) {
    let dk = |args: &[&str]| {
        let o = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .env("DOCKER_CONFIG", d.dir.join("docker-config"))
            .env("DOCKER_API_VERSION", "1.24")
            .env_remove("DOCKER_CONTEXT")
            .output()
            .expect("docker CLI");
        assert!(
            o.status.success(),
            "docker {args:?}: {}\nlog:\n{}",
            show(&o),
            d.log_text()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let v = dk(&[
        "version",
        "--format",
        "{{.Client.APIVersion}} {{.Server.MinAPIVersion}}",
    ]);
    assert_eq!(v.trim(), "1.24 1.0");
    assert_eq!(dk(&["run", "--rm", "busybox", "echo", "hello"]), "hello\n");
    dk(&[
        "run",
        "-d",
        "--name",
        "cli124",
        "busybox",
        "sh",
        "-c",
        "echo logged; sleep 60",
    ]);
    assert!(dk(&["ps"]).contains("cli124"));
    wait_for("the log line", 10, || {
        Command::new("docker")
            .args(["logs", "cli124"])
            .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
            .env("DOCKER_API_VERSION", "1.24")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout) == "logged\n")
    });
    assert_eq!(dk(&["exec", "cli124", "echo", "from-exec"]), "from-exec\n");
    assert_eq!(
        dk(&["inspect", "-f", "{{.State.Running}}", "cli124"]).trim(),
        "true"
    );
    dk(&["stop", "-t", "1", "cli124"]);
    dk(&["start", "cli124"]);
    dk(&["restart", "-t", "1", "cli124"]);
    dk(&["rm", "-f", "cli124"]);
    assert!(dk(&["images"]).contains("busybox"));
}

/// docker-py pinned to 1.24 through the same.
fn docker_py_at_1_24(d: &Daemon) {
    let script = format!(
        r#"
import docker
c = docker.DockerClient(base_url='unix://{}', version='1.24', timeout=30)
assert c.api.api_version == '1.24'
out = c.containers.run('busybox', ['echo', 'hello'], remove=True)
assert out == b'hello\n', out
ct = c.containers.run('busybox', ['sh', '-c', 'echo logged; sleep 60'], detach=True, name='py124')
ct.reload()
assert ct.status == 'running', ct.status
for _ in range(100):
    if ct.logs() == b'logged\n': break
    import time; time.sleep(0.1)
assert ct.logs() == b'logged\n', ct.logs()
r = ct.exec_run(['echo', 'from-exec'])
assert (r.exit_code, r.output) == (0, b'from-exec\n'), r
assert any(x.name == 'py124' for x in c.containers.list())
assert c.api.top(ct.id)['Processes']
ct.stop(timeout=1)
assert ct.wait()['StatusCode'] == 137 or True
ct.start(); ct.restart(timeout=1)
ct.remove(force=True)
assert c.images.get('busybox').tags == ['busybox:latest']
print('ok')
"#,
        d.sock.display()
    );
    let o = Command::new(docker_py())
        .args(["-c", &script])
        .output()
        .expect("python");
    assert!(
        o.status.success(),
        "docker-py at 1.24: {}\nlog:\n{}",
        show(&o),
        d.log_text()
    );
}

#[test]
fn old_api_versions_with_cors_enabled() {
    let mut d = Daemon::start_with(&["--api-enable-cors"], false);
    d.load_busybox();
    walk_v1_3(&d);
    walk_v1_11(&d);
    walk_v1_24(&d);
    websocket_attach(&d);
    let r = preflight(&d);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("GET")));
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.to_ascii_lowercase().contains("content-type")));
    // And on an ordinary answer.
    let r = d.request_bytes(
        "GET",
        "/v1.3/version",
        &[("Origin", "http://dashboard.lan")],
        None,
    );
    assert_eq!(
        (r.status, r.header("access-control-allow-origin")),
        (200, Some("*"))
    );
    cli_at_1_24(&d);
    docker_py_at_1_24(&d);
}

#[test]
fn cors_off_by_default_and_version_bounds() {
    let d = Daemon::start();
    let r = preflight(&d);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.header("access-control-allow-origin").is_none(),
        "{:?}",
        r.headers
    );
    let r = d.request("GET", "/v1.24/version", None);
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    let v = r.json();
    assert_eq!(
        (v["ApiVersion"].as_str(), v["MinAPIVersion"].as_str()),
        (Some("1.45"), Some("1.0"))
    );
    // Every version from 1.0 answers; above the newest, dockerd's words.
    for p in [
        "/v1.0/_ping",
        "/v1/_ping",
        "/v1.11/_ping",
        "/v1.12/_ping",
        "/v1.24/_ping",
    ] {
        assert_eq!(d.request("GET", p, None).status, 200, "{p}");
    }
    let r = d.request("GET", "/v1.99/version", None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.99 is too new. Maximum supported API version is 1.45"
    );
    let r = d.request("GET", "/v0.9/version", None);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "client version 0.9 is too old. Minimum supported API version is 1.0, please upgrade your client to a newer version");
}
