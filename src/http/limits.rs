//! Bounds that keep a slow or hostile client's cost small and fixed.

use std::time::Duration;

/// Largest request head (request line + headers) we accept.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 100;
/// Largest body we buffer for a handler (JSON configs); larger bodies must
/// go to a streaming handler.
pub const MAX_BUFFERED_BODY: usize = 4 * 1024 * 1024;
/// Stop pulling from a streaming response while this much output is queued.
pub const WRITE_HIGH_WATER: usize = 256 * 1024;
/// Read at most this much per readiness event before letting others run.
pub const READ_CHUNK: usize = 64 * 1024;

/// Longest a hijacked stream waits for the client to read the response head
/// off a unix socket before starting anyway.
pub const HEAD_READ_WAIT: Duration = Duration::from_secs(1);
/// How often that wait looks again.
pub const HEAD_READ_POLL: Duration = Duration::from_millis(2);

/// Per-daemon tunables (from flags / daemon.json).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// Time allowed from the first byte of a request head to its end.
    pub head_timeout: Duration,
    /// Time an idle keep-alive connection is kept open.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            head_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
        }
    }
}
