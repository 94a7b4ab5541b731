//! Containers as the daemon manages them: configuration, naming, state, and
//! the lifecycle (create, start, stop, exit, restart, remove).

pub mod config;
pub mod create;
pub mod error;
pub mod etc;
pub mod exec;
pub mod export;
pub mod isolation;
pub mod lifecycle;
pub mod model;
pub mod names;
pub mod registry;
pub mod stdio;
