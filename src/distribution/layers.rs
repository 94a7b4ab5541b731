//! A pull's missing layers: up to `max` blobs downloading at once (dockerd's
//! `max-concurrent-downloads`, 3 by default), each on its own thread of the
//! pull's worker process with its own connection (a clone of the session),
//! while the worker's main thread extracts and commits the finished ones in
//! the manifest's order. The threads live only in the forked worker, which
//! forks nothing: the daemon itself stays one thread. Progress lines of the
//! blobs in flight are interleaved on the worker's pipe as dockerd's are.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use serde_json::Value;

use super::blob::{self, partial_path, Counters};
use super::error::{DistError, Result};
use super::manifest::Descriptor;
use super::progress::{self, Throttle};
use super::session::Session;
use crate::image::error::ImageError;
use crate::image::layer_extract::{extract_layer, Budget};
use crate::image::layout::Layout;
use crate::worker::Reporter;

/// The short id dockerd shows for a blob.
pub fn short(digest: &str) -> String {
    digest
        .strip_prefix("sha256:")
        .unwrap_or(digest)
        .chars()
        .take(12)
        .collect()
}

/// The worker's pipe, shared by the download threads.
pub struct SharedReporter<'a>(Mutex<&'a mut Reporter>);

impl<'a> SharedReporter<'a> {
    pub fn new(rep: &'a mut Reporter) -> SharedReporter<'a> {
        SharedReporter(Mutex::new(rep))
    }

    pub fn send(&self, v: Value) {
        // A poisoned lock means a thread panicked mid-line; the pull fails
        // anyway. A client gone away is the daemon's concern.
        if let Ok(mut r) = self.0.lock() {
            let _ = r.send(&v);
        }
    }
}

/// Download every layer not yet in the store, then extract and commit each,
/// in order. `counters` gains the bytes received.
pub fn fetch_layers(
    layout: &Layout,
    sess: &Session,
    layers: &[Descriptor],
    diff_ids: &[String],
    max: usize,
    rep: &mut Reporter,
    counters: &mut Counters,
) -> Result<()> {
    // Each missing blob once (an image may repeat a layer).
    let mut todo: Vec<usize> = Vec::new();
    for (i, (l, d)) in layers.iter().zip(diff_ids).enumerate() {
        if !layout.layer_exists(d) && !todo.iter().any(|&j| layers[j].digest == l.digest) {
            todo.push(i);
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let downloads = layout.root.join("downloads");
    fs::create_dir_all(&downloads)?;
    let max = max.max(1);
    let rep = SharedReporter::new(rep);
    for &i in todo.iter().skip(max) {
        rep.send(progress::status(Some(&short(&layers[i].digest)), "Waiting"));
    }
    let work = |sess: &mut Session, i: usize, cancel: &AtomicBool| {
        download_one(sess, &layers[i], &downloads, &rep, cancel)
    };
    in_flight(sess, &todo, max, &work, |rx| {
        extract_in_order(layout, layers, diff_ids, &todo, rx, &rep, counters)
    })
}

/// Run `work` on each of `items` with up to `max` threads, each with its
/// own clone of `sess`, while `consume` takes the results (index, outcome)
/// on the calling thread as they come. When `consume` fails, the threads
/// take no new item and `work` sees `cancel` set; all are joined before
/// this returns.
pub fn in_flight<T: Send, R>(
    sess: &Session,
    items: &[usize],
    max: usize,
    work: &(dyn Fn(&mut Session, usize, &AtomicBool) -> Result<T> + Sync),
    consume: impl FnOnce(&mpsc::Receiver<(usize, Result<T>)>) -> Result<R>,
) -> Result<R> {
    let queue = Mutex::new(items.iter().copied().collect::<VecDeque<usize>>());
    let cancel = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<(usize, Result<T>)>();
    let threads = max.max(1).min(items.len());
    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let mut sess = sess.clone();
            let (queue, cancel) = (&queue, &cancel);
            s.spawn(move || loop {
                let next = queue.lock().ok().and_then(|mut q| q.pop_front());
                let Some(i) = next else { break };
                if cancel.load(Ordering::Relaxed) {
                    break;
                }
                let r = work(&mut sess, i, cancel);
                if tx.send((i, r)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let out = consume(&rx);
        if out.is_err() {
            cancel.store(true, Ordering::Relaxed);
        }
        out
    })
}

/// One blob into its partial file, with its progress lines.
fn download_one(
    sess: &mut Session,
    l: &Descriptor,
    downloads: &std::path::Path,
    rep: &SharedReporter<'_>,
    cancel: &AtomicBool,
) -> Result<u64> {
    let sid = short(&l.digest);
    let path = partial_path(downloads, &l.digest);
    let mut throttle = Throttle::new();
    let size = l.size;
    let mut c = Counters { fetched: 0 };
    blob::download(sess, &l.digest, size, &path, &mut c, &mut |cur| {
        if throttle.due() || cur == size {
            rep.send(progress::bar(&sid, "Downloading", cur, size));
        }
        !cancel.load(Ordering::Relaxed)
    })?;
    rep.send(progress::status(Some(&sid), "Verifying Checksum"));
    rep.send(progress::status(Some(&sid), "Download complete"));
    Ok(c.fetched)
}

/// Wait for each layer's download in the manifest's order, then extract,
/// verify its diff ID and commit it. The first failure (of any download)
/// ends the pull.
fn extract_in_order(
    layout: &Layout,
    layers: &[Descriptor],
    diff_ids: &[String],
    todo: &[usize],
    rx: &mpsc::Receiver<(usize, Result<u64>)>,
    rep: &SharedReporter<'_>,
    counters: &mut Counters,
) -> Result<()> {
    let downloads = layout.root.join("downloads");
    let budget = Budget::default();
    let mut done: HashMap<&str, ()> = HashMap::new();
    for (l, d) in layers.iter().zip(diff_ids) {
        if layout.layer_exists(d) {
            continue;
        }
        if !todo.iter().any(|&j| layers[j].digest == l.digest) {
            continue;
        }
        while !done.contains_key(l.digest.as_str()) {
            let (i, r) = rx
                .recv()
                .map_err(|_| DistError::Registry("a layer download ended early".into()))?;
            counters.fetched += r?;
            done.insert(layers[i].digest.as_str(), ());
        }
        let sid = short(&l.digest);
        let size = l.size;
        let path = partial_path(&downloads, &l.digest);
        rep.send(progress::bar(&sid, "Extracting", 0, size));
        let tmp = layout.new_temp_dir()?;
        let extracted = blob::open(&path).and_then(|f| Ok(extract_layer(f, &tmp, &budget)?));
        let info = match extracted {
            Ok(info) if &info.diff_id == d => info,
            Ok(info) => {
                let _ = fs::remove_dir_all(&tmp);
                let _ = fs::remove_file(&path);
                return Err(DistError::Image(ImageError::BadArchive(format!(
                    "layer {}: diff ID {} does not match the config's {d}",
                    l.digest, info.diff_id
                ))));
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        layout.commit_layer(&tmp, &info)?;
        let _ = fs::remove_file(&path);
        rep.send(progress::bar(&sid, "Extracting", size, size));
        rep.send(progress::status(Some(&sid), "Pull complete"));
    }
    Ok(())
}
