//! The bodies of image jobs: an upload streamed into the worker's stdin, and
//! the answer sent once the worker has finished.

use crate::engine::images::Job;
use crate::engine::{Engine, Response};
use crate::reply::{BodySink, ConnId, Pending};
use crate::worker::{Outcome, WorkerId};

/// Feed `data` into a worker's stdin. When the worker has stopped reading
/// (it failed early) `broken` is set and the rest of the body is drained,
/// so the client can read the error. Every upload sink writes through this.
pub fn feed_worker(engine: &mut Engine, worker: WorkerId, broken: &mut bool, data: &[u8]) -> usize {
    if *broken {
        return data.len();
    }
    match engine.workers.write_input(worker, data) {
        Ok(n) => n,
        Err(_) => {
            *broken = true;
            engine.workers.close_input(worker);
            data.len()
        }
    }
}

/// What a job's outcome becomes: the response (shaped by `api/`).
pub type Finish = fn(&mut Engine, &Job, Outcome) -> Response;

/// An upload fed into a job's worker as it arrives.
pub struct JobSink {
    pub worker: WorkerId,
    pub job: Job,
    /// The worker stopped reading (it failed): drain the rest of the body
    /// so the client can read the error.
    pub broken: bool,
    pub finish: Finish,
}

impl BodySink<Engine> for JobSink {
    fn write(&mut self, engine: &mut Engine, _me: ConnId, data: &[u8]) -> Result<usize, Response> {
        Ok(feed_worker(engine, self.worker, &mut self.broken, data))
    }

    fn finish(self: Box<Self>, engine: &mut Engine, _me: ConnId) -> Response {
        engine.workers.close_input(self.worker);
        Response::later(Box::new(JobResult {
            worker: self.worker,
            job: self.job,
            finish: self.finish,
        }))
    }

    fn cancel(self: Box<Self>, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
        engine.images.abort_worker();
    }
}

/// A job's answer, sent when its worker has finished.
pub struct JobResult {
    pub worker: WorkerId,
    pub job: Job,
    pub finish: Finish,
}

impl Pending<Engine> for JobResult {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        engine.workers.take_messages(self.worker);
        let outcome = engine.workers.take_outcome(self.worker)?;
        Some((self.finish)(engine, &self.job, outcome))
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
        engine.images.abort_worker();
    }
}
