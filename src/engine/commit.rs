//! `docker commit`: the container (frozen meanwhile unless `pause=false`)
//! has its upper dir turned into a layer by a forked worker, which writes
//! the child image into the store; the daemon then indexes it, thaws the
//! container and publishes the "commit" event.

use crate::json;
use serde_json::{Map, Value};

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::image::archive_load::LoadSummary;
use crate::image::commit::{commit_container, validate, CommitOptions};
use crate::image::error::{ImageError, WireError};
use crate::image::layer_extract::Budget;
use crate::reply::{ConnId, Wake};
use crate::runtime::cgroups::FREEZE_TIMEOUT;
use crate::worker::{Outcome, WorkerId};

/// What a commit request asks for.
pub struct CommitRequest {
    pub container: String,
    pub repo: Option<String>,
    pub tag: Option<String>,
    pub comment: String,
    pub author: String,
    pub changes: Vec<String>,
    pub pause: bool,
    /// The request body's config, when it has one.
    pub config: Option<Map<String, Value>>,
}

/// A commit that failed: the container or the image side.
#[derive(Debug)]
pub enum CommitError {
    Container(ContainerError),
    Image(ImageError),
}

impl From<ContainerError> for CommitError {
    fn from(e: ContainerError) -> Self {
        CommitError::Container(e)
    }
}

impl From<ImageError> for CommitError {
    fn from(e: ImageError) -> Self {
        CommitError::Image(e)
    }
}

/// Carried from the start of a commit to its end.
#[derive(Debug, Clone)]
pub struct CommitJob {
    pub container_id: String,
    pub comment: String,
    /// The reference it was tagged with, as shown in the event.
    pub image_ref: String,
    /// The commit froze the container: thaw it at the end.
    pub thaw: bool,
    pub worker: WorkerId,
}

impl Engine {
    /// Start a commit: checks, freeze, the worker.
    pub fn container_commit(
        &mut self,
        conn: ConnId,
        req: CommitRequest,
    ) -> Result<CommitJob, CommitError> {
        let e = self.containers.find(&req.container)?;
        let id = e.c.id.clone();
        let container_config = match crate::json::to_value(&e.c.config) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let parent = self
            .images
            .get(&e.c.image)
            .map(|i| i.config.clone())
            .ok_or_else(|| ImageError::NotFound(e.c.image.clone()))?;
        let opts = CommitOptions {
            ids: self.userns_of(&e.c.host_config),
            created_by: None,
            repo: req.repo,
            tag: req.tag,
            comment: req.comment.clone(),
            author: req.author,
            changes: req.changes,
            config: req.config.unwrap_or_else(|| container_config.clone()),
            container_config,
            parent,
        };
        let image_ref = validate(&opts)?
            .map(|t| crate::image::reference::familiar(&t))
            .unwrap_or_default();
        let mut frozen = None;
        if req.pause && e.c.state.status == Status::Running {
            if let Some(cg) = e.live.as_ref().and_then(|l| l.cgroup.as_ref()) {
                // Freezing starts now; the worker waits for the kernel to
                // finish it before it walks the tree (it may block, the
                // loop may not).
                cg.freeze_step()
                    .map_err(|err| ContainerError::Internal(err.to_string()))?;
                frozen = Some(cg.clone());
            }
        }
        let thaw = frozen.is_some();
        let layout = self.images.layout().clone();
        let upper = self.container_dirs.upper(&id);
        let spawned = self.workers.spawn(Wake::Conn(conn), move |_input, _rep| {
            if let Some(cg) = frozen {
                let deadline = std::time::Instant::now() + FREEZE_TIMEOUT;
                while !cg.freeze_step().unwrap_or(true) && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
            }
            match commit_container(&layout, &upper, &opts, &Budget::default()) {
                Ok(summary) => crate::json::to_value(&summary)
                    .map_err(|e| json!({"kind": "Io", "detail": e.to_string()})),
                Err(e) => Err(crate::json::to_value(&WireError::from(&e)).unwrap_or(Value::Null)),
            }
        });
        let worker = match spawned {
            Ok(w) => w,
            Err(err) => {
                self.commit_thaw(&id, thaw);
                return Err(ImageError::Io(err).into());
            }
        };
        self.images.begin_worker();
        Ok(CommitJob {
            container_id: id,
            comment: req.comment,
            image_ref,
            thaw,
            worker,
        })
    }

    fn commit_thaw(&mut self, id: &str, thaw: bool) {
        if !thaw {
            return;
        }
        if let Some(cg) = self
            .containers
            .get(id)
            .and_then(|e| e.live.as_ref())
            .and_then(|l| l.cgroup.as_ref())
        {
            if let Err(e) = cg.thaw() {
                log::warn!(
                    "thaw {} after commit: {e}",
                    crate::container::names::short(id)
                );
            }
        }
    }

    /// The client left before the end: the worker was killed; thaw.
    pub fn finish_commit_cancelled(&mut self, job: &CommitJob) {
        self.commit_thaw(&job.container_id, job.thaw);
    }

    /// The commit's worker finished: thaw, index the image, publish the
    /// event. Returns the new image's ID.
    pub fn finish_commit(
        &mut self,
        job: &CommitJob,
        outcome: Outcome,
    ) -> Result<String, CommitError> {
        self.commit_thaw(&job.container_id, job.thaw);
        let summary = match outcome {
            Outcome::Done(v) => match crate::json::from_value::<LoadSummary>(&v) {
                Ok(s) => s,
                Err(e) => {
                    self.images.abort_worker();
                    return Err(ImageError::Io(std::io::Error::other(e)).into());
                }
            },
            Outcome::Failed(v) => {
                self.images.abort_worker();
                return Err(match crate::json::from_value::<WireError>(&v) {
                    Ok(w) => ImageError::from(w),
                    Err(e) => ImageError::Io(std::io::Error::other(e)),
                }
                .into());
            }
            Outcome::Died(m) => {
                self.images.abort_worker();
                return Err(ImageError::Io(std::io::Error::other(m)).into());
            }
        };
        self.images.apply_load(&summary)?;
        crate::failpoint!("commit.indexed");
        let image_id = summary
            .images
            .first()
            .map(|i| i.id.clone())
            .unwrap_or_default();
        self.container_event(
            &job.container_id,
            "commit",
            &[
                ("comment", job.comment.clone()),
                ("imageID", image_id.clone()),
                ("imageRef", job.image_ref.clone()),
            ],
        );
        Ok(image_id)
    }
}
