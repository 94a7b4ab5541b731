//! The daemon's in-memory image index (`ImageStore`): configs, layer sizes,
//! references. Rebuilt cheaply from disk at start-up (configs are small,
//! layers are only stat'ed), updated from a worker's `LoadSummary`. All the
//! listing / lookup / tag / delete logic the API handlers need lives here.

use crate::container::registry::ContainerUse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

use crate::json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::atomic::{self};
use crate::image::archive_load::{LoadSummary, LoadedImage};
use crate::image::archive_save::{SaveImage, SavePlan};
use crate::image::digest::is_hex64;
use crate::image::error::{ImageError, Result};
use crate::image::layout::{remove_layer_dir, Layout};
use crate::image::reference::Reference;
use crate::timefmt::now_rfc3339;

#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:<hex>`
    pub id: String,
    pub config: Value,
    pub diff_ids: Vec<String>,
    pub chain_ids: Vec<String>,
    /// Sum of layer sizes.
    pub size: u64,
    /// Unix seconds of config.created (0 if absent).
    pub created: i64,
}

impl Image {
    pub(crate) fn labels(&self) -> Map<String, Value> {
        self.config
            .pointer("/config/Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

#[derive(Serialize, Deserialize, Default)]
pub(super) struct RefsFile {
    #[serde(rename = "Repositories", default)]
    pub(super) refs: BTreeMap<String, String>,
    #[serde(rename = "LastTagTime", default)]
    pub(super) last_tag: BTreeMap<String, String>,
}

/// Filters of `GET /images/json` (already decoded from the `filters` JSON).
#[derive(Debug, Default, Clone)]
pub struct ListFilters {
    pub dangling: Option<bool>,
    /// `key` or `key=value`
    pub labels: Vec<String>,
    pub before: Option<String>,
    pub since: Option<String>,
    /// Glob patterns on familiar references (`busybox`, `fixture/*:v1`).
    pub reference: Vec<String>,
    /// Prune only: images created before this (Unix seconds).
    pub until: Option<i64>,
}

pub struct ImageStore {
    pub(crate) layout: Layout,
    pub(crate) images: BTreeMap<String, Image>,
    /// Full reference string -> image ID.
    pub(crate) refs: BTreeMap<String, String>,
    pub(crate) last_tag: BTreeMap<String, String>,
    pub(crate) layer_sizes: HashMap<String, u64>,
    /// Load/import workers running: layer removal waits while > 0, since a
    /// worker may be reusing a layer no indexed image references yet.
    pub(super) workers: u32,
}

fn short(id: &str) -> String {
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

/// dockerd's `isSingleReference`: every reference is in one repository and
/// at most one of them is a tag (digest references of that repository aside).
fn is_single_reference(refs: &[Reference]) -> bool {
    if refs.len() <= 1 {
        return refs.len() == 1;
    }
    let mut single: Option<&Reference> = None;
    let mut canonical: HashSet<&str> = HashSet::new();
    for r in refs {
        if r.digest.is_some() {
            canonical.insert(r.name.as_str());
        } else if single.is_none() {
            single = Some(r);
        } else {
            return false;
        }
    }
    let name = single.unwrap_or(&refs[0]).name.as_str();
    canonical.len() == 1 && canonical.contains(name)
}

impl ImageStore {
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub(super) fn save_refs(&self) -> Result<()> {
        let f = RefsFile {
            refs: self.refs.clone(),
            last_tag: self.last_tag.clone(),
        };
        let data =
            serde_json::to_vec_pretty(&f).map_err(|e| ImageError::Io(std::io::Error::other(e)))?;
        atomic::write_file(&self.layout.references(), &data)?;
        Ok(())
    }

    /// A worker's counter dropped: with no load running, collect what
    /// deletes during the loads had to leave behind.
    fn worker_done(&mut self) {
        self.workers = self.workers.saturating_sub(1);
        if self.workers == 0 {
            if let Err(e) = self.collect_unused_layers() {
                log::warn!("collecting unused layers: {e}");
            }
        }
    }

    /// Remove the temporary directories of a worker killed mid-load (its
    /// own cleanup never ran): `.tmp-<pid>-<n>` layer dirs, and the
    /// `.tmp-<name>-<pid>` files of its atomic writes (a config).
    pub fn remove_worker_temps(&self, pid: i32) {
        let temp = crate::atomic::TEMP_PREFIX;
        let prefix = format!("{temp}{pid}-");
        let suffix = format!("-{pid}");
        let ours = |name: &str| {
            name.starts_with(&prefix) || (name.starts_with(temp) && name.ends_with(&suffix))
        };
        // A killed worker's journal goes too: its images were never indexed
        // (its configs, if any, lose their layers to the next collection).
        let journal = format!("{pid}-");
        if let Ok(entries) = fs::read_dir(self.layout.journal_dir()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&journal) {
                    let _ = self.layout.remove_journal(&e.path());
                }
            }
        }
        for dir in [
            self.layout.layers(),
            self.layout.configs(),
            self.layout.root.clone(),
            self.layout.journal_dir(),
        ] {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if ours(&e.file_name().to_string_lossy()) {
                    let p = e.path();
                    let _ = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                }
            }
        }
    }

    /// A load/import worker is about to start.
    pub fn begin_worker(&mut self) {
        self.workers += 1;
    }

    /// Record what a worker loaded, point its tags at it, persist the
    /// references. Returns the `docker load` progress lines.
    pub fn apply_load(&mut self, summary: &LoadSummary) -> Result<Vec<String>> {
        let lines = self.index_load(summary);
        if lines.is_ok() {
            // The tags are durable now: the journal has done its job. On an
            // error it stays for the next start-up to replay.
            if let Some(j) = &summary.journal {
                if let Err(e) = self.layout.remove_journal(j) {
                    log::warn!("removing load journal {}: {e}", j.display());
                }
                crate::failpoint!("load.journal_removed");
            }
        }
        self.worker_done();
        lines
    }

    fn index_load(&mut self, summary: &LoadSummary) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        for li in &summary.images {
            if !self.images.contains_key(&li.id) {
                let img = self.read_image(&li.id)?;
                self.images.insert(li.id.clone(), img);
            }
            if li.tags.is_empty() {
                lines.push(format!("Loaded image ID: {}", li.id));
            }
            self.point_tags(li, &mut lines)?;
        }
        crate::failpoint!("load.indexed");
        // Untagged images (a build's step images, an untagged commit)
        // change no reference: nothing to write, and no fsync on the loop.
        if summary.images.iter().any(|li| !li.tags.is_empty()) {
            self.save_refs()?;
            crate::failpoint!("load.refs_saved");
        }
        Ok(lines)
    }

    /// Point a loaded image's tags at it (in memory), with `docker load`'s lines.
    pub(super) fn point_tags(&mut self, li: &LoadedImage, lines: &mut Vec<String>) -> Result<()> {
        for t in &li.tags {
            let r = Reference::parse(t)?;
            if let Some(old) = self.refs.insert(r.to_string(), li.id.clone()) {
                if old != li.id {
                    lines.push(format!(
                        "The image {} already exists, renaming the old one with ID {old} to empty string",
                        r.familiar()
                    ));
                }
            }
            lines.push(format!("Loaded image: {}", r.familiar()));
        }
        if !li.tags.is_empty() {
            self.last_tag.insert(li.id.clone(), now_rfc3339());
        }
        Ok(())
    }

    /// A worker failed: nothing to index.
    pub fn abort_worker(&mut self) {
        self.worker_done();
    }

    pub fn get(&self, id: &str) -> Option<&Image> {
        self.images.get(id)
    }

    pub fn images(&self) -> impl Iterator<Item = &Image> {
        self.images.values()
    }

    /// Resolve a user-supplied name like dockerd: reference, full ID, or unique ID prefix.
    pub fn resolve(&self, name: &str) -> Result<&Image> {
        let hexpart = name.strip_prefix("sha256:").unwrap_or(name);
        let hexish = !hexpart.is_empty()
            && hexpart.len() <= 64
            && hexpart
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hexpart.len() == 64 && hexish {
            return self
                .images
                .get(&format!("sha256:{hexpart}"))
                .ok_or_else(|| ImageError::NotFound(name.to_string()));
        }
        let parsed = if name.starts_with("sha256:") {
            None
        } else {
            Reference::parse(name).ok()
        };
        if let Some(r) = &parsed {
            let r = r.clone().with_default_tag();
            if let Some(img) = self
                .refs
                .get(&r.to_string())
                .and_then(|id| self.images.get(id))
            {
                return Ok(img);
            }
        }
        if hexish {
            let prefix = format!("sha256:{hexpart}");
            let mut it = self
                .images
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix));
            if let Some((_, img)) = it.next() {
                if it.next().is_some() {
                    return Err(ImageError::AmbiguousReference(format!(
                        "ambiguous reference: {name} matches more than one image"
                    )));
                }
                return Ok(img);
            }
        }
        Err(ImageError::NotFound(match parsed {
            Some(r) => r.with_default_tag().familiar(),
            None => name.to_string(),
        }))
    }

    pub(crate) fn refs_of(&self, id: &str) -> Vec<Reference> {
        self.refs
            .iter()
            .filter(|(_, v)| *v == id)
            .filter_map(|(k, _)| Reference::parse(k).ok())
            .collect()
    }

    /// Familiar tags of an image, sorted.
    pub fn repo_tags(&self, id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .refs_of(id)
            .iter()
            .filter(|r| r.digest.is_none())
            .map(Reference::familiar)
            .collect();
        crate::sort::sort(&mut v);
        v
    }

    pub fn repo_digests(&self, id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .refs_of(id)
            .iter()
            .filter(|r| r.digest.is_some())
            .map(Reference::familiar)
            .collect();
        crate::sort::sort(&mut v);
        v
    }

    /// `POST /images/{name}/tag?repo=&tag=`
    pub fn tag(&mut self, source: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let id = self.resolve(source)?.id.clone();
        let mut r = Reference::parse(repo)?;
        if r.digest.is_some() {
            return Err(ImageError::InvalidReference(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        if let Some(t) = tag.filter(|t| !t.is_empty()) {
            if !crate::image::reference::valid_tag(t) {
                return Err(ImageError::InvalidReference(format!(
                    "invalid tag format: {t}"
                )));
            }
            r.tag = Some(t.to_string());
        }
        let r = r.with_default_tag();
        if r.familiar_name().len() == 64 && is_hex64(r.familiar_name()) {
            return Err(ImageError::InvalidReference(
                "refusing to create an ambiguous tag using digest algorithm as name".into(),
            ));
        }
        self.refs.insert(r.to_string(), id.clone());
        self.last_tag.insert(id, now_rfc3339());
        self.save_refs()?;
        crate::failpoint!("image.tag_saved");
        Ok(())
    }

    /// `DELETE /images/{name}`: returns the `[{"Untagged":..},{"Deleted":..}]` list.
    pub fn delete(
        &mut self,
        name: &str,
        force: bool,
        usage: &dyn Fn(&str) -> Option<ContainerUse>,
    ) -> Result<Vec<Value>> {
        let id = self.resolve(name)?.id.clone();
        let mut records = Vec::new();
        let hexpart = name.strip_prefix("sha256:").unwrap_or(name);
        let by_id = id
            .strip_prefix("sha256:")
            .is_some_and(|h| h.starts_with(hexpart))
            && Reference::parse(name).map_or(true, |r| {
                !self.refs.contains_key(&r.with_default_tag().to_string())
            });
        let conflict = |force_msg: &str, msg: String| {
            ImageError::Conflict(format!(
                "conflict: unable to delete {} ({force_msg}) - {msg}",
                short(&id)
            ))
        };
        let used = usage(&id);
        if !by_id {
            let r = Reference::parse(name)?.with_default_tag();
            // dockerd: untagging the only reference of an image a container
            // uses would leave it dangling; that takes force.
            if let Some(u) = used.as_ref().filter(|_| !force) {
                if is_single_reference(&self.refs_of(&id)) {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference {name:?} (must force) - container {} is using its referenced image {}",
                        short(&u.container_id),
                        short(&id)
                    )));
                }
            }
            self.refs.remove(&r.to_string());
            records.push(json!({ "Untagged": r.familiar() }));
            // dockerd: once a repository's last tag of the image is gone, its
            // digest references (from a pull or push) go with it.
            let remaining = self.refs_of(&id);
            if r.digest.is_none()
                && !remaining
                    .iter()
                    .any(|x| x.digest.is_none() && x.name == r.name)
            {
                for x in remaining
                    .iter()
                    .filter(|x| x.digest.is_some() && x.name == r.name)
                {
                    self.refs.remove(&x.to_string());
                    records.push(json!({ "Untagged": x.familiar() }));
                }
            }
            if !self.refs_of(&id).is_empty() || used.is_some() {
                // Still tagged, or a container needs it: the untag is all we do.
                self.save_refs()?;
                crate::failpoint!("image.untag_saved");
                return Ok(records);
            }
        } else {
            if let Some(u) = &used {
                if u.running {
                    return Err(conflict(
                        "cannot be forced",
                        format!(
                            "image is being used by running container {}",
                            short(&u.container_id)
                        ),
                    ));
                }
                if !force {
                    return Err(conflict(
                        "must be forced",
                        format!(
                            "image is being used by stopped container {}",
                            short(&u.container_id)
                        ),
                    ));
                }
            }
            let refs = self.refs_of(&id);
            let names: HashSet<&str> = refs.iter().map(|r| r.name.as_str()).collect();
            let tags = refs.iter().filter(|r| r.tag.is_some()).count();
            if !force && (names.len() > 1 || tags > 1) {
                return Err(conflict(
                    "must be forced",
                    "image is referenced in multiple repositories".into(),
                ));
            }
            for r in refs {
                self.refs.remove(&r.to_string());
                records.push(json!({ "Untagged": r.familiar() }));
            }
            if used.is_some() {
                // Forced with a stopped container: dockerd untags but keeps the image.
                self.save_refs()?;
                return Ok(records);
            }
        }
        records.extend(self.remove_image(&id)?);
        Ok(records)
    }

    /// Drop an image (already untagged) and the layers only it used.
    fn remove_image(&mut self, id: &str) -> Result<Vec<Value>> {
        let Some(img) = self.images.remove(id) else {
            return Ok(Vec::new());
        };
        self.last_tag.remove(id);
        self.save_refs()?;
        crate::failpoint!("image.rm_refs_saved");
        fs::remove_file(self.layout.config_path(id))?;
        atomic::sync_dir(&self.layout.configs())?;
        crate::failpoint!("image.rm_config_removed");
        let mut out = vec![json!({ "Deleted": id })];
        if self.workers > 0 {
            // A running load may be reusing these layers; a later delete or
            // the next start-up collects them.
            return Ok(out);
        }
        let used: HashSet<&String> = self.images.values().flat_map(|i| &i.diff_ids).collect();
        let mut gone = Vec::new();
        for (i, d) in img.diff_ids.iter().enumerate().rev() {
            if used.contains(d) || gone.contains(d) {
                continue;
            }
            let dir = self.layout.layer_dir(d);
            if dir.exists() {
                remove_layer_dir(&self.layout, &dir)?;
                crate::failpoint!("image.rm_layer_removed");
            }
            gone.push(d.clone());
            out.push(json!({ "Deleted": img.chain_ids[i] }));
        }
        for d in gone {
            self.layer_sizes.remove(&d);
        }
        Ok(out)
    }

    pub(crate) fn labels_match(&self, img: &Image, wanted: &[String]) -> bool {
        let labels = img.labels();
        wanted
            .iter()
            .all(|w| crate::label::matches(w, |k| labels.get(k).map(|v| v.as_str().unwrap_or(""))))
    }

    /// `POST /images/prune`: dangling images (or, with `dangling=false`, all
    /// unused ones) matching the label filters.
    pub fn prune(
        &mut self,
        filters: &ListFilters,
        usage: &dyn Fn(&str) -> Option<ContainerUse>,
    ) -> Result<Value> {
        let dangling_only = filters.dangling.unwrap_or(true);
        let victims: Vec<String> = self
            .images
            .values()
            .filter(|i| usage(&i.id).is_none())
            .filter(|i| !dangling_only || self.refs_of(&i.id).is_empty())
            .filter(|i| self.labels_match(i, &filters.labels))
            .filter(|i| filters.until.is_none_or(|u| i.created < u))
            .map(|i| i.id.clone())
            .collect();
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for id in victims {
            for r in self.refs_of(&id) {
                self.refs.remove(&r.to_string());
                deleted.push(json!({ "Untagged": r.familiar() }));
            }
            let before: u64 = self.layer_sizes.values().sum();
            deleted.extend(self.remove_image(&id)?);
            crate::failpoint!("image.prune_one");
            reclaimed += before - self.layer_sizes.values().sum::<u64>();
        }
        Ok(json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
            "SpaceReclaimed": reclaimed,
        }))
    }

    /// Lower dirs of an image for overlayfs, topmost first.
    pub fn lower_dirs(&self, id: &str) -> Result<Vec<PathBuf>> {
        let img = self
            .images
            .get(id)
            .ok_or_else(|| ImageError::NotFound(id.to_string()))?;
        Ok(img
            .diff_ids
            .iter()
            .rev()
            .map(|d| self.layout.diff_dir(d))
            .collect())
    }

    /// Resolve names for `GET /images/get` (`docker save`). A name that is a
    /// tag exports the image with that tag; an ID exports it with all its tags.
    pub fn save_plan(&self, names: &[String]) -> Result<SavePlan> {
        let mut plan = SavePlan { images: Vec::new() };
        for n in names {
            let img = self.resolve(n)?;
            let tag = Reference::parse(n)
                .ok()
                .map(|r| r.with_default_tag())
                .filter(|r| self.refs.get(&r.to_string()) == Some(&img.id) && r.digest.is_none());
            let tags: Vec<String> = match tag {
                Some(r) => vec![r.to_string()],
                None => self
                    .refs_of(&img.id)
                    .iter()
                    .filter(|r| r.digest.is_none())
                    .map(|r| r.to_string())
                    .collect(),
            };
            if let Some(existing) = plan.images.iter_mut().find(|s| s.id == img.id) {
                for t in tags {
                    if !existing.tags.contains(&t) {
                        existing.tags.push(t);
                    }
                }
                continue;
            }
            plan.images.push(SaveImage {
                id: img.id.clone(),
                diff_ids: img.diff_ids.clone(),
                tags,
            });
        }
        Ok(plan)
    }
}
