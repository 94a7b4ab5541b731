//! The container's root filesystem: the image layers and the container's
//! upper dir as an overlay, or copied when overlayfs is unavailable.

use super::errors::{setup, LaunchError, Stage};
use super::mounts::mnt;
use super::spec::RootfsSpec;
use nix::errno::Errno;
use nix::mount::MsFlags;
use nix::sys::stat::{mknod, Mode, SFlag};
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Marker (in the overlay work dir) that the copy fallback already ran.
const COPIED_MARKER: &str = ".coracle-copied";

// ---------------------------------------------------------------- rootfs

/// Mount the overlay on `merged_dir`; without overlayfs (ENODEV), copy the
/// layers into `upper_dir` once and bind that instead.
pub fn mount_rootfs(r: &RootfsSpec) -> Result<(), LaunchError> {
    fs::create_dir_all(&r.merged_dir).stage(format!("mkdir {}", r.merged_dir.display()))?;
    if r.lower_dirs.is_empty() {
        return setup("mount rootfs: no image layers");
    }
    let (dir, opts) = overlay_options(r);
    if let Some(d) = &dir {
        nix::unistd::chdir(d.as_path()).stage(format!("chdir {}", d.display()))?;
    }
    match mnt(
        Some(Path::new("overlay")),
        &r.merged_dir,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    ) {
        Ok(()) => Ok(()),
        Err(Errno::ENODEV) => {
            let marker = r.work_dir.join(COPIED_MARKER);
            if !marker.exists() {
                copy_layers(&r.lower_dirs, &r.upper_dir).stage("copy layers (no overlayfs)")?;
                fs::create_dir_all(&r.work_dir).stage("mkdir work dir")?;
                fs::write(&marker, b"").stage("write copy marker")?;
            }
            mnt(
                Some(&r.upper_dir),
                &r.merged_dir,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .stage("bind copied rootfs")
        }
        Err(e) => Err(e).stage("mount overlay rootfs"),
    }
}

/// `lowerdir=a:b,upperdir=u,workdir=w`; when that would not fit in a page,
/// the paths are made relative to their common parent (returned, to chdir
/// into first), the same trick overlay2 plays with its short links.
pub(crate) fn overlay_options(r: &RootfsSpec) -> (Option<PathBuf>, String) {
    let build = |f: &dyn Fn(&Path) -> String| {
        let lower: Vec<String> = r.lower_dirs.iter().map(|p| f(p)).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            f(&r.upper_dir),
            f(&r.work_dir)
        )
    };
    let abs = build(&|p: &Path| p.display().to_string());
    if abs.len() < 4000 {
        return (None, abs);
    }
    let mut common = r.upper_dir.clone();
    for p in r.lower_dirs.iter().chain([&r.work_dir]) {
        while !p.starts_with(&common) {
            if !common.pop() {
                return (None, abs);
            }
        }
    }
    let relp = |p: &Path| {
        p.strip_prefix(&common)
            .map(|x| x.display().to_string())
            .unwrap_or_default()
    };
    let opts = build(&relp);
    (Some(common), opts)
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(p: &Path) -> bool {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 1];
    // SAFETY: valid C string and buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            1,
        )
    };
    n == 1 && buf[0] == b'y'
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Flatten the layers (bottom first) into `dst`, honouring overlay
/// whiteouts (0/0 char devices, opaque dirs) and AUFS `.wh.` names.
/// Owners and modes are kept; times and hard links are not.
pub fn copy_layers(lower_dirs: &[PathBuf], dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    for layer in lower_dirs.iter().rev() {
        copy_tree(layer, dst)?;
    }
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        let s = entry.path();
        let d = dst.join(&name);
        let nb = name.as_bytes();
        if nb == b".wh..wh..opq" {
            for e in fs::read_dir(dst)? {
                remove_any(&e?.path())?;
            }
            continue;
        }
        if let Some(hidden) = nb.strip_prefix(b".wh.") {
            remove_any(&dst.join(std::ffi::OsStr::from_bytes(hidden)))?;
            continue;
        }
        let md = fs::symlink_metadata(&s)?;
        if is_whiteout(&md) {
            remove_any(&d)?;
            continue;
        }
        let ft = md.file_type();
        if ft.is_dir() {
            match fs::symlink_metadata(&d) {
                Ok(m) if m.is_dir() => {
                    if is_opaque(&s) {
                        for e in fs::read_dir(&d)? {
                            remove_any(&e?.path())?;
                        }
                    }
                }
                Ok(_) => {
                    fs::remove_file(&d)?;
                    fs::create_dir(&d)?;
                }
                Err(_) => fs::create_dir(&d)?,
            }
            copy_tree(&s, &d)?;
            fs::set_permissions(&d, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        } else {
            remove_any(&d)?;
            if ft.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&s)?, &d)?;
            } else if ft.is_file() {
                fs::copy(&s, &d)?;
            } else {
                let kind = SFlag::from_bits_truncate(md.mode() & libc::S_IFMT);
                mknod(
                    &d,
                    kind,
                    Mode::from_bits_truncate(md.mode() & 0o7777),
                    md.rdev(),
                )
                .map_err(io::Error::from)?;
            }
        }
        std::os::unix::fs::lchown(&d, Some(md.uid()), Some(md.gid()))?;
        if !ft.is_symlink() && !ft.is_dir() {
            // chown clears set-id bits; put the mode back.
            fs::set_permissions(&d, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
    }
    Ok(())
}
