//! Issue 15 (size, idle memory, cold start): what the trimming changed that a
//! client or the disk can see. One daemon, a few seconds.
//!
//! - A restart after a clean stop rewrites no network record but the
//!   default bridge's (it used to write and fsync every
//!   `networks/<id>.json` at each start-up).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::Daemon;

/// (inode, mtime in ns) of each network record but the default bridge's
/// (written at each start: its bridge is made anew, maybe under another name).
fn records(root: &Path) -> Vec<(String, u64, i64)> {
    let mut v: Vec<_> = std::fs::read_dir(root.join("networks"))
        .expect("networks dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter(|e| {
            !std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .contains("com.docker.network.bridge.default_bridge")
        })
        .map(|e| {
            let m = e.metadata().expect("stat a network record");
            (
                e.file_name().to_string_lossy().into_owned(),
                m.ino(),
                m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn restart_rewrites_no_network_record() {
    let mut d = Daemon::start();
    d.wait_serving();
    let r = d.request(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"size-checks-net"}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    d.terminate();
    let before = records(&d.data_root);
    assert!(before.len() >= 3, "{before:?}"); // host, none, ours

    d.restart();
    d.wait_serving();
    let r = d.request("GET", "/networks/size-checks-net", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(records(&d.data_root), before, "a record was written again");
    let r = d.request("DELETE", "/networks/size-checks-net", None);
    assert_eq!(r.status, 204, "{}", r.body);
}
