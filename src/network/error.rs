//! Failures of the networks API, each a kind `api/error.rs` maps to
//! dockerd's status.

use std::fmt;

#[derive(Debug)]
pub enum NetworkError {
    /// "network x not found" (404).
    NotFound(String),
    /// A bad request: subnet, gateway, driver option (400).
    Invalid(String),
    /// Refused by the network's nature: pre-defined networks, overlapping
    /// pools, an endpoint already there (403).
    Forbidden(String),
    /// Conflicts with the current state: name taken, in use (409).
    Conflict(String),
    /// The kernel or the disk failed (500).
    Internal(String),
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkError::NotFound(m)
            | NetworkError::Invalid(m)
            | NetworkError::Forbidden(m)
            | NetworkError::Conflict(m)
            | NetworkError::Internal(m) => f.write_str(m),
        }
    }
}

impl From<std::io::Error> for NetworkError {
    fn from(e: std::io::Error) -> Self {
        NetworkError::Internal(e.to_string())
    }
}
