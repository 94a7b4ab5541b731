//! A pull's missing layers: up to `max` blobs downloading at once (dockerd's
//! `max-concurrent-downloads`, 3 by default), each on its own thread of the
//! pull's worker process with its own connection (a clone of the session).
//! Each thread extracts its blob as it arrives (no compressed copy on disk:
//! one write per byte of layer, for flash) and commits the layer; the
//! worker's main thread reports them done in the manifest's order. The threads live only in the forked worker, which
//! forks nothing: the daemon itself stays one thread. Progress lines of the
//! blobs in flight are interleaved on the worker's pipe as dockerd's are.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use serde_json::Value;

use super::blob::{BlobStream, Counters};
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

/// Fetch every layer not yet in the store, each streamed into its layer
/// directory and committed as it completes. `counters` gains the bytes
/// received.
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
    let max = max.max(1);
    let rep = SharedReporter::new(rep);
    for &i in todo.iter().skip(max) {
        rep.send(progress::status(Some(&short(&layers[i].digest)), "Waiting"));
    }
    let work = |sess: &mut Session, i: usize, cancel: &AtomicBool| {
        pull_layer(layout, sess, &layers[i], &diff_ids[i], &rep, cancel)
    };
    in_flight(sess, &todo, max, &work, |rx| {
        report_in_order(layers, &todo, rx, &rep, counters)
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

/// One layer: its blob streamed through the extractor into a temp
/// directory (nothing of the compressed blob is stored), its digest and
/// diff ID verified, then committed at once (the pull's record holds it),
/// so a kill loses at most the layers in flight. Returns the bytes fetched.
fn pull_layer(
    layout: &Layout,
    sess: &mut Session,
    l: &Descriptor,
    diff_id: &str,
    rep: &SharedReporter<'_>,
    cancel: &AtomicBool,
) -> Result<u64> {
    let sid = short(&l.digest);
    let size = l.size;
    let mut throttle = Throttle::new();
    let mut on_bytes = |cur: u64| {
        if throttle.due() || cur == size {
            rep.send(progress::bar(&sid, "Downloading", cur, size));
        }
        !cancel.load(Ordering::Relaxed)
    };
    let mut stream = BlobStream::new(sess, &l.digest, size, &mut on_bytes)?;
    let tmp = layout.new_temp_dir()?;
    let budget = Budget::default();
    let outcome = match extract_layer(&mut stream, &tmp, &budget) {
        Ok(info) => stream.finish().map(|()| info),
        // A registry failure (a cut that did not heal, a wrong digest) is
        // what ended the extraction: say that, not the extractor's view.
        Err(e) => Err(stream.take_error().unwrap_or(DistError::Image(e))),
    };
    let fetched = stream.fetched;
    drop(stream);
    let committed = outcome
        .and_then(|info| {
            if info.diff_id != diff_id {
                return Err(DistError::Image(ImageError::BadArchive(format!(
                    "layer {}: diff ID {} does not match the config's {diff_id}",
                    l.digest, info.diff_id
                ))));
            }
            rep.send(progress::status(Some(&sid), "Verifying Checksum"));
            rep.send(progress::status(Some(&sid), "Download complete"));
            Ok(info)
        })
        .and_then(|info| Ok(layout.commit_layer(&tmp, &info)?));
    if let Err(e) = committed {
        // Nothing half-written stays (start-up would sweep it too).
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    Ok(fetched)
}

/// Take each layer's outcome, reporting them in the manifest's order as
/// dockerd extracts. The first failure (of any layer) ends the pull.
fn report_in_order(
    layers: &[Descriptor],
    todo: &[usize],
    rx: &mpsc::Receiver<(usize, Result<u64>)>,
    rep: &SharedReporter<'_>,
    counters: &mut Counters,
) -> Result<()> {
    let mut done: HashSet<usize> = HashSet::new();
    for &i in todo {
        while !done.contains(&i) {
            let (j, r) = rx
                .recv()
                .map_err(|_| DistError::Registry("a layer download ended early".into()))?;
            counters.fetched += r?;
            done.insert(j);
        }
        let l = &layers[i];
        let sid = short(&l.digest);
        rep.send(progress::bar(&sid, "Extracting", l.size, l.size));
        rep.send(progress::status(Some(&sid), "Pull complete"));
    }
    Ok(())
}
