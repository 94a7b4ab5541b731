//! The classic builder's cache, worker side: a step is satisfied by an
//! image already made from the same parent by the same instruction (its
//! `created_by`, which for COPY/ADD carries the sources' checksum). With
//! `cachefrom` (dockerd's `cache.ImageCache`) only those images' histories
//! count: a local image must be one of their ancestors, and a step one of
//! them recorded is restored as a new image (the parent plus that step's
//! layer and history entry) even when its intermediate images are not here,
//! as after a pull or a load.

use std::fs;

use crate::json;
use serde_json::{Map, Value};

use super::context::BuildError;
use super::steps::{say, ImageRec, State, StepEnv};
use crate::image::archive_load::{LoadSummary, TempDirs};
use crate::image::import::publish_image;

fn list<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn history(v: &Value) -> &[Value] {
    list(v, "/history")
}

fn diff_ids(v: &Value) -> &[Value] {
    list(v, "/rootfs/diff_ids")
}

/// `a`'s history and layers begin `b`'s: `a` is `b` or an ancestor.
fn is_prefix(a: &Value, b: &Value) -> bool {
    let (ah, bh, ai, bi) = (history(a), history(b), diff_ids(a), diff_ids(b));
    ah.len() <= bh.len() && bh[..ah.len()] == *ah && ai.len() <= bi.len() && bi[..ai.len()] == *ai
}

/// The history entry that follows `parent`'s in `cand`, if `parent` is
/// its prefix and the entry was made by `key`.
fn next_entry<'a>(parent: &Value, cand: &'a Value, key: &str) -> Option<&'a Value> {
    if !is_prefix(parent, cand) {
        return None;
    }
    let h = history(cand).get(history(parent).len())?;
    (h.get("created_by").and_then(Value::as_str) == Some(key)).then_some(h)
}

/// `cand` is `parent` plus one step made by `key`.
fn is_child(parent: &Value, cand: &Value, key: &str) -> bool {
    history(cand).len() == history(parent).len() + 1 && next_entry(parent, cand, key).is_some()
}

/// Look the step up in the cache; on a hit the state moves to the cached
/// image and ` ---> Using cache` is said.
pub fn cache_hit(env: &mut StepEnv, st: &mut State, key: &str) -> bool {
    if env.nocache {
        return false;
    }
    let parent = st.image.clone();
    let sources = env.cache_from.clone();
    let allowed =
        |img: &Value| sources.is_empty() || sources.iter().any(|(_, s)| is_prefix(img, s));
    let local = env
        .built
        .iter()
        .find(|(_, c)| is_child(&parent, c, key) && allowed(c))
        .cloned()
        .or_else(|| (env.known)(&mut |_, c| is_child(&parent, c, key) && allowed(c)));
    let hit = match local {
        Some(h) => Some(h),
        None => from_sources(env, st, key),
    };
    let Some((id, img)) = hit else {
        return false;
    };
    say(env, " ---> Using cache\n".into());
    st.config = img
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    st.image = img;
    st.id = id;
    true
}

/// A `cachefrom` image that recorded this step on this parent: itself when
/// the step is its last, else a restored image. As dockerd, the first match
/// becomes the only source for the steps that follow.
fn from_sources(env: &mut StepEnv, st: &State, key: &str) -> Option<ImageRec> {
    let parent = &st.image;
    let (sid, target) = env
        .cache_from
        .iter()
        .find(|(_, s)| next_entry(parent, s, key).is_some())
        .cloned()?;
    if history(&target).len() == history(parent).len() + 1 {
        return Some((sid, target));
    }
    match restore(env, parent, &target, &st.config) {
        Ok(rec) => {
            env.cache_from = vec![(sid, target)];
            Some(rec)
        }
        Err(e) => {
            log::warn!("build: restoring a step of {sid} from the cache: {e}");
            None
        }
    }
}

/// dockerd's `restoreCachedImage`: `parent` plus `target`'s next history
/// entry (and its layer, already on disk as `target`'s) with the step's
/// config, written as an image of its own.
fn restore(
    env: &mut StepEnv,
    parent: &Value,
    target: &Value,
    config: &Map<String, Value>,
) -> Result<ImageRec, BuildError> {
    let n = history(parent).len();
    let entry = history(target)
        .get(n)
        .cloned()
        .ok_or_else(|| BuildError::Internal("cache image history too short".into()))?;
    let mut ids = diff_ids(parent).to_vec();
    if entry.get("empty_layer").and_then(Value::as_bool) != Some(true) {
        let layer = diff_ids(target)
            .get(ids.len())
            .cloned()
            .ok_or_else(|| BuildError::Internal("cache image has too few layers".into()))?;
        ids.push(layer);
    }
    let mut hist = history(parent).to_vec();
    hist.push(entry.clone());
    let mut fields: Vec<(&str, Value)> = Vec::new();
    fields.push((
        "created",
        entry.get("created").cloned().unwrap_or(json!("")),
    ));
    if let Some(a) = target.get("author").filter(|a| !a.is_null()) {
        fields.push(("author", a.clone()));
    }
    fields.push(("config", Value::Object(config.clone())));
    for key in ["architecture", "variant", "os"] {
        if let Some(v) = target.get(key).filter(|v| !v.is_null()) {
            fields.push((key, v.clone()));
        }
    }
    fields.push(("rootfs", json!({ "type": "layers", "diff_ids": ids })));
    fields.push(("history", Value::Array(hist)));
    let mut bytes = b"{".to_vec();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(&crate::json::bytes(&json!(k)));
        bytes.push(b':');
        bytes.extend_from_slice(&crate::json::bytes(v));
    }
    bytes.push(b'}');
    let summary: LoadSummary =
        publish_image(env.layout, &mut TempDirs::default(), None, &bytes, None)
            .map_err(|e| BuildError::Internal(e.to_string()))?;
    let id = summary
        .images
        .first()
        .map(|i| i.id.clone())
        .unwrap_or_default();
    (env.report)(json!({ "image": summary }));
    let img: Value = serde_json::from_slice(&fs::read(env.layout.config_path(&id))?)
        .map_err(|e| BuildError::Internal(e.to_string()))?;
    env.built.push((id.clone(), img.clone()));
    Ok((id, img))
}
