//! Responses as handlers build them, and the traits for bodies that are
//! produced (streamed out) or consumed (streamed in) over many loop turns.

use std::time::Instant;

use crate::engine::Engine;

/// Index of a connection in the daemon's connection table.
pub type ConnId = usize;

/// What a streaming source says after being pulled.
#[derive(Debug, PartialEq, Eq)]
pub enum Pull {
    /// Output was appended; pull again when the socket has room.
    Data,
    /// Nothing now: pull again when woken through `Engine::wake`, or at the
    /// given instant.
    Wait(Option<Instant>),
    /// The body is complete.
    End,
    /// The body cannot be completed: close the connection without a proper
    /// end, so the client sees the failure.
    Abort,
}

/// A response body produced over time (event streams, logs, wait, pulls).
pub trait BodySource {
    /// Append the next piece of output to `out`.
    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull;
    /// The client went away before the end: release subscriptions.
    fn cancel(&mut self, _engine: &mut Engine, _me: ConnId) {}
}

/// A response not known yet (the outcome of a forked job): polled when the
/// connection is woken, until it yields the response to send.
pub trait Pending {
    fn poll(&mut self, engine: &mut Engine, me: ConnId) -> Option<Response>;
    /// The client went away first.
    fn cancel(&mut self, _engine: &mut Engine, _me: ConnId) {}
}

/// A connection taken over after the response head (attach, exec): raw
/// bytes both ways, no HTTP framing.
pub trait Hijacked {
    /// Output for the client.
    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull;
    /// Input from the client; returns how much was taken (0 pauses reading
    /// until the connection is woken).
    fn input(&mut self, engine: &mut Engine, me: ConnId, data: &[u8]) -> usize;
    /// The client closed its sending side (CloseWrite).
    fn input_closed(&mut self, engine: &mut Engine, me: ConnId);
    /// The connection is gone.
    fn cancel(&mut self, engine: &mut Engine, me: ConnId);
}

/// A request body consumed as it arrives (image load, import).
pub trait BodySink {
    /// Take a prefix of `data`; returns how much was taken. Taking nothing
    /// pauses the upload until the sink wakes the connection.
    fn write(&mut self, engine: &mut Engine, me: ConnId, data: &[u8]) -> Result<usize, Response>;
    /// The whole body has arrived.
    fn finish(self: Box<Self>, engine: &mut Engine, me: ConnId) -> Response;
    /// The client went away mid-upload: undo partial work.
    fn cancel(self: Box<Self>, _engine: &mut Engine, _me: ConnId) {}
}

pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    Stream(Box<dyn BodySource>),
    /// Not a body: the whole response comes later (see `Pending`).
    Later(Box<dyn Pending>),
    /// After the head, the connection becomes a raw stream.
    Hijack(Box<dyn Hijacked>),
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut body = value.to_string().into_bytes();
        body.push(b'\n');
        Response::new(status)
            .header("Content-Type", "application/json")
            .bytes(body)
    }

    pub fn text(status: u16, text: &str) -> Response {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .bytes(text.as_bytes().to_vec())
    }

    pub fn stream(status: u16, content_type: &str, source: Box<dyn BodySource>) -> Response {
        let mut r = Response::new(status).header("Content-Type", content_type);
        r.body = Body::Stream(source);
        r
    }

    /// Take the connection over after this head.
    pub fn hijack(status: u16, h: Box<dyn Hijacked>) -> Response {
        let mut r = Response::new(status);
        r.body = Body::Hijack(h);
        r
    }

    /// A response decided later; nothing is written until it is.
    pub fn later(pending: Box<dyn Pending>) -> Response {
        let mut r = Response::new(0);
        r.body = Body::Later(pending);
        r
    }

    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn bytes(mut self, body: Vec<u8>) -> Response {
        self.body = Body::Bytes(body);
        self
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "UPGRADED",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Frame `data` as one chunk of a chunked response.
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
