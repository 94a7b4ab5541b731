//! How a launch fails, and how the child tells the parent.
//!
//! The child writes one message to the error pipe (`tag byte` + UTF-8 text)
//! and exits; the pipe is `O_CLOEXEC`, so a successful `execve` closes it
//! with nothing written. Exit codes follow dockerd's start errors: 127 when
//! the program is not found, 126 when it cannot be executed, 128 for any
//! other setup failure (dockerd's "exit code was never set" default).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LaunchError {
    /// `exec: "nope": executable file not found in $PATH` → 127.
    NotFound(String),
    /// Not executable, permission denied, exec format error → 126.
    NotExecutable(String),
    /// A setup stage failed: "<stage>: <errno text>" → 128.
    Setup(String),
}

impl LaunchError {
    pub fn exit_code(&self) -> i32 {
        match self {
            LaunchError::NotFound(_) => 127,
            LaunchError::NotExecutable(_) => 126,
            LaunchError::Setup(_) => 128,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            LaunchError::NotFound(m) | LaunchError::NotExecutable(m) | LaunchError::Setup(m) => m,
        }
    }

    /// Wire form for the error pipe (kept under PIPE_BUF so one write is atomic).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let tag = match self {
            LaunchError::NotFound(_) => b'N',
            LaunchError::NotExecutable(_) => b'X',
            LaunchError::Setup(_) => b'S',
        };
        let mut out = vec![tag];
        let msg = self.message().as_bytes();
        out.extend_from_slice(&msg[..msg.len().min(4000)]);
        out
    }

    /// Parse what the child wrote; `None` for an empty pipe (success).
    pub(crate) fn decode(buf: &[u8]) -> Option<LaunchError> {
        let (&tag, rest) = buf.split_first()?;
        let msg = String::from_utf8_lossy(rest).into_owned();
        Some(match tag {
            b'N' => LaunchError::NotFound(msg),
            b'X' => LaunchError::NotExecutable(msg),
            b'S' => LaunchError::Setup(msg),
            _ => LaunchError::Setup(format!(
                "child wrote a malformed error: {}",
                String::from_utf8_lossy(buf)
            )),
        })
    }
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for LaunchError {}

/// "EPERM: Operation not permitted" for an errno.
pub(crate) fn errno_text(e: nix::errno::Errno) -> String {
    e.to_string()
}

/// Attach a stage name to a failure: `.stage("mount /proc")?`.
pub(crate) trait Stage<T> {
    fn stage<D: fmt::Display>(self, what: D) -> Result<T, LaunchError>;
}

impl<T> Stage<T> for Result<T, nix::errno::Errno> {
    fn stage<D: fmt::Display>(self, what: D) -> Result<T, LaunchError> {
        self.map_err(|e| LaunchError::Setup(format!("{what}: {}", errno_text(e))))
    }
}

impl<T> Stage<T> for std::io::Result<T> {
    fn stage<D: fmt::Display>(self, what: D) -> Result<T, LaunchError> {
        self.map_err(|e| match e.raw_os_error() {
            Some(n) => LaunchError::Setup(format!(
                "{what}: {}",
                errno_text(nix::errno::Errno::from_raw(n))
            )),
            None => LaunchError::Setup(format!("{what}: {e}")),
        })
    }
}

/// A setup failure with a plain message.
pub(crate) fn setup<T>(msg: impl Into<String>) -> Result<T, LaunchError> {
    Err(LaunchError::Setup(msg.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_and_codes() {
        for e in [
            LaunchError::NotFound("exec: \"nope\": executable file not found in $PATH".into()),
            LaunchError::NotExecutable("exec: \"/x\": permission denied".into()),
            LaunchError::Setup("mount /proc: EPERM: Operation not permitted".into()),
        ] {
            assert_eq!(LaunchError::decode(&e.encode()), Some(e.clone()));
        }
        assert_eq!(LaunchError::decode(b""), None);
        assert_eq!(LaunchError::NotFound(String::new()).exit_code(), 127);
        assert_eq!(LaunchError::NotExecutable(String::new()).exit_code(), 126);
        assert_eq!(LaunchError::Setup(String::new()).exit_code(), 128);
        let e: Result<(), _> = Err(nix::errno::Errno::EPERM).stage("mount /proc");
        assert_eq!(
            e.unwrap_err().message(),
            "mount /proc: EPERM: Operation not permitted"
        );
    }
}
