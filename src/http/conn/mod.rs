//! One client connection: the HTTP/1.1 state machine (keep-alive,
//! pipelining, streamed bodies both ways, 100-continue, lingering close) over
//! a non-blocking socket. Requests go to a `Handler`; this file only moves
//! bytes and frames them; the response side is in `out.rs`, the socket
//! reads and writes in `socket_io.rs`.

mod out;
mod socket_io;

use std::time::{Duration, Instant};

use super::body::BodyDecoder;
use super::handler::{Begin, Handler};
use super::limits::{Limits, MAX_BUFFERED_BODY, READ_CHUNK, WRITE_HIGH_WATER};
use super::request::{parse_head, BodyFraming, HeadError, Method, Request};
use crate::net::Stream;
use crate::reply::{BodySink, BodySource, ConnId, Hijacked, Pending};

/// How long we keep reading (and discarding) after our last response before
/// closing, so the client sees that response rather than a reset.
const LINGER: Duration = Duration::from_secs(1);

/// Bytes one connection may send per loop turn before it yields to the
/// others (a client draining a long stream as fast as it is produced would
/// otherwise keep the loop to itself). As much as the output pump reads for
/// a container per turn (`stdio/output.rs`), so an attach keeps up with it.
const TURN_BUDGET: usize = 256 * 1024;

/// The parts of a request the response framing depends on.
#[derive(Clone, Copy)]
struct Exchange {
    head_only: bool,
    minor: u8,
    keep_alive: bool,
}

enum Target<H: Handler> {
    Buffer(H::Routed, Vec<u8>),
    Sink(Box<dyn BodySink<H>>, Vec<u8>),
}

enum State<H: Handler> {
    /// Waiting for (or parsing) the next request head.
    Head,
    Body {
        req: Request,
        ex: Exchange,
        decoder: BodyDecoder,
        target: Target<H>,
    },
    Streaming {
        source: Box<dyn BodySource<H>>,
        ex: Exchange,
        chunked: bool,
    },
    /// A raw duplex stream after a hijacking response.
    Hijacked {
        stream: Box<dyn Hijacked<H>>,
        input_done: bool,
        /// The head has been written out and `Hijacked::opened` called.
        opened: bool,
    },
    /// The response depends on work still running.
    Awaiting {
        pending: Box<dyn Pending<H>>,
        ex: Exchange,
    },
    /// Flush, half-close, drain briefly, then close.
    Closing { linger_until: Option<Instant> },
}

pub struct Conn<H: Handler> {
    pub stream: Stream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    state: State<H>,
    readable: bool,
    writable: bool,
    eof: bool,
    broken: bool,
    /// Pipelined input was thrown away while a stream ran (to keep noticing
    /// the client's hang-up): the connection cannot be reused afterwards.
    dropped_input: bool,
    head_started: Option<Instant>,
    idle_since: Instant,
    /// When input was last read or handed on: a body that stops arriving
    /// times out from here, and the daemon sheds the stalest connection.
    last_progress: Instant,
    wait_until: Option<Instant>,
    /// When a hijacking head was fully written (the stream waits for the
    /// client to read it, at most `HEAD_READ_WAIT`).
    head_flushed: Option<Instant>,
    limits: Limits,
    /// Bytes sent during the current `drive`.
    turn_bytes: usize,
    /// `drive` stopped at `TURN_BUDGET` with work left: drive again next turn.
    more: bool,
    /// Who is at the other end, handed to the handler with each request.
    peer: crate::net::Peer,
}

impl<H: Handler> Conn<H> {
    pub fn new(stream: Stream, limits: Limits, now: Instant) -> Conn<H> {
        Conn {
            peer: stream.peer(),
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            state: State::Head,
            readable: true,
            writable: true,
            eof: false,
            broken: false,
            dropped_input: false,
            head_started: None,
            idle_since: now,
            last_progress: now,
            wait_until: None,
            head_flushed: None,
            limits,
            turn_bytes: 0,
            more: false,
        }
    }

    /// A connection refused for being over the limit: one 503, then close.
    pub fn refuse(stream: Stream, limits: Limits, now: Instant) -> Conn<H> {
        let mut c = Conn::new(stream, limits, now);
        let ex = Exchange {
            head_only: false,
            minor: 1,
            keep_alive: false,
        };
        c.respond(ex, H::error_response(503, "too many connections"), None);
        c
    }

    pub fn set_readable(&mut self) {
        self.readable = true;
    }

    pub fn set_writable(&mut self) {
        self.writable = true;
    }

    /// Whether the last `drive` yielded with work left (cleared by asking).
    pub fn take_more(&mut self) -> bool {
        std::mem::take(&mut self.more)
    }

    /// The earliest instant at which `on_timer` has something to do.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Head if self.rbuf.is_empty() => Some(self.idle_since + self.limits.idle_timeout),
            State::Head => self.head_started.map(|t| t + self.limits.head_timeout),
            State::Streaming { .. } => self.wait_until,
            State::Hijacked { opened: false, .. } => self.wait_until,
            State::Closing { linger_until } => *linger_until,
            // A body that stops arriving: no byte for the head timeout. Not
            // while our sink holds input back (then the client is not late).
            State::Body {
                target: Target::Sink(_, pending),
                ..
            } if !pending.is_empty() => None,
            State::Body { .. } => Some(self.last_progress + self.limits.head_timeout),
            State::Awaiting { .. } | State::Hijacked { .. } => None,
        }
    }

    /// When this connection last made progress, if all it does is wait for
    /// its client (an idle keep-alive, a head or body that stopped arriving,
    /// a close): at the connection limit the daemon sheds the stalest of
    /// these rather than refuse a new client.
    pub fn stalled_since(&self) -> Option<Instant> {
        match &self.state {
            State::Body {
                target: Target::Sink(_, pending),
                ..
            } if !pending.is_empty() => None,
            State::Head | State::Body { .. } | State::Closing { .. } => Some(self.last_progress),
            State::Streaming { .. } | State::Awaiting { .. } | State::Hijacked { .. } => None,
        }
    }

    /// Make all the progress possible now. Returns false when the connection
    /// is finished and must be dropped.
    /// `scratch` is the loop's read buffer (one for all connections: there
    /// is one thread), so reads cost no per-read allocation or zeroing.
    pub fn drive(&mut self, handler: &mut H, me: ConnId, now: Instant, scratch: &mut [u8]) -> bool {
        if let Some(t) = self.deadline() {
            if now >= t && self.expire(now) {
                self.abort(handler, me);
                return false;
            }
        }
        self.turn_bytes = 0;
        loop {
            if self.turn_bytes >= TURN_BUDGET {
                // A fast reader of a long stream: let the loop serve others
                // and come back next turn (`take_more`).
                self.more = true;
                return true;
            }
            let mut progress = self.fill(scratch);
            progress |= self.step(handler, me, now);
            progress |= self.flush();
            if self.broken {
                self.abort(handler, me);
                return false;
            }
            if let State::Closing { linger_until } = &mut self.state {
                if self.wpos == self.wbuf.len() && !self.stream.has_pending_output() {
                    if linger_until.is_none() {
                        self.stream.shutdown_write();
                        *linger_until = Some(now + LINGER);
                    }
                    if self.eof {
                        return false;
                    }
                }
            }
            if !progress {
                return true;
            }
            self.last_progress = now;
        }
    }

    /// A deadline passed; true means close now.
    fn expire(&mut self, now: Instant) -> bool {
        match self.state {
            // A head that never completes (slowloris), an idle keep-alive,
            // or a body that stopped arriving.
            State::Head | State::Body { .. } => true,
            State::Closing { .. } => true,
            State::Streaming { .. } => {
                self.wait_until = None;
                let _ = now;
                false
            }
            State::Hijacked { .. } => {
                self.wait_until = None;
                false
            }
            State::Awaiting { .. } => false,
        }
    }

    /// Release whatever the current exchange holds (subscriptions, uploads).
    pub fn abort(&mut self, handler: &mut H, me: ConnId) {
        match std::mem::replace(&mut self.state, State::Closing { linger_until: None }) {
            State::Streaming { mut source, .. } => source.cancel(handler, me),
            State::Awaiting { mut pending, .. } => pending.cancel(handler, me),
            State::Hijacked { mut stream, .. } => stream.cancel(handler, me),
            State::Body {
                target: Target::Sink(sink, _),
                ..
            } => sink.cancel(handler, me),
            _ => {}
        }
    }

    /// Advance the state machine as far as the buffered input allows.
    fn step(&mut self, handler: &mut H, me: ConnId, now: Instant) -> bool {
        match std::mem::replace(&mut self.state, State::Closing { linger_until: None }) {
            State::Head => self.step_head(handler, me, now),
            State::Body {
                req,
                ex,
                decoder,
                target,
            } => self.step_body(handler, me, req, ex, decoder, target),
            State::Streaming {
                source,
                ex,
                chunked,
            } => self.step_stream(handler, me, source, ex, chunked, now),
            State::Hijacked {
                stream,
                input_done,
                opened,
            } => self.step_hijacked(handler, me, stream, input_done, opened, now),
            State::Awaiting { mut pending, ex } => {
                if self.eof {
                    pending.cancel(handler, me);
                    self.state = State::Closing { linger_until: None };
                    return true;
                }
                match pending.poll(handler, me) {
                    Some(resp) => {
                        self.respond(ex, resp, Some((handler, me)));
                        true
                    }
                    None => {
                        self.state = State::Awaiting { pending, ex };
                        false
                    }
                }
            }
            closing @ State::Closing { .. } => {
                self.state = closing;
                false
            }
        }
    }

    fn step_head(&mut self, handler: &mut H, me: ConnId, now: Instant) -> bool {
        self.state = State::Head;
        // Answer pipelined requests only as fast as the client reads answers.
        if self.pending_output() >= WRITE_HIGH_WATER {
            return false;
        }
        if self.rbuf.is_empty() {
            if self.eof {
                self.state = State::Closing { linger_until: None };
                return true;
            }
            return false;
        }
        self.head_started.get_or_insert(now);
        let (mut req, used) = match parse_head(&self.rbuf) {
            Ok(None) => {
                if self.eof {
                    self.state = State::Closing { linger_until: None };
                    return true;
                }
                return false;
            }
            Ok(Some(parsed)) => parsed,
            Err(e) => {
                let (status, msg) = match e {
                    HeadError::Malformed(m) => (400, format!("malformed HTTP request: {m}")),
                    HeadError::TooLarge => (431, "request header fields too large".to_string()),
                    HeadError::TooManyHeaders => (431, "too many request headers".to_string()),
                    HeadError::UnsupportedEncoding => {
                        (501, "unsupported Transfer-Encoding".to_string())
                    }
                };
                log::debug!("connection {me}: {msg}");
                let ex = Exchange {
                    head_only: false,
                    minor: 1,
                    keep_alive: false,
                };
                self.rbuf.clear();
                self.respond(ex, H::error_response(status, &msg), None);
                return true;
            }
        };
        self.rbuf.drain(..used);
        self.head_started = None;
        req.peer = self.peer;
        let ex = Exchange {
            head_only: req.method == Method::Head,
            minor: req.minor,
            keep_alive: req.keep_alive,
        };
        let begin = handler.begin(me, &req);
        let target = match begin {
            Begin::Respond(resp) => {
                // The body was not read: the connection cannot be reused.
                let ex = Exchange {
                    keep_alive: ex.keep_alive && !req.has_body(),
                    ..ex
                };
                self.respond(ex, resp, Some((handler, me)));
                return true;
            }
            Begin::Buffer(routed) => {
                if let BodyFraming::Length(n) = req.framing {
                    if n > MAX_BUFFERED_BODY as u64 {
                        self.respond_too_large(ex);
                        return true;
                    }
                }
                Target::Buffer(routed, Vec::new())
            }
            Begin::Sink(sink) => Target::Sink(sink, Vec::new()),
        };
        if req.expect_continue && req.minor >= 1 && req.has_body() {
            self.wbuf
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
        }
        self.state = State::Body {
            decoder: BodyDecoder::new(req.framing),
            req,
            ex,
            target,
        };
        true
    }

    fn respond_too_large(&mut self, ex: Exchange) {
        let ex = Exchange {
            keep_alive: false,
            ..ex
        };
        let msg = format!("request body larger than {MAX_BUFFERED_BODY} bytes");
        self.respond(ex, H::error_response(413, &msg), None);
    }

    fn step_body(
        &mut self,
        handler: &mut H,
        me: ConnId,
        req: Request,
        ex: Exchange,
        mut decoder: BodyDecoder,
        target: Target<H>,
    ) -> bool {
        let bad_chunk = |c: &mut Conn<H>| {
            let ex = Exchange {
                keep_alive: false,
                ..ex
            };
            c.respond(ex, H::error_response(400, "malformed chunked body"), None);
        };
        match target {
            Target::Buffer(routed, mut buf) => {
                let room = MAX_BUFFERED_BODY + 1 - buf.len();
                let used = match decoder.decode(&self.rbuf, &mut buf, room) {
                    Ok(n) => n,
                    Err(_) => {
                        bad_chunk(self);
                        return true;
                    }
                };
                self.rbuf.drain(..used);
                if buf.len() > MAX_BUFFERED_BODY {
                    self.respond_too_large(ex);
                    return true;
                }
                if decoder.is_done() {
                    let resp = handler.handle(me, &req, routed, buf);
                    self.respond(ex, resp, Some((handler, me)));
                    return true;
                }
                if self.eof {
                    self.state = State::Closing { linger_until: None };
                    return true;
                }
                self.state = State::Body {
                    req,
                    ex,
                    decoder,
                    target: Target::Buffer(routed, buf),
                };
                used > 0
            }
            Target::Sink(mut sink, mut pending) => {
                let mut progress = false;
                // The decoder stopped for want of input (not of room): at
                // EOF the body can never complete.
                let mut starved = false;
                if pending.len() < READ_CHUNK {
                    let room = READ_CHUNK - pending.len();
                    match decoder.decode(&self.rbuf, &mut pending, room) {
                        Ok(n) => {
                            progress |= n > 0;
                            self.rbuf.drain(..n);
                            starved = !decoder.is_done() && pending.len() < READ_CHUNK;
                        }
                        Err(_) => {
                            sink.cancel(handler, me);
                            bad_chunk(self);
                            return true;
                        }
                    }
                }
                if !pending.is_empty() {
                    match sink.write(handler, me, &pending) {
                        Ok(n) => {
                            progress |= n > 0;
                            pending.drain(..n.min(pending.len()));
                        }
                        Err(resp) => {
                            sink.cancel(handler, me);
                            let ex = Exchange {
                                keep_alive: false,
                                ..ex
                            };
                            self.respond(ex, resp, Some((handler, me)));
                            return true;
                        }
                    }
                }
                if decoder.is_done() && pending.is_empty() {
                    let resp = sink.finish(handler, me);
                    self.respond(ex, resp, Some((handler, me)));
                    return true;
                }
                // Cancel however the input ended: inside a size line, a
                // CRLF or a trailer leaves bytes in `rbuf` that never decode.
                if self.eof && !decoder.is_done() && (starved || self.rbuf.is_empty()) {
                    sink.cancel(handler, me);
                    self.state = State::Closing { linger_until: None };
                    return true;
                }
                self.state = State::Body {
                    req,
                    ex,
                    decoder,
                    target: Target::Sink(sink, pending),
                };
                progress
            }
        }
    }
}
