//! Which compressed blob a layer (diff ID) is, and where it was seen: the
//! registry and repository it was pulled from or pushed to (dockerd's
//! `v2metadata`). A push uses it to `HEAD` or cross-mount the blob instead
//! of compressing the layer again; a pull records it. One small file per
//! diff ID under `image/blob-sources/`, written atomically; it is only a
//! hint, checked against the registry before use, so a lost or stale entry
//! costs a recompression, never a wrong push.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::image::layout::Layout;

/// Entries kept per layer (the most recent first).
const KEEP: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The compressed blob's digest and size.
    pub digest: String,
    pub size: u64,
    /// `host[:port]` as the session reached it.
    pub registry: String,
    /// The repository path on that registry (`library/busybox`).
    pub repo: String,
}

fn path(layout: &Layout, diff_id: &str) -> Option<PathBuf> {
    let hex = diff_id.strip_prefix("sha256:")?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| layout.root.join("blob-sources").join(format!("{hex}.json")))
}

/// What is known of `diff_id` (nothing when unreadable).
pub fn read(layout: &Layout, diff_id: &str) -> Vec<Source> {
    path(layout, diff_id)
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Remember that `diff_id` is `src` (first in the list). A failure is
/// logged: the cache is a hint.
pub fn record(layout: &Layout, diff_id: &str, src: Source) {
    let Some(p) = path(layout, diff_id) else {
        return;
    };
    let mut all = read(layout, diff_id);
    if all.first() == Some(&src) {
        return;
    }
    all.retain(|s| s != &src);
    all.insert(0, src);
    all.truncate(KEEP);
    let written = serde_json::to_vec(&all)
        .map_err(std::io::Error::other)
        .and_then(|b| {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::atomic::write_file(&p, &b)
        });
    if let Err(e) = written {
        log::warn!("recording the blob of layer {diff_id}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_sources_come_back_newest_first() {
        let dir = std::env::temp_dir().join(format!("coracle-bs-{}", std::process::id()));
        let layout = Layout::new(&dir);
        let d = format!("sha256:{}", "a".repeat(64));
        let src = |repo: &str| Source {
            digest: format!("sha256:{}", "b".repeat(64)),
            size: 3,
            registry: "127.0.0.1:5000".into(),
            repo: repo.into(),
        };
        assert!(read(&layout, &d).is_empty());
        record(&layout, &d, src("one"));
        record(&layout, &d, src("two"));
        record(&layout, &d, src("one"));
        assert_eq!(read(&layout, &d), vec![src("one"), src("two")]);
        record(&layout, "sha256:../../x", src("one"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
