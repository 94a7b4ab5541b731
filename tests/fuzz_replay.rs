//! Replays every fuzz corpus input (fuzz/corpus/TARGET/*) and every kept crash
//! input (fuzz/regressions/TARGET/*) through the fuzz targets' own entry points
//! (fuzz/entries.rs), on stable, so CI re-runs what the fuzzers found without
//! nightly or cargo-fuzz. A panic in an entry point is a test failure naming the
//! input.

#[path = "../fuzz/entries.rs"]
mod entries;

use std::path::{Path, PathBuf};

/// How long one input may take (debug build, busy machine) before it counts as a hang.
const HANG: std::time::Duration = std::time::Duration::from_secs(10);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn replay(kind: &str, min_per_target: usize) {
    let mut failed = Vec::new();
    let mut total = 0;
    for (name, run) in entries::TARGETS {
        let files = inputs(&root().join(kind).join(name));
        assert!(
            files.len() >= min_per_target,
            "fuzz/{kind}/{name} holds {} inputs, want at least {min_per_target}",
            files.len()
        );
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            total += 1;
            // A hang is a failure too (the fuzzers' -timeout): each input runs on
            // its own thread, given HANG seconds.
            let (tx, rx) = std::sync::mpsc::channel();
            let run = *run;
            std::thread::spawn(move || {
                let r = std::panic::catch_unwind(|| run(&data));
                let _ = tx.send(r.err().map(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                }));
            });
            match rx.recv_timeout(HANG) {
                Ok(None) => {}
                Ok(Some(msg)) => failed.push(format!("{}: {msg}", f.display())),
                Err(_) => failed.push(format!("{}: still running after {HANG:?}", f.display())),
            }
        }
    }
    eprintln!("replayed {total} {kind} inputs");
    assert!(
        failed.is_empty(),
        "inputs that panic:\n{}",
        failed.join("\n")
    );
}

#[test]
fn corpus_replays_clean() {
    // Every target has a seed corpus.
    replay("corpus", 1);
}

#[test]
fn regressions_replay_clean() {
    replay("regressions", 0);
}

/// Every fuzz target has its entry point here and a `[[bin]]` in fuzz/Cargo.toml,
/// so a target cannot be added without CI replaying it.
#[test]
fn every_target_is_replayed() {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "coracle-fuzz")
        .collect();
    let mut names: Vec<&str> = entries::TARGETS.iter().map(|(n, _)| *n).collect();
    let mut bins_sorted = bins.clone();
    names.sort_unstable();
    bins_sorted.sort_unstable();
    assert_eq!(names, bins_sorted);
    for n in names {
        let src = std::fs::read_to_string(root().join("fuzz_targets").join(format!("{n}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{n}.rs: {e}"));
        assert!(
            src.contains(&format!("entries::{n}(data)")),
            "{n}.rs does not call entries::{n}"
        );
    }
}
