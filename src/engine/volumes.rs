//! Volumes: `docker volume create/ls/inspect/rm/prune` on the local driver,
//! and the volumes of containers (planned at create, mounted at start, the
//! anonymous ones removed by `rm -v`).

use std::collections::BTreeMap;
use std::fmt;

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::volume_mounts::{self, MountPoint, VolumeRequest};
use crate::events::Event;
use crate::reply::Wake;
use crate::runtime::spec::{MountKind, MountSpec};
use crate::store::containers::dir_size;
use crate::store::volumes::{valid_name, Volume};
use crate::worker::WorkerId;

/// Failures of volume operations, in dockerd's words.
#[derive(Debug)]
pub enum VolumeError {
    /// `get NAME: no such volume` (404).
    NotFound(String),
    /// `remove NAME: volume is in use - [ids]` (409).
    InUse(String, Vec<String>),
    /// A driver other than `local` (404, no plugins here).
    NoDriver(String, String),
    /// A bad name or driver option (400).
    Invalid(String),
    /// Disk failure (500).
    Io(String),
}

impl fmt::Display for VolumeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VolumeError::NotFound(n) => write!(f, "get {n}: no such volume"),
            VolumeError::InUse(n, ids) => {
                write!(f, "remove {n}: volume is in use - [{}]", ids.join(", "))
            }
            VolumeError::NoDriver(n, d) => write!(
                f,
                "create {n}: error looking up volume plugin {d}: plugin \"{d}\" not found"
            ),
            VolumeError::Invalid(m) | VolumeError::Io(m) => f.write_str(m),
        }
    }
}

impl From<VolumeError> for ContainerError {
    fn from(e: VolumeError) -> ContainerError {
        match e {
            VolumeError::NotFound(_) | VolumeError::NoDriver(..) | VolumeError::Invalid(_) => {
                ContainerError::Invalid(e.to_string())
            }
            VolumeError::InUse(..) => ContainerError::Conflict(e.to_string()),
            VolumeError::Io(m) => ContainerError::Internal(m),
        }
    }
}

/// The local driver's options as dockerd checks them (`validateOpts`), and
/// what coracle can mount: tmpfs, and `type=none,o=bind` of a host path.
fn check_options(name: &str, opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    let bad = |m: String| Err(VolumeError::Invalid(format!("create {name}: {m}")));
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "o" | "device" | "size") {
            return bad(format!("invalid option: {k:?}"));
        }
    }
    if opts.contains_key("size") {
        return bad("quota size requested but no quota support".into());
    }
    for (opt, needs) in [
        ("device", &["type"][..]),
        ("type", &["device"][..]),
        ("o", &["device", "type"][..]),
    ] {
        if opts.contains_key(opt) {
            if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                return bad(format!("missing required option: {missing:?}"));
            }
        }
    }
    match opts.get("type").map(String::as_str) {
        None | Some("tmpfs") => Ok(()),
        Some("none") => {
            let bind = opts
                .get("o")
                .is_some_and(|o| o.split(',').any(|x| x == "bind" || x == "rbind"));
            let device = opts.get("device").map(String::as_str).unwrap_or("");
            if !bind || !device.starts_with('/') {
                return bad(
                    "coracle's local driver mounts type=none only with o=bind and an absolute device path".into(),
                );
            }
            Ok(())
        }
        Some(other) => bad(format!(
            "coracle's local driver does not mount type {other:?} (tmpfs and type=none,o=bind do)"
        )),
    }
}

/// A new anonymous volume's name: 64 hex digits, as dockerd's.
fn anonymous_name() -> String {
    crate::container::names::new_id()
}

fn created_at() -> String {
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::timefmt::rfc3339_nano(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

impl Engine {
    /// `POST /volumes/create`: an existing volume of that name is returned
    /// as it is (dockerd's behaviour for the local driver).
    pub fn volume_create(&mut self, req: VolumeRequest) -> Result<Volume, VolumeError> {
        let name = req.name.clone().unwrap_or_else(anonymous_name);
        if !req.driver.is_empty() && req.driver != "local" {
            return Err(VolumeError::NoDriver(name, req.driver));
        }
        if !valid_name(&name) {
            return Err(VolumeError::Invalid(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        if let Some(v) = self.volumes.get(&name) {
            return Ok(v.clone());
        }
        if let Some(o) = &req.options {
            check_options(&name, o)?;
        }
        let v = Volume {
            name: name.clone(),
            created_at: created_at(),
            labels: req.labels,
            options: req.options,
        };
        let v = self
            .volumes
            .create(v)
            .map_err(|e| VolumeError::Io(format!("create {name}: {}", crate::goerr::io_text(&e))))?
            .clone();
        self.publish(Event::new("volume", "create", &name).attr("driver", "local"));
        Ok(v)
    }

    pub fn volume_get(&self, name: &str) -> Result<&Volume, VolumeError> {
        self.volumes
            .get(name)
            .ok_or_else(|| VolumeError::NotFound(name.into()))
    }

    /// IDs of the containers that mount the volume.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .containers
            .iter()
            .filter(|e| {
                e.c.mount_points
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|e| e.c.id.clone())
            .collect();
        crate::sort::sort(&mut ids);
        ids
    }

    /// `DELETE /volumes/{name}`: 409 while a container uses it; `force`
    /// makes a missing volume a success (dockerd's `PurgeOnError`).
    pub fn volume_remove(&mut self, name: &str, force: bool) -> Result<(), VolumeError> {
        if self.volumes.get(name).is_none() {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NotFound(name.into()))
            };
        }
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(VolumeError::InUse(name.into(), users));
        }
        self.volume_remove_unchecked(name)
            .map_err(|e| VolumeError::Io(format!("remove {name}: {}", crate::goerr::io_text(&e))))
    }

    /// `POST /volumes/prune` of the unused volumes `keep` does not spare:
    /// gone at once, sized and deleted by a worker whose result is
    /// `{"deleted": [names], "reclaimed": bytes}`.
    pub fn volume_prune(
        &mut self,
        keep: &dyn Fn(&Volume) -> bool,
        owner: Wake,
    ) -> std::io::Result<WorkerId> {
        let victims: Vec<String> = self
            .volumes
            .iter()
            .filter(|v| !keep(v))
            .map(|v| v.name.clone())
            .collect();
        let mut deleted = Vec::new();
        let mut trees = Vec::new();
        for name in victims {
            if !self.volume_users(&name).is_empty() {
                continue;
            }
            match self.volumes.remove(&name) {
                Ok(tmp) => {
                    self.publish(Event::new("volume", "destroy", &name).attr("driver", "local"));
                    trees.push(tmp);
                    deleted.push(name);
                }
                Err(e) => log::error!("prune volume {name}: {e}"),
            }
        }
        self.workers.spawn(owner, move |_input, _reporter| {
            let mut reclaimed = 0u64;
            for tree in &trees {
                reclaimed += dir_size(&tree.join("_data"));
                if let Err(e) = std::fs::remove_dir_all(tree) {
                    log::error!("delete {}: {e}", tree.display());
                }
            }
            Ok(crate::json!({ "deleted": deleted, "reclaimed": reclaimed }))
        })
    }

    /// At create: the container's mount points, the volumes they name
    /// created (named ones on first use, anonymous ones fresh).
    pub(super) fn plan_volumes(
        &mut self,
        config: &crate::container::config::ContainerConfig,
        h: &crate::container::config::HostConfig,
    ) -> Result<Vec<MountPoint>, ContainerError> {
        let planned = volume_mounts::plan(config, h, &|key| {
            let e = self.containers.find(key)?;
            Ok((e.c.mount_points.clone(), e.c.host_config.binds.clone()))
        })?;
        // Check every request before creating anything.
        for p in &planned {
            if let Some(r) = &p.volume {
                let name = r.name.as_deref().unwrap_or("anonymous");
                if !r.driver.is_empty() && r.driver != "local" {
                    return Err(VolumeError::NoDriver(name.into(), r.driver.clone()).into());
                }
                if let (Some(o), None) = (
                    &r.options,
                    r.name.as_ref().and_then(|n| self.volumes.get(n)),
                ) {
                    check_options(name, o)?;
                }
            }
        }
        let mut points = Vec::new();
        for p in planned {
            let mut point = p.point;
            if let Some(r) = p.volume {
                let v = self.volume_create(r)?;
                point.name = v.name.clone();
            }
            if point.kind == "volume" {
                let mut src = self.volumes.data_dir(&point.name);
                if !point.subpath.is_empty() {
                    src = src.join(&point.subpath);
                }
                point.source = src.display().to_string();
            }
            points.push(point);
        }
        Ok(points)
    }

    /// At start: the container's volume mounts added to its other mounts,
    /// all sorted parents first (dockerd's order).
    pub(super) fn with_volume_mounts(
        &mut self,
        points: &[MountPoint],
        mut mounts: Vec<MountSpec>,
    ) -> Result<Vec<MountSpec>, ContainerError> {
        for m in points {
            let mut spec = MountSpec {
                kind: if m.copy_up {
                    MountKind::Volume
                } else {
                    MountKind::Bind
                },
                source: m.source.clone().into(),
                target: m.destination.clone().into(),
                readonly: !m.rw,
                options: String::new(),
            };
            if m.kind == "volume" {
                let v = self.volume_get(&m.name)?;
                match (v.option("type"), v.option("device")) {
                    (Some("tmpfs"), _) => {
                        // Mounted on the host and shared, as dockerd does;
                        // unmounted when no running container uses it.
                        let o = v.option("o").unwrap_or("").to_string();
                        self.volumes.mount_tmpfs(&m.name, &o).map_err(|e| {
                            ContainerError::Invalid(format!(
                                "error while mounting volume '{}': {e}",
                                self.volumes.data_dir(&m.name).display()
                            ))
                        })?;
                        spec.kind = MountKind::Bind;
                    }
                    (Some("none"), Some(dev)) => {
                        spec.kind = MountKind::Bind;
                        spec.source = dev.into();
                    }
                    _ => {}
                }
                if !m.subpath.is_empty() {
                    // Symlinks inside the volume resolve within it, never to
                    // the host (the container is not running yet; another
                    // one sharing the volume could still swap a component
                    // between this and the bind).
                    let data = self.volumes.data_dir(&m.name);
                    let p = crate::runtime::mounts::secure_join(
                        &data,
                        std::path::Path::new(&m.subpath),
                    )
                    .map_err(|e| ContainerError::Invalid(e.to_string()))?;
                    if !p.exists() {
                        return Err(ContainerError::Invalid(format!(
                            "cannot access path {}: no such file or directory",
                            p.display()
                        )));
                    }
                    spec.source = p;
                }
            }
            mounts.push(spec);
        }
        crate::sort::sort_by_key(&mut mounts, |m| volume_mounts::depth(&m.target));
        Ok(mounts)
    }

    /// A container stopped or failed to start: unmount the tmpfs volumes
    /// no running container uses any more.
    /// `stopped`: the container whose exit this is (its `unmount` events).
    pub(super) fn release_volumes(&mut self, stopped: Option<&str>) {
        let points = stopped
            .and_then(|id| self.containers.get(id))
            .map(|e| e.c.mount_points.clone())
            .unwrap_or_default();
        for m in points.iter().filter(|m| m.kind == "volume") {
            let ev = Event::new("volume", "unmount", &m.name)
                .attr("container", stopped.unwrap_or(""))
                .attr("driver", "local");
            self.publish(ev);
        }
        let idle: Vec<String> = self
            .volumes
            .mounted
            .iter()
            .filter(|name| {
                !self.containers.iter().any(|e| {
                    e.c.state.is_alive()
                        && e.c
                            .mount_points
                            .iter()
                            .any(|m| m.kind == "volume" && &m.name == *name)
                })
            })
            .cloned()
            .collect();
        for name in idle {
            self.volumes.unmount(&name);
        }
    }

    /// After a successful start: `mount` events; copy-up happens on the
    /// first start only.
    pub(super) fn volumes_started(&mut self, id: &str) {
        let points = self
            .containers
            .get(id)
            .map(|e| e.c.mount_points.clone())
            .unwrap_or_default();
        for m in points.iter().filter(|m| m.kind == "volume") {
            let ev = Event::new("volume", "mount", &m.name)
                .attr("container", id)
                .attr("destination", &m.destination)
                .attr("driver", "local")
                .attr("propagation", "")
                .attr("read/write", if m.rw { "true" } else { "false" });
            self.publish(ev);
        }
        let changed = match self.containers.get_mut(id) {
            Some(e) if e.c.mount_points.iter().any(|m| m.copy_up) => {
                e.c.mount_points.iter_mut().for_each(|m| m.copy_up = false);
                true
            }
            _ => false,
        };
        if changed {
            self.persist(id);
        }
    }

    /// `docker rm -v`: remove the container's anonymous volumes once it is
    /// gone (now, or when a forced removal completes).
    pub fn remove_volumes_with(&mut self, key: &str, on: bool) {
        if let Ok(id) = self.containers.resolve(key) {
            if on {
                self.rm_volumes_of.insert(id);
            } else {
                self.rm_volumes_of.remove(&id);
            }
        }
    }

    /// Called as a container leaves the registry: its anonymous volumes go
    /// too if `rm -v` asked or it was `--rm` (dockerd's AutoRemove removes
    /// them), and no other container uses them.
    pub(super) fn volumes_on_remove(&mut self, c: &crate::container::model::Container) {
        let asked = self.rm_volumes_of.remove(&c.id);
        if !asked && !c.host_config.auto_remove {
            return;
        }
        for m in c
            .mount_points
            .iter()
            .filter(|m| m.anonymous && m.kind == "volume")
        {
            if self.volume_users(&m.name).iter().all(|u| *u == c.id) {
                if let Err(e) = self.volume_remove_unchecked(&m.name) {
                    log::error!("remove volume {}: {e}", m.name);
                }
            }
        }
    }

    /// A create that failed after its volumes were made: its anonymous
    /// ones go (named ones stay, as dockerd leaves them).
    pub(super) fn volumes_on_failed_create(&mut self, points: &[MountPoint]) {
        for m in points.iter().filter(|m| m.anonymous && m.kind == "volume") {
            if let Err(e) = self.volume_remove_unchecked(&m.name) {
                log::error!("remove volume {}: {e}", m.name);
            }
        }
    }

    fn volume_remove_unchecked(&mut self, name: &str) -> std::io::Result<()> {
        if self.volumes.get(name).is_none() {
            return Ok(());
        }
        let tmp = self.volumes.remove(name)?;
        self.delete_tree_later(tmp, format!("volume {name}"));
        self.publish(Event::new("volume", "destroy", name).attr("driver", "local"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_driver_options() {
        let o = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_options(
            "v",
            &o(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")])
        )
        .is_ok());
        assert!(check_options(
            "v",
            &o(&[("type", "none"), ("device", "/srv"), ("o", "bind")])
        )
        .is_ok());
        let e = check_options("v", &o(&[("foo", "x")])).unwrap_err();
        assert_eq!(e.to_string(), "create v: invalid option: \"foo\"");
        let e = check_options("v", &o(&[("type", "tmpfs")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "create v: missing required option: \"device\""
        );
        assert!(check_options("v", &o(&[("type", "nfs"), ("device", ":/x")])).is_err());
    }
}
