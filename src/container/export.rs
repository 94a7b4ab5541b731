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

pub fn write_rootfs_tar<W: Write>(
    upper: &Path,
    lowers: &[PathBuf],
    mnt: &Path,
    out: W,
) -> io::Result<()> {
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
    .map_err(|e| io::Error::other(format!("mount the container's layers: {e}")))?;

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
    walk(&mut b, mnt, mnt, &written)?;
    b.into_inner()?.flush()
}

fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    dir: &Path,
    skip: &BTreeSet<PathBuf>,
) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
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
            walk(b, root, &path, skip)?;
        }
    }
    Ok(())
}
