//! `docker load`: read a docker-save (legacy) or OCI-layout archive from a
//! stream, extract its layers as they go by, resolve manifests at the end.
//!
//! Runs in the worker process. The archive may list manifest.json/index.json
//! after the layers, so every layer-looking entry is extracted into a temp
//! dir while hashing (DiffID of the uncompressed tar, digest of the blob as
//! stored); small JSON files are kept in memory under a cap. Nothing becomes
//! visible until everything is verified; layers nobody references are dropped.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::archive_oci::resolve_oci;
use super::digest::{digest_hex, sha256_digest, HashReader};
use super::error::{ImageError, Result};
use super::layer_extract::{extract_layer, is_gzip, maybe_gunzip, peek, Budget, LayerInfo};
use super::reference::Reference;
use super::tarstream::{Kind, Walker};
use crate::image::layout::Layout;

/// One JSON file of the archive is held in memory up to this size.
pub const JSON_MAX: u64 = 8 << 20;

/// And all of them together up to this.
pub const JSON_TOTAL_MAX: u64 = 64 << 20;

/// What a load/import did, small enough to send back over the worker pipe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadSummary {
    pub images: Vec<LoadedImage>,
    /// The journal that records these images with their tags; the daemon
    /// removes it once the tags are persisted (see `store::layout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedImage {
    /// `sha256:<hex>` of the config.
    pub id: String,
    /// Fully normalised references to point at it (`docker.io/library/x:tag`).
    pub tags: Vec<String>,
}

/// Temp layer dirs of a load; whatever is still listed on drop is removed,
/// so a failed load leaves nothing behind.
#[derive(Default)]
pub(crate) struct TempDirs(pub Vec<PathBuf>);

impl TempDirs {
    pub fn forget(&mut self, p: &Path) {
        self.0.retain(|x| x != p);
    }
}

impl Drop for TempDirs {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_dir_all(p);
        }
    }
}

struct PendingLayer {
    info: LayerInfo,
    /// Digest of the entry as stored in the archive (compressed for gzip blobs).
    blob_digest: String,
}

#[derive(Default)]
pub(crate) struct Collected {
    json: HashMap<String, Vec<u8>>,
    json_total: u64,
    /// Archive path -> extracted layer.
    layers: HashMap<String, PendingLayer>,
    /// DiffID -> temp dir, to share a layer listed twice in one archive.
    by_diff: HashMap<String, PathBuf>,
    /// Symlinked entries (newer docker save links `<id>/layer.tar` to blobs/).
    aliases: HashMap<String, String>,
}

fn norm(p: &str) -> String {
    let mut s = p;
    while let Some(r) = s.strip_prefix("./") {
        s = r;
    }
    s.trim_start_matches('/').to_string()
}

/// Resolve `target` relative to the directory of `path`, staying in the archive.
fn resolve_link(path: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    if !target.starts_with('/') {
        parts.pop();
    }
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn is_small_json_name(p: &str) -> bool {
    matches!(
        p,
        "manifest.json" | "repositories" | "index.json" | "oci-layout"
    ) || p.ends_with(".json")
        || p.ends_with("/json")
        || p.ends_with("/VERSION")
}

/// Does this look like the start of a tar stream (or a gzip one)?
fn looks_like_layer(head: &[u8]) -> bool {
    if is_gzip(head) {
        return true;
    }
    if head.len() < 512 {
        return false;
    }
    head[..512].iter().all(|&b| b == 0) || &head[257..262] == b"ustar"
}

impl Collected {
    fn keep_json(&mut self, path: String, r: &mut dyn Read, size: u64) -> Result<()> {
        if size > JSON_MAX || self.json_total + size > JSON_TOTAL_MAX {
            return Err(ImageError::TooLarge(format!(
                "{path} is too large ({size} bytes)"
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.take(JSON_MAX + 1).read_to_end(&mut buf)?;
        self.json_total += buf.len() as u64;
        self.json.insert(path, buf);
        Ok(())
    }

    fn extract(
        &mut self,
        layout: &Layout,
        temps: &mut TempDirs,
        path: String,
        r: &mut dyn Read,
        gzip: bool,
        budget: &Budget,
    ) -> Result<()> {
        let tmp = layout.new_temp_dir()?;
        temps.0.push(tmp.clone());
        let (info, blob_digest) = if gzip {
            let mut hashed = HashReader::new(r);
            let info = extract_layer(&mut hashed, &tmp, budget)?;
            // A gzip trailer may follow the tar: hash all of the blob.
            io::copy(&mut hashed, &mut io::sink())?;
            let (blob_digest, _, _) = hashed.finish();
            (info, blob_digest)
        } else {
            // A plain layer tar is its own blob, and extract_layer hashes every
            // byte of it up to the end of the entry (padding and end blocks
            // included): the DiffID is the blob's digest, so one pass of
            // sha256 instead of two.
            let info = extract_layer(&mut *r, &tmp, budget)?;
            if io::copy(r, &mut io::sink())? != 0 {
                return Err(ImageError::BadArchive(format!(
                    "{path}: bytes after the end of the layer tar"
                )));
            }
            let blob_digest = info.diff_id.clone();
            (info, blob_digest)
        };
        // A layer the store (or an earlier entry) already has is dropped;
        // a new one is tracked in `by_diff` until it is committed.
        if layout.layer_exists(&info.diff_id) || self.by_diff.contains_key(&info.diff_id) {
            fs::remove_dir_all(&tmp)?;
            temps.forget(&tmp);
        } else {
            self.by_diff.insert(info.diff_id.clone(), tmp);
        }
        self.layers.insert(path, PendingLayer { info, blob_digest });
        Ok(())
    }

    fn layer(&self, path: &str) -> Option<&PendingLayer> {
        let p = norm(path);
        let p = self.aliases.get(&p).cloned().unwrap_or(p);
        self.layers.get(&p)
    }

    pub(crate) fn json_file(&self, path: &str) -> Option<&Vec<u8>> {
        let p = norm(path);
        let p = self.aliases.get(&p).cloned().unwrap_or(p);
        self.json.get(&p)
    }
}

/// A fully verified image, ready to commit.
pub(crate) struct Resolved {
    pub(crate) config: Vec<u8>,
    pub(crate) diff_ids: Vec<String>,
    pub(crate) tags: Vec<String>,
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(name: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| ImageError::BadArchive(format!("{name}: {e}")))
}

/// The diff_ids of a config, checked.
pub fn config_diff_ids(config: &[u8]) -> Result<Vec<String>> {
    let v: Value = parse_json("image config", config)?;
    let ids = v
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| ImageError::BadArchive("image config has no rootfs.diff_ids".into()))?;
    let mut out = Vec::with_capacity(ids.len());
    for d in ids {
        let s = d
            .as_str()
            .ok_or_else(|| ImageError::BadArchive("invalid diff_id in image config".into()))?;
        digest_hex(s)?;
        out.push(s.to_string());
    }
    Ok(out)
}

pub(crate) fn check_layers(
    c: &Collected,
    config: &[u8],
    layer_paths: &[(String, Option<String>)],
) -> Result<Vec<String>> {
    let diff_ids = config_diff_ids(config)?;
    if diff_ids.len() != layer_paths.len() {
        return Err(ImageError::BadArchive(format!(
            "invalid manifest, layers length mismatch: expected {}, got {}",
            diff_ids.len(),
            layer_paths.len()
        )));
    }
    for (i, ((path, blob_digest), want)) in layer_paths.iter().zip(&diff_ids).enumerate() {
        let l = c
            .layer(path)
            .ok_or_else(|| ImageError::BadArchive(format!("layer {path} not found in archive")))?;
        if let Some(d) = blob_digest {
            if &l.blob_digest != d {
                return Err(ImageError::BadArchive(format!(
                    "digest mismatch for blob {path}: expected {d}, got {}",
                    l.blob_digest
                )));
            }
        }
        if &l.info.diff_id != want {
            return Err(ImageError::BadArchive(format!(
                "invalid diffID for layer {i}: expected {want:?}, got {:?}",
                l.info.diff_id
            )));
        }
    }
    Ok(diff_ids)
}

pub(crate) fn parse_tag(t: &str) -> Result<String> {
    let r = Reference::parse(t)?;
    if r.digest.is_some() {
        return Err(ImageError::InvalidReference(format!(
            "invalid tag {t:?}: archive tags cannot carry a digest"
        )));
    }
    Ok(r.with_default_tag().to_string())
}

#[derive(Deserialize)]
struct DockerManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn resolve_docker(c: &Collected, manifest: &[u8]) -> Result<Vec<Resolved>> {
    let entries: Vec<DockerManifest> = parse_json("manifest.json", manifest)?;
    let mut out = Vec::new();
    for m in entries {
        let config = c
            .json_file(&m.config)
            .ok_or_else(|| {
                ImageError::BadArchive(format!("config {} not found in archive", m.config))
            })?
            .clone();
        let paths: Vec<(String, Option<String>)> =
            m.layers.iter().map(|p| (p.clone(), None)).collect();
        let diff_ids = check_layers(c, &config, &paths)?;
        let tags = m
            .repo_tags
            .unwrap_or_default()
            .iter()
            .map(|t| parse_tag(t))
            .collect::<Result<_>>()?;
        out.push(Resolved {
            config,
            diff_ids,
            tags,
        });
    }
    Ok(out)
}

/// Commit verified images: layers first, then configs. Returns the summary.
fn commit(
    layout: &Layout,
    c: &mut Collected,
    temps: &mut TempDirs,
    images: Vec<Resolved>,
) -> Result<LoadSummary> {
    let mut summary = LoadSummary::default();
    let mut committed_new: Vec<String> = Vec::new();
    let mut new_configs: Vec<String> = Vec::new();
    let result = (|| {
        for img in &images {
            for d in &img.diff_ids {
                if layout.layer_exists(d) {
                    continue;
                }
                let tmp = c
                    .by_diff
                    .get(d)
                    .cloned()
                    .ok_or_else(|| ImageError::BadArchive(format!("layer {d} missing")))?;
                let info = c
                    .layers
                    .values()
                    .find(|l| &l.info.diff_id == d)
                    .map(|l| l.info.clone())
                    .ok_or_else(|| ImageError::BadArchive(format!("layer {d} missing")))?;
                if layout.commit_layer(&tmp, &info)? {
                    committed_new.push(d.clone());
                }
                temps.forget(&tmp);
            }
        }
        // The configs become visible only with their tags on record.
        let planned = LoadSummary {
            images: images
                .iter()
                .map(|img| LoadedImage {
                    id: sha256_digest(&img.config),
                    tags: img.tags.clone(),
                })
                .collect(),
            journal: None,
        };
        summary.journal = Some(layout.write_journal(&planned)?);
        for img in &images {
            let (id, new) = layout.write_config_new(&img.config)?;
            if new {
                new_configs.push(id.clone());
            }
            summary.images.push(LoadedImage {
                id,
                tags: img.tags.clone(),
            });
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Nothing of this load stays visible: its new configs, then its
        // journal, then the layers no remaining config uses.
        for id in &new_configs {
            let _ = fs::remove_file(layout.config_path(id));
        }
        summary.images.retain(|i| !new_configs.contains(&i.id));
        if let Some(j) = &summary.journal {
            let _ = layout.remove_journal(j);
        }
        // Do not leave layers that no image on disk uses.
        for d in committed_new {
            let used = summary.images.iter().any(|i| {
                fs::read(layout.config_path(&i.id))
                    .ok()
                    .and_then(|b| config_diff_ids(&b).ok())
                    .is_some_and(|ids| ids.contains(&d))
            });
            if !used {
                let _ = crate::image::layout::remove_layer_dir(layout, &layout.layer_dir(&d));
            }
        }
        return Err(e);
    }
    Ok(summary)
}

/// Load a `docker save` or OCI archive (plain or gzip) from `input`.
/// Writes layers and configs; the caller applies the tags (ImageStore::apply_load).
pub fn load_archive<R: Read>(layout: &Layout, input: R, budget: &Budget) -> Result<LoadSummary> {
    layout.create_dirs()?;
    let outer_budget = Budget::new(budget.max_total, budget.max_gzip_ratio);
    let outer = maybe_gunzip(input, &outer_budget)?;
    // Our own walker, not the tar crate's reader: it caps GNU long-name and
    // PAX records at 1 MiB as layer extraction does (the tar crate holds any
    // size in memory).
    let mut walker = Walker::new(outer);
    let mut temps = TempDirs::default();
    let mut c = Collected::default();
    while let Some(e) = walker
        .next(&mut io::sink())
        .map_err(ImageError::into_archive)?
    {
        let path = norm(&String::from_utf8_lossy(&e.path));
        let size = e.size;
        let mut entry = (&mut walker.reader).take(size);
        if matches!(e.kind, Kind::Symlink | Kind::HardLink) && !e.link.is_empty() {
            let t = String::from_utf8_lossy(&e.link).into_owned();
            let target = if e.kind == Kind::HardLink {
                Some(norm(&t))
            } else {
                resolve_link(&path, &t)
            };
            if let Some(target) = target {
                c.aliases.insert(path.clone(), target);
            }
        }
        if e.kind == Kind::Regular {
            collect_entry(layout, &mut c, &mut temps, path, &mut entry, size, budget)?;
        }
        // Whatever the entry's reader left unread, then the padding.
        io::copy(&mut entry, &mut io::sink()).map_err(|e| ImageError::from(e).into_archive())?;
        if entry.limit() != 0 {
            return Err(ImageError::BadArchive(
                "unexpected EOF in tar stream".into(),
            ));
        }
        walker
            .copy_padding(size, &mut io::sink())
            .map_err(ImageError::into_archive)?;
    }
    let images = if let Some(m) = c.json.get("manifest.json").cloned() {
        resolve_docker(&c, &m)?
    } else if let Some(i) = c.json.get("index.json").cloned() {
        resolve_oci(&c, &i)?
    } else {
        return Err(ImageError::BadArchive(
            "no manifest.json or index.json found (is this a docker save / OCI archive?)".into(),
        ));
    };
    if images.is_empty() {
        return Err(ImageError::BadArchive("archive contains no images".into()));
    }
    commit(layout, &mut c, &mut temps, images)
}

/// One regular file of the outer archive: a layer is extracted, small JSON
/// kept, anything else left for the caller to skip.
fn collect_entry(
    layout: &Layout,
    c: &mut Collected,
    temps: &mut TempDirs,
    path: String,
    entry: &mut dyn Read,
    size: u64,
    budget: &Budget,
) -> Result<()> {
    let layerish = path.ends_with("/layer.tar") || path.starts_with("blobs/");
    if layerish {
        let (head, mut r) =
            peek(&mut *entry, 512).map_err(|e| ImageError::from(e).into_archive())?;
        if looks_like_layer(&head) {
            c.extract(layout, temps, path, &mut r, is_gzip(&head), budget)?;
        } else if size <= JSON_MAX {
            c.keep_json(path, &mut r, size)?;
        } else {
            io::copy(&mut r, &mut io::sink())?;
        }
    } else if is_small_json_name(&path) {
        c.keep_json(path, entry, size)?;
    }
    Ok(())
}

impl ImageError {
    /// Plain I/O errors while reading the client's stream mean a broken archive.
    fn into_archive(self) -> ImageError {
        match self {
            ImageError::Io(e) => ImageError::BadArchive(e.to_string()),
            other => other,
        }
    }
}
