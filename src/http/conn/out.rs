//! The response side of a connection: heads (fixed-length, chunked or
//! close-delimited), streamed bodies pulled while the socket has room,
//! hijacked raw output, and the end of an exchange (keep-alive or close).

use std::time::{Instant, SystemTime};

use super::super::handler::Handler;
use super::super::limits::{HEAD_READ_POLL, HEAD_READ_WAIT, WRITE_HIGH_WATER};
use super::super::response::{push_chunk, reason, LAST_CHUNK};
use super::{Conn, Exchange, State};
use crate::reply::{Body, BodySource, ConnId, Hijacked, Pull, Response};

impl<H: Handler> Conn<H> {
    pub(super) fn step_stream(
        &mut self,
        handler: &mut H,
        me: ConnId,
        mut source: Box<dyn BodySource<H>>,
        ex: Exchange,
        chunked: bool,
        now: Instant,
    ) -> bool {
        if self.eof {
            // The client hung up: stop producing for nobody.
            source.cancel(handler, me);
            self.state = State::Closing { linger_until: None };
            return true;
        }
        if self.pending_output() >= WRITE_HIGH_WATER || self.wait_until.is_some_and(|t| t > now) {
            self.state = State::Streaming {
                source,
                ex,
                chunked,
            };
            return false;
        }
        let mut piece = if chunked {
            Vec::new()
        } else {
            self.spare_piece()
        };
        match source.pull(handler, me, &mut piece) {
            Pull::Data => {
                let got = !piece.is_empty();
                if chunked {
                    push_chunk(&mut self.wbuf, &piece);
                } else {
                    self.put_piece(piece);
                }
                self.state = State::Streaming {
                    source,
                    ex,
                    chunked,
                };
                got
            }
            Pull::Wait(until) => {
                self.put_piece(piece);
                self.wait_until = until;
                self.state = State::Streaming {
                    source,
                    ex,
                    chunked,
                };
                false
            }
            Pull::Abort => {
                source.cancel(handler, me);
                self.put_piece(piece);
                // Closed at once (no lingering, no last chunk).
                self.state = State::Closing {
                    linger_until: Some(now),
                };
                true
            }
            Pull::End => {
                if chunked {
                    push_chunk(&mut self.wbuf, &piece);
                    self.wbuf.extend_from_slice(LAST_CHUNK);
                } else {
                    self.put_piece(piece);
                }
                self.finish_exchange(ex, now);
                true
            }
        }
    }

    pub(super) fn step_hijacked(
        &mut self,
        handler: &mut H,
        me: ConnId,
        mut stream: Box<dyn Hijacked<H>>,
        mut input_done: bool,
        mut opened: bool,
        now: Instant,
    ) -> bool {
        if !opened {
            // As dockerd: the head goes out on its own before the stream
            // starts. A client that reads the head through a buffer (Python's
            // http.client) and then the raw socket loses whatever shared its
            // read, so on a unix socket the stream also waits (briefly,
            // polled) until the client has taken the head off the socket.
            if self.broken {
                stream.cancel(handler, me);
                self.state = State::Closing { linger_until: None };
                return true;
            }
            let head_out = self.pending_output() == 0;
            let since = *self.head_flushed.get_or_insert(now);
            let unread = head_out
                && self.stream.unread_by_peer() > 0
                && now.duration_since(since) < HEAD_READ_WAIT;
            if !head_out || unread {
                if head_out {
                    self.wait_until = Some(now + HEAD_READ_POLL);
                } else {
                    self.head_flushed = None;
                }
                self.state = State::Hijacked {
                    stream,
                    input_done,
                    opened,
                };
                return false;
            }
            self.wait_until = None;
            opened = true;
            stream.opened(handler, me);
        }
        let mut progress = false;
        if !input_done && !self.rbuf.is_empty() {
            let n = stream.input(handler, me, &self.rbuf).min(self.rbuf.len());
            self.rbuf.drain(..n);
            progress |= n > 0;
        }
        if !input_done && self.eof && self.rbuf.is_empty() {
            // Half-close: the client is done sending, not done reading.
            stream.input_closed(handler, me);
            input_done = true;
            progress = true;
        }
        if self.broken {
            stream.cancel(handler, me);
            self.state = State::Closing { linger_until: None };
            return true;
        }
        if self.pending_output() < WRITE_HIGH_WATER {
            let mut piece = self.spare_piece();
            match stream.pull(handler, me, &mut piece) {
                Pull::Data => {
                    progress |= !piece.is_empty();
                    self.put_piece(piece);
                }
                Pull::Wait(_) => self.put_piece(piece),
                Pull::End | Pull::Abort => {
                    self.put_piece(piece);
                    stream.cancel(handler, me);
                    self.state = State::Closing { linger_until: None };
                    return true;
                }
            }
        }
        self.state = State::Hijacked {
            stream,
            input_done,
            opened,
        };
        progress
    }

    /// An empty buffer for a pull: the write buffer's own allocation when
    /// everything in it has been sent, so a long stream (attach, save) moves
    /// its pieces without a copy or an allocation per pull (`put_piece`
    /// puts it back; the attach pump swaps it with its subscriber buffer).
    fn spare_piece(&mut self) -> Vec<u8> {
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            std::mem::take(&mut self.wbuf)
        } else {
            Vec::new()
        }
    }

    /// Queue a pulled piece: it becomes the write buffer when that is empty.
    fn put_piece(&mut self, piece: Vec<u8>) {
        if self.wbuf.is_empty() {
            self.wbuf = piece;
            self.wpos = 0;
        } else {
            self.wbuf.extend_from_slice(&piece);
        }
    }

    pub(super) fn finish_exchange(&mut self, ex: Exchange, now: Instant) {
        self.wait_until = None;
        self.state = if ex.keep_alive && !self.dropped_input {
            self.idle_since = now;
            State::Head
        } else {
            State::Closing { linger_until: None }
        };
    }

    /// Queue `resp` (head, and body if it is known), and move to the next state.
    pub(super) fn respond(
        &mut self,
        ex: Exchange,
        resp: Response<H>,
        owner: Option<(&mut H, ConnId)>,
    ) {
        let resp = match resp.body {
            Body::Later(_) => resp,
            _ => H::common_headers(resp),
        };
        let resp = match resp.body {
            Body::Later(pending) => {
                self.state = State::Awaiting { pending, ex };
                return;
            }
            Body::Hijack(stream) => {
                let w = &mut self.wbuf;
                w.extend_from_slice(
                    format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
                );
                for (k, v) in &resp.headers {
                    w.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
                }
                w.extend_from_slice(b"\r\n");
                self.state = State::Hijacked {
                    stream,
                    input_done: false,
                    opened: false,
                };
                return;
            }
            body => Response { body, ..resp },
        };
        let no_body = matches!(resp.status, 100..=199 | 204 | 304);
        let mut shared = None;
        let (bytes, source) = match resp.body {
            Body::Empty => (Vec::new(), None),
            Body::Bytes(b) => (b, None),
            Body::Shared(b) => {
                shared = Some(b);
                (Vec::new(), None)
            }
            Body::Stream(s) => (Vec::new(), Some(s)),
            Body::Later(_) | Body::Hijack(_) => (Vec::new(), None),
        };
        let bytes: &[u8] = shared.as_deref().unwrap_or(&bytes);
        let streaming = source.is_some() && !no_body;
        let chunked = streaming && ex.minor >= 1;
        // A stream on HTTP/1.0 is delimited by closing the connection.
        let ex = Exchange {
            keep_alive: ex.keep_alive && (!streaming || chunked),
            ..ex
        };

        let w = &mut self.wbuf;
        w.extend_from_slice(
            format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status)).as_bytes(),
        );
        for (k, v) in &resp.headers {
            w.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        let date = crate::timefmt::http_date(SystemTime::now());
        w.extend_from_slice(format!("Date: {date}\r\n").as_bytes());
        let has_length = resp
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
        if chunked && !ex.head_only {
            w.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        } else if !streaming && !no_body && !has_length {
            w.extend_from_slice(format!("Content-Length: {}\r\n", bytes.len()).as_bytes());
        }
        if !ex.keep_alive {
            w.extend_from_slice(b"Connection: close\r\n");
        } else if ex.minor == 0 {
            w.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        w.extend_from_slice(b"\r\n");
        if !ex.head_only && !no_body {
            w.extend_from_slice(bytes);
        }
        let now = Instant::now();
        match source {
            Some(source) if streaming && !ex.head_only => {
                self.state = State::Streaming {
                    source,
                    ex,
                    chunked,
                };
            }
            Some(mut source) => {
                if let Some((handler, me)) = owner {
                    source.cancel(handler, me);
                }
                self.finish_exchange(ex, now);
            }
            None => self.finish_exchange(ex, now),
        }
    }
}
