//! The image store through the real docker CLI and raw HTTP: load (three
//! archive formats), list and filters, history, tag, remove, prune, save,
//! import (file, stdin, URL), hostile archives, streaming large loads,
//! kill -9 in the middle of a load, events and `docker info`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::fixture;
use common::{children_of, parse_raw_response, proc_alive, vm_rss_kib, Daemon};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The engine's ID for the crafted and docker-save fixtures.
const ID_DOCKER: &str = "sha256:9705ad965a3f75c33785304203b41fd1bc368f68c5383d06ff173647f419539e";
/// The OCI fixture's config blob was re-serialised by skopeo: other bytes, other ID.
const ID_OCI: &str = "sha256:71d4305f7106dc8f8df4c7fce528e1682d078db9ce43cf13c6a3d42f78dc5603";
/// The two layers every fixture shares (DiffIDs).
const LAYER1: &str = "sha256:dd00262199cbfbab106fb13a9ef5583627e82cca71b52db43bcaec55de35a598";
const LAYER2: &str = "sha256:ec983c96d9e7e0752c8dbb3b2d72fbf7dc9b153cb5ea8867c8adc38b607d2486";
const FIXTURE_TAG: &str = "fixture/whiteouts:v1";

// ---------------------------------------------------------------- helpers

fn fixture_str(name: &str) -> String {
    fixture(name).display().to_string()
}

fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// stdout of a docker command that must succeed.
fn ok(o: Output) -> String {
    assert!(o.status.success(), "docker failed: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of a docker command that must fail.
fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "docker should have failed: {}",
        show(&o)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn set(s: &str) -> BTreeSet<String> {
    lines(s).into_iter().collect()
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = ok(d.docker(&["image", "inspect", name]));
    let v: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("inspect output is not JSON ({e}): {out}"));
    v[0].clone()
}

fn ids(d: &Daemon) -> BTreeSet<String> {
    set(&ok(d.docker(&["images", "-q", "--no-trunc"])))
}

fn layers_dir(d: &Daemon) -> PathBuf {
    d.data_root.join("image/layers")
}

fn configs_dir(d: &Daemon) -> PathBuf {
    d.data_root.join("image/configs")
}

fn names_in(dir: &Path) -> BTreeSet<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn layer_dirs(d: &Daemon) -> BTreeSet<String> {
    names_in(&layers_dir(d))
}

fn hexes(ids: &[&str]) -> BTreeSet<String> {
    ids.iter()
        .map(|i| i.trim_start_matches("sha256:").to_string())
        .collect()
}

/// Every path under `root` whose name starts with `.tmp-` (symlinks not followed).
fn tmp_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                out.push(p.clone());
            }
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p);
            }
        }
    }
    out
}

/// What must not change when a bad request is refused.
#[derive(Debug, PartialEq, Eq)]
struct StoreState {
    layers: BTreeSet<String>,
    configs: BTreeSet<String>,
    references: String,
    ids: BTreeSet<String>,
}

fn store_state(d: &Daemon) -> StoreState {
    StoreState {
        layers: layer_dirs(d),
        configs: names_in(&configs_dir(d)),
        references: fs::read_to_string(d.data_root.join("image/references.json"))
            .unwrap_or_default(),
        ids: ids(d),
    }
}

fn assert_untouched(d: &Daemon, before: &StoreState, what: &str) {
    let left = tmp_leftovers(&d.data_root);
    assert!(
        left.is_empty(),
        "{what}: temp leftovers under the data root: {left:?}"
    );
    assert_eq!(&store_state(d), before, "{what}: the image store changed");
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn until_arg() -> String {
    (unix_now() + 1).to_string()
}

// ------------------------------------------------------------ tar builders

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0w$o}", w = field.len() - 1);
    assert!(s.len() < field.len(), "{v} does not fit a tar field");
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

/// A ustar header written byte by byte, so that hostile names (`..`,
/// absolute paths) the tar crate would refuse can be built.
fn tar_header(name: &str, kind: u8, size: u64, link: &str, dev: (u64, u64)) -> [u8; 512] {
    assert!(name.len() <= 100 && link.len() <= 100);
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    let mode = if kind == b'5' { 0o755 } else { 0o644 };
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[148..156].copy_from_slice(b"        ");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    octal(&mut h[329..337], dev.0);
    octal(&mut h[337..345], dev.1);
    let sum: u64 = h.iter().map(|&b| b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn padding(len: u64) -> usize {
    ((512 - len % 512) % 512) as usize
}

fn entry(name: &str, kind: u8, data: &[u8], link: &str, dev: (u64, u64)) -> Vec<u8> {
    let mut v = tar_header(name, kind, data.len() as u64, link, dev).to_vec();
    v.extend_from_slice(data);
    v.resize(v.len() + padding(data.len() as u64), 0);
    v
}

fn file(name: &str, data: &[u8]) -> Vec<u8> {
    entry(name, b'0', data, "", (0, 0))
}

fn dir(name: &str) -> Vec<u8> {
    entry(name, b'5', b"", "", (0, 0))
}

fn tar(parts: Vec<Vec<u8>>) -> Vec<u8> {
    let mut v: Vec<u8> = parts.concat();
    v.resize(v.len() + 1024, 0);
    v
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An image config for `layers` (uncompressed layer tars).
fn config_for(diff_ids: &[String], history: &[&str], labels: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:05Z",
        "config": { "Env": ["PATH=/bin"], "Labels": labels },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": history.iter().map(|h| json!({"created": "2024-01-02T03:04:05Z", "created_by": h})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

struct ArchiveImage {
    config: Vec<u8>,
    tags: Vec<String>,
    /// Layer blobs as stored in the archive (tar or gzip'ed tar).
    layers: Vec<Vec<u8>>,
}

/// A `docker save` style archive (manifest.json, `<id>.json`, `<x>/layer.tar`).
fn save_archive(images: &[ArchiveImage]) -> Vec<u8> {
    let mut parts = Vec::new();
    let mut written = BTreeSet::new();
    let mut manifest = Vec::new();
    for img in images {
        let id = sha256(&img.config);
        let cfg_name = format!("{}.json", id.trim_start_matches("sha256:"));
        if written.insert(cfg_name.clone()) {
            parts.push(file(&cfg_name, &img.config));
        }
        let mut paths = Vec::new();
        for l in &img.layers {
            let p = format!("{}/layer.tar", sha256(l).trim_start_matches("sha256:"));
            if written.insert(p.clone()) {
                parts.push(file(&p, l));
            }
            paths.push(p);
        }
        manifest.push(json!({"Config": cfg_name, "RepoTags": img.tags, "Layers": paths}));
    }
    parts.push(file(
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    ));
    tar(parts)
}

/// A one-image archive whose single layer is `layer` (an uncompressed tar).
fn one_layer_archive(layer: Vec<u8>, tag: &str) -> Vec<u8> {
    let config = config_for(&[sha256(&layer)], &["hostile layer"], json!({}));
    save_archive(&[ArchiveImage {
        config,
        tags: vec![tag.to_string()],
        layers: vec![layer],
    }])
}

/// A small rootfs tar for `docker import`, built with the tar crate.
fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        b.append_data(&mut h, path, data).unwrap();
    };
    add("bin/", tar::EntryType::Directory, b"", None);
    add("etc/", tar::EntryType::Directory, b"", None);
    add("etc/hostname", tar::EntryType::Regular, b"imported\n", None);
    add("w/", tar::EntryType::Directory, b"", None);
    add(
        "w/readme.txt",
        tar::EntryType::Regular,
        b"hello from an imported rootfs\n",
        None,
    );
    add("bin/sh", tar::EntryType::Symlink, b"", Some("busybox"));
    b.into_inner().unwrap()
}

// ------------------------------------------------------- the big archive

/// A docker-save archive with one ~600 MiB random layer, shared by the
/// streaming and crash tests; deleted when the last user drops it.
struct BigArchive {
    path: PathBuf,
    id: String,
    size: u64,
}

impl Drop for BigArchive {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

const BIG_TAG: &str = "big/layer:1";
const BIG_LAYER_BYTES: u64 = 600 << 20;

static BIG: Mutex<Weak<BigArchive>> = Mutex::new(Weak::new());

fn big_archive() -> Arc<BigArchive> {
    let mut slot = BIG.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(a) = slot.upgrade() {
        return a;
    }
    let a = Arc::new(build_big_archive());
    *slot = Arc::downgrade(&a);
    a
}

fn build_big_archive() -> BigArchive {
    let started = Instant::now();
    let path = std::env::temp_dir().join(format!("coracle-big-{}.tar", std::process::id()));
    let mut out =
        BufWriter::with_capacity(1 << 20, File::create(&path).expect("create big archive"));
    // The layer comes first (as in a streamed save), config and manifest last.
    let layer_len = 512 + BIG_LAYER_BYTES + padding(BIG_LAYER_BYTES) as u64 + 1024;
    out.write_all(&tar_header("layer/layer.tar", b'0', layer_len, "", (0, 0)))
        .unwrap();
    let mut hasher = Sha256::new();
    let mut put = |out: &mut BufWriter<File>, data: &[u8]| {
        hasher.update(data);
        out.write_all(data).unwrap();
    };
    put(
        &mut out,
        &tar_header("blob", b'0', BIG_LAYER_BYTES, "", (0, 0)),
    );
    let mut random = File::open("/dev/urandom").expect("open /dev/urandom");
    let mut buf = vec![0u8; 1 << 20];
    let mut left = BIG_LAYER_BYTES;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        random.read_exact(&mut buf[..n]).expect("read /dev/urandom");
        put(&mut out, &buf[..n]);
        left -= n as u64;
    }
    let tail = vec![0u8; padding(BIG_LAYER_BYTES) + 1024];
    put(&mut out, &tail);
    let diff_id = format!("sha256:{}", hex(&hasher.finalize()));
    let config = config_for(&[diff_id], &["600 MiB of random bytes"], json!({}));
    let id = sha256(&config);
    out.write_all(&file(
        &format!("{}.json", id.trim_start_matches("sha256:")),
        &config,
    ))
    .unwrap();
    let manifest = json!([{"Config": format!("{}.json", id.trim_start_matches("sha256:")), "RepoTags": [BIG_TAG], "Layers": ["layer/layer.tar"]}]);
    out.write_all(&file("manifest.json", manifest.to_string().as_bytes()))
        .unwrap();
    out.write_all(&[0u8; 1024]).unwrap();
    out.flush().unwrap();
    drop(out);
    let size = fs::metadata(&path).unwrap().len();
    eprintln!(
        "built {} ({size} bytes) in {:?}",
        path.display(),
        started.elapsed()
    );
    BigArchive { path, id, size }
}

/// POST /images/load with the file as a chunked body, on its own thread.
/// Returns the raw response, or an error text if the connection broke.
fn upload_chunked(
    sock: PathBuf,
    archive: PathBuf,
    sent: Arc<AtomicU64>,
) -> thread::JoinHandle<Result<Vec<u8>, String>> {
    thread::spawn(move || {
        let mut s = UnixStream::connect(&sock).map_err(|e| format!("connect: {e}"))?;
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let head = "POST /v1.45/images/load?quiet=1 HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
        s.write_all(head.as_bytes())
            .map_err(|e| format!("send head: {e}"))?;
        let mut f = File::open(&archive).map_err(|e| format!("open archive: {e}"))?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(|e| format!("read archive: {e}"))?;
            if n == 0 {
                break;
            }
            s.write_all(format!("{n:x}\r\n").as_bytes())
                .and_then(|()| s.write_all(&buf[..n]))
                .and_then(|()| s.write_all(b"\r\n"))
                .map_err(|e| {
                    format!("send body after {} bytes: {e}", sent.load(Ordering::SeqCst))
                })?;
            sent.fetch_add(n as u64, Ordering::SeqCst);
        }
        s.write_all(b"0\r\n\r\n")
            .map_err(|e| format!("send last chunk: {e}"))?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp)
            .map_err(|e| format!("read response: {e}"))?;
        Ok(resp)
    })
}

/// Wait until a load's temp layer dir holds at least `bytes` of the blob;
/// returns the daemon's worker children at that moment.
fn wait_midway(
    d: &Daemon,
    bytes: u64,
    upload: &thread::JoinHandle<Result<Vec<u8>, String>>,
) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        assert!(
            Instant::now() < deadline,
            "the big load never got {bytes} bytes into a temp layer dir"
        );
        assert!(
            !upload.is_finished(),
            "the upload ended before the load was midway"
        );
        for e in fs::read_dir(layers_dir(d)).into_iter().flatten().flatten() {
            if !e.file_name().to_string_lossy().starts_with(".tmp-") {
                continue;
            }
            let len = fs::metadata(e.path().join("diff/blob"))
                .map(|m| m.len())
                .unwrap_or(0);
            if len >= bytes {
                return children_of(d.pid());
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on a pid we recorded as our daemon's worker.
    unsafe { libc::kill(pid, sig) };
}

fn wait_gone(pids: &[i32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if pids.iter().all(|&p| !proc_alive(p)) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

// ================================================================== tests

/// (1) Each fixture loads with the engine's ID, tags, config and the same two
/// layers; loading again does not duplicate layers.
#[test]
fn load_each_fixture_format() {
    let d = Daemon::start();
    let cases = [
        ("whiteouts-crafted.tar", ID_DOCKER),
        ("whiteouts-docker-save.tar", ID_DOCKER),
        ("whiteouts-oci.tar", ID_OCI),
    ];
    for (i, (name, want_id)) in cases.iter().enumerate() {
        let out = ok(d.docker(&["load", "-i", &fixture_str(name)]));
        let ls = lines(&out);
        assert!(
            ls.contains(&format!("Loaded image: {FIXTURE_TAG}")),
            "{name}: {out}"
        );
        if i == 0 {
            assert_eq!(
                ls,
                vec![format!("Loaded image: {FIXTURE_TAG}")],
                "{name}: first load output"
            );
        }
        let img = inspect(&d, FIXTURE_TAG);
        assert_eq!(img["Id"], *want_id, "{name}: image ID");
        assert_eq!(img["RepoTags"], json!([FIXTURE_TAG]), "{name}");
        assert_eq!(img["Config"]["WorkingDir"], "/data", "{name}");
        assert_eq!(img["Config"]["Cmd"], json!(["/bin/sh"]), "{name}");
        assert_eq!(
            img["Config"]["Labels"]["org.example.fixture"], "whiteouts",
            "{name}"
        );
        assert!(
            img["Config"]["Env"].as_array().is_some_and(|e| e
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.starts_with("PATH=")))),
            "{name}: Env {}",
            img["Config"]["Env"]
        );
        assert_eq!(img["Os"], "linux", "{name}");
        assert_eq!(img["RootFS"]["Type"], "layers", "{name}");
        assert_eq!(
            img["RootFS"]["Layers"],
            json!([LAYER1, LAYER2]),
            "{name}: all three share the two layers"
        );
        // Also by full and short ID.
        assert_eq!(inspect(&d, want_id)["Id"], *want_id);
        assert_eq!(inspect(&d, &want_id[7..19])["Id"], *want_id);
        assert_eq!(
            layer_dirs(&d),
            hexes(&[LAYER1, LAYER2]),
            "{name}: layer dirs"
        );
    }
    // The OCI load moved the tag: the docker-format image is dangling now.
    assert_eq!(ids(&d), set_of(&[ID_DOCKER, ID_OCI]));
    assert_eq!(
        names_in(&configs_dir(&d)),
        set_of(&[
            &format!("{}.json", &ID_DOCKER[7..]),
            &format!("{}.json", &ID_OCI[7..])
        ])
    );

    // Loading every format again adds nothing.
    for (name, _) in &cases {
        ok(d.docker(&["load", "-i", &fixture_str(name)]));
        assert_eq!(
            layer_dirs(&d),
            hexes(&[LAYER1, LAYER2]),
            "reloading {name} duplicated layers"
        );
    }
    assert_eq!(ids(&d), set_of(&[ID_DOCKER, ID_OCI]));

    // The layers on disk are real overlay lower dirs with the whiteouts applied.
    let img = inspect(&d, FIXTURE_TAG);
    let upper = PathBuf::from(
        img["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .expect("UpperDir"),
    );
    let lower = PathBuf::from(
        img["GraphDriver"]["Data"]["LowerDir"]
            .as_str()
            .expect("LowerDir"),
    );
    assert!(upper.starts_with(&d.data_root) && lower.starts_with(&d.data_root));
    assert_eq!(
        fs::read_link(lower.join("link")).unwrap(),
        Path::new("data/b.txt")
    );
    assert!(lower.join("data/a.txt").is_file() && lower.join("dir/x").is_file());
    let wh = fs::symlink_metadata(upper.join("data/a.txt")).expect("whiteout for data/a.txt");
    assert!(
        wh.file_type().is_char_device() && wh.rdev() == 0,
        "data/a.txt must be a 0/0 whiteout"
    );
    assert!(upper.join("data/c.txt").is_file() && upper.join("dir/y").is_file());
    assert!(!upper.join("dir/x").exists());
    assert!(tmp_leftovers(&d.data_root).is_empty());
}

/// (2) docker images (flags and filters), history, tag, rmi, prune, errors.
#[test]
fn list_filter_history_tag_rmi_prune() {
    let d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-oci.tar")]));
    let imp_out = ok(d.docker_with_stdin(&["import", "-", "plain/imp:1"], rootfs_tar()));
    let imp_id = imp_out.trim().to_string();
    assert!(
        imp_id.starts_with("sha256:") && imp_id.len() == 71,
        "import printed {imp_out:?}"
    );
    let imp_layer = sha256(&rootfs_tar());

    let rows = set(&ok(d.docker(&[
        "images",
        "-a",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ])));
    assert_eq!(
        rows,
        set_of(&[
            &format!("{FIXTURE_TAG} {}", &ID_OCI[7..19]),
            &format!("<none>:<none> {}", &ID_DOCKER[7..19]),
            &format!("plain/imp:1 {}", &imp_id[7..19]),
        ]),
        "docker images -a"
    );
    let digests = set(&ok(d.docker(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.Digest}}",
    ])));
    assert!(
        digests.contains(&format!("{FIXTURE_TAG} <none>")),
        "{digests:?}"
    );
    assert_eq!(
        set(&ok(d.docker(&[
            "images",
            "--filter",
            "dangling=true",
            "-q",
            "--no-trunc"
        ]))),
        set_of(&[ID_DOCKER])
    );
    assert_eq!(
        set(&ok(d.docker(&[
            "images",
            "--filter",
            "dangling=false",
            "-q",
            "--no-trunc"
        ]))),
        set_of(&[ID_OCI, &imp_id])
    );
    assert_eq!(
        set(&ok(d.docker(&[
            "images",
            "--filter",
            "label=org.example.fixture=whiteouts",
            "-q",
            "--no-trunc"
        ]))),
        set_of(&[ID_DOCKER, ID_OCI])
    );
    assert_eq!(
        ok(d.docker(&[
            "images",
            "--filter",
            "label=org.example.fixture=other",
            "-q"
        ]))
        .trim(),
        ""
    );
    assert_eq!(
        set(&ok(d.docker(&[
            "images",
            "--filter",
            "reference=fixture/*",
            "--format",
            "{{.Repository}}:{{.Tag}}"
        ]))),
        set_of(&[FIXTURE_TAG])
    );
    assert_eq!(
        ids(&d),
        set_of(&[ID_DOCKER, ID_OCI, &imp_id]),
        "docker images -q --no-trunc"
    );

    // before / since through the API (the fixtures are from 2023, the import is new).
    let q = |f: &str| -> BTreeSet<String> {
        let r = d.request("GET", &format!("/images/json?filters={}", urlenc(f)), None);
        assert_eq!(r.status, 200, "{f}: {}", r.body);
        r.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["Id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        q(r#"{"before":["plain/imp:1"]}"#),
        set_of(&[ID_DOCKER, ID_OCI])
    );
    assert_eq!(
        q(r#"{"since":["fixture/whiteouts:v1"]}"#),
        set_of(&[&imp_id])
    );
    assert_eq!(q(r#"{"reference":["plain/imp"]}"#), set_of(&[&imp_id]));
    let bad = d.request(
        "GET",
        &format!("/images/json?filters={}", urlenc(r#"{"bogus":["x"]}"#)),
        None,
    );
    assert_eq!(bad.status, 400, "unknown filter: {}", bad.body);

    // History: two rows, newest first.
    let hist = lines(&ok(d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        FIXTURE_TAG,
    ])));
    assert_eq!(hist.len(), 2, "{hist:?}");
    assert!(
        hist[0].starts_with("layer two: delete a.txt, opaque dir|"),
        "{hist:?}"
    );
    assert!(hist[1].starts_with("layer one|"), "{hist:?}");

    // Tag: both names list the same image.
    ok(d.docker(&["tag", FIXTURE_TAG, "fixture/copy:v2"]));
    let rows = set(&ok(d.docker(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ])));
    assert!(
        rows.contains(&format!("{FIXTURE_TAG} {}", &ID_OCI[7..19])),
        "{rows:?}"
    );
    assert!(
        rows.contains(&format!("fixture/copy:v2 {}", &ID_OCI[7..19])),
        "{rows:?}"
    );
    assert_eq!(
        inspect(&d, ID_OCI)["RepoTags"],
        json!(["fixture/copy:v2", FIXTURE_TAG])
    );

    // rmi of one of two tags only untags.
    let out = ok(d.docker(&["rmi", "fixture/copy:v2"]));
    assert_eq!(lines(&out), vec!["Untagged: fixture/copy:v2".to_string()]);
    assert_eq!(inspect(&d, ID_OCI)["RepoTags"], json!([FIXTURE_TAG]));

    // rmi of the last tag deletes the image; its layers stay while the
    // dangling docker-format image still uses them.
    let out = lines(&ok(d.docker(&["rmi", FIXTURE_TAG])));
    assert_eq!(out[0], format!("Untagged: {FIXTURE_TAG}"));
    assert!(out.contains(&format!("Deleted: {ID_OCI}")), "{out:?}");
    assert_eq!(ids(&d), set_of(&[ID_DOCKER, &imp_id]));
    assert_eq!(layer_dirs(&d), hexes(&[LAYER1, LAYER2, &imp_layer]));

    // prune removes the dangling image, and with it the fixture layers.
    let out = ok(d.docker(&["image", "prune", "-f"]));
    assert!(out.contains(&format!("deleted: {ID_DOCKER}")), "{out}");
    assert!(out.contains("Total reclaimed space: 133B"), "{out}");
    assert_eq!(ids(&d), set_of(&[&imp_id]));
    assert_eq!(layer_dirs(&d), hexes(&[&imp_layer]));

    // The last image goes: nothing left at all.
    let out = lines(&ok(d.docker(&["rmi", "plain/imp:1"])));
    assert!(out.contains(&format!("Deleted: {imp_id}")), "{out:?}");
    assert_eq!(layer_dirs(&d), BTreeSet::new(), "layers dir must be empty");
    assert_eq!(
        names_in(&configs_dir(&d)),
        BTreeSet::new(),
        "configs dir must be empty"
    );
    assert_eq!(ids(&d), BTreeSet::new());

    let err = fails(d.docker(&["rmi", "nope"]));
    assert!(err.contains("No such image: nope:latest"), "{err}");
    let r = d.request("DELETE", "/images/nope", None);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: nope:latest");
    let r = d.request("GET", "/images/nope/json", None);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(tmp_leftovers(&d.data_root).is_empty());
}

fn urlenc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// (2b) A short ID prefix shared by two images is refused, a unique one works.
#[test]
fn ambiguous_short_id_is_refused() {
    let layer = tar(vec![file("f", b"shared layer\n")]);
    let diff = vec![sha256(&layer)];
    // Find two configs whose IDs share at least three hex digits.
    let mut seen: HashMap<String, Vec<u8>> = HashMap::new();
    let (a, b) = (0..100_000)
        .find_map(|n| {
            let c = config_for(&diff, &[&format!("nonce {n}")], json!({}));
            let key = sha256(&c)[7..10].to_string();
            match seen.get(&key) {
                Some(prev) => Some((prev.clone(), c)),
                None => {
                    seen.insert(key, c);
                    None
                }
            }
        })
        .expect("a prefix collision");
    let (id_a, id_b) = (sha256(&a), sha256(&b));
    let common = id_a[7..]
        .chars()
        .zip(id_b[7..].chars())
        .take_while(|(x, y)| x == y)
        .count();
    let shared = &id_a[7..7 + common];
    let unique = &id_a[7..7 + common + 1];
    let archive = save_archive(&[
        ArchiveImage {
            config: a,
            tags: vec!["amb/a:1".into()],
            layers: vec![layer.clone()],
        },
        ArchiveImage {
            config: b,
            tags: vec!["amb/b:1".into()],
            layers: vec![layer],
        },
    ]);
    let d = Daemon::start();
    let r = d.request_bytes(
        "POST",
        "/images/load",
        &[("Content-Type", "application/x-tar")],
        Some(&archive),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(ids(&d), set_of(&[&id_a, &id_b]));

    let err = fails(d.docker(&["image", "inspect", shared]));
    assert!(
        err.to_lowercase().contains("ambiguous"),
        "inspect {shared}: {err}"
    );
    let err = fails(d.docker(&["rmi", shared]));
    assert!(
        err.to_lowercase().contains("ambiguous"),
        "rmi {shared}: {err}"
    );
    let r = d.request("GET", &format!("/images/{shared}/json"), None);
    assert!(
        (400..500).contains(&r.status) && r.status != 404,
        "{} {}",
        r.status,
        r.body
    );
    assert_eq!(
        ids(&d),
        set_of(&[&id_a, &id_b]),
        "an ambiguous rmi must delete nothing"
    );

    assert_eq!(inspect(&d, unique)["Id"], id_a.as_str());
    let out = ok(d.docker(&["rmi", unique]));
    assert!(out.contains(&format!("Deleted: {id_a}")), "{out}");
    assert_eq!(ids(&d), set_of(&[&id_b]));
}

/// (3) docker save / rmi / load gives the same ID; a multi-name save holds both tags.
#[test]
fn save_then_load_round_trip() {
    let d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    let saved = d.dir.join("x.tar");
    ok(d.docker(&["save", "-o", saved.to_str().unwrap(), FIXTURE_TAG]));
    assert!(fs::metadata(&saved).unwrap().len() > 20_000);
    let out = lines(&ok(d.docker(&["rmi", FIXTURE_TAG])));
    assert!(out.contains(&format!("Deleted: {ID_DOCKER}")), "{out:?}");
    assert_eq!(ids(&d), BTreeSet::new());
    assert_eq!(layer_dirs(&d), BTreeSet::new());

    let out = ok(d.docker(&["load", "-i", saved.to_str().unwrap()]));
    assert_eq!(lines(&out), vec![format!("Loaded image: {FIXTURE_TAG}")]);
    let img = inspect(&d, FIXTURE_TAG);
    assert_eq!(
        img["Id"], ID_DOCKER,
        "a saved image must load with the same ID"
    );
    assert_eq!(img["RootFS"]["Layers"], json!([LAYER1, LAYER2]));

    // Two names in one GET /images/get.
    ok(d.docker(&["tag", FIXTURE_TAG, "fixture/second:v2"]));
    let r = d.request_bytes(
        "GET",
        "/images/get?names=fixture/whiteouts:v1&names=fixture/second:v2",
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    let mut files: HashMap<String, Vec<u8>> = HashMap::new();
    let mut ar = tar::Archive::new(&r.body[..]);
    for e in ar.entries().expect("the save is a tar") {
        let mut e = e.expect("tar entry");
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(p, data);
    }
    let manifest: Value = serde_json::from_slice(
        files
            .get("manifest.json")
            .expect("manifest.json in the save"),
    )
    .unwrap();
    let tags: BTreeSet<String> = manifest
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["RepoTags"].as_array().cloned().unwrap_or_default())
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        tags,
        set_of(&[FIXTURE_TAG, "fixture/second:v2"]),
        "manifest {manifest}"
    );
    for m in manifest.as_array().unwrap() {
        let cfg = files
            .get(m["Config"].as_str().unwrap())
            .expect("config in the save");
        assert_eq!(sha256(cfg), ID_DOCKER);
        let layers: Vec<String> = m["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| sha256(files.get(l.as_str().unwrap()).expect("layer in the save")))
            .collect();
        assert_eq!(layers, vec![LAYER1.to_string(), LAYER2.to_string()]);
    }
    let r = d.request_bytes("GET", "/images/get?names=nope", &[], None);
    assert_eq!(r.status, 404, "{}", r.text());
}

/// (4) docker import from a file with changes, from stdin (gzip), from a URL;
/// a bad change is refused and leaves nothing.
#[test]
fn import_file_stdin_url_and_bad_change() {
    let d = Daemon::start();
    let rootfs = rootfs_tar();
    let diff = sha256(&rootfs);
    let path = d.dir.join("rootfs.tar");
    fs::write(&path, &rootfs).unwrap();

    let out = ok(d.docker(&[
        "import",
        path.to_str().unwrap(),
        "my/img:1",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        "-c",
        "ENV A=b",
        "-c",
        "WORKDIR /w",
        "-m",
        "msg",
    ]));
    let id1 = out.trim().to_string();
    assert!(id1.starts_with("sha256:"), "{out}");
    let img = inspect(&d, "my/img:1");
    assert_eq!(img["Id"], id1.as_str());
    assert_eq!(img["Config"]["Cmd"], json!(["/bin/sh"]));
    assert!(
        img["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&json!("A=b")),
        "{}",
        img["Config"]
    );
    assert_eq!(img["Config"]["WorkingDir"], "/w");
    assert_eq!(img["Comment"], "msg");
    assert_eq!(
        img["RootFS"]["Layers"],
        json!([diff]),
        "an uncompressed import's DiffID is the tar's sha256"
    );
    let hist = lines(&ok(d.docker(&[
        "history",
        "--format",
        "{{.Comment}}",
        "my/img:1",
    ])));
    assert_eq!(hist, vec!["msg".to_string()]);

    // cat rootfs.tar.gz | docker import - my/img:2
    let out = ok(d.docker_with_stdin(&["import", "-", "my/img:2"], gzip(&rootfs)));
    let id2 = out.trim().to_string();
    let img2 = inspect(&d, "my/img:2");
    assert_eq!(img2["Id"], id2.as_str());
    assert_eq!(
        img2["RootFS"]["Layers"],
        json!([diff]),
        "gzip is undone before the DiffID"
    );
    assert_eq!(
        layer_dirs(&d),
        hexes(&[&diff]),
        "both imports share one layer"
    );

    // From a URL served by a one-shot HTTP server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let body = rootfs.clone();
    let server = thread::spawn(move || -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut s, _) = loop {
            match listener.accept() {
                Ok(c) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err("nobody fetched the URL".into());
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(1) => head.push(b[0]),
                _ => {
                    return Err(format!(
                        "bad request head {:?}",
                        String::from_utf8_lossy(&head)
                    ))
                }
            }
        }
        let resp = format!("HTTP/1.1 200 OK\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
        s.write_all(resp.as_bytes())
            .and_then(|()| s.write_all(&body))
            .map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&head).into_owned())
    });
    let r = d.request_bytes(
        "POST",
        &format!("/images/create?fromSrc=http://127.0.0.1:{port}/r.tar&repo=u/rl&tag=1"),
        &[],
        None,
    );
    let head = server.join().unwrap().expect("the URL server");
    assert!(head.starts_with("GET /r.tar HTTP/1.1\r\n"), "{head}");
    assert_eq!(r.status, 200, "{}", r.text());
    let img3 = inspect(&d, "u/rl:1");
    assert!(
        r.text().contains(img3["Id"].as_str().unwrap()),
        "import response {}",
        r.text()
    );
    assert_eq!(img3["RootFS"]["Layers"], json!([diff]));

    // A registry out of reach (HTTPS, or 501 in a build without TLS).
    let r = d.request(
        "POST",
        "/images/create?fromImage=registry.invalid/busybox&tag=latest",
        None,
    );
    assert!(r.status == 500 || r.status == 501, "{}", r.body);
    assert!(r.body.contains("registry.invalid"), "{}", r.body);

    // A bad change: refused, nothing left.
    let before = store_state(&d);
    let err = fails(d.docker(&[
        "import",
        "-c",
        "BOGUS x",
        path.to_str().unwrap(),
        "bad/img:1",
    ]));
    assert!(!err.trim().is_empty());
    assert_untouched(&d, &before, "docker import -c 'BOGUS x'");
    let r = d.request_bytes(
        "POST",
        "/images/create?fromSrc=-&repo=bad/img&tag=1&changes=BOGUS%20x",
        &[("Content-Type", "application/x-tar")],
        Some(&rootfs),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(!r.message().is_empty());
    assert_untouched(&d, &before, "POST /images/create with changes=BOGUS x");
    let err = fails(d.docker(&["image", "inspect", "bad/img:1"]));
    assert!(err.contains("No such image"), "{err}");
}

/// (5) Hostile and broken archives: each is refused with a 4xx JSON message
/// and leaves the store exactly as it was.
#[test]
fn bad_archives_are_refused_and_leave_nothing() {
    let d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    let before = store_state(&d);
    let passwd_before = fs::read("/etc/passwd").unwrap();

    let crafted = fs::read(fixture("whiteouts-crafted.tar")).unwrap();
    let mut garbage = vec![0u8; 64 * 1024];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in garbage.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    garbage[0] = b'G';
    let mut gz_corrupt = gzip(&crafted);
    let mid = gz_corrupt.len() / 2;
    for b in &mut gz_corrupt[mid - 64..mid + 64] {
        *b ^= 0xa5;
    }

    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated tar", crafted[..7000].to_vec()),
        ("garbage", garbage),
        ("corrupt gzip", gz_corrupt),
        (
            "no manifest.json or index.json",
            tar(vec![
                file("hello.txt", b"hi\n"),
                file("x/layer.tar", &tar(vec![file("a", b"a")])),
            ]),
        ),
        (
            "../../etc/evil",
            one_layer_archive(
                tar(vec![file("../../etc/evil", b"evil\n")]),
                "evil/dotdot:1",
            ),
        ),
        (
            "absolute path",
            one_layer_archive(tar(vec![file("/etc/evil", b"evil\n")]), "evil/abs:1"),
        ),
        (
            "write through a symlink",
            one_layer_archive(
                tar(vec![
                    entry("link", b'2', b"", "/etc", (0, 0)),
                    file("link/passwd", b"evil:x:0:0::/:/bin/sh\n"),
                ]),
                "evil/symlink:1",
            ),
        ),
        (
            "hard link to /etc/passwd",
            one_layer_archive(
                tar(vec![entry("hl", b'1', b"", "/etc/passwd", (0, 0))]),
                "evil/hardlink:1",
            ),
        ),
        (
            "hard link to ../../../../etc/passwd",
            one_layer_archive(
                tar(vec![entry(
                    "hl",
                    b'1',
                    b"",
                    "../../../../etc/passwd",
                    (0, 0),
                )]),
                "evil/hardlink2:1",
            ),
        ),
        (
            "char device 1:3",
            one_layer_archive(
                tar(vec![dir("dev/"), entry("dev/null", b'3', b"", "", (1, 3))]),
                "evil/dev:1",
            ),
        ),
        // Upper case is only allowed in a registry domain (see below).
        (
            "RepoTags name with an upper-case path",
            one_layer_archive(tar(vec![file("ok.txt", b"fine\n")]), "fixture/UPPER:x"),
        ),
        (
            "RepoTags name upper-case single element",
            one_layer_archive(tar(vec![file("ok.txt", b"fine\n")]), "UPPER:x"),
        ),
        (
            "RepoTags name with a space",
            one_layer_archive(tar(vec![file("ok.txt", b"fine\n")]), "bad name:x"),
        ),
    ];
    cases.push(("gzip bomb", gzip_bomb_archive()));

    for (what, body) in &cases {
        let started = Instant::now();
        let r = d.request_bytes(
            "POST",
            "/images/load",
            &[("Content-Type", "application/x-tar")],
            Some(body),
        );
        // As dockerd: the upload was read, so the failure is a 200 whose
        // JSON stream carries `errorDetail` (docker-py's ImageLoadError).
        assert_eq!(r.status, 200, "{what}: {}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{what}: content-type {:?}",
            r.header("content-type")
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{what}: not one JSON message ({e}): {}", r.text()));
        let msg = v["errorDetail"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no errorDetail: {v}"))
            .to_string();
        assert_eq!(v["error"], msg.as_str(), "{what}: {v}");
        assert!(!msg.is_empty(), "{what}: empty message");
        eprintln!("{what}: {} {msg:?} in {:?}", r.status, started.elapsed());
        if *what == "gzip bomb" {
            assert!(
                msg.contains("gzip"),
                "{what}: should hit the expansion cap, got {msg:?}"
            );
        }
        assert!(!Path::new("/etc/evil").exists(), "{what}: wrote /etc/evil");
        assert!(
            !layers_dir(&d).join("etc").exists() && !d.data_root.join("etc").exists(),
            "{what}: escaped the layer dir"
        );
        assert_eq!(
            fs::read("/etc/passwd").unwrap(),
            passwd_before,
            "{what}: /etc/passwd changed"
        );
        assert_untouched(&d, &before, what);
    }
    // The daemon is still fine.
    assert_eq!(inspect(&d, FIXTURE_TAG)["Id"], ID_DOCKER);

    // `UPPER/case:x` is NOT invalid: distribution/reference takes an
    // upper-case first component as a registry domain, and dockerd loads it.
    let r = d.request_bytes(
        "POST",
        "/images/load",
        &[("Content-Type", "application/x-tar")],
        Some(&one_layer_archive(
            tar(vec![file("ok.txt", b"fine\n")]),
            "UPPER/case:x",
        )),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("Loaded image: UPPER/case:x"),
        "{}",
        r.text()
    );
    assert_eq!(
        inspect(&d, "UPPER/case:x")["RepoTags"],
        json!(["UPPER/case:x"])
    );
}

/// A docker-save archive whose layer is 200 MiB of zeros, gzip-compressed
/// (about 200 KiB), generated in pieces.
fn gzip_bomb_archive() -> Vec<u8> {
    const ZEROS: u64 = 200 << 20;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut hasher = Sha256::new();
    let mut put = |gz: &mut flate2::write::GzEncoder<Vec<u8>>, data: &[u8]| {
        hasher.update(data);
        gz.write_all(data).unwrap();
    };
    put(&mut gz, &tar_header("zeros", b'0', ZEROS, "", (0, 0)));
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..(ZEROS >> 20) {
        put(&mut gz, &chunk);
    }
    put(&mut gz, &[0u8; 1024]);
    let layer = gz.finish().unwrap();
    let diff_id = format!("sha256:{}", hex(&hasher.finalize()));
    let config = config_for(&[diff_id], &["bomb"], json!({}));
    save_archive(&[ArchiveImage {
        config,
        tags: vec!["evil/bomb:1".into()],
        layers: vec![layer],
    }])
}

/// (6) A 600 MiB chunked load streams through the daemon: other requests are
/// answered within 1 s, the daemon's RSS stays small, the load succeeds.
#[test]
fn large_load_streams_with_small_rss_and_responsive_loop() {
    let big = big_archive();
    let d = Daemon::start();
    let pid = d.pid();
    let sent = Arc::new(AtomicU64::new(0));
    let upload = upload_chunked(d.sock.clone(), big.path.clone(), sent.clone());
    let deadline = Instant::now() + Duration::from_secs(150);
    let (mut samples_during, mut max_rss, mut max_worker_rss, mut slowest) =
        (0, 0u64, 0u64, Duration::ZERO);
    while !upload.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the big load did not finish in 150 s"
        );
        let in_flight = {
            let s = sent.load(Ordering::SeqCst);
            s > 0 && s < big.size
        };
        let rss = vm_rss_kib(pid).expect("daemon VmRSS");
        max_rss = max_rss.max(rss);
        assert!(
            rss < 64 * 1024,
            "daemon RSS {rss} KiB during the upload (limit 64 MiB)"
        );
        for w in children_of(pid) {
            max_worker_rss = max_worker_rss.max(vm_rss_kib(w).unwrap_or(0));
        }
        for path in ["/_ping", "/images/json"] {
            let t = Instant::now();
            let r = d.request("GET", path, None);
            let took = t.elapsed();
            slowest = slowest.max(took);
            assert_eq!(r.status, 200, "{path} during the load: {}", r.body);
            assert!(
                took < Duration::from_secs(1),
                "{path} took {took:?} during the load"
            );
        }
        if in_flight {
            samples_during += 1;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let raw = upload.join().unwrap().expect("the upload");
    let r = parse_raw_response(&raw);
    eprintln!(
        "large load: daemon max VmRSS {max_rss} KiB, worker max VmRSS {max_worker_rss} KiB, slowest side request {slowest:?}, {samples_during} samples mid-upload"
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains(&format!("Loaded image: {BIG_TAG}")),
        "{}",
        r.text()
    );
    assert!(
        samples_during >= 3,
        "only {samples_during} samples while the body was in flight"
    );
    assert_eq!(inspect(&d, BIG_TAG)["Id"], big.id.as_str());
    assert!(inspect(&d, BIG_TAG)["Size"].as_u64().unwrap() >= BIG_LAYER_BYTES);
    assert!(tmp_leftovers(&d.data_root).is_empty());
}

/// (7) kill -9 in the middle of a large load: after a restart only complete
/// images exist, no temp dirs are left, and the load can be repeated.
#[test]
fn kill9_during_large_load_then_restart() {
    let big = big_archive();
    let mut d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    let fixture_layers = hexes(&[LAYER1, LAYER2]);

    let check_after_restart = |d: &Daemon, phase: &str| {
        d.wait_serving();
        assert_eq!(
            ids(d),
            set_of(&[ID_DOCKER]),
            "{phase}: only complete images"
        );
        assert_eq!(inspect(d, FIXTURE_TAG)["Id"], ID_DOCKER, "{phase}");
        let left = tmp_leftovers(&d.data_root);
        assert!(
            left.is_empty(),
            "{phase}: temp leftovers after restart: {left:?}"
        );
        assert_eq!(
            layer_dirs(d),
            fixture_layers,
            "{phase}: layer dirs after restart"
        );
        assert_eq!(
            names_in(&configs_dir(d)),
            set_of(&[&format!("{}.json", &ID_DOCKER[7..])]),
            "{phase}"
        );
    };

    // Phase A: only the daemon dies; watch what its worker does.
    let upload = upload_chunked(
        d.sock.clone(),
        big.path.clone(),
        Arc::new(AtomicU64::new(0)),
    );
    let workers = wait_midway(&d, 200 << 20, &upload);
    assert!(
        !workers.is_empty(),
        "no worker process found under the daemon"
    );
    d.kill9();
    let exited = wait_gone(&workers, Duration::from_secs(10));
    let tmp_after_worker = tmp_leftovers(&d.data_root);
    eprintln!(
        "kill -9 daemon: workers {workers:?} {} within 10 s; temp entries left: {tmp_after_worker:?}",
        if exited { "exited on their own" } else { "were STILL RUNNING" }
    );
    for &w in &workers {
        if proc_alive(w) {
            kill(w, libc::SIGKILL);
        }
    }
    assert!(
        wait_gone(&workers, Duration::from_secs(5)),
        "workers survived SIGKILL"
    );
    let _ = upload.join();
    d.restart();
    check_after_restart(&d, "after kill -9 of the daemon alone");

    // Phase B: a power cut: daemon and worker die at the same instant, so the
    // half-written temp layer stays for the restart to clean.
    let upload = upload_chunked(
        d.sock.clone(),
        big.path.clone(),
        Arc::new(AtomicU64::new(0)),
    );
    let workers = wait_midway(&d, 200 << 20, &upload);
    assert!(
        !workers.is_empty(),
        "no worker process found under the daemon"
    );
    for &w in &workers {
        kill(w, libc::SIGSTOP);
    }
    d.kill9();
    for &w in &workers {
        kill(w, libc::SIGKILL);
    }
    assert!(
        wait_gone(&workers, Duration::from_secs(5)),
        "workers survived SIGKILL"
    );
    let _ = upload.join();
    let left = tmp_leftovers(&d.data_root);
    assert!(
        !left.is_empty(),
        "the power cut should have left a temp layer dir to clean"
    );
    // What a cut between "layer renamed into place" and "config written"
    // leaves: a complete layer no config references. And a config whose
    // layer never became durable. Neither may show up as an image.
    let orphan_layer = layers_dir(&d).join("ab".repeat(32));
    fs::create_dir_all(orphan_layer.join("diff")).unwrap();
    fs::write(
        orphan_layer.join("layer.json"),
        format!(
            r#"{{"diff_id":"sha256:{}","tar_size":1024,"size":0}}"#,
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let lost = config_for(
        &[format!("sha256:{}", "cd".repeat(32))],
        &["lost layer"],
        json!({}),
    );
    let lost_config = configs_dir(&d).join(format!("{}.json", &sha256(&lost)[7..]));
    fs::write(&lost_config, &lost).unwrap();
    d.restart();
    d.wait_serving();
    assert!(
        !orphan_layer.exists(),
        "an unreferenced layer survived the restart"
    );
    assert!(
        !lost_config.exists(),
        "a config whose layer is missing survived the restart"
    );
    check_after_restart(&d, "after a power cut");

    // The load works after all that.
    let out = ok(d.docker(&["load", "-i", big.path.to_str().unwrap()]));
    assert!(
        lines(&out).contains(&format!("Loaded image: {BIG_TAG}")),
        "{out}"
    );
    assert_eq!(ids(&d), set_of(&[ID_DOCKER, &big.id]));
    assert!(tmp_leftovers(&d.data_root).is_empty());

    assert!(
        exited,
        "a worker kept running for 10 s after its daemon was killed: {workers:?}"
    );
}

fn image_events(d: &Daemon) -> Vec<Value> {
    let out = ok(d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until_arg(),
        "--filter",
        "type=image",
        "--format",
        "{{json .}}",
    ]));
    lines(&out)
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("event line is not JSON ({e}): {l}"))
        })
        .collect()
}

/// (8) Image events with familiar names.
#[test]
fn image_events_have_actions_and_familiar_names() {
    let d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    ok(d.docker(&["tag", FIXTURE_TAG, "fixture/tagged:t1"]));
    ok(d.docker(&["rmi", "fixture/tagged:t1"]));
    ok(d.docker(&["rmi", FIXTURE_TAG]));
    let imp = ok(d.docker_with_stdin(&["import", "-", "my/imp:1"], rootfs_tar()))
        .trim()
        .to_string();

    let events = image_events(&d);
    let find = |action: &str, name: &str| -> usize {
        events
            .iter()
            .position(|e| e["Action"] == action && e["Actor"]["Attributes"]["name"] == name)
            .unwrap_or_else(|| panic!("no image {action} event named {name:?} in {events:#?}"))
    };
    let load = find("load", FIXTURE_TAG);
    let tag = find("tag", "fixture/tagged:t1");
    let untag1 = find("untag", "fixture/tagged:t1");
    let untag2 = find("untag", FIXTURE_TAG);
    let delete = find("delete", ID_DOCKER);
    let import = find("import", "my/imp:1");
    assert!(
        load < tag && tag < untag1 && untag1 < untag2 && untag2 < delete && delete < import,
        "order: {events:#?}"
    );
    assert_eq!(events[load]["Actor"]["ID"], ID_DOCKER);
    assert_eq!(events[tag]["Actor"]["ID"], ID_DOCKER);
    assert_eq!(events[delete]["Actor"]["ID"], ID_DOCKER);
    assert_eq!(events[import]["Actor"]["ID"], imp.as_str());
    for e in &events {
        assert_eq!(e["Type"], "image", "{e}");
        let name = e["Actor"]["Attributes"]["name"].as_str().unwrap_or("");
        assert!(
            !name.starts_with("docker.io/"),
            "event name not in familiar form: {e}"
        );
        assert!(e["time"].as_u64().is_some_and(|t| t > 0), "{e}");
    }
    // The raw endpoint agrees.
    let r = d.request(
        "GET",
        &format!(
            "/events?since=0&until={}&filters={}",
            until_arg(),
            urlenc(r#"{"type":["image"]}"#)
        ),
        None,
    );
    assert_eq!(r.status, 200);
    for a in ["load", "tag", "untag", "delete", "import"] {
        assert!(
            r.body.contains(&format!("\"Action\":\"{a}\"")),
            "raw /events lacks {a}: {}",
            r.body
        );
    }
}

/// (8b) dockerd emits exactly one `delete` event per deleted image (the
/// removed layers only appear as `Deleted:` records in the response).
#[test]
fn image_delete_emits_one_event_per_image() {
    let d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    let out = lines(&ok(d.docker(&["rmi", FIXTURE_TAG])));
    assert!(out.contains(&format!("Deleted: {ID_DOCKER}")), "{out:?}");
    let deletes: Vec<Value> = image_events(&d)
        .into_iter()
        .filter(|e| e["Action"] == "delete")
        .collect();
    let ids: Vec<&str> = deletes
        .iter()
        .map(|e| e["Actor"]["ID"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        ids,
        vec![ID_DOCKER],
        "delete events (layers must not get their own): {deletes:#?}"
    );
}

/// (9) docker info counts images (dangling ones too).
#[test]
fn docker_info_counts_images() {
    let d = Daemon::start();
    let count = |d: &Daemon| {
        ok(d.docker(&["info", "--format", "{{.Images}}"]))
            .trim()
            .to_string()
    };
    assert_eq!(count(&d), "0");
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    assert_eq!(count(&d), "1");
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-oci.tar")]));
    ok(d.docker_with_stdin(&["import", "-", "my/imp:1"], rootfs_tar()));
    assert_eq!(count(&d), "3", "two fixtures (one dangling) and an import");
    assert_eq!(ids(&d).len(), 3);
    ok(d.docker(&["rmi", "my/imp:1"]));
    assert_eq!(count(&d), "2");
    assert_eq!(d.request("GET", "/info", None).json()["Images"], 2);
}

/// (6b) A client that hangs up in the middle of a large load (Ctrl-C on
/// `docker load`) costs nothing afterwards: the worker goes away and its
/// half-extracted temp layer is removed without waiting for a restart.
#[test]
fn client_abort_mid_load_leaves_nothing() {
    let big = big_archive();
    let d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    let before = store_state(&d);

    let stop = Arc::new(AtomicU64::new(0));
    let sock = d.sock.clone();
    let path = big.path.clone();
    let flag = stop.clone();
    // Like upload_chunked, but hangs up (closes the socket) when told to.
    let upload = thread::spawn(move || -> Result<Vec<u8>, String> {
        let mut s = UnixStream::connect(&sock).map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
        let head = "POST /images/load HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n";
        s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        let mut f = File::open(&path).map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 256 * 1024];
        while flag.load(Ordering::SeqCst) == 0 {
            let n = f.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the whole archive went out before the hang-up".into());
            }
            s.write_all(format!("{n:x}\r\n").as_bytes())
                .and_then(|()| s.write_all(&buf[..n]))
                .and_then(|()| s.write_all(b"\r\n"))
                .map_err(|e| e.to_string())?;
        }
        drop(s);
        Ok(Vec::new())
    });
    let workers = wait_midway(&d, 150 << 20, &upload);
    assert!(
        !workers.is_empty(),
        "no worker process found under the daemon"
    );
    stop.store(1, Ordering::SeqCst);
    upload
        .join()
        .unwrap()
        .expect("the upload until the hang-up");

    assert!(
        wait_gone(&workers, Duration::from_secs(10)),
        "the worker of an abandoned load is still running: {workers:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = tmp_leftovers(&d.data_root);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "an abandoned load left {left:?} (sizes {:?}) 10 s after the client hung up",
            left.iter()
                .map(|p| fs::metadata(p.join("diff/blob"))
                    .map(|m| m.len())
                    .unwrap_or(0))
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(50));
    }
    assert_untouched(&d, &before, "after an abandoned load");
    // And a full load still works.
    let out = ok(d.docker(&["load", "-i", big.path.to_str().unwrap()]));
    assert!(
        lines(&out).contains(&format!("Loaded image: {BIG_TAG}")),
        "{out}"
    );
}

/// (2c) Deleting an image while an unrelated load runs must still free its
/// layers (at the latest once that load has finished), not leave them on
/// disk until the next daemon restart.
#[test]
fn rmi_during_an_unrelated_load_frees_layers() {
    let big = big_archive();
    let d = Daemon::start();
    ok(d.docker(&["load", "-i", &fixture_str("whiteouts-crafted.tar")]));
    assert_eq!(layer_dirs(&d), hexes(&[LAYER1, LAYER2]));

    let upload = upload_chunked(
        d.sock.clone(),
        big.path.clone(),
        Arc::new(AtomicU64::new(0)),
    );
    wait_midway(&d, 100 << 20, &upload);
    let out = lines(&ok(d.docker(&["rmi", FIXTURE_TAG])));
    assert!(out.contains(&format!("Deleted: {ID_DOCKER}")), "{out:?}");
    let raw = upload.join().unwrap().expect("the big upload");
    let r = parse_raw_response(&raw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(ids(&d), set_of(&[&big.id]));

    let big_layers: BTreeSet<String> = inspect(&d, BIG_TAG)["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap()[7..].to_string())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while layer_dirs(&d) != big_layers && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        layer_dirs(&d),
        big_layers,
        "the deleted fixture's layers are still on disk after the concurrent load finished"
    );
}
