//! The registry protocol (OCI distribution / Docker registry v2): manifests
//! and platform selection, auth (Basic and Bearer tokens), resumable blob
//! downloads, and the pull job itself. Everything here runs in a forked
//! worker with the blocking client of `http::client`; the loop only relays
//! the job's progress messages.

pub mod auth;
pub mod blob;
pub mod blob_sources;
pub mod cleanup;
pub mod endpoint;
pub mod error;
pub mod layers;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod push;
pub mod search;
pub mod session;
pub mod upload;
