//! Forked workers for long filesystem jobs (extracting or writing archives).
//! The loop only moves bytes: request-body data into the worker's stdin pipe,
//! JSON-line messages back from its output pipe, both non-blocking and with
//! backpressure. Fork is safe because the daemon has one thread.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use mio::unix::SourceFd;
use mio::{Interest, Registry};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, Pid};

use crate::reactor::Source;
use crate::reply::Wake;
use crate::slab::Slab;

pub type WorkerId = usize;

/// A job as the worker child runs it. One non-generic child body serves every
/// job: the generic `spawn*` entry points only box their closure, so each job
/// type costs its own code and not another copy of the fork and child setup.
type Job<'a> =
    Box<dyn FnOnce(File, &mut Reporter) -> Result<serde_json::Value, serde_json::Value> + 'a>;

/// Messages queued from one worker before we stop reading its pipe.
const MAX_QUEUED: usize = 256;
/// Longest message line a worker may send.
const MAX_LINE: usize = 1024 * 1024;

/// What a job writes back: progress lines, then exactly one final line.
pub struct Reporter {
    out: File,
}

impl Reporter {
    /// The raw output (for workers started with `spawn_raw`).
    pub fn out_file(&mut self) -> &mut File {
        &mut self.out
    }

    /// Send one message (a JSON value) to the daemon.
    pub fn send(&mut self, msg: &serde_json::Value) -> io::Result<()> {
        let mut line = crate::json::bytes(msg);
        line.push(b'\n');
        self.out.write_all(&line)
    }
}

/// A reaped worker: whose outcome is ready, or one killed for a departed
/// client (whose temporary files nobody else will clean).
pub enum Exited {
    Owner(Wake),
    Killed(Pid),
}

/// The end of a worker's life as the daemon sees it.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The job returned Ok with this value.
    Done(serde_json::Value),
    /// The job returned Err with this value.
    Failed(serde_json::Value),
    /// The process died without a final message.
    Died(String),
}

struct Worker {
    pid: Pid,
    /// Output is raw bytes for the client, not JSON messages.
    raw: bool,
    /// Woken on news; None once killed for a departed client.
    owner: Option<Wake>,
    input: Option<File>,
    output: Option<File>,
    partial: Vec<u8>,
    messages: VecDeque<serde_json::Value>,
    exit: Option<WaitStatus>,
    final_msg: Option<serde_json::Value>,
}

pub struct Workers {
    slab: Slab<Worker>,
    registry: Registry,
    /// Read buffer for raw output, reused (no per-read zeroing).
    scratch: Vec<u8>,
}

impl Workers {
    pub fn new(registry: Registry) -> Workers {
        Workers {
            slab: Slab::default(),
            registry,
            scratch: Vec::new(),
        }
    }

    /// Fork a worker that runs `job`. The job gets the read end of the input
    /// pipe (EOF when the daemon calls `close_input`) and a `Reporter`; its
    /// `Ok`/`Err` value becomes the final message.
    pub fn spawn<F>(&mut self, owner: Wake, job: F) -> io::Result<WorkerId>
    where
        F: FnOnce(File, &mut Reporter) -> Result<serde_json::Value, serde_json::Value>,
    {
        self.start(owner, false, None, Box::new(job))
    }

    /// As `spawn`, with one more descriptor of the daemon's kept open in the
    /// worker (a build's RUN answers pipe).
    pub fn spawn_keeping<F>(
        &mut self,
        owner: Wake,
        keep: std::os::fd::RawFd,
        job: F,
    ) -> io::Result<WorkerId>
    where
        F: FnOnce(File, &mut Reporter) -> Result<serde_json::Value, serde_json::Value>,
    {
        self.start(owner, false, Some(keep), Box::new(job))
    }

    /// Fork a worker whose output is a raw byte stream (an archive) read with
    /// `read_raw`; success is its exit status. Errors are logged by the child.
    pub fn spawn_raw<F>(&mut self, owner: Wake, job: F) -> io::Result<WorkerId>
    where
        F: FnOnce(File, &mut Reporter) -> Result<serde_json::Value, serde_json::Value>,
    {
        self.start(owner, true, None, Box::new(job))
    }

    fn start(
        &mut self,
        owner: Wake,
        raw: bool,
        keep: Option<std::os::fd::RawFd>,
        job: Job<'_>,
    ) -> io::Result<WorkerId> {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let daemon = nix::unistd::getpid();
        // SAFETY: the daemon is single-threaded, so the child owns a
        // consistent copy of the whole address space.
        match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
            ForkResult::Child => {
                // A worker dies with the daemon: one that outlived a kill -9
                // would go on committing images nobody indexes or tags.
                // SAFETY: prctl with integer arguments only.
                unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
                if nix::unistd::getppid() != daemon {
                    // SAFETY: the daemon is already gone; leave at once.
                    unsafe { libc::_exit(1) }
                }
                drop(in_w);
                drop(out_r);
                let code = run_child(in_r, out_w, raw, keep, job);
                // SAFETY: leave without running the parent's atexit handlers
                // or flushing its buffers a second time.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(in_r);
                drop(out_w);
                let input = File::from(in_w);
                let output = File::from(out_r);
                set_nonblocking(&input)?;
                set_nonblocking(&output)?;
                let id = self.slab.insert(Worker {
                    pid: child,
                    raw,
                    owner: Some(owner),
                    input: Some(input),
                    output: Some(output),
                    partial: Vec::new(),
                    messages: VecDeque::new(),
                    exit: None,
                    final_msg: None,
                });
                if let Some(w) = self.slab.get_mut(id) {
                    if let Some(f) = &w.input {
                        self.registry.register(
                            &mut SourceFd(&f.as_raw_fd()),
                            Source::WorkerInput(id).token(),
                            Interest::WRITABLE,
                        )?;
                    }
                    if let Some(f) = &w.output {
                        self.registry.register(
                            &mut SourceFd(&f.as_raw_fd()),
                            Source::WorkerOutput(id).token(),
                            Interest::READABLE,
                        )?;
                    }
                }
                log::debug!("worker {id} started as pid {child}");
                Ok(id)
            }
        }
    }

    /// Feed input; returns how much the pipe took (0 = full, try again when
    /// the owner is woken).
    pub fn write_input(&mut self, id: WorkerId, data: &[u8]) -> io::Result<usize> {
        let w = self.slab.get_mut(id).ok_or(ErrorKind::NotFound)?;
        let input = w.input.as_mut().ok_or(ErrorKind::BrokenPipe)?;
        loop {
            match input.write(data) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }

    /// No more input: the job sees EOF.
    pub fn close_input(&mut self, id: WorkerId) {
        if let Some(w) = self.slab.get_mut(id) {
            if let Some(f) = w.input.take() {
                let _ = self.registry.deregister(&mut SourceFd(&f.as_raw_fd()));
            }
        }
    }

    /// Progress messages received so far.
    pub fn take_messages(&mut self, id: WorkerId) -> Vec<serde_json::Value> {
        let Some(w) = self.slab.get_mut(id) else {
            return Vec::new();
        };
        let msgs: Vec<_> = w.messages.drain(..).collect();
        if !msgs.is_empty() {
            // Room again: the output pipe may hold more.
            let _ = Self::read_output(w, &self.registry);
        }
        msgs
    }

    /// The final outcome once the worker has exited and its output is
    /// drained; the worker is then forgotten.
    pub fn take_outcome(&mut self, id: WorkerId) -> Option<Outcome> {
        let w = self.slab.get_mut(id)?;
        if w.exit.is_none() || w.output.is_some() || !w.messages.is_empty() {
            return None;
        }
        let w = self.slab.remove(id)?;
        if w.raw {
            return Some(match w.exit {
                Some(WaitStatus::Exited(_, 0)) => Outcome::Done(serde_json::Value::Null),
                other => Outcome::Died(format!("worker failed ({other:?})")),
            });
        }
        Some(match (w.final_msg, w.exit) {
            (Some(m), _) if m.get("ok").is_some() => Outcome::Done(m["ok"].clone()),
            (Some(m), _) if m.get("err").is_some() => Outcome::Failed(m["err"].clone()),
            (_, Some(status)) => {
                Outcome::Died(format!("worker ended without a result ({status:?})"))
            }
            _ => Outcome::Died("worker ended without a result".into()),
        })
    }

    /// Hand a worker to a new owner: its client went away but its work
    /// must finish (a prune's tree deletions).
    pub fn set_owner(&mut self, id: WorkerId, owner: Wake) {
        if let Some(w) = self.slab.get_mut(id) {
            w.owner = Some(owner);
        }
    }

    /// Stop a worker whose client went away; it is reaped later.
    pub fn kill(&mut self, id: WorkerId) {
        if let Some(w) = self.slab.get_mut(id) {
            if w.exit.is_none() {
                let _ = nix::sys::signal::kill(w.pid, Signal::SIGKILL);
            }
            w.owner = None;
            self.close_input(id);
        }
    }

    /// SIGKILL a worker but stay its owner: its outcome (`Died`) still
    /// arrives, so a job that stops its worker learns when it is gone
    /// (`kill` forgets the worker for a departed client instead).
    pub fn terminate(&mut self, id: WorkerId) {
        if let Some(w) = self.slab.get_mut(id) {
            if w.exit.is_none() {
                let _ = nix::sys::signal::kill(w.pid, Signal::SIGKILL);
            }
            self.close_input(id);
        }
    }

    /// A worker's process ID (its temporary files are named by it).
    pub fn pid(&self, id: WorkerId) -> Option<Pid> {
        self.slab.get(id).map(|w| w.pid)
    }

    /// Move up to `max` bytes of a raw worker's output into `out`. Returns
    /// false once the output has ended.
    pub fn read_raw(&mut self, id: WorkerId, out: &mut Vec<u8>, max: usize) -> bool {
        let Some(w) = self.slab.get_mut(id) else {
            return false;
        };
        let Some(f) = w.output.as_mut() else {
            return false;
        };
        self.scratch.resize(max, 0);
        let res = loop {
            match f.read(&mut self.scratch[..max]) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match res {
            Ok(n) if n > 0 => {
                out.extend_from_slice(&self.scratch[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            _ => {
                if let Some(f) = w.output.take() {
                    let _ = self.registry.deregister(&mut SourceFd(&f.as_raw_fd()));
                }
                false
            }
        }
    }

    /// Readiness on one of a worker's pipes; returns whom to wake.
    pub fn on_ready(&mut self, id: WorkerId) -> Option<Wake> {
        let w = self.slab.get_mut(id)?;
        if !w.raw {
            let _ = Self::read_output(w, &self.registry);
        }
        w.owner
    }

    /// A child exited: if it is one of ours, record it. Returns None when it
    /// is not a worker.
    pub fn on_exit(&mut self, pid: Pid, status: WaitStatus) -> Option<Exited> {
        let id = self
            .slab
            .iter()
            .find(|(_, w)| w.pid == pid)
            .map(|(i, _)| i)?;
        let w = self.slab.get_mut(id)?;
        w.exit = Some(status);
        if !w.raw {
            let _ = Self::read_output(w, &self.registry);
        }
        let Some(owner) = w.owner else {
            // Killed for a departed client: nobody will ask for the outcome.
            if let Some(mut w) = self.slab.remove(id) {
                if let Some(f) = w.output.take() {
                    let _ = self.registry.deregister(&mut SourceFd(&f.as_raw_fd()));
                }
            }
            return Some(Exited::Killed(pid));
        };
        Some(Exited::Owner(owner))
    }

    /// Drain the output pipe into messages (bounded).
    fn read_output(w: &mut Worker, registry: &Registry) -> io::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        while w.messages.len() < MAX_QUEUED {
            let Some(out) = w.output.as_mut() else {
                return Ok(());
            };
            match out.read(&mut buf) {
                Ok(0) => {
                    if let Some(f) = w.output.take() {
                        let _ = registry.deregister(&mut SourceFd(&f.as_raw_fd()));
                    }
                }
                Ok(n) => {
                    w.partial.extend_from_slice(&buf[..n]);
                    while let Some(pos) = w.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = w.partial.drain(..=pos).collect();
                        match serde_json::from_slice::<serde_json::Value>(&line) {
                            Ok(v) if v.get("ok").is_some() || v.get("err").is_some() => {
                                w.final_msg = Some(v)
                            }
                            Ok(v) => w.messages.push_back(v),
                            Err(_) => log::warn!("worker {} sent a malformed message", w.pid),
                        }
                    }
                    if w.partial.len() > MAX_LINE {
                        log::warn!("worker {} sent an overlong line; killing it", w.pid);
                        let _ = nix::sys::signal::kill(w.pid, Signal::SIGKILL);
                        w.partial.clear();
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn run_child(
    input: OwnedFd,
    output: OwnedFd,
    raw: bool,
    keep: Option<std::os::fd::RawFd>,
    job: Job<'_>,
) -> i32 {
    // The daemon blocks these for its signalfd; a worker wants defaults.
    let _ = SigSet::all().thread_unblock();
    let input = File::from(input);
    let output = File::from(output);
    let (keep_in, keep_out) = (input.as_raw_fd(), output.as_raw_fd());
    // Drop every inherited socket so clients see their connections close
    // when the daemon closes them, not when this worker exits.
    close_fds_except(&[0, 1, 2, keep_in, keep_out, keep.unwrap_or(-1)]);
    let mut reporter = Reporter { out: output };
    let (msg, code) = match job(input, &mut reporter) {
        Ok(v) => (crate::json!({ "ok": v }), 0),
        Err(e) => (crate::json!({ "err": e }), 1),
    };
    if raw {
        if code != 0 {
            log::error!("worker failed: {}", crate::json::text(&msg["err"]));
        }
        return code;
    }
    if reporter.send(&msg).is_err() {
        return 2;
    }
    code
}

fn close_fds_except(keep: &[i32]) {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in fds {
        if !keep.contains(&fd) {
            // SAFETY: these fds belong to the parent's objects, which this
            // process never uses again.
            unsafe { libc::close(fd) };
        }
    }
}

/// Capacity asked for a worker's pipes: archives stream through them, and the
/// default 64 KiB makes the loop and the worker take turns every 64 KiB.
const PIPE_SIZE: i32 = 1 << 20;

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    // Best effort: over /proc/sys/fs/pipe-max-size (unprivileged) the pipe
    // keeps its default size, which only costs speed.
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    Ok((r, w))
}

fn set_nonblocking(f: &File) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(f, FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(f, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    Ok(())
}

/// Reap every exited child without blocking.
pub fn reap() -> Vec<(Pid, WaitStatus)> {
    use nix::sys::wait::{waitpid, WaitPidFlag};
    let mut out = Vec::new();
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        match status.pid() {
            Some(pid) => out.push((pid, status)),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn round_trip_through_a_forked_worker() {
        let poll = mio::Poll::new().unwrap();
        let mut workers = Workers::new(poll.registry().try_clone().unwrap());
        let id = workers
            .spawn(Wake::Conn(7), |mut input, rep| {
                let mut data = Vec::new();
                input
                    .read_to_end(&mut data)
                    .map_err(|e| serde_json::json!(e.to_string()))?;
                rep.send(&serde_json::json!({"status": "read"})).ok();
                Ok(serde_json::json!(data.len()))
            })
            .unwrap();
        let payload = vec![b'x'; 300_000];
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent < payload.len() {
            sent += workers.write_input(id, &payload[sent..]).unwrap();
            assert!(Instant::now() < deadline, "worker did not drain its input");
        }
        workers.close_input(id);
        let mut msgs = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "worker did not finish");
            workers.on_ready(id);
            msgs.extend(workers.take_messages(id));
            for (pid, status) in reap() {
                let _ = workers.on_exit(pid, status);
            }
            if let Some(outcome) = workers.take_outcome(id) {
                assert!(
                    matches!(outcome, Outcome::Done(ref v) if v == 300_000),
                    "{outcome:?}"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(msgs, vec![serde_json::json!({"status": "read"})]);
    }
}
