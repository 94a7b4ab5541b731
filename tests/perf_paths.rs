//! The fast data paths still carry every byte: large attach reads (TTY and
//! multiplexed) deliver exactly what the container wrote, a slow reader keeps
//! the daemon's memory bounded, and a load that hashes a plain layer once still
//! verifies it (DiffID against the config, blob digest against an OCI manifest).
//!
//! No timings are asserted here (they flake on a shared machine): the speed is
//! measured by `scripts/bench.sh` against the floors of `scripts/bench-io-floor.sh`.

mod common;

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::raw_api::{attach, create, demux, start, wait_exit};
use common::Daemon;
use serde_json::json;
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// Seeded pseudo-random bytes (xorshift): every byte value, no line structure.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_data(d: &Daemon, name: &str, data: &[u8]) -> String {
    let dir = d.dir.join("data");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
    dir.display().to_string()
}

/// 64 MiB of arbitrary bytes through a multiplexed attach and 32 MiB through
/// a raw TTY attach (`stty raw`: no output processing), each identical to
/// what the container wrote (log driver none: the pump and the connection,
/// not the disk, are under test, and CI stays fast); then a slow reader of
/// 8 MiB with the json-file log, whose daemon memory stays bounded while the
/// container outruns it.
#[test]
fn large_attach_delivers_every_byte_and_a_slow_reader_stays_bounded() {
    let d = Daemon::with_busybox();

    // Multiplexed: stdout and stderr, the bulk on stdout.
    let big = noise(64 << 20, 0x5eed_0001);
    let dir = write_data(&d, "big.bin", &big);
    create(
        &d,
        "mux",
        &json!({"Image": "busybox", "Cmd": ["sh", "-c", "cat /data/big.bin; echo done >&2"],
                "AttachStdout": true, "AttachStderr": true, "Tty": false,
                "HostConfig": {"Binds": [format!("{dir}:/data:ro")],
                               "LogConfig": {"Type": "none", "Config": {}}}}),
    );
    let (mut s, mut raw) = attach(&d, "mux");
    start(&d, "mux");
    s.read_to_end(&mut raw)
        .expect("read the multiplexed attach");
    let (out, err) = demux(&raw);
    assert_eq!(out.len(), big.len(), "stdout length through attach");
    assert_eq!(sha256(&out), sha256(&big), "stdout bytes through attach");
    assert_eq!(err, b"done\n", "stderr through attach");
    assert_eq!(wait_exit(&d, "mux"), 0);

    // TTY: the raw pty stream, no framing.
    let tty = noise(32 << 20, 0x5eed_0002);
    write_data(&d, "tty.bin", &tty);
    create(
        &d,
        "tty",
        &json!({"Image": "busybox",
                "Cmd": ["sh", "-c", "stty raw -echo; printf S; cat /data/tty.bin; printf E"],
                "AttachStdout": true, "AttachStderr": true, "Tty": true,
                "HostConfig": {"Binds": [format!("{dir}:/data:ro")],
                               "LogConfig": {"Type": "none", "Config": {}}}}),
    );
    let (mut s, mut raw) = attach(&d, "tty");
    start(&d, "tty");
    s.read_to_end(&mut raw).expect("read the TTY attach");
    // The shell may write nothing before `stty raw` takes effect; the
    // markers delimit the payload.
    let from = raw.iter().position(|&b| b == b'S').expect("start marker") + 1;
    assert_eq!(raw.last(), Some(&b'E'), "end marker");
    let got = &raw[from..raw.len() - 1];
    assert_eq!(got.len(), tty.len(), "TTY payload length through attach");
    assert_eq!(
        sha256(got),
        sha256(&tty),
        "TTY payload bytes through attach"
    );
    assert_eq!(wait_exit(&d, "tty"), 0);

    // A slow reader: 8 MiB read in 64 KiB sips; the container is throttled
    // (its pipe left unread), not buffered in the daemon.
    let slow = noise(8 << 20, 0x5eed_0003);
    write_data(&d, "slow.bin", &slow);
    create(
        &d,
        "slow",
        &json!({"Image": "busybox", "Cmd": ["cat", "/data/slow.bin"],
                "AttachStdout": true, "AttachStderr": true, "Tty": false,
                "HostConfig": {"Binds": [format!("{dir}:/data:ro")]}}),
    );
    let (mut s, mut raw) = attach(&d, "slow");
    start(&d, "slow");
    let pid = d.pid();
    let base = common::vm_rss_kib(pid).expect("daemon VmRSS");
    let mut max_rss = base;
    let mut chunk = vec![0u8; 64 * 1024];
    let t0 = Instant::now();
    loop {
        let n = s.read(&mut chunk).expect("slow read");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&chunk[..n]);
        let rss = common::vm_rss_kib(pid).expect("daemon alive");
        max_rss = max_rss.max(rss);
        std::thread::sleep(Duration::from_millis(2));
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "slow read took too long"
        );
    }
    eprintln!("slow attach reader: daemon VmRSS start {base} KiB, max {max_rss} KiB");
    assert!(
        max_rss < base + 16 * 1024,
        "daemon VmRSS grew from {base} KiB to {max_rss} KiB for one slow reader"
    );
    let (out, _) = demux(&raw);
    assert_eq!(sha256(&out), sha256(&slow), "slow reader's bytes");
    assert_eq!(wait_exit(&d, "slow"), 0);
}

// ------------------------------------------------------------------ loads

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0w$o}", w = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], data.len() as u64);
    octal(&mut h[136..148], 1_700_000_000);
    h[148..156].copy_from_slice(b"        ");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut v = h.to_vec();
    v.extend_from_slice(data);
    v.resize(v.len().div_ceil(512) * 512, 0);
    v
}

fn tar(parts: Vec<Vec<u8>>) -> Vec<u8> {
    let mut v = parts.concat();
    v.resize(v.len() + 1024, 0);
    v
}

fn config_for(diff_id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-02T03:04:05Z",
        "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap()
}

/// An OCI layout archive of one image whose single layer blob is stored
/// uncompressed; `layer_digest` is what the manifest claims for it.
fn oci_archive(layer: &[u8], layer_digest: &str, config: &[u8], tag: &str) -> Vec<u8> {
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": sha256(&manifest), "size": manifest.len(),
                       "annotations": {"io.containerd.image.name": tag}}],
    }))
    .unwrap();
    tar(vec![
        file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        file(&blob(layer_digest), layer),
        file(&blob(&sha256(config)), config),
        file(&blob(&sha256(&manifest)), &manifest),
        file("index.json", &index),
    ])
}

fn docker_save_archive(layer: &[u8], config: &[u8], tag: &str) -> Vec<u8> {
    let cfg = format!("{}.json", sha256(config).trim_start_matches("sha256:"));
    let lp = "0123456789abcdef/layer.tar";
    let manifest =
        serde_json::to_vec(&json!([{"Config": cfg, "RepoTags": [tag], "Layers": [lp]}])).unwrap();
    tar(vec![
        file(&cfg, config),
        file(lp, layer),
        file("manifest.json", &manifest),
    ])
}

fn load(d: &Daemon, archive: &[u8], name: &str) -> std::process::Output {
    let p = d.dir.join(name);
    std::fs::write(&p, archive).unwrap();
    d.docker(&["load", "-i", p.to_str().unwrap()])
}

fn image_ids(d: &Daemon) -> Vec<String> {
    let r = d.request("GET", "/images/json", None);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()
        .as_array()
        .expect("image list")
        .iter()
        .filter_map(|i| i["Id"].as_str().map(str::to_string))
        .collect()
}

fn layer_dirs(root: &Path) -> usize {
    std::fs::read_dir(root.join("image").join("layers"))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// A plain (uncompressed) layer is hashed once, as its blob and its DiffID:
/// both checks still hold, and a good archive loads with the right IDs.
#[test]
fn plain_layers_hashed_once_are_still_verified() {
    let d = Daemon::start();
    let layer = tar(vec![
        file("hello.txt", b"hello\n"),
        file("data.bin", &noise(300_000, 7)),
    ]);
    let good = sha256(&layer);
    let wrong = sha256(b"not this layer");

    // docker-save: the config's DiffID must match the layer.
    let o = load(
        &d,
        &docker_save_archive(&layer, &config_for(&wrong), "t/bad-diff:1"),
        "a.tar",
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "a wrong DiffID must be refused");
    assert!(err.contains("invalid diffID for layer 0"), "{err}");

    // OCI: the manifest's blob digest must match the (uncompressed) blob.
    let o = load(
        &d,
        &oci_archive(&layer, &wrong, &config_for(&good), "t/bad-blob:1"),
        "b.tar",
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success(), "a wrong blob digest must be refused");
    assert!(
        err.contains("not found in archive") || err.contains("digest mismatch"),
        "{err}"
    );
    assert!(image_ids(&d).is_empty(), "refused loads left images");
    assert_eq!(layer_dirs(&d.data_root), 0, "refused loads left layers");

    // Good ones load, in both formats, with the image ID of the config.
    let cfg = config_for(&good);
    let o = load(&d, &oci_archive(&layer, &good, &cfg, "t/oci:1"), "c.tar");
    assert!(
        o.status.success(),
        "OCI load: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = load(&d, &docker_save_archive(&layer, &cfg, "t/save:1"), "d.tar");
    assert!(
        o.status.success(),
        "docker-save load: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(image_ids(&d), vec![sha256(&cfg)]);
    let r = d.request("GET", "/images/t/save:1/json", None);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["RootFS"]["Layers"], json!([good]));
    assert_eq!(layer_dirs(&d.data_root), 1);
}
