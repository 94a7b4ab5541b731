//! The classic builder's cache as `system df` and `docker builder prune`
//! see it: the images build steps made that carry no tag and that no
//! container uses (the intermediate images, and earlier results whose tag
//! moved on). Each is a row of `BuildCache`; its size is its own step's
//! layer, "shared" when an image outside the cache still holds that layer.

use std::collections::HashSet;

use crate::json;
use serde_json::Value;

use super::Engine;
use crate::image::error::ImageError;
use crate::store::images::Image;

/// The history entry a build step writes: a metadata step or COPY/ADD
/// (`/bin/sh -c #(nop) ...`), a RUN (`/bin/sh -c ...`, `|N k=v ...` with
/// build args).
fn made_by_builder(img: &Image) -> bool {
    let last = img
        .config
        .get("history")
        .and_then(Value::as_array)
        .and_then(|h| h.last());
    let by = last
        .and_then(|h| h.get("created_by"))
        .and_then(Value::as_str)
        .unwrap_or("");
    by.starts_with("/bin/sh -c ")
        || by
            .strip_prefix('|')
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
}

/// The layer an image's last step added, if it added one.
fn own_layer(img: &Image) -> Option<&String> {
    let empty = img
        .config
        .get("history")
        .and_then(Value::as_array)
        .and_then(|h| h.last())
        .and_then(|h| h.get("empty_layer"))
        .and_then(Value::as_bool)
        == Some(true);
    if empty {
        None
    } else {
        img.diff_ids.last()
    }
}

impl Engine {
    fn build_cache(&self) -> Vec<&Image> {
        let mut v: Vec<&Image> = self
            .images
            .images()
            .filter(|i| made_by_builder(i))
            .filter(|i| self.images.refs_of(&i.id).is_empty())
            .filter(|i| self.containers.using_image(&i.id).is_none())
            .collect();
        crate::sort::sort_by(&mut v, |a, b| {
            a.created.cmp(&b.created).then(a.id.cmp(&b.id))
        });
        v
    }

    /// `BuildCache` rows of `GET /system/df` (the v1.45 shape).
    pub fn build_cache_rows(&self) -> Vec<Value> {
        let cache = self.build_cache();
        let ids: HashSet<&str> = cache.iter().map(|i| i.id.as_str()).collect();
        let outside: HashSet<&String> = self
            .images
            .images()
            .filter(|i| !ids.contains(i.id.as_str()))
            .flat_map(|i| &i.diff_ids)
            .collect();
        cache
            .iter()
            .map(|img| {
                let layer = own_layer(img);
                let size = layer
                    .and_then(|d| self.images.layer_sizes.get(d))
                    .copied()
                    .unwrap_or(0);
                let created = img.config.get("created").cloned().unwrap_or(Value::Null);
                let by = img
                    .config
                    .get("history")
                    .and_then(Value::as_array)
                    .and_then(|h| h.last())
                    .and_then(|h| h.get("created_by"))
                    .cloned()
                    .unwrap_or(json!(""));
                json!({
                    "ID": img.id.strip_prefix("sha256:").unwrap_or(&img.id),
                    "Parents": null,
                    "Type": "regular",
                    "Description": by,
                    "InUse": false,
                    "Shared": layer.is_some_and(|d| outside.contains(d)),
                    "Size": size,
                    "CreatedAt": created,
                    "LastUsedAt": created,
                    "UsageCount": 0,
                })
            })
            .collect()
    }

    /// `POST /build/prune`: the cache's images removed (those made before
    /// `until`, unix seconds, when given); dockerd's answer.
    pub fn build_prune(&mut self, until: Option<i64>) -> Result<Value, ImageError> {
        let victims: Vec<String> = self
            .build_cache()
            .into_iter()
            .filter(|i| until.is_none_or(|u| i.created < u))
            .map(|i| i.id.clone())
            .collect();
        let before: u64 = self.images.layer_sizes.values().sum();
        let mut deleted = Vec::new();
        for id in victims {
            let usage = |_: &str| None;
            self.images.delete(&id, false, &usage)?;
            deleted.push(json!(id.strip_prefix("sha256:").unwrap_or(&id)));
        }
        let after: u64 = self.images.layer_sizes.values().sum();
        Ok(json!({
            "CachesDeleted": if deleted.is_empty() { Value::Null } else { Value::Array(deleted) },
            "SpaceReclaimed": before.saturating_sub(after),
        }))
    }
}
