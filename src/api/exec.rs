//! `/containers/{id}/exec` and `/exec/{id}/*`.

use serde::Deserialize;
use serde_json::json;

use super::attach::{hijack_response, parse_detach_keys, size_params, DEFAULT_DETACH_KEYS};
use super::error::ApiError;
use super::{key, Call};
use crate::engine::Response;
use crate::streams::attach::AttachSession;

pub fn create(call: &mut Call) -> Result<Response, ApiError> {
    let id = call.engine.exec_create(&key(call), &call.body)?;
    Ok(Response::json(201, &json!({ "Id": id })))
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartRequest {
    detach: bool,
    tty: Option<bool>,
    console_size: Option<Vec<u16>>,
}

/// `POST /exec/{id}/start`: detached, or hijacked like attach.
pub fn start(call: &mut Call) -> Result<Response, ApiError> {
    let id = key(call);
    let req: StartRequest = if call.body.iter().all(u8::is_ascii_whitespace) {
        StartRequest::default()
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))?
    };
    let ex = call
        .engine
        .execs
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("No such exec instance: {id}")))?;
    let cfg = &ex.config;
    let tty = req.tty.unwrap_or(cfg.tty);
    let (out, err, stdin) = (cfg.attach_stdout, cfg.attach_stderr, cfg.attach_stdin);
    let keys = if cfg.detach_keys.is_empty() {
        DEFAULT_DETACH_KEYS.to_string()
    } else {
        cfg.detach_keys.clone()
    };
    let console = match req.console_size.as_deref() {
        Some([h, w]) => Some((*h, *w)),
        _ => None,
    };
    if req.detach {
        call.engine.exec_start(&id, Some(tty), console)?;
        return Ok(Response::new(200).header("Content-Type", "application/json"));
    }
    // Detach keys act on a TTY only (as dockerd).
    let detach_keys = if tty {
        parse_detach_keys(&keys)?
    } else {
        Vec::new()
    };
    // Subscribe first so no output is missed.
    call.engine
        .outputs
        .subscribe(&id, call.conn, out, err, !tty);
    // As dockerd: a process that cannot be started is reported inside the
    // upgraded stream, so the client reads the exec's exit code (126/127).
    let mut backlog = Vec::new();
    let mut stream = true;
    match call.engine.exec_start(&id, Some(tty), console) {
        Ok(()) => {}
        Err(crate::container::error::ContainerError::StartFailed(msg, _)) => {
            call.engine.outputs.unsubscribe(call.conn);
            let text = format!("OCI runtime exec failed: exec failed: {msg}\r\n");
            crate::stdio::stdcopy::frame(
                &mut backlog,
                crate::stdio::stdcopy::StreamKind::Stdout,
                text.as_bytes(),
                !tty,
            );
            stream = false;
        }
        Err(e) => {
            call.engine.outputs.unsubscribe(call.conn);
            return Err(e.into());
        }
    }
    if let Some(ex) = call.engine.execs.get_mut(&id) {
        ex.attached = Some(call.conn);
    }
    let session = AttachSession {
        key: id.clone(),
        backlog,
        backlog_sent: 0,
        stream,
        stdin,
        // An exec's stdin closes when the client stops sending (docker exec -i).
        stdin_once: true,
        tty,
        exec: Some(id),
        detach_keys,
        matched: 0,
        detached: false,
        pending: Vec::new(),
        close_pending: false,
    };
    Ok(hijack_response(call, session, tty))
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
