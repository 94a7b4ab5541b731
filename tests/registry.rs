//! Registry pulls and logins against Debian's `docker-registry`
//! (distribution 2.8) started by the test on loopback, plain HTTP, with its
//! own config and storage; Basic auth through htpasswd, Bearer tokens and
//! cut links through a small proxy written here. Driven by the docker CLI,
//! docker-py and raw requests.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::registry::Registry;
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

/// A directory removed on drop.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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

fn body_json(r: &common::RawResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
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
    let reg = Registry::start();
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

    // --all-tags: every tag of the repository.
    reg.push_archive(busybox_tar(), "tags:one", false, None);
    reg.push_archive(busybox_tar(), "tags:two", false, None);
    let o = d.docker(&["pull", "--all-tags", &format!("{host}/tags")]);
    assert!(o.status.success(), "pull -a: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {host}/tags\n")),
        "{out}"
    );
    let both = inspect(&d, &format!("{host}/tags:one"));
    let mut tags: Vec<String> = serde_json::from_value(both["RepoTags"].clone()).unwrap();
    tags.sort();
    assert_eq!(
        tags,
        vec![format!("{host}/tags:one"), format!("{host}/tags:two")]
    );

    // docker search: the registry's catalog filtered by the term.
    let o = d.docker(&["search", &format!("{host}/busy")]);
    assert!(o.status.success(), "docker search: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains(&format!("{host}/busybox")), "{out}");
    assert!(out.contains(&format!("{host}/oci/busybox")), "{out}");
    assert!(!out.contains("multi"), "{out}");
    let r = d.request_bytes(
        "GET",
        &format!("/images/search?term={host}/busy&limit=1"),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        body_json(&r).as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text()
    );
    let r = d.request_bytes(
        "GET",
        &format!("/images/search?term={host}/busy&limit=0"),
        &[],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.message(), "limit 0 is outside the range of [1, 100]");
    let o = d.docker(&[
        "search",
        "--filter",
        "is-official=true",
        &format!("{host}/busy"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        1,
        "{}",
        text(&o)
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

/// What the test proxy in front of a registry does.
#[derive(Clone, Default)]
struct ProxyMode {
    /// Cut a blob download's connection after this many bytes.
    cut_every: Option<u64>,
    /// Demand Bearer tokens, issued by `/token` for this `user:password`
    /// (anonymous callers get tokens that are denied every repository).
    bearer: Option<String>,
    /// Seconds a token lives (rejected after).
    token_life: u64,
    /// Pause after each 16 KiB of a blob.
    throttle: Option<Duration>,
    /// Answer blob GETs with a 307 to this other host (`addr:port`).
    redirect_blobs: Option<String>,
    /// Listen here instead of 127.0.0.1.
    bind: Option<String>,
}

/// A proxy in front of a registry: Bearer auth with its own token server,
/// cut or slowed blob downloads, and a count of the blob bytes it sent.
struct Proxy {
    addr: String,
    port: u16,
    fetched: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Some request carried an Authorization header.
    saw_auth: Arc<AtomicBool>,
}

struct Tokens {
    issued: std::sync::Mutex<Vec<(String, Instant, bool)>>,
}

impl Proxy {
    fn start(upstream: u16, mode: ProxyMode) -> Proxy {
        let addr = mode.bind.clone().unwrap_or_else(|| "127.0.0.1".into());
        let listener = TcpListener::bind((addr.as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let saw_auth = Arc::new(AtomicBool::new(false));
        let seen = saw_auth.clone();
        let fetched = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tokens = Arc::new(Tokens {
            issued: std::sync::Mutex::new(Vec::new()),
        });
        let (f, s) = (fetched.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (f, mode, tokens, seen) =
                    (f.clone(), mode.clone(), tokens.clone(), seen.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, port, &mode, &f, &tokens, &seen);
                });
            }
        });
        Proxy {
            addr,
            port,
            fetched,
            stop,
            saw_auth,
        }
    }

    fn host(&self) -> String {
        format!("{}:{}", self.addr, self.port)
    }

    fn fetched(&self) -> u64 {
        self.fetched.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((self.addr.as_str(), self.port));
    }
}

fn respond(c: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &str) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = c.write_all(head.as_bytes());
    let _ = c.write_all(body.as_bytes());
}

fn b64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            out.push(if k <= c.len() {
                A[(n >> (18 - 6 * k) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn serve(
    mut client: TcpStream,
    upstream: u16,
    me: u16,
    mode: &ProxyMode,
    fetched: &AtomicU64,
    tokens: &Tokens,
    saw_auth: &AtomicBool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let end = loop {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Not HTTP (the daemon's HTTPS try of an insecure registry): answer
        // as an HTTP server does, at once.
        if !buf[0].is_ascii_uppercase() {
            client.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut body = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    if get("authorization").is_some() {
        saw_auth.store(true, Ordering::SeqCst);
    }
    let len: usize = get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < len {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if let Some(creds) = &mode.bearer {
        if path.starts_with("/token") {
            let refresh = method == "POST"
                && String::from_utf8_lossy(&body)
                    .split('&')
                    .any(|kv| kv == "refresh_token=refresh-1");
            let good =
                refresh || get("authorization") == Some(format!("Basic {}", b64(creds.as_bytes())));
            if get("authorization").is_some() && !good {
                respond(
                    &mut client,
                    "401 Unauthorized",
                    &[],
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
                return Ok(());
            }
            let mut issued = tokens.issued.lock().unwrap();
            let token = format!("tok-{}", issued.len());
            issued.push((token.clone(), Instant::now(), good));
            let body = json!({"token": token, "expires_in": mode.token_life,
                              "refresh_token": if good { "refresh-1" } else { "" }});
            respond(&mut client, "200 OK", &[], &body.to_string());
            return Ok(());
        }
        let presented =
            get("authorization").and_then(|a| a.strip_prefix("Bearer ").map(str::to_string));
        let state = presented.and_then(|t| {
            tokens
                .issued
                .lock()
                .unwrap()
                .iter()
                .find(|(x, _, _)| *x == t)
                .map(|(_, at, good)| (at.elapsed().as_secs() < mode.token_life, *good))
        });
        let challenge =
            format!("Bearer realm=\"http://127.0.0.1:{me}/token\",service=\"test-registry\"");
        match state {
            Some((true, true)) => {}
            Some((true, false)) if path == "/v2/" => {}
            Some((true, false)) => {
                respond(
                    &mut client,
                    "401 Unauthorized",
                    &[("WWW-Authenticate", challenge)],
                    r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#,
                );
                return Ok(());
            }
            _ => {
                respond(
                    &mut client,
                    "401 Unauthorized",
                    &[("WWW-Authenticate", challenge)],
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                );
                return Ok(());
            }
        }
    }
    if let Some(other) = &mode.redirect_blobs {
        if method == "GET" && path.contains("/blobs/sha256:") {
            respond(
                &mut client,
                "307 Temporary Redirect",
                &[("Location", format!("http://{other}{path}"))],
                "",
            );
            return Ok(());
        }
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let mut out = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if k != "authorization" && k != "connection" {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let blob = method == "GET" && path.contains("/blobs/sha256:");
    let mut sent = 0u64;
    loop {
        let n = up.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        let mut n = n;
        if let (true, Some(cut)) = (blob, mode.cut_every) {
            n = n.min((cut - sent) as usize);
        }
        client.write_all(&chunk[..n])?;
        sent += n as u64;
        if blob {
            fetched.fetch_add(n as u64, Ordering::SeqCst);
            if let Some(t) = mode.throttle {
                std::thread::sleep(t);
            }
            if mode.cut_every.is_some_and(|c| sent >= c) {
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
    }
    Ok(())
}

fn registry_auth(user: &str, password: &str, server: &str) -> String {
    b64(
        json!({"username": user, "password": password, "serveraddress": server})
            .to_string()
            .as_bytes(),
    )
    .replace('+', "-")
    .replace('/', "_")
}

#[test]
fn logins_and_pulls_with_basic_and_bearer_auth() {
    let auth_dir = Cleanup(temp_dir("htpasswd"));
    let htpasswd = auth_dir.0.join("htpasswd");
    let o = Command::new("htpasswd")
        .args(["-Bbn", "alice", "s3cret"])
        .output()
        .expect("htpasswd (apache2-utils) must be installed");
    assert!(o.status.success());
    std::fs::write(&htpasswd, &o.stdout).unwrap();
    let reg = Registry::with_auth(&format!(
        "auth:\n  htpasswd:\n    realm: test-realm\n    path: {}\n",
        htpasswd.display()
    ));
    let host = reg.host();
    reg.push_archive(busybox_tar(), "private/bb:1", false, Some("alice:s3cret"));
    let d = Daemon::start();

    // Basic: no credentials, wrong ones, then a login.
    let o = d.docker(&["pull", &format!("{host}/private/bb:1")]);
    assert!(
        !o.status.success(),
        "anonymous pull of a private repo: {}",
        text(&o)
    );
    let login = |user: &str, pw: &str, server: &str| {
        d.request_bytes(
            "POST",
            "/auth",
            &[("Content-Type", "application/json")],
            Some(
                json!({"username": user, "password": pw, "serveraddress": server})
                    .to_string()
                    .as_bytes(),
            ),
        )
    };
    let r = login("alice", "wrong", &host);
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.message(),
        format!("login attempt to http://{host}/v2/ failed with status: 401 Unauthorized")
    );
    let r = login("alice", "s3cret", &host);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(body_json(&r)["Status"], json!("Login Succeeded"));
    let o = d.docker(&["login", "-u", "alice", "-p", "wrong", &host]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = d.docker(&["login", "-u", "alice", "-p", "s3cret", &host]);
    assert!(o.status.success(), "docker login: {}", text(&o));
    let o = d.docker(&["pull", &format!("{host}/private/bb:1")]);
    assert!(o.status.success(), "pull after login: {}", text(&o));
    // X-Registry-Auth on a raw request, with wrong credentials: refused.
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={host}/private/bb&tag=1"),
        &[("X-Registry-Auth", &registry_auth("alice", "nope", &host))],
        None,
    );
    assert_ne!(r.status, 200, "{}", r.text());

    // Bearer: a token server in front of a plain registry.
    let plain = Registry::start();
    plain.push_archive(busybox_tar(), "team/bb:latest", false, None);
    let proxy = Proxy::start(
        plain.port,
        ProxyMode {
            bearer: Some("bob:hunter2".into()),
            token_life: 60,
            ..Default::default()
        },
    );
    let ph = proxy.host();
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={ph}/team/bb&tag=latest"),
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.message(),
        format!("pull access denied for {ph}/team/bb, repository does not exist or may require 'docker login': denied: requested access to the resource is denied")
    );
    let r = login("bob", "wrong", &ph);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = login("bob", "hunter2", &ph);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(body_json(&r)["IdentityToken"], json!("refresh-1"));
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={ph}/team/bb&tag=latest"),
        &[("X-Registry-Auth", &registry_auth("bob", "hunter2", &ph))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("Status: Downloaded newer image"),
        "{}",
        r.text()
    );
    let o = d.docker(&["login", "-u", "bob", "-p", "hunter2", &ph]);
    assert!(o.status.success(), "docker login (bearer): {}", text(&o));

    // Blobs redirected to another host: followed, without the token.
    let storage = Proxy::start(
        plain.port,
        ProxyMode {
            bind: Some("127.0.0.2".into()),
            ..Default::default()
        },
    );
    let redirecting = Proxy::start(
        plain.port,
        ProxyMode {
            bearer: Some("bob:hunter2".into()),
            token_life: 60,
            redirect_blobs: Some(storage.host()),
            ..Default::default()
        },
    );
    let rh = redirecting.host();
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={rh}/team/bb&tag=latest"),
        &[("X-Registry-Auth", &registry_auth("bob", "hunter2", &rh))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("Status: Downloaded newer image"),
        "{}",
        r.text()
    );
    assert!(storage.fetched() > 0, "the redirect was not followed");
    assert!(
        !storage.saw_auth.load(Ordering::SeqCst),
        "Authorization went to another host"
    );
    d.docker(&["rmi", &format!("{ph}/team/bb")]);
    let o = d.docker(&["pull", &format!("{ph}/team/bb")]);
    assert!(o.status.success(), "pull with a bearer login: {}", text(&o));
}

/// An image of two uncompressed layers of `each` random bytes.
fn big_image(host: &str, repo: &str, each: usize) -> (String, u64) {
    let l1 = layer_tar("one.bin", &random(each));
    let l2 = layer_tar("two.bin", &random(each));
    let total = (l1.len() + l2.len()) as u64;
    let (_, _, id) = push_image(host, repo, Some("latest"), &[l1, l2], "amd64", "");
    (id, total)
}

#[test]
fn pull_resumes_after_cuts_with_expiring_tokens() {
    let reg = Registry::start();
    let (id, total) = big_image(&reg.host(), "big", 12 << 20);
    let proxy = Proxy::start(
        reg.port,
        ProxyMode {
            cut_every: Some(3 << 20),
            bearer: Some("bob:hunter2".into()),
            token_life: 1,
            throttle: Some(Duration::from_micros(500)),
            ..Default::default()
        },
    );
    let d = Daemon::start();
    let ph = proxy.host();
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={ph}/big&tag=latest"),
        &[("X-Registry-Auth", &registry_auth("bob", "hunter2", &ph))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("Downloaded newer image"), "{}", r.text());
    let fetched = proxy.fetched();
    assert!(
        (fetched as f64) < total as f64 * 1.1,
        "fetched {fetched} bytes for {total}"
    );
    assert!(fetched >= total, "fetched {fetched} of {total}");
    assert_eq!(inspect(&d, &format!("{ph}/big"))["Id"], json!(id));
    assert!(d.log_text().contains("resuming in"), "no cut seen");
}

/// A kill -9 mid-pull loses at most the layer in flight (a layer streams
/// into its directory; no compressed copy is kept to resume from), never a
/// finished one, and never leaves a half image.
#[test]
fn kill9_during_pulls_leaves_a_consistent_store() {
    let reg = Registry::start();
    let l1 = layer_tar("one.bin", &random(8 << 20));
    let l2 = layer_tar("two.bin", &random(8 << 20));
    let (len1, len2) = (l1.len() as u64, l2.len() as u64);
    let (_, _, id) = push_image(
        &reg.host(),
        "big",
        Some("latest"),
        &[l1.clone(), l2],
        "amd64",
        "",
    );
    let proxy = Proxy::start(
        reg.port,
        ProxyMode {
            throttle: Some(Duration::from_millis(2)),
            ..Default::default()
        },
    );
    let ph = proxy.host();
    let mut d = Daemon::start();
    // One blob at a time, so the kill points below fall in one layer each.
    std::fs::write(
        d.dir.join("daemon.json"),
        r#"{"max-concurrent-downloads": 1}"#,
    )
    .unwrap();
    d.kill9();
    d.restart();
    let name = format!("{ph}/big:latest");
    let layer1 = d.data_root.join("image/layers").join(&sha(&l1)[7..]);
    // Kill points, in bytes this pull fetched: in the first layer; in the
    // second (the first fetched again whole, committed and held); in the
    // second once more (only it is fetched).
    for (i, at) in [3u64 << 20, len1 + (3 << 20), 5 << 20].iter().enumerate() {
        let start = proxy.fetched();
        let mut curl = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--unix-socket"])
            .arg(&d.sock)
            .args(["-X", "POST"])
            .arg(format!(
                "http://d/images/create?fromImage={ph}/big&tag=latest"
            ))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while proxy.fetched() - start < *at {
            assert!(
                Instant::now() < deadline,
                "pull stalled at {}",
                proxy.fetched()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        d.kill9();
        let _ = curl.wait();
        d.restart();
        d.wait_serving();
        // Consistent: no image, no temp leftovers, finished layers kept.
        let o = d.docker(&["images", "-q"]);
        assert!(o.stdout.is_empty(), "kill {i}: {}", text(&o));
        let layers = d.data_root.join("image/layers");
        for e in std::fs::read_dir(&layers).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.starts_with(".tmp"), "kill {i}: leftover {n}");
            assert!(
                e.path().join("layer.json").is_file(),
                "kill {i}: {n} incomplete"
            );
        }
        let held = std::fs::read_dir(&layers).unwrap().count();
        assert_eq!(held, usize::from(i > 0), "kill {i}: layers kept");
        assert_eq!(layer1.join("layer.json").is_file(), i > 0, "kill {i}");
    }
    // The last pull fetches the second layer only.
    let start = proxy.fetched();
    let o = d.docker(&["pull", &name]);
    assert!(o.status.success(), "final pull: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("Already exists"), "{out}");
    assert_eq!(inspect(&d, &name)["Id"], json!(id));
    let last = proxy.fetched() - start;
    assert!(
        (len2..len2 + (64 << 10)).contains(&last),
        "the last pull fetched {last} bytes for a layer of {len2}"
    );
    let dl = d.data_root.join("image/downloads");
    let left = std::fs::read_dir(&dl).map_or(0, |r| r.count());
    assert_eq!(left, 0, "download leftovers");
}

#[test]
fn push_then_pull_back() {
    let reg = Registry::start();
    let host = reg.host();
    let d = Daemon::with_busybox();
    let name = format!("{host}/mine/bb");
    assert!(d
        .docker(&["tag", "busybox:latest", &format!("{name}:v1")])
        .status
        .success());
    let o = d.docker(&["push", &format!("{name}:v1")]);
    assert!(o.status.success(), "docker push: {}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("The push refers to repository"), "{out}");
    assert!(out.contains("Pushed"), "{out}");
    // The digest reported is the registry's.
    let (st, h, _) = http(
        "HEAD",
        &format!("http://{host}/v2/mine/bb/manifests/v1"),
        &[(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
        b"",
    );
    assert_eq!(st, 200);
    let digest = header(&h, "docker-content-digest").unwrap().to_string();
    assert!(
        out.contains(&format!("v1: digest: {digest} size: ")),
        "{out}"
    );
    let img = inspect(&d, &format!("{name}:v1"));
    assert_eq!(img["RepoDigests"], json!([format!("{name}@{digest}")]));
    let o = d.docker(&["images", "--digests", "--format", "{{.Tag}} {{.Digest}}"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("v1 {digest}")),
        "{}",
        text(&o)
    );

    // Again: the layer is there; the raw stream ends with dockerd's aux.
    let r = d.request_bytes("POST", &format!("/images/{name}/push?tag=v1"), &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = messages(&r.text());
    assert!(
        msgs.iter().any(|m| m["status"] == "Layer already exists"),
        "{msgs:?}"
    );
    assert_eq!(
        msgs.last().unwrap()["aux"]["Digest"],
        json!(digest),
        "{msgs:?}"
    );

    // What went up comes back down whole, into a fresh daemon.
    let mut fresh = Daemon::start();
    fresh.has_containers = true;
    let o = fresh.docker(&["pull", &format!("{name}:v1")]);
    assert!(o.status.success(), "pull back: {}", text(&o));
    let back = inspect(&fresh, &format!("{name}:v1"));
    assert_eq!(back["Id"], img["Id"]);
    assert_eq!(back["RootFS"], img["RootFS"]);
    let o = fresh.docker(&["run", "--rm", &format!("{name}:v1"), "echo", "round trip"]);
    assert!(o.status.success(), "{}", text(&o));

    // Unknown image: dockerd's words, nothing sent.
    let r = d.request_bytes(
        "POST",
        &format!("/images/{host}/nope/push?tag=x"),
        &[],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        r.message(),
        format!("An image does not exist locally with the tag: {host}/nope")
    );
    // docker-py's push.
    let py = format!(
        "import docker\nc = docker.DockerClient(base_url='unix://{}')\nfor l in c.images.push('{name}', tag='v1', stream=True, decode=True):\n    print(l)\n",
        d.sock.display()
    );
    let o = Command::new("python3").arg("-c").arg(&py).output().unwrap();
    assert!(o.status.success(), "docker-py push: {}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&digest),
        "{}",
        text(&o)
    );
}
