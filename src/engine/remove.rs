//! `docker rm`: a container and its directories removed.

use nix::sys::signal::Signal;

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::timers::Timer;

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
        if let Some(e) = self.containers.get_mut(id) {
            e.c.state.status = Status::Removing;
        }
        self.container_event(id, "destroy", &[]);
        match self.container_dirs.remove(id) {
            Ok(tmp) => {
                let what = format!("container {}", crate::container::names::short(id));
                self.delete_tree_later(tmp, what);
            }
            Err(e) => log::error!(
                "remove container {}: {e}",
                crate::container::names::short(id)
            ),
        }
        self.containers.remove(id);
        self.execs.remove_container(id);
        for conn in self.outputs.end_container(id) {
            self.wake(conn);
        }
        self.wake_container_waiters();
    }
}
