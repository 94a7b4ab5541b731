//! `/containers/{id}/exec` and `/exec/{id}/*`.

use crate::json;
use serde::Deserialize;

use super::attach::{hijack_response, parse_detach_keys, size_params, DEFAULT_DETACH_KEYS};
use super::error::ApiError;
use super::{key, Call};
use crate::engine::Response;
use crate::streams::attach::{AttachSession, ExecLaunch};

pub fn create(call: &mut Call) -> Result<Response, ApiError> {
    let id = call.engine.exec_create(&key(call), &call.body)?;
    Ok(Response::json(201, &json!({ "Id": id })))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartRequest {
    detach: bool,
    /// Framing only: raw with a TTY, multiplexed without (dockerd's rule).
    tty: Option<bool>,
    console_size: Option<Vec<u16>>,
}

/// `POST /exec/{id}/start`: detached, or hijacked like attach. As dockerd,
/// the process runs with the TTY its create asked for, the start's `Tty`
/// (default false) picks raw or multiplexed framing, and the process starts
/// only once the response head has been written (`AttachSession::opened`).
pub fn start(call: &mut Call) -> Result<Response, ApiError> {
    let id = key(call);
    let req: StartRequest = if call.body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))?
    };
    let console = match req.console_size.as_deref() {
        Some([h, w]) => Some((*h, *w)),
        _ => None,
    };
    if req.detach {
        call.engine.exec_start(&id, console)?;
        // Answered once the process exec'd (or its setup failed).
        return Ok(crate::streams::wait::until_started(
            call.engine,
            call.conn,
            &id,
            detached_started,
            super::containers::start_failed,
        ));
    }
    call.engine.exec_startable(&id)?;
    let ex = call
        .engine
        .execs
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("No such exec instance: {id}")))?;
    let cfg = &ex.config;
    let framed_tty = req.tty.unwrap_or(false);
    let keys = if cfg.detach_keys.is_empty() {
        DEFAULT_DETACH_KEYS.to_string()
    } else {
        cfg.detach_keys.clone()
    };
    // Detach keys act on a TTY only (as dockerd).
    let detach_keys = if cfg.tty {
        parse_detach_keys(&keys)?
    } else {
        Vec::new()
    };
    let session = AttachSession {
        key: id.clone(),
        backlog: Vec::new(),
        backlog_sent: 0,
        stream: true,
        stdin: cfg.attach_stdin,
        // An exec's stdin closes when the client stops sending (docker exec -i).
        stdin_once: true,
        tty: cfg.tty,
        exec: Some(id.clone()),
        launch: Some(ExecLaunch {
            stdout: cfg.attach_stdout,
            stderr: cfg.attach_stderr,
            multiplexed: !framed_tty,
            console,
        }),
        detach_keys,
        matched: 0,
        detached: false,
        pending: Vec::new(),
        close_pending: false,
    };
    if let Some(ex) = call.engine.execs.get_mut(&id) {
        ex.attached = Some(call.conn);
    }
    Ok(hijack_response(call, session, framed_tty))
}

pub fn resize(call: &mut Call) -> Result<Response, ApiError> {
    let (h, w) = size_params(call)?;
    call.engine.exec_resize(&key(call), h, w)?;
    Ok(Response::new(200))
}

pub fn inspect(call: &mut Call) -> Result<Response, ApiError> {
    let (ex, user) = call.engine.exec_inspect(&key(call))?;
    let c = &ex.config;
    Ok(Response::json(
        200,
        &json!({
            "CanRemove": false,
            "ContainerID": ex.container,
            "DetachKeys": c.detach_keys,
            "ExitCode": ex.exit_code,
            "ID": ex.id,
            "OpenStderr": c.attach_stderr,
            "OpenStdin": c.attach_stdin,
            "OpenStdout": c.attach_stdout,
            "ProcessConfig": {
                "arguments": c.cmd.get(1..).unwrap_or_default(),
                "entrypoint": c.cmd.first().cloned().unwrap_or_default(),
                "privileged": c.privileged,
                "tty": c.tty,
                "user": user,
            },
            "Running": ex.running,
            "Pid": ex.pid,
        }),
    ))
}

fn detached_started() -> Response {
    Response::new(200).header("Content-Type", "application/json")
}
