//! A connection's socket side: bounded reads into its input buffer and
//! writes of its output buffer (and what a TLS stream still holds).

use std::io::{ErrorKind, Read, Write};

use super::{Conn, State};
use crate::http::handler::Handler;
use crate::http::limits::{MAX_HEAD_BYTES, READ_CHUNK};

impl<H: Handler> Conn<H> {
    /// How many more input bytes the current state may buffer.
    pub(super) fn room(&self) -> usize {
        let cap = match self.state {
            State::Head => MAX_HEAD_BYTES + 1,
            State::Body { .. } | State::Hijacked { .. } => READ_CHUNK,
            State::Streaming { .. } | State::Awaiting { .. } => MAX_HEAD_BYTES,
            State::Closing { .. } => READ_CHUNK,
        };
        cap.saturating_sub(self.rbuf.len())
    }

    pub(super) fn fill(&mut self, scratch: &mut [u8]) -> bool {
        if !self.readable || self.eof {
            return false;
        }
        let mut room = self.room().min(READ_CHUNK);
        if room == 0 && matches!(self.state, State::Streaming { .. } | State::Awaiting { .. }) {
            // Keep reading so a hang-up is seen; the excess is dropped.
            self.rbuf.clear();
            self.dropped_input = true;
            room = READ_CHUNK;
        }
        if room == 0 {
            return false;
        }
        let room = room.min(scratch.len());
        let res = loop {
            match self.stream.read(&mut scratch[..room]) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let progress = match res {
            Ok(0) => {
                self.eof = true;
                true
            }
            Ok(n) => {
                self.rbuf.extend_from_slice(&scratch[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                self.readable = false;
                false
            }
            Err(_) => {
                self.eof = true;
                self.broken = true;
                true
            }
        };
        if matches!(self.state, State::Closing { .. }) {
            self.rbuf.clear();
        }
        progress
    }

    pub(super) fn flush(&mut self) -> bool {
        let mut progress = false;
        while self.writable && self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => {
                    self.broken = true;
                    break;
                }
                Ok(n) => {
                    self.wpos += n;
                    self.turn_bytes += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(_) => {
                    self.broken = true;
                    break;
                }
            }
        }
        // What the stream itself holds (TLS records) goes out as well.
        if self.writable && self.stream.has_pending_output() {
            match self.stream.flush() {
                Ok(()) => progress |= !self.stream.has_pending_output(),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
        } else if self.wpos > READ_CHUNK {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        progress
    }

    pub(super) fn pending_output(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}
