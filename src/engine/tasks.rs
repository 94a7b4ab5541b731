//! Engine tasks: multi-step jobs that continue without a connection owning
//! them (a container's tree deleted by a worker after `rm`; later pulls and
//! builds). A task is woken like a connection (`Wake::Task`) and takes one
//! step per wake, never blocking.

use super::Engine;
use crate::reply::{TaskId, Wake};
use crate::worker::{Outcome, WorkerId};

pub trait Task {
    /// Take the next step; true when the task is finished.
    fn step(&mut self, engine: &mut Engine, me: TaskId) -> bool;
}

impl Engine {
    /// Reserve a task slot (to name it as a worker's owner) before filling it.
    pub fn reserve_task(&mut self) -> TaskId {
        self.tasks.insert(None)
    }

    pub fn fill_task(&mut self, id: TaskId, task: Box<dyn Task>) {
        if let Some(slot) = self.tasks.get_mut(id) {
            *slot = Some(task);
        }
        self.wake_target(Wake::Task(id));
    }

    /// Tasks not finished yet (a clean shutdown waits for them: a tree
    /// deletion cut short would leave its temp directory behind).
    pub fn tasks_pending(&self) -> bool {
        self.tasks.len() > 0
    }

    pub(super) fn run_task(&mut self, id: TaskId) {
        let Some(mut task) = self.tasks.get_mut(id).and_then(Option::take) else {
            return;
        };
        if task.step(self, id) {
            self.tasks.remove(id);
        } else if let Some(slot) = self.tasks.get_mut(id) {
            *slot = Some(task);
        }
    }
}

/// Delete a directory tree in a worker (`rm` of a container whose upper dir
/// may hold many files); the tree was renamed aside first, so nothing sees
/// it half-deleted, and a crash leaves a temporary name cleaned at start-up.
pub struct DeleteTree {
    pub worker: WorkerId,
    pub what: String,
}

impl Task for DeleteTree {
    fn step(&mut self, engine: &mut Engine, _me: TaskId) -> bool {
        engine.workers.take_messages(self.worker);
        match engine.workers.take_outcome(self.worker) {
            None => false,
            Some(Outcome::Done(_)) => true,
            Some(Outcome::Failed(e)) => {
                log::error!("delete {}: {}", self.what, crate::json::text(&e));
                true
            }
            Some(Outcome::Died(m)) => {
                log::error!("delete {}: {m}", self.what);
                true
            }
        }
    }
}

impl Engine {
    /// Delete `dir` (already renamed aside) in a worker.
    pub fn delete_tree_later(&mut self, dir: std::path::PathBuf, what: String) {
        let task = self.reserve_task();
        let spawned = self.workers.spawn(Wake::Task(task), move |_input, _out| {
            // The rename that put it aside, made durable here, off the loop
            // (a crash before this may bring the container back, as after
            // a `docker rm` dockerd did not fsync).
            if let Some(parent) = dir.parent() {
                if let Err(e) = crate::atomic::sync_dir(parent) {
                    log::error!("sync {}: {e}", parent.display());
                }
            }
            crate::failpoint!("tree.delete_begin");
            std::fs::remove_dir_all(&dir)
                .map(|()| serde_json::Value::Null)
                .map_err(|e| crate::json!(format!("{}: {e}", dir.display())))
        });
        match spawned {
            Ok(worker) => self.fill_task(task, Box::new(DeleteTree { worker, what })),
            Err(e) => {
                self.tasks.remove(task);
                log::error!("delete {what}: no worker: {e}");
            }
        }
    }

    /// Let a worker whose client left finish its work, its outcome only
    /// logged: a prune has already taken its objects out of the engine, and
    /// a killed worker would leave their trees behind until the next start.
    pub fn adopt_worker(&mut self, worker: WorkerId, what: String) {
        let task = self.reserve_task();
        self.workers.set_owner(worker, Wake::Task(task));
        self.fill_task(task, Box::new(DeleteTree { worker, what }));
    }
}
