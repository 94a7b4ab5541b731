//! COPY and ADD, worker side: the sources (the context, or an image's
//! layers for `--from`) copied into a scratch upper dir, a local tar
//! extracted for ADD, and the content checksum that is the cache key.

use std::fs;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::Path;

use super::context::BuildError;
use super::sources::Source;

fn invalid(e: impl ToString) -> BuildError {
    BuildError::Invalid(e.to_string())
}

/// dockerd's `file:<sha256>` / `dir:<sha256>` / `multi:<sha256>` of COPY
/// sources: paths, modes, owner and contents hashed.
pub fn checksum(sources: &[Source], owner: Option<(u32, u32)>) -> Result<String, BuildError> {
    use crate::sha256::Sha256;
    use std::os::unix::fs::MetadataExt;
    let mut h = Sha256::new();
    h.update(format!("{owner:?}\n").as_bytes());
    let mut kind = "file";
    fn walk(p: &Path, rel: &str, h: &mut Sha256) -> std::io::Result<()> {
        let m = fs::symlink_metadata(p)?;
        h.update(format!("{rel}\0{:o}\0{}\0", m.mode(), m.len()).as_bytes());
        if m.is_dir() {
            let mut names: Vec<_> = fs::read_dir(p)?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect();
            crate::sort::sort(&mut names);
            for n in names {
                walk(&p.join(&n), &format!("{rel}/{}", n.to_string_lossy()), h)?;
            }
        } else if m.file_type().is_symlink() {
            h.update(fs::read_link(p)?.as_os_str().as_encoded_bytes());
        } else {
            let mut f = fs::File::open(p)?;
            std::io::copy(&mut f, h)?;
        }
        Ok(())
    }
    for src in sources {
        let Some(p) = src.top() else { continue };
        if p.is_dir() {
            kind = "dir";
        }
        walk(p, &src.rel, &mut h)?;
        if !src.local {
            // A download's time is part of what it is.
            h.update(format!("{:?}\n", fs::metadata(p)?.modified().ok()).as_bytes());
        }
    }
    if sources.len() > 1 {
        kind = "multi";
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{kind}:{hex}"))
}

/// How COPY/ADD sources land.
pub struct Copy {
    /// ADD: a local tar archive is extracted.
    pub extract: bool,
    pub owner: Option<(u32, u32)>,
    /// The destination is a directory in the image already.
    pub dest_is_dir: bool,
}

/// The destination's absolute path (`dest` relative to `wd`).
pub fn dest_path(wd: &str, dest: &str) -> String {
    if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", wd.trim_end_matches('/'))
    }
}

/// Copy the sources into `upper` at `dest` (relative to `wd`), as
/// dockerd's `performCopyForInfo`: a directory's contents into the
/// destination, a file into it when it ends in `/` or is a directory.
pub fn copy_into(
    wd: &str,
    upper: &Path,
    sources: &[Source],
    dest: &str,
    how: &Copy,
) -> Result<(), BuildError> {
    let abs = dest_path(wd, dest);
    let dir_dest = dest.ends_with('/') || how.dest_is_dir;
    let target = upper.join(super::dockerignore::clean(&abs).trim_start_matches('/'));
    for src in sources {
        let Some(top) = src.top() else { continue };
        let meta = fs::symlink_metadata(top)?;
        if how.extract && src.local && meta.is_file() && extract_tar(top, &target, how.owner)? {
            continue;
        }
        let to = if meta.is_dir() || !dir_dest {
            target.clone()
        } else {
            target.join(top.file_name().unwrap_or_default())
        };
        for from in &src.found {
            copy_tree(from, &to, how.owner)?;
        }
    }
    Ok(())
}

/// ADD of a local tar (plain or gzip): extracted at the destination.
/// False when the file is not a tar (it is then copied).
fn extract_tar(file: &Path, dest: &Path, owner: Option<(u32, u32)>) -> Result<bool, BuildError> {
    use std::io::Read;
    let mut head = [0u8; 512];
    let n = fs::File::open(file)?.read(&mut head)?;
    let gz = n >= 2 && head[..2] == [0x1f, 0x8b];
    let plain = n >= 262 && &head[257..262] == b"ustar";
    if !gz && !plain {
        return Ok(false);
    }
    fs::create_dir_all(dest)?;
    let f = fs::File::open(file)?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    for entry in ar.entries().map_err(invalid)? {
        let mut entry = entry.map_err(invalid)?;
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink() || kind.is_hard_link()) {
            continue;
        }
        // unpack_in refuses paths that leave `dest`, through `..` or links.
        entry.unpack_in(dest).map_err(invalid)?;
        if let (Some((u, g)), Ok(p)) = (owner, entry.path()) {
            let _ = lchown(dest.join(p), Some(u), Some(g));
        }
    }
    Ok(true)
}

fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), BuildError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        fs::set_permissions(to, fs::Permissions::from_mode(meta.permissions().mode()))?;
        for e in fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()), owner)?;
        }
    } else if meta.file_type().is_symlink() {
        let _ = fs::remove_file(to);
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else if meta.is_file() {
        fs::copy(from, to)?;
        if let Ok(t) = meta.modified() {
            fs::File::options().write(true).open(to)?.set_modified(t)?;
        }
    } else {
        // Devices, fifos, sockets and a layer's whiteouts are not copied.
        return Ok(());
    }
    let (u, g) = owner.unwrap_or((0, 0));
    lchown(to, Some(u), Some(g))?;
    Ok(())
}
