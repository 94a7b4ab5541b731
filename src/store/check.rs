//! `coracle check-store [--repair] [--deep] [--data-root DIR]`: verify a
//! data root offline (no daemon running on it).
//!
//! Two kinds of finding. A *problem* is an inconsistency no crash may leave
//! (an image whose layer is missing or of the wrong size, a tag naming no
//! image, a container whose record, image or directories are missing): the
//! store's write orders exist so that these never happen. A *leftover* is
//! what a crash legitimately leaves and start-up cleans: temporary files and
//! directories (`.tmp-*`), layers no image or pull holds, load journals not
//! yet replayed, mounts under the data root. `--repair` removes the
//! leftovers through the same openers the daemon runs at start-up (one
//! implementation), plus container directories without a readable record,
//! and says what it did. `--deep` also regenerates every layer's tar and
//! checks its DiffID. Exit status 0 when nothing remains, 1 otherwise.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::atomic::TEMP_PREFIX;
use crate::image::archive_load::config_diff_ids;
use crate::image::digest::{is_hex64, sha256_digest};
use crate::image::layer_extract::DIFF_DIR;
use crate::image::layout::{Layout, LAYER_META};

use super::images::RefsFile;

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    /// (kind, path) of each leftover a crash may leave.
    pub leftovers: Vec<(&'static str, PathBuf)>,
}

/// The command's options.
pub struct Options {
    pub data_root: PathBuf,
    pub repair: bool,
    pub deep: bool,
}

/// `coracle check-store`: print the findings (and repairs); the exit status.
pub fn run(opts: &Options, out: &mut dyn Write) -> i32 {
    let root = &opts.data_root;
    if !root.is_dir() {
        let _ = writeln!(out, "check-store: {}: no such data root", root.display());
        return 1;
    }
    let before = check(root, opts.deep);
    print(&before, out);
    if !opts.repair {
        let _ = writeln!(
            out,
            "check-store: {} problem(s), {} leftover(s)",
            before.problems.len(),
            before.leftovers.len()
        );
        return i32::from(!before.problems.is_empty() || !before.leftovers.is_empty());
    }
    if let Err(e) = repair(root, &before) {
        let _ = writeln!(out, "check-store: repair failed: {e}");
    }
    let after = check(root, opts.deep);
    let still: HashSet<&PathBuf> = after.leftovers.iter().map(|(_, p)| p).collect();
    let mut repaired = 0;
    for (kind, p) in &before.leftovers {
        if !still.contains(p) {
            repaired += 1;
            let _ = writeln!(out, "repaired: {kind} {}", p.display());
        }
    }
    for (kind, p) in &after.leftovers {
        let _ = writeln!(out, "remains: {kind} {}", p.display());
    }
    for p in &after.problems {
        let _ = writeln!(out, "remains: {p}");
    }
    let _ = writeln!(
        out,
        "check-store: {repaired} repaired, {} problem(s) and {} leftover(s) remain",
        after.problems.len(),
        after.leftovers.len()
    );
    i32::from(!after.problems.is_empty() || !after.leftovers.is_empty())
}

fn print(r: &Report, out: &mut dyn Write) {
    for p in &r.problems {
        let _ = writeln!(out, "problem: {p}");
    }
    for (kind, p) in &r.leftovers {
        let _ = writeln!(out, "leftover: {kind} {}", p.display());
    }
}

/// Check a data root without changing it.
pub fn check(root: &Path, deep: bool) -> Report {
    let mut r = Report::default();
    let layout = Layout::new(root);
    temps(root, &mut r);
    for d in [
        layout.root.clone(),
        layout.layers(),
        layout.configs(),
        layout.journal_dir(),
        layout.pulls_dir(),
        root.join("containers"),
        root.join("volumes"),
        root.join("networks"),
    ] {
        temps(&d, &mut r);
    }
    let images = check_images(&layout, deep, &mut r);
    check_containers(root, &images, &mut r);
    check_volumes(root, &mut r);
    check_networks(root, &mut r);
    for m in mounts_under(root) {
        r.leftovers.push(("mount", m));
    }
    r
}

fn temps(dir: &Path, r: &mut Report) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .map(|e| e.path())
        .collect();
    crate::sort::sort(&mut v);
    r.leftovers.extend(v.into_iter().map(|p| ("temp", p)));
}

/// The images' configs, layers and tags; returns the valid image IDs.
fn check_images(layout: &Layout, deep: bool, r: &mut Report) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut used: HashSet<String> = layout.held_layers().into_iter().collect();
    let mut checked: HashSet<String> = HashSet::new();
    let mut configs: Vec<_> = fs::read_dir(layout.configs())
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    crate::sort::sort(&mut configs);
    for p in configs {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(hex) = name.as_deref().and_then(|n| n.strip_suffix(".json")) else {
            continue;
        };
        if !is_hex64(hex) {
            continue;
        }
        let id = format!("sha256:{hex}");
        let bytes = match fs::read(&p) {
            Ok(b) => b,
            Err(e) => {
                r.problems
                    .push(format!("image {id}: config unreadable: {e}"));
                continue;
            }
        };
        if sha256_digest(&bytes) != id {
            r.problems
                .push(format!("image {id}: config does not match its digest"));
            continue;
        }
        let diff_ids = match config_diff_ids(&bytes) {
            Ok(d) => d,
            Err(e) => {
                r.problems.push(format!("image {id}: config: {e}"));
                continue;
            }
        };
        let mut ok = true;
        for d in &diff_ids {
            used.insert(d.clone());
            if checked.insert(d.clone()) {
                if let Err(e) = check_layer(layout, d, deep) {
                    r.problems.push(format!("image {id}: layer {d}: {e}"));
                    ok = false;
                }
            }
        }
        if ok {
            ids.insert(id);
        }
    }
    if let Ok(rd) = fs::read_dir(layout.layers()) {
        let mut orphans: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                is_hex64(&n) && !used.contains(&format!("sha256:{n}"))
            })
            .map(|e| e.path())
            .collect();
        crate::sort::sort(&mut orphans);
        r.leftovers
            .extend(orphans.into_iter().map(|p| ("unreferenced layer", p)));
    }
    match fs::read(layout.references()) {
        Ok(b) => match serde_json::from_slice::<RefsFile>(&b) {
            Ok(f) => {
                for (tag, id) in &f.refs {
                    if !ids.contains(id) {
                        r.problems
                            .push(format!("tag {tag} names image {id}, which is absent"));
                    }
                }
            }
            Err(e) => r.problems.push(format!("references.json: {e}")),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => r.problems.push(format!("references.json: {e}")),
    }
    for j in layout.journals() {
        r.leftovers.push(("load journal", j));
    }
    ids
}

/// A layer's record, directories and size (`deep`: its regenerated tar's
/// digest and length).
fn check_layer(layout: &Layout, diff_id: &str, deep: bool) -> Result<(), String> {
    let dir = layout.layer_dir(diff_id);
    if !dir.join(LAYER_META).is_file() {
        return Err("missing".into());
    }
    let info = layout.layer_info(diff_id).map_err(|e| e.to_string())?;
    if info.diff_id != diff_id {
        return Err(format!("record names {}", info.diff_id));
    }
    if !dir.join(DIFF_DIR).is_dir() {
        return Err("its diff directory is missing".into());
    }
    let size = regular_bytes(&dir.join(DIFF_DIR), &mut HashSet::new());
    if size != info.size {
        return Err(format!(
            "{size} bytes on disk, its record says {}",
            info.size
        ));
    }
    if deep {
        let n = crate::image::layer_export::export_layer(&dir, diff_id, io::sink())
            .map_err(|e| format!("content: {e}"))?;
        if n != info.tar_size {
            return Err(format!(
                "tar of {n} bytes, its record says {}",
                info.tar_size
            ));
        }
    }
    Ok(())
}

/// Bytes of the regular files under `dir`, each inode once.
fn regular_bytes(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if m.is_dir() {
            n += regular_bytes(&e.path(), seen);
        } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
            n += m.len();
        }
    }
    n
}

fn check_containers(root: &Path, images: &HashSet<String>, r: &mut Report) {
    let dir = root.join("containers");
    let Ok(rd) = fs::read_dir(&dir) else { return };
    let mut entries: Vec<_> = rd.flatten().collect();
    crate::sort::sort_by_key(&mut entries, |e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let path = e.path();
        let record = fs::read(path.join("config.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| {
                serde_json::from_slice::<crate::container::model::Container>(&b)
                    .map_err(|e| e.to_string())
            });
        let c = match record {
            Ok(c) if c.id == name => c,
            Ok(c) => {
                r.problems
                    .push(format!("container {name}: its record names {}", c.id));
                continue;
            }
            Err(err) => {
                r.leftovers.push(("container without a record", path));
                log::debug!("container {name}: {err}");
                continue;
            }
        };
        if !images.contains(&c.image) {
            r.problems
                .push(format!("container {name}: image {} is absent", c.image));
        }
        for d in ["upper", "work"] {
            if !path.join(d).is_dir() {
                r.problems
                    .push(format!("container {name}: its {d} directory is missing"));
            }
        }
    }
}

fn check_volumes(root: &Path, r: &mut Report) {
    let dir = root.join("volumes");
    let Ok(rd) = fs::read_dir(&dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let ok = fs::read(e.path().join("volume.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<crate::store::volumes::Volume>(&b).ok())
            .is_some_and(|v| v.name == name);
        if !ok {
            r.problems
                .push(format!("volume {name}: no readable record"));
        } else if !e.path().join("_data").is_dir() {
            r.problems.push(format!("volume {name}: _data is missing"));
        }
    }
}

fn check_networks(root: &Path, r: &mut Report) {
    let dir = root.join("networks");
    let Ok(rd) = fs::read_dir(&dir) else { return };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(TEMP_PREFIX) || !name.ends_with(".json") {
            continue;
        }
        let ok = fs::read(e.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some();
        if !ok {
            r.problems.push(format!("network record {name} unreadable"));
        }
    }
}

/// Mount points under the data root (with no daemon on it, all leftovers),
/// deepest first.
fn mounts_under(root: &Path) -> Vec<PathBuf> {
    let root = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: BTreeSet<PathBuf> = BTreeSet::new();
    for m in crate::runtime::mountinfo::parse(&text) {
        let p = PathBuf::from(&m.mount_point);
        if p.starts_with(&root) && p != root {
            v.insert(p);
        }
    }
    v.into_iter().rev().collect()
}

/// Remove the leftovers: mounts first, then the store openers' own start-up
/// cleaning (temps, unreferenced layers, journals replayed), then container
/// directories without a record.
fn repair(root: &Path, found: &Report) -> Result<(), String> {
    for (kind, p) in &found.leftovers {
        if *kind == "mount" {
            nix::mount::umount2(p.as_path(), nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| format!("unmount {}: {e}", p.display()))?;
        }
    }
    let removed = crate::atomic::remove_temp_leftovers(root).map_err(|e| e.to_string())?;
    log::debug!("{removed} temp entries under the data root");
    super::images::ImageStore::open(Layout::new(root)).map_err(|e| e.to_string())?;
    super::containers::ContainerDirs::new(root).map_err(|e| e.to_string())?;
    super::volumes::VolumeStore::open(root).map_err(|e| e.to_string())?;
    super::networks::NetworkStore::open(root).map_err(|e| e.to_string())?;
    for (kind, p) in &found.leftovers {
        if *kind == "container without a record" {
            fs::remove_dir_all(p).map_err(|e| format!("remove {}: {e}", p.display()))?;
        }
    }
    // The pull records' own temps.
    crate::atomic::remove_temp_leftovers(&Layout::new(root).pulls_dir())
        .map_err(|e| e.to_string())?;
    Ok(())
}
