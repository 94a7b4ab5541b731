//! Blob uploads as the distribution spec gives them: `HEAD` for a blob
//! already there, a cross-repository mount (`POST ?mount=&from=`), and an
//! upload session (`POST`) finished monolithically (one `PUT ?digest=`) or,
//! for a large blob, in chunks (`PATCH` with `Content-Range`, each to the
//! `Location` the last answer gave, then an empty `PUT ?digest=`).

use std::io::Read;

use super::error::{DistError, Result};
use super::session::{percent_encode, registry_error, Session};
use crate::http::client::{ReqBody, Url};

/// Blobs larger than this go up in chunks of this size.
pub const CHUNK: u64 = 8 << 20;

/// Does the registry have this blob in the session's repository?
pub fn exists(sess: &mut Session, digest: &str) -> Result<bool> {
    let url = sess.url(&format!("blobs/{digest}"))?;
    let r = sess.send("HEAD", &url, &[], ReqBody::None)?;
    Ok(r.status == 200)
}

pub fn status_error(what: &str, status: u16, body: &[u8]) -> DistError {
    match registry_error(body) {
        Some((code, text)) if code == "DENIED" || code == "UNAUTHORIZED" => {
            DistError::Registry(text)
        }
        Some((_, text)) => DistError::Registry(format!("{what}: {text}")),
        None => DistError::Registry(format!("{what}: HTTP status {status}")),
    }
}

/// The upload location an answer gave.
fn location(sess: &Session, r: &crate::http::client::ClientResponse) -> Result<Url> {
    let loc = r
        .header("location")
        .ok_or_else(|| DistError::Registry("upload without a Location".into()))?
        .to_string();
    sess.url(&loc)
}

/// Try to mount `digest` from `from` (another repository of the same
/// registry). True when mounted; false when the registry declined (it may
/// have opened an upload session instead, which it expires by itself).
pub fn mount(sess: &mut Session, digest: &str, from: &str) -> Result<bool> {
    let url = sess.url(&format!(
        "blobs/uploads/?mount={}&from={}",
        percent_encode(digest),
        percent_encode(from)
    ))?;
    let mut r = sess.send("POST", &url, &[], ReqBody::None)?;
    let _ = r.read_body(64 * 1024);
    Ok(r.status == 201)
}

/// Open an upload session; returns its location.
pub fn start(sess: &mut Session) -> Result<Url> {
    let url = sess.url("blobs/uploads/")?;
    let mut r = sess.send("POST", &url, &[], ReqBody::None)?;
    let b = r.read_body(64 * 1024).unwrap_or_default();
    if r.status != 202 {
        return Err(status_error("starting an upload", r.status, &b));
    }
    location(sess, &r)
}

/// `loc` with `digest=` added to its query.
fn with_digest(loc: Url, digest: &str) -> Url {
    let sep = if loc.path.contains('?') { '&' } else { '?' };
    Url {
        path: format!("{}{sep}digest={}", loc.path, percent_encode(digest)),
        ..loc
    }
}

/// Finish an upload session: `body` is the whole blob (monolithic) or
/// nothing (after the chunks).
pub fn finish(sess: &mut Session, loc: Url, digest: &str, body: ReqBody<'_>) -> Result<()> {
    let put = with_digest(loc, digest);
    let mut r = sess.send(
        "PUT",
        &put,
        &[("Content-Type", "application/octet-stream")],
        body,
    )?;
    let b = r.read_body(64 * 1024).unwrap_or_default();
    if r.status != 201 {
        return Err(status_error("uploading a blob", r.status, &b));
    }
    Ok(())
}

/// Upload `size` bytes of `data` as `digest`: monolithic up to `CHUNK`,
/// chunked above.
pub fn upload(sess: &mut Session, digest: &str, data: &mut dyn Read, size: u64) -> Result<()> {
    let mut loc = start(sess)?;
    if size <= CHUNK {
        return finish(sess, loc, digest, ReqBody::Reader(data, size));
    }
    let mut sent = 0u64;
    while sent < size {
        let n = CHUNK.min(size - sent);
        let range = format!("{sent}-{}", sent + n - 1);
        let mut r = sess.send(
            "PATCH",
            &loc,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            ReqBody::Reader(data, n),
        )?;
        let b = r.read_body(64 * 1024).unwrap_or_default();
        if r.status != 202 {
            return Err(status_error("uploading a chunk", r.status, &b));
        }
        loc = location(sess, &r)?;
        sent += n;
    }
    finish(sess, loc, digest, ReqBody::None)
}
