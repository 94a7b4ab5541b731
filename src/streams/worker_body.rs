//! A response body streamed from a forked worker's raw output (`docker
//! save`, `docker export`, `docker diff`), and a response decided by a
//! worker's outcome (`container prune`). A worker that fails after the head went out
//! cuts the connection, so the client sees an error, not a short archive.

use crate::engine::{Engine, Response};
use crate::reply::{BodySource, ConnId, Pending, Pull};
use crate::worker::{Outcome, WorkerId};

/// Bytes moved per pull: bounded so one archive cannot hog the loop (a
/// connection sends at most 256 KiB a turn; the worker's pipe holds 1 MiB).
const PIECE: usize = 256 * 1024;

pub struct WorkerBody {
    worker: WorkerId,
    ended: bool,
    /// Output already read from the worker (past a first line), sent first.
    prefix: Vec<u8>,
}

impl WorkerBody {
    pub fn new(worker: WorkerId) -> WorkerBody {
        WorkerBody {
            worker,
            ended: false,
            prefix: Vec::new(),
        }
    }

    /// A body whose first bytes were already read from the worker.
    pub fn with_prefix(worker: WorkerId, prefix: Vec<u8>) -> WorkerBody {
        WorkerBody {
            prefix,
            ..WorkerBody::new(worker)
        }
    }
}

impl BodySource<Engine> for WorkerBody {
    fn pull(&mut self, engine: &mut Engine, _me: ConnId, out: &mut Vec<u8>) -> Pull {
        if !self.prefix.is_empty() {
            out.append(&mut self.prefix);
            return Pull::Data;
        }
        if !self.ended {
            if engine.workers.read_raw(self.worker, out, PIECE) {
                return if out.is_empty() {
                    Pull::Wait(None)
                } else {
                    Pull::Data
                };
            }
            self.ended = true;
        }
        match engine.workers.take_outcome(self.worker) {
            None => Pull::Wait(None),
            Some(Outcome::Done(_)) => Pull::End,
            Some(_) => Pull::Abort,
        }
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
    }
}

/// A response decided by a worker's outcome: `finish` (from `api/`) shapes
/// it once the worker has finished.
pub struct WorkerAnswer {
    pub worker: WorkerId,
    pub finish: fn(&mut Engine, Outcome) -> Response,
}

impl Pending<Engine> for WorkerAnswer {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        engine.workers.take_messages(self.worker);
        let outcome = engine.workers.take_outcome(self.worker)?;
        Some((self.finish)(engine, outcome))
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
    }
}

/// A [`WorkerAnswer`] whose worker finishes even when the client leaves:
/// a prune's objects are already gone from the engine and only their trees
/// remain to delete (`what` names them in the log).
pub struct FinishingAnswer(pub WorkerAnswer, pub &'static str);

impl Pending<Engine> for FinishingAnswer {
    fn poll(&mut self, engine: &mut Engine, me: ConnId) -> Option<Response> {
        self.0.poll(engine, me)
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.adopt_worker(self.0.worker, self.1.to_string());
    }
}
