//! Crash-safe file replacement: write a temp file, fsync it, rename it over
//! the target, fsync the directory. A reader sees the old or the new file,
//! never a torn one, even after power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Prefix of every temporary name we create; start-up cleaners remove
/// anything left with it after a crash.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Atomically replace `path` with `data` (mode 0600), durably: the
/// directory is fsynced after the rename.
pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    replace_file(path, data)?;
    sync_dir(path.parent().unwrap_or_else(|| Path::new(".")))
}

/// Replace an existing `path` with `data`: temp written, fsynced, renamed
/// over it, without `write_file`'s directory fsync. The rename swaps one
/// complete file for another, so a crash at any point leaves the old or the
/// new content; the directory's fsync would only make the new name durable
/// sooner (it is by the next journal commit). For records whose previous
/// version is a state recovery accepts (container records).
pub fn replace_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = temp_for(path)?;
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        crate::failpoint!("atomic.temp_written");
        f.sync_all()?;
        crate::failpoint!("atomic.temp_synced");
        fs::rename(&tmp, path)?;
        crate::failpoint!("atomic.renamed");
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The temp name `replace_file` and `replace_files` write `path`'s new
/// content under, beside it: `.tmp-<name>-<pid>`.
fn temp_for(path: &Path) -> io::Result<PathBuf> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok(dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Write a new file and fsync it, without a rename: for files inside a
/// temporary directory that becomes visible as a whole by its own rename
/// (the rename must not publish a file whose data is not on disk).
pub fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// The first half of `replace_file`, for a record whose fsync runs in
/// another process (a worker, a container's launched child): `tmp` created
/// anew (mode 0600) and written, not synced. Returns the open file, whose
/// descriptor that process may sync. Its rename over the target is the
/// caller's, once the sync is reported.
pub fn write_temp(tmp: &Path, data: &[u8]) -> io::Result<File> {
    let _ = fs::remove_file(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)?;
    if let Err(e) = f.write_all(data) {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    Ok(f)
}

/// fdatasync the file at `path` (a worker's half of `write_temp`). A file
/// already gone (superseded by a newer record, or its container removed)
/// is no error: false.
pub fn sync_data_at(path: &Path) -> io::Result<bool> {
    match File::open(path) {
        Ok(f) => f.sync_data().map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// fsync a directory so that a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Remove every entry of `dir` whose name starts with [`TEMP_PREFIX`]:
/// the leftovers of writes interrupted by a crash.
pub fn remove_temp_leftovers(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            let res = if entry.file_type()?.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if res.is_ok() {
                log::info!("removed {}, left by an interrupted write", path.display());
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Replace many existing files as [`replace_file`] does, with one `syncfs` for
/// all their temp files instead of an fsync each: every temp is written, the
/// filesystem is synced once, then each temp is renamed over its target. A
/// crash leaves each file old or new (temps are start-up leftovers). All the
/// files must be on one filesystem. For start-up recovery, which may rewrite
/// hundreds of records before it listens. Returns the files that failed.
pub fn replace_files(files: &[(PathBuf, Vec<u8>)]) -> Vec<(PathBuf, io::Error)> {
    let mut failed = Vec::new();
    let mut written = Vec::new();
    let mut sync_fd: Option<File> = None;
    for (path, data) in files {
        match temp_for(path).and_then(|tmp| write_temp(&tmp, data).map(|f| (tmp, f))) {
            Ok((tmp, f)) => {
                sync_fd.get_or_insert(f);
                written.push((tmp, path));
            }
            Err(e) => failed.push((path.clone(), e)),
        }
    }
    if let Some(f) = sync_fd {
        use std::os::fd::AsRawFd;
        // SAFETY: `f` is an open file; syncfs only reads the descriptor.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            let e = io::Error::last_os_error();
            for (tmp, path) in written.drain(..) {
                let _ = fs::remove_file(&tmp);
                failed.push((path.clone(), io::Error::new(e.kind(), e.to_string())));
            }
        }
    }
    for (tmp, path) in written {
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            failed.push((path.clone(), e));
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("coracle-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("state.json");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        // A temp for another process to sync: written whole, replaced anew,
        // synced by path; gone is not an error.
        let t = dir.join(format!("{TEMP_PREFIX}staged"));
        drop(write_temp(&t, b"first, longer").unwrap());
        drop(write_temp(&t, b"second").unwrap());
        assert_eq!(fs::read(&t).unwrap(), b"second");
        assert!(sync_data_at(&t).unwrap());
        fs::remove_file(&t).unwrap();
        assert!(!sync_data_at(&t).unwrap());
        fs::write(dir.join(format!("{TEMP_PREFIX}x")), b"junk").unwrap();
        assert_eq!(remove_temp_leftovers(&dir).unwrap(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replaces_a_batch_and_reports_what_failed() {
        let dir = std::env::temp_dir().join(format!("coracle-atomic-b-{}", std::process::id()));
        fs::create_dir_all(dir.join("a")).unwrap();
        fs::create_dir_all(dir.join("b")).unwrap();
        let a = dir.join("a/config.json");
        let b = dir.join("b/config.json");
        let missing = dir.join("gone/config.json");
        fs::write(&a, b"old a").unwrap();
        fs::write(&b, b"old b").unwrap();
        let failed = replace_files(&[
            (a.clone(), b"new a".to_vec()),
            (missing.clone(), b"x".to_vec()),
            (b.clone(), b"new b".to_vec()),
        ]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, missing);
        assert_eq!(fs::read(&a).unwrap(), b"new a");
        assert_eq!(fs::read(&b).unwrap(), b"new b");
        for sub in ["a", "b"] {
            assert_eq!(
                fs::read_dir(dir.join(sub)).unwrap().count(),
                1,
                "temp left in {sub}"
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
