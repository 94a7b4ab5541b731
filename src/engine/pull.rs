//! `docker pull`: the registry job forked into a worker, and its commit
//! into the store (tags and digest reference) when it succeeds.

use crate::json;

use super::Engine;
use crate::distribution::pull::{pull, PullJob, PullSummary};
use crate::events::Event;
use crate::image::error::ImageError;
use crate::image::reference::{familiar, Reference};
use crate::reply::{ConnId, Wake};
use crate::worker::WorkerId;

impl Engine {
    /// Fork the pull's worker; its progress messages wake `conn`.
    pub fn spawn_pull(&mut self, conn: ConnId, job: PullJob) -> std::io::Result<WorkerId> {
        let layout = self.images.layout().clone();
        let worker = self.workers.spawn(Wake::Conn(conn), move |_input, rep| {
            match pull(&layout, job, rep) {
                Ok(s) => crate::json::to_value(&s)
                    .map_err(|e| json!({"kind": "Io", "detail": e.to_string()})),
                Err(e) => Err(e.to_wire()),
            }
        })?;
        self.workers.close_input(worker);
        self.images.begin_worker();
        Ok(worker)
    }

    /// A pull's worker succeeded: point its tags and digest reference at
    /// the image. Returns whether the tag moved (a newer image).
    pub fn finish_pull(&mut self, summary: &PullSummary) -> Result<bool, ImageError> {
        let first = summary
            .load
            .images
            .first()
            .and_then(|i| i.tags.first())
            .cloned()
            .unwrap_or_default();
        // Newer when any tag (or digest reference) pointed elsewhere.
        let newer = summary.load.images.iter().any(|i| {
            i.tags
                .iter()
                .any(|t| self.images.resolve(t).ok().map(|x| &x.id) != Some(&i.id))
        });
        self.images.apply_load(&summary.load)?;
        let shown = familiar(&first);
        let name = Reference::parse(&first)
            .map(|r| r.familiar_name().to_string())
            .unwrap_or_else(|_| shown.clone());
        self.publish(Event::new("image", "pull", &shown).attr("name", &name));
        Ok(newer)
    }

    /// A pull failed or its client left: nothing to index.
    pub fn abort_pull(&mut self) {
        self.images.abort_worker();
    }
}
