//! Sessions that wait for a container: `POST /containers/{id}/wait`'s body,
//! and the deferred answer of a stop, restart or remove that waits for the
//! exit.

use serde_json::Value;

use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::engine::{Engine, Response};
use crate::reply::{BodySource, ConnId, Pending, Pull};

/// What a deferred stop/restart/remove waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Stopped,
    Restarted,
    Removed,
}

/// The response to a stop/restart/remove that waits for the exit: sent
/// once the container is in the state `done` asks for.
pub fn until_stopped(engine: &mut Engine, conn: ConnId, id: String, done: Done) -> Response {
    let exits = engine.containers.get(&id).map(|e| e.exits).unwrap_or(0);
    engine.containers.waiters.insert(conn);
    Response::later(Box::new(StopWait { id, exits, done }))
}

struct StopWait {
    id: String,
    exits: u64,
    done: Done,
}

impl Pending<Engine> for StopWait {
    fn poll(&mut self, engine: &mut Engine, me: ConnId) -> Option<Response> {
        let finished = match engine.containers.get(&self.id) {
            None => true,
            Some(e) => match self.done {
                Done::Removed => false,
                Done::Stopped => {
                    e.exits > self.exits
                        || (e.live.is_none() && e.c.state.status != Status::Restarting)
                }
                // ... and the new process exec'd (or its setup failed).
                Done::Restarted => e.exits > self.exits && !e.start_on_exit && !e.c.start_pending,
            },
        };
        if !finished {
            return None;
        }
        engine.containers.waiters.remove(&me);
        Some(Response::new(204))
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        engine.containers.waiters.remove(&me);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    NotRunning,
    NextExit,
    Removed,
}

/// `POST /containers/{id}/wait`'s body: one JSON line when the condition
/// is met, shaped by `shape` (exit code, error message).
pub struct WaitStream {
    pub id: String,
    pub exits: u64,
    pub condition: WaitFor,
    pub shape: fn(i32, &str) -> Value,
}

impl BodySource<Engine> for WaitStream {
    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull {
        let result = match engine.containers.get(&self.id) {
            None => Some((
                engine.containers.removed_exit_code(&self.id).unwrap_or(0),
                String::new(),
            )),
            Some(e) => {
                let done = match self.condition {
                    // As dockerd, an exit ends this wait even when a restart
                    // policy brings the container back (its stop waiters are
                    // told at the exit, before the restart).
                    WaitFor::NotRunning => {
                        e.exits > self.exits
                            || (e.live.is_none() && e.c.state.status != Status::Restarting)
                    }
                    WaitFor::NextExit => e.exits > self.exits,
                    WaitFor::Removed => false,
                };
                done.then(|| (e.c.state.exit_code, e.c.state.error.clone()))
            }
        };
        let Some((code, error)) = result else {
            return Pull::Wait(None);
        };
        engine.containers.waiters.remove(&me);
        crate::trace::mark("wait-answered", &self.id, None);
        out.extend_from_slice(&crate::json::bytes(&(self.shape)(code, &error)));
        out.push(b'\n');
        Pull::End
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        engine.containers.waiters.remove(&me);
    }
}

/// The answer to a `pause` whose freezer is still freezing: 204 once the
/// container is paused, `failed(reason)` when the freezer gave up.
pub fn until_paused(
    engine: &mut Engine,
    conn: ConnId,
    id: String,
    failed: fn(String) -> Response,
) -> Response {
    engine.containers.waiters.insert(conn);
    Response::later(Box::new(PauseWait { id, failed }))
}

struct PauseWait {
    id: String,
    failed: fn(String) -> Response,
}

impl Pending<Engine> for PauseWait {
    fn poll(&mut self, engine: &mut Engine, me: ConnId) -> Option<Response> {
        let result = match engine.containers.get_mut(&self.id) {
            None => Err("the container was removed while being paused".to_string()),
            Some(e) if e.freezing.is_some() => return None,
            Some(e) if e.c.state.status == Status::Paused => Ok(()),
            Some(e) => Err(e
                .freeze_error
                .take()
                .unwrap_or_else(|| "the container was not paused".into())),
        };
        engine.containers.waiters.remove(&me);
        Some(match result {
            Ok(()) => Response::new(204),
            Err(m) => (self.failed)(m),
        })
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        engine.containers.waiters.remove(&me);
    }
}

/// The answer to a `start` whose setup is still running (the launch's
/// error pipe is watched by the loop): 204 once the process exec'd,
/// `failed(error)` when the setup failed or its deadline fired.
pub fn until_started(
    engine: &mut Engine,
    conn: ConnId,
    id: &str,
    ok: fn() -> Response,
    failed: fn(ContainerError) -> Response,
) -> Response {
    match engine.launches.seq_of(id) {
        None => ok(),
        Some(seq) => {
            engine.containers.waiters.insert(conn);
            Response::later(Box::new(StartWait { seq, ok, failed }))
        }
    }
}

struct StartWait {
    seq: u64,
    ok: fn() -> Response,
    failed: fn(ContainerError) -> Response,
}

impl Pending<Engine> for StartWait {
    fn poll(&mut self, engine: &mut Engine, me: ConnId) -> Option<Response> {
        let outcome = engine.launches.outcome(self.seq)?;
        engine.containers.waiters.remove(&me);
        Some(match outcome {
            Ok(()) => (self.ok)(),
            Err(e) => (self.failed)(e),
        })
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        engine.containers.waiters.remove(&me);
    }
}

/// The answer to a create whose directory a worker is writing
/// (`Engine::container_create_later`): `ok(id, warnings)` once it is
/// registered, `failed(error)` if the write failed.
pub fn until_created(
    engine: &mut Engine,
    conn: ConnId,
    seq: u64,
    ok: fn(String, Vec<String>) -> Response,
    failed: fn(ContainerError) -> Response,
) -> Response {
    let mut wait = CreateWait { seq, ok, failed };
    if let Some(r) = wait.poll(engine, conn) {
        return r;
    }
    engine.containers.waiters.insert(conn);
    Response::later(Box::new(wait))
}

struct CreateWait {
    seq: u64,
    ok: fn(String, Vec<String>) -> Response,
    failed: fn(ContainerError) -> Response,
}

impl Pending<Engine> for CreateWait {
    fn poll(&mut self, engine: &mut Engine, me: ConnId) -> Option<Response> {
        let outcome = engine.create_outcome(self.seq)?;
        engine.containers.waiters.remove(&me);
        Some(match outcome {
            Ok((id, warnings)) => (self.ok)(id, warnings),
            Err(e) => (self.failed)(e),
        })
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        engine.containers.waiters.remove(&me);
    }
}
