//! Container records on disk: `<data-root>/containers/<id>/` holds
//! `config.json` (written atomically), the overlay `upper/` and `work/` dirs,
//! the generated `hostname`, `hosts`, `resolv.conf`, and the json-file log.
//! A container directory appears (by rename) only once complete.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic;
use crate::container::model::Container;

#[derive(Debug, Clone)]
pub struct ContainerDirs {
    root: PathBuf,
}

impl ContainerDirs {
    pub fn new(data_root: &Path) -> io::Result<ContainerDirs> {
        let root = data_root.join("containers");
        fs::create_dir_all(&root)?;
        atomic::remove_temp_leftovers(&root)?;
        Ok(ContainerDirs { root })
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn upper(&self, id: &str) -> PathBuf {
        self.dir(id).join("upper")
    }

    pub fn work(&self, id: &str) -> PathBuf {
        self.dir(id).join("work")
    }

    pub fn merged(&self, id: &str) -> PathBuf {
        self.dir(id).join("merged")
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    /// Create the directory tree for a new container and write its record.
    /// The generated `etc` files are derived from the record, so they are
    /// not fsynced: a crash may leave one empty, and the start writes it
    /// again (`restore_etc`).
    pub fn create(&self, c: &Container, etc: &[(&str, String)]) -> io::Result<()> {
        let tmp = self.root.join(format!("{}{}", atomic::TEMP_PREFIX, c.id));
        let _ = fs::remove_dir_all(&tmp);
        let result = (|| {
            fs::create_dir_all(&tmp)?;
            for d in ["upper", "work", "merged"] {
                fs::create_dir(tmp.join(d))?;
            }
            for (name, content) in etc {
                fs::write(tmp.join(name), content.as_bytes())?;
            }
            crate::failpoint!("container.create_tmp");
            atomic::write_file(&tmp.join("config.json"), &record(c)?)?;
            crate::failpoint!("container.create_record");
            fs::rename(&tmp, self.dir(&c.id))?;
            crate::failpoint!("container.create_renamed");
            atomic::sync_dir(&self.root)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Write again those of the generated `etc` files a crash left empty
    /// or missing (they are written unsynced at create).
    pub fn restore_etc(&self, id: &str, etc: &[(&str, String)]) -> io::Result<()> {
        for (name, content) in etc {
            let p = self.dir(id).join(name);
            if fs::metadata(&p).map_or(true, |m| m.len() == 0) && !content.is_empty() {
                fs::write(&p, content.as_bytes())?;
            }
        }
        Ok(())
    }

    /// Persist a changed record. `config.json` exists since the create, so
    /// a crash leaves the previous record or this one, both states recovery
    /// takes (`atomic::replace_file`: no directory fsync).
    pub fn save(&self, c: &Container) -> io::Result<()> {
        atomic::replace_file(&self.dir(&c.id).join("config.json"), &record(c)?)?;
        crate::failpoint!("container.saved");
        Ok(())
    }

    /// Persist many changed records with one filesystem sync instead of an
    /// fsync each (`atomic::replace_files`): start-up recovery rewrites every
    /// container that was running, before the daemon listens.
    pub fn save_many(&self, cs: &[Container]) -> Vec<(String, io::Error)> {
        let mut failed = Vec::new();
        let mut files = Vec::new();
        for c in cs {
            match record(c) {
                Ok(data) => files.push((self.dir(&c.id).join("config.json"), data)),
                Err(e) => failed.push((c.id.clone(), e)),
            }
        }
        for (path, e) in atomic::replace_files(&files) {
            let id = path
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            failed.push((id, e));
        }
        failed
    }

    /// A container's record, `config.json` (`save` writes it synced; the
    /// engine's `Records` stage it for a worker or the started child to sync).
    pub fn record_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("config.json")
    }

    /// Every container on disk; unreadable records are logged and skipped.
    pub fn load_all(&self) -> Vec<Container> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let path = e.path().join("config.json");
            match fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Container>(&b).map_err(|e| e.to_string()))
            {
                Ok(c)
                    if crate::container::names::is_full_id(&c.id)
                        && e.file_name() == c.id.as_str() =>
                {
                    out.push(c)
                }
                Ok(c) => log::warn!(
                    "skipping container record {}: id {:?} does not match",
                    path.display(),
                    c.id
                ),
                Err(err) => log::warn!("skipping container record {}: {err}", path.display()),
            }
        }
        out
    }

    /// The IDs of every container directory, readable record or not.
    pub fn ids(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| crate::container::names::is_full_id(n))
            .collect()
    }

    /// Take a container's directory out of the store: renamed to a
    /// temporary name (so a crash mid-delete leaves a temp dir, not a half
    /// container), which the caller deletes (in a worker: it can be big).
    /// The rename is not fsynced here: the deleting worker fsyncs
    /// `containers/` before it deletes (`sync_root`), off the loop.
    pub fn remove(&self, id: &str) -> io::Result<PathBuf> {
        let dir = self.dir(id);
        let tmp = self.root.join(format!("{}rm-{id}", atomic::TEMP_PREFIX));
        fs::rename(&dir, &tmp)?;
        crate::failpoint!("container.rm_renamed");
        Ok(tmp)
    }

    /// fsync `containers/` (a worker's: renames out of it made durable).
    pub fn sync_root(&self) -> io::Result<()> {
        atomic::sync_dir(&self.root)
    }
}

/// Bytes used under `dir` (not following symlinks). A tree walk: run it in
/// a worker, never on the loop.
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// A container's record as `config.json` holds it.
pub fn record(c: &Container) -> io::Result<Vec<u8>> {
    serde_json::to_vec(c).map_err(io::Error::other)
}
