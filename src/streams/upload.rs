//! Worker-backed exchanges that are not image jobs: a request body fed
//! into a worker's stdin as it arrives (`PUT /containers/{id}/archive`),
//! and a response whose head waits for the first line of a raw worker's
//! output (`GET /containers/{id}/archive`: the stat, then the tar).

use super::job::feed_worker;
use crate::engine::{Engine, Response};
use crate::reply::{BodySink, ConnId, Pending};
use crate::streams::worker_body::{WorkerAnswer, WorkerBody};
use crate::worker::{Outcome, WorkerId};

/// The longest first line a worker may send before its raw output.
const MAX_LINE: usize = 64 * 1024;

/// An upload fed into a worker as it arrives; the answer follows the
/// worker's outcome (`finish`, from `api/`).
pub struct UploadSink {
    pub worker: WorkerId,
    /// The worker stopped reading (it failed early): drain the rest of the
    /// body so the client can read the error.
    pub broken: bool,
    pub finish: fn(&mut Engine, Outcome) -> Response,
}

impl BodySink<Engine> for UploadSink {
    fn write(&mut self, engine: &mut Engine, _me: ConnId, data: &[u8]) -> Result<usize, Response> {
        Ok(feed_worker(engine, self.worker, &mut self.broken, data))
    }

    fn finish(self: Box<Self>, engine: &mut Engine, _me: ConnId) -> Response {
        engine.workers.close_input(self.worker);
        Response::later(Box::new(WorkerAnswer {
            worker: self.worker,
            finish: self.finish,
        }))
    }

    fn cancel(self: Box<Self>, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
    }
}

/// What `finish` gets: the first line, parsed, or None when the worker
/// ended without one; and the body made of the rest of its output.
pub type FirstLineFinish = fn(&mut Engine, &str, Option<serde_json::Value>, WorkerBody) -> Response;

/// A response decided by the first line of a raw worker's output.
pub struct FirstLine {
    pub worker: WorkerId,
    pub line: Vec<u8>,
    /// What `finish` needs to know besides the line (an object's ID).
    pub context: String,
    pub finish: FirstLineFinish,
}

impl FirstLine {
    pub fn new(worker: WorkerId, context: String, finish: FirstLineFinish) -> FirstLine {
        FirstLine {
            worker,
            line: Vec::new(),
            context,
            finish,
        }
    }
}

impl Pending<Engine> for FirstLine {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        loop {
            if let Some(pos) = self.line.iter().position(|&b| b == b'\n') {
                let rest = self.line.split_off(pos + 1);
                let first = serde_json::from_slice(&self.line).ok();
                let body = WorkerBody::with_prefix(self.worker, rest);
                return Some((self.finish)(engine, &self.context, first, body));
            }
            let before = self.line.len();
            let open = engine
                .workers
                .read_raw(self.worker, &mut self.line, MAX_LINE);
            if !open || self.line.len() > MAX_LINE {
                // No line: the worker failed before it could say anything.
                engine.workers.kill(self.worker);
                let body = WorkerBody::new(self.worker);
                return Some((self.finish)(engine, &self.context, None, body));
            }
            if self.line.len() == before {
                return None;
            }
        }
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
    }
}
