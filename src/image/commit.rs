//! `docker commit`, worker side: the container's changes become one layer
//! on top of its image's, and a child image config is written the way
//! dockerd's `NewChildImage` writes it (the parent's rootfs and history
//! extended, the new config from the container's with `changes` applied).

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use crate::json;
use serde_json::{Map, Value};

use super::archive_load::{LoadSummary, TempDirs};
use super::error::{ImageError, Result};
use super::import::{apply_changes, import_reference, publish_image};
use super::layer_diff::write_layer_diff;
use super::layer_extract::{extract_layer, Budget};
use super::layout::Layout;
use crate::timefmt::now_rfc3339;

/// The diff ID of an empty tar (two zero blocks): dockerd's empty layer.
pub const EMPTY_TAR_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
    pub changes: Vec<String>,
    /// The config to start from: the request body's, or the container's.
    pub config: Map<String, Value>,
    /// The container's own config (defaults for what `config` lacks, and
    /// the history's `created_by`).
    pub container_config: Map<String, Value>,
    /// The parent image's config.
    pub parent: Value,
    /// The history's `created_by` when not the container's Cmd (a build
    /// step's instruction, which is also its cache key).
    pub created_by: Option<String>,
    /// A remapped container's mapping: host-side owners in its upper dir
    /// go into the layer as the container's ids.
    pub ids: Option<crate::runtime::userns::IdMap>,
}

/// Check what can be checked before the walk: the reference and changes.
pub fn validate(opts: &CommitOptions) -> Result<Option<String>> {
    let tag = import_reference(opts.repo.as_deref(), opts.tag.as_deref())?;
    apply_changes(&mut opts.config.clone(), &opts.changes)?;
    Ok(tag)
}

/// Commit `upper` (the container's overlay upper dir). Worker side.
pub fn commit_container(
    layout: &Layout,
    upper: &Path,
    opts: &CommitOptions,
    budget: &Budget,
) -> Result<LoadSummary> {
    let tag = validate(opts)?;
    let mut config = opts.config.clone();
    apply_changes(&mut config, &opts.changes)?;
    merge(&mut config, &opts.container_config);
    layout.create_dirs()?;
    let mut temps = TempDirs::default();
    let scratch = layout.new_temp_dir()?;
    temps.0.push(scratch.clone());
    let tar_path = scratch.join("layer.tar");
    {
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(&tar_path)?);
        write_layer_diff(upper, &mut out, opts.ids.as_ref())?;
    }
    let tmp = layout.new_temp_dir()?;
    temps.0.push(tmp.clone());
    let info = extract_layer(File::open(&tar_path)?, &tmp, budget)?;
    crate::failpoint!("commit.layer_extracted");
    let empty = info.diff_id == EMPTY_TAR_DIFF_ID;
    let created = now_rfc3339();
    let bytes = child_config(opts, &config, &info.diff_id, empty, &created)?;
    let layer = (!empty).then_some((tmp.as_path(), &info));
    publish_image(layout, &mut temps, layer, &bytes, tag)
}

/// dockerd's `merge(userConf, imageConf)` of commit: what the new config
/// leaves empty comes from the container's.
fn merge(user: &mut Map<String, Value>, base: &Map<String, Value>) {
    let empty = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    for key in ["User", "WorkingDir", "StopSignal"] {
        if empty(user.get(key)) && !empty(base.get(key)) {
            user.insert(key.into(), base[key].clone());
        }
    }
    for key in ["ExposedPorts", "Labels", "Volumes"] {
        if let Some(Value::Object(b)) = base.get(key) {
            let mut m = user
                .get(key)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (k, v) in b {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if !m.is_empty() {
                user.insert(key.into(), Value::Object(m));
            }
        }
    }
    if let Some(Value::Array(b)) = base.get("Env") {
        let mut env: Vec<Value> = user
            .get("Env")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let key_of = |v: &Value| {
            v.as_str()
                .map(|s| s.split('=').next().unwrap_or("").to_string())
        };
        for e in b {
            let k = key_of(e);
            if !env.iter().any(|x| key_of(x) == k) {
                env.push(e.clone());
            }
        }
        user.insert("Env".into(), Value::Array(env));
    }
    if empty(user.get("Entrypoint")) {
        if empty(user.get("Cmd")) {
            if let Some(c) = base.get("Cmd") {
                user.insert("Cmd".into(), c.clone());
            }
        }
        if matches!(user.get("Entrypoint"), None | Some(Value::Null)) {
            if let Some(e) = base.get("Entrypoint") {
                user.insert("Entrypoint".into(), e.clone());
            }
        }
    }
    if user.get("Healthcheck").is_none_or(Value::is_null) {
        if let Some(h) = base.get("Healthcheck") {
            user.insert("Healthcheck".into(), h.clone());
        }
    }
}

/// The child image config, fields in the order Go marshals them.
fn child_config(
    opts: &CommitOptions,
    config: &Map<String, Value>,
    diff_id: &str,
    empty_layer: bool,
    created: &str,
) -> Result<Vec<u8>> {
    let p = &opts.parent;
    let mut diff_ids: Vec<Value> = p
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !empty_layer {
        diff_ids.push(json!(diff_id));
    }
    let mut history: Vec<Value> = p
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let created_by = match &opts.created_by {
        Some(c) => c.clone(),
        None => opts
            .container_config
            .get("Cmd")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
    };
    let mut h = Map::new();
    h.insert("created".into(), json!(created));
    if !opts.author.is_empty() {
        h.insert("author".into(), json!(opts.author));
    }
    h.insert("created_by".into(), json!(created_by));
    if !opts.comment.is_empty() {
        h.insert("comment".into(), json!(opts.comment));
    }
    if empty_layer {
        h.insert("empty_layer".into(), json!(true));
    }
    history.push(Value::Object(h));
    let mut fields: Vec<(&str, Value)> = Vec::new();
    if !opts.comment.is_empty() {
        fields.push(("comment", json!(opts.comment)));
    }
    fields.push(("created", json!(created)));
    if !opts.author.is_empty() {
        fields.push(("author", json!(opts.author)));
    }
    fields.push(("config", Value::Object(config.clone())));
    for key in ["architecture", "variant", "os"] {
        if let Some(v) = p.get(key).filter(|v| !v.is_null()) {
            fields.push((key, v.clone()));
        }
    }
    fields.push(("rootfs", json!({ "type": "layers", "diff_ids": diff_ids })));
    fields.push(("history", Value::Array(history)));
    let mut out = b"{".to_vec();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&crate::json::bytes(&json!(k)));
        out.push(b':');
        out.extend_from_slice(
            serde_json::to_string(v)
                .map_err(|e| ImageError::Io(std::io::Error::other(e)))?
                .as_bytes(),
        );
    }
    out.push(b'}');
    Ok(out)
}
