//! `docker rm`: a container and its directories removed.

use nix::sys::signal::Signal;

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::reply::Wake;
use crate::store::containers::dir_size;
use crate::timers::Timer;
use crate::worker::WorkerId;

impl Engine {
    /// `DELETE /containers/{id}`. Returns Some(id) when removal waits for the
    /// process to die (force on a running container).
    pub fn container_remove(
        &mut self,
        key: &str,
        force: bool,
    ) -> Result<Option<String>, ContainerError> {
        let id = self.containers.resolve(key)?;
        let e = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
        let restarting = e.c.state.status == Status::Restarting;
        if !force && (e.c.state.is_alive() || restarting) {
            // dockerd's words (daemon/delete.go): a restarting container
            // counts as running.
            let what = match e.c.state.status {
                Status::Paused => "paused and must be unpaused first".to_string(),
                Status::Restarting => {
                    "restarting: stop the container before removing or force remove".into()
                }
                _ => "running: stop the container before removing or force remove".into(),
            };
            return Err(ContainerError::Conflict(format!(
                "cannot remove container \"{}\": container is {what}",
                e.c.name
            )));
        }
        if e.c.state.is_alive() {
            e.remove_on_exit = true;
            e.c.manually_stopped = true;
            self.signal_container(&id, Signal::SIGKILL);
            return Ok(Some(id));
        }
        self.timers.cancel(&Timer::Restart(id.clone()));
        self.remove_now(&id);
        Ok(None)
    }

    pub(super) fn remove_now(&mut self, id: &str) {
        let mut span = crate::trace::Span::start("remove", id);
        if let Some(tmp) = self.take_out(id) {
            span.phase("take-out");
            let what = format!("container {}", crate::container::names::short(id));
            self.delete_tree_later(tmp, what);
            span.phase("delete-worker-spawn");
        }
    }

    /// `POST /containers/prune` of `victims` (stopped containers): each is
    /// gone at once as `rm` makes it; a worker (owned by `owner`) sizes their
    /// upper dirs and deletes the trees. Its result:
    /// `{"deleted": [ids], "reclaimed": bytes}`.
    pub fn container_prune(
        &mut self,
        victims: Vec<String>,
        owner: Wake,
    ) -> std::io::Result<WorkerId> {
        let mut deleted = Vec::new();
        let mut trees = Vec::new();
        for id in victims {
            let stopped = self
                .containers
                .get(&id)
                .is_some_and(|e| !e.c.state.is_alive());
            if !stopped {
                continue;
            }
            self.timers.cancel(&Timer::Restart(id.clone()));
            trees.extend(self.take_out(&id));
            deleted.push(id);
        }
        let dirs = self.container_dirs.clone();
        self.workers.spawn(owner, move |_input, _reporter| {
            // The renames out of `containers/`, made durable off the loop.
            if !trees.is_empty() {
                if let Err(e) = dirs.sync_root() {
                    log::error!("sync containers/: {e}");
                }
            }
            let mut reclaimed = 0u64;
            for tree in &trees {
                reclaimed += dir_size(&tree.join("upper"));
                if let Err(e) = std::fs::remove_dir_all(tree) {
                    log::error!("delete {}: {e}", tree.display());
                }
                crate::failpoint!("container.prune_one");
            }
            Ok(crate::json!({ "deleted": deleted, "reclaimed": reclaimed }))
        })
    }

    /// Take a container out of the engine (a `destroy` event, its record,
    /// execs and streams ended) and its directory out of the store, renamed
    /// aside; returns that directory for the caller to delete.
    fn take_out(&mut self, id: &str) -> Option<std::path::PathBuf> {
        if let Some(e) = self.containers.get_mut(id) {
            e.c.state.status = Status::Removing;
        }
        self.container_event(id, "destroy", &[]);
        // A record staged for a worker's fsync goes with the directory.
        self.drop_staged_record(id);
        let tmp = match self.container_dirs.remove(id) {
            Ok(tmp) => Some(tmp),
            Err(e) => {
                log::error!(
                    "remove container {}: {e}",
                    crate::container::names::short(id)
                );
                None
            }
        };
        if let Some(e) = self.containers.remove(id) {
            self.volumes_on_remove(&e.c);
        }
        self.network_forget(id);
        self.execs.remove_container(id);
        for conn in self.outputs.end_container(id) {
            self.wake(conn);
        }
        self.outputs.forget(id);
        self.wake_container_waiters();
        tmp
    }
}
