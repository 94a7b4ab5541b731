//! v1.3's `POST /images/{name}/insert?path=&url=`: a file fetched from a
//! URL becomes a new layer on top of an image (as dockerd 0.x did it, by a
//! container it committed). Worker side: the download goes to a temp file,
//! a one-file tar of it is extracted as the layer like any other, and the
//! new config is the base's with the layer and a history entry added.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::json;
use serde_json::Value;

use super::archive_load::{LoadSummary, TempDirs};
use super::error::{ImageError, Result};
use super::import::publish_image;
use super::layer_extract::{extract_layer, Budget};
use crate::image::layout::Layout;
use crate::timefmt::now_rfc3339;

#[derive(Debug, Clone)]
pub struct InsertOptions {
    /// The base image's ID and its config, as stored.
    pub base_id: String,
    pub base_config: Value,
    /// Where the file goes in the image (absolute).
    pub path: String,
    pub url: String,
}

/// The path's components, refused when empty or climbing out (`..`).
pub fn check_path(path: &str) -> Result<Vec<String>> {
    let parts: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_string)
        .collect();
    if parts.is_empty() || parts.iter().any(|c| c == "..") {
        return Err(ImageError::InvalidArgument(format!(
            "invalid path {path:?}: a file path in the image is required"
        )));
    }
    Ok(parts)
}

/// Build the layer from `body` (the URL's content) and commit the image.
pub fn insert_file<R: Read>(
    layout: &Layout,
    mut body: R,
    opts: &InsertOptions,
    budget: &Budget,
) -> Result<LoadSummary> {
    let parts = check_path(&opts.path)?;
    layout.create_dirs()?;
    let mut temps = TempDirs::default();
    let work = layout.new_temp_dir()?;
    temps.0.push(work.clone());
    let download = work.join("download");
    let size = io::copy(
        &mut (&mut body).take(budget.max_total + 1),
        &mut File::create(&download)?,
    )?;
    if size > budget.max_total {
        return Err(ImageError::TooLarge(format!("{} is too large", opts.url)));
    }
    let tar_path = work.join("layer.tar");
    write_one_file_tar(&tar_path, &parts, &download, size)?;
    let tmp = layout.new_temp_dir()?;
    temps.0.push(tmp.clone());
    let info = extract_layer(File::open(&tar_path)?, &tmp, budget)?;
    let config = new_config(opts, &info.diff_id, &now_rfc3339())?;
    publish_image(layout, &mut temps, Some((&tmp, &info)), &config, None)
}

/// A tar with the file's parent directories (0755) and the file (0644).
fn write_one_file_tar(out: &Path, parts: &[String], file: &Path, size: u64) -> io::Result<()> {
    let mut b = tar::Builder::new(File::create(out)?);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(now);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    let (name, dirs) = parts
        .split_last()
        .ok_or_else(|| io::Error::other("empty path"))?;
    let mut prefix = String::new();
    for d in dirs {
        prefix.push_str(d);
        prefix.push('/');
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, &prefix, io::empty())?;
    }
    let mut h = header(tar::EntryType::Regular, 0o644, size);
    b.append_data(&mut h, format!("{prefix}{name}"), File::open(file)?)?;
    b.into_inner()?.sync_all()
}

/// The base config with the new layer on top, its history entry, and the
/// base as parent.
pub fn new_config(opts: &InsertOptions, diff_id: &str, created: &str) -> Result<Vec<u8>> {
    let mut cfg = opts.base_config.clone();
    let Some(obj) = cfg.as_object_mut() else {
        return Err(ImageError::Corrupt(
            "the base image's config is not an object".into(),
        ));
    };
    obj.insert("created".into(), json!(created));
    obj.insert("parent".into(), json!(opts.base_id));
    let by = format!("echo insert {} {}", opts.url, opts.path);
    match obj.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(json!({ "created": created, "created_by": by })),
        None => {
            obj.insert(
                "history".into(),
                json!([{ "created": created, "created_by": by }]),
            );
        }
    }
    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({ "type": "layers", "diff_ids": [] }));
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(json!(diff_id)),
        None => {
            return Err(ImageError::Corrupt(
                "the base image has no rootfs.diff_ids".into(),
            ))
        }
    }
    serde_json::to_vec(&cfg).map_err(|e| ImageError::Io(io::Error::other(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_config() {
        assert_eq!(check_path("/usr/x").unwrap(), vec!["usr", "x"]);
        assert!(check_path("/").is_err());
        assert!(check_path("/a/../../etc/passwd").is_err());
        let opts = InsertOptions {
            base_id: "sha256:aa".into(),
            base_config: json!({"config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
                "history": [{"created_by": "base"}]}),
            path: "/usr/x".into(),
            url: "http://h/x".into(),
        };
        let c: Value =
            serde_json::from_slice(&new_config(&opts, "sha256:2", "T").unwrap()).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"], json!(["sha256:1", "sha256:2"]));
        assert_eq!(
            c["history"][1]["created_by"],
            "echo insert http://h/x /usr/x"
        );
        assert_eq!(c["parent"], "sha256:aa");
        assert_eq!(c["config"]["Cmd"], json!(["sh"]));
    }
}
