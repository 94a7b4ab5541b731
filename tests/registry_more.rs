//! Registry leftovers against Debian's `docker-registry` on loopback:
//! several blobs in flight (counted by a throttling proxy written here),
//! `max-concurrent-downloads`, Docker Hub mirrors tried in order, and
//! `/info`'s `RegistryConfig`.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{free_port, temp_dir, Daemon};
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

/// An OCI image of uncompressed layers pushed by hand; returns its image ID.
fn push_image(reg: &Registry, repo: &str, tag: &str, layers: &[Vec<u8>]) -> String {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let d = reg.push_blob(repo, l);
        diff_ids.push(d.clone());
        descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": l.len()}));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cd = reg.push_blob(repo, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let (st, _, resp) = reg.exchange(
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        &manifest,
    );
    assert_eq!(st, 201, "put manifest: {}", String::from_utf8_lossy(&resp));
    sha(&config)
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

/// JSON lines of a progress stream.
fn messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// A loopback proxy that slows blob downloads down (32 KiB every 5 ms per
/// connection) and counts how many are in flight at once. The client
/// sends `Connection: close`, so one connection is one request.
struct SlowProxy {
    port: u16,
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    blob_gets: Arc<AtomicUsize>,
    /// Uploads (`PUT`/`PATCH` with a body) in flight, and their peak.
    up_active: Arc<AtomicUsize>,
    up_peak: Arc<AtomicUsize>,
    /// Each request's line and `Content-Range`, in order.
    requests: Arc<Mutex<Vec<String>>>,
    /// Bytes of blob responses passed on.
    fetched: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

/// What `relay` counts.
#[derive(Clone)]
struct Counts {
    active: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    gets: Arc<AtomicUsize>,
    up_active: Arc<AtomicUsize>,
    up_peak: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<String>>>,
    fetched: Arc<AtomicU64>,
    /// Close a blob response after this many bytes (a flaky link).
    cut_every: Option<u64>,
    /// Slow blob responses down (32 KiB every 5 ms).
    throttle: bool,
}

impl SlowProxy {
    fn start(upstream: u16) -> SlowProxy {
        SlowProxy::start_with(upstream, None, true)
    }

    fn start_with(upstream: u16, cut_every: Option<u64>, throttle: bool) -> SlowProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let p = SlowProxy {
            port,
            active: Arc::default(),
            peak: Arc::default(),
            blob_gets: Arc::default(),
            up_active: Arc::default(),
            up_peak: Arc::default(),
            requests: Arc::default(),
            fetched: Arc::default(),
            stop: Arc::default(),
        };
        let counts = Counts {
            active: p.active.clone(),
            peak: p.peak.clone(),
            gets: p.blob_gets.clone(),
            up_active: p.up_active.clone(),
            up_peak: p.up_peak.clone(),
            requests: p.requests.clone(),
            fetched: p.fetched.clone(),
            cut_every,
            throttle,
        };
        let stop = p.stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let c = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                let counts = counts.clone();
                std::thread::spawn(move || relay(c, upstream, &counts));
            }
        });
        p
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn reset(&self) {
        self.peak.store(0, Ordering::SeqCst);
        self.blob_gets.store(0, Ordering::SeqCst);
        self.up_peak.store(0, Ordering::SeqCst);
        self.requests.lock().unwrap().clear();
    }

    /// Requests seen since the last reset whose line starts with `prefix`.
    fn seen(&self, prefix: &str) -> Vec<String> {
        let r = self.requests.lock().unwrap();
        r.iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }
}

impl Drop for SlowProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(mut c: TcpStream, upstream: u16, n: &Counts) {
    c.set_nonblocking(false).unwrap();
    let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    // The request head, then anything after it, passed on as it comes.
    let mut head: Vec<u8> = Vec::new();
    let mut buf = [0u8; 32 * 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n")
        && head.first().is_none_or(|b| b.is_ascii_uppercase())
    {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(k) => head.extend_from_slice(&buf[..k]),
        }
    }
    // A TLS hello (the HTTPS try of an insecure registry): answered as an
    // HTTP server does, so the client falls back to HTTP at once.
    if !head[0].is_ascii_uppercase() {
        let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        return;
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let first = text.lines().next().unwrap_or("").to_string();
    let range = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("content-range:"))
        .map(|l| format!(" [{}]", l[14..].trim()))
        .unwrap_or_default();
    n.requests.lock().unwrap().push(format!("{first}{range}"));
    let blob = first.starts_with("GET /v2/") && first.contains("/blobs/sha256:");
    let upload = (first.starts_with("PUT ") || first.starts_with("PATCH "))
        && first.contains("/blobs/uploads/")
        && !text.to_ascii_lowercase().contains("content-length: 0\r\n");
    if up.write_all(&head).is_err() {
        return;
    }
    if upload {
        let now = n.up_active.fetch_add(1, Ordering::SeqCst) + 1;
        n.up_peak.fetch_max(now, Ordering::SeqCst);
    }
    let (mut c2, mut up2) = (c.try_clone().unwrap(), up.try_clone().unwrap());
    let body = std::thread::spawn(move || {
        let mut b = [0u8; 32 * 1024];
        loop {
            match c2.read(&mut b) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    if up2.write_all(&b[..k]).is_err() {
                        break;
                    }
                }
            }
            if upload {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = up2.shutdown(Shutdown::Write);
    });
    if blob {
        n.gets.fetch_add(1, Ordering::SeqCst);
        let now = n.active.fetch_add(1, Ordering::SeqCst) + 1;
        n.peak.fetch_max(now, Ordering::SeqCst);
    }
    let mut passed = 0u64;
    loop {
        let want = match (blob, n.cut_every) {
            (true, Some(cut)) => buf.len().min((cut - passed) as usize),
            _ => buf.len(),
        };
        match up.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(k) => {
                if c.write_all(&buf[..k]).is_err() {
                    break;
                }
                if blob {
                    passed += k as u64;
                    n.fetched.fetch_add(k as u64, Ordering::SeqCst);
                }
            }
        }
        if blob && n.cut_every.is_some_and(|cut| passed >= cut) {
            break;
        }
        if blob && n.throttle {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    if blob {
        n.active.fetch_sub(1, Ordering::SeqCst);
    }
    if upload {
        n.up_active.fetch_sub(1, Ordering::SeqCst);
    }
    let _ = c.shutdown(Shutdown::Both);
    let _ = body.join();
}

/// Five 1 MiB layers through the slow proxy: three downloads in flight, the
/// other two shown `Waiting`, the bars interleaved; with
/// `max-concurrent-downloads` 1, one at a time.
#[test]
fn several_blobs_in_flight_and_the_limit() {
    let reg = Registry::start();
    let layers: Vec<Vec<u8>> = (0..5)
        .map(|i| layer_tar(&format!("f{i}.bin"), &random(1 << 20)))
        .collect();
    let id = push_image(&reg, "five", "latest", &layers);
    let proxy = SlowProxy::start(reg.port);
    let ph = proxy.host();

    let d = Daemon::start();
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromImage={ph}/five&tag=latest"),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = messages(&r.text());
    assert!(msgs.iter().all(|m| m.get("error").is_none()), "{msgs:?}");
    // The daemon's own stream: at most three layers between their first
    // "Downloading" and their "Download complete", and three at some point.
    let mut open: Vec<&str> = Vec::new();
    let mut most = 0;
    for m in &msgs {
        let id = m["id"].as_str().unwrap_or("");
        if m["status"] == "Downloading" && !open.contains(&id) {
            open.push(id);
        } else if m["status"] == "Download complete" {
            open.retain(|&x| x != id);
        }
        most = most.max(open.len());
    }
    assert_eq!(most, 3, "{msgs:?}");
    // At the proxy, a connection counts until it sees the registry's end,
    // which can lag the client's next request by a moment: one over.
    let peak = proxy.peak.load(Ordering::SeqCst);
    assert!((3..=4).contains(&peak), "peak {peak}: {msgs:?}");
    // The config and five layers, each fetched once.
    assert_eq!(proxy.blob_gets.load(Ordering::SeqCst), 6);
    let waiting: Vec<&Value> = msgs.iter().filter(|m| m["status"] == "Waiting").collect();
    assert_eq!(waiting.len(), 2, "{msgs:?}");
    // Interleaved: before the first download completes, bars of several
    // layers have been drawn.
    let first_done = msgs
        .iter()
        .position(|m| m["status"] == "Download complete")
        .expect("a download completes");
    let mut ids: Vec<&str> = msgs[..first_done]
        .iter()
        .filter(|m| m["status"] == "Downloading")
        .filter_map(|m| m["id"].as_str())
        .collect();
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 2, "not interleaved: {msgs:?}");
    // Extraction keeps the manifest's order.
    let extracted: Vec<&str> = msgs
        .iter()
        .filter(|m| m["status"] == "Pull complete")
        .filter_map(|m| m["id"].as_str())
        .collect();
    let order: Vec<String> = layers.iter().map(|l| sha(l)[7..19].to_string()).collect();
    assert_eq!(extracted, order);
    let o = d.docker(&["image", "inspect", "-f", "{{.Id}}", &format!("{ph}/five")]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        id,
        "{}",
        text(&o)
    );
    assert!(
        std::fs::read_dir(d.data_root.join("image/downloads"))
            .map_or(true, |mut r| r.next().is_none()),
        "partial files left"
    );

    // The limit from the command line: one at a time.
    proxy.reset();
    let d1 = Daemon::start_with(&["--max-concurrent-downloads", "1"], false);
    let o = d1.docker(&["pull", &format!("{ph}/five")]);
    assert!(o.status.success(), "{}", text(&o));
    let peak = proxy.peak.load(Ordering::SeqCst);
    assert!((1..=2).contains(&peak), "peak {peak} with a limit of 1");
    assert_eq!(proxy.blob_gets.load(Ordering::SeqCst), 6);
}

/// Docker Hub's mirrors, in order: one that refuses connections, one without
/// the image, then one with it. Docker Hub itself is never reached (the
/// third mirror serves the image). `/info` shows them as dockerd does.
#[test]
fn mirrors_are_tried_in_order_and_shown_in_info() {
    let empty = Registry::start();
    let full = Registry::start();
    let layer = layer_tar("hello.txt", b"from the mirror\n");
    let id = push_image(&full, "library/mirrored", "latest", &[layer]);
    let closed = free_port();
    let mirrors = [
        format!("http://127.0.0.1:{closed}"),
        format!("http://{}/", empty.host()),
        format!("http://{}", full.host()),
    ];
    let config = json!({
        "registry-mirrors": mirrors,
        "insecure-registries": ["10.99.0.0/16", "reg.lan:5000"],
    });
    let d = Daemon::with_config_and_busybox(&config.to_string());
    let o = d.docker(&["pull", "mirrored"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.contains("Status: Downloaded newer image for mirrored:latest"),
        "{out}"
    );
    let o = d.docker(&["image", "inspect", "mirrored"]);
    assert!(o.status.success(), "{}", text(&o));
    let img: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(img[0]["Id"], json!(id));
    assert_eq!(img[0]["RepoTags"], json!(["mirrored:latest"]));
    let digests = img[0]["RepoDigests"].as_array().unwrap();
    assert!(
        digests[0].as_str().unwrap().starts_with("mirrored@sha256:"),
        "{digests:?}"
    );
    let log = d.log_text();
    assert!(
        log.contains(&format!("from mirror http://127.0.0.1:{closed}/")),
        "first mirror not tried: {log}"
    );
    assert!(
        log.contains(&format!("from mirror http://{}/", empty.host())),
        "second mirror not tried: {log}"
    );

    let info = d.request_bytes("GET", "/info", &[], None);
    assert_eq!(info.status, 200);
    let v: Value = serde_json::from_slice(&info.body).unwrap();
    let rc = &v["RegistryConfig"];
    let shown: Vec<String> = vec![
        format!("http://127.0.0.1:{closed}/"),
        format!("http://{}/", empty.host()),
        format!("http://{}/", full.host()),
    ];
    assert_eq!(rc["Mirrors"], json!(shown), "{rc}");
    assert_eq!(rc["IndexConfigs"]["docker.io"]["Mirrors"], json!(shown));
    assert_eq!(rc["IndexConfigs"]["docker.io"]["Official"], json!(true));
    assert_eq!(
        rc["IndexConfigs"]["reg.lan:5000"],
        json!({"Name": "reg.lan:5000", "Mirrors": [], "Secure": false, "Official": false})
    );
    assert_eq!(
        rc["InsecureRegistryCIDRs"],
        json!(["10.99.0.0/16", "127.0.0.0/8", "::1/128"])
    );
    // The CLI shows them too.
    let o = d.docker(&["info"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("Registry Mirrors:"), "{out}");
    assert!(out.contains(&shown[2]), "{out}");

    // A bad mirror is refused at start-up in dockerd's words.
    let empty_config = d.dir.join("empty.json");
    std::fs::write(&empty_config, "{}").unwrap();
    let o = Command::new(common::binary())
        .args(["--registry-mirror", "ftp://m.lan", "--config-file"])
        .arg(&empty_config)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains("invalid mirror: unsupported scheme \"ftp\" in \"ftp://m.lan\""),
        "{err}"
    );
}

fn count(out: &str, what: &str) -> usize {
    out.lines().filter(|l| l.contains(what)).count()
}

/// Pushes: a layer pulled from one repository is mounted into another of
/// the same registry (nothing compressed or sent); to a second registry
/// the layers are compressed and uploaded, two at a time
/// (`--max-concurrent-uploads 2`), the 9 MiB one in chunks (`PATCH` with
/// `Content-Range`); a second push of the same image `HEAD`s the known
/// blobs and compresses nothing; the image pulled back is the same.
#[test]
fn pushes_mount_chunk_and_skip_known_layers() {
    let reg = Registry::start();
    let reg2 = Registry::start();
    let layers = vec![
        layer_tar("a.bin", &random(1 << 20)),
        layer_tar("b.bin", &random(1 << 20)),
        layer_tar("c.bin", &random(9 << 20)),
    ];
    push_image(&reg, "src/img", "v1", &layers);
    let p1 = SlowProxy::start(reg.port);
    let p2 = SlowProxy::start(reg2.port);
    let (h1, h2) = (p1.host(), p2.host());
    let d = Daemon::start_with(&["--max-concurrent-uploads", "2"], false);
    let o = d.docker(&["pull", &format!("{h1}/src/img:v1")]);
    assert!(o.status.success(), "{}", text(&o));
    let id = d.docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Id}}",
        &format!("{h1}/src/img:v1"),
    ]);
    let id = String::from_utf8_lossy(&id.stdout).trim().to_string();

    // Another repository of the same registry: mounted.
    p1.reset();
    let dst = format!("{h1}/dst/img:v1");
    assert!(d
        .docker(&["tag", &format!("{h1}/src/img:v1"), &dst])
        .status
        .success());
    let o = d.docker(&["push", &dst]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(count(&out, "Mounted from src/img"), 3, "{out}");
    assert_eq!(count(&d.log_text(), "compressing layer"), 0);
    let mounts = p1.seen("POST /v2/dst/img/blobs/uploads/?mount=");
    assert_eq!(mounts.len(), 3, "{:?}", p1.seen(""));
    // Only the config goes up.
    assert!(p1.seen("PATCH").is_empty());
    assert_eq!(
        p1.seen("PUT /v2/dst/img/blobs").len(),
        1,
        "{:?}",
        p1.seen("")
    );
    for l in &layers {
        let (st, _, _) = reg.exchange("HEAD", &format!("/v2/dst/img/blobs/{}", sha(l)), &[], b"");
        assert_eq!(st, 200);
    }

    // Another registry: compressed and uploaded, two at a time, the big
    // layer in chunks.
    let other = format!("{h2}/other/img:v1");
    assert!(d.docker(&["tag", &dst, &other]).status.success());
    let r = d.request_bytes(
        "POST",
        &format!("/images/{h2}/other/img/push?tag=v1"),
        &[("X-Registry-Auth", "e30=")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let msgs = messages(&r.text());
    assert!(msgs.iter().all(|m| m.get("error").is_none()), "{msgs:?}");
    assert_eq!(
        msgs.iter().filter(|m| m["status"] == "Pushed").count(),
        3,
        "{msgs:?}"
    );
    assert_eq!(
        msgs.iter().filter(|m| m["status"] == "Waiting").count(),
        1,
        "{msgs:?}"
    );
    assert_eq!(count(&d.log_text(), "compressing layer"), 3);
    assert_eq!(p2.up_peak.load(Ordering::SeqCst), 2, "{:?}", p2.seen(""));
    let patches = p2.seen("PATCH");
    assert_eq!(patches.len(), 2, "{:?}", p2.seen(""));
    assert!(
        patches[0].ends_with(&format!("[0-{}]", (8 << 20) - 1)),
        "{patches:?}"
    );
    assert!(
        patches[1].contains(&format!("[{}-", 8 << 20)),
        "{patches:?}"
    );

    // Again: the known blobs are HEADed, nothing compressed or sent.
    p2.reset();
    let o = d.docker(&["push", &other]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(count(&out, "Layer already exists"), 3, "{out}");
    assert_eq!(count(&d.log_text(), "compressing layer"), 3);
    assert!(
        p2.seen("POST").is_empty() && p2.seen("PATCH").is_empty(),
        "{:?}",
        p2.seen("")
    );

    // Pulled back from the second registry: the same image.
    let o = d.docker(&["rmi", &other, &dst, &format!("{h1}/src/img:v1")]);
    assert!(o.status.success(), "{}", text(&o));
    let o = d.docker(&["pull", &other]);
    assert!(o.status.success(), "{}", text(&o));
    let back = d.docker(&["image", "inspect", "-f", "{{.Id}}", &other]);
    assert_eq!(String::from_utf8_lossy(&back.stdout).trim(), id);
}

/// Start-up keeps what a resume needs and drops the rest: a pull killed
/// after its first layer leaves a record (holding that layer); a restart
/// keeps it, and removes a push's leftover temporary and a partial blob an
/// older version left (pulls no longer store blobs); once the record is
/// older than a day a restart drops it, and the layer with it. A record
/// whose image is complete goes at once.
#[test]
fn startup_sweeps_abandoned_pulls_and_keeps_fresh_ones() {
    let reg = Registry::start();
    let small = layer_tar("small.bin", &random(64 << 10));
    let big = layer_tar("big.bin", &random(4 << 20));
    let id = push_image(&reg, "two", "latest", &[small.clone(), big.clone()]);
    let proxy = SlowProxy::start(reg.port);
    let ph = proxy.host();
    let mut d = Daemon::with_config_and_busybox(r#"{"max-concurrent-downloads": 1}"#);
    let image = d.data_root.join("image");
    let layer1 = image.join("layers").join(&sha(&small)[7..]);
    let record = image.join("pulls").join(format!("{}.json", &id[7..]));

    let mut curl = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--unix-socket"])
        .arg(&d.sock)
        .args(["-X", "POST"])
        .arg(format!(
            "http://d/images/create?fromImage={ph}/two&tag=latest"
        ))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !layer1.join("layer.json").is_file() {
        assert!(Instant::now() < deadline, "the pull did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    d.kill9();
    let _ = curl.wait();
    let downloads = image.join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    let leftover = downloads.join(".tmp-999-push-0");
    std::fs::write(&leftover, b"compressed").unwrap();
    let partial = downloads.join(format!("{}.partial", &sha(&big)[7..]));
    std::fs::write(&partial, &big[..1 << 20]).unwrap();

    d.restart();
    d.wait_serving();
    assert!(record.is_file(), "a fresh record goes");
    assert!(layer1.join("layer.json").is_file(), "a held layer goes");
    assert!(!partial.exists(), "an old version's partial stays");
    assert!(!leftover.exists(), "a push's leftover stays");
    assert!(d
        .log_text()
        .contains("0 finished or abandoned pull records, 1 partial blobs of an older version, 1 push leftovers"));

    d.kill9();
    let st = Command::new("touch")
        .args(["-d", "3 days ago"])
        .arg(&record)
        .status()
        .unwrap();
    assert!(st.success());
    d.restart();
    d.wait_serving();
    assert!(!record.exists(), "an abandoned record stays");
    assert!(!layer1.exists(), "the abandoned pull's layer stays");
    assert!(d
        .log_text()
        .contains("1 finished or abandoned pull records, 0 partial blobs"));

    // A record whose image is complete: gone at the next start.
    let o = d.docker(&["pull", &format!("{ph}/two")]);
    assert!(o.status.success(), "{}", text(&o));
    let ids = json!([sha(&small), sha(&big)]).to_string();
    std::fs::write(&record, ids).unwrap();
    d.kill9();
    d.restart();
    d.wait_serving();
    assert!(!record.exists(), "a finished pull's record stays");
    let o = d.docker(&["image", "inspect", "-f", "{{.Id}}", &format!("{ph}/two")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
}

/// A pull of `count` random layers of `each` bytes through a proxy that
/// cuts every blob response after `cut` bytes: it completes, fetching
/// under 1.1x the image (a cut resumes with `Range`). Then, through a slow
/// proxy, one blob at a time, a kill -9 of the daemon once each pull has
/// fetched `kills[i]` bytes, a restart, a consistent store (no image, no
/// temporaries, every layer whole, no finished layer lost: a kill loses
/// only the layer in flight, which streams into its directory); a last
/// pull fetches only the layers still missing.
fn cuts_and_kills(each: usize, count: usize, cut: u64, kills: &[u64]) {
    let reg = Registry::start();
    let layers: Vec<Vec<u8>> = (0..count)
        .map(|i| layer_tar(&format!("l{i}.bin"), &random(each)))
        .collect();
    let total: u64 = layers.iter().map(|l| l.len() as u64).sum();
    let blobs: Vec<(String, u64)> = layers.iter().map(|l| (sha(l), l.len() as u64)).collect();
    let id = push_image(&reg, "big", "latest", &layers);
    drop(layers);

    let cutting = SlowProxy::start_with(reg.port, Some(cut), false);
    let d = Daemon::start();
    let name = format!("{}/big:latest", cutting.host());
    let started = Instant::now();
    let o = d.docker(&["pull", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let fetched = cutting.fetched.load(Ordering::SeqCst);
    eprintln!(
        "pull of {total} bytes cut every {cut}: {fetched} fetched in {:?}",
        started.elapsed()
    );
    assert!(
        fetched as f64 <= total as f64 * 1.1,
        "fetched {fetched} for {total}"
    );
    let cuts = cutting.seen("GET").len();
    assert!(cuts as u64 >= total / cut, "only {cuts} requests");
    let o = d.docker(&["image", "inspect", "-f", "{{.Id}}", &name]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    drop(d);

    let slow = SlowProxy::start_with(reg.port, None, true);
    let ph = slow.host();
    let mut d = Daemon::start();
    std::fs::write(
        d.dir.join("daemon.json"),
        r#"{"max-concurrent-downloads": 1}"#,
    )
    .unwrap();
    d.kill9();
    d.restart();
    let root = d.data_root.join("image");
    let kept = |root: &std::path::Path| -> Vec<usize> {
        (0..blobs.len())
            .filter(|&k| {
                root.join("layers")
                    .join(&blobs[k].0[7..])
                    .join("layer.json")
                    .is_file()
            })
            .collect()
    };
    let mut before: Vec<usize> = Vec::new();
    for (i, at) in kills.iter().enumerate() {
        let start = slow.fetched.load(Ordering::SeqCst);
        let mut curl = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--unix-socket"])
            .arg(&d.sock)
            .args(["-X", "POST"])
            .arg(format!(
                "http://d/images/create?fromImage={ph}/big&tag=latest"
            ))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while slow.fetched.load(Ordering::SeqCst) - start < *at {
            assert!(Instant::now() < deadline, "kill {i}: the pull stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
        d.kill9();
        let _ = curl.wait();
        d.restart();
        d.wait_serving();
        let o = d.docker(&["images", "-q"]);
        assert!(o.stdout.is_empty(), "kill {i}: {}", text(&o));
        for e in std::fs::read_dir(root.join("layers")).unwrap().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            assert!(!n.starts_with(".tmp"), "kill {i}: leftover {n}");
            assert!(
                e.path().join("layer.json").is_file(),
                "kill {i}: {n} incomplete"
            );
        }
        assert_eq!(std::fs::read_dir(root.join("configs")).unwrap().count(), 0);
        let now = kept(&root);
        assert!(
            before.iter().all(|k| now.contains(k)),
            "kill {i}: a finished layer was lost: {before:?} then {now:?}"
        );
        before = now;
    }
    assert!(!before.is_empty(), "no kill came after a finished layer");
    let missing: u64 = (0..blobs.len())
        .filter(|k| !before.contains(k))
        .map(|k| blobs[k].1)
        .sum();
    slow.reset();
    let start = slow.fetched.load(Ordering::SeqCst);
    let o = d.docker(&["pull", &format!("{ph}/big:latest")]);
    assert!(o.status.success(), "final pull: {}", text(&o));
    let o = d.docker(&["image", "inspect", "-f", "{{.Id}}", &format!("{ph}/big")]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    let last = slow.fetched.load(Ordering::SeqCst) - start;
    let fetched = slow.fetched.load(Ordering::SeqCst);
    eprintln!(
        "{} kills: {fetched} bytes fetched for {total}; the last pull {last} for {missing} missing",
        kills.len()
    );
    assert!(
        (missing..missing + (64 << 10)).contains(&last),
        "the last pull fetched {last} bytes for {missing} missing"
    );
    let gets = slow.seen("GET");
    for k in &before {
        assert!(
            !gets.iter().any(|g| g.contains(&blobs[*k].0)),
            "finished layer {k} fetched again: {gets:?}"
        );
    }
    let dl = d.data_root.join("image/downloads");
    assert_eq!(std::fs::read_dir(&dl).map_or(0, |r| r.count()), 0);
}

/// The small, always-on version: 3 x 2 MiB cut every 512 KiB; two kills,
/// the second after the first layer.
#[test]
fn cuts_and_kills_small() {
    cuts_and_kills(2 << 20, 3, 512 << 10, &[1 << 20, 3 << 20]);
}

/// The issue's check (CORACLE_SLOW_TESTS=1): 100 MiB in ten layers cut
/// every 3 MiB, then ten kills during pulls (each after one more layer).
#[test]
fn cuts_and_kills_100mib() {
    if std::env::var("CORACLE_SLOW_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set CORACLE_SLOW_TESTS=1");
        return;
    }
    let mut kills = vec![12u64 << 20; 9];
    kills.push(5 << 20);
    cuts_and_kills(10 << 20, 10, 3 << 20, &kills);
}
