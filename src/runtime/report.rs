//! A launched child's report: the error pipe's message (a failing stage)
//! or EOF (the program was exec'd), read by the daemon's loop through
//! `PendingLaunch` (engine/launching.rs) or, for probes and tests, waited
//! for here.

use super::errors::LaunchError;
use super::launch::reap;
use nix::errno::Errno;
use nix::unistd::Pid;
use std::os::fd::OwnedFd;

/// A child forked and released, whose setup has not reported yet: the
/// caller watches `report` (EOF with nothing read: it exec'd; a message:
/// it failed) without blocking, and kills `pid` at its deadline.
pub struct PendingLaunch {
    pub pid: Pid,
    pub report: OwnedFd,
}

/// What a finished setup's report says: Ok (exec'd) or the child's failure.
pub fn decode_report(msg: &[u8]) -> Result<(), LaunchError> {
    match LaunchError::decode(msg) {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// The message of a setup killed at its deadline.
pub fn deadline_error(limit: std::time::Duration) -> LaunchError {
    LaunchError::Setup(format!(
        "container setup did not finish within {} s",
        limit.as_secs()
    ))
}

/// Wait (blocking, up to `SETUP_DEADLINE`) for a pending child's report.
pub(crate) fn wait_report(p: PendingLaunch) -> Result<Pid, LaunchError> {
    let Some(msg) = read_all_within(&p.report, SETUP_DEADLINE) else {
        reap(p.pid, true);
        return Err(deadline_error(SETUP_DEADLINE));
    };
    match LaunchError::decode(&msg) {
        None => Ok(p.pid),
        Some(e) => {
            reap(p.pid, false);
            Err(e)
        }
    }
}

/// How long the parent waits for the child to exec (or report a failure).
const SETUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// `read_all`, but giving up (None) once `limit` has passed without EOF.
fn read_all_within(fd: &OwnedFd, limit: std::time::Duration) -> Option<Vec<u8>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = std::time::Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return None;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => continue,
            Err(Errno::EINTR) => continue,
            Err(_) => return Some(out),
            Ok(_) => {}
        }
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => return Some(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(_) => return Some(out),
        }
        if out.len() > 64 * 1024 {
            return Some(out);
        }
    }
}
