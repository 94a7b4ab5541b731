//! The Engine API: the route table (`router.rs`), request decoding and
//! response shapes, one handler file per resource. Handlers get a parsed
//! request and the engine, call the engine's verbs, and shape a `Response`;
//! they never touch sockets. `http` reaches this layer only through the
//! `Handler` implementation below.

pub mod archive;
pub mod attach;
pub mod audited;
pub mod build;
pub mod changes;
pub mod commit;
pub mod container_json;
pub mod containers;
pub mod distribution;
pub mod error;
pub mod events;
pub mod exec;
pub mod filters;
pub mod guard;
pub mod image_json;
pub mod images;
pub mod legacy;
pub mod network_json;
pub mod networks;
pub mod router;
pub mod system;
pub mod system_df;
pub mod versions;
pub mod volumes;

use error::ApiError;
use router::{Handle, HandlerFn, Resolved};

use crate::engine::Engine;
use crate::engine::Response;
use crate::http::handler::{Begin, Handler};
use crate::http::request::{Method, Request};
use crate::reply::ConnId;

pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything a handler may look at.
pub struct Call<'a> {
    pub engine: &'a mut Engine,
    pub conn: ConnId,
    pub req: &'a Request,
    pub params: &'a [String],
    pub version: router::ApiVersion,
    pub body: Vec<u8>,
}

/// The path's first capture (`{id}`, `{name*}`).
fn key(call: &Call) -> String {
    call.params.first().cloned().unwrap_or_default()
}

/// A request head has arrived: answer now or ask for its body.
fn begin(engine: &mut Engine, conn: ConnId, req: &Request) -> Begin<Engine> {
    let cors = engine.config.api_cors_header.clone();
    let verdict = guard::check_access(&engine.access.tokens, req);
    engine.access.pending.remove(&conn);
    let mutating = !matches!(req.method, Method::Get | Method::Head);
    let audit =
        (engine.access.audit.is_some() && (mutating || verdict.refusal.is_some())).then(|| {
            crate::access::AuditCtx {
                peer: req.peer.describe(),
                token: verdict.token.clone(),
                method: guard::method_name(req.method).to_string(),
                path: req.path.clone(),
            }
        });
    let begun = match verdict.refusal {
        Some(e) => {
            if let (401, crate::net::Peer::Tcp(addr)) = (e.status(), req.peer) {
                engine
                    .access
                    .note_failure(addr.ip(), std::time::Instant::now());
            }
            log::info!(
                "refused {} {} from {}: {e}",
                guard::method_name(req.method),
                req.path,
                req.peer.describe()
            );
            let r = e.into_response();
            let r = if r.status == 401 {
                r.header("WWW-Authenticate", "Bearer realm=\"coracle\"")
            } else {
                r
            };
            Begin::Respond(r)
        }
        None => begin_checked(engine, conn, req),
    };
    let begun = match begun {
        Begin::Respond(r) => Begin::Respond(guard::with_cors(&cors, r)),
        other => other,
    };
    match audit {
        Some(ctx) => audited::begin(engine, conn, ctx, begun),
        None => begun,
    }
}

fn begin_checked(engine: &mut Engine, conn: ConnId, req: &Request) -> Begin<Engine> {
    let cors = &engine.config.api_cors_header;
    if let Err(e) = guard::check_origin(cors, req) {
        return Begin::Respond(e.into_response());
    }
    if req.method == Method::Options && !cors.is_empty() {
        // A browser's CORS preflight, as dockerd answers it.
        return Begin::Respond(Response::new(200));
    }
    let resolved = match router::resolve(req) {
        Ok(r) => r,
        Err(e) => return Begin::Respond(e.into_response()),
    };
    if matches!(resolved.handle, Handle::Json(_)) {
        if let Err(e) = guard::check_json(req) {
            return Begin::Respond(e.into_response());
        }
    }
    match resolved.handle {
        Handle::Now(f) => Begin::Respond(dispatch(engine, conn, req, &resolved, f, Vec::new())),
        Handle::Body(_) | Handle::Json(_) => Begin::Buffer(resolved),
        Handle::Stream(f) => {
            let mut call = Call {
                engine,
                conn,
                req,
                params: &resolved.params,
                version: resolved.version,
                body: Vec::new(),
            };
            f(&mut call).unwrap_or_else(|e| Begin::Respond(e.into_response()))
        }
    }
}

fn dispatch(
    engine: &mut Engine,
    conn: ConnId,
    req: &Request,
    r: &Resolved,
    f: HandlerFn,
    body: Vec<u8>,
) -> Response {
    let mut call = Call {
        engine,
        conn,
        req,
        params: &r.params,
        version: r.version,
        body,
    };
    f(&mut call).unwrap_or_else(ApiError::into_response)
}

impl Handler for Engine {
    type Routed = Resolved;

    fn begin(&mut self, conn: ConnId, req: &Request) -> Begin<Engine> {
        begin(self, conn, req)
    }

    /// A buffered request body is complete.
    fn handle(&mut self, conn: ConnId, req: &Request, r: Resolved, body: Vec<u8>) -> Response {
        let cors = self.config.api_cors_header.clone();
        let resp = match r.handle {
            Handle::Body(f) | Handle::Json(f) | Handle::Now(f) => {
                dispatch(self, conn, req, &r, f, body)
            }
            Handle::Stream(_) => {
                ApiError::Internal("streamed endpoint dispatched as buffered".into())
                    .into_response()
            }
        };
        let resp = guard::with_cors(&cors, resp);
        audited::buffered(self, conn, resp)
    }

    fn error_response(status: u16, message: &str) -> Response {
        error_response(status, message)
    }

    fn common_headers(resp: Response) -> Response {
        with_common_headers(resp)
    }
}

/// dockerd's error form, used for protocol-level errors too.
pub fn error_response(status: u16, message: &str) -> Response {
    with_common_headers(Response::json(
        status,
        &crate::json!({ "message": message }),
    ))
}

/// Headers dockerd sends on every response; clients read the API version
/// from them to negotiate.
fn with_common_headers(r: Response) -> Response {
    if r.has_header("Api-Version") {
        return r;
    }
    r.header("Api-Version", &router::MAX_VERSION.to_string())
        .header("Docker-Experimental", "false")
        .header("OSType", "linux")
        .header("Server", &format!("coracle/{SERVER_VERSION} (linux)"))
}

/// A JSON answer computed in a forked worker (tree walks that must not run
/// on the loop) and streamed from it; a worker that fails cuts the
/// connection.
pub(crate) fn json_from_worker(
    call: &mut Call,
    compute: impl FnOnce() -> serde_json::Value,
) -> Result<Response, ApiError> {
    let worker = call.engine.workers.spawn_raw(
        crate::reply::Wake::Conn(call.conn),
        move |_input, out| {
            let mut text = crate::json::bytes(&compute());
            text.push(b'\n');
            std::io::Write::write_all(out.out_file(), &text)
                .map(|()| serde_json::Value::Null)
                .map_err(|e| crate::json!(e.to_string()))
        },
    )?;
    Ok(Response::stream(
        200,
        "application/json",
        Box::new(crate::streams::worker_body::WorkerBody::new(worker)),
    ))
}
