//! Image response shapes: the `docker images` rows with their filters,
//! `inspect` and `history`. They read the store's index; the store itself
//! builds no JSON for the API.

use crate::json;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::filters;
use crate::image::error::Result;
use crate::image::reference::Reference;
use crate::store::images::{Image, ImageStore, ListFilters};
use crate::timefmt::parse_rfc3339_secs as parse_rfc3339;

const LIST_FILTERS: &[&str] = &["dangling", "label", "before", "since", "reference"];

impl ListFilters {
    /// Decode the `filters` query parameter of `GET /images/json` and
    /// `POST /images/prune` (either JSON form, through the one parser).
    pub fn from_json(s: &str) -> std::result::Result<ListFilters, ApiError> {
        let mut f = ListFilters::default();
        for (k, vals) in filters::parse(Some(s), LIST_FILTERS)? {
            match k.as_str() {
                "dangling" => {
                    for v in vals {
                        f.dangling = Some(match v.as_str() {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => {
                                return Err(ApiError::InvalidParameter(format!(
                                    "Invalid filter 'dangling={v}'"
                                )))
                            }
                        });
                    }
                }
                "label" => f.labels.extend(vals),
                "before" => f.before = vals.into_iter().next(),
                "since" => f.since = vals.into_iter().next(),
                _ => f.reference.extend(vals),
            }
        }
        Ok(f)
    }
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
        crate::sort::sort_by(&mut rows, |a, b| {
            b.0.created.cmp(&a.0.created).then(a.0.id.cmp(&b.0.id))
        });
        Ok(rows.into_iter().map(|(_, v)| v).collect())
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
