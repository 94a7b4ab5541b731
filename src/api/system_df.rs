//! `GET /system/df` (`docker system df [-v]`): images with their shared
//! sizes and container counts (from the index, in memory), containers with
//! `SizeRw`/`SizeRootFs` and volumes with `UsageData` (tree walks, done in a
//! forked worker, never on the loop), and the classic builder's cache (its
//! untagged step images, `engine/build_cache.rs`).

use std::collections::HashMap;
use std::path::PathBuf;

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::router::ApiVersion;
use super::Call;
use crate::engine::Response;
use crate::store::containers::dir_size;
use crate::store::images::ListFilters;

const TYPES: &[&str] = &["container", "image", "volume", "build-cache"];

pub fn df(call: &mut Call) -> Result<Response, ApiError> {
    // `type=` (API 1.42+, repeatable): only those parts are computed.
    let mut wanted: Vec<String> = Vec::new();
    if call.version >= ApiVersion(1, 42) {
        for t in call.req.query.get_all("type") {
            if !TYPES.contains(&t) {
                return Err(ApiError::InvalidParameter(format!(
                    "unknown object type: {t}"
                )));
            }
            wanted.push(t.to_string());
        }
    }
    let want = |t: &str| wanted.is_empty() || wanted.iter().any(|w| w == t);
    let engine = &*call.engine;
    let mut out = json!({});
    if want("image") {
        let images = &engine.images;
        let mut users: HashMap<&str, i64> = HashMap::new();
        for e in engine.containers.iter() {
            *users.entry(e.c.image.as_str()).or_default() += 1;
        }
        let mut layer_users: HashMap<&str, usize> = HashMap::new();
        for img in images.images() {
            for d in &img.diff_ids {
                *layer_users.entry(d.as_str()).or_default() += 1;
            }
        }
        let size_of = |d: &str| images.layer_sizes.get(d).copied().unwrap_or(0);
        let mut rows = images.list(&ListFilters::default())?;
        for row in &mut rows {
            let id = row["Id"].as_str().unwrap_or("").to_string();
            let shared: u64 = images
                .get(&id)
                .map(|img| {
                    img.diff_ids
                        .iter()
                        .filter(|d| layer_users.get(d.as_str()).is_some_and(|n| *n > 1))
                        .map(|d| size_of(d))
                        .sum()
                })
                .unwrap_or(0);
            row["SharedSize"] = shared.into();
            row["Containers"] = users.get(id.as_str()).copied().unwrap_or(0).into();
            row["VirtualSize"] = row["Size"].clone();
        }
        let layers: u64 = layer_users.keys().map(|d| size_of(d)).sum();
        out["LayersSize"] = layers.into();
        out["Images"] = Value::Array(rows);
    }
    // Walks for the worker: (upper dir, image size) per container, the data
    // dir per volume.
    let mut containers: Vec<(Value, PathBuf, u64)> = Vec::new();
    if want("container") {
        let mut entries: Vec<_> = engine.containers.iter().collect();
        crate::sort::sort_by(&mut entries, |a, b| b.c.created.cmp(&a.c.created));
        for e in entries {
            let row = super::container_json::summary_json(call.engine, e);
            let id = e.c.id.clone();
            let image = engine
                .containers
                .get(&id)
                .and_then(|e| engine.images.get(&e.c.image))
                .map(|i| i.size)
                .unwrap_or(0);
            containers.push((row, engine.container_dirs.upper(&id), image));
        }
    }
    let mut volumes: Vec<(Value, PathBuf)> = Vec::new();
    if want("volume") {
        for v in engine.volumes.iter() {
            let mut row = super::volumes::volume_json(engine, v);
            row["UsageData"] = json!({
                "Size": -1,
                "RefCount": engine.volume_users(&v.name).len(),
            });
            volumes.push((row, engine.volumes.data_dir(&v.name)));
        }
    }
    if want("build-cache") {
        out["BuildCache"] = Value::Array(engine.build_cache_rows());
    }
    let (want_c, want_v) = (want("container"), want("volume"));
    super::json_from_worker(call, move || {
        let mut out = out;
        if want_c {
            let rows: Vec<Value> = containers
                .into_iter()
                .map(|(mut row, upper, image)| {
                    let rw = dir_size(&upper);
                    row["SizeRw"] = rw.into();
                    row["SizeRootFs"] = (rw + image).into();
                    row
                })
                .collect();
            out["Containers"] = Value::Array(rows);
        }
        if want_v {
            let rows: Vec<Value> = volumes
                .into_iter()
                .map(|(mut row, data)| {
                    row["UsageData"]["Size"] = dir_size(&data).into();
                    row
                })
                .collect();
            out["Volumes"] = Value::Array(rows);
        }
        out
    })
}
