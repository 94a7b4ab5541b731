//! `GET /containers/{id}/changes` (`docker diff`).

use std::path::{Path, PathBuf};

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::key;
use super::Call;
use crate::engine::Response;

/// `GET /containers/{id}/changes`: from the overlay upper dir, walked in a
/// worker (a container can have written any number of files).
pub fn changes(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    let upper = call.engine.container_dirs.upper(&e.c.id);
    let lowers = call
        .engine
        .images
        .lower_dirs(&e.c.image)
        .unwrap_or_default();
    // The answer streams out of the worker (it can be large); a worker that
    // fails cuts the connection.
    super::json_from_worker(call, move || diff(&upper, &lowers))
}

/// The changes of an upper dir against its image's layers, dockerd's shape
/// (null when there are none).
fn diff(upper: &Path, lowers: &[PathBuf]) -> Value {
    let mut all = Vec::new();
    walk_changes(upper, upper, lowers, &mut all);
    // Paths dockerd keeps in its init layer are not the container's changes;
    // a directory "changed" only by them is not either.
    const INIT: &[&str] = &[
        "/.dockerenv",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/mtab",
        "/dev",
        "/proc",
        "/sys",
    ];
    let is_init = |p: &str| {
        INIT.iter()
            .any(|i| p == *i || p.starts_with(&format!("{i}/")))
    };
    let kept: Vec<Value> = all
        .into_iter()
        .filter(|c| !is_init(c["Path"].as_str().unwrap_or("")))
        .collect();
    let mut out: Vec<Value> = kept
        .iter()
        .filter(|c| {
            let path = c["Path"].as_str().unwrap_or("");
            let is_dir = upper.join(path.trim_start_matches('/')).is_dir();
            c["Kind"] != 0
                || !is_dir
                || kept.iter().any(|o| {
                    o["Path"]
                        .as_str()
                        .is_some_and(|q| q.starts_with(&format!("{path}/")))
                })
        })
        .cloned()
        .collect();
    crate::sort::sort_by(&mut out, |a: &Value, b: &Value| {
        a["Path"].as_str().cmp(&b["Path"].as_str())
    });
    if out.is_empty() {
        Value::Null
    } else {
        Value::Array(out)
    }
}

fn walk_changes(root: &Path, dir: &Path, lowers: &[PathBuf], out: &mut Vec<Value>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let shown = format!("/{}", rel.display());
        let in_lower = lowers
            .iter()
            .any(|l| l.join(rel).symlink_metadata().is_ok());
        // An overlay whiteout: a 0/0 character device.
        let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
            2
        } else if in_lower {
            0
        } else {
            1
        };
        out.push(json!({ "Path": shown, "Kind": kind }));
        if meta.is_dir() && kind != 2 {
            walk_changes(root, &path, lowers, out);
        }
    }
}
