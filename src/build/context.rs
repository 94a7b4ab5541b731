//! The build context, worker side: the request body (a tar, plain or gzip)
//! extracted into a private directory, `.dockerignore` applied, the
//! Dockerfile found and parsed. Runs in a forked worker: the daemon only
//! moves the body's bytes through a pipe.

use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::dockerfile::{self, Dockerfile};
use super::dockerignore::{clean, Matcher};
use crate::image::error::ImageError;
use crate::image::layer_extract::{extract_layer, Budget, DIFF_DIR};

/// The largest Dockerfile read.
const MAX_DOCKERFILE: u64 = 4 << 20;

/// What can go wrong before the first step, with dockerd's words.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub enum BuildError {
    /// "Cannot locate specified Dockerfile: X". 400.
    NoDockerfile(String),
    /// The Dockerfile or `.dockerignore` does not parse. 400.
    Invalid(String),
    /// The context is not a readable tar. 400.
    BadContext(String),
    /// Ours: the disk, the worker. 500.
    Internal(String),
    /// A RUN step's command exited non-zero (the stream's errorDetail code).
    RunFailed { code: i32, message: String },
    /// The daemon stopped the build (it is shutting down): dockerd's
    /// "Build cancelled".
    Cancelled,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NoDockerfile(n) => write!(f, "Cannot locate specified Dockerfile: {n}"),
            BuildError::Invalid(m) | BuildError::Internal(m) => f.write_str(m),
            BuildError::RunFailed { message, .. } => f.write_str(message),
            BuildError::BadContext(m) => write!(f, "failed to read the build context: {m}"),
            BuildError::Cancelled => f.write_str("Build cancelled"),
        }
    }
}

impl From<ImageError> for BuildError {
    fn from(e: ImageError) -> Self {
        BuildError::Internal(e.to_string())
    }
}

impl From<std::io::Error> for BuildError {
    fn from(e: std::io::Error) -> Self {
        BuildError::Internal(e.to_string())
    }
}

/// A context ready for the steps.
#[derive(Debug, Serialize, Deserialize)]
pub struct Received {
    /// The directory the worker made; the context is its `diff/`.
    pub dir: PathBuf,
    pub dockerfile: String,
}

impl Received {
    pub fn root(&self) -> PathBuf {
        self.dir.join(DIFF_DIR)
    }
}

/// Extract `input` into `dir` (new and empty), apply `.dockerignore`,
/// read and parse the Dockerfile named `name`.
pub fn receive<R: Read>(
    input: R,
    dir: &Path,
    name: &str,
) -> Result<(Received, Dockerfile), BuildError> {
    extract_layer(input, dir, &Budget::default()).map_err(|e| match e {
        ImageError::Io(e) => BuildError::Internal(crate::goerr::io_text(&e)),
        other => BuildError::BadContext(other.to_string()),
    })?;
    let root = dir.join(DIFF_DIR);
    let name = if name.is_empty() { "Dockerfile" } else { name };
    let rel = clean(name).trim_start_matches('/').to_string();
    let mut path = root.join(&rel);
    // dockerd falls back to the lower-case name for the default.
    if name == "Dockerfile" && !path.is_file() {
        path = root.join("dockerfile");
    }
    if rel.starts_with("..") || !path.is_file() {
        return Err(BuildError::NoDockerfile(name.to_string()));
    }
    let mut text = String::new();
    fs::File::open(&path)?
        .take(MAX_DOCKERFILE)
        .read_to_string(&mut text)
        .map_err(|e| BuildError::Invalid(format!("the Dockerfile cannot be read: {e}")))?;
    let df = dockerfile::parse(&text).map_err(|e| match e {
        dockerfile::ParseError::Empty => {
            BuildError::Invalid(format!("the Dockerfile ({name}) cannot be empty"))
        }
        e => BuildError::Invalid(e.to_string()),
    })?;
    let ignore = match fs::read_to_string(root.join(".dockerignore")) {
        Ok(t) => Matcher::parse(&t).map_err(BuildError::Invalid)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Matcher::default(),
        Err(e) => return Err(e.into()),
    };
    if !ignore.is_empty() {
        prune(&root, "", &ignore, &[rel.as_str(), ".dockerignore"])?;
    }
    Ok((
        Received {
            dir: dir.to_path_buf(),
            dockerfile: text,
        },
        df,
    ))
}

/// Remove what `.dockerignore` excludes (the Dockerfile and the ignore
/// file itself stay: the builder reads them). A directory excluded whole is
/// still walked: an `!` exception may keep something inside.
fn prune(root: &Path, rel: &str, ignore: &Matcher, keep: &[&str]) -> std::io::Result<()> {
    let dir = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        let is_dir = entry.file_type()?.is_dir();
        if is_dir {
            prune(root, &child, ignore, keep)?;
            if ignore.excluded(&child) && fs::read_dir(entry.path())?.next().is_none() {
                fs::remove_dir(entry.path())?;
            }
        } else if ignore.excluded(&child) && !keep.contains(&child.as_str()) {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// How much of a remote context is looked at to tell a Dockerfile from an
/// archive (dockerd's `maxPreambleLength`).
const PREAMBLE: usize = 100;

/// `remote=` an `http://` URL (dockerd's `newURLRemote`): a tar (plain or
/// gzip) is the context; text is the Dockerfile itself, then the context
/// holds only it (under the `dockerfile` name). The context as a tar.
pub fn fetch_remote(url: &str, dockerfile: &str) -> Result<Box<dyn Read>, BuildError> {
    let fail =
        |m: String| BuildError::Invalid(format!("error downloading remote context {url}: {m}"));
    let parsed = crate::http::client::Url::parse(url).map_err(|e| fail(e.to_string()))?;
    if parsed.scheme != "http" {
        return Err(fail(
            "this daemon's builder downloads only http:// contexts".into(),
        ));
    }
    let resp =
        crate::http::client::request("GET", &parsed, &[], crate::http::client::ReqBody::None)
            .map_err(|e| fail(e.to_string()))?;
    if !(200..300).contains(&resp.status) {
        return Err(fail(format!(
            "failed to GET {url} with status {} {}",
            resp.status,
            crate::http::response::reason(resp.status)
        )));
    }
    let ct = resp
        .header("Content-Type")
        .map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let mut body = resp.body;
    let mut head = Vec::with_capacity(512);
    (&mut body).take(512).read_to_end(&mut head)?;
    if head.is_empty() {
        return Err(fail("empty response".into()));
    }
    let gz = head.starts_with(&[0x1f, 0x8b]);
    let tar = head.len() >= 262 && &head[257..262] == b"ustar";
    let text = !head[..head.len().min(PREAMBLE)].contains(&0);
    let archive_type = ct.contains("tar") || ct.contains("gzip");
    if gz || tar || (archive_type && !text) {
        return Ok(Box::new(std::io::Cursor::new(head).chain(body)));
    }
    if !(ct.is_empty() || ct == "text/plain" || ct == "application/octet-stream") || !text {
        return Err(fail(format!("unsupported Content-Type {ct:?}")));
    }
    let mut text = head;
    body.take(MAX_DOCKERFILE).read_to_end(&mut text)?;
    let name = if dockerfile.is_empty() {
        "Dockerfile"
    } else {
        dockerfile
    };
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    let mut tarball = tar::Builder::new(Vec::new());
    tarball
        .append_data(&mut h, clean(name).trim_start_matches('/'), &text[..])
        .map_err(|e| BuildError::Internal(e.to_string()))?;
    let bytes = tarball
        .into_inner()
        .map_err(|e| BuildError::Internal(e.to_string()))?;
    Ok(Box::new(std::io::Cursor::new(bytes)))
}
