//! `docker cp` into a container, worker side: a tar extracted under a
//! directory of the container. Each entry's parent is looked up afresh
//! with `openat2(RESOLVE_IN_ROOT)` and the entry created through that fd
//! with `*at` calls that never follow a last-component symlink, so a
//! container swapping a directory for a link to `/` mid-copy only ever
//! redirects the write inside itself.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::UtimensatFlags;
use nix::sys::stat::{fchmodat, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat, Gid, Uid};

use super::archive::{ArchiveError, Target};
use crate::image::layer_extract::clean_path;
use crate::runtime::inroot::{is_dir, open_in, remove_all_in, split, stat_in, Root};

pub struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory or the reverse.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID`: every entry owned by the container's user.
    pub owner: Option<(u32, u32)>,
    /// A remapped container's mapping: the archive's (container) owners
    /// are written as their host ids.
    pub ids: Option<crate::runtime::userns::IdMap>,
}

fn failed(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Failed(e.to_string())
}

/// The container user's uid and gid, from its own /etc/passwd and
/// /etc/group (dockerd's `copyUIDGID`).
pub fn container_owner(root: &Root, user: &str) -> Result<(u32, u32), ArchiveError> {
    let read = |p: &str| -> Option<String> {
        let fd = root.open_at(Path::new(p), OFlag::O_RDONLY, 0).ok()?;
        let mut s = String::new();
        std::fs::File::from(fd)
            .take(4 << 20)
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    };
    let u = crate::runtime::user::resolve(
        user,
        &[],
        read("/etc/passwd").as_deref(),
        read("/etc/group").as_deref(),
    )
    .map_err(ArchiveError::Failed)?;
    Ok((u.uid, u.gid))
}

/// PUT: the destination must be a directory (symlinks followed inside the
/// root); then every entry of `input` lands below it.
// time_t is 32 bits wide on some 32-bit targets.
#[allow(clippy::unnecessary_cast)]
pub fn extract(
    root: &Root,
    t: &Target,
    input: impl Read,
    opts: &ExtractOptions,
) -> Result<(), ArchiveError> {
    let dest = crate::runtime::inroot::lexical_clean(Path::new(&t.absolute()));
    let (_, st) = root.lstat(&dest, true).map_err(|e| t.lookup_error(e))?;
    if !is_dir(&st) {
        return Err(ArchiveError::NotADirectory);
    }
    let mut x = Extractor {
        root,
        dest,
        opts,
        parent: None,
        dirs: Vec::new(),
        buf: vec![0; 64 * 1024],
    };
    let mut ar = tar::Archive::new(input);
    for entry in ar.entries().map_err(failed)? {
        let entry = entry.map_err(failed)?;
        x.entry(entry)?;
    }
    // Directory times last: writing into them moved their mtimes.
    for (path, mtime) in std::mem::take(&mut x.dirs) {
        let (parent, name) = split(&path);
        if let (Ok(p), Some(n)) = (root.open_dir(&parent), name) {
            let ts = TimeSpec::from_duration(std::time::Duration::from_secs(
                mtime.max(0).unsigned_abs(),
            ));
            let _ = utimensat(&p, n.as_os_str(), &ts, &ts, UtimensatFlags::NoFollowSymlink);
        }
    }
    Ok(())
}

/// `chmod` of `name` in `dir` that never follows a symlink swapped in
/// meanwhile: through an `O_PATH` fd and its `/proc/self/fd` link, the way
/// libc emulates `fchmodat(AT_SYMLINK_NOFOLLOW)`.
fn chmod_in(dir: &OwnedFd, name: &OsStr, perm: Mode) -> Result<(), ArchiveError> {
    let fd = open_in(dir, name, OFlag::O_PATH, 0).map_err(failed)?;
    let st = nix::sys::stat::fstat(&fd).map_err(failed)?;
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Ok(());
    }
    let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    fchmodat(
        nix::fcntl::AT_FDCWD,
        link.as_str(),
        perm,
        FchmodatFlags::FollowSymlink,
    )
    .map_err(failed)
}

/// An xattr from the tar (`SCHILY.xattr.*`), not following a symlink;
/// refusals by the filesystem are skipped, as dockerd skips them.
fn set_xattr_in(dir: &OwnedFd, name: &OsStr, key: &[u8], value: &[u8]) -> Result<(), ArchiveError> {
    let mut path = format!("/proc/self/fd/{}/", std::os::fd::AsRawFd::as_raw_fd(dir)).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let (Ok(cpath), Ok(ckey)) = (std::ffi::CString::new(path), std::ffi::CString::new(key)) else {
        return Ok(());
    };
    // SAFETY: both strings are NUL-terminated; the kernel reads
    // `value.len()` bytes from `value`.
    let rc = unsafe {
        libc::lsetxattr(
            cpath.as_ptr(),
            ckey.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    match nix::errno::Errno::last() {
        nix::errno::Errno::ENOTSUP | nix::errno::Errno::EPERM => Ok(()),
        e => Err(failed(e)),
    }
}

struct Extractor<'a> {
    root: &'a Root,
    dest: PathBuf,
    opts: &'a ExtractOptions,
    /// The last parent directory opened, by container path.
    parent: Option<(PathBuf, OwnedFd)>,
    dirs: Vec<(PathBuf, i64)>,
    buf: Vec<u8>,
}

impl Extractor<'_> {
    fn parent_fd(&mut self, path: &Path) -> Result<&OwnedFd, ArchiveError> {
        let stale = self.parent.as_ref().map(|(p, _)| p != path).unwrap_or(true);
        if stale {
            let fd = self.root.ensure_dir(path).map_err(failed)?;
            self.parent = Some((path.to_path_buf(), fd));
        }
        match &self.parent {
            Some((_, fd)) => Ok(fd),
            None => Err(failed("no parent directory")),
        }
    }

    #[allow(clippy::unnecessary_cast)]
    fn entry<R: Read>(&mut self, mut e: tar::Entry<R>) -> Result<(), ArchiveError> {
        let h = e.header().clone();
        let raw = e.path_bytes().into_owned();
        let rel = clean_path(&raw).map_err(failed)?;
        if rel.as_os_str().is_empty() {
            return Ok(()); // the destination itself
        }
        let kind = h.entry_type();
        let full = self.dest.join(&rel);
        let (parent, name) = split(&full);
        let Some(name) = name else { return Ok(()) };
        let mode = h.mode().map_err(failed)? & 0o7777;
        let (uid, gid) = match self.opts.owner {
            Some(o) => o,
            // Empty numeric fields read as 0, as Go's reader takes them.
            None => (h.uid().unwrap_or(0) as u32, h.gid().unwrap_or(0) as u32),
        };
        let (uid, gid) = match &self.opts.ids {
            Some(m) => (
                m.host_uid(uid).unwrap_or(uid),
                m.host_gid(gid).unwrap_or(gid),
            ),
            None => (uid, gid),
        };
        let mtime = h.mtime().unwrap_or(0) as i64;
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let xattrs: Vec<(Vec<u8>, Vec<u8>)> = e
            .pax_extensions()
            .ok()
            .flatten()
            .map(|exts| {
                exts.filter_map(Result::ok)
                    .filter_map(|x| {
                        let k = x.key_bytes().strip_prefix(b"SCHILY.xattr.")?;
                        Some((k.to_vec(), x.value_bytes().to_vec()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let no_overwrite = self.opts.no_overwrite_dir_non_dir;
        let pfd = self.parent_fd(&parent)?;
        let pfd = pfd.try_clone().map_err(failed)?;
        // What is there already.
        if let Ok(old) = stat_in(&pfd, &name) {
            let old_dir = is_dir(&old);
            let new_dir = kind.is_dir();
            if no_overwrite && old_dir && !new_dir {
                return Err(failed(format!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    full.display().to_string(),
                    full.display().to_string()
                )));
            }
            if no_overwrite && !old_dir && new_dir {
                return Err(failed(format!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    full.display().to_string(),
                    full.display().to_string()
                )));
            }
            if !(old_dir && new_dir) {
                remove_all_in(&pfd, &name).map_err(failed)?;
            }
        }
        let perm = Mode::from_bits_truncate(mode);
        match kind {
            tar::EntryType::Directory => {
                match mkdirat(&pfd, name.as_os_str(), perm) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(failed(e)),
                }
                self.dirs.push((full.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = open_in(
                    &pfd,
                    &name,
                    OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                    0o600,
                )
                .map_err(failed)?;
                let mut f = std::fs::File::from(fd);
                loop {
                    let n = match e.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) => return Err(failed(err)),
                    };
                    io::Write::write_all(&mut f, &self.buf[..n]).map_err(failed)?;
                }
            }
            tar::EntryType::Symlink => {
                let target = link.ok_or_else(|| failed("symlink without a target"))?;
                symlinkat(OsStr::from_bytes(&target), &pfd, name.as_os_str()).map_err(failed)?;
            }
            tar::EntryType::Link => {
                let target = link.ok_or_else(|| failed("hard link without a target"))?;
                let trel = clean_path(&target).map_err(failed)?;
                let (tparent, tname) = split(&self.dest.join(trel));
                let tname: OsString = tname.ok_or_else(|| failed("hard link to the root"))?;
                let tfd = self.root.open_dir(&tparent).map_err(failed)?;
                linkat(
                    &tfd,
                    tname.as_os_str(),
                    &pfd,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(failed)?;
                return Ok(());
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let sflag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = h.device_major().ok().flatten().unwrap_or(0) as u64;
                let minor = h.device_minor().ok().flatten().unwrap_or(0) as u64;
                let dev = nix::sys::stat::makedev(major, minor);
                mknodat(&pfd, name.as_os_str(), sflag, perm, dev).map_err(failed)?;
            }
            // PAX/GNU extension headers are consumed by the reader; other
            // kinds dockerd skips as well.
            _ => return Ok(()),
        }
        fchownat(
            &pfd,
            name.as_os_str(),
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(failed)?;
        if !matches!(kind, tar::EntryType::Symlink) {
            // After the chown, which clears set-id bits.
            chmod_in(&pfd, &name, perm)?;
        }
        for (k, v) in &xattrs {
            set_xattr_in(&pfd, &name, k, v)?;
        }
        if !kind.is_dir() {
            let ts = TimeSpec::from_duration(std::time::Duration::from_secs(
                mtime.max(0).unsigned_abs(),
            ));
            utimensat(
                &pfd,
                name.as_os_str(),
                &ts,
                &ts,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(failed)?;
        }
        Ok(())
    }
}
