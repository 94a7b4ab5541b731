//! A hijacked attach to a container's or an exec's stdio: the log backlog,
//! then live output, with stdin fed under backpressure and detach keys
//! scanned on a TTY.

use super::logs::BACKLOG_PIECE;
use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::engine::Engine;
use crate::reply::{ConnId, Hijacked, Pull};

/// A hijacked attach to a container's (or an exec's) stdio.
pub struct AttachSession {
    /// Container or exec ID (the output pump's key).
    pub key: String,
    pub backlog: Vec<u8>,
    pub backlog_sent: usize,
    pub stream: bool,
    pub stdin: bool,
    pub stdin_once: bool,
    /// With a TTY, the client's half-close ends this attach (the CLI's way
    /// of detaching) and leaves the container's stdin open for the next.
    pub tty: bool,
    /// Exec sessions end only once the process has been reaped, so the
    /// client's follow-up inspect sees the exit code.
    pub exec: Option<String>,
    /// An exec to launch once the head is out (`opened`).
    pub launch: Option<ExecLaunch>,
    pub detach_keys: Vec<u8>,
    /// How much of `detach_keys` the input has matched so far.
    pub matched: usize,
    pub detached: bool,
    /// Client input the stdin pipe has not taken yet (at most one read).
    pub pending: Vec<u8>,
    /// The client closed its input before the process could take it all.
    pub close_pending: bool,
}

/// What an exec start launches when its hijacked head has been written.
pub struct ExecLaunch {
    pub stdout: bool,
    pub stderr: bool,
    /// stdcopy framing (the start's `Tty` was false).
    pub multiplexed: bool,
    pub console: Option<(u16, u16)>,
}

impl AttachSession {
    /// The container (or exec) has not started yet (attach before start).
    fn waiting_for_start(&self, engine: &Engine) -> bool {
        if let Some(id) = &self.exec {
            // An exec whose setup has not reported yet.
            return engine.launches.seq_of(id).is_some();
        }
        engine
            .containers
            .get(&self.key)
            .is_some_and(|e| matches!(e.c.state.status, Status::Created | Status::Restarting))
    }
}

impl AttachSession {
    /// The head is out: as dockerd, a process that cannot be started is
    /// reported inside the stream (the client then reads the exec's exit
    /// code, 126/127).
    fn start_failed(&mut self, engine: &mut Engine, me: ConnId, e: ContainerError, mux: bool) {
        for w in engine.outputs.unsubscribe(me) {
            engine.wake(w);
        }
        let text = match e {
            ContainerError::StartFailed(msg, _) => {
                format!("OCI runtime exec failed: exec failed: {msg}\r\n")
            }
            other => format!("{other}\r\n"),
        };
        crate::stdio::stdcopy::frame(
            &mut self.backlog,
            crate::stdio::stdcopy::StreamKind::Stdout,
            text.as_bytes(),
            mux,
        );
        self.stream = false;
    }
}

impl Hijacked<Engine> for AttachSession {
    fn opened(&mut self, engine: &mut Engine, me: ConnId) {
        let Some(l) = self.launch.take() else { return };
        let Some(id) = self.exec.clone() else { return };
        let framing = l.multiplexed;
        // Subscribe first so no output is missed.
        engine
            .outputs
            .subscribe(&id, me, l.stdout, l.stderr, l.multiplexed);
        if let Err(e) = engine.exec_start(&id, l.console) {
            self.start_failed(engine, me, e, framing);
        }
        // Kept: a setup that fails later is reported with the same framing.
        self.launch = Some(l);
        engine.wake(me);
    }

    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull {
        if self.backlog_sent < self.backlog.len() {
            // `attach?logs=1`: the log first, in pieces the connection can hold.
            let end = self.backlog.len().min(self.backlog_sent + BACKLOG_PIECE);
            out.extend_from_slice(&self.backlog[self.backlog_sent..end]);
            self.backlog_sent = end;
            return Pull::Data;
        }
        if !self.pending.is_empty() && engine.outputs.is_open(&self.key) {
            let n = engine.outputs.write_stdin(&self.key, me, &self.pending);
            self.pending.drain(..n.min(self.pending.len()));
        }
        if self.close_pending && self.pending.is_empty() && engine.outputs.is_open(&self.key) {
            self.close_pending = false;
            engine.outputs.close_stdin(&self.key);
        }
        if self.detached {
            return Pull::End;
        }
        if !self.stream {
            return Pull::End;
        }
        let (ended, woken) = engine.outputs.take(me, out);
        for w in woken {
            engine.wake(w);
        }
        if !out.is_empty() {
            return Pull::Data;
        }
        // An exec whose setup has not reported yet; then its failure, if any.
        if let (Some(id), Some(l)) = (self.exec.clone(), self.launch.as_ref()) {
            if engine.launches.seq_of(&id).is_some() {
                return Pull::Wait(None);
            }
            let framing = l.multiplexed;
            self.launch = None;
            if let Some(e) = engine.launches.failure_of(&id) {
                self.start_failed(engine, me, e, framing);
                if self.backlog_sent < self.backlog.len() {
                    out.extend_from_slice(&self.backlog[self.backlog_sent..]);
                    self.backlog_sent = self.backlog.len();
                }
                return Pull::Data;
            }
        }
        let exec_running = self
            .exec
            .as_deref()
            .and_then(|id| engine.execs.get(id))
            .is_some_and(|e| e.running);
        if ended && !exec_running {
            crate::trace::mark("attach-end", &self.key, None);
            Pull::End
        } else {
            Pull::Wait(None)
        }
    }

    fn input(&mut self, engine: &mut Engine, me: ConnId, data: &[u8]) -> usize {
        if !self.stdin || self.detached {
            return data.len();
        }
        if !engine.outputs.is_open(&self.key) {
            // `docker run -i` sends stdin right after attaching, before the
            // start: hold it (the connection stops reading) until then.
            return if self.waiting_for_start(engine) {
                0
            } else {
                data.len()
            };
        }
        // Input the stdin pipe has not taken yet goes first; until it is
        // gone, the client's further input waits (backpressure).
        if !self.pending.is_empty() {
            let n = engine.outputs.write_stdin(&self.key, me, &self.pending);
            self.pending.drain(..n.min(self.pending.len()));
            if !self.pending.is_empty() {
                return 0;
            }
        }
        // Scan for the detach sequence; a partial match is held back until
        // it completes (detach) or fails (forwarded as ordinary input).
        let mut forward = Vec::with_capacity(data.len());
        for &b in data {
            let keys = &self.detach_keys;
            if !keys.is_empty() && b == keys[self.matched] {
                self.matched += 1;
                if self.matched == keys.len() {
                    self.matched = 0;
                    self.detached = true;
                    engine.outputs.write_stdin(&self.key, me, &forward);
                    engine.wake(me);
                    return data.len();
                }
                continue;
            }
            if self.matched > 0 {
                forward.extend_from_slice(&keys[..self.matched]);
                self.matched = 0;
                if b == keys[0] {
                    self.matched = 1;
                    continue;
                }
            }
            forward.push(b);
        }
        let n = engine.outputs.write_stdin(&self.key, me, &forward);
        self.pending = forward.split_off(n.min(forward.len()));
        data.len()
    }

    fn input_closed(&mut self, engine: &mut Engine, me: ConnId) {
        if self.tty && self.stdin {
            // As dockerd: on a TTY, StdinOnce never closes the container's
            // stdin; the client is leaving, so this attach ends.
            self.detached = true;
            engine.wake(me);
            return;
        }
        if !self.stdin || !self.stdin_once {
            return;
        }
        if engine.outputs.is_open(&self.key) && self.pending.is_empty() {
            engine.outputs.close_stdin(&self.key);
        } else {
            // Close once started and the held input is delivered.
            self.close_pending = true;
        }
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        for w in engine.outputs.unsubscribe(me) {
            engine.wake(w);
        }
        if let Some(ex) = self.exec.as_deref().and_then(|id| engine.execs.get_mut(id)) {
            ex.attached = None;
        }
    }
}
