//! A running container's stdio, pumped by the loop: stdout/stderr pipes are
//! read non-blocking into the json-file log and into each attached client's
//! bounded buffer. When any attached client's buffer is full, the pipes are
//! left unread, so the container blocks (as with dockerd) instead of the
//! daemon's memory growing. Stdin from an attached client is forwarded to
//! the container's stdin pipe.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;

use mio::unix::SourceFd;
use mio::{Interest, Registry};

use super::jsonlog::{LogLoss, LogWriter};
use super::jsonstr::RecordBuf;
use super::stdcopy::{frame, StreamKind};
use crate::reactor::Source;
use crate::reply::ConnId;
use crate::slab::Slab;

/// Output queued for one attached client before the pipes stop being read.
pub const CLIENT_BUFFER: usize = 256 * 1024;
/// One read: a whole default pipe (64 KiB). A pty gives at most 4 KiB a read.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read per container per loop turn: a fast producer (`yes`) refills
/// its pipe as fast as we drain it, so draining to EAGAIN would starve
/// everyone else. What is left is pumped on the next turn. A budget in bytes,
/// not reads, so a pty's 4 KiB reads move as much per turn as a pipe's.
const BYTES_PER_TURN: usize = 256 * 1024;

struct Pipes {
    container: String,
    /// The pty master, for resizes.
    tty: Option<std::os::fd::RawFd>,
    stdout: Option<File>,
    stderr: Option<File>,
    stdin: Option<File>,
    log: Option<LogWriter>,
    /// The last log write failed (a full disk): warned once, and again
    /// with the count when writing succeeds again.
    log_failing: bool,
    /// A client waits for room in the stdin pipe.
    stdin_waiter: Option<ConnId>,
}

struct Subscriber {
    container: String,
    stdout: bool,
    stderr: bool,
    multiplexed: bool,
    buf: Vec<u8>,
    /// The container's output has ended (or it never started).
    ended: bool,
}

pub struct Outputs {
    pipes: Slab<Pipes>,
    by_container: HashMap<String, usize>,
    subscribers: HashMap<ConnId, Subscriber>,
    registry: Registry,
    scratch: Vec<u8>,
    /// Where log records are built, shared by every container (one loop).
    log_batch: RecordBuf,
    /// Containers whose pipes may still hold data after their budget ran out.
    unfinished: Vec<usize>,
    /// Log records lost per container (a full disk), until it is removed.
    log_loss: HashMap<String, LogLoss>,
}

/// Pipe ends the daemon keeps for a started container (or exec). With a
/// TTY, `stdout` is the pty master, `stderr` is None and `stdin` a dup of
/// the master.
pub struct Stdio {
    pub stdout: File,
    pub stderr: Option<File>,
    pub stdin: Option<File>,
    pub tty: bool,
}

impl Outputs {
    pub fn new(registry: Registry) -> Outputs {
        Outputs {
            pipes: Slab::default(),
            by_container: HashMap::new(),
            subscribers: HashMap::new(),
            registry,
            scratch: Vec::new(),
            log_batch: RecordBuf::default(),
            unfinished: Vec::new(),
            log_loss: HashMap::new(),
        }
    }

    /// Start pumping a container's output (ends non-blocking). Returns the
    /// clients attached before the start, to wake.
    pub fn add(
        &mut self,
        container: &str,
        stdio: Stdio,
        log: Option<LogWriter>,
    ) -> std::io::Result<Vec<ConnId>> {
        let tty = stdio.tty.then(|| stdio.stdout.as_raw_fd());
        let slot = self.pipes.insert(Pipes {
            container: container.to_string(),
            tty,
            stdout: Some(stdio.stdout),
            stderr: stdio.stderr,
            stdin: stdio.stdin,
            log,
            log_failing: false,
            stdin_waiter: None,
        });
        self.by_container.insert(container.to_string(), slot);
        if let Some(p) = self.pipes.get_mut(slot) {
            for f in [&p.stdout, &p.stderr].into_iter().flatten() {
                self.registry.register(
                    &mut SourceFd(&f.as_raw_fd()),
                    Source::Output(slot).token(),
                    Interest::READABLE,
                )?;
            }
            if let Some(f) = &p.stdin {
                self.registry.register(
                    &mut SourceFd(&f.as_raw_fd()),
                    Source::Stdin(slot).token(),
                    Interest::WRITABLE,
                )?;
            }
        }
        Ok(self
            .subscribers
            .iter()
            .filter(|(_, s)| s.container == container)
            .map(|(c, _)| *c)
            .collect())
    }

    /// Attach `conn` to a container's output (before or after it starts).
    pub fn subscribe(
        &mut self,
        container: &str,
        conn: ConnId,
        stdout: bool,
        stderr: bool,
        multiplexed: bool,
    ) {
        self.subscribers.insert(
            conn,
            Subscriber {
                container: container.to_string(),
                stdout,
                stderr,
                multiplexed,
                buf: Vec::new(),
                ended: false,
            },
        );
    }

    pub fn unsubscribe(&mut self, conn: ConnId) -> Vec<ConnId> {
        match self.subscribers.remove(&conn) {
            // Its full buffer may have been what held the pipes back.
            Some(sub) => self.pump_container(&sub.container),
            None => Vec::new(),
        }
    }

    /// Move `conn`'s queued output into `out`. Returns (ended, woken): ended
    /// once the output is over and fully delivered.
    pub fn take(&mut self, conn: ConnId, out: &mut Vec<u8>) -> (bool, Vec<ConnId>) {
        let Some(sub) = self.subscribers.get_mut(&conn) else {
            return (true, Vec::new());
        };
        if out.is_empty() {
            // Hand the buffer over instead of copying it.
            std::mem::swap(out, &mut sub.buf);
        } else {
            out.append(&mut sub.buf);
        }
        let ended = sub.ended;
        let container = sub.container.clone();
        (ended, self.pump_container(&container))
    }

    /// The container will not produce output (it failed to start, or was
    /// removed): end every subscriber still waiting for it.
    pub fn end_container(&mut self, container: &str) -> Vec<ConnId> {
        if self.by_container.contains_key(container) {
            return Vec::new();
        }
        let mut woken = Vec::new();
        for (conn, sub) in self.subscribers.iter_mut() {
            if sub.container == container && !sub.ended {
                sub.ended = true;
                woken.push(*conn);
            }
        }
        woken
    }

    /// Log records of a container that could not be written (a full disk).
    pub fn log_loss(&self, container: &str) -> Option<LogLoss> {
        self.log_loss.get(container).copied()
    }

    /// The container is gone: forget its log loss count.
    pub fn forget(&mut self, container: &str) {
        self.log_loss.remove(container);
    }

    /// Readiness on a container's output pipes.
    pub fn on_output_ready(&mut self, slot: usize) -> Vec<ConnId> {
        match self.pipes.get_mut(slot) {
            Some(_) => self.pump_slot(slot),
            None => Vec::new(),
        }
    }

    /// Room in a container's stdin pipe: wake the client feeding it.
    pub fn on_stdin_ready(&mut self, slot: usize) -> Option<ConnId> {
        self.pipes.get_mut(slot)?.stdin_waiter.take()
    }

    /// Forward client input; returns how much the pipe took (0: full, the
    /// client is woken when there is room). Input for a container without
    /// stdin is discarded.
    pub fn write_stdin(&mut self, container: &str, conn: ConnId, data: &[u8]) -> usize {
        let Some(p) = self
            .by_container
            .get(container)
            .and_then(|&s| self.pipes.get_mut(s))
        else {
            return data.len();
        };
        let Some(stdin) = p.stdin.as_mut() else {
            return data.len();
        };
        loop {
            match stdin.write(data) {
                Ok(n) => {
                    if n < data.len() {
                        // A short write filled the pipe: like WouldBlock, the rest
                        // waits for the writable edge, which must wake this client.
                        p.stdin_waiter = Some(conn);
                    }
                    return n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    p.stdin_waiter = Some(conn);
                    return 0;
                }
                Err(_) => {
                    // The container closed its stdin: drop further input.
                    Self::close_stdin_of(p, &self.registry);
                    return data.len();
                }
            }
        }
    }

    /// The attached client finished its input (StdinOnce semantics).
    pub fn close_stdin(&mut self, container: &str) {
        if let Some(p) = self
            .by_container
            .get(container)
            .and_then(|&s| self.pipes.get_mut(s))
        {
            Self::close_stdin_of(p, &self.registry);
        }
    }

    fn close_stdin_of(p: &mut Pipes, registry: &Registry) {
        if let Some(f) = p.stdin.take() {
            let _ = registry.deregister(&mut SourceFd(&f.as_raw_fd()));
        }
    }

    /// Set the terminal size of a TTY container or exec (SIGWINCH follows).
    pub fn resize(&self, container: &str, height: u16, width: u16) -> std::io::Result<()> {
        let fd = self
            .by_container
            .get(container)
            .and_then(|&s| self.pipes.get(s))
            .and_then(|p| p.tty)
            .ok_or_else(|| std::io::Error::other("no TTY attached"))?;
        set_window_size(fd, height, width)
    }

    /// Whether the container's (or exec's) stdio is a pty.
    pub fn has_tty(&self, container: &str) -> bool {
        self.by_container
            .get(container)
            .and_then(|&s| self.pipes.get(s))
            .is_some_and(|p| p.tty.is_some())
    }

    /// Whether the container's output is still open.
    pub fn is_open(&self, container: &str) -> bool {
        self.by_container.contains_key(container)
    }

    /// Work left from earlier turns (the loop must not sleep while true).
    pub fn has_unfinished(&self) -> bool {
        !self.unfinished.is_empty()
    }

    /// Continue pumping what ran out of budget last turn.
    pub fn pump_unfinished(&mut self) -> Vec<ConnId> {
        let mut woken = Vec::new();
        for slot in std::mem::take(&mut self.unfinished) {
            woken.extend(self.pump_slot(slot));
        }
        woken
    }

    /// Read the pipes while every attached client has room, at most
    /// `BYTES_PER_TURN` bytes.
    fn pump_container(&mut self, container: &str) -> Vec<ConnId> {
        match self.by_container.get(container) {
            Some(&slot) => self.pump_slot(slot),
            None => Vec::new(),
        }
    }

    /// Pump one set of pipes: by slot, not by container, because a
    /// restarted container's new pipes may be added while its previous
    /// run's are still draining (they must still be read to their end and
    /// closed, or their pipes and log file leak).
    fn pump_slot(&mut self, slot: usize) -> Vec<ConnId> {
        let Some(container) = self.pipes.get(slot).map(|p| p.container.clone()) else {
            return Vec::new();
        };
        let container = container.as_str();
        let mut woken = Vec::new();
        // Reused across calls: no allocation or zeroing per read.
        let mut chunk = std::mem::take(&mut self.scratch);
        chunk.resize(READ_CHUNK, 0);
        let mut moved = 0;
        loop {
            if moved >= BYTES_PER_TURN {
                if !self.unfinished.contains(&slot) {
                    self.unfinished.push(slot);
                }
                break;
            }
            let full = self
                .subscribers
                .values()
                .any(|s| s.container == container && !s.ended && s.buf.len() >= CLIENT_BUFFER);
            if full {
                break;
            }
            let Some(p) = self.pipes.get_mut(slot) else {
                break;
            };
            let mut progressed = false;
            for kind in [StreamKind::Stdout, StreamKind::Stderr] {
                let pipe = match kind {
                    StreamKind::Stdout => &mut p.stdout,
                    _ => &mut p.stderr,
                };
                let Some(f) = pipe.as_mut() else { continue };
                let res = loop {
                    match f.read(&mut chunk) {
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                match res {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Ok(n) if n > 0 => {
                        moved += n;
                        let data = &chunk[..n];
                        if let Some(log) = p.log.as_mut() {
                            logged(
                                &mut self.log_loss,
                                container,
                                &mut p.log_failing,
                                log,
                                |log| log.write_with(kind, data, &mut self.log_batch),
                            );
                        }
                        for (conn, s) in self.subscribers.iter_mut() {
                            let wanted = match kind {
                                StreamKind::Stdout => s.stdout,
                                _ => s.stderr,
                            };
                            if s.container == container && !s.ended && wanted {
                                frame(&mut s.buf, kind, data, s.multiplexed);
                                woken.push(*conn);
                            }
                        }
                        progressed = true;
                    }
                    // End of this stream (or a broken pipe): stop watching it.
                    _ => {
                        if let Some(f) = pipe.take() {
                            let _ = self.registry.deregister(&mut SourceFd(&f.as_raw_fd()));
                        }
                        progressed = true;
                    }
                }
            }
            let Some(p) = self.pipes.get_mut(slot) else {
                break;
            };
            if p.stdout.is_none() && p.stderr.is_none() {
                if let Some(log) = p.log.as_mut() {
                    logged(
                        &mut self.log_loss,
                        container,
                        &mut p.log_failing,
                        log,
                        LogWriter::flush_partial,
                    );
                }
                Self::close_stdin_of(p, &self.registry);
                self.pipes.remove(slot);
                // An earlier run's pipes: the current run's clients stay.
                let current = self.by_container.get(container) == Some(&slot);
                if current {
                    self.by_container.remove(container);
                }
                for (conn, s) in self.subscribers.iter_mut() {
                    if current && s.container == container {
                        s.ended = true;
                        woken.push(*conn);
                    }
                }
                break;
            }
            if !progressed {
                break;
            }
        }
        self.scratch = chunk;
        crate::sort::sort(&mut woken);
        woken.dedup();
        woken
    }
}

/// One write to a container's log, its failure counted in `loss` (never
/// silent): a warning when writing starts failing, another with the count
/// when it works again.
fn logged(
    loss: &mut HashMap<String, LogLoss>,
    container: &str,
    failing: &mut bool,
    log: &mut LogWriter,
    write: impl FnOnce(&mut LogWriter) -> std::io::Result<()>,
) {
    let before = log.lost();
    let result = write(log);
    let lost = log.lost().since(before);
    if lost != LogLoss::default() {
        loss.entry(container.to_string()).or_default().add(lost);
    }
    let total = loss.get(container).copied().unwrap_or_default();
    let short = &container[..12.min(container.len())];
    match result {
        Err(e) if !*failing => {
            *failing = true;
            log::warn!(
                "container {short}: log write failed: {}; {} log lines lost so far (inspect: LogLoss)",
                crate::goerr::io_text(&e),
                total.lines
            );
        }
        Ok(()) if *failing => {
            *failing = false;
            log::warn!(
                "container {short}: logging resumed; {} log lines ({} bytes) lost in all",
                total.lines,
                total.bytes
            );
        }
        _ => {}
    }
}

/// TIOCSWINSZ on a pty.
pub fn set_window_size(fd: std::os::fd::RawFd, height: u16, width: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: fd is a pty we own; ws is a valid winsize.
    let r = unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
