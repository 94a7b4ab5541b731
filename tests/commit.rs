//! `docker commit` / `POST /commit`: the layer made from the container's
//! upper dir (whiteouts, opaque directories, no init-layer paths), the
//! child image config (`changes`, history, author, comment), the empty
//! layer of an unchanged container, pause and thaw, the "commit" event,
//! dockerd's errors; driven by the docker CLI, raw HTTP and docker-py.

mod common;

use std::io::Read;
use std::process::Command;

use common::cli::*;
use common::Daemon;
use serde_json::Value;

fn image(d: &Daemon, name: &str) -> Value {
    let r = d.request("GET", &format!("/images/{name}/json"), None);
    assert_eq!(r.status, 200, "inspect image {name}: {r:?}");
    r.json()
}

/// The last layer's tar of an image, from `docker save`, and its entry
/// names with type flags.
fn last_layer(d: &Daemon, name: &str) -> (Vec<u8>, Vec<(String, u8)>) {
    let o = dk(d, &["save", name]);
    assert!(o.status.success(), "{}", show(&o));
    let mut files = std::collections::HashMap::new();
    let mut ar = tar::Archive::new(&o.stdout[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(p, data);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layer = manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    let tar = files[&layer].clone();
    let names = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type().as_byte(),
            )
        })
        .collect();
    (tar, names)
}

/// Re-encode a tar with Python's PAX writer (keeping the user names and the
/// file-type bits of the mode, which moby 20.10 writes and Python masks).
const REWRITE_WITH_PYTHON: &str = r#"
import sys, tarfile, io
# Go writes devmajor/devminor as octal zeros in every header; Python (3.10+)
# leaves them empty for non-devices. Give Python Go's habit, nothing more.
orig = tarfile.TarInfo._create_header
def go_header(info, format, encoding, errors):
    buf = bytearray(orig(info, format, encoding, errors))
    if info.get("type") not in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        buf[329:345] = b"0000000\x000000000\x00"
    if "go_mode" in info:
        buf[100:108] = b"%07o\x00" % info["go_mode"]
    buf[148:156] = b" " * 8
    buf[148:155] = b"%06o\x00" % sum(buf)
    return bytes(buf)
tarfile.TarInfo._create_header = staticmethod(go_header)
orig_info = tarfile.TarInfo.get_info
def go_info(self):
    d = orig_info(self)
    d["go_mode"] = self.mode  # get_info masks it to 0o7777
    return d
tarfile.TarInfo.get_info = go_info
src = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()), mode="r:")
out = io.BytesIO()
dst = tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT)
for m in src.getmembers():
    m.pax_headers = {}
    data = src.extractfile(m) if m.isreg() and m.size > 0 else None
    dst.addfile(m, data)
dst.close()
sys.stdout.buffer.write(out.getvalue())
"#;

fn sha256_hex(data: &[u8]) -> String {
    let mut c = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    std::io::Write::write_all(c.stdin.as_mut().unwrap(), data).unwrap();
    let o = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn commit_captures_exactly_the_containers_changes() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "--name",
            "w",
            "busybox",
            "sh",
            "-c",
            "echo added > /added; echo changed >> /etc/passwd; rm /bin/ls; rm -rf /home; \
             mkdir -p /usr/new/deep && echo d > /usr/new/deep/f; \
             mkdir /opq && echo old > /opq/old; rm -rf /var; mkdir /var && echo z > /var/z",
        ],
    );
    let id = ok(
        &d,
        &["commit", "-m", "first", "-a", "tester", "w", "snap:1"],
    );
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let seen = ok(
        &d,
        &[
            "run",
            "--rm",
            "snap:1",
            "sh",
            "-c",
            "cat /added; tail -1 /etc/passwd; ls /bin/ls /home 2>&1; cat /usr/new/deep/f; \
             ls /var; cat /opq/old",
        ],
    );
    assert_eq!(
        seen,
        "added\nchanged\nls: /bin/ls: No such file or directory\n\
         ls: /home: No such file or directory\nd\nz\nold\n"
    );

    // The layer: OCI whiteouts and an opaque marker, no init-layer paths.
    let img = image(&d, "snap:1");
    let (tar, names) = last_layer(&d, "snap:1");
    let has = |n: &str| names.iter().any(|(p, _)| p.trim_end_matches('/') == n);
    for n in [
        "added",
        "etc/passwd",
        "bin/.wh.ls",
        ".wh.home",
        "var/.wh..wh..opq",
        "var/z",
    ] {
        assert!(has(n), "{n} missing from the layer: {names:?}");
    }
    for n in [
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "dev",
        "proc",
        "sys",
        ".dockerenv",
    ] {
        assert!(
            !has(n),
            "{n} is an init-layer path, not a change: {names:?}"
        );
    }
    let whiteout = names.iter().find(|(p, _)| p == "bin/.wh.ls").unwrap();
    assert_eq!(whiteout.1, b'0', "a whiteout is a plain file");
    let layers = img["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(
        layers.last().unwrap().as_str().unwrap(),
        format!("sha256:{}", sha256_hex(&tar)),
        "the diff ID is the digest of the layer's tar"
    );
    assert_eq!(layers.len(), 2, "{img}");
    assert_eq!(img["Comment"], "first");
    assert_eq!(img["Author"], "tester");

    // Byte for byte what a POSIX (PAX) tar writer makes of the same
    // entries: Python's tarfile encodes ustar/PAX fields exactly as Go's
    // archive/tar does (it only pads the end to a 10 KiB record).
    let py = Command::new("python3")
        .arg("-c")
        .arg(REWRITE_WITH_PYTHON)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut py = py;
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), &tar).unwrap();
    drop(py.stdin.take());
    let py = py.wait_with_output().unwrap();
    assert!(py.status.success());
    assert!(py.stdout.len() >= tar.len());
    assert!(
        py.stdout[..tar.len()] == tar[..] && py.stdout[tar.len()..].iter().all(|&b| b == 0),
        "the layer's headers differ from a PAX writer's"
    );

    // The same container committed again: the same layer (the tar is
    // deterministic, as dockerd's is).
    ok(&d, &["commit", "w", "snap:2"]);
    assert_eq!(
        image(&d, "snap:2")["RootFS"]["Layers"],
        img["RootFS"]["Layers"]
    );
    let hist = d.request("GET", "/images/snap:1/history", None).json();
    assert_eq!(hist[0]["Comment"], "first", "{hist}");
    assert!(
        hist[0]["CreatedBy"]
            .as_str()
            .unwrap()
            .starts_with("sh -c echo added"),
        "{hist}"
    );

    // A container that changed nothing: an empty layer, as dockerd marks it.
    ok(&d, &["create", "--name", "idle", "busybox"]);
    ok(&d, &["commit", "idle", "idle:1"]);
    let idle = image(&d, "idle:1");
    assert_eq!(
        idle["RootFS"]["Layers"].as_array().unwrap().len(),
        1,
        "{idle}"
    );
    let hist = d.request("GET", "/images/idle:1/history", None).json();
    assert_eq!(hist.as_array().unwrap().len(), 2, "{hist}");

    changes_and_errors(&d);
    running_commit_pauses_and_thaws(&d);
}

fn changes_and_errors(d: &Daemon) {
    ok(
        d,
        &[
            "create", "--name", "cfg", "-e", "KEEP=1", "busybox", "sleep", "1",
        ],
    );
    ok(
        d,
        &[
            "container",
            "commit",
            "--change",
            r#"CMD ["echo", "from-cmd"]"#,
            "--change",
            "ENV A=1 B=two",
            "--change",
            "EXPOSE 8080/tcp 53/udp",
            "--change",
            "LABEL team=edge",
            "--change",
            "USER nobody",
            "--change",
            "WORKDIR /srv",
            "--change",
            "VOLUME /data",
            "--change",
            "STOPSIGNAL SIGUSR1",
            "--change",
            "ONBUILD RUN echo hi",
            "--change",
            "HEALTHCHECK --interval=5s --retries=2 CMD true",
            "cfg",
            "cfgd:1",
        ],
    );
    let c = &image(d, "cfgd:1")["Config"];
    assert_eq!(c["Cmd"], serde_json::json!(["echo", "from-cmd"]), "{c}");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for e in ["KEEP=1", "A=1", "B=two"] {
        assert!(env.contains(&e), "{env:?}");
    }
    assert!(
        c["ExposedPorts"]["8080/tcp"].is_object() && c["ExposedPorts"]["53/udp"].is_object(),
        "{c}"
    );
    assert_eq!(c["Labels"]["team"], "edge");
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["WorkingDir"], "/srv");
    assert!(c["Volumes"]["/data"].is_object(), "{c}");
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo hi"]));
    assert_eq!(
        c["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "true"])
    );
    assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64);
    // The CMD applies when a container of it runs.
    ok(
        d,
        &[
            "commit",
            "--change",
            r#"CMD ["echo", "x"]"#,
            "cfg",
            "cmdonly:1",
        ],
    );
    assert_eq!(ok(d, &["run", "--rm", "cmdonly:1"]), "x\n");

    // Raw HTTP: 201 {"Id"}, the event, and dockerd's errors.
    let r = d.request(
        "POST",
        "/commit?container=cfg&repo=raw&tag=t&comment=c1",
        None,
    );
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["Id"].as_str().unwrap().to_string();
    assert_eq!(image(d, "raw:t")["Id"], id.as_str());
    let ev = d.events(Some(r#"{"event":["commit"]}"#));
    assert!(
        ev.iter()
            .any(|e| e["Actor"]["Attributes"]["imageID"] == id.as_str()
                && e["Actor"]["Attributes"]["comment"] == "c1"),
        "{ev:?}"
    );
    let r = d.request("POST", "/commit?container=ghost&repo=x", None);
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (404, "No such container: ghost".into())
    );
    let r = d.request("POST", "/commit?container=cfg&changes=RUN%20echo", None);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["message"], "RUN is not a valid change command");
    let r = d.request("POST", "/commit?container=cfg&repo=Bad:Repo", None);
    assert_eq!(r.status, 400, "{r:?}");
    // A body config replaces the container's, what it lacks filled in.
    let r = d.request(
        "POST",
        "/commit?container=cfg&repo=body&tag=1",
        Some(r#"{"Cmd":["echo","body"],"Labels":{"from":"body"}}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let c = &image(d, "body:1")["Config"];
    assert_eq!(c["Cmd"], serde_json::json!(["echo", "body"]));
    assert_eq!(c["Labels"]["from"], "body");
    assert!(
        c["Env"].as_array().unwrap().iter().any(|e| e == "KEEP=1"),
        "{c}"
    );
}

fn running_commit_pauses_and_thaws(d: &Daemon) {
    ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "live",
            "busybox",
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /c.tmp; mv /c.tmp /count; sleep 0.01; done",
        ],
    );
    wait_for("the counter to start", 10, || {
        dk(d, &["exec", "live", "cat", "/count"]).status.success()
    });
    // docker-py, a second client: pause defaults to true.
    let script = format!(
        "import docker\n\
         c = docker.DockerClient(base_url='unix://{}', version='1.45')\n\
         img = c.containers.get('live').commit(repository='livesnap', tag='1', message='py')\n\
         print(img.id)\n",
        d.sock.display()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "docker-py commit: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("sha256:"));
    // Thawed again: still running, still counting.
    assert_eq!(state(d, "live")["Status"], "running");
    let a = ok(d, &["exec", "live", "cat", "/count"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let b = ok(d, &["exec", "live", "cat", "/count"]);
    assert_ne!(a, b, "the container stays frozen after the commit");
    let n = ok(d, &["run", "--rm", "livesnap:1", "cat", "/count"]);
    assert!(n.trim().parse::<u64>().is_ok(), "{n}");
}

/// The same commit made on dockerd 20.10.24 (same busybox image from
/// scripts/make-busybox-image.sh, same commands, fixed mtimes) gave this
/// layer diff ID: Go's tar headers carry the file-type bits in the mode and
/// the host's user and group names, so ours must too. Whiteouts are left
/// out here (their mtime is the time of the `rm`); their headers were
/// compared entry by entry by hand.
#[test]
fn a_deterministic_commit_has_dockerds_diff_id() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "--name",
            "det",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /data/sub && echo hello > /data/sub/a && \
             printf 'x:x:1:1::/:/bin/sh\\n' >> /etc/passwd && echo motd > /etc/motd && \
             ln -s sub/a /data/link && chmod 0750 /data/sub && \
             touch -h -d '2020-01-02 03:04:05' /data/link && \
             touch -d '2020-01-02 03:04:05' /data/sub/a /data/sub /data /etc/passwd /etc/motd /etc",
        ],
    );
    ok(&d, &["commit", "det", "det:1"]);
    let layers = image(&d, "det:1")["RootFS"]["Layers"].clone();
    assert_eq!(
        layers[1], "sha256:64a0e835abb3562bc6f23c067eba6308a3b09db5a6871a8b64c5d5880e8d4628",
        "diff IDs: {layers}"
    );
}
