//! dockerd's volume copy-up: an empty volume mounted over a directory of the
//! image is first filled with that directory's content, owners, modes and
//! times kept. It runs in the container's launcher, in its mount namespace
//! before the volume is bound and before the container's process exists, so
//! nothing changes the tree under it and the loop never waits for it.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::sys::stat::{fchmod, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, symlinkat, Gid, Uid};

/// Copy the tree at `from` (inside the container's root, already resolved)
/// into `volume` if `volume` is empty and `from` is a directory; then give
/// the volume's root `from`'s owner and mode. The volume side is written
/// through directory fds, every name created exclusively and never
/// followed, so a symlink planted in a shared volume meanwhile cannot send
/// a write outside it.
pub fn fill_empty(from: &Path, volume: &Path) -> io::Result<()> {
    if fs::read_dir(volume)?.next().is_some() {
        return Ok(());
    }
    let md = match fs::symlink_metadata(from) {
        Ok(md) if md.is_dir() => md,
        _ => return Ok(()),
    };
    let root = open_dir(AT_FDCWD, volume.as_os_str())?;
    copy_dir(from, &root)?;
    fd_attrs(&root, &md)
}

fn open_dir<Fd: AsFd>(at: Fd, name: &OsStr) -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    Ok(openat(at, name, flags, Mode::empty())?)
}

fn copy_dir(from: &Path, to: &OwnedFd) -> io::Result<()> {
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let src = entry.path();
        let md = fs::symlink_metadata(&src)?;
        let ft = md.file_type();
        let mode = Mode::from_bits_truncate(md.mode() & 0o7777);
        if ft.is_dir() {
            mkdirat(to, name.as_os_str(), Mode::from_bits_truncate(0o700))?;
            let dir = open_dir(to, &name)?;
            copy_dir(&src, &dir)?;
            fd_attrs(&dir, &md)?;
        } else if ft.is_file() {
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let fd = openat(to, name.as_os_str(), flags, Mode::from_bits_truncate(0o600))?;
            let mut out = File::from(fd);
            io::copy(&mut File::open(&src)?, &mut out)?;
            fd_attrs(&out, &md)?;
        } else if ft.is_symlink() {
            symlinkat(&fs::read_link(&src)?, to, name.as_os_str())?;
            link_attrs(to, &name, &md)?;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            // The mode is given at creation (a path chmod would follow a
            // swapped-in symlink).
            mknodat(to, name.as_os_str(), kind, mode, md.rdev() as _)?;
            link_attrs(to, &name, &md)?;
        }
        // Sockets are not copied.
    }
    Ok(())
}

fn times(md: &fs::Metadata) -> (TimeSpec, TimeSpec) {
    // Through a Duration: time_t is 32 bits on 32-bit ARM (a time before
    // 1970 becomes the epoch).
    let ts = |secs: i64, nsec: i64| {
        let nsec = u32::try_from(nsec).unwrap_or(0);
        TimeSpec::from_duration(std::time::Duration::new(secs.max(0).unsigned_abs(), nsec))
    };
    (
        ts(md.atime(), md.atime_nsec()),
        ts(md.mtime(), md.mtime_nsec()),
    )
}

/// Owner, then mode (chown clears set-id bits), then times, through an fd.
fn fd_attrs<Fd: AsFd>(fd: Fd, md: &fs::Metadata) -> io::Result<()> {
    fchown(
        fd.as_fd(),
        Some(Uid::from_raw(md.uid())),
        Some(Gid::from_raw(md.gid())),
    )?;
    fchmod(fd.as_fd(), Mode::from_bits_truncate(md.mode() & 0o7777))?;
    let (at, mt) = times(md);
    futimens(fd.as_fd(), &at, &mt)?;
    Ok(())
}

/// Owner and times of a name in `dir` that is not followed (symlinks, nodes).
fn link_attrs(dir: &OwnedFd, name: &OsStr, md: &fs::Metadata) -> io::Result<()> {
    fchownat(
        dir,
        name,
        Some(Uid::from_raw(md.uid())),
        Some(Gid::from_raw(md.gid())),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )?;
    let (at, mt) = times(md);
    utimensat(dir, name, &at, &mt, UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn copies_once_with_owners_and_modes() {
        let base = std::env::temp_dir().join(format!("coracle-copyup-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let (from, vol) = (base.join("from"), base.join("vol"));
        fs::create_dir_all(from.join("sub")).unwrap();
        fs::create_dir_all(&vol).unwrap();
        fs::write(from.join("sub/f"), b"hello").unwrap();
        fs::set_permissions(from.join("sub/f"), PermissionsExt::from_mode(0o640)).unwrap();
        std::os::unix::fs::lchown(from.join("sub/f"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::symlink("sub/f", from.join("link")).unwrap();
        fs::set_permissions(&from, PermissionsExt::from_mode(0o1777)).unwrap();
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
