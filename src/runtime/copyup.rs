//! dockerd's volume copy-up: an empty volume mounted over a directory of the
//! image is first filled with that directory's content, owners, modes and
//! times kept. It runs in the container's launcher, in its mount namespace
//! before the volume is bound and before the container's process exists, so
//! nothing changes the tree under it and the loop never waits for it.

use std::fs;
use std::io;
use std::os::unix::fs::{lchown, symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

/// Copy the tree at `from` (inside the container's root, already resolved)
/// into `volume` if `volume` is empty and `from` is a directory; then give
/// the volume's root `from`'s owner and mode.
pub fn fill_empty(from: &Path, volume: &Path) -> io::Result<()> {
    if fs::read_dir(volume)?.next().is_some() {
        return Ok(());
    }
    let md = match fs::symlink_metadata(from) {
        Ok(md) if md.is_dir() => md,
        _ => return Ok(()),
    };
    copy_dir(from, volume)?;
    attrs(volume, &md)
}

fn copy_dir(from: &Path, to: &Path) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let md = fs::symlink_metadata(&src)?;
        let ft = md.file_type();
        if ft.is_dir() {
            fs::create_dir(&dst)?;
            copy_dir(&src, &dst)?;
        } else if ft.is_symlink() {
            symlink(fs::read_link(&src)?, &dst)?;
        } else if ft.is_file() {
            fs::copy(&src, &dst)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            mknod(
                &dst,
                kind,
                Mode::from_bits_truncate(md.mode()),
                md.rdev() as _,
            )?;
        } else {
            continue; // sockets are not copied
        }
        attrs(&dst, &md)?;
    }
    Ok(())
}

/// Owner, then mode (chown clears set-id bits), then times, of `md` on `p`.
fn attrs(p: &Path, md: &fs::Metadata) -> io::Result<()> {
    lchown(p, Some(md.uid()), Some(md.gid()))?;
    if !md.file_type().is_symlink() {
        fs::set_permissions(p, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    }
    let at = TimeSpec::new(md.atime(), md.atime_nsec());
    let mt = TimeSpec::new(md.mtime(), md.mtime_nsec());
    utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &at,
        &mt,
        UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_once_with_owners_and_modes() {
        let base = std::env::temp_dir().join(format!("coracle-copyup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (from, vol) = (base.join("from"), base.join("vol"));
        fs::create_dir_all(from.join("sub")).unwrap();
        fs::create_dir_all(&vol).unwrap();
        fs::write(from.join("sub/f"), b"hello").unwrap();
        fs::set_permissions(from.join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        lchown(from.join("sub/f"), Some(1234), Some(5678)).unwrap();
        symlink("sub/f", from.join("link")).unwrap();
        fs::set_permissions(&from, fs::Permissions::from_mode(0o1777)).unwrap();
        fill_empty(&from, &vol).unwrap();
        assert_eq!(fs::read(vol.join("sub/f")).unwrap(), b"hello");
        let md = fs::metadata(vol.join("sub/f")).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (1234, 5678, 0o640)
        );
        assert_eq!(fs::read_link(vol.join("link")).unwrap(), Path::new("sub/f"));
        assert_eq!(fs::metadata(&vol).unwrap().mode() & 0o7777, 0o1777);
        // Not empty any more: a second fill changes nothing.
        fs::write(from.join("new"), b"x").unwrap();
        fill_empty(&from, &vol).unwrap();
        assert!(!vol.join("new").exists());
        fs::remove_dir_all(&base).unwrap();
    }
}
