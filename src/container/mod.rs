//! Containers as the daemon manages them: configuration, naming, state, and
//! the lifecycle's pure rules; the verbs acting on them live in `engine/`.

pub mod archive;
pub mod config;
pub mod create;
pub mod error;
pub mod etc;
pub mod exec;
pub mod export;
pub mod extract;
pub mod health;
pub mod isolation;
pub mod launch_spec;
pub mod links;
pub mod model;
pub mod names;
pub mod policy;
pub mod ports;
pub mod registry;
pub mod security;
pub mod stdio;
pub mod validate;
pub mod volume_mounts;
