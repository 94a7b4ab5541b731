//! Resumable blob downloads. A blob streams into `downloads/<hex>.partial`
//! with a running sha256; a cut resumes with `Range` from where it stopped
//! (back-off capped, reset whenever data arrives), never from zero, and a
//! partial file left by a killed daemon is picked up by the next pull. The
//! file is usable only once its length and digest are verified.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::error::{DistError, Result};
use super::session::{registry_error, Session};
use crate::http::client::ReqBody;
use crate::image::digest::hex;

/// Attempts in a row that bring no byte before the download fails.
const MAX_FRUITLESS: u32 = 8;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The partial file is flushed to disk every this many bytes, so a power
/// cut loses little.
const SYNC_EVERY: u64 = 8 << 20;

/// Where a blob is downloaded to.
pub fn partial_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join(format!(
        "{}.partial",
        digest.strip_prefix("sha256:").unwrap_or(digest)
    ))
}

/// Bytes really received from the network (for tests and the bench).
pub struct Counters {
    pub fetched: u64,
}

/// Fetch `digest` (`size` bytes) into `path`, resuming what is there.
/// `progress(current)` is called as bytes arrive; its `false` gives up
/// (another layer of the pull failed), keeping the partial file.
pub fn download(
    sess: &mut Session,
    digest: &str,
    size: u64,
    path: &Path,
    counters: &mut Counters,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let mut have = file.metadata()?.len();
    if size > 0 && have > size {
        file.set_len(0)?;
        have = 0;
    }
    // The running hash covers what an earlier attempt left.
    let mut hasher = Sha256::new();
    if have > 0 {
        file.seek(SeekFrom::Start(0))?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = have;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            left -= n as u64;
        }
        log::info!("resuming {digest} at {have} of {size} bytes");
    }
    file.seek(SeekFrom::Start(have))?;
    let url = sess.url(&format!("blobs/{digest}"))?;
    let mut backoff = BACKOFF_START;
    let mut fruitless = 0u32;
    let mut unsynced = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if size > 0 && have == size {
            break;
        }
        let range = format!("bytes={have}-");
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range", range.as_str()));
        }
        let attempt = sess.send("GET", &url, &headers, ReqBody::None);
        let mut resp = match attempt {
            Ok(r) => r,
            Err(e) => {
                fruitless += 1;
                if fruitless >= MAX_FRUITLESS {
                    return Err(e);
                }
                log::info!("fetching {digest}: {e}; retrying in {backoff:?}");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        match resp.status {
            200 if have > 0 => {
                // The server ignored the range: only now start over.
                log::warn!("registry ignored Range for {digest}; fetching it whole");
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                hasher = Sha256::new();
                have = 0;
            }
            200 | 206 => {}
            416 if size > 0 && have >= size => break,
            404 => {
                let body = resp.read_body(64 * 1024).unwrap_or_default();
                let text = registry_error(&body)
                    .map(|(_, t)| t)
                    .unwrap_or_else(|| "blob unknown: blob unknown to registry".into());
                return Err(DistError::NotFound(text));
            }
            s if s >= 500 => {
                let _ = resp.read_body(64 * 1024);
                fruitless += 1;
                if fruitless >= MAX_FRUITLESS {
                    return Err(DistError::Registry(format!(
                        "fetching blob {digest}: HTTP status {s}"
                    )));
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            s => {
                let body = resp.read_body(64 * 1024).unwrap_or_default();
                let text = registry_error(&body)
                    .map(|(_, t)| t)
                    .unwrap_or_else(|| format!("fetching blob {digest}: HTTP status {s}"));
                return Err(DistError::Registry(text));
            }
        }
        let mut cut = None;
        loop {
            let n = match resp.body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    cut = Some(e);
                    break;
                }
            };
            let n = if size > 0 {
                n.min((size - have) as usize)
            } else {
                n
            };
            if let Err(e) = file.write_all(&buf[..n]) {
                // A full disk keeps nothing half-written: the partial goes.
                if e.raw_os_error() == Some(libc::ENOSPC) {
                    drop(file);
                    let _ = fs::remove_file(path);
                }
                return Err(e.into());
            }
            hasher.update(&buf[..n]);
            have += n as u64;
            counters.fetched += n as u64;
            unsynced += n as u64;
            if unsynced >= SYNC_EVERY {
                file.sync_data()?;
                unsynced = 0;
            }
            // Data arrived: the link works again.
            fruitless = 0;
            backoff = BACKOFF_START;
            if !progress(have) {
                return Err(DistError::Registry(format!(
                    "fetching blob {digest}: cancelled"
                )));
            }
            if size > 0 && have == size {
                break;
            }
        }
        if size == 0 && cut.is_none() {
            break;
        }
        if size > 0 && have == size {
            break;
        }
        fruitless += 1;
        let why = cut.map_or_else(|| "connection closed early".to_string(), |e| e.to_string());
        if fruitless >= MAX_FRUITLESS {
            return Err(DistError::Registry(format!(
                "fetching blob {digest}: {why} (at {have} of {size} bytes)"
            )));
        }
        log::info!("fetching {digest}: {why} at {have} of {size} bytes; resuming in {backoff:?}");
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    file.sync_data()?;
    let got = format!("sha256:{}", hex(&hasher.finalize()));
    if got != digest {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(DistError::Registry(format!(
            "filesystem layer verification failed for digest {digest}"
        )));
    }
    Ok(())
}

/// A small blob (an image config) read into memory and verified.
pub fn fetch_small(sess: &mut Session, digest: &str, max: u64) -> Result<Vec<u8>> {
    let url = sess.url(&format!("blobs/{digest}"))?;
    let mut resp = sess.send("GET", &url, &[], ReqBody::None)?;
    if resp.status == 404 {
        let body = resp.read_body(64 * 1024).unwrap_or_default();
        return Err(DistError::NotFound(
            registry_error(&body)
                .map(|(_, t)| t)
                .unwrap_or_else(|| "blob unknown: blob unknown to registry".into()),
        ));
    }
    if resp.status != 200 {
        return Err(DistError::Registry(format!(
            "fetching blob {digest}: HTTP status {}",
            resp.status
        )));
    }
    let body = resp
        .read_body(max)
        .map_err(|e| DistError::Registry(format!("fetching blob {digest}: {e}")))?;
    if crate::image::digest::sha256_digest(&body) != digest {
        return Err(DistError::Registry(format!(
            "image config verification failed for digest {digest}"
        )));
    }
    Ok(body)
}

/// Open a verified download for reading.
pub fn open(path: &Path) -> Result<File> {
    Ok(File::open(path)?)
}
