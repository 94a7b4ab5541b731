//! `docker export`: the container's merged filesystem as a tar stream. Runs
//! in a forked worker, which mounts the layers in a private mount namespace
//! (gone when the worker exits) and adds the entries dockerd's init layer
//! contributes (`.dockerenv`, `/dev/console`, `/etc/hostname`, ...).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Entries dockerd's init layer adds: (path, directory?, symlink target).
const INIT_LAYER: &[(&str, bool, Option<&str>)] = &[
    (".dockerenv", false, None),
    ("dev", true, None),
    ("dev/console", false, None),
    ("dev/pts", true, None),
    ("dev/shm", true, None),
    ("etc", true, None),
    ("etc/hostname", false, None),
    ("etc/hosts", false, None),
    ("etc/mtab", false, Some("/proc/mounts")),
    ("etc/resolv.conf", false, None),
    ("proc", true, None),
    ("sys", true, None),
];

/// Mount the container's layers read-only at `mnt`, in a private mount
/// namespace of this (worker) process.
fn mount_layers(upper: &Path, lowers: &[PathBuf], mnt: &Path) -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(io::Error::from)?;
    std::fs::create_dir_all(mnt)?;
    let layers: Vec<String> = std::iter::once(upper.to_path_buf())
        .chain(lowers.iter().cloned())
        .map(|p| p.display().to_string())
        .collect();
    let opts = format!("lowerdir={}", layers.join(":"));
    mount(
        Some("overlay"),
        mnt,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(opts.as_str()),
    )
    .map_err(|e| io::Error::other(format!("mount the container's layers: {e}")))
}

/// A remapped container's mapping (`--userns-remap`): its upper dir holds
/// host ids, written into its archives as the container's (as `docker cp`
/// does); ids outside the mapping as they are.
pub type Ids<'a> = Option<&'a crate::runtime::userns::IdMap>;

pub fn write_rootfs_tar<W: Write>(
    upper: &Path,
    lowers: &[PathBuf],
    mnt: &Path,
    ids: Ids,
    out: W,
) -> io::Result<()> {
    mount_layers(upper, lowers, mnt)?;
    let mut b = tar::Builder::new(out);
    let mut written = BTreeSet::new();
    for (path, is_dir, link) in INIT_LAYER {
        let on_disk = mnt.join(path);
        if on_disk.symlink_metadata().is_ok() && *is_dir {
            continue; // the image's own directory is written below
        }
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        match (is_dir, link) {
            (true, _) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                b.append_data(&mut h, format!("{path}/"), io::empty())?;
            }
            (false, Some(target)) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                b.append_link(&mut h, path, target)?;
            }
            (false, None) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o755);
                b.append_data(&mut h, path, io::empty())?;
            }
        }
        written.insert(PathBuf::from(path));
    }
    walk(&mut b, mnt, mnt, &written, ids)?;
    b.into_inner()?.flush()
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    dir: &Path,
    skip: &BTreeSet<PathBuf>,
    ids: Ids,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    crate::sort::sort_by_key(&mut entries, |e| e.file_name());
    for e in entries {
        let path = e.path();
        let rel = path
            .strip_prefix(root)
            .map_err(io::Error::other)?
            .to_path_buf();
        let meta = path.symlink_metadata()?;
        let ft = meta.file_type();
        if !skip.contains(&rel) {
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            unmap_owner(&mut h, &meta, ids);
            if ft.is_file() {
                b.append_data(&mut h, &rel, File::open(&path)?)?;
            } else if ft.is_dir() {
                h.set_size(0);
                b.append_data(&mut h, format!("{}/", rel.display()), io::empty())?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path)?;
                h.set_size(0);
                b.append_link(&mut h, &rel, target)?;
            } else if ft.is_char_device() || ft.is_block_device() {
                h.set_size(0);
                h.set_device_major(nix::sys::stat::major(meta.rdev()) as u32)?;
                h.set_device_minor(nix::sys::stat::minor(meta.rdev()) as u32)?;
                b.append_data(&mut h, &rel, io::empty())?;
            } else if ft.is_fifo() {
                h.set_size(0);
                b.append_data(&mut h, &rel, io::empty())?;
            }
        }
        if ft.is_dir() {
            walk(b, root, &path, skip, ids)?;
        }
    }
    Ok(())
}

/// The entry's owner as the container sees it.
fn unmap_owner(h: &mut tar::Header, meta: &std::fs::Metadata, ids: Ids) {
    if let Some(m) = ids {
        h.set_uid(u64::from(m.container_uid(meta.uid()).unwrap_or(meta.uid())));
        h.set_gid(u64::from(m.container_gid(meta.gid()).unwrap_or(meta.gid())));
    }
}

/// v1.11's `POST /containers/{id}/copy`: `resource` (a path in the
/// container, symlinks resolved inside it) as a tar whose entries are named
/// from its base name, as dockerd's copy wrote them. The worker chroots into
/// the mounted layers, so no path can lead out of them.
pub fn write_resource_tar<W: Write>(
    upper: &Path,
    lowers: &[PathBuf],
    mnt: &Path,
    resource: &str,
    ids: Ids,
    out: W,
) -> io::Result<()> {
    mount_layers(upper, lowers, mnt)?;
    nix::unistd::chroot(mnt).map_err(io::Error::from)?;
    std::env::set_current_dir("/")?;
    let path = Path::new("/").join(resource.trim_start_matches('/'));
    let path = std::fs::canonicalize(&path)?;
    let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut b = tar::Builder::new(out);
    let meta = path.symlink_metadata()?;
    let rel = path.strip_prefix(&parent).map_err(io::Error::other)?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    unmap_owner(&mut h, &meta, ids);
    if meta.is_dir() {
        h.set_size(0);
        b.append_data(&mut h, format!("{}/", rel.display()), io::empty())?;
        walk(&mut b, &parent, &path, &BTreeSet::new(), ids)?;
    } else if meta.is_file() {
        b.append_data(&mut h, rel, File::open(&path)?)?;
    } else {
        return Err(io::Error::other(format!(
            "{resource}: not a file or directory"
        )));
    }
    b.into_inner()?.flush()
}

/// Whether `resource` exists in the container's layered view (topmost layer
/// first; an overlay whiteout hides what lies below; symlinks followed
/// inside the view, at most 40 of them). A few `lstat`s per component: cheap
/// enough to answer a missing path with a 404 before the worker starts.
pub fn resource_exists(layers: &[PathBuf], resource: &str) -> bool {
    let mut todo: Vec<String> = resource
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .rev()
        .map(str::to_string)
        .collect();
    let mut at = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            at.pop();
            continue;
        }
        let next = at.join(&c);
        let found = layers
            .iter()
            .find_map(|l| l.join(&next).symlink_metadata().ok());
        let Some(meta) = found else {
            return false;
        };
        let whiteout = meta.file_type().is_char_device() && meta.rdev() == 0;
        if whiteout {
            return false;
        }
        if meta.file_type().is_symlink() {
            hops += 1;
            let target = layers
                .iter()
                .find_map(|l| std::fs::read_link(l.join(&next)).ok());
            let (Some(target), true) = (target, hops <= 40) else {
                return false;
            };
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                at = PathBuf::new();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty() && *c != ".")
                    .rev()
                    .map(str::to_string),
            );
            continue;
        }
        at = next;
    }
    true
}
