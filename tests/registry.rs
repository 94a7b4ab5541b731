//! Registry pulls and logins against Debian's `docker-registry`
//! (distribution 2.8) started by the test on loopback, plain HTTP, with its
//! own config and storage; Basic auth through htpasswd, Bearer tokens and
//! cut links through a small proxy written here. Driven by the docker CLI,
//! docker-py and raw requests.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{busybox_tar, free_port, temp_dir, url_encode, Daemon};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

fn text(o: &std::process::Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A `docker-registry` on a free loopback port, killed and removed on drop.
struct Registry {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Registry {
    /// `auth` is an extra YAML block (htpasswd) or empty.
    fn start(auth: &str) -> Registry {
        let dir = temp_dir("registry");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.join("data").display()
        );
        std::fs::write(dir.join("config.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("docker-registry must be installed (apt-get install docker-registry)");
        let r = Registry {
            child: Some(child),
            dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy` an archive into the registry (as schema 2, or OCI).
    fn push_archive(&self, archive: &Path, repo_tag: &str, oci: bool, creds: Option<&str>) {
        let mut cmd = Command::new("skopeo");
        cmd.arg("copy").arg("--dest-tls-verify=false");
        if oci {
            cmd.args(["--format", "oci"]);
        }
        if let Some(c) = creds {
            cmd.args(["--dest-creds", c]);
        }
        let o = cmd
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .expect("skopeo must be installed (apt-get install skopeo)");
        assert!(o.status.success(), "skopeo copy: {}", text(&o));
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 exchange (`Connection: close`): status, headers, body.
fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = TcpStream::connect(authority).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let (status, hdrs) = common::parse_head(&head);
    let mut body = raw[end + 4..].to_vec();
    if hdrs
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    (status, hdrs, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
    out
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(k, _)| k == &name.to_ascii_lowercase())
        .map(|(_, v)| v.as_str())
}

/// Upload a blob (monolithic: POST then PUT ?digest=); returns its digest.
fn push_blob(host: &str, repo: &str, data: &[u8]) -> String {
    let digest = sha(data);
    let (st, h, _) = http(
        "POST",
        &format!("http://{host}/v2/{repo}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(st, 202, "start upload");
    let loc = header(&h, "location").expect("upload location").to_string();
    let loc = if loc.starts_with('/') {
        format!("http://{host}{loc}")
    } else {
        loc
    };
    let sep = if loc.contains('?') { '&' } else { '?' };
    let (st, _, body) = http(
        "PUT",
        &format!("{loc}{sep}digest={}", url_encode(&digest)),
        &[("Content-Type", "application/octet-stream")],
        data,
    );
    assert_eq!(st, 201, "finish upload: {}", String::from_utf8_lossy(&body));
    digest
}

fn put_manifest(host: &str, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> String {
    let (st, _, resp) = http(
        "PUT",
        &format!("http://{host}/v2/{repo}/manifests/{reference}"),
        &[("Content-Type", media_type)],
        body,
    );
    assert_eq!(st, 201, "put manifest: {}", String::from_utf8_lossy(&resp));
    sha(body)
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// An OCI image of uncompressed layers pushed by hand; returns the
/// manifest's (digest, size) and the image ID.
fn push_image(
    host: &str,
    repo: &str,
    tag: Option<&str>,
    layers: &[Vec<u8>],
    arch: &str,
    variant: &str,
) -> (String, usize, String) {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let d = push_blob(host, repo, l);
        diff_ids.push(d.clone());
        descs.push(json!({"mediaType": OCI_LAYER_TAR, "digest": d, "size": l.len()}));
    }
    let mut config = json!({
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    if !variant.is_empty() {
        config["variant"] = json!(variant);
    }
    let config = serde_json::to_vec(&config).unwrap();
    let cd = push_blob(host, repo, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let reference = tag.map(str::to_string).unwrap_or_else(|| sha(&manifest));
    let md = put_manifest(host, repo, &reference, OCI_MANIFEST, &manifest);
    (md, manifest.len(), sha(&config))
}

/// A tar of one file `name` holding `data` (built with tar(1)).
fn layer_tar(name: &str, data: &[u8]) -> Vec<u8> {
    let dir = temp_dir("layer");
    std::fs::write(dir.join(name), data).unwrap();
    let out = dir.with_extension("tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&dir)
        .arg("-cf")
        .arg(&out)
        .arg(name)
        .status()
        .unwrap();
    assert!(st.success());
    let t = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&out);
    t
}

fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut v)
        .unwrap();
    v
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let o = d.docker(&["image", "inspect", name]);
    assert!(o.status.success(), "inspect {name}: {}", text(&o));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap()[0].clone()
}

/// JSON lines of a progress stream.
fn messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn pull_from_a_plain_http_registry() {
    let reg = Registry::start("");
    let host = reg.host();
    let mut d = Daemon::start();
    d.has_containers = true;
    reg.push_archive(busybox_tar(), "busybox:latest", false, None);
    reg.push_archive(busybox_tar(), "oci/busybox:v1", true, None);

    // The real CLI: progress lines, then the image with its digest.
    let o = d.docker(&["pull", &format!("{host}/busybox:latest")]);
    assert!(o.status.success(), "docker pull: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("latest: Pulling from busybox"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!(
            "Status: Downloaded newer image for {host}/busybox:latest"
        )),
        "{out}"
    );
    let (_, h, _) = http(
        "HEAD",
        &format!("http://{host}/v2/busybox/manifests/latest"),
        &[(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
        b"",
    );
    let digest = header(&h, "docker-content-digest").unwrap().to_string();
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    let img = inspect(&d, &format!("{host}/busybox:latest"));
    assert_eq!(
        img["RepoDigests"],
        json!([format!("{host}/busybox@{digest}")])
    );
    assert_eq!(img["RepoTags"], json!([format!("{host}/busybox:latest")]));
    let o = d.docker(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Digest}}",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("{host}/busybox {digest}")),
        "{}",
        text(&o)
    );
    // It runs.
    let o = d.docker(&["run", "--rm", &format!("{host}/busybox"), "echo", "pulled"]);
    assert!(o.status.success(), "run: {}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "pulled");

    // Again: nothing fetched, "up to date".
    let o = d.docker(&["pull", &format!("{host}/busybox")]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert!(out.contains("Image is up to date"), "{out}");
    assert!(!out.contains("Pull complete"), "{out}");

    // The raw stream is dockerd's: JSON lines with ids, then Digest/Status.
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={host}/oci/busybox&tag=v1"),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let msgs = messages(&r.text());
    assert_eq!(
        msgs[0],
        json!({"status": "Pulling from oci/busybox", "id": "v1"})
    );
    // The same layer, already here.
    assert!(
        msgs.iter().any(|m| m["status"] == "Already exists"),
        "{msgs:?}"
    );
    assert!(msgs.iter().all(|m| m.get("error").is_none()), "{msgs:?}");
    let oci = inspect(&d, &format!("{host}/oci/busybox:v1"));
    assert_eq!(oci["RootFS"], img["RootFS"]);

    // By digest: only the digest reference.
    d.docker(&["rmi", &format!("{host}/busybox:latest")]);
    let o = d.docker(&["images", "-q"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        1,
        "rmi of the last tag drops the digest reference too: {}",
        text(&d.docker(&["images", "--digests"]))
    );
    let o = d.docker(&["pull", &format!("{host}/busybox@{digest}")]);
    assert!(o.status.success(), "{}", text(&o));
    let byd = inspect(&d, &format!("{host}/busybox@{digest}"));
    assert_eq!(byd["RepoTags"], json!([]));

    // Errors as dockerd words them, before any progress: plain statuses.
    let o = d.docker(&["pull", &format!("{host}/busybox:nope")]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "manifest for {host}/busybox:nope not found: manifest unknown"
        )),
        "{}",
        text(&o)
    );
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={host}/nothing&tag=latest"),
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={host}/busybox&tag=latest&platform=linux/s390x"),
        &[],
        None,
    );
    // As dockerd: the config is read after "Pulling from", so the refusal
    // is in the stream.
    let err = common::stream_error(&r);
    assert!(
        err.contains("does not match the specified platform"),
        "{err}"
    );
    let r = d.request_bytes(
        "POST",
        "/images/create?fromImage=Bad_Name&tag=latest",
        &[],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    let dead = free_port();
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage=127.0.0.1:{dead}/x&tag=latest"),
        &[],
        None,
    );
    assert_eq!(r.status, 500, "unreachable registry: {}", r.text());

    // A two-platform index: the host's by default, --platform for another.
    let base = layer_tar("base.txt", b"shared base layer\n");
    let amd = layer_tar("arch.txt", b"amd64\n");
    let arm = layer_tar("arch.txt", b"arm64\n");
    let (amd_m, amd_len, amd_id) =
        push_image(&host, "multi", None, &[base.clone(), amd], "amd64", "");
    let (arm_m, arm_len, arm_id) =
        push_image(&host, "multi", None, &[base.clone(), arm], "arm64", "v8");
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd_m, "size": amd_len,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm_m, "size": arm_len,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ]
    }))
    .unwrap();
    let index_digest = put_manifest(&host, "multi", "latest", OCI_INDEX, &index);
    let o = d.docker(&[
        "pull",
        "--platform",
        "linux/arm64",
        &format!("{host}/multi"),
    ]);
    assert!(o.status.success(), "pull --platform: {}", text(&o));
    let m = inspect(&d, &format!("{host}/multi"));
    assert_eq!(m["Id"], json!(arm_id));
    assert_eq!(m["Architecture"], json!("arm64"));
    assert_eq!(
        m["RepoDigests"],
        json!([format!("{host}/multi@{index_digest}")])
    );
    // The other platform shares the base layer: only its own is fetched.
    let o = d.docker(&["pull", &format!("{host}/multi")]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(out.matches("Already exists").count(), 1, "{out}");
    assert_eq!(out.matches("Pull complete").count(), 1, "{out}");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(inspect(&d, &format!("{host}/multi"))["Id"], json!(amd_id));
    }
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={host}/multi&tag=latest&platform=linux/riscv64"),
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.message(),
        "no matching manifest for linux/riscv64 in the manifest list entries"
    );

    // docker-py's images.pull.
    d.docker(&["rmi", &format!("{host}/oci/busybox:v1")]);
    let py = format!(
        "import docker\nc = docker.DockerClient(base_url='unix://{}')\nimg = c.images.pull('{host}/oci/busybox', tag='v1')\nprint(img.id)\nprint(img.attrs['RepoDigests'])\n",
        d.sock.display()
    );
    let o = Command::new("python3").arg("-c").arg(&py).output().unwrap();
    assert!(o.status.success(), "docker-py: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(oci["Id"].as_str().unwrap()), "{out}");
    assert!(
        out.contains(&format!("{host}/oci/busybox@sha256:")),
        "{out}"
    );

    // Pull events.
    let ev = d.events(Some(r#"{"type":["image"],"event":["pull"]}"#));
    assert!(
        ev.iter()
            .any(|e| e["Actor"]["ID"] == json!(format!("{host}/busybox:latest"))),
        "{ev:?}"
    );
    // Nothing left in the downloads.
    let dl = d.data_root.join("image/downloads");
    let left: Vec<_> = std::fs::read_dir(&dl)
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "download leftovers: {left:?}");
}
