//! `POST /build` (the classic builder), `POST /session` and `POST /grpc`
//! (BuildKit, which coracle does not have: both answer a clear error that
//! points at `DOCKER_BUILDKIT=0`).

use super::error::ApiError;
use super::Call;
use crate::build::dockerfile::BUILDKIT_HINT;
use crate::engine::build::BuildOptions;
use crate::engine::{Engine, Response};
use crate::http::handler::Begin;
use crate::streams::upload::UploadSink;
use crate::worker::Outcome;

/// What a BuildKit client is told.
const NO_BUILDKIT: &str = "BuildKit is not supported by this daemon: it has only the classic \
     builder; build with DOCKER_BUILDKIT=0 (or without buildx)";

pub fn session(_call: &mut Call) -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented(NO_BUILDKIT.into()))
}

pub fn grpc(_call: &mut Call) -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented(NO_BUILDKIT.into()))
}

/// A `remote` the classic builder would clone with git.
fn is_git_url(remote: &str) -> bool {
    remote.starts_with("git://")
        || remote.starts_with("git@")
        || remote.starts_with("github.com/")
        || ((remote.starts_with("http://") || remote.starts_with("https://"))
            && (remote.contains(".git#") || remote.ends_with(".git")))
}

/// The checks a build request gets before its context is read.
pub fn check_query(call: &Call) -> Result<(), ApiError> {
    let q = &call.req.query;
    match q.get("version").unwrap_or("") {
        "" | "1" => {}
        "2" => return Err(ApiError::InvalidParameter(NO_BUILDKIT.into())),
        v => {
            return Err(ApiError::InvalidParameter(format!(
                "unsupported builder version: {v}"
            )))
        }
    }
    if q.get("outputs").is_some_and(|o| !o.is_empty() && o != "[]") {
        return Err(ApiError::InvalidParameter(format!(
            "the --output option requires BuildKit. {BUILDKIT_HINT}"
        )));
    }
    if let Some(remote) = q.get("remote").filter(|r| is_git_url(r)) {
        return Err(ApiError::InvalidParameter(format!(
            "git build contexts are not supported by this daemon ({remote}): \
             send the context as a tar, or a tarball or Dockerfile over http://"
        )));
    }
    Ok(())
}

/// `POST /build`: the body (the context) is streamed into a worker.
pub fn build(call: &mut Call) -> Result<Begin<Engine>, ApiError> {
    check_query(call)?;
    let opts = BuildOptions {
        dockerfile: call.req.query.get("dockerfile").unwrap_or("").to_string(),
    };
    let worker = call.engine.build_receive(call.conn, opts)?;
    Ok(Begin::Sink(Box::new(UploadSink {
        worker,
        broken: false,
        finish: received,
    })))
}

/// The context is in and its Dockerfile parses: the steps are next.
fn received(engine: &mut Engine, outcome: Outcome) -> Response {
    match engine.build_received(outcome) {
        Ok(r) => {
            engine.build_discard(r);
            ApiError::NotImplemented(
                "the classic builder's steps are not implemented on this daemon yet (issue 17)"
                    .into(),
            )
            .into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}
