//! The daemon's in-memory image index (`ImageStore`): configs, layer sizes,
//! references. Rebuilt cheaply from disk at start-up (configs are small,
//! layers are only stat'ed), updated from a worker's `LoadSummary`. All the
//! listing / lookup / tag / delete logic the API handlers need lives here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::image::archive_load::{config_diff_ids, LoadSummary, LoadedImage};
use crate::image::archive_save::{SaveImage, SavePlan};
use crate::image::digest::{chain_ids, is_hex64, sha256_digest};
use crate::image::error::{ImageError, Result};
use crate::image::reference::Reference;
use crate::store::atomic::{self, remove_temp_leftovers};
use crate::store::layout::{remove_layer_dir, Layout};
use crate::timefmt::{now_rfc3339, parse_rfc3339_secs as parse_rfc3339};

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
    fn labels(&self) -> Map<String, Value> {
        self.config
            .pointer("/config/Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// How a container uses an image, as reported by the container store.
#[derive(Debug, Clone)]
pub struct ContainerUse {
    pub container_id: String,
    pub running: bool,
}

#[derive(Serialize, Deserialize, Default)]
struct RefsFile {
    #[serde(rename = "Repositories", default)]
    refs: BTreeMap<String, String>,
    #[serde(rename = "LastTagTime", default)]
    last_tag: BTreeMap<String, String>,
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
}

impl ListFilters {
    /// Decode the `filters` query parameter (`{"dangling":["true"]}` or the
    /// old `{"dangling":{"true":true}}` form).
    pub fn from_json(s: &str) -> Result<ListFilters> {
        let mut f = ListFilters::default();
        if s.trim().is_empty() {
            return Ok(f);
        }
        let v: Value = serde_json::from_str(s)
            .map_err(|e| ImageError::InvalidArgument(format!("invalid filter: {e}")))?;
        let obj = v
            .as_object()
            .ok_or_else(|| ImageError::InvalidArgument("invalid filter".into()))?;
        for (k, vals) in obj {
            let vals: Vec<String> = match vals {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
                Value::Object(o) => o.keys().cloned().collect(),
                _ => return Err(ImageError::InvalidArgument(format!("invalid filter '{k}'"))),
            };
            match k.as_str() {
                "dangling" => {
                    for v in vals {
                        f.dangling = Some(match v.as_str() {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => {
                                return Err(ImageError::InvalidArgument(format!(
                                    "Invalid filter 'dangling={v}'"
                                )))
                            }
                        });
                    }
                }
                "label" => f.labels.extend(vals),
                "before" => f.before = vals.into_iter().next(),
                "since" => f.since = vals.into_iter().next(),
                "reference" => f.reference.extend(vals),
                other => {
                    return Err(ImageError::InvalidArgument(format!(
                        "invalid filter '{other}'"
                    )))
                }
            }
        }
        Ok(f)
    }
}

pub struct ImageStore {
    layout: Layout,
    images: BTreeMap<String, Image>,
    /// Full reference string -> image ID.
    refs: BTreeMap<String, String>,
    last_tag: BTreeMap<String, String>,
    layer_sizes: HashMap<String, u64>,
    /// Load/import workers running: layer removal waits while > 0, since a
    /// worker may be reusing a layer no indexed image references yet.
    workers: u32,
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

/// path.Match-style glob: `*` and `?` never match `/`. Linear per segment
/// (a client's pattern must not cost exponential time on the loop).
fn glob(p: &[u8], s: &[u8]) -> bool {
    if p.len() > 1024 {
        return false;
    }
    let (ps, ss): (Vec<&[u8]>, Vec<&[u8]>) = (
        p.split(|&c| c == b'/').collect(),
        s.split(|&c| c == b'/').collect(),
    );
    ps.len() == ss.len() && ps.iter().zip(&ss).all(|(p, s)| glob_segment(p, s))
}

/// Wildcard match without '/': backtrack only to the last `*` seen.
fn glob_segment(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

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

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn read_image(&mut self, id: &str) -> Result<Image> {
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

    fn save_refs(&self) -> Result<()> {
        let f = RefsFile {
            refs: self.refs.clone(),
            last_tag: self.last_tag.clone(),
        };
        let data =
            serde_json::to_vec_pretty(&f).map_err(|e| ImageError::Io(std::io::Error::other(e)))?;
        atomic::write_file(&self.layout.references(), &data)?;
        Ok(())
    }

    /// Remove every layer directory no image uses (after a crash, or once
    /// the loads that might have been reusing them are over).
    fn collect_unused_layers(&mut self) -> Result<()> {
        let used: HashSet<&String> = self.images.values().flat_map(|i| &i.diff_ids).collect();
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
        let temp = crate::store::atomic::TEMP_PREFIX;
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
        self.save_refs()?;
        Ok(lines)
    }

    /// Point a loaded image's tags at it (in memory), with `docker load`'s lines.
    fn point_tags(&mut self, li: &LoadedImage, lines: &mut Vec<String>) -> Result<()> {
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

    fn refs_of(&self, id: &str) -> Vec<Reference> {
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
        v.sort();
        v
    }

    pub fn repo_digests(&self, id: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .refs_of(id)
            .iter()
            .filter(|r| r.digest.is_some())
            .map(Reference::familiar)
            .collect();
        v.sort();
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
        self.save_refs()
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
            if !self.refs_of(&id).is_empty() || used.is_some() {
                // Still tagged, or a container needs it: the untag is all we do.
                self.save_refs()?;
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
        fs::remove_file(self.layout.config_path(id))?;
        atomic::sync_dir(&self.layout.configs())?;
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
            }
            gone.push(d.clone());
            out.push(json!({ "Deleted": img.chain_ids[i] }));
        }
        for d in gone {
            self.layer_sizes.remove(&d);
        }
        Ok(out)
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
            reclaimed += before - self.layer_sizes.values().sum::<u64>();
        }
        Ok(json!({
            "ImagesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
            "SpaceReclaimed": reclaimed,
        }))
    }

    fn labels_match(&self, img: &Image, wanted: &[String]) -> bool {
        let labels = img.labels();
        wanted.iter().all(|w| match w.split_once('=') {
            Some((k, v)) => labels.get(k).and_then(Value::as_str) == Some(v),
            None => labels.contains_key(w.as_str()),
        })
    }

    /// Rows of `GET /images/json` (ImageSummary), newest first.
    pub fn list(&self, filters: &ListFilters) -> Result<Vec<Value>> {
        let before = filters
            .before
            .as_deref()
            .map(|n| self.resolve(n).map(|i| i.created))
            .transpose()?;
        let since = filters
            .since
            .as_deref()
            .map(|n| self.resolve(n).map(|i| i.created))
            .transpose()?;
        let mut rows: Vec<(&Image, Value)> = Vec::new();
        for img in self.images.values() {
            let refs = self.refs_of(&img.id);
            if let Some(d) = filters.dangling {
                if d != refs.is_empty() {
                    continue;
                }
            }
            if !self.labels_match(img, &filters.labels) {
                continue;
            }
            if before.is_some_and(|b| img.created >= b) || since.is_some_and(|s| img.created <= s) {
                continue;
            }
            let mut tags: Vec<String> = refs
                .iter()
                .filter(|r| r.digest.is_none())
                .map(Reference::familiar)
                .collect();
            if !filters.reference.is_empty() {
                let matching: Vec<String> = refs
                    .iter()
                    .filter(|r| {
                        filters.reference.iter().any(|p| {
                            glob(p.as_bytes(), r.familiar().as_bytes())
                                || glob(p.as_bytes(), r.familiar_name().as_bytes())
                        })
                    })
                    .filter(|r| r.digest.is_none())
                    .map(Reference::familiar)
                    .collect();
                if matching.is_empty() {
                    continue;
                }
                tags = matching;
            }
            rows.push((
                img,
                json!({
                    "Id": img.id,
                    "ParentId": "",
                    "RepoTags": tags,
                    "RepoDigests": self.repo_digests(&img.id),
                    "Created": img.created,
                    "Size": img.size,
                    "SharedSize": -1,
                    "Labels": img.labels(),
                    "Containers": -1,
                }),
            ));
        }
        rows.sort_by(|a, b| b.0.created.cmp(&a.0.created).then(a.0.id.cmp(&b.0.id)));
        Ok(rows.into_iter().map(|(_, v)| v).collect())
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

    /// `GET /images/{name}/json` (v1.45 ImageInspect).
    pub fn inspect(&self, name: &str) -> Result<Value> {
        let img = self.resolve(name)?;
        let c = &img.config;
        let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let lowers = self.lower_dirs(&img.id)?;
        let mut gd = Map::new();
        if let Some((top, rest)) = lowers.split_first() {
            if !rest.is_empty() {
                let l: Vec<String> = rest.iter().map(|p| p.display().to_string()).collect();
                gd.insert("LowerDir".into(), json!(l.join(":")));
            }
            gd.insert("UpperDir".into(), json!(top.display().to_string()));
        }
        let mut v = json!({
            "Id": img.id,
            "RepoTags": self.repo_tags(&img.id),
            "RepoDigests": self.repo_digests(&img.id),
            "Parent": "",
            "Comment": s("comment"),
            "Created": s("created"),
            "DockerVersion": s("docker_version"),
            "Author": s("author"),
            "Config": c.get("config").cloned().unwrap_or(Value::Null),
            "Architecture": s("architecture"),
            "Os": s("os"),
            "Size": img.size,
            "GraphDriver": { "Name": "overlay2", "Data": gd },
            "RootFS": { "Type": "layers", "Layers": img.diff_ids },
            "Metadata": { "LastTagTime": self.last_tag.get(&img.id).cloned().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()) },
        });
        if let (Some(obj), Some(var)) =
            (v.as_object_mut(), c.get("variant").and_then(Value::as_str))
        {
            obj.insert("Variant".into(), json!(var));
        }
        if let (Some(obj), Some(ov)) = (
            v.as_object_mut(),
            c.get("os.version").and_then(Value::as_str),
        ) {
            obj.insert("OsVersion".into(), json!(ov));
        }
        Ok(v)
    }

    /// `GET /images/{name}/history`: newest first.
    pub fn history(&self, name: &str) -> Result<Vec<Value>> {
        let img = self.resolve(name)?;
        let hist = img
            .config
            .get("history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut layer = 0usize;
        let mut rows = Vec::new();
        for h in &hist {
            let empty = h
                .get("empty_layer")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let size = if empty {
                0
            } else {
                let s = img
                    .diff_ids
                    .get(layer)
                    .and_then(|d| self.layer_sizes.get(d))
                    .copied()
                    .unwrap_or(0);
                layer += 1;
                s
            };
            let st = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            rows.push(json!({
                "Id": "<missing>",
                "Created": h.get("created").and_then(Value::as_str).and_then(parse_rfc3339).unwrap_or(0),
                "CreatedBy": st("created_by"),
                "Tags": Value::Null,
                "Size": size,
                "Comment": st("comment"),
            }));
        }
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top["Id"] = json!(img.id);
            top["Tags"] = json!(self.repo_tags(&img.id));
        }
        Ok(rows)
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

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_is_linear_and_segment_wise() {
        let many = format!("{}x", "*".repeat(1000));
        let start = std::time::Instant::now();
        assert!(!glob(
            many.as_bytes(),
            "busybox:latest".repeat(10).as_bytes()
        ));
        assert!(start.elapsed() < std::time::Duration::from_millis(200));
        assert!(glob(b"fixture/*:v1", b"fixture/whiteouts:v1"));
        assert!(!glob(b"*:v1", b"fixture/whiteouts:v1"));
        assert!(glob(b"b?sy*", b"busybox:latest"));
        assert!(glob(b"*", b""));
        assert!(!glob(b"a*b", b"a/b"));
    }

    #[test]
    fn glob_is_path_match() {
        assert!(glob(b"busy*", b"busybox:latest"));
        assert!(glob(b"fixture/*", b"fixture/whiteouts"));
        assert!(!glob(b"*", b"fixture/whiteouts"));
        assert!(glob(b"*/*:v?", b"fixture/whiteouts:v1"));
    }
}
