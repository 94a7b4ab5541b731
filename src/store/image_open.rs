//! Opening the image index at start-up: configs read and checked, layers
//! sized, and what a crash left behind (temporary files, configs whose layers
//! are missing, layers nothing references) removed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;

use serde_json::Value;

use crate::atomic::remove_temp_leftovers;
use crate::image::archive_load::{config_diff_ids, LoadSummary};
use crate::image::digest::{chain_ids, is_hex64, sha256_digest};
use crate::image::error::{ImageError, Result};
use crate::image::layout::{remove_layer_dir, Layout};
use crate::timefmt::parse_rfc3339_secs as parse_rfc3339;

use super::images::{Image, ImageStore, RefsFile};

impl ImageStore {
    /// Load the index from disk, cleaning up after a crash: temp leftovers,
    /// configs whose layers are missing, layers no config references.
    /// Call only when no worker is running (start-up).
    pub fn open(layout: Layout) -> Result<ImageStore> {
        layout.create_dirs()?;
        remove_temp_leftovers(&layout.root)?;
        remove_temp_leftovers(&layout.layers())?;
        remove_temp_leftovers(&layout.configs())?;
        remove_temp_leftovers(&layout.journal_dir())?;
        let mut s = ImageStore {
            layout,
            images: BTreeMap::new(),
            refs: BTreeMap::new(),
            last_tag: BTreeMap::new(),
            layer_sizes: HashMap::new(),
            workers: 0,
        };
        for entry in fs::read_dir(s.layout.configs())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".json").filter(|h| is_hex64(h)) else {
                continue;
            };
            let id = format!("sha256:{hex}");
            match s.read_image(&id) {
                Ok(img) => {
                    s.images.insert(id, img);
                }
                Err(e) => {
                    log::warn!("dropping image {id}: {e}");
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        s.collect_unused_layers()?;
        if let Ok(data) = fs::read(s.layout.references()) {
            let f: RefsFile = serde_json::from_slice(&data)
                .map_err(|e| ImageError::Corrupt(format!("references.json: {e}")))?;
            s.refs = f
                .refs
                .into_iter()
                .filter(|(_, id)| s.images.contains_key(id))
                .collect();
            s.last_tag = f
                .last_tag
                .into_iter()
                .filter(|(id, _)| s.images.contains_key(id))
                .collect();
        }
        s.replay_journals()?;
        Ok(s)
    }

    /// Start-up: give the images of loads a crash interrupted the tags their
    /// journals recorded (images whose config never landed are absent and
    /// are skipped), persist, then drop the journals.
    fn replay_journals(&mut self) -> Result<()> {
        let journals = self.layout.journals();
        if journals.is_empty() {
            return Ok(());
        }
        for j in &journals {
            let summary = fs::read(j).map_err(ImageError::from).and_then(|b| {
                serde_json::from_slice::<LoadSummary>(&b)
                    .map_err(|e| ImageError::Corrupt(format!("{}: {e}", j.display())))
            });
            match summary {
                Ok(summary) => {
                    for li in &summary.images {
                        if self.images.contains_key(&li.id) {
                            log::info!("completing the interrupted load of {}", li.id);
                            if let Err(e) = self.point_tags(li, &mut Vec::new()) {
                                log::warn!("load journal {}: {e}", j.display());
                            }
                        }
                    }
                }
                Err(e) => log::warn!("dropping load journal: {e}"),
            }
        }
        self.save_refs()?;
        for j in &journals {
            self.layout.remove_journal(j)?;
        }
        Ok(())
    }

    pub(super) fn read_image(&mut self, id: &str) -> Result<Image> {
        let bytes = fs::read(self.layout.config_path(id))?;
        if sha256_digest(&bytes) != id {
            return Err(ImageError::Corrupt(format!(
                "config of {id} does not match its digest"
            )));
        }
        let diff_ids = config_diff_ids(&bytes)?;
        let mut size = 0;
        for d in &diff_ids {
            let s = match self.layer_sizes.get(d) {
                Some(s) => *s,
                None => {
                    let info = self.layout.layer_info(d)?;
                    self.layer_sizes.insert(d.clone(), info.size);
                    info.size
                }
            };
            size += s;
        }
        let config: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ImageError::Corrupt(format!("config of {id}: {e}")))?;
        let created = config
            .get("created")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .unwrap_or(0);
        Ok(Image {
            id: id.to_string(),
            chain_ids: chain_ids(&diff_ids),
            diff_ids,
            size,
            created,
            config,
        })
    }

    /// Remove every layer directory no image uses (after a crash, or once
    /// the loads that might have been reusing them are over).
    pub(super) fn collect_unused_layers(&mut self) -> Result<()> {
        let held = self.layout.held_layers();
        let used: HashSet<&String> = self
            .images
            .values()
            .flat_map(|i| &i.diff_ids)
            .chain(&held)
            .collect();
        let mut orphans = Vec::new();
        for entry in fs::read_dir(self.layout.layers())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if is_hex64(&name) && !used.contains(&format!("sha256:{name}")) {
                orphans.push(name);
            }
        }
        for o in orphans {
            log::info!("removing unreferenced layer sha256:{o}");
            remove_layer_dir(&self.layout, &self.layout.layers().join(&o))?;
            self.layer_sizes.remove(&format!("sha256:{o}"));
        }
        Ok(())
    }
}
