//! `attach`, `logs` and `resize`: the request decoding (detach keys, stream
//! choice, tail/since/until) and the hijack head; the sessions themselves are
//! in `streams/`.

use std::time::SystemTime;

use super::error::ApiError;
use super::key;
use super::Call;
use crate::container::model::Status;
use crate::engine::Response;
use crate::stdio::jsonlog;
use crate::stdio::jsonlog::LogCursor;
use crate::stdio::stdcopy::{frame, StreamKind};
use crate::streams::attach::AttachSession;
use crate::streams::logs::{LogFilter, LogStream};

/// `POST /containers/{id}/attach`: hijack the connection and stream the
/// container's output (and feed its stdin).
pub fn attach(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let streams = (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"));
    let multiplexed = super::versions::ATTACH_MULTIPLEXED.at(call.version);
    let (session, tty) = attach_session(call, streams, multiplexed)?;
    Ok(hijack_response(call, session, tty))
}

/// `GET /containers/{id}/attach/ws`: the same session over WebSocket
/// frames, never multiplexed (the frames carry stdout and stderr alike).
pub fn attach_ws(call: &mut Call) -> Result<Response, ApiError> {
    let accept = match crate::http::websocket::handshake_key(call.req) {
        Ok(key) => crate::http::websocket::accept_key(key),
        Err(m) => return Err(ApiError::InvalidParameter(m.into())),
    };
    let q = &call.req.query;
    let streams = if super::versions::WS_ATTACH_STREAMS_FROM_QUERY.at(call.version) {
        (q.bool("stdin"), q.bool("stdout"), q.bool("stderr"))
    } else {
        (true, true, true)
    };
    let (session, _) = attach_session(call, streams, false)?;
    let ws = crate::http::websocket::WebSocket::new(Box::new(session));
    Ok(Response::hijack(101, Box::new(ws))
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", &accept))
}

/// An attach session on the container `{id}`: its log backlog (`logs`), and
/// its live output (`stream`); `multiplexed` frames non-TTY output.
fn attach_session(
    call: &mut Call,
    (want_in, want_out, want_err): (bool, bool, bool),
    multiplexed: bool,
) -> Result<(AttachSession, bool), ApiError> {
    let q = &call.req.query;
    let e = call.engine.containers.find(&key(call))?;
    let c = &e.c;
    // As dockerd: only a paused or restarting container refuses an attach.
    // A stopped one is attached to its next run (`docker start -a` attaches
    // first, then starts); "You cannot attach to a stopped container" is
    // the docker CLI's own check, not the daemon's.
    if c.state.status == Status::Paused {
        return Err(ApiError::Conflict(format!(
            "container {} is paused, unpause the container before attach",
            key(call)
        )));
    }
    if c.state.status == Status::Restarting {
        return Err(ApiError::Conflict(format!(
            "container {} is restarting, wait until the container is running",
            key(call)
        )));
    }
    let id = c.id.clone();
    let tty = c.config.tty;
    let multiplexed = multiplexed && !tty;
    let mut backlog = Vec::new();
    if q.bool("logs") {
        for entry in jsonlog::read_all(&call.engine.container_dirs.log_path(&id)) {
            if (entry.kind == StreamKind::Stdout && want_out)
                || (entry.kind == StreamKind::Stderr && want_err)
            {
                frame(&mut backlog, entry.kind, entry.line.as_bytes(), multiplexed);
            }
        }
    }
    let keys = q
        .get("detachKeys")
        .filter(|k| !k.is_empty())
        .unwrap_or(DEFAULT_DETACH_KEYS);
    // Parse everything that can fail before subscribing: an error must
    // not leave a subscription behind.
    let detach_keys = if tty {
        parse_detach_keys(keys)?
    } else {
        Vec::new()
    };
    let stream = q.bool("stream");
    if stream {
        call.engine
            .outputs
            .subscribe(&id, call.conn, want_out, want_err, multiplexed);
    }
    let session = AttachSession {
        key: id,
        backlog,
        backlog_sent: 0,
        stream,
        stdin: want_in && c.config.open_stdin,
        stdin_once: c.config.stdin_once,
        tty,
        exec: None,
        launch: None,
        // As dockerd: detach keys act on a TTY only; without one, stdin is
        // arbitrary bytes and is copied as is.
        detach_keys,
        matched: 0,
        detached: false,
        pending: Vec::new(),
        close_pending: false,
    };
    Ok((session, tty))
}

/// Docker's detach-key syntax ("ctrl-p,ctrl-q", "a,ctrl-z") as bytes.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::InvalidParameter(format!("Invalid detach keys ({spec}) provided"));
    spec.split(',')
        .map(|k| {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let c = c.as_bytes();
                if c.len() != 1 {
                    return Err(bad());
                }
                match c[0].to_ascii_lowercase() {
                    b @ b'a'..=b'z' => Ok(b - b'a' + 1),
                    b'@' => Ok(0),
                    b'[' => Ok(27),
                    b'\\' => Ok(28),
                    b']' => Ok(29),
                    b'^' => Ok(30),
                    b'_' => Ok(31),
                    _ => Err(bad()),
                }
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                Err(bad())
            }
        })
        .collect()
}

pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// The hijacking response for attach and exec start. As dockerd, only an
/// upgraded (101) stream announces the multiplexed type; a 200 says raw.
pub fn hijack_response(call: &Call, session: AttachSession, tty: bool) -> Response {
    let upgrade = call
        .req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp"));
    let content_type = if upgrade && !tty && call.version >= super::router::ApiVersion(1, 42) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    if upgrade {
        Response::hijack(101, Box::new(session))
            .header("Content-Type", content_type)
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp")
    } else {
        Response::hijack(200, Box::new(session)).header("Content-Type", content_type)
    }
}

/// `POST /containers/{id}/resize`.
pub fn resize(call: &mut Call) -> Result<Response, ApiError> {
    let (h, w) = size_params(call)?;
    let e = call.engine.containers.find(&key(call))?;
    let id = e.c.id.clone();
    if !e.c.state.is_alive() {
        return Err(ApiError::Conflict(format!("Container {id} is not running")));
    }
    // As dockerd (containerd resizes a process without a console as a
    // no-op): a container without a TTY answers 200.
    if !call.engine.outputs.has_tty(&id) {
        return Ok(Response::new(200));
    }
    call.engine
        .outputs
        .resize(&id, h, w)
        .map_err(|e| ApiError::Conflict(format!("cannot resize container {id}: {e}")))?;
    Ok(Response::new(200))
}

pub fn size_params(call: &Call) -> Result<(u16, u16), ApiError> {
    let num = |k: &str| -> Result<u16, ApiError> {
        call.req
            .query
            .get(k)
            .unwrap_or("0")
            .parse()
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for {k}")))
    };
    Ok((num("h")?, num("w")?))
}

/// `GET /containers/{id}/logs` (without `follow`, or following until the
/// container's output ends).
pub fn logs(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let (want_out, want_err) = (q.bool("stdout"), q.bool("stderr"));
    if !want_out && !want_err {
        return Err(ApiError::InvalidParameter(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let e = call.engine.containers.find(&key(call))?;
    let id = e.c.id.clone();
    let driver = e.c.host_config.log_config.kind.as_str();
    let driver = if driver.is_empty() {
        call.engine.config.log_driver.as_str()
    } else {
        driver
    };
    if driver == "none" {
        return Err(ApiError::NotImplemented(
            "configured logging driver does not support reading".into(),
        ));
    }
    let multiplexed = !e.c.config.tty;
    let timestamps = q.bool("timestamps");
    let time = |key: &str| -> Result<Option<SystemTime>, ApiError> {
        match q.get(key).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(v) => crate::timefmt::parse_timestamp(v).map(Some).ok_or_else(|| {
                ApiError::InvalidParameter(format!("invalid value for {key}: {v:?}"))
            }),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let tail: Option<usize> =
        match q.get("tail").filter(|t| *t != "all" && !t.is_empty()) {
            None => None,
            // dockerd treats a negative tail as "all".
            Some(t) if t.starts_with('-') && t[1..].parse::<u64>().is_ok() => None,
            Some(t) => Some(t.parse().map_err(|_| {
                ApiError::InvalidParameter(format!("invalid value for tail: {t:?}"))
            })?),
        };
    let filter = LogFilter {
        want_out,
        want_err,
        since,
        until,
        timestamps,
        multiplexed,
    };
    let source = LogStream::new(
        LogCursor::open(&call.engine.container_dirs.log_path(&id)),
        filter,
        tail,
    );
    let follow = q.bool("follow") && call.engine.outputs.is_open(&id);
    if follow {
        call.engine
            .outputs
            .subscribe(&id, call.conn, want_out, want_err, multiplexed);
    }
    let content_type = if multiplexed {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    Ok(Response::stream(
        200,
        content_type,
        Box::new(LogStream { follow, ..source }),
    ))
}
