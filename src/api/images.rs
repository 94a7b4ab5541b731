//! `/images/*`: load, import, save, list, inspect, history, tag, remove,
//! prune. Archive work runs in forked workers; these handlers start them,
//! feed them the request body, and turn their outcome into a response.

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::Call;
use crate::engine::images::Job;
use crate::engine::Engine;
use crate::engine::Response;
use crate::events::Event;
use crate::http::handler::Begin;
use crate::http::request::Request;
use crate::image::archive_load::LoadSummary;
use crate::image::archive_save::save_archive;
use crate::image::error::{ImageError, WireError};
use crate::image::import::{apply_changes, import_reference, ImportOptions};
use crate::image::reference::familiar;
use crate::reply::Wake;
use crate::reply::{ConnId, OnceBody};
use crate::store::images::ListFilters;
use crate::streams::job::{JobResult, JobSink};
use crate::worker::Outcome;

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
    crate::sort::sort_by(&mut rows, |a, b| {
        b["Created"].as_i64().cmp(&a["Created"].as_i64())
    });
    let rows = super::versions::IMAGE_LIST.render(call.version, Value::Array(rows));
    Ok(Response::json(200, &rows))
}

pub fn inspect(call: &mut Call) -> Result<Response, ApiError> {
    let v = call.engine.images.inspect(&name(call))?;
    Ok(Response::json(
        200,
        &super::versions::IMAGE_INSPECT.render(call.version, v),
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
    // `until` is a prune filter only (`docker system prune --filter until=`).
    let raw = call.req.query.get("filters").unwrap_or("");
    let mut until = None;
    let mut rest = super::filters::parse(Some(raw), &["dangling", "label", "until"])?;
    if let Some(t) = super::filters::until(&rest)? {
        until = Some(crate::timefmt::unix_nanos(t) / 1_000_000_000);
    }
    rest.remove("until");
    let rest = serde_json::to_string(&rest).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut filters = ListFilters::from_json(&rest)?;
    filters.until = until;
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
        .spawn_raw(Wake::Conn(call.conn), move |_input, out| {
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
        Box::new(crate::streams::worker_body::WorkerBody::new(worker)),
    ))
}

/// `POST /images/load`: the archive streams into a worker.
pub fn load(call: &mut Call) -> Result<Begin<Engine>, ApiError> {
    begin(call.engine, call.conn, call.req, false)
}

/// `POST /images/create`: `docker import` (from the body or a URL); pulls
/// are refused.
pub fn create(call: &mut Call) -> Result<Begin<Engine>, ApiError> {
    begin(call.engine, call.conn, call.req, true)
}

fn begin(
    engine: &mut Engine,
    conn: ConnId,
    req: &Request,
    import: bool,
) -> Result<Begin<Engine>, ApiError> {
    let q = &req.query;
    if !import {
        let worker = engine.spawn_image_job(conn, Job::Load, None)?;
        return Ok(Begin::Sink(Box::new(JobSink {
            worker,
            job: Job::Load,
            broken: false,
            finish: job_response,
        })));
    }
    if q.get("fromImage").is_some_and(|s| !s.is_empty()) {
        return super::distribution::pull(engine, conn, req);
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
        let worker = engine.spawn_image_job(conn, job.clone(), None)?;
        return Ok(Begin::Sink(Box::new(JobSink {
            worker,
            job,
            broken: false,
            finish: job_response,
        })));
    }
    crate::http::client::check_url(src).map_err(ApiError::InvalidParameter)?;
    if !src.starts_with("http://") {
        return Err(ApiError::InvalidParameter(format!(
            "unsupported fromSrc {src:?}: give - (the request body) or an http:// URL"
        )));
    }
    let worker = engine.spawn_image_job(conn, job.clone(), Some(src.to_string()))?;
    engine.workers.close_input(worker);
    Ok(Begin::Respond(Response::later(Box::new(JobResult {
        worker,
        job,
        finish: job_response,
    }))))
}

/// A load's or import's answer from its worker's outcome: the store is
/// committed (or the job's leftovers dropped) and the output shaped.
pub(super) fn job_response(engine: &mut Engine, job: &Job, outcome: Outcome) -> Response {
    let result = match outcome {
        Outcome::Done(v) => match crate::json::from_value::<LoadSummary>(&v) {
            Ok(summary) => finish_job(engine, job, &summary),
            Err(e) => {
                engine.images.abort_worker();
                Err(ApiError::Internal(format!("worker result: {e}")))
            }
        },
        Outcome::Failed(v) => {
            engine.images.abort_worker();
            Err(match crate::json::from_value::<WireError>(&v) {
                Ok(w) => ImageError::from(w).into(),
                Err(_) => ApiError::Internal("the worker failed".into()),
            })
        }
        Outcome::Died(m) => {
            engine.images.abort_worker();
            Err(ApiError::Internal(m))
        }
    };
    match (job, result) {
        (_, Ok(r)) => r,
        // As dockerd: once the upload is read, a load's failure (a bad
        // archive) is a 200 whose stream carries the error (docker-py raises
        // `ImageLoadError` from it).
        (Job::Load, Err(e)) => {
            let msg = e.to_string();
            let mut body =
                crate::json::bytes(&json!({ "errorDetail": { "message": msg }, "error": msg }));
            body.extend_from_slice(b"\r\n");
            Response::stream(200, "application/json", Box::new(OnceBody(body)))
        }
        (_, Err(e)) => e.into_response(),
    }
}

fn finish_job(engine: &mut Engine, job: &Job, summary: &LoadSummary) -> Result<Response, ApiError> {
    let lines = engine.finish_image_job(job, summary)?;
    let mut body = Vec::new();
    match job {
        Job::Load => {
            // dockerd's stream: one JSON message per line, `\r\n` after each,
            // chunked.
            for l in lines {
                body.extend_from_slice(&crate::json::bytes(&json!({ "stream": format!("{l}\n") })));
                body.extend_from_slice(b"\r\n");
            }
            return Ok(Response::stream(
                200,
                "application/json",
                Box::new(OnceBody(body)),
            ));
        }
        Job::Insert(_) => {
            // v1.3's stream: the status, then the new image's ID.
            body.extend_from_slice(br#"{"status":"Inserting..."}"#);
            body.extend_from_slice(b"\r\n");
            for li in &summary.images {
                let id = li.id.trim_start_matches("sha256:");
                body.extend_from_slice(&crate::json::bytes(&json!({ "status": id })));
                body.extend_from_slice(b"\r\n");
            }
        }
        Job::Import(_) => {
            for li in &summary.images {
                body.extend_from_slice(&crate::json::bytes(&json!({ "status": li.id })));
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    Ok(Response::new(200)
        .header("Content-Type", "application/json")
        .bytes(body))
}
