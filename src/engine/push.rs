//! `docker push`: the tags to push found in the store, the registry job
//! forked into a worker, and the digest references it earned recorded.

use crate::json;

use super::Engine;
use crate::distribution::error::DistError;
use crate::distribution::push::{push, PushJob, PushSummary, PushTarget};
use crate::events::Event;
use crate::image::archive_load::{LoadSummary, LoadedImage};
use crate::image::error::ImageError;
use crate::image::reference::{familiar, Reference};
use crate::reply::{ConnId, Wake};
use crate::worker::WorkerId;

impl Engine {
    /// The tags `r` names: its own tag, or every tag of its repository.
    pub fn push_targets(&self, r: &Reference) -> Result<Vec<PushTarget>, DistError> {
        let missing = || {
            DistError::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                r.familiar_name()
            ))
        };
        let mut out = Vec::new();
        for (key, id) in &self.images.refs {
            let Ok(k) = Reference::parse(key) else {
                continue;
            };
            if k.name != r.name || k.digest.is_some() {
                continue;
            }
            let Some(tag) = k.tag.clone() else { continue };
            if r.tag.as_ref().is_some_and(|t| *t != tag) {
                continue;
            }
            let img = self.images.get(id).ok_or_else(missing)?;
            out.push(PushTarget {
                tag,
                id: id.clone(),
                diff_ids: img.diff_ids.clone(),
            });
        }
        if out.is_empty() {
            return Err(missing());
        }
        Ok(out)
    }

    /// Fork the push's worker; its progress messages wake `conn`.
    pub fn spawn_push(&mut self, conn: ConnId, job: PushJob) -> std::io::Result<WorkerId> {
        let layout = self.images.layout().clone();
        let worker = self.workers.spawn(Wake::Conn(conn), move |_input, rep| {
            match push(&layout, job, rep) {
                Ok(s) => crate::json::to_value(&s)
                    .map_err(|e| json!({"kind": "Io", "detail": e.to_string()})),
                Err(e) => Err(e.to_wire()),
            }
        })?;
        self.workers.close_input(worker);
        // Layers stay while the worker reads them.
        self.images.begin_worker();
        Ok(worker)
    }

    /// A push succeeded: record `name@digest` for each image pushed.
    pub fn finish_push(&mut self, summary: &PushSummary) -> Result<(), ImageError> {
        let images = summary
            .pushed
            .iter()
            .map(|(id, _, digest)| LoadedImage {
                id: id.clone(),
                tags: vec![format!("{}@{digest}", summary.name)],
            })
            .collect();
        self.images.apply_load(&LoadSummary {
            images,
            journal: None,
        })?;
        for (_, tag, _) in &summary.pushed {
            let shown = familiar(&format!("{}:{tag}", summary.name));
            let name = familiar(&summary.name);
            self.publish(Event::new("image", "push", &shown).attr("name", &name));
        }
        Ok(())
    }
}
