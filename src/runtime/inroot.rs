//! Paths resolved inside a container's root. Every lookup is one
//! `openat2(RESOLVE_IN_ROOT)` from the root's directory fd, so symlinks, `..`
//! and absolute links end under the root whatever the container does to
//! its tree meanwhile (the swap race of CVE-2018-15664): the kernel resolves
//! each lookup atomically, and later operations go through the fds it
//! returned, never through host paths. Used by workers (`docker cp`,
//! `docker commit`), never on the loop.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, mkdirat, FileStat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use super::mounts::{mnt, user_mounts};
use super::spec::MountSpec;

/// How many times a lookup is retried when a concurrent rename makes the
/// kernel refuse it (`EAGAIN`).
const RETRIES: usize = 64;
/// Symlinks followed while computing a link's target (like the kernel's 40).
const MAX_LINKS: usize = 40;

/// A container's root directory, held open.
pub struct Root {
    dir: OwnedFd,
}

/// Where a worker finds a container's tree.
pub enum Tree {
    /// A running container: its first process's root, which shows the
    /// container's own mounts (binds, volumes) as the container sees them.
    Running(i32),
    /// A stopped one: its layers mounted privately in the worker's own
    /// mount namespace, with its binds.
    Stopped {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        merged: PathBuf,
        mounts: Vec<MountSpec>,
    },
}

impl Tree {
    /// Open the tree's root. For a stopped container this unshares the
    /// calling process's mount namespace: call it in a worker only.
    pub fn open(&self) -> io::Result<Root> {
        match self {
            Tree::Running(pid) => Root::open(Path::new(&format!("/proc/{pid}/root"))),
            Tree::Stopped {
                lowers,
                upper,
                work,
                merged,
                mounts,
            } => {
                mount_stopped(lowers, upper, work, merged, mounts)?;
                Root::open(merged)
            }
        }
    }
}

fn mount_stopped(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    merged: &Path,
    mounts: &[MountSpec],
) -> io::Result<()> {
    use nix::mount::MsFlags;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )
    .map_err(io::Error::from)?;
    std::fs::create_dir_all(merged)?;
    std::fs::create_dir_all(work)?;
    let lower: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    let overlay = mnt(
        Some(Path::new("overlay")),
        merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    );
    match overlay {
        Ok(()) => {}
        // Without overlayfs the rootfs is the upper dir itself (a copy).
        Err(Errno::ENODEV) => {
            mnt(Some(upper), merged, None, MsFlags::MS_BIND, None).map_err(io::Error::from)?
        }
        Err(e) => {
            return Err(io::Error::other(format!(
                "mount the container's layers: {e}"
            )))
        }
    }
    user_mounts(mounts, merged).map_err(|e| io::Error::other(e.to_string()))
}

fn resolve_flags() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS
}

impl Root {
    pub fn open(path: &Path) -> io::Result<Root> {
        let dir = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io::Error::from)?;
        Ok(Root { dir })
    }

    /// Open `path` (absolute in the container) with `flags`; the last
    /// component is followed unless `flags` has `O_NOFOLLOW`.
    pub fn open_at(&self, path: &Path, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(Mode::from_bits_truncate(mode))
            .resolve(resolve_flags());
        let rel = relative(path);
        for _ in 0..RETRIES {
            match openat2(self.dir.as_fd(), rel.as_os_str(), how) {
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
                other => return other.map_err(io::Error::from),
            }
        }
        Err(io::Error::from(Errno::EAGAIN))
    }

    /// A directory, readable (its entries listed, files created in it).
    pub fn open_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        self.open_at(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)
    }

    /// The entry at `path` itself (`follow`: or what its last symlink
    /// points to), as an `O_PATH` fd and its metadata.
    pub fn lstat(&self, path: &Path, follow: bool) -> io::Result<(OwnedFd, FileStat)> {
        let mut flags = OFlag::O_PATH;
        if !follow {
            flags |= OFlag::O_NOFOLLOW;
        }
        let fd = self.open_at(path, flags, 0)?;
        let st = nix::sys::stat::fstat(&fd).map_err(io::Error::from)?;
        Ok((fd, st))
    }

    /// `mkdir -p` inside the root; returns the directory, open.
    pub fn ensure_dir(&self, path: &Path) -> io::Result<OwnedFd> {
        match self.open_dir(path) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            other => return other,
        }
        let (parent, name) = split(path);
        let Some(name) = name else {
            return self.open_dir(path);
        };
        let p = self.ensure_dir(&parent)?;
        match mkdirat(&p, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
        self.open_dir(path)
    }

    /// The symlink-free absolute path `path` leads to in the container (a
    /// stat's `linkTarget`). Informational: nothing is opened through it.
    pub fn real_path(&self, path: &Path) -> io::Result<PathBuf> {
        let mut done: Vec<OsString> = Vec::new();
        let mut todo: VecDeque<OsString> = components(path).into();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                done.pop();
                continue;
            }
            let here = absolute(&done).join(&c);
            let (_, st) = self.lstat(&here, false)?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from(Errno::ELOOP));
                }
                let (pfd, _) = self.lstat(&absolute(&done), true)?;
                let target =
                    nix::fcntl::readlinkat(&pfd, c.as_os_str()).map_err(io::Error::from)?;
                if Path::new(&target).is_absolute() {
                    done.clear();
                }
                for (i, t) in components(Path::new(&target)).into_iter().enumerate() {
                    todo.insert(i, t);
                }
            } else {
                done.push(c);
            }
        }
        Ok(absolute(&done))
    }
}

fn absolute(parts: &[OsString]) -> PathBuf {
    let mut p = PathBuf::from("/");
    for c in parts {
        p.push(c);
    }
    p
}

/// Normal components and `..` of a path (`.` and empty ones dropped).
fn components(path: &Path) -> Vec<OsString> {
    path.as_os_str()
        .as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

/// The path below the root, as `openat2` wants it ("." for the root).
fn relative(path: &Path) -> PathBuf {
    let rel = path
        .as_os_str()
        .as_bytes()
        .iter()
        .position(|&b| b != b'/')
        .map(|i| OsStr::from_bytes(&path.as_os_str().as_bytes()[i..]))
        .unwrap_or(OsStr::new("."));
    PathBuf::from(rel)
}

/// A container path's parent and last normal component (None for the root).
pub fn split(path: &Path) -> (PathBuf, Option<OsString>) {
    let mut parts = components(path);
    match parts.pop() {
        Some(last) if last != ".." => (absolute(&parts), Some(last)),
        _ => (lexical_clean(path), None),
    }
}

/// `path` cleaned lexically like Go's `filepath.Clean` of an absolute path.
pub fn lexical_clean(path: &Path) -> PathBuf {
    let mut out: Vec<OsString> = Vec::new();
    for c in components(path) {
        if c == ".." {
            out.pop();
        } else {
            out.push(c);
        }
    }
    absolute(&out)
}

/// Is this the metadata of a directory?
pub fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Metadata of `name` in `dir`, not following a symlink.
pub fn stat_in(dir: &impl AsFd, name: &OsStr) -> io::Result<FileStat> {
    fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

/// Open `name` in `dir` without following a symlink.
pub fn open_in(dir: &impl AsFd, name: &OsStr, flags: OFlag, mode: u32) -> io::Result<OwnedFd> {
    openat(
        dir.as_fd(),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(mode),
    )
    .map_err(io::Error::from)
}

/// The names in an open directory, sorted (Go's `WalkDir` order).
pub fn list_dir(dir: &impl AsFd) -> io::Result<Vec<OsString>> {
    use std::os::fd::AsRawFd;
    // The fd's own /proc link names exactly that directory (no lookup of
    // a path the container could change).
    let link = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
    let mut names: Vec<OsString> = std::fs::read_dir(link)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    crate::sort::sort_by(&mut names, |a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// `rm -rf` of `name` in `dir`, never leaving `dir`'s subtree.
pub fn remove_all_in(dir: &impl AsFd, name: &OsStr) -> io::Result<()> {
    let st = match stat_in(dir, name) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if is_dir(&st) {
        let sub = open_in(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
        for n in list_dir(&sub)? {
            remove_all_in(&sub, &n)?;
        }
        unlinkat(dir.as_fd(), name, UnlinkatFlags::RemoveDir).map_err(io::Error::from)
    } else {
        unlinkat(dir.as_fd(), name, UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_stay_inside_the_root() {
        let base = std::env::temp_dir().join(format!("coracle-inroot-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(base.join("outside"), b"host").unwrap();
        std::fs::write(root.join("a/b/f"), b"in").unwrap();
        std::os::unix::fs::symlink("/", root.join("a/up")).unwrap();
        std::os::unix::fs::symlink("../../../..", root.join("a/b/dots")).unwrap();
        std::os::unix::fs::symlink("/a/b", root.join("link")).unwrap();
        let r = Root::open(&root).unwrap();
        // "/" and ".." in links end at the container's root.
        assert!(r.lstat(Path::new("/a/up/outside"), true).is_err());
        assert!(r.lstat(Path::new("/a/b/dots/outside"), true).is_err());
        assert!(r.lstat(Path::new("/../../outside"), true).is_err());
        let (_, st) = r.lstat(Path::new("/a/up/a/b/f"), true).unwrap();
        assert_eq!(st.st_size, 2);
        let (_, st) = r.lstat(Path::new("/link"), false).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK);
        assert_eq!(r.real_path(Path::new("/link")).unwrap(), Path::new("/a/b"));
        assert_eq!(
            r.real_path(Path::new("/a/b/dots/a/up/link/f")).unwrap(),
            Path::new("/a/b/f")
        );
        drop(r.ensure_dir(Path::new("/a/up/new/deep")).unwrap());
        assert!(root.join("new/deep").is_dir());
        assert_eq!(split(Path::new("/x/y/")).1.unwrap(), "y");
        assert_eq!(split(Path::new("/")).1, None);
        assert_eq!(
            lexical_clean(Path::new("/a/../../b/./c/")),
            Path::new("/b/c")
        );
        std::fs::remove_dir_all(&base).unwrap();
    }
}
