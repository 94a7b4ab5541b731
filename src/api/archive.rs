//! `/containers/{id}/archive` (`docker cp`): HEAD answers a path's stat in
//! `X-Docker-Container-Path-Stat`, GET streams its tar, PUT extracts the
//! request body. The work runs in workers (`engine/archive.rs`); these
//! handlers read the query and shape the answers.

use serde_json::Value;

use super::error::ApiError;
use super::{key, Call};
use crate::container::archive::{ArchiveError, PathStat, Target};
use crate::engine::archive::PutOptions;
use crate::engine::{Engine, Response};
use crate::http::handler::Begin;
use crate::reply::Body;
use crate::streams::upload::{FirstLine, UploadSink};
use crate::streams::worker_body::{WorkerAnswer, WorkerBody};
use crate::worker::Outcome;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn target(call: &Call) -> Result<Target, ApiError> {
    let path = call
        .req
        .query
        .get("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::InvalidParameter("bad parameter: path cannot be empty".into()))?;
    Ok(Target {
        path: path.to_string(),
        container: key(call),
    })
}

/// A worker's error value back into its typed form.
fn worker_error(v: Value) -> ApiError {
    match crate::json::from_value::<ArchiveError>(&v) {
        Ok(e) => e.into(),
        Err(_) => ApiError::Internal("archive worker failed".into()),
    }
}

/// `HEAD /containers/{id}/archive`.
pub fn head(call: &mut Call) -> Result<Response, ApiError> {
    let t = target(call)?;
    let worker = call.engine.archive_stat(call.conn, t)?;
    Ok(Response::later(Box::new(WorkerAnswer {
        worker,
        finish: head_done,
    })))
}

fn head_done(_engine: &mut Engine, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Done(stat) => Response::new(200)
            .header("Content-Type", "application/json")
            .header(STAT_HEADER, &stat_header(stat)),
        Outcome::Failed(e) => worker_error(e).into_response(),
        Outcome::Died(m) => ApiError::Internal(m).into_response(),
    }
}

/// `GET /containers/{id}/archive`: the stat line decides the head.
pub fn get(call: &mut Call) -> Result<Response, ApiError> {
    let t = target(call)?;
    let (id, worker) = call.engine.archive_get(call.conn, t)?;
    Ok(Response::later(Box::new(FirstLine::new(
        worker, id, get_head,
    ))))
}

fn get_head(engine: &mut Engine, id: &str, first: Option<Value>, body: WorkerBody) -> Response {
    let Some(first) = first else {
        return ApiError::Internal("archive worker failed".into()).into_response();
    };
    if let Some(e) = first.get("error") {
        return worker_error(e.clone()).into_response();
    }
    let stat = first.get("stat").cloned().unwrap_or(Value::Null);
    let mut r = Response::new(200)
        .header("Content-Type", "application/x-tar")
        .header(STAT_HEADER, &stat_header(stat));
    r.body = Body::Stream(Box::new(body));
    engine.container_event(id, "archive-path", &[]);
    r
}

/// `PUT /containers/{id}/archive`: the body streams into the worker.
pub fn put(call: &mut Call) -> Result<Begin<Engine>, ApiError> {
    let t = target(call)?;
    let q = &call.req.query;
    let opts = PutOptions {
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir"),
        copy_uid_gid: q.bool("copyUIDGID"),
    };
    let worker = call.engine.archive_put(call.conn, t, opts)?;
    Ok(Begin::Sink(Box::new(UploadSink {
        worker,
        broken: false,
        finish: put_done,
    })))
}

fn put_done(engine: &mut Engine, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Done(id) => {
            engine.container_event(id.as_str().unwrap_or(""), "extract-to-dir", &[]);
            Response::new(200)
        }
        Outcome::Failed(e) => worker_error(e).into_response(),
        Outcome::Died(m) => ApiError::Internal(m).into_response(),
    }
}

/// The header's value: the stat in Go's field order, base64.
fn stat_header(stat: Value) -> String {
    let text = crate::json::from_value::<PathStat>(&stat)
        .ok()
        .and_then(|s| serde_json::to_string(&s).ok())
        .unwrap_or_else(|| crate::json::text(&stat));
    crate::base64::encode(text.as_bytes())
}
