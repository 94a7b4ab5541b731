//! Store-level tests against real files: the shared fixtures, real overlayfs
//! mounts, and hand-built malicious tars.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::json;

use super::archive_load::{load_archive, LoadSummary};
use super::archive_save::save_archive;
use super::digest::sha256_digest;
use super::error::ImageError;
use super::import::{import_rootfs, ImportOptions};
use super::layer_export::export_layer;
use super::layer_extract::{extract_layer, Budget};
use crate::container::registry::ContainerUse;
use crate::image::layout::Layout;
use crate::store::images::{ImageStore, ListFilters};

/// `shared/fixtures` beside this repository, or where `CORACLE_FIXTURES` says (as in
/// tests/common: a worktree does not sit beside `shared/`).
fn fixtures_dir() -> std::path::PathBuf {
    std::env::var_os("CORACLE_FIXTURES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
}
const FIXTURE_ID: &str = "sha256:9705ad965a3f75c33785304203b41fd1bc368f68c5383d06ff173647f419539e";
/// skopeo re-serialised the config when writing the OCI layout, so its
/// content-addressed ID differs (same layers, same tag).
const FIXTURE_OCI_ID: &str =
    "sha256:71d4305f7106dc8f8df4c7fce528e1682d078db9ce43cf13c6a3d42f78dc5603";
const DIFF1: &str = "sha256:dd00262199cbfbab106fb13a9ef5583627e82cca71b52db43bcaec55de35a598";
const DIFF2: &str = "sha256:ec983c96d9e7e0752c8dbb3b2d72fbf7dc9b153cb5ea8867c8adc38b607d2486";

struct TempRoot(PathBuf);

impl TempRoot {
    fn new(name: &str) -> TempRoot {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("coracle-img-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempRoot(p)
    }
    fn layout(&self) -> Layout {
        Layout::new(&self.0)
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn fixture(name: &str) -> fs::File {
    fs::File::open(fixtures_dir().join(name)).expect("fixture missing")
}

fn load_into(store: &mut ImageStore, data: impl std::io::Read) -> Result<LoadSummary, ImageError> {
    store.begin_worker();
    let layout = store.layout().clone();
    match load_archive(&layout, data, &Budget::default()) {
        Ok(s) => {
            store.apply_load(&s)?;
            Ok(s)
        }
        Err(e) => {
            store.abort_worker();
            Err(e)
        }
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Nothing left of a failed load: no layers, no configs, no temp dirs.
fn assert_empty_store(layout: &Layout) {
    assert_eq!(
        names(&layout.layers()),
        Vec::<String>::new(),
        "layers left behind"
    );
    assert_eq!(
        names(&layout.configs()),
        Vec::<String>::new(),
        "configs left behind"
    );
    for n in names(&layout.root) {
        assert!(!n.starts_with(".tmp-"), "temp {n} left behind");
    }
}

#[test]
fn each_fixture_loads_with_its_id_and_tag() {
    for (file, id) in [
        ("whiteouts-crafted.tar", FIXTURE_ID),
        ("whiteouts-docker-save.tar", FIXTURE_ID),
        ("whiteouts-oci.tar", FIXTURE_OCI_ID),
    ] {
        let root = TempRoot::new("fixture");
        let mut store = ImageStore::open(root.layout()).unwrap();
        let s = load_into(&mut store, fixture(file)).unwrap();
        assert_eq!(s.images.len(), 1, "{file}");
        assert_eq!(s.images[0].id, id, "{file}");
        assert_eq!(
            s.images[0].tags,
            vec!["docker.io/fixture/whiteouts:v1".to_string()]
        );
        let img = store.resolve("fixture/whiteouts:v1").unwrap();
        assert_eq!(img.id, id);
        assert_eq!(img.diff_ids, vec![DIFF1.to_string(), DIFF2.to_string()]);
        assert_eq!(
            store.repo_tags(id),
            vec!["fixture/whiteouts:v1".to_string()]
        );
        // Reload from disk gives the same index.
        let again = ImageStore::open(root.layout()).unwrap();
        assert_eq!(again.resolve("fixture/whiteouts:v1").unwrap().id, id);
        assert_eq!(again.resolve(&id[7..19]).unwrap().id, id);
    }
}

#[test]
fn loads_share_layers_and_leave_no_temp() {
    let root = TempRoot::new("share");
    let mut store = ImageStore::open(root.layout()).unwrap();
    for f in [
        "whiteouts-crafted.tar",
        "whiteouts-docker-save.tar",
        "whiteouts-oci.tar",
        "whiteouts-crafted.tar",
    ] {
        load_into(&mut store, fixture(f)).unwrap();
    }
    let layers = names(&root.layout().layers());
    assert_eq!(layers, vec![DIFF1[7..].to_string(), DIFF2[7..].to_string()]);
    assert_eq!(store.images().count(), 2);
    // The tag moved to the last loaded image; the OCI one is now dangling.
    assert_eq!(
        store.resolve("fixture/whiteouts:v1").unwrap().id,
        FIXTURE_ID
    );
    let dangling = store
        .list(&ListFilters::from_json(r#"{"dangling":["true"]}"#).unwrap())
        .unwrap();
    assert_eq!(dangling.len(), 1);
    assert_eq!(dangling[0]["Id"], FIXTURE_OCI_ID);
    assert_eq!(dangling[0]["RepoTags"], json!([]));
}

fn mode_string(m: &fs::Metadata) -> String {
    let ft = m.file_type();
    let mut s = String::from(if ft.is_dir() {
        "d"
    } else if ft.is_symlink() {
        "l"
    } else {
        "-"
    });
    let bits = m.permissions().mode();
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if bits & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeSet<String>) {
    for e in fs::read_dir(root.join(rel)).unwrap() {
        let e = e.unwrap();
        let r = rel.join(e.file_name());
        let m = fs::symlink_metadata(root.join(&r)).unwrap();
        let mut line = format!("{} {}", mode_string(&m), r.display());
        if m.is_dir() {
            line.push('/');
            out.insert(line);
            walk(root, &r, out);
            continue;
        }
        if m.file_type().is_symlink() {
            line.push_str(&format!(
                " -> {}",
                fs::read_link(root.join(&r)).unwrap().display()
            ));
        }
        out.insert(line);
    }
}

#[test]
fn merged_overlay_matches_engine_export() {
    let root = TempRoot::new("overlay");
    let mut store = ImageStore::open(root.layout()).unwrap();
    load_into(&mut store, fixture("whiteouts-crafted.tar")).unwrap();
    // Whiteouts are real overlay whiteouts on disk.
    let top = root.layout().diff_dir(DIFF2);
    let wh = fs::symlink_metadata(top.join("data/a.txt")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
    assert!(!top.join("dir/.wh..wh..opq").exists());

    let lowers = store.lower_dirs(FIXTURE_ID).unwrap();
    let merged = root.0.join("merged");
    fs::create_dir(&merged).unwrap();
    let opts: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let data = format!("lowerdir={}", opts.join(":"));
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(data.as_str()),
    )
    .expect("overlay mount (tests must run as root)");
    let mut got = BTreeSet::new();
    walk(&merged, Path::new(""), &mut got);
    nix::mount::umount2(&merged, nix::mount::MntFlags::MNT_DETACH).unwrap();

    let engine_added = |p: &str| {
        p == ".dockerenv"
            || p.starts_with("dev/")
            || [
                "etc/hostname",
                "etc/hosts",
                "etc/resolv.conf",
                "etc/mtab",
                "proc/",
                "sys/",
            ]
            .contains(&p)
    };
    let want: BTreeSet<String> =
        fs::read_to_string(fixtures_dir().join("whiteouts-expected-export.txt"))
            .unwrap()
            .lines()
            .map(|l| l.trim_end().to_string())
            .filter(|l| !l.is_empty())
            .filter(|l| !engine_added(l.split_whitespace().nth(1).unwrap_or("")))
            .collect();
    assert_eq!(got, want);
}

#[test]
fn save_then_load_keeps_the_id() {
    let root = TempRoot::new("save");
    let mut store = ImageStore::open(root.layout()).unwrap();
    load_into(&mut store, fixture("whiteouts-oci.tar")).unwrap();
    load_into(&mut store, fixture("whiteouts-docker-save.tar")).unwrap();
    let plan = store
        .save_plan(&["fixture/whiteouts:v1".into(), FIXTURE_OCI_ID[..20].into()])
        .unwrap();
    let mut out = Vec::new();
    save_archive(store.layout(), &plan, &mut out).unwrap();
    // Layer blobs are byte-identical to the originals.
    let mut ar = tar::Archive::new(Cursor::new(&out));
    let mut paths = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().display().to_string();
        if p == format!("blobs/sha256/{}", &DIFF1[7..]) {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut b).unwrap();
            assert_eq!(sha256_digest(&b), DIFF1);
        }
        paths.push(p);
    }
    for p in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(paths.contains(&p.to_string()), "{p} missing");
    }
    let root2 = TempRoot::new("save2");
    let mut store2 = ImageStore::open(root2.layout()).unwrap();
    let s = load_into(&mut store2, Cursor::new(&out)).unwrap();
    let ids: Vec<&str> = s.images.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, vec![FIXTURE_ID, FIXTURE_OCI_ID]);
    assert_eq!(
        store2.resolve("fixture/whiteouts:v1").unwrap().id,
        FIXTURE_ID
    );
    // The OCI view of the same archive loads too (drop manifest.json).
    let oci_only = rewrite_without(&out, "manifest.json");
    let root3 = TempRoot::new("save3");
    let s = load_archive(&root3.layout(), Cursor::new(oci_only), &Budget::default()).unwrap();
    assert_eq!(s.images[0].id, FIXTURE_ID);
    assert_eq!(
        s.images[0].tags,
        vec!["docker.io/fixture/whiteouts:v1".to_string()]
    );
}

fn rewrite_without(archive: &[u8], skip: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(Cursor::new(archive));
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some(skip) {
            continue;
        }
        let h = e.header().clone();
        b.append(&h, &mut e).unwrap();
    }
    b.into_inner().unwrap()
}

// ---- hand-built tars ----

/// A raw tar header with arbitrary (even malicious) name and link bytes.
fn raw_header(name: &str, kind: u8, size: u64, link: &str) -> [u8; 512] {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::new(kind));
    let b = h.as_mut_bytes();
    b[..name.len()].copy_from_slice(name.as_bytes());
    b[157..157 + link.len()].copy_from_slice(link.as_bytes());
    if kind == b'3' {
        b[329..336].copy_from_slice(b"0000001");
        b[337..344].copy_from_slice(b"0000003");
    }
    h.set_cksum();
    let mut out = [0u8; 512];
    out.copy_from_slice(h.as_bytes());
    out
}

enum E<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str),
}

fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            E::File(n, data) => {
                out.extend_from_slice(&raw_header(n, b'0', data.len() as u64, ""));
                out.extend_from_slice(data);
                out.resize(out.len().div_ceil(512) * 512, 0);
            }
            E::Dir(n) => out.extend_from_slice(&raw_header(n, b'5', 0, "")),
            E::Link(n, t) => out.extend_from_slice(&raw_header(n, b'2', 0, t)),
            E::Hard(n, t) => out.extend_from_slice(&raw_header(n, b'1', 0, t)),
            E::Char(n) => out.extend_from_slice(&raw_header(n, b'3', 0, "")),
        }
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A docker-save archive around `layers` (config diff_ids from the layers' real hashes
/// unless `diff_ids` is given).
fn docker_archive(layers: &[Vec<u8>], tags: &[&str], diff_ids: Option<Vec<String>>) -> Vec<u8> {
    let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| sha256_digest(l)).collect());
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cfg_name = format!("{}.json", &sha256_digest(&config)[7..]);
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, p: &str, d: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, p, d).unwrap();
    };
    let mut paths = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let p = format!("l{i}/layer.tar");
        add(&mut b, &p, l);
        paths.push(p);
    }
    add(&mut b, &cfg_name, &config);
    let m = json!([{ "Config": cfg_name, "RepoTags": tags, "Layers": paths }]);
    add(&mut b, "manifest.json", &serde_json::to_vec(&m).unwrap());
    b.into_inner().unwrap()
}

fn good_layer() -> Vec<u8> {
    layer_tar(&[
        E::Dir("etc/"),
        E::File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
    ])
}

fn expect_failure(name: &str, archive: Vec<u8>, check: impl Fn(&ImageError) -> bool) {
    let root = TempRoot::new("bad");
    let mut store = ImageStore::open(root.layout()).unwrap();
    let err = load_into(&mut store, Cursor::new(archive)).expect_err(name);
    assert!(check(&err), "{name}: unexpected error {err:?}");
    assert!(!err.to_string().is_empty());
    assert_empty_store(&root.layout());
    assert!(
        !Path::new("/tmp/coracle-escaped").exists(),
        "{name}: wrote outside the layer"
    );
    assert_eq!(store.images().count(), 0);
}

#[test]
fn bad_archives_fail_cleanly() {
    let unsafe_path = |e: &ImageError| matches!(e, ImageError::UnsafePath(_));
    let bad = |e: &ImageError| matches!(e, ImageError::BadArchive(_));
    type Check<'a> = &'a dyn Fn(&ImageError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Check)> = vec![
        (
            "dotdot",
            docker_archive(
                &[layer_tar(&[E::File("a/../../coracle-escaped", b"x")])],
                &[],
                None,
            ),
            &unsafe_path,
        ),
        (
            "absolute",
            docker_archive(
                &[layer_tar(&[E::File("/tmp/coracle-escaped", b"x")])],
                &[],
                None,
            ),
            &unsafe_path,
        ),
        (
            "write through symlink",
            docker_archive(
                &[layer_tar(&[
                    E::Link("link", "/tmp"),
                    E::File("link/coracle-escaped", b"x"),
                ])],
                &[],
                None,
            ),
            &unsafe_path,
        ),
        (
            "symlink then dotdot",
            docker_archive(
                &[layer_tar(&[
                    E::Link("link", "/tmp"),
                    E::File("link/../coracle-escaped", b"x"),
                ])],
                &[],
                None,
            ),
            &unsafe_path,
        ),
        (
            "hardlink outside",
            docker_archive(&[layer_tar(&[E::Hard("h", "../../etc/passwd")])], &[], None),
            &unsafe_path,
        ),
        (
            "hardlink missing",
            docker_archive(&[layer_tar(&[E::Hard("h", "nope")])], &[], None),
            &bad,
        ),
        (
            "device node",
            docker_archive(&[layer_tar(&[E::Char("dev/mem")])], &[], None),
            &unsafe_path,
        ),
        (
            "diff id mismatch (good layer first)",
            docker_archive(
                &[good_layer(), good_layer()],
                &["x:y"],
                Some(vec![sha256_digest(&good_layer()), sha256_digest(b"other")]),
            ),
            &bad,
        ),
        (
            "missing manifest",
            rewrite_without(&docker_archive(&[good_layer()], &[], None), "manifest.json"),
            &bad,
        ),
        (
            "bad tag",
            docker_archive(&[good_layer()], &["Bad/Name:x"], None),
            &|e| matches!(e, ImageError::InvalidReference(_)),
        ),
        (
            "not a tar",
            b"hello, this is not a tar archive at all".repeat(20),
            &bad,
        ),
        (
            "corrupt gzip outer",
            {
                let mut g = gzip(&docker_archive(&[good_layer()], &[], None));
                let n = g.len();
                g[n / 2..].fill(0x55);
                g
            },
            &bad,
        ),
        (
            "corrupt gzip layer",
            docker_archive(
                &[{
                    let mut g = gzip(&good_layer());
                    let n = g.len();
                    g[10..n].fill(0xAA);
                    g
                }],
                &[],
                None,
            ),
            &bad,
        ),
    ];
    for (name, archive, check) in cases {
        expect_failure(name, archive, check);
    }
    // Truncated in the middle of a layer.
    let full = fs::read(fixtures_dir().join("whiteouts-crafted.tar")).unwrap();
    expect_failure("truncated", full[..full.len() / 2 + 100].to_vec(), |e| {
        matches!(e, ImageError::BadArchive(_))
    });
}

#[test]
fn decompression_bombs_are_stopped() {
    let zeros = vec![0u8; 64 << 20];
    let mut bomb = layer_tar(&[E::File("big", &zeros)]);
    bomb.truncate(bomb.len());
    let archive = docker_archive(&[gzip(&bomb)], &[], None);
    expect_failure("gzip ratio", archive, |e| {
        matches!(e, ImageError::TooLarge(_))
    });
    // Total cap.
    let root = TempRoot::new("cap");
    let archive = docker_archive(
        &[layer_tar(&[E::File("f", &vec![1u8; 100_000])])],
        &[],
        None,
    );
    let err = load_archive(
        &root.layout(),
        Cursor::new(archive),
        &Budget::new(50_000, 10),
    )
    .unwrap_err();
    assert!(matches!(err, ImageError::TooLarge(_)), "{err:?}");
    assert_empty_store(&root.layout());
}

#[test]
fn duplicate_entries_and_hardlinks_round_trip_exactly() {
    let root = TempRoot::new("dup");
    let layout = root.layout();
    layout.create_dirs().unwrap();
    let tar = layer_tar(&[
        E::Dir("d/"),
        E::File("d/f", b"first version"),
        E::Hard("d/h", "d/f"),
        E::File("d/f", b"second"),
        E::Link("s", "d/f"),
        E::File("d/.wh.gone", b""),
        E::File("d/.wh..wh..opq", b""),
    ]);
    let want = sha256_digest(&tar);
    let tmp = layout.new_temp_dir().unwrap();
    let info = extract_layer(Cursor::new(gzip(&tar)), &tmp, &Budget::default()).unwrap();
    assert_eq!(info.diff_id, want);
    assert_eq!(info.tar_size, tar.len() as u64);
    assert_eq!(fs::read(tmp.join("diff/d/f")).unwrap(), b"second");
    assert_eq!(fs::read(tmp.join("diff/d/h")).unwrap(), b"first version");
    let mut out = Vec::new();
    assert_eq!(
        export_layer(&tmp, &want, &mut out).unwrap(),
        tar.len() as u64
    );
    assert_eq!(out, tar);
    // A modified layer is detected on export.
    fs::write(tmp.join("diff/d/f"), b"SECOND").unwrap();
    assert!(matches!(
        export_layer(&tmp, &want, &mut Vec::new()),
        Err(ImageError::Corrupt(_))
    ));
}

fn rootfs_tar() -> Vec<u8> {
    gzip(&layer_tar(&[
        E::Dir("bin/"),
        E::File("bin/hello", b"#!/bin/sh\necho hi\n"),
        E::Link("bin/sh", "hello"),
    ]))
}

fn import(store: &mut ImageStore, opts: &ImportOptions) -> Result<String, ImageError> {
    store.begin_worker();
    let layout = store.layout().clone();
    match import_rootfs(&layout, Cursor::new(rootfs_tar()), opts, &Budget::default()) {
        Ok(s) => {
            store.apply_load(&s)?;
            Ok(s.images[0].id.clone())
        }
        Err(e) => {
            store.abort_worker();
            Err(e)
        }
    }
}

#[test]
fn import_builds_the_expected_config() {
    let root = TempRoot::new("import");
    let mut store = ImageStore::open(root.layout()).unwrap();
    let opts = ImportOptions {
        repo: Some("example.com/me/rootfs".into()),
        tag: Some("v2".into()),
        message: Some("from a tarball".into()),
        changes: vec![
            "CMD [\"/bin/hello\"]".into(),
            "ENV A=b".into(),
            "EXPOSE 8080".into(),
            "LABEL k=v".into(),
        ],
    };
    let id = import(&mut store, &opts).unwrap();
    let v = store.inspect("example.com/me/rootfs:v2").unwrap();
    assert_eq!(v["Id"], id);
    assert_eq!(v["RepoTags"], json!(["example.com/me/rootfs:v2"]));
    assert_eq!(v["Config"]["Cmd"], json!(["/bin/hello"]));
    assert_eq!(v["Config"]["Env"], json!(["A=b"]));
    assert_eq!(v["Config"]["ExposedPorts"], json!({"8080/tcp": {}}));
    assert_eq!(v["Config"]["Labels"], json!({"k": "v"}));
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Size"], 18);
    assert_eq!(v["GraphDriver"]["Name"], "overlay2");
    let h = store.history(&id).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0]["Comment"], "from a tarball");
    assert_eq!(h[0]["Tags"], json!(["example.com/me/rootfs:v2"]));
    let diff = store.get(&id).unwrap().diff_ids[0].clone();
    assert_eq!(diff, sha256_digest(&flate2_decode(&rootfs_tar())));
    assert_eq!(
        fs::read_link(root.layout().diff_dir(&diff).join("bin/sh")).unwrap(),
        Path::new("hello")
    );
    // Bad changes are refused before anything is written.
    let bad = ImportOptions {
        changes: vec!["RUN rm -rf /".into()],
        ..Default::default()
    };
    assert!(matches!(
        import(&mut store, &bad),
        Err(ImageError::InvalidArgument(_))
    ));
    let bad = ImportOptions {
        repo: Some("UPPER".into()),
        ..Default::default()
    };
    assert!(matches!(
        import(&mut store, &bad),
        Err(ImageError::InvalidReference(_))
    ));
    assert_eq!(names(&root.layout().layers()).len(), 1);
}

fn flate2_decode(g: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(g), &mut out).unwrap();
    out
}

#[test]
fn lookup_tag_delete_prune() {
    let root = TempRoot::new("ops");
    let mut store = ImageStore::open(root.layout()).unwrap();
    load_into(&mut store, fixture("whiteouts-crafted.tar")).unwrap();
    let hex = &FIXTURE_ID[7..];
    for name in [
        FIXTURE_ID,
        hex,
        &hex[..12],
        &FIXTURE_ID[..19],
        "docker.io/fixture/whiteouts:v1",
    ] {
        assert_eq!(store.resolve(name).unwrap().id, FIXTURE_ID, "{name}");
    }
    assert_eq!(
        store.resolve("fixture/whiteouts").unwrap_err().to_string(),
        "No such image: fixture/whiteouts:latest"
    );
    assert!(matches!(
        store.resolve("ffffff"),
        Err(ImageError::NotFound(_))
    ));

    store.tag("fixture/whiteouts:v1", "busybox", None).unwrap();
    store
        .tag(&hex[..8], "docker.io/library/other", Some("x"))
        .unwrap();
    assert!(matches!(
        store.tag(FIXTURE_ID, "bad repo", None),
        Err(ImageError::InvalidReference(_))
    ));
    assert!(matches!(
        store.tag("nope", "a", None),
        Err(ImageError::NotFound(_))
    ));
    assert_eq!(
        store.repo_tags(FIXTURE_ID),
        vec![
            "busybox:latest".to_string(),
            "fixture/whiteouts:v1".into(),
            "other:x".into()
        ]
    );
    let v = store.inspect("busybox").unwrap();
    assert_eq!(v["RootFS"]["Layers"], json!([DIFF1, DIFF2]));
    assert_eq!(v["Size"], 82 + 27 + 6 + 6 + 2 + 8 + 2);
    assert_eq!(v["Config"]["WorkingDir"], "/data");
    assert!(v["GraphDriver"]["Data"]["LowerDir"]
        .as_str()
        .unwrap()
        .ends_with("/diff"));
    assert_ne!(v["Metadata"]["LastTagTime"], "0001-01-01T00:00:00Z");
    let h = store.history("busybox").unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[0]["CreatedBy"], "layer two: delete a.txt, opaque dir");
    assert_eq!(h[1]["Id"], "<missing>");
    assert_eq!(h[0]["Created"], 1_700_000_000);

    let rows = store
        .list(&ListFilters::from_json(r#"{"reference":["fixture/*"]}"#).unwrap())
        .unwrap();
    assert_eq!(rows[0]["RepoTags"], json!(["fixture/whiteouts:v1"]));
    assert_eq!(
        rows[0]["Labels"],
        json!({"org.example.fixture": "whiteouts"})
    );
    assert_eq!(rows[0]["Created"], 1_700_000_000);
    assert!(store
        .list(&ListFilters::from_json(r#"{"label":["org.example.fixture=nope"]}"#).unwrap())
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .list(&ListFilters::from_json(r#"{"label":["org.example.fixture"]}"#).unwrap())
            .unwrap()
            .len(),
        1
    );
    assert!(ListFilters::from_json(r#"{"bogus":["x"]}"#).is_err());

    let none = |_: &str| None;
    let stopped = |_: &str| {
        Some(ContainerUse {
            container_id: "c0ffee0000000000".into(),
            running: false,
        })
    };
    let running = |_: &str| {
        Some(ContainerUse {
            container_id: "c0ffee0000000000".into(),
            running: true,
        })
    };
    // By ID with several repositories: refused unless forced.
    let e = store.delete(&hex[..12], false, &none).unwrap_err();
    assert_eq!(e.to_string(), format!("conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories", &hex[..12]));
    // By name: only untag.
    assert_eq!(
        store.delete("busybox", false, &none).unwrap(),
        vec![json!({"Untagged": "busybox:latest"})]
    );
    // Running container blocks even a forced delete by ID.
    let e = store.delete(FIXTURE_ID, true, &running).unwrap_err();
    assert!(matches!(e, ImageError::Conflict(_)) && e.to_string().contains("cannot be forced"));
    assert!(store
        .delete(FIXTURE_ID, false, &stopped)
        .unwrap_err()
        .to_string()
        .contains("stopped container c0ffee000000"));
    assert_eq!(
        store.delete("other:x", false, &none).unwrap(),
        vec![json!({"Untagged": "other:x"})]
    );
    // Last tag, by name: untag and delete with its layers.
    let out = store.delete("fixture/whiteouts:v1", false, &none).unwrap();
    assert_eq!(out[0], json!({"Untagged": "fixture/whiteouts:v1"}));
    assert_eq!(out[1], json!({"Deleted": FIXTURE_ID}));
    assert_eq!(out.len(), 4);
    assert_empty_store(&root.layout());
    assert!(matches!(
        store.delete(FIXTURE_ID, false, &none),
        Err(ImageError::NotFound(_))
    ));

    // Prune: dangling images go, tagged ones stay.
    load_into(&mut store, fixture("whiteouts-oci.tar")).unwrap();
    load_into(&mut store, fixture("whiteouts-crafted.tar")).unwrap();
    let r = store.prune(&ListFilters::default(), &none).unwrap();
    assert_eq!(r["ImagesDeleted"], json!([{"Deleted": FIXTURE_OCI_ID}]));
    assert_eq!(r["SpaceReclaimed"], 0);
    assert_eq!(store.images().count(), 1);
    let r = store
        .prune(
            &ListFilters::from_json(r#"{"dangling":["false"]}"#).unwrap(),
            &none,
        )
        .unwrap();
    assert_eq!(r["SpaceReclaimed"], 133);
    assert_empty_store(&root.layout());
}

#[test]
fn ambiguous_short_ids_are_rejected() {
    let root = TempRoot::new("ambig");
    let mut store = ImageStore::open(root.layout()).unwrap();
    let mut ids: Vec<String> = Vec::new();
    let mut i = 0;
    let clash = loop {
        let opts = ImportOptions {
            changes: vec![format!("LABEL n={i}")],
            ..Default::default()
        };
        let id = import(&mut store, &opts).unwrap();
        if let Some(other) = ids.iter().find(|o| o[7..8] == id[7..8]) {
            break (other.clone(), id);
        }
        ids.push(id);
        i += 1;
    };
    let e = store.resolve(&clash.0[7..8]).unwrap_err();
    assert!(matches!(e, ImageError::AmbiguousReference(_)), "{e:?}");
    assert_eq!(store.resolve(&clash.1[7..20]).unwrap().id, clash.1);
}

#[test]
fn killed_worker_temps_are_removed() {
    let root = TempRoot::new("killed");
    let layout = root.layout();
    let store = ImageStore::open(layout.clone()).unwrap();
    let dir = layout.layers().join(".tmp-4242-0");
    fs::create_dir_all(dir.join("diff")).unwrap();
    let cfg = layout.configs().join(".tmp-abc.json-4242");
    fs::write(&cfg, b"{").unwrap();
    let other = layout.configs().join(".tmp-abc.json-4243");
    fs::write(&other, b"{").unwrap();
    store.remove_worker_temps(4242);
    assert!(!dir.exists() && !cfg.exists());
    assert!(other.exists(), "another process's temp file was removed");
}

#[test]
fn startup_cleans_crash_leftovers() {
    let root = TempRoot::new("crash");
    let layout = root.layout();
    {
        let mut store = ImageStore::open(layout.clone()).unwrap();
        load_into(&mut store, fixture("whiteouts-crafted.tar")).unwrap();
    }
    // kill -9 during an extraction, between layer commit and config write,
    // and during a delete.
    let tmp = layout.new_temp_dir().unwrap();
    fs::create_dir_all(tmp.join("diff/half")).unwrap();
    fs::write(layout.configs().join(".tmp-abc.json-1"), b"{").unwrap();
    let orphan = layout.layers().join("ab".repeat(32));
    fs::create_dir_all(orphan.join("diff")).unwrap();
    fs::write(orphan.join("layer.json"), b"{}").unwrap();
    // A config whose layer vanished is dropped, not served half.
    let cfg = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}"#;
    let broken = layout.write_config(cfg).unwrap();
    let store = ImageStore::open(layout.clone()).unwrap();
    assert_eq!(store.images().count(), 1);
    assert!(store.get(&broken).is_none());
    assert_eq!(
        names(&layout.layers()),
        vec![DIFF1[7..].to_string(), DIFF2[7..].to_string()]
    );
    assert_eq!(
        names(&layout.configs()),
        vec![format!("{}.json", &FIXTURE_ID[7..])]
    );
    assert_eq!(
        store.resolve("fixture/whiteouts:v1").unwrap().id,
        FIXTURE_ID
    );
}

#[test]
fn long_names_and_gzip_archives() {
    // GNU long-name records survive extraction and byte-exact export.
    let long = format!("{}/file.txt", "d".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o600);
    h.set_cksum();
    b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let root = TempRoot::new("long");
    let layout = root.layout();
    layout.create_dirs().unwrap();
    let tmp = layout.new_temp_dir().unwrap();
    let info = extract_layer(Cursor::new(&tar), &tmp, &Budget::default()).unwrap();
    assert_eq!(fs::read(tmp.join("diff").join(&long)).unwrap(), b"hello");
    let mut out = Vec::new();
    export_layer(&tmp, &info.diff_id, &mut out).unwrap();
    assert_eq!(out, tar);
    // A gzip-compressed docker-save archive loads like the plain one.
    let mut store = ImageStore::open(layout.clone()).unwrap();
    let plain = fs::read(fixtures_dir().join("whiteouts-crafted.tar")).unwrap();
    let s = load_into(&mut store, Cursor::new(gzip(&plain))).unwrap();
    assert_eq!(s.images[0].id, FIXTURE_ID);
}
