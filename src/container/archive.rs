//! `docker cp` out of a container, worker side: a path's stat (the
//! `X-Docker-Container-Path-Stat` header) and its tar, with dockerd's path
//! rules (the last element followed only after a trailing `/` or `/.`, the
//! entries renamed after the requested name). Every lookup goes through
//! `runtime::inroot`, so nothing outside the container's root is reached.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::sys::stat::FileStat;
use serde::{Deserialize, Serialize};

use crate::image::gotar::{write_end, Plain, TreeWriter};
use crate::runtime::inroot::{lexical_clean, split, Root};

/// Why an archive request failed; `Display` is dockerd's message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ArchiveError {
    /// 404: "No such container: x".
    NoSuchContainer(String),
    /// 404: "Could not find the file {path} in container {container}".
    NotFound { path: String, container: String },
    /// 400: a PUT whose destination is not a directory.
    NotADirectory,
    /// 400: the destination cannot be written (read-only rootfs or volume).
    ReadOnly(String),
    /// 400: the request itself is malformed (no `path`).
    Invalid(String),
    /// 500: anything else (a bad tar, a refused overwrite, I/O).
    Failed(String),
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArchiveError::NotFound { path, container } => {
                write!(f, "Could not find the file {path} in container {container}")
            }
            ArchiveError::NotADirectory => f.write_str("extraction point is not a directory"),
            ArchiveError::NoSuchContainer(m)
            | ArchiveError::ReadOnly(m)
            | ArchiveError::Invalid(m)
            | ArchiveError::Failed(m) => f.write_str(m),
        }
    }
}

/// A request's path and the container, for the errors a lookup can give.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `path` query parameter as given.
    pub path: String,
    /// The container as the client named it.
    pub container: String,
}

impl Target {
    /// The absolute path dockerd works with (`PreserveTrailingDotOrSeparator`
    /// of `filepath.Join("/", path)`).
    pub fn absolute(&self) -> String {
        let mut abs = lexical_clean(Path::new(&format!("/{}", self.path)))
            .display()
            .to_string();
        let base_is_dot = self.path == "." || self.path.ends_with("/.");
        if base_is_dot && !abs.ends_with("/.") {
            if !abs.ends_with('/') {
                abs.push('/');
            }
            abs.push('.');
        }
        if !abs.ends_with('/') && self.path.ends_with('/') {
            abs.push('/');
        }
        abs
    }

    /// Whether the last element is followed (a trailing `/` or `/.`).
    pub fn follows_last(&self) -> bool {
        let abs = self.absolute();
        abs.ends_with('/') || abs.ends_with("/.")
    }

    /// Go's `filepath.Base` of the absolute path: the stat's name and the
    /// archive's top entry.
    pub fn base(&self) -> String {
        let abs = self.absolute();
        let trimmed = abs.trim_end_matches('/');
        if trimmed.is_empty() {
            return "/".into();
        }
        trimmed.rsplit('/').next().unwrap_or("/").to_string()
    }

    pub fn not_found(&self) -> ArchiveError {
        ArchiveError::NotFound {
            path: self.path.clone(),
            container: self.container.clone(),
        }
    }

    /// An I/O error of a lookup: a missing path is a 404, the rest 500s.
    pub fn lookup_error(&self, e: io::Error) -> ArchiveError {
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => self.not_found(),
            _ => ArchiveError::Failed(e.to_string()),
        }
    }

    fn clean(&self) -> PathBuf {
        lexical_clean(Path::new(&self.absolute()))
    }
}

/// `X-Docker-Container-Path-Stat`, Go's `ContainerPathStat`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` bits of a stat's mode.
pub fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

fn mtime(st: &FileStat) -> String {
    let t = std::time::UNIX_EPOCH
        + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    crate::timefmt::rfc3339_nano(t)
}

/// The stat of a container path (HEAD, and the head of a GET).
// stat field widths differ between 64- and 32-bit targets.
#[allow(clippy::unnecessary_cast)]
pub fn stat_path(root: &Root, t: &Target) -> Result<PathStat, ArchiveError> {
    let (_, st) = root
        .lstat(&t.clean(), t.follows_last())
        .map_err(|e| t.lookup_error(e))?;
    if t.follows_last() && st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        // "f/" names a directory: a file there is ENOTDIR, as for lstat(2).
        return Err(t.not_found());
    }
    let link_target = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        root.real_path(&t.clean())
            .map_err(|e| t.lookup_error(e))?
            .display()
            .to_string()
    } else {
        String::new()
    };
    Ok(PathStat {
        name: t.base(),
        size: st.st_size as i64,
        mode: go_mode(st.st_mode),
        mtime: mtime(&st),
        link_target,
    })
}

/// GET: the stat as the first line (`{"stat":..}` or `{"error":..}`), then
/// the tar of the path. An error after the first line fails the worker,
/// which cuts the client's connection.
pub fn write_archive(
    root: &Root,
    t: &Target,
    out: &mut impl Write,
    ids: Option<crate::runtime::userns::IdMap>,
) -> Result<(), ArchiveError> {
    let failed = |e: io::Error| ArchiveError::Failed(e.to_string());
    let stat = match stat_path(root, t) {
        Ok(s) => s,
        Err(e) => {
            let line = crate::json!({ "error": e });
            writeln!(out, "{}", crate::json::text(&line)).map_err(failed)?;
            return Ok(());
        }
    };
    writeln!(
        out,
        "{}",
        crate::json::text(&crate::json!({ "stat": stat }))
    )
    .map_err(failed)?;
    let base = t.base();
    let shown = if base == "/" { "/".to_string() } else { base };
    let clean = t.clean();
    let mut w = TreeWriter::new(out, Plain);
    w.ids = ids;
    if t.follows_last() {
        let dir = root.open_dir(&clean).map_err(|e| t.lookup_error(e))?;
        w.entry(&dir, std::ffi::OsStr::new("."), shown.as_bytes())
            .map_err(failed)?;
    } else {
        let (parent, name) = split(&clean);
        let dir = root.open_dir(&parent).map_err(|e| t.lookup_error(e))?;
        let name = name.unwrap_or_else(|| ".".into());
        w.entry(&dir, &name, shown.as_bytes()).map_err(failed)?;
    }
    write_end(w.out).map_err(failed)?;
    w.out.flush().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(p: &str) -> Target {
        Target {
            path: p.into(),
            container: "c".into(),
        }
    }

    #[test]
    fn paths_like_dockerd() {
        assert_eq!(t("etc/hosts").absolute(), "/etc/hosts");
        assert_eq!(t("/etc/").absolute(), "/etc/");
        assert_eq!(t("/etc/.").absolute(), "/etc/.");
        assert_eq!(t(".").absolute(), "/.");
        assert_eq!(t("/").absolute(), "/");
        assert_eq!(t("/a/../../b").absolute(), "/b");
        assert_eq!(t("/etc/").base(), "etc");
        assert_eq!(t("/etc/.").base(), ".");
        assert_eq!(t("/").base(), "/");
        assert!(t("/etc/").follows_last());
        assert!(!t("/etc").follows_last());
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(
            t("/x").not_found().to_string(),
            "Could not find the file /x in container c"
        );
    }
}
