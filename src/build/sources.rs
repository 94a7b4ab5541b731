//! COPY/ADD sources resolved, worker side, as the classic builder does:
//! wildcards matched (Go's `filepath.Match`) against a walk of the context
//! or an image's layers, `http://` URLs of ADD downloaded (mode 0600,
//! `Last-Modified` as the mtime, the name from the URL's path), the
//! destination checked, and `--chown` names looked up in the image's own
//! /etc/passwd and /etc/group.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::context::BuildError;
use super::dockerignore::{clean, has_wildcards, path_match};
use crate::http::client::{request, ReqBody, Url};

fn invalid(e: impl ToString) -> BuildError {
    BuildError::Invalid(e.to_string())
}

/// One source, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Its path relative to its roots, or a download's file name.
    pub rel: String,
    /// Every root that has it, bottom to top (a download: its file).
    pub found: Vec<PathBuf>,
    /// A local file (ADD may extract it); a download is copied as it is.
    pub local: bool,
}

impl Source {
    /// The copy that wins: the topmost.
    pub fn top(&self) -> Option<&PathBuf> {
        self.found.last()
    }
}

/// moby's `urlutil.IsURL`.
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// The sources of one COPY/ADD step (`kw`), in the order dockerd copies
/// them; `downloads` is where ADD's URLs are fetched to (None: COPY, which
/// refuses URLs). dockerd's errors for no match and for several sources
/// without a directory destination.
pub fn resolve(
    roots: &[PathBuf],
    srcs: &[String],
    dest: &str,
    kw: &str,
    downloads: Option<&Path>,
) -> Result<Vec<Source>, BuildError> {
    let mut out = Vec::new();
    for src in srcs {
        if is_url(src) {
            let Some(dir) = downloads else {
                return Err(invalid(format!(
                    "{kw} failed: source can't be a URL for {kw}"
                )));
            };
            out.push(download(src, dir).map_err(|e| invalid(format!("{kw} failed: {e}")))?);
            continue;
        }
        let rel = clean(src).trim_start_matches('/').to_string();
        if rel.starts_with("..") {
            return Err(invalid(format!(
                "forbidden path outside the build context: {src} ()"
            )));
        }
        if has_wildcards(&rel) {
            let mut paths = Vec::new();
            walk(roots, "", &mut paths)?;
            for p in paths.into_iter().filter(|p| path_match(&rel, p)) {
                let found = present(roots, &p);
                out.push(Source {
                    rel: p,
                    found,
                    local: true,
                });
            }
            continue;
        }
        let found = present(roots, &rel);
        if found.is_empty() {
            return Err(invalid(format!("{kw} failed: file not found in build context or excluded by .dockerignore: stat {rel}: file does not exist")));
        }
        out.push(Source {
            rel,
            found,
            local: true,
        });
    }
    if out.is_empty() {
        return Err(invalid(format!(
            "{kw} failed: no source files were specified"
        )));
    }
    if out.len() > 1 && !dest.ends_with('/') {
        return Err(invalid(format!("When using {kw} with more than one source file, the destination must be a directory and end with a /")));
    }
    Ok(out)
}

/// The roots that hold `rel` ("." is the root itself).
fn present(roots: &[PathBuf], rel: &str) -> Vec<PathBuf> {
    roots
        .iter()
        .map(|r| if rel == "." { r.clone() } else { r.join(rel) })
        .filter(|p| fs::symlink_metadata(p).is_ok())
        .collect()
}

/// Every path under the roots (their union), as `filepath.Walk` visits
/// them: each directory's names in byte order, a directory before its
/// contents. Whiteout entries are layer bookkeeping, not files.
fn walk(roots: &[PathBuf], rel: &str, out: &mut Vec<String>) -> Result<(), BuildError> {
    let mut names = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for r in roots {
        let dir = if rel.is_empty() {
            r.clone()
        } else {
            r.join(rel)
        };
        let Ok(rd) = fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".wh.") {
                continue;
            }
            if e.file_type()?.is_dir() {
                dirs.insert(name.clone());
            }
            names.insert(name);
        }
    }
    for n in names {
        let p = if rel.is_empty() {
            n.clone()
        } else {
            format!("{rel}/{n}")
        };
        out.push(p.clone());
        if dirs.contains(&n) {
            walk(roots, &p, out)?;
        }
    }
    Ok(())
}

/// Redirects followed for a download (Go's client stops at 10).
const MAX_REDIRECTS: usize = 10;

/// ADD of a URL: the body saved in `dir` under the name the URL's path (or
/// its `Content-Disposition`) gives, mode 0600, `Last-Modified` (or the
/// epoch) as its times.
fn download(url: &str, dir: &Path) -> Result<Source, String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "unsupported URL {url:?}: this daemon's builder downloads only http:// URLs"
        ));
    }
    let mut u = Url::parse(url).map_err(|e| e.to_string())?;
    let mut resp = request("GET", &u, &[], ReqBody::None).map_err(|e| e.to_string())?;
    for _ in 0..MAX_REDIRECTS {
        let Some(loc) = resp
            .header("Location")
            .filter(|_| (300..400).contains(&resp.status))
        else {
            break;
        };
        u = u.join(loc).map_err(|e| e.to_string())?;
        resp = request("GET", &u, &[], ReqBody::None).map_err(|e| e.to_string())?;
    }
    if !(200..300).contains(&resp.status) {
        let body = resp.read_body(4096).unwrap_or_default();
        return Err(format!(
            "failed to GET {url} with status {} {}: {}",
            resp.status,
            crate::http::response::reason(resp.status),
            String::from_utf8_lossy(&body).trim()
        ));
    }
    let path = u.path.split(['?', '#']).next().unwrap_or("");
    let mut name = if path.ends_with('/') {
        String::new()
    } else {
        path.rsplit('/').next().unwrap_or("").to_string()
    };
    if name.is_empty() {
        name = resp
            .header("Content-Disposition")
            .and_then(|d| {
                d.split(';')
                    .filter_map(|p| p.trim().strip_prefix("filename="))
                    .next()
            })
            .map(|f| f.trim_matches('"'))
            .filter(|f| !f.ends_with('/'))
            .and_then(|f| f.rsplit('/').next())
            .unwrap_or("")
            .to_string();
    }
    if name.is_empty() || name == ".." || name == "." {
        return Err(format!("cannot determine a file name for {url}"));
    }
    let file = dir.join(&name);
    let mut f = {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&file)
            .map_err(|e| e.to_string())?
    };
    std::io::copy(&mut resp.body, &mut f).map_err(|e| e.to_string())?;
    let secs = resp
        .header("Last-Modified")
        .and_then(crate::timefmt::parse_http_date)
        .and_then(|s| u64::try_from(s).ok())
        .unwrap_or(0);
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    f.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .map_err(|e| e.to_string())?;
    Ok(Source {
        rel: name,
        found: vec![file],
        local: false,
    })
}

/// The topmost copy of `abs` (absolute in the image) in its layers.
fn in_layers(layers: &[PathBuf], abs: &str) -> Option<PathBuf> {
    let rel = clean(abs).trim_start_matches('/').to_string();
    layers
        .iter()
        .rev()
        .map(|l| {
            if rel.is_empty() {
                l.clone()
            } else {
                l.join(&rel)
            }
        })
        .find(|p| fs::symlink_metadata(p).is_ok())
}

/// Whether `abs` is a directory in the image (dockerd then copies a file
/// into it even without a trailing `/`).
pub fn is_dir_in(layers: &[PathBuf], abs: &str) -> bool {
    in_layers(layers, abs).is_some_and(|p| p.is_dir())
}

/// Largest /etc/passwd or /etc/group read.
const MAX_ACCOUNT_FILE: u64 = 4 << 20;

fn account_file(layers: &[PathBuf], abs: &str) -> Result<String, String> {
    let missing = || format!("open {abs}: no such file or directory");
    let p = in_layers(layers, abs).ok_or_else(missing)?;
    let f = fs::File::open(&p).map_err(|_| missing())?;
    let mut text = String::new();
    f.take(MAX_ACCOUNT_FILE)
        .read_to_string(&mut text)
        .map_err(|e| format!("read {abs}: {e}"))?;
    Ok(text)
}

/// `--chown=user[:group]`: numbers as they are, names from the image's
/// /etc/passwd and /etc/group; a lone user is also the group (dockerd's
/// `parseChownFlag`).
pub fn owner(spec: &str, layers: &[PathBuf]) -> Result<(u32, u32), BuildError> {
    let wrap = |m: String| {
        invalid(format!(
            "unable to convert uid/gid chown string to host mapping: {m}"
        ))
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (user, group) = match parts[..] {
        [u] => (u, u),
        [u, g] => (u, g),
        _ => return Err(wrap(format!("invalid chown string format: {spec}"))),
    };
    let uid = match user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => account_file(layers, "/etc/passwd")
            .and_then(|t| {
                crate::runtime::user::uid_by_name(&t, user)
                    .ok_or_else(|| format!("no such user: {user}"))
            })
            .map_err(|e| wrap(format!("can't find uid for user {user}: {e}")))?,
    };
    let gid = match group.parse::<u32>() {
        Ok(n) => n,
        Err(_) => account_file(layers, "/etc/group")
            .and_then(|t| {
                crate::runtime::user::gid_by_name(&t, group)
                    .ok_or_else(|| format!("no such group: {group}"))
            })
            .map_err(|e| wrap(format!("can't find gid for group {group}: {e}")))?,
    };
    Ok((uid, gid))
}
