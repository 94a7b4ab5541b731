//! The logs session: a container's json-file log, then its live output.

use crate::engine::Engine;
use crate::reply::{BodySource, ConnId, Pull};

/// `GET /containers/{id}/logs`: the framed backlog, then (with `follow`)
/// live output until the container's output ends.
pub struct LogStream {
    pub backlog: Vec<u8>,
    /// How much of `backlog` has been sent (no copying the rest forward).
    pub sent: usize,
    pub follow: bool,
}

/// Backlog handed to the connection per pull, so it stays under the
/// connection's write high-water mark.
pub const BACKLOG_PIECE: usize = 256 * 1024;

impl BodySource<Engine> for LogStream {
    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull {
        if self.sent < self.backlog.len() {
            let end = self.backlog.len().min(self.sent + BACKLOG_PIECE);
            out.extend_from_slice(&self.backlog[self.sent..end]);
            self.sent = end;
            if self.sent == self.backlog.len() {
                self.backlog = Vec::new();
                self.sent = 0;
            }
            return Pull::Data;
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
