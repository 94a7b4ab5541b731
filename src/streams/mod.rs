//! Container output: the json-file log, stdcopy framing, and the fan-out of
//! a container's stdout/stderr pipes to attached clients with backpressure.

pub mod jsonlog;
pub mod output;
pub mod stdcopy;
