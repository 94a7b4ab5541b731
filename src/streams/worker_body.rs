//! A response body streamed from a forked worker's raw output (`docker
//! save`, `docker export`). A worker that fails after the head went out
//! cuts the connection, so the client sees an error, not a short archive.

use crate::engine::Engine;
use crate::reply::{BodySource, ConnId, Pull};
use crate::worker::{Outcome, WorkerId};

/// Bytes moved per pull: bounded so one archive cannot hog the loop.
const PIECE: usize = 64 * 1024;

pub struct WorkerBody {
    worker: WorkerId,
    ended: bool,
}

impl WorkerBody {
    pub fn new(worker: WorkerId) -> WorkerBody {
        WorkerBody {
            worker,
            ended: false,
        }
    }
}

impl BodySource<Engine> for WorkerBody {
    fn pull(&mut self, engine: &mut Engine, _me: ConnId, out: &mut Vec<u8>) -> Pull {
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
