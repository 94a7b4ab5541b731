//! `docker build` (classic builder), engine side: one forked worker takes
//! the context (the request body), parses the Dockerfile, then makes each
//! step's image (`build::steps`), reporting as it goes; the daemon indexes
//! each image as its record arrives and tags the last one.

use serde_json::{json, Value};

use super::Engine;
use crate::build::context::{receive, BuildError};
use crate::build::steps::{run, StepEnv};
use crate::image::archive_load::LoadSummary;
use crate::image::reference::Reference;
use crate::reply::{ConnId, Wake};
use crate::worker::{Outcome, WorkerId};

/// What a build request asks for.
pub struct BuildOptions {
    /// The `dockerfile` parameter: the Dockerfile's path in the context.
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub buildargs: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: String,
    pub nocache: bool,
}

fn wire(e: BuildError) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// The worker's first message once the Dockerfile parses: the answer is
/// a 200 stream from then on.
pub const READY: &str = "ready";

impl Engine {
    /// Start the worker the context is fed into (the request body).
    pub fn build_start(
        &mut self,
        conn: ConnId,
        opts: BuildOptions,
    ) -> Result<WorkerId, BuildError> {
        for t in &opts.tags {
            Reference::parse(t).map_err(|e| BuildError::Invalid(e.to_string()))?;
        }
        let layout = self.images.layout().clone();
        let images = &self.images;
        let spawned = self.workers.spawn(Wake::Conn(conn), |input, rep| {
            let dir = layout
                .new_temp_dir()
                .map_err(|e| wire(BuildError::Internal(e.to_string())))?;
            let input = std::io::BufReader::with_capacity(64 * 1024, input);
            let result = receive(input, &dir, &opts.dockerfile).and_then(|(r, df)| {
                let _ = rep.send(&json!({ READY: true }));
                let resolve = |name: &str| {
                    images
                        .resolve(name)
                        .map(|i| (i.id.clone(), i.config.clone()))
                        .map_err(|e| e.to_string())
                };
                let known = |pred: &mut dyn FnMut(&str, &Value) -> bool| {
                    images
                        .images()
                        .find(|i| pred(&i.id, &i.config))
                        .map(|i| (i.id.clone(), i.config.clone()))
                };
                let mut report = |v: Value| {
                    let _ = rep.send(&v);
                };
                let mut env = StepEnv {
                    layout: &layout,
                    resolve: &resolve,
                    report: &mut report,
                    buildargs: opts.buildargs.clone(),
                    labels: opts.labels.clone(),
                    target: opts.target.clone(),
                    context: r.root(),
                    nocache: opts.nocache,
                    known: &known,
                    built: Vec::new(),
                    stages: Vec::new(),
                };
                run(&df, &mut env)
            });
            let _ = std::fs::remove_dir_all(&dir);
            result.map(|id| json!(id)).map_err(wire)
        });
        let worker = spawned.map_err(|e| BuildError::Internal(e.to_string()))?;
        self.images.begin_worker();
        Ok(worker)
    }

    /// A message of the build worker: an image record is indexed (None),
    /// anything else is for the client.
    pub fn build_message(&mut self, msg: Value) -> Option<Value> {
        let Some(rec) = msg.get("image") else {
            return Some(msg);
        };
        match serde_json::from_value::<LoadSummary>(rec.clone()) {
            Ok(s) => {
                self.images.begin_worker();
                if let Err(e) = self.images.apply_load(&s) {
                    log::error!("build: indexing a step's image: {e}");
                }
            }
            Err(e) => log::error!("build: a step's record: {e}"),
        }
        None
    }

    /// The worker's outcome: the final image ID, tagged.
    pub fn build_finish(
        &mut self,
        outcome: Outcome,
        tags: &[String],
    ) -> Result<(String, Vec<String>), BuildError> {
        self.images.abort_worker();
        let id = match outcome {
            Outcome::Done(v) => v.as_str().unwrap_or("").to_string(),
            Outcome::Failed(v) => {
                return Err(serde_json::from_value(v)
                    .unwrap_or_else(|_| BuildError::Internal("the build worker failed".into())))
            }
            Outcome::Died(m) => return Err(BuildError::Internal(m)),
        };
        let mut tagged = Vec::new();
        for t in tags {
            self.images
                .tag(&id, t, None)
                .map_err(|e| BuildError::Internal(e.to_string()))?;
            tagged.push(
                Reference::parse(t)
                    .map(|r| r.with_default_tag().familiar())
                    .unwrap_or_else(|_| t.clone()),
            );
        }
        Ok((id, tagged))
    }
}
