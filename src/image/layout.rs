//! Where the image store lives on disk, and the crash-safe steps that make
//! layers and configs appear. Used by the load/import worker and the daemon.
//!
//! ```text
//! <data-root>/image/layers/<diffid-hex>/{layer.json,diff/,tar-split.gz,extra/}
//! <data-root>/image/configs/<image-id-hex>.json     exact config bytes
//! <data-root>/image/references.json                 tags -> image IDs
//! ```
//! Layers are keyed by DiffID, not ChainID: an extracted layer's content
//! depends only on its own tar, so one directory serves every image that has
//! that diff, whatever sits below it. ChainIDs are computed for the API.
//! A layer directory exists under its final name only once complete (built
//! under a `.tmp-` name, synced, renamed); a config is written only after all
//! its layers; the start-up cleaner removes `.tmp-` leftovers and layers no
//! config references (a crash between the two steps).
//!
//! An image's config and its tags land together: before writing the configs
//! a load writes one journal file (`journal/<pid>-<n>.json`, atomically)
//! naming every image ID and its tags; the daemon removes it once the tags
//! are in `references.json`, and start-up replays what a crash left, so an
//! image is never present without the tags its load gave it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::atomic::{self, TEMP_PREFIX};
use crate::image::digest::{digest_hex, sha256_digest};
use crate::image::error::{ImageError, Result};
use crate::image::layer_extract::{sync_tree, LayerInfo, DIFF_DIR};

pub const LAYER_META: &str = "layer.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl Layout {
    pub fn new(data_root: &Path) -> Layout {
        Layout {
            root: data_root.join("image"),
        }
    }
    pub fn layers(&self) -> PathBuf {
        self.root.join("layers")
    }
    pub fn configs(&self) -> PathBuf {
        self.root.join("configs")
    }
    pub fn references(&self) -> PathBuf {
        self.root.join("references.json")
    }
    /// `diff_id` must be a valid `sha256:<hex>` (checked by callers).
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.layers()
            .join(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }
    /// The directory to use as an overlayfs lowerdir.
    pub fn diff_dir(&self, diff_id: &str) -> PathBuf {
        self.layer_dir(diff_id).join(DIFF_DIR)
    }
    pub fn config_path(&self, id: &str) -> PathBuf {
        self.configs()
            .join(format!("{}.json", id.strip_prefix("sha256:").unwrap_or(id)))
    }
    /// Pending image/tag commits (see the module doc).
    pub fn journal_dir(&self) -> PathBuf {
        self.root.join("journal")
    }
    pub fn create_dirs(&self) -> Result<()> {
        fs::create_dir_all(self.layers())?;
        fs::create_dir_all(self.configs())?;
        fs::create_dir_all(self.journal_dir())?;
        Ok(())
    }

    /// Durably record the images (IDs and tags) a load is about to make
    /// visible; returns the journal file to pass to the daemon.
    pub fn write_journal(&self, entry: &impl Serialize) -> Result<PathBuf> {
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let p = self
            .journal_dir()
            .join(format!("{}-{seq}.json", std::process::id()));
        let data = serde_json::to_vec(entry).map_err(|e| ImageError::Io(io::Error::other(e)))?;
        atomic::write_file(&p, &data)?;
        crate::failpoint!("journal.written");
        Ok(p)
    }

    /// Is `p` a journal file of this store (not some path a message names)?
    pub fn is_journal(&self, p: &Path) -> bool {
        p.parent() == Some(self.journal_dir().as_path())
            && p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".json") && !n.starts_with(TEMP_PREFIX))
    }

    /// The journal files left on disk.
    pub fn journals(&self) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(self.journal_dir()) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| self.is_journal(p))
            .collect();
        crate::sort::sort(&mut v);
        v
    }

    /// Remove a journal once its tags are durable.
    pub fn remove_journal(&self, p: &Path) -> Result<()> {
        if self.is_journal(p) {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            atomic::sync_dir(&self.journal_dir())?;
        }
        Ok(())
    }
    pub fn layer_exists(&self, diff_id: &str) -> bool {
        self.layer_dir(diff_id).join(LAYER_META).is_file()
    }
    pub fn layer_info(&self, diff_id: &str) -> Result<LayerInfo> {
        let data = fs::read(self.layer_dir(diff_id).join(LAYER_META))?;
        serde_json::from_slice(&data)
            .map_err(|e| ImageError::Corrupt(format!("layer {diff_id} metadata: {e}")))
    }
    /// A fresh, empty temp directory under layers/ (removed at start-up if we crash).
    pub fn new_temp_dir(&self) -> Result<PathBuf> {
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let p = self
            .layers()
            .join(format!("{TEMP_PREFIX}{}-{seq}", std::process::id()));
        if p.exists() {
            fs::remove_dir_all(&p)?;
        }
        fs::create_dir(&p)?;
        Ok(p)
    }

    /// Make an extracted layer durable and visible. Returns false when the
    /// layer already existed (another load won): `tmp` is then removed.
    pub fn commit_layer(&self, tmp: &Path, info: &LayerInfo) -> Result<bool> {
        digest_hex(&info.diff_id)?;
        crate::failpoint!("layer.extracted");
        let meta = serde_json::to_vec(info).map_err(|e| ImageError::Io(io::Error::other(e)))?;
        fs::write(tmp.join(LAYER_META), meta)?;
        crate::failpoint!("layer.meta_written");
        sync_tree(tmp)?;
        crate::failpoint!("layer.synced");
        let dest = self.layer_dir(&info.diff_id);
        if self.layer_exists(&info.diff_id) {
            fs::remove_dir_all(tmp)?;
            return Ok(false);
        }
        if dest.exists() {
            // A final-named dir without metadata cannot come from us; replace it.
            remove_layer_dir(self, &dest)?;
        }
        match fs::rename(tmp, &dest) {
            Ok(()) => {}
            Err(e) if dest.exists() => {
                log::debug!("layer {} appeared concurrently: {e}", info.diff_id);
                fs::remove_dir_all(tmp)?;
                return Ok(false);
            }
            Err(e) => return Err(e.into()),
        }
        crate::failpoint!("layer.renamed");
        atomic::sync_dir(&self.layers())?;
        Ok(true)
    }

    /// Write an image config (exact bytes) under its ID. Idempotent.
    pub fn write_config(&self, config: &[u8]) -> Result<String> {
        self.write_config_new(config).map(|(id, _)| id)
    }

    /// `write_config`, also telling whether the file is new.
    pub fn write_config_new(&self, config: &[u8]) -> Result<(String, bool)> {
        let id = sha256_digest(config);
        let p = self.config_path(&id);
        if p.exists() {
            return Ok((id, false));
        }
        atomic::write_file(&p, config)?;
        crate::failpoint!("config.written");
        Ok((id, true))
    }
}

impl Layout {
    /// Records of pulls in progress (`pulls/<image-id-hex>.json`): the
    /// layers they have committed before their config exists.
    pub fn pulls_dir(&self) -> PathBuf {
        self.root.join("pulls")
    }

    /// Durably note that a pull will commit `diff_ids` for image `id`, so
    /// a crash before its config lands does not collect them.
    pub fn hold_layers(&self, id: &str, diff_ids: &[String]) -> Result<PathBuf> {
        fs::create_dir_all(self.pulls_dir())?;
        let p = self
            .pulls_dir()
            .join(format!("{}.json", id.strip_prefix("sha256:").unwrap_or(id)));
        let data = serde_json::to_vec(diff_ids).map_err(|e| ImageError::Io(io::Error::other(e)))?;
        atomic::write_file(&p, &data)?;
        crate::failpoint!("pull.hold_written");
        Ok(p)
    }

    /// The pull's config is written: its layers need no hold.
    pub fn release_layers(&self, record: &Path) -> Result<()> {
        if record.parent() == Some(self.pulls_dir().as_path()) {
            match fs::remove_file(record) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            crate::failpoint!("pull.hold_released");
            atomic::sync_dir(&self.pulls_dir())?;
        }
        Ok(())
    }

    /// Every layer an unfinished pull holds.
    pub fn held_layers(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.pulls_dir()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
            .filter_map(|e| fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Vec<String>>(&b).ok())
            .flatten()
            .collect()
    }
}

/// Remove a layer directory: rename it to a temp name first (atomic, so the
/// layer is gone at once even if we crash mid-delete), then delete.
pub fn remove_layer_dir(layout: &Layout, dir: &Path) -> Result<()> {
    let tmp = layout.new_temp_dir()?;
    fs::remove_dir(&tmp)?;
    fs::rename(dir, &tmp)?;
    crate::failpoint!("layer.remove_renamed");
    fs::remove_dir_all(&tmp)?;
    Ok(())
}
