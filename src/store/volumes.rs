//! Volumes of the local driver on disk: `<data-root>/volumes/<name>/`
//! holds `volume.json` (the metadata, written atomically) and `_data/` (the
//! content, what containers mount). A volume directory appears (by rename)
//! only once complete, and is renamed aside before it is deleted, so a crash
//! never leaves half a volume. The index is in memory, loaded at start-up.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;

/// The label dockerd puts on the volumes it creates for `-v /path` and an
/// image's `VOLUME` (what `volume prune` removes without `all`).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// A volume's persisted metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    /// RFC 3339, seconds (dockerd's shape).
    pub created_at: String,
    /// As given: None when the request had none (inspect shows null).
    pub labels: Option<BTreeMap<String, String>>,
    /// The local driver's `type` / `device` / `o`, as given.
    pub options: Option<BTreeMap<String, String>>,
}

impl Volume {
    pub fn is_anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }

    pub fn label(&self, k: &str) -> Option<&str> {
        self.labels.as_ref()?.get(k).map(String::as_str)
    }

    pub fn option(&self, k: &str) -> Option<&str> {
        self.options.as_ref()?.get(k).map(String::as_str)
    }
}

pub struct VolumeStore {
    root: PathBuf,
    volumes: BTreeMap<String, Volume>,
    /// Volumes whose `_data` has their tmpfs mounted on the host (while a
    /// running container uses them, as dockerd's local driver does).
    pub mounted: std::collections::BTreeSet<String>,
    /// `--userns-remap`: new volumes' `_data` belongs to the remapped
    /// root (host uid, gid), as under dockerd.
    pub owner: Option<(u32, u32)>,
}

impl VolumeStore {
    /// Open `<data_root>/volumes`: crash leftovers removed, records loaded
    /// (an unreadable record is logged and skipped, its data kept).
    pub fn open(data_root: &Path) -> io::Result<VolumeStore> {
        let root = data_root.join("volumes");
        fs::create_dir_all(&root)?;
        atomic::remove_temp_leftovers(&root)?;
        let mut volumes = BTreeMap::new();
        for entry in fs::read_dir(&root)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path().join("volume.json");
            match fs::read(&path).map(|b| serde_json::from_slice::<Volume>(&b)) {
                Ok(Ok(v)) if v.name == name => {
                    volumes.insert(name, v);
                }
                Ok(Ok(_)) | Ok(Err(_)) => log::warn!("volume {name}: corrupt record; skipped"),
                Err(e) => log::warn!("volume {name}: {e}; skipped"),
            }
        }
        // Mounts left by an earlier run (a crash): nothing runs now, so
        // nothing uses them; their content goes, as after a clean stop.
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in crate::runtime::mountinfo::parse(&mountinfo) {
            let p = Path::new(&m.mount_point);
            if p.starts_with(&root) && p.file_name().is_some_and(|n| n == "_data") {
                match nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH) {
                    Ok(()) => log::info!("unmounted {}, left by an earlier run", p.display()),
                    Err(e) => log::warn!("unmount leftover {}: {e}", p.display()),
                }
            }
        }
        Ok(VolumeStore {
            root,
            volumes,
            mounted: Default::default(),
            owner: None,
        })
    }

    /// Mount the volume's tmpfs on its `_data` (on the host, shared by the
    /// containers that use it) unless it is already.
    pub fn mount_tmpfs(&mut self, name: &str, options: &str) -> io::Result<()> {
        if self.mounted.contains(name) {
            return Ok(());
        }
        let data = self.data_dir(name);
        // dockerd's local driver: the `o` words as given, no defaults.
        let (flags, fs_data) =
            crate::runtime::mount_options::mount_options(options, nix::mount::MsFlags::empty());
        nix::mount::mount(
            Some("tmpfs"),
            &data,
            Some("tmpfs"),
            flags,
            Some(fs_data.as_str()),
        )?;
        self.mounted.insert(name.to_string());
        Ok(())
    }

    /// Unmount a tmpfs mounted by `mount_tmpfs` (its content is gone).
    pub fn unmount(&mut self, name: &str) {
        if self.mounted.remove(name) {
            let data = self.data_dir(name);
            if let Err(e) = nix::mount::umount2(&data, nix::mount::MntFlags::MNT_DETACH) {
                log::warn!("unmount volume {name}: {e}");
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Volume> {
        self.volumes.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Volume> {
        self.volumes.values()
    }

    /// Where the volume's content lives (what containers mount).
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// Create the volume's directory and record, visible only once both
    /// exist.
    pub fn create(&mut self, v: Volume) -> io::Result<&Volume> {
        let tmp = self
            .root
            .join(format!("{}new-{}", atomic::TEMP_PREFIX, v.name));
        let _ = fs::remove_dir_all(&tmp);
        let result = (|| {
            fs::create_dir_all(tmp.join("_data"))?;
            if let Some((uid, gid)) = self.owner {
                std::os::unix::fs::chown(tmp.join("_data"), Some(uid), Some(gid))?;
            }
            crate::failpoint!("volume.create_tmp");
            let record = serde_json::to_vec(&v).map_err(io::Error::other)?;
            atomic::write_file(&tmp.join("volume.json"), &record)?;
            crate::failpoint!("volume.create_record");
            fs::rename(&tmp, self.root.join(&v.name))?;
            crate::failpoint!("volume.create_renamed");
            atomic::sync_dir(&self.root)
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let name = v.name.clone();
        Ok(self.volumes.entry(name).or_insert(v))
    }

    /// Take a volume out of the store: its directory renamed to a temporary
    /// name, which the caller deletes (in a worker: it can be big).
    pub fn remove(&mut self, name: &str) -> io::Result<PathBuf> {
        self.unmount(name);
        let tmp = self.root.join(format!("{}rm-{name}", atomic::TEMP_PREFIX));
        let _ = fs::remove_dir_all(&tmp);
        fs::rename(self.root.join(name), &tmp)?;
        crate::failpoint!("volume.rm_renamed");
        atomic::sync_dir(&self.root)?;
        self.volumes.remove(name);
        Ok(tmp)
    }
}

/// dockerd's local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (two or more
/// characters).
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("data"));
        assert!(valid_name("a.b_c-d9"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-ab"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a$b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn create_reopen_remove() {
        let dir = std::env::temp_dir().join(format!("coracle-volstore-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = VolumeStore::open(&dir).unwrap();
        let v = Volume {
            name: "v1".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            labels: Some([(ANONYMOUS_LABEL.to_string(), String::new())].into()),
            options: None,
        };
        s.create(v).unwrap();
        fs::write(s.data_dir("v1").join("f"), b"x").unwrap();
        // A crash leftover is cleaned at the next open.
        fs::create_dir_all(dir.join("volumes/.tmp-new-v2/_data")).unwrap();
        let mut s = VolumeStore::open(&dir).unwrap();
        assert!(s.get("v1").unwrap().is_anonymous());
        assert_eq!(s.iter().count(), 1);
        assert!(!dir.join("volumes/.tmp-new-v2").exists());
        let tmp = s.remove("v1").unwrap();
        assert!(s.get("v1").is_none());
        fs::remove_dir_all(tmp).unwrap();
        assert_eq!(VolumeStore::open(&dir).unwrap().iter().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
