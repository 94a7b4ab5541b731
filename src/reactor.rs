//! The one `mio::Poll` of the daemon: token encoding, signal delivery via
//! signalfd, and the wait with a timeout computed from the nearest deadline.

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use nix::sys::signal::{SigSet, Signal as NixSignal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// What a token refers to. The kind lives in the high bits so each
/// subsystem can number its own sources from zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Signals,
    Listener(usize),
    Conn(usize),
    /// The pipe a worker reads its input from (we write).
    WorkerInput(usize),
    /// The pipe a worker reports through (we read).
    WorkerOutput(usize),
    /// A container's stdout/stderr pipes.
    Output(usize),
    /// A container's stdin pipe (we write).
    Stdin(usize),
    /// The DNS responder's sockets (0: upstream, i + 1: network slot i).
    Dns(usize),
    /// The userland port proxy's sockets (`network::proxy`).
    Proxy(usize),
    /// A container launch's error pipe (`engine/launching.rs`).
    Launch(usize),
}

const KIND_SHIFT: u32 = 24;
const INDEX_MASK: usize = (1 << KIND_SHIFT) - 1;

impl Source {
    pub fn token(self) -> Token {
        let (kind, index) = match self {
            Source::Signals => (0, 0),
            Source::Listener(i) => (1, i),
            Source::Conn(i) => (2, i),
            Source::WorkerInput(i) => (3, i),
            Source::WorkerOutput(i) => (4, i),
            Source::Output(i) => (5, i),
            Source::Stdin(i) => (6, i),
            Source::Dns(i) => (7, i),
            Source::Proxy(i) => (8, i),
            Source::Launch(i) => (9, i),
        };
        Token(kind << KIND_SHIFT | (index & INDEX_MASK))
    }

    pub fn from_token(t: Token) -> Option<Source> {
        let index = t.0 & INDEX_MASK;
        match t.0 >> KIND_SHIFT {
            0 => Some(Source::Signals),
            1 => Some(Source::Listener(index)),
            2 => Some(Source::Conn(index)),
            3 => Some(Source::WorkerInput(index)),
            4 => Some(Source::WorkerOutput(index)),
            5 => Some(Source::Output(index)),
            6 => Some(Source::Stdin(index)),
            7 => Some(Source::Dns(index)),
            8 => Some(Source::Proxy(index)),
            9 => Some(Source::Launch(index)),
            _ => None,
        }
    }
}

/// Signals the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT: shut down gracefully.
    Shutdown,
    /// SIGHUP: reload (there is nothing to reload yet; logged).
    Reload,
    /// SIGCHLD: a child changed state.
    Child,
}

pub struct Reactor {
    poll: Poll,
    events: Events,
    signals: SignalFd,
}

impl Reactor {
    pub fn new() -> io::Result<Reactor> {
        let mut mask = SigSet::empty();
        for s in [
            NixSignal::SIGTERM,
            NixSignal::SIGINT,
            NixSignal::SIGHUP,
            NixSignal::SIGCHLD,
        ] {
            mask.add(s);
        }
        // Blocked signals are delivered only through the signalfd. Children
        // must unblock them before exec.
        mask.thread_block().map_err(io::Error::from)?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        let poll = Poll::new()?;
        poll.registry().register(
            &mut SourceFd(&signals.as_raw_fd()),
            Source::Signals.token(),
            Interest::READABLE,
        )?;
        Ok(Reactor {
            poll,
            events: Events::with_capacity(256),
            signals,
        })
    }

    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Wait for readiness until `deadline` (or forever), returning the
    /// sources that are ready with their (readable, writable) flags.
    pub fn wait(&mut self, deadline: Option<Instant>) -> io::Result<Vec<(Source, bool, bool)>> {
        let timeout = deadline.map(|d| {
            // Round up so we do not wake a hair early and spin.
            d.saturating_duration_since(Instant::now()) + Duration::from_millis(1)
        });
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        Ok(self
            .events
            .iter()
            .filter_map(|e| {
                let readable = e.is_readable() || e.is_read_closed() || e.is_error();
                let writable = e.is_writable() || e.is_write_closed() || e.is_error();
                Source::from_token(e.token()).map(|s| (s, readable, writable))
            })
            .collect())
    }

    /// Drain the signalfd.
    pub fn take_signals(&mut self) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.signals.read_signal() {
            let sig = info.ssi_signo as i32;
            out.push(match NixSignal::try_from(sig) {
                Ok(NixSignal::SIGTERM) | Ok(NixSignal::SIGINT) => Signal::Shutdown,
                Ok(NixSignal::SIGHUP) => Signal::Reload,
                _ => Signal::Child,
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for s in [
            Source::Signals,
            Source::Listener(3),
            Source::Conn(12345),
            Source::WorkerOutput(9),
        ] {
            assert_eq!(Source::from_token(s.token()), Some(s));
        }
    }
}
