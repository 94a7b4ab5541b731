//! The Engine API: routing and one handler file per resource. Handlers get a
//! parsed request and the engine, and return a `Response`; they never touch
//! sockets.

pub mod containers;
pub mod error;
pub mod events;
pub mod exec;
pub mod filters;
pub mod guard;
pub mod images;
pub mod router;
pub mod system;
pub mod worker_body;

use error::ApiError;
use router::{BodyUse, Endpoint, Resolved};

use crate::engine::Engine;
use crate::http::conn::Begin;
use crate::http::request::{Method, Request};
use crate::http::response::{ConnId, Response};

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

/// A request head has arrived: answer now or ask for its body.
pub fn begin(engine: &mut Engine, conn: ConnId, req: &Request) -> Begin {
    let cors = engine.config.api_cors_header.clone();
    match begin_checked(engine, conn, req) {
        Begin::Respond(r) => Begin::Respond(guard::with_cors(&cors, r)),
        other => other,
    }
}

fn begin_checked(engine: &mut Engine, conn: ConnId, req: &Request) -> Begin {
    let cors = &engine.config.api_cors_header;
    if let Err(e) = guard::check_origin(cors, req) {
        return Begin::Respond(with_common_headers(e.into_response()));
    }
    if req.method == Method::Options && !cors.is_empty() {
        // A browser's CORS preflight, as dockerd answers it.
        return Begin::Respond(with_common_headers(Response::new(200)));
    }
    let resolved = match router::resolve(req) {
        Ok(r) => r,
        Err(e) => return Begin::Respond(with_common_headers(e.into_response())),
    };
    if let Err(e) = guard::check_json(resolved.endpoint, req) {
        return Begin::Respond(with_common_headers(e.into_response()));
    }
    match resolved.endpoint.body_use() {
        BodyUse::Ignore => Begin::Respond(dispatch(engine, conn, req, &resolved, Vec::new())),
        BodyUse::Buffer => Begin::Buffer,
        BodyUse::Stream => {
            let import = resolved.endpoint == Endpoint::ImageCreate;
            images::begin(engine, conn, req, import)
                .unwrap_or_else(|e| Begin::Respond(with_common_headers(e.into_response())))
        }
    }
}

/// A buffered request body is complete.
pub fn handle(engine: &mut Engine, conn: ConnId, req: &Request, body: Vec<u8>) -> Response {
    let cors = engine.config.api_cors_header.clone();
    let resp = match router::resolve(req) {
        Ok(r) => dispatch(engine, conn, req, &r, body),
        Err(e) => with_common_headers(e.into_response()),
    };
    guard::with_cors(&cors, resp)
}

fn dispatch(
    engine: &mut Engine,
    conn: ConnId,
    req: &Request,
    r: &Resolved,
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
    let result = match r.endpoint {
        Endpoint::Ping => system::ping(&mut call),
        Endpoint::Version => system::version(&mut call),
        Endpoint::Info => system::info(&mut call),
        Endpoint::Events => events::stream(&mut call),
        Endpoint::ImageList => images::list(&mut call),
        Endpoint::ImageInspect => images::inspect(&mut call),
        Endpoint::ImageHistory => images::history(&mut call),
        Endpoint::ImageTag => images::tag(&mut call),
        Endpoint::ImageRemove => images::remove(&mut call),
        Endpoint::ImagePrune => images::prune(&mut call),
        Endpoint::ImageSave => images::save(&mut call),
        Endpoint::ContainerCreate => containers::create(&mut call),
        Endpoint::ContainerList => containers::list(&mut call),
        Endpoint::ContainerInspect => containers::inspect(&mut call),
        Endpoint::ContainerStart => containers::start(&mut call),
        Endpoint::ContainerStop => containers::stop(&mut call),
        Endpoint::ContainerRestart => containers::restart(&mut call),
        Endpoint::ContainerKill => containers::kill(&mut call),
        Endpoint::ContainerWait => containers::wait(&mut call),
        Endpoint::ContainerRemove => containers::remove(&mut call),
        Endpoint::ContainerPause => containers::pause(&mut call, true),
        Endpoint::ContainerUnpause => containers::pause(&mut call, false),
        Endpoint::ContainerRename => containers::rename(&mut call),
        Endpoint::ContainerUpdate => containers::update(&mut call),
        Endpoint::ContainerTop => containers::top(&mut call),
        Endpoint::ContainerChanges => containers::changes(&mut call),
        Endpoint::ContainerExport => containers::export(&mut call),
        Endpoint::ContainerPrune => containers::prune(&mut call),
        Endpoint::ContainerAttach => containers::attach(&mut call),
        Endpoint::ContainerLogs => containers::logs(&mut call),
        Endpoint::ContainerResize => containers::resize(&mut call),
        Endpoint::ExecCreate => exec::create(&mut call),
        Endpoint::ExecStart => exec::start(&mut call),
        Endpoint::ExecResize => exec::resize(&mut call),
        Endpoint::ExecInspect => exec::inspect(&mut call),
        // Streamed endpoints are answered through their sinks.
        Endpoint::ImageLoad | Endpoint::ImageCreate => Err(ApiError::Internal(
            "streamed endpoint dispatched as buffered".into(),
        )),
    };
    with_common_headers(result.unwrap_or_else(ApiError::into_response))
}

/// dockerd's error form, used for protocol-level errors too.
pub fn error_response(status: u16, message: &str) -> Response {
    with_common_headers(Response::json(
        status,
        &serde_json::json!({ "message": message }),
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
