//! `/images/*`: load, import, save, list, inspect, history, tag, remove,
//! prune. Archive work runs in forked workers; these handlers start them,
//! feed them the request body, and turn their outcome into a response.

use serde_json::{json, Value};

use super::error::ApiError;
use super::Call;
use crate::engine::Engine;
use crate::events::Event;
use crate::http::conn::Begin;
use crate::http::request::Request;
use crate::http::response::{BodySink, ConnId, Pending, Response};
use crate::image::archive_load::{load_archive, LoadSummary};
use crate::image::archive_save::save_archive;
use crate::image::error::{ImageError, WireError};
use crate::image::import::{apply_changes, import_reference, import_rootfs, ImportOptions};
use crate::image::layer_extract::Budget;
use crate::store::images::ListFilters;
use crate::worker::{Outcome, WorkerId};

/// How dockerd names an image in events: the familiar reference.
fn familiar(reference: &str) -> String {
    crate::image::reference::Reference::parse(reference)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| reference.to_string())
}

fn name(call: &Call) -> String {
    call.params.first().cloned().unwrap_or_default()
}

pub fn list(call: &mut Call) -> Result<Response, ApiError> {
    let filters = ListFilters::from_json(call.req.query.get("filters").unwrap_or(""))?;
    let mut rows = call.engine.images.list(&filters)?;
    let all = call.req.query.bool("all");
    let _ = all; // no intermediate images exist: `all` lists the same set.
    if !call.req.query.bool("digests") {
        // dockerd always includes RepoDigests in the summary; keep them.
    }
    rows.sort_by(|a, b| b["Created"].as_i64().cmp(&a["Created"].as_i64()));
    Ok(Response::json(200, &Value::Array(rows)))
}

pub fn inspect(call: &mut Call) -> Result<Response, ApiError> {
    Ok(Response::json(
        200,
        &call.engine.images.inspect(&name(call))?,
    ))
}

pub fn history(call: &mut Call) -> Result<Response, ApiError> {
    Ok(Response::json(
        200,
        &Value::Array(call.engine.images.history(&name(call))?),
    ))
}

pub fn tag(call: &mut Call) -> Result<Response, ApiError> {
    let source = name(call);
    let q = &call.req.query;
    let repo = q
        .get("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::InvalidParameter("repository name must have at least one component".into())
        })?
        .to_string();
    let tag = q.get("tag").filter(|t| !t.is_empty()).map(str::to_string);
    let images = &mut call.engine.images;
    images.tag(&source, &repo, tag.as_deref())?;
    let id = images.resolve(&source)?.id.clone();
    let shown = familiar(&match &tag {
        Some(t) => format!("{repo}:{t}"),
        None => repo.clone(),
    });
    call.engine
        .publish(Event::new("image", "tag", &id).attr("name", &shown));
    Ok(Response::new(201))
}

pub fn remove(call: &mut Call) -> Result<Response, ApiError> {
    let target = name(call);
    let force = call.req.query.bool("force");
    let id = call.engine.images.resolve(&target)?.id.clone();
    let containers = &call.engine.containers;
    let users = |image: &str| containers.using_image(image);
    let records = call.engine.images.delete(&target, force, &users)?;
    for r in &records {
        if let Some(u) = r["Untagged"].as_str() {
            call.engine
                .publish(Event::new("image", "untag", &id).attr("name", u));
        }
        // Layers are listed as Deleted too; dockerd's events name images only.
        if let Some(d) = r["Deleted"].as_str().filter(|d| *d == id) {
            call.engine
                .publish(Event::new("image", "delete", d).attr("name", d));
        }
    }
    Ok(Response::json(200, &Value::Array(records)))
}

pub fn prune(call: &mut Call) -> Result<Response, ApiError> {
    let filters = ListFilters::from_json(call.req.query.get("filters").unwrap_or(""))?;
    let containers = &call.engine.containers;
    let users = |image: &str| containers.using_image(image);
    let report = call.engine.images.prune(&filters, &users)?;
    let reclaimed = report["SpaceReclaimed"].as_u64().unwrap_or(0).to_string();
    call.engine
        .publish(Event::new("image", "prune", "").attr("reclaimed", &reclaimed));
    Ok(Response::json(200, &report))
}

/// `GET /images/{name}/get` and `GET /images/get?names=...`: a docker-save
/// archive streamed from a worker.
pub fn save(call: &mut Call) -> Result<Response, ApiError> {
    let names: Vec<String> = match call.params.first() {
        Some(n) => vec![n.clone()],
        None => call
            .req
            .query
            .get_all("names")
            .map(str::to_string)
            .collect(),
    };
    if names.is_empty() {
        return Err(ApiError::InvalidParameter(
            "no images given (names=...)".into(),
        ));
    }
    let plan = call.engine.images.save_plan(&names)?;
    let layout = call.engine.images.layout().clone();
    let worker = call
        .engine
        .workers
        .spawn_raw(call.conn, move |_input, out| {
            save_archive(&layout, &plan, out.out_file())
                .map(|()| Value::Null)
                .map_err(|e| json!(e.to_string()))
        })?;
    for n in &names {
        if let Ok(img) = call.engine.images.resolve(n) {
            let id = img.id.clone();
            call.engine
                .publish(Event::new("image", "save", &id).attr("name", n));
        }
    }
    Ok(Response::stream(
        200,
        "application/x-tar",
        Box::new(super::worker_body::WorkerBody::new(worker)),
    ))
}

/// The jobs that read a request body (or a URL) and fill the store.
#[derive(Clone)]
enum Job {
    Load,
    Import(ImportOptions),
}

/// `POST /images/load` and `POST /images/create`: decided at the head.
pub fn begin(
    engine: &mut Engine,
    conn: ConnId,
    req: &Request,
    import: bool,
) -> Result<Begin, ApiError> {
    let q = &req.query;
    if !import {
        let worker = spawn_job(engine, conn, Job::Load, None)?;
        return Ok(Begin::Sink(Box::new(JobSink {
            worker,
            job: Job::Load,
            broken: false,
        })));
    }
    if q.get("fromImage").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::NotImplemented(
            "pulling from a registry is not supported by coracle: use docker load or docker import"
                .into(),
        ));
    }
    let src = q
        .get("fromSrc")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::InvalidParameter("fromSrc or fromImage is required".into()))?;
    let opts = ImportOptions {
        repo: q.get("repo").map(str::to_string),
        tag: q.get("tag").map(str::to_string),
        message: q.get("message").map(str::to_string),
        changes: q.get_all("changes").map(str::to_string).collect(),
    };
    // Refuse bad names and changes before reading a byte of the body.
    import_reference(opts.repo.as_deref(), opts.tag.as_deref())?;
    apply_changes(&mut serde_json::Map::new(), &opts.changes)?;
    let job = Job::Import(opts);
    if src == "-" {
        let worker = spawn_job(engine, conn, job.clone(), None)?;
        return Ok(Begin::Sink(Box::new(JobSink {
            worker,
            job,
            broken: false,
        })));
    }
    crate::http::client::check_url(src).map_err(ApiError::InvalidParameter)?;
    if !src.starts_with("http://") {
        return Err(ApiError::InvalidParameter(format!(
            "unsupported fromSrc {src:?}: give - (the request body) or an http:// URL"
        )));
    }
    let worker = spawn_job(engine, conn, job.clone(), Some(src.to_string()))?;
    engine.workers.close_input(worker);
    Ok(Begin::Respond(super::with_common_headers(Response::later(
        Box::new(JobResult { worker, job }),
    ))))
}

fn spawn_job(
    engine: &mut Engine,
    conn: ConnId,
    job: Job,
    url: Option<String>,
) -> Result<WorkerId, ApiError> {
    let layout = engine.images.layout().clone();
    let worker = engine.workers.spawn(conn, move |input, _reporter| {
        let budget = Budget::default();
        let result = match (&job, url) {
            (Job::Load, _) => load_archive(&layout, input, &budget),
            (Job::Import(opts), None) => import_rootfs(&layout, input, opts, &budget),
            (Job::Import(opts), Some(url)) => crate::http::client::get(&url)
                .map_err(|e| ImageError::InvalidArgument(format!("fetch {url}: {e}")))
                .and_then(|body| import_rootfs(&layout, body, opts, &budget)),
        };
        match result {
            Ok(summary) => serde_json::to_value(summary)
                .map_err(|e| json!({"kind": "Io", "detail": e.to_string()})),
            Err(e) => Err(serde_json::to_value(WireError::from(&e)).unwrap_or(Value::Null)),
        }
    })?;
    engine.images.begin_worker();
    Ok(worker)
}

struct JobSink {
    worker: WorkerId,
    job: Job,
    /// The worker stopped reading (it failed): drain the rest of the body
    /// so the client can read the error.
    broken: bool,
}

impl BodySink for JobSink {
    fn write(&mut self, engine: &mut Engine, _me: ConnId, data: &[u8]) -> Result<usize, Response> {
        if self.broken {
            return Ok(data.len());
        }
        match engine.workers.write_input(self.worker, data) {
            Ok(n) => Ok(n),
            Err(_) => {
                self.broken = true;
                engine.workers.close_input(self.worker);
                Ok(data.len())
            }
        }
    }

    fn finish(self: Box<Self>, engine: &mut Engine, _me: ConnId) -> Response {
        engine.workers.close_input(self.worker);
        super::with_common_headers(Response::later(Box::new(JobResult {
            worker: self.worker,
            job: self.job,
        })))
    }

    fn cancel(self: Box<Self>, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
        engine.images.abort_worker();
    }
}

struct JobResult {
    worker: WorkerId,
    job: Job,
}

impl Pending for JobResult {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        engine.workers.take_messages(self.worker);
        let outcome = engine.workers.take_outcome(self.worker)?;
        let result = match outcome {
            Outcome::Done(v) => match serde_json::from_value::<LoadSummary>(v) {
                Ok(summary) => finish_job(engine, &self.job, &summary),
                Err(e) => {
                    engine.images.abort_worker();
                    Err(ApiError::Internal(format!("worker result: {e}")))
                }
            },
            Outcome::Failed(v) => {
                engine.images.abort_worker();
                Err(match serde_json::from_value::<WireError>(v) {
                    Ok(w) => ImageError::from(w).into(),
                    Err(_) => ApiError::Internal("the worker failed".into()),
                })
            }
            Outcome::Died(m) => {
                engine.images.abort_worker();
                Err(ApiError::Internal(m))
            }
        };
        Some(super::with_common_headers(
            result.unwrap_or_else(ApiError::into_response),
        ))
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
        engine.images.abort_worker();
    }
}

fn finish_job(engine: &mut Engine, job: &Job, summary: &LoadSummary) -> Result<Response, ApiError> {
    let lines = engine.images.apply_load(summary)?;
    let action = match job {
        Job::Load => "load",
        Job::Import(_) => "import",
    };
    for li in &summary.images {
        let name = li
            .tags
            .first()
            .map(|t| familiar(t))
            .unwrap_or_else(|| li.id.clone());
        engine.publish(Event::new("image", action, &li.id).attr("name", &name));
    }
    let mut body = Vec::new();
    match job {
        Job::Load => {
            for l in lines {
                body.extend_from_slice(
                    json!({ "stream": format!("{l}\n") }).to_string().as_bytes(),
                );
                body.push(b'\n');
            }
        }
        Job::Import(_) => {
            for li in &summary.images {
                body.extend_from_slice(json!({ "status": li.id }).to_string().as_bytes());
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    Ok(Response::new(200)
        .header("Content-Type", "application/json")
        .bytes(body))
}
