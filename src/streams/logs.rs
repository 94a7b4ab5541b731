//! The logs session: a container's json-file log read through a cursor (a
//! bounded piece per loop turn, `tail` found by walking back from the end),
//! then, with `follow`, its live output.

use std::time::SystemTime;

use crate::engine::Engine;
use crate::reply::{BodySource, ConnId, Pull};
use crate::stdio::jsonlog::{Entry, LogCursor};
use crate::stdio::stdcopy::{frame, StreamKind};

/// Backlog handed to the connection per pull, so it stays under the
/// connection's write high-water mark.
pub const BACKLOG_PIECE: usize = 256 * 1024;

/// Log bytes a tail scan reads per loop turn.
const SCAN_BUDGET: usize = 1024 * 1024;

/// Log bytes read per pull: small, so the records parsed from it and their
/// framing stay a few hundred KiB however big the log is.
const READ_PIECE: usize = 64 * 1024;

/// Which records `docker logs` shows, and how.
pub struct LogFilter {
    pub want_out: bool,
    pub want_err: bool,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub timestamps: bool,
    pub multiplexed: bool,
}

impl LogFilter {
    fn keep(&self, en: &Entry) -> bool {
        let stream_ok = (en.kind == StreamKind::Stdout && self.want_out)
            || (en.kind == StreamKind::Stderr && self.want_err);
        if !stream_ok {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let t = crate::timefmt::parse_timestamp(&en.time);
        self.since.is_none_or(|s| t.is_some_and(|t| t >= s))
            && self.until.is_none_or(|u| t.is_some_and(|t| t <= u))
    }

    fn frame(&self, en: &Entry, out: &mut Vec<u8>) {
        if self.timestamps {
            let line = format!("{} {}", en.time, en.line);
            frame(out, en.kind, line.as_bytes(), self.multiplexed);
        } else {
            frame(out, en.kind, en.line.as_bytes(), self.multiplexed);
        }
    }
}

/// `GET /containers/{id}/logs`: the log from the cursor, then (with
/// `follow`) live output until the container's output ends.
pub struct LogStream {
    pub cursor: LogCursor,
    pub filter: LogFilter,
    /// Records still to find walking back (`tail`); None once positioned.
    pub tail: Option<usize>,
    pub backlog_done: bool,
    pub follow: bool,
}

impl LogStream {
    pub fn new(mut cursor: LogCursor, filter: LogFilter, tail: Option<usize>) -> LogStream {
        if tail.is_some_and(|n| n > 0) {
            cursor.start_tail();
        }
        LogStream {
            cursor,
            filter,
            tail: tail.filter(|&n| n > 0),
            // `tail=0`: no backlog at all.
            backlog_done: tail == Some(0),
            follow: false,
        }
    }
}

impl BodySource<Engine> for LogStream {
    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull {
        if let Some(n) = self.tail.as_mut() {
            let f = &self.filter;
            if !self.cursor.seek_tail(n, SCAN_BUDGET, &|e| f.keep(e)) {
                // More to scan: yield the loop, continue next turn.
                engine.wake(me);
                return Pull::Data;
            }
            self.tail = None;
        }
        if !self.backlog_done {
            let mut entries = Vec::new();
            let more = self.cursor.next(READ_PIECE, &mut entries);
            for en in entries.iter().filter(|e| self.filter.keep(e)) {
                self.filter.frame(en, out);
            }
            if !more {
                self.backlog_done = true;
            }
            if !out.is_empty() {
                return Pull::Data;
            }
            if more {
                engine.wake(me);
                return Pull::Data;
            }
        }
        if !self.follow {
            return Pull::End;
        }
        let (ended, woken) = engine.outputs.take(me, out);
        for w in woken {
            engine.wake(w);
        }
        if !out.is_empty() {
            Pull::Data
        } else if ended {
            engine.outputs.unsubscribe(me);
            Pull::End
        } else {
            Pull::Wait(None)
        }
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        if self.follow {
            for w in engine.outputs.unsubscribe(me) {
                engine.wake(w);
            }
        }
    }
}
