//! The archive API behind `docker cp`: a path's stat, a tar of it, a tar
//! extracted into the container. Each runs in a forked worker that reaches
//! the container's tree as the container sees it (`runtime::inroot::Tree`):
//! the loop only moves the bytes, with backpressure both ways.

use std::path::Path;

use crate::json;
use serde_json::Value;

use super::Engine;
use crate::container::archive::{stat_path, write_archive, ArchiveError, Target};
use crate::container::error::ContainerError;
use crate::container::extract::{container_owner, extract, ExtractOptions};
use crate::container::launch_spec::mounts_of;
use crate::reply::{ConnId, Wake};
use crate::runtime::inroot::{lexical_clean, Tree};
use crate::runtime::spec::MountKind;
use crate::worker::WorkerId;

/// What a PUT asks for besides the path.
pub struct PutOptions {
    pub no_overwrite_dir_non_dir: bool,
    pub copy_uid_gid: bool,
}

fn container_error(e: ContainerError) -> ArchiveError {
    match e {
        ContainerError::NotFound(_) => ArchiveError::NoSuchContainer(e.to_string()),
        other => ArchiveError::Failed(other.to_string()),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    crate::json::to_value(v).unwrap_or(Value::Null)
}

impl Engine {
    /// A remapped container's mapping, for the owners in its archives
    /// (`docker cp`, export).
    pub fn archive_ids(&self, id: &str) -> Option<crate::runtime::userns::IdMap> {
        let e = self.containers.get(id)?;
        self.userns_of(&e.c.host_config)
    }

    /// The container's tree as a worker can open it, and its full ID.
    pub(crate) fn container_tree(&self, key: &str) -> Result<(String, Tree), ArchiveError> {
        let e = self.containers.find(key).map_err(container_error)?;
        let id = e.c.id.clone();
        if let Some(live) = &e.live {
            return Ok((id, Tree::Running(live.pid.as_raw())));
        }
        let lowers = self
            .images
            .lower_dirs(&e.c.image)
            .map_err(|err| ArchiveError::Failed(err.to_string()))?;
        let mounts = mounts_of(&e.c.host_config).map_err(container_error)?;
        Ok((
            id.clone(),
            Tree::Stopped {
                lowers,
                upper: self.container_dirs.upper(&id),
                work: self.container_dirs.work(&id),
                merged: self.container_dirs.merged(&id),
                mounts,
            },
        ))
    }

    /// HEAD: a JSON worker answering the path's stat.
    pub fn archive_stat(&mut self, conn: ConnId, t: Target) -> Result<WorkerId, ArchiveError> {
        let (_, tree) = self.container_tree(&t.container)?;
        self.workers
            .spawn(Wake::Conn(conn), move |_input, _rep| {
                let root = tree.open().map_err(|e| to_json(&t.lookup_error(e)))?;
                stat_path(&root, &t)
                    .map(|s| to_json(&s))
                    .map_err(|e| to_json(&e))
            })
            .map_err(|e| ArchiveError::Failed(e.to_string()))
    }

    /// GET: a raw worker writing the stat line, then the tar. Returns the
    /// container's ID with it (for the event).
    pub fn archive_get(
        &mut self,
        conn: ConnId,
        t: Target,
    ) -> Result<(String, WorkerId), ArchiveError> {
        let (id, tree) = self.container_tree(&t.container)?;
        let ids = self.archive_ids(&id);
        let worker = self
            .workers
            .spawn_raw(Wake::Conn(conn), move |_input, rep| {
                let out = rep.out_file();
                let root = match tree.open() {
                    Ok(r) => r,
                    Err(e) => {
                        let line = json!({ "error": t.lookup_error(e) });
                        return std::io::Write::write_all(
                            out,
                            format!("{}\n", crate::json::text(&line)).as_bytes(),
                        )
                        .map(|()| Value::Null)
                        .map_err(|e| json!(e.to_string()));
                    }
                };
                let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
                write_archive(&root, &t, &mut out, ids)
                    .map(|()| Value::Null)
                    .map_err(|e| to_json(&e))
            })
            .map_err(|e| ArchiveError::Failed(e.to_string()))?;
        Ok((id, worker))
    }

    /// PUT: a JSON worker extracting its input (the request body) into the
    /// container. Read-only destinations are refused before any byte.
    pub fn archive_put(
        &mut self,
        conn: ConnId,
        t: Target,
        opts: PutOptions,
    ) -> Result<WorkerId, ArchiveError> {
        let (id, tree) = self.container_tree(&t.container)?;
        let (readonly_root, user, mounts) = {
            let e = self
                .containers
                .find(&t.container)
                .map_err(container_error)?;
            (
                e.c.host_config.readonly_rootfs,
                e.c.config.user.clone(),
                mounts_of(&e.c.host_config).map_err(container_error)?,
            )
        };
        check_writable(&t, readonly_root, &mounts)?;
        let ids = self.archive_ids(&id);
        self.workers
            .spawn(Wake::Conn(conn), move |input, _rep| {
                let root = tree.open().map_err(|e| to_json(&t.lookup_error(e)))?;
                let owner = if opts.copy_uid_gid {
                    Some(container_owner(&root, &user).map_err(|e| to_json(&e))?)
                } else {
                    None
                };
                let xo = ExtractOptions {
                    no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
                    owner,
                    ids,
                };
                let input = std::io::BufReader::with_capacity(64 * 1024, input);
                extract(&root, &t, input, &xo)
                    .map(|()| json!(id))
                    .map_err(|e| to_json(&e))
            })
            .map_err(|e| ArchiveError::Failed(e.to_string()))
    }
}

/// dockerd's `checkIfPathIsInAVolume` and read-only rootfs rule: a path in
/// a read-only mount, or outside every mount of a read-only rootfs, is
/// refused (lexically, on the path as given, as dockerd does).
fn check_writable(
    t: &Target,
    readonly_root: bool,
    mounts: &[crate::runtime::spec::MountSpec],
) -> Result<(), ArchiveError> {
    let path = lexical_clean(Path::new(&t.absolute()));
    let mount = mounts
        .iter()
        .filter(|m| path.starts_with(lexical_clean(&m.target)))
        .max_by_key(|m| m.target.as_os_str().len());
    match mount {
        Some(m) if m.readonly && m.kind == MountKind::Bind => Err(ArchiveError::ReadOnly(
            "mounted volume is marked read-only".into(),
        )),
        Some(_) => Ok(()),
        None if readonly_root => Err(ArchiveError::ReadOnly(
            "container rootfs is marked read-only".into(),
        )),
        None => Ok(()),
    }
}
