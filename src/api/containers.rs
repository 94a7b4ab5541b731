//! `/containers/*` lifecycle handlers: create, start, stop, restart, kill,
//! remove, pause, rename, update, wait, prune, top, export. Thin: decode the
//! request, call the engine's verb, shape the answer.

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::{key, Call};
use crate::container::model::{Container, Status};
use crate::engine::{Engine, Response};
use crate::reply::Wake;
use crate::streams::stats::StatsStream;
use crate::streams::wait::{
    until_created, until_paused, until_started, until_stopped, Done, WaitFor, WaitStream,
};
use crate::streams::worker_body::{FinishingAnswer, WorkerAnswer};
use crate::worker::Outcome;

fn timeout_param(call: &Call) -> Result<Option<i64>, ApiError> {
    match call.req.query.get("t").filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for t: {t:?}"))),
    }
}

pub fn create(call: &mut Call) -> Result<Response, ApiError> {
    let name = call.req.query.get("name").map(str::to_string);
    if let Some(p) = call.req.query.get("platform").filter(|p| !p.is_empty()) {
        let (os, arch) = crate::image::import::host_platform();
        if !p.starts_with(os) || (p.contains('/') && !p.contains(arch)) {
            return Err(ApiError::InvalidParameter(format!(
                "requested platform {p:?} does not match this host ({os}/{arch})"
            )));
        }
    }
    // Answered once a worker has written and synced its directory.
    let seq = call
        .engine
        .container_create_later(&call.body, name.as_deref())?;
    Ok(until_created(
        call.engine,
        call.conn,
        seq,
        created,
        start_failed,
    ))
}

fn created(id: String, warnings: Vec<String>) -> Response {
    Response::json(201, &json!({ "Id": id, "Warnings": warnings }))
}

pub fn start(call: &mut Call) -> Result<Response, ApiError> {
    if super::versions::START_HOST_CONFIG.at(call.version) {
        call.engine
            .container_start_host_config(&key(call), &call.body)?;
    }
    call.engine.container_start(&key(call))?;
    // Answered once the process exec'd (or its setup failed).
    match call.engine.containers.resolve(&key(call)) {
        Ok(id) => Ok(until_started(
            call.engine,
            call.conn,
            &id,
            started,
            start_failed,
        )),
        Err(_) => Ok(Response::new(204)),
    }
}

fn started() -> Response {
    Response::new(204)
}

pub(super) fn start_failed(e: crate::container::error::ContainerError) -> Response {
    ApiError::from(e).into_response()
}

pub fn stop(call: &mut Call) -> Result<Response, ApiError> {
    let t = timeout_param(call)?;
    let signal = call.req.query.get("signal").map(str::to_string);
    let id = call
        .engine
        .container_stop(&key(call), t, signal.as_deref())?;
    Ok(until_stopped(call.engine, call.conn, id, Done::Stopped))
}

pub fn restart(call: &mut Call) -> Result<Response, ApiError> {
    let t = timeout_param(call)?;
    let signal = call.req.query.get("signal").map(str::to_string);
    match call
        .engine
        .container_restart(&key(call), t, signal.as_deref())?
    {
        Some(id) => Ok(until_stopped(call.engine, call.conn, id, Done::Restarted)),
        // It was not running: started now, answered once it exec'd.
        None => match call.engine.containers.resolve(&key(call)) {
            Ok(id) => Ok(until_started(
                call.engine,
                call.conn,
                &id,
                started,
                start_failed,
            )),
            Err(_) => Ok(Response::new(204)),
        },
    }
}

pub fn kill(call: &mut Call) -> Result<Response, ApiError> {
    let signal = call.req.query.get("signal").map(str::to_string);
    match call.engine.container_kill(&key(call), signal.as_deref())? {
        // SIGKILL: answered once the container has exited, as dockerd.
        Some(id) => Ok(until_stopped(call.engine, call.conn, id, Done::Stopped)),
        None => Ok(Response::new(204)),
    }
}

pub fn remove(call: &mut Call) -> Result<Response, ApiError> {
    let force = call.req.query.bool("force");
    if call.req.query.bool("link") {
        call.engine.container_remove_link(&key(call))?;
        return Ok(Response::new(204));
    }
    let with_volumes = call.req.query.bool("v");
    if with_volumes {
        call.engine.remove_volumes_with(&key(call), true);
    }
    let removed = call.engine.container_remove(&key(call), force);
    if removed.is_err() && with_volumes {
        call.engine.remove_volumes_with(&key(call), false);
    }
    match removed? {
        None => Ok(Response::new(204)),
        Some(id) => Ok(until_stopped(call.engine, call.conn, id, Done::Removed)),
    }
}

pub fn pause(call: &mut Call) -> Result<Response, ApiError> {
    match call.engine.container_pause(&key(call), true)? {
        None => Ok(Response::new(204)),
        Some(id) => Ok(until_paused(call.engine, call.conn, id, pause_failed)),
    }
}

pub fn unpause(call: &mut Call) -> Result<Response, ApiError> {
    call.engine.container_pause(&key(call), false)?;
    Ok(Response::new(204))
}

/// A pause whose freezer gave up: dockerd's 500 with the reason.
fn pause_failed(message: String) -> Response {
    ApiError::Internal(message).into_response()
}

pub fn rename(call: &mut Call) -> Result<Response, ApiError> {
    let name = call.req.query.get("name").unwrap_or("").to_string();
    call.engine.container_rename(&key(call), &name)?;
    Ok(Response::new(204))
}

pub fn update(call: &mut Call) -> Result<Response, ApiError> {
    let warnings = call.engine.container_update(&key(call), &call.body)?;
    Ok(Response::json(200, &json!({ "Warnings": warnings })))
}

/// The wait body's shape: `{"StatusCode": 0, "Error": null}`.
fn wait_body(code: i32, error: &str) -> Value {
    let err = if error.is_empty() {
        Value::Null
    } else {
        json!({ "Message": error })
    };
    json!({ "StatusCode": code, "Error": err })
}

/// `POST /containers/{id}/wait`: the head goes out at once; the body when
/// the condition is met (as dockerd does).
pub fn wait(call: &mut Call) -> Result<Response, ApiError> {
    let condition = match call.req.query.get("condition").unwrap_or("") {
        "" | "not-running" => WaitFor::NotRunning,
        "next-exit" => WaitFor::NextExit,
        "removed" => WaitFor::Removed,
        other => {
            return Err(ApiError::InvalidParameter(format!(
                "invalid condition: {other:?}"
            )))
        }
    };
    let e = call.engine.containers.find(&key(call))?;
    let (id, exits) = (e.c.id.clone(), e.exits);
    call.engine.containers.waiters.insert(call.conn);
    Ok(Response::stream(
        200,
        "application/json",
        Box::new(WaitStream {
            id,
            exits,
            condition,
            shape: wait_body,
        }),
    ))
}

pub fn prune(call: &mut Call) -> Result<Response, ApiError> {
    let filters = super::filters::parse(call.req.query.get("filters"), &["label", "until"])?;
    let until = super::filters::until(&filters)?;
    let label_ok = |c: &Container| match filters.get("label") {
        None => true,
        Some(ls) => ls
            .iter()
            .all(|v| crate::label::matches(v, |k| c.config.labels.get(k).map(String::as_str))),
    };
    let victims: Vec<String> = call
        .engine
        .containers
        .iter()
        .filter(|e| !e.c.state.is_alive() && e.c.state.status != Status::Restarting)
        .filter(|e| label_ok(&e.c))
        .filter(|e| {
            until.is_none_or(|u| {
                crate::timefmt::parse_timestamp(&e.c.created).is_some_and(|c| c < u)
            })
        })
        .map(|e| e.c.id.clone())
        .collect();
    // The victims go now; their trees are sized and deleted by a worker,
    // and the answer waits for it.
    let worker = call
        .engine
        .container_prune(victims, Wake::Conn(call.conn))?;
    Ok(Response::later(Box::new(FinishingAnswer(
        WorkerAnswer {
            worker,
            finish: prune_done,
        },
        "pruned containers",
    ))))
}

fn prune_done(engine: &mut Engine, outcome: Outcome) -> Response {
    let v = match outcome {
        Outcome::Done(v) => v,
        Outcome::Failed(v) => return ApiError::Internal(crate::json::text(&v)).into_response(),
        Outcome::Died(m) => return ApiError::Internal(m).into_response(),
    };
    let reclaimed = v["reclaimed"].as_u64().unwrap_or(0);
    engine.publish(
        crate::events::Event::new("container", "prune", "")
            .attr("reclaimed", &reclaimed.to_string()),
    );
    Response::json(
        200,
        &json!({ "ContainersDeleted": v["deleted"], "SpaceReclaimed": reclaimed }),
    )
}

/// `GET /containers/{id}/top`: the cgroup's processes, in `ps -ef` columns.
/// `GET /containers/{id}/top?ps_args=`: `ps`'s table for the container's
/// processes, read from /proc (`procps`).
pub fn top(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    let Some(live) = e.live.as_ref().filter(|_| e.c.state.is_alive()) else {
        return Err(ApiError::Conflict(format!(
            "container {} is not running",
            e.c.id
        )));
    };
    let mut pids = live.cgroup.as_ref().map(|cg| cg.pids()).unwrap_or_default();
    if pids.is_empty() {
        pids.push(live.pid.as_raw());
    }
    crate::sort::sort(&mut pids);
    let ps_args = call.req.query.get("ps_args").unwrap_or("");
    let (titles, rows) = crate::procps::table(ps_args, &pids)?;
    let table = json!({ "Titles": titles, "Processes": rows });
    Ok(Response::json(
        200,
        &super::versions::CONTAINER_TOP.render(call.version, table),
    ))
}

/// `GET /containers/{id}/stats`: `stream` (default true) sends a reading
/// every second; otherwise one, after a second's interval for the CPU delta
/// unless `one-shot`.
pub fn stats(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let stream = q.get("stream").is_none() || q.bool("stream");
    let one_shot = call.version >= super::router::ApiVersion(1, 41) && q.bool("one-shot");
    let e = call.engine.containers.find(&key(call))?;
    if stream && one_shot {
        return Err(ApiError::InvalidParameter(
            "cannot have stream=true and one-shot=true".into(),
        ));
    }
    let session = StatsStream::new(e.c.id.clone(), e.c.name.clone(), stream, one_shot);
    Ok(Response::stream(200, "application/json", Box::new(session)))
}

/// `GET /containers/{id}/export`: the merged rootfs as a tar, written by a
/// worker that mounts it privately.
pub fn export(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    let id = e.c.id.clone();
    let upper = call.engine.container_dirs.upper(&id);
    let merged = call.engine.container_dirs.dir(&id).join(".export");
    let lowers = call.engine.images.lower_dirs(&e.c.image)?;
    let ids = call.engine.archive_ids(&id);
    let worker = call
        .engine
        .workers
        .spawn_raw(Wake::Conn(call.conn), move |_input, out| {
            let file = out.out_file();
            crate::container::export::write_rootfs_tar(&upper, &lowers, &merged, ids.as_ref(), file)
                .map(|()| Value::Null)
                .map_err(|e| json!(e.to_string()))
        })?;
    call.engine.container_event(&id, "export", &[]);
    Ok(Response::stream(
        200,
        "application/x-tar",
        Box::new(crate::streams::worker_body::WorkerBody::new(worker)),
    ))
}
