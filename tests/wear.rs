//! Flash wear: what the daemon (and the workers it reaps) writes to disk,
//! from `write_bytes` in /proc/PID/io (bytes the process sent toward the
//! block layer, a reaped child's included). The daemon runs at log level
//! `error`, so its log adds nothing and every byte counted is store work.
//! - A pull from a local `docker-registry` writes about one byte per byte
//!   of image: each blob streams through its digest check into the layer
//!   directory, no compressed copy is stored (dockerd and the older
//!   coracle wrote 2.0x: the blob to a partial file, then the layer).
//! - An idle daemon with a running container writes nothing.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{children_of, Daemon};
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// Bytes `pid` has caused to be written to storage.
fn write_bytes(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/PID/io")
}

/// `n` bytes that do not compress (xorshift; no two calls alike).
fn random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// A gzip layer of one file of `data`, and its diff ID.
fn gzip_layer(name: &str, data: &[u8]) -> (Vec<u8>, String) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
    let raw = b.into_inner().unwrap();
    let diff_id = format!("sha256:{:x}", Sha256::digest(&raw));
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Wait until the daemon has reaped every child (the pull worker).
fn no_children(d: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !children_of(d.pid()).is_empty() {
        assert!(Instant::now() < deadline, "a worker outlived its job");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An 8 MiB image in two gzip layers: the pull writes under 1.2x its
/// compressed size (plus 512 KiB for the records: config, tar-split
/// skeletons, layer metadata, pull record, journal, tags, each a few pages).
#[test]
fn a_pull_writes_each_byte_once() {
    let reg = Registry::start();
    let layers = vec![
        gzip_layer("one.bin", &random(4 << 20)),
        gzip_layer("two.bin", &random(4 << 20)),
    ];
    let compressed: u64 = layers.iter().map(|(gz, _)| gz.len() as u64).sum();
    let id = reg.push_gzip_image("wear/big", "latest", &layers);
    drop(layers);

    let d = Daemon::start_with(&["--log-level", "error"], false);
    let pid = d.pid();
    let name = format!("{}/wear/big:latest", reg.host());
    let before = write_bytes(pid);
    let o = d.docker(&["pull", &name]);
    assert!(
        o.status.success(),
        "pull: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    no_children(&d);
    let written = write_bytes(pid) - before;
    let o = d.docker(&["image", "inspect", "-f", "{{.Id}}", &name]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), id);
    let ratio = written as f64 / compressed as f64;
    eprintln!("pull of {compressed} compressed bytes wrote {written} ({ratio:.2}x)");
    let limit = compressed * 12 / 10 + (512 << 10);
    assert!(
        written < limit,
        "the pull wrote {written} bytes for {compressed} ({ratio:.2}x; limit {limit})"
    );
    // Not nothing either: the layers are on disk.
    assert!(written >= compressed * 9 / 10, "wrote only {written}");
    let dl = d.data_root.join("image/downloads");
    assert_eq!(std::fs::read_dir(&dl).map_or(0, |r| r.count()), 0);
}

/// A daemon with one running container (no output, no healthcheck, no
/// restart policy) writes nothing in 10 s: no periodic timer persists state.
#[test]
fn an_idle_daemon_writes_nothing() {
    let mut d = Daemon::start_with(&["--log-level", "error"], false);
    d.load_busybox();
    let o = d.docker(&["run", "-d", "--name", "idle", "busybox", "sleep", "600"]);
    assert!(
        o.status.success(),
        "run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = d.docker(&["inspect", "-f", "{{.State.Running}}", "idle"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "true");
    // Let the start's own writes (and its reaped workers) settle.
    std::thread::sleep(Duration::from_millis(500));
    let pid = d.pid();
    let before = write_bytes(pid);
    std::thread::sleep(Duration::from_secs(10));
    let written = write_bytes(pid) - before;
    assert_eq!(written, 0, "an idle daemon wrote {written} bytes in 10 s");
    let o = d.docker(&["inspect", "-f", "{{.State.Running}}", "idle"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "true");
}
