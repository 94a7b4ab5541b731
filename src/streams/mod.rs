//! Long responses as sessions over the engine: attach (container and exec),
//! logs, wait and deferred stop/restart/remove answers, the event stream, and
//! the bodies of forked jobs (uploads into a worker, archives out of one).
//! Handlers in `api/` build them; the connection pulls them.

pub mod attach;
pub mod events;
pub mod job;
pub mod logs;
pub mod pull;
pub mod stats;
pub mod upload;
pub mod wait;
pub mod worker_body;
