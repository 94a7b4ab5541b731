//! Blob downloads, streamed: the bytes of a layer blob go through a
//! running sha256 straight to whoever reads them (the layer extractor), and
//! are never stored. A cut resumes with `Range` from the bytes received so
//! far (back-off capped, reset whenever data arrives), feeding the same
//! reader, so the decompressor and extractor above it carry on where they
//! were; nothing already received is fetched again. The stream ends (`Ok(0)`)
//! only once the blob is whole and its digest verified; a wrong digest is
//! an error the extraction fails with, so no unverified layer is committed.

use std::io::{self, Read};
use std::time::Duration;

use crate::sha256::Sha256;

use super::error::{DistError, Result};
use super::session::{registry_error, Session};
use crate::http::client::{ClientResponse, ReqBody, Url};
use crate::image::digest::hex;

/// Attempts in a row that bring no byte before the download fails.
const MAX_FRUITLESS: u32 = 8;
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Bytes really received from the network (for tests and the bench).
pub struct Counters {
    pub fetched: u64,
}

/// One blob as a `Read`: fetched, resumed after cuts, verified at its end.
/// A registry failure is kept (`take_error`) and surfaces to the reader as
/// an I/O error, so the caller can tell it from a failure of its own.
pub struct BlobStream<'a> {
    sess: &'a mut Session,
    url: Url,
    digest: String,
    /// From the manifest; 0 = unknown (read to the end of the response).
    size: u64,
    have: u64,
    hasher: Sha256,
    resp: Option<ClientResponse>,
    /// Bytes to drop from the current response: a registry that ignored
    /// `Range` sends the blob from its start again.
    skip: u64,
    backoff: Duration,
    fruitless: u32,
    progress: &'a mut dyn FnMut(u64) -> bool,
    /// Bytes received from the network, dropped ones included.
    pub fetched: u64,
    verified: bool,
    error: Option<DistError>,
}

impl<'a> BlobStream<'a> {
    /// `progress(current)` is called as bytes arrive; its `false` gives up
    /// (another layer of the pull failed).
    pub fn new(
        sess: &'a mut Session,
        digest: &str,
        size: u64,
        progress: &'a mut dyn FnMut(u64) -> bool,
    ) -> Result<BlobStream<'a>> {
        let url = sess.url(&format!("blobs/{digest}"))?;
        Ok(BlobStream {
            sess,
            url,
            digest: digest.to_string(),
            size,
            have: 0,
            hasher: Sha256::new(),
            resp: None,
            skip: 0,
            backoff: BACKOFF_START,
            fruitless: 0,
            progress,
            fetched: 0,
            verified: false,
            error: None,
        })
    }

    /// The registry failure that ended the stream, if that is what did.
    pub fn take_error(&mut self) -> Option<DistError> {
        self.error.take()
    }

    /// Read what the consumer left (a tar's trailing padding) and verify:
    /// `Ok` only for a whole blob of the right digest.
    pub fn finish(&mut self) -> Result<()> {
        let mut buf = [0u8; 8192];
        loop {
            match self.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.take_error().unwrap_or_else(|| e.into())),
            }
        }
        if self.verified {
            Ok(())
        } else {
            Err(DistError::Registry(format!(
                "fetching blob {}: ended early",
                self.digest
            )))
        }
    }

    fn fail(&mut self, e: DistError) -> io::Error {
        let io = io::Error::other(e.to_string());
        self.error = Some(e);
        io
    }

    /// A failed attempt: wait, or give up after too many in a row.
    fn retry(&mut self, why: String) -> std::result::Result<(), DistError> {
        self.resp = None;
        self.fruitless += 1;
        if self.fruitless >= MAX_FRUITLESS {
            return Err(DistError::Registry(format!(
                "fetching blob {}: {why} (at {} of {} bytes)",
                self.digest, self.have, self.size
            )));
        }
        log::info!(
            "fetching {}: {why} at {} of {} bytes; resuming in {:?}",
            self.digest,
            self.have,
            self.size,
            self.backoff
        );
        std::thread::sleep(self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        Ok(())
    }

    /// Open a response at `have`.
    fn connect(&mut self) -> std::result::Result<(), DistError> {
        let range = format!("bytes={}-", self.have);
        let mut headers = Vec::new();
        if self.have > 0 {
            headers.push(("Range", range.as_str()));
        }
        let mut resp = match self.sess.send("GET", &self.url, &headers, ReqBody::None) {
            Ok(r) => r,
            Err(e) => return self.retry(e.to_string()),
        };
        match resp.status {
            200 if self.have > 0 => {
                // The server ignored the range: drop what we already have.
                log::warn!(
                    "registry ignored Range for {}; skipping {} bytes",
                    self.digest,
                    self.have
                );
                self.skip = self.have;
            }
            200 | 206 => {}
            404 => {
                let body = resp.read_body(64 * 1024).unwrap_or_default();
                let text = registry_error(&body)
                    .map(|(_, t)| t)
                    .unwrap_or_else(|| "blob unknown: blob unknown to registry".into());
                return Err(DistError::NotFound(text));
            }
            s if s >= 500 => {
                let _ = resp.read_body(64 * 1024);
                return self.retry(format!("HTTP status {s}"));
            }
            s => {
                let body = resp.read_body(64 * 1024).unwrap_or_default();
                let text = registry_error(&body)
                    .map(|(_, t)| t)
                    .unwrap_or_else(|| format!("fetching blob {}: HTTP status {s}", self.digest));
                return Err(DistError::Registry(text));
            }
        }
        self.resp = Some(resp);
        Ok(())
    }

    /// The blob is whole: check its digest (once).
    fn verify(&mut self) -> std::result::Result<(), DistError> {
        if self.verified {
            return Ok(());
        }
        let got = format!("sha256:{}", hex(&self.hasher.clone().finalize()));
        if got != self.digest {
            return Err(DistError::Registry(format!(
                "filesystem layer verification failed for digest {}",
                self.digest
            )));
        }
        self.verified = true;
        self.resp = None;
        Ok(())
    }

    fn step(&mut self, buf: &mut [u8]) -> std::result::Result<usize, DistError> {
        loop {
            if self.size > 0 && self.have >= self.size {
                self.verify()?;
                return Ok(0);
            }
            if self.verified {
                return Ok(0);
            }
            let Some(resp) = self.resp.as_mut() else {
                self.connect()?;
                continue;
            };
            let room = if self.skip > 0 {
                buf.len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX))
            } else if self.size > 0 {
                buf.len()
                    .min(usize::try_from(self.size - self.have).unwrap_or(usize::MAX))
            } else {
                buf.len()
            };
            let n = match resp.body.read(&mut buf[..room]) {
                Ok(0) if self.size == 0 => {
                    self.verify()?;
                    return Ok(0);
                }
                Ok(0) => {
                    self.retry("connection closed early".into())?;
                    continue;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.retry(e.to_string())?;
                    continue;
                }
            };
            self.fetched += n as u64;
            // Data arrived: the link works again.
            self.fruitless = 0;
            self.backoff = BACKOFF_START;
            if self.skip > 0 {
                self.skip -= n as u64;
                continue;
            }
            self.hasher.update(&buf[..n]);
            self.have += n as u64;
            if !(self.progress)(self.have) {
                return Err(DistError::Registry(format!(
                    "fetching blob {}: cancelled",
                    self.digest
                )));
            }
            return Ok(n);
        }
    }
}

impl Read for BlobStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(e) = &self.error {
            return Err(io::Error::other(e.to_string()));
        }
        self.step(buf).map_err(|e| self.fail(e))
    }
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
