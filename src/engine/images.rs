//! Image jobs that fill the store from a forked worker: `docker load` and
//! `docker import` (from the request body or an http:// URL).

use crate::json;
use serde_json::Value;

use super::Engine;
use crate::events::Event;
use crate::image::archive_load::{load_archive, LoadSummary};
use crate::image::error::{ImageError, WireError};
use crate::image::import::{import_rootfs, ImportOptions};
use crate::image::insert::{insert_file, InsertOptions};
use crate::image::layer_extract::Budget;
use crate::image::reference::familiar;
use crate::reply::ConnId;
use crate::reply::Wake;
use crate::worker::WorkerId;

/// The jobs that read a request body (or a URL) and fill the store.
#[derive(Clone)]
pub enum Job {
    Load,
    Import(ImportOptions),
    /// v1.3's insert: a file from a URL as a new layer on an image.
    Insert(InsertOptions),
}

impl Engine {
    /// Fork the worker for an image job; it reads the request body (or
    /// fetches `url`) and writes into the store's temporary space.
    pub fn spawn_image_job(
        &mut self,
        conn: ConnId,
        job: Job,
        url: Option<String>,
    ) -> std::io::Result<WorkerId> {
        let layout = self.images.layout().clone();
        let worker = self
            .workers
            .spawn(Wake::Conn(conn), move |input, _reporter| {
                let budget = Budget::default();
                let result = match (&job, url) {
                    (Job::Load, _) => load_archive(&layout, input, &budget),
                    (Job::Import(opts), None) => import_rootfs(&layout, input, opts, &budget),
                    (Job::Import(opts), Some(url)) => crate::http::client::get(&url)
                        .map_err(|e| ImageError::InvalidArgument(format!("fetch {url}: {e}")))
                        .and_then(|body| import_rootfs(&layout, body, opts, &budget)),
                    (Job::Insert(opts), _) => crate::http::client::get(&opts.url)
                        .map_err(|e| {
                            ImageError::InvalidArgument(format!("fetch {}: {e}", opts.url))
                        })
                        .and_then(|body| insert_file(&layout, body, opts, &budget)),
                };
                match result {
                    Ok(summary) => crate::json::to_value(&summary)
                        .map_err(|e| json!({"kind": "Io", "detail": e.to_string()})),
                    Err(e) => {
                        Err(crate::json::to_value(&WireError::from(&e)).unwrap_or(Value::Null))
                    }
                }
            })?;
        self.images.begin_worker();
        Ok(worker)
    }

    /// A job's worker succeeded: make its images visible, publish their
    /// events. Returns the load's output lines.
    pub fn finish_image_job(
        &mut self,
        job: &Job,
        summary: &LoadSummary,
    ) -> Result<Vec<String>, ImageError> {
        let lines = self.images.apply_load(summary)?;
        let action = match job {
            Job::Load => "load",
            Job::Import(_) => "import",
            Job::Insert(_) => "insert",
        };
        for li in &summary.images {
            let name = li
                .tags
                .first()
                .map(|t| familiar(t))
                .unwrap_or_else(|| li.id.clone());
            self.publish(Event::new("image", action, &li.id).attr("name", &name));
        }
        Ok(lines)
    }
}
