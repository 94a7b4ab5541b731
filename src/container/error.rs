//! Failures of container operations, each a kind the API maps to a status.

use std::fmt;

#[derive(Debug)]
pub enum ContainerError {
    /// "No such container: x".
    NotFound(String),
    /// "No such exec instance: x" (404).
    NoSuchExec(String),
    /// Bad configuration or parameter.
    Invalid(String),
    /// Conflicts with the current state: name in use, running, not running.
    Conflict(String),
    /// Nothing to do (start of a running container, stop of a stopped one).
    NotModified,
    /// The container's process could not be started; carries the exit code
    /// dockerd would record (127 not found, 126 not executable).
    StartFailed(String, i32),
    /// Disk, kernel or other internal failure.
    Internal(String),
}

impl fmt::Display for ContainerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContainerError::NotFound(id) => write!(f, "No such container: {id}"),
            ContainerError::NoSuchExec(id) => write!(f, "No such exec instance: {id}"),
            ContainerError::Invalid(m)
            | ContainerError::Conflict(m)
            | ContainerError::Internal(m)
            | ContainerError::StartFailed(m, _) => f.write_str(m),
            ContainerError::NotModified => f.write_str("not modified"),
        }
    }
}

impl From<std::io::Error> for ContainerError {
    fn from(e: std::io::Error) -> Self {
        ContainerError::Internal(crate::goerr::io_text(&e))
    }
}
