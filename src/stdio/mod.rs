//! A process's output plumbing below the engine: the json-file log, stdcopy
//! framing, and the fan-out of a container's stdout/stderr pipes to attached
//! clients with backpressure. The sessions reading them are in `streams/`.

pub mod jsonlog;
pub mod jsonstr;
pub mod output;
pub mod stdcopy;
