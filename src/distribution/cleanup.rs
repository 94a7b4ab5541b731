//! What interrupted pulls and pushes leave, swept at start-up (before the
//! image store collects unreferenced layers, with no worker running).
//!
//! Kept, so that the next pull does not fetch its finished layers again:
//! pull records (`image/pulls/`) younger than `ABANDONED_AFTER`. Removed: a
//! pull record whose image config exists (the pull finished; a crash came
//! before its record went), a record older than `ABANDONED_AFTER` (nobody
//! came back for it: its layers, if no image uses them, are then collected
//! by the store), and everything in `downloads/`: a push's compressed
//! temporaries, and the partial blobs (`<hex>.partial`) of an older
//! version, which stored blobs before extracting them (pulls now stream
//! into the layer and nothing reads a partial any more). A failed pull
//! keeps its record for its retry; this sweep bounds how long.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::image::digest::is_hex64;
use crate::image::layout::Layout;

/// A pull not resumed within this long is abandoned.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// What the sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    pub records: usize,
    pub partials: usize,
    pub other: usize,
}

fn older_than(p: &Path, now: SystemTime, age: Duration) -> bool {
    fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|d| d > age)
}

fn remove(p: &Path) -> bool {
    match fs::remove_file(p) {
        Ok(()) => true,
        Err(e) => {
            log::warn!("removing {}: {e}", p.display());
            false
        }
    }
}

/// Sweep `layout` as of `now`.
pub fn sweep(layout: &Layout, now: SystemTime) -> Swept {
    let mut s = Swept::default();
    if let Ok(rd) = fs::read_dir(layout.pulls_dir()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(hex) = name.strip_suffix(".json").filter(|h| is_hex64(h)) else {
                continue;
            };
            let done = layout.config_path(&format!("sha256:{hex}")).is_file();
            if (done || older_than(&e.path(), now, ABANDONED_AFTER)) && remove(&e.path()) {
                s.records += 1;
            }
        }
        if s.records > 0 {
            let _ = crate::atomic::sync_dir(&layout.pulls_dir());
        }
    }
    if let Ok(rd) = fs::read_dir(layout.root.join("downloads")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let partial = name.strip_suffix(".partial").is_some_and(is_hex64);
            if !e.file_type().is_ok_and(|t| t.is_file()) || !remove(&e.path()) {
                continue;
            }
            if partial {
                s.partials += 1;
            } else {
                s.other += 1;
            }
        }
    }
    if s != Swept::default() {
        log::info!(
            "removed {} finished or abandoned pull records, {} partial blobs of an older version, {} push leftovers",
            s.records,
            s.partials,
            s.other
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_and_finished_go_recent_stays() {
        let dir = std::env::temp_dir().join(format!("coracle-sweep-{}", std::process::id()));
        let layout = Layout::new(&dir);
        layout.create_dirs().unwrap();
        let dl = layout.root.join("downloads");
        fs::create_dir_all(&dl).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let rec_a = layout.hold_layers(&format!("sha256:{a}"), &[]).unwrap();
        let rec_b = layout.hold_layers(&format!("sha256:{b}"), &[]).unwrap();
        fs::write(layout.config_path(&format!("sha256:{b}")), b"{}").unwrap();
        let part = dl.join(format!("{a}.partial"));
        fs::write(&part, b"x").unwrap();
        fs::write(dl.join(".tmp-1-push-0"), b"x").unwrap();
        // Now: the finished record, the old partial and the push leftover go.
        let s = sweep(&layout, SystemTime::now());
        assert_eq!((s.records, s.partials, s.other), (1, 1, 1));
        assert!(rec_a.is_file() && !rec_b.exists() && !part.exists());
        // Two days on: the rest is abandoned.
        let later = SystemTime::now() + 2 * ABANDONED_AFTER;
        let s = sweep(&layout, later);
        assert_eq!((s.records, s.partials, s.other), (1, 0, 0));
        assert!(!rec_a.exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
