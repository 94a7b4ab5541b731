//! A registry job's progress stream (`docker pull`): the response waits
//! for the worker's first message (so a failure before any progress, an
//! unknown manifest, is a plain error status as dockerd gives it), then
//! relays each message as one JSON line, then the job's last lines; a
//! failure after that is an `errorDetail` line, as dockerd writes it.

use crate::json;
use serde_json::Value;

use crate::engine::{Engine, Response};
use crate::reply::{BodySource, ConnId, OnceBody, Pending, Pull};
use crate::worker::{Outcome, WorkerId};

/// The job's end: its last lines, or (message, error response).
pub type Finish = fn(&mut Engine, Outcome) -> Result<Vec<Value>, (String, Response)>;

fn lines(msgs: &[Value], out: &mut Vec<u8>) {
    for m in msgs {
        out.extend_from_slice(&crate::json::bytes(m));
        out.extend_from_slice(b"\r\n");
    }
}

/// Waiting for the job's first word.
pub struct ProgressStart {
    pub worker: WorkerId,
    pub finish: Finish,
    /// Undo the job's bookkeeping if the client leaves first.
    pub abort: fn(&mut Engine),
}

impl Pending<Engine> for ProgressStart {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        let msgs = engine.workers.take_messages(self.worker);
        if !msgs.is_empty() {
            let mut first = Vec::new();
            lines(&msgs, &mut first);
            return Some(Response::stream(
                200,
                "application/json",
                Box::new(ProgressBody {
                    worker: self.worker,
                    first,
                    finish: self.finish,
                    abort: self.abort,
                    done: false,
                }),
            ));
        }
        let outcome = engine.workers.take_outcome(self.worker)?;
        Some(match (self.finish)(engine, outcome) {
            Ok(last) => {
                let mut body = Vec::new();
                lines(&last, &mut body);
                Response::stream(200, "application/json", Box::new(OnceBody(body)))
            }
            Err((_, resp)) => resp,
        })
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
        (self.abort)(engine);
    }
}

pub struct ProgressBody {
    worker: WorkerId,
    first: Vec<u8>,
    finish: Finish,
    abort: fn(&mut Engine),
    done: bool,
}

impl BodySource<Engine> for ProgressBody {
    fn pull(&mut self, engine: &mut Engine, _me: ConnId, out: &mut Vec<u8>) -> Pull {
        out.append(&mut self.first);
        let msgs = engine.workers.take_messages(self.worker);
        lines(&msgs, out);
        if !out.is_empty() {
            return Pull::Data;
        }
        let Some(outcome) = engine.workers.take_outcome(self.worker) else {
            return Pull::Wait(None);
        };
        self.done = true;
        match (self.finish)(engine, outcome) {
            Ok(last) => lines(&last, out),
            Err((msg, _)) => lines(
                &[json!({ "errorDetail": { "message": msg }, "error": msg })],
                out,
            ),
        }
        Pull::End
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        if !self.done {
            engine.workers.kill(self.worker);
            (self.abort)(engine);
        }
    }
}
