//! The vocabulary every layer shares, so that nothing imports upward to
//! reach it: connection ids, responses as handlers build them, and the traits
//! for long responses (bodies produced or consumed over many loop turns, a
//! response decided later, a hijacked duplex stream).
//!
//! The traits are generic over `C`, the context they run against (the
//! engine): this module and `http/` never name it. `engine::Response` is the
//! alias the layers above use.

use std::time::Instant;

/// Index of a connection in the daemon's connection table.
pub type ConnId = usize;

/// Index of an engine task (a multi-step job no connection owns).
pub type TaskId = usize;

/// Whom a wake is for: a connection whose stream has news, or an engine
/// task that can take its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wake {
    Conn(ConnId),
    Task(TaskId),
}

/// What a streaming source says after being pulled.
#[derive(Debug, PartialEq, Eq)]
pub enum Pull {
    /// Output was appended; pull again when the socket has room.
    Data,
    /// Nothing now: pull again when woken through the context's wake list, or at the
    /// given instant.
    Wait(Option<Instant>),
    /// The body is complete.
    End,
    /// The body cannot be completed: close the connection without a proper
    /// end, so the client sees the failure.
    Abort,
}

/// A response body produced over time (event streams, logs, wait, pulls).
pub trait BodySource<C> {
    /// Append the next piece of output to `out`.
    fn pull(&mut self, cx: &mut C, me: ConnId, out: &mut Vec<u8>) -> Pull;
    /// The client went away before the end: release subscriptions.
    fn cancel(&mut self, _cx: &mut C, _me: ConnId) {}
}

/// A body known in full, sent as a chunked stream (so that clients that
/// split JSON messages by chunks, like docker-py, see a stream as from dockerd).
pub struct OnceBody(pub Vec<u8>);

impl<C> BodySource<C> for OnceBody {
    fn pull(&mut self, _cx: &mut C, _me: ConnId, out: &mut Vec<u8>) -> Pull {
        out.append(&mut self.0);
        Pull::End
    }
}

/// A response not known yet (the outcome of a forked job): polled when the
/// connection is woken, until it yields the response to send.
pub trait Pending<C> {
    fn poll(&mut self, cx: &mut C, me: ConnId) -> Option<Response<C>>;
    /// The client went away first.
    fn cancel(&mut self, _cx: &mut C, _me: ConnId) {}
}

/// A connection taken over after the response head (attach, exec): raw
/// bytes both ways, no HTTP framing.
pub trait Hijacked<C> {
    /// The response head has left for the socket (written out in full, on
    /// its own, before any stream byte): a process whose output goes to this
    /// stream may start now. Called once, before the first `pull`.
    fn opened(&mut self, _cx: &mut C, _me: ConnId) {}
    /// Output for the client.
    fn pull(&mut self, cx: &mut C, me: ConnId, out: &mut Vec<u8>) -> Pull;
    /// Input from the client; returns how much was taken (0 pauses reading
    /// until the connection is woken).
    fn input(&mut self, cx: &mut C, me: ConnId, data: &[u8]) -> usize;
    /// The client closed its sending side (CloseWrite).
    fn input_closed(&mut self, cx: &mut C, me: ConnId);
    /// The connection is gone.
    fn cancel(&mut self, cx: &mut C, me: ConnId);
}

/// A request body consumed as it arrives (image load, import).
pub trait BodySink<C> {
    /// Take a prefix of `data`; returns how much was taken. Taking nothing
    /// pauses the upload until the sink wakes the connection.
    fn write(&mut self, cx: &mut C, me: ConnId, data: &[u8]) -> Result<usize, Response<C>>;
    /// The whole body has arrived.
    fn finish(self: Box<Self>, cx: &mut C, me: ConnId) -> Response<C>;
    /// The client went away mid-upload: undo partial work.
    fn cancel(self: Box<Self>, _cx: &mut C, _me: ConnId) {}
}

pub enum Body<C> {
    Empty,
    Bytes(Vec<u8>),
    /// Bytes the handler keeps too (a cached answer): copied straight into
    /// the connection's buffer, no allocation per request.
    Shared(std::rc::Rc<[u8]>),
    Stream(Box<dyn BodySource<C>>),
    /// Not a body: the whole response comes later (see `Pending`).
    Later(Box<dyn Pending<C>>),
    /// After the head, the connection becomes a raw stream.
    Hijack(Box<dyn Hijacked<C>>),
}

pub struct Response<C> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body<C>,
}

impl<C> Response<C> {
    pub fn new(status: u16) -> Response<C> {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response<C> {
        let mut body = crate::json::bytes(value);
        body.push(b'\n');
        Response::new(status)
            .header("Content-Type", "application/json")
            .bytes(body)
    }

    pub fn text(status: u16, text: &str) -> Response<C> {
        Response::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .bytes(text.as_bytes().to_vec())
    }

    pub fn stream(status: u16, content_type: &str, source: Box<dyn BodySource<C>>) -> Response<C> {
        let mut r = Response::new(status).header("Content-Type", content_type);
        r.body = Body::Stream(source);
        r
    }

    /// Take the connection over after this head.
    pub fn hijack(status: u16, h: Box<dyn Hijacked<C>>) -> Response<C> {
        let mut r = Response::new(status);
        r.body = Body::Hijack(h);
        r
    }

    /// A response decided later; nothing is written until it is.
    pub fn later(pending: Box<dyn Pending<C>>) -> Response<C> {
        let mut r = Response::new(0);
        r.body = Body::Later(pending);
        r
    }

    pub fn header(mut self, name: &str, value: &str) -> Response<C> {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn bytes(mut self, body: Vec<u8>) -> Response<C> {
        self.body = Body::Bytes(body);
        self
    }

    pub fn shared(mut self, body: std::rc::Rc<[u8]>) -> Response<C> {
        self.body = Body::Shared(body);
        self
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(name))
    }
}
