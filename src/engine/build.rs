//! `docker build` (classic builder), engine side: the context streamed into
//! a forked worker that extracts it and parses the Dockerfile; the steps
//! will run as an engine task from there.

use serde_json::Value;

use super::Engine;
use crate::build::context::{receive, BuildError, Received};
use crate::reply::{ConnId, Wake};
use crate::worker::{Outcome, WorkerId};

/// What a build request asks for (the parts used so far).
pub struct BuildOptions {
    /// The `dockerfile` parameter: the Dockerfile's path in the context.
    pub dockerfile: String,
}

fn wire(e: BuildError) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

impl Engine {
    /// Start the worker the context is fed into (the request body).
    pub fn build_receive(
        &mut self,
        conn: ConnId,
        opts: BuildOptions,
    ) -> Result<WorkerId, BuildError> {
        let layout = self.images.layout().clone();
        self.workers
            .spawn(Wake::Conn(conn), move |input, _rep| {
                let dir = layout
                    .new_temp_dir()
                    .map_err(|e| wire(BuildError::Internal(e.to_string())))?;
                let input = std::io::BufReader::with_capacity(64 * 1024, input);
                match receive(input, &dir, &opts.dockerfile) {
                    Ok((r, _df)) => serde_json::to_value(r)
                        .map_err(|e| wire(BuildError::Internal(e.to_string()))),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(wire(e))
                    }
                }
            })
            .map_err(|e| BuildError::Internal(e.to_string()))
    }

    /// The context worker's outcome.
    pub fn build_received(&mut self, outcome: Outcome) -> Result<Received, BuildError> {
        match outcome {
            Outcome::Done(v) => {
                serde_json::from_value(v).map_err(|e| BuildError::Internal(e.to_string()))
            }
            Outcome::Failed(v) => Err(serde_json::from_value(v)
                .unwrap_or_else(|_| BuildError::Internal("build context worker failed".into()))),
            Outcome::Died(m) => Err(BuildError::Internal(m)),
        }
    }

    /// Drop a received context (in a worker: it may be large).
    pub fn build_discard(&mut self, r: Received) {
        self.delete_tree_later(r.dir, "build context".into());
    }
}
