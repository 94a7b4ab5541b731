//! `POST /commit` (`docker commit`): query parameters and the optional
//! config body decoded here; the engine freezes the container and starts
//! the worker; the answer (`{"Id"}`) waits for it.

use crate::json;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::Call;
use crate::engine::commit::{CommitError, CommitJob, CommitRequest};
use crate::engine::{Engine, Response};
use crate::reply::{ConnId, Pending};

impl From<CommitError> for ApiError {
    fn from(e: CommitError) -> ApiError {
        match e {
            CommitError::Container(c) => c.into(),
            CommitError::Image(i) => i.into(),
        }
    }
}

pub fn commit(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let text = |k: &str| q.get(k).unwrap_or("").to_string();
    let opt = |k: &str| q.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    // dockerd: `pause` defaults to true since API 1.13.
    let pause = match q.get("pause") {
        None | Some("") => call.version >= super::router::ApiVersion(1, 13),
        Some(_) => q.bool("pause"),
    };
    let config = match serde_json::from_slice::<Value>(&call.body) {
        _ if call.body.iter().all(u8::is_ascii_whitespace) => None,
        Ok(Value::Object(m)) if !m.is_empty() => Some(m),
        Ok(Value::Object(_)) | Ok(Value::Null) => None,
        Ok(_) => {
            return Err(ApiError::InvalidParameter(
                "json: cannot unmarshal into Go value of type container.Config".into(),
            ))
        }
        Err(e) => return Err(ApiError::InvalidParameter(e.to_string())),
    };
    let req = CommitRequest {
        container: text("container"),
        repo: opt("repo"),
        tag: opt("tag"),
        comment: text("comment"),
        author: text("author"),
        changes: q.get_all("changes").map(str::to_string).collect(),
        pause,
        config: config.map(normalise),
    };
    let job = call.engine.container_commit(call.conn, req)?;
    Ok(Response::later(Box::new(CommitAnswer { job })))
}

/// A body config's null fields are absent ones (Go's zero values).
fn normalise(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter().filter(|(_, v)| !v.is_null()).collect()
}

struct CommitAnswer {
    job: CommitJob,
}

impl Pending<Engine> for CommitAnswer {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        engine.workers.take_messages(self.job.worker);
        let outcome = engine.workers.take_outcome(self.job.worker)?;
        Some(match engine.finish_commit(&self.job, outcome) {
            Ok(id) => Response::json(201, &json!({ "Id": id })),
            Err(e) => ApiError::from(e).into_response(),
        })
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        // The client left: the worker is stopped (its temporary files are
        // removed when it is reaped) and the container thawed.
        engine.workers.kill(self.job.worker);
        engine.images.abort_worker();
        engine.finish_commit_cancelled(&self.job);
    }
}
