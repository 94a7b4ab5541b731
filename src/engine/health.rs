//! Healthchecks: a probe is an exec in the container started by an engine
//! timer, its output caught in a pipe read once it exits (the first 4 KiB;
//! a probe writing more than a pipe holds blocks until its timeout), its
//! result kept in memory. Nothing is written to disk per probe.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::exec::exec_spec;
use super::Engine;
use crate::container::exec::ExecConfig;
use crate::container::health::{self, clip_output, go_duration, Health, Settings};
use crate::container::model::Status;
use crate::container::registry::Probe;
use crate::runtime::exec::exec_in;
use crate::runtime::spec::StdioSpec;
use crate::timers::Timer;

/// Whatever the pipe holds now, up to the kept length.
fn drain(fd: &OwnedFd) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < health::MAX_OUTPUT {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

impl Engine {
    /// The container just started: its health is "starting" and the first
    /// probe is scheduled.
    pub(super) fn health_start(&mut self, id: &str) {
        let Some(e) = self.containers.get_mut(id) else {
            return;
        };
        let Some(s) = Settings::of(e.c.config.healthcheck.as_ref()) else {
            e.health = None;
            return;
        };
        let h = e.health.get_or_insert_with(Health::default);
        h.status = health::Status::Starting;
        h.failing_streak = 0;
        let wait = h.next_interval(&s, Duration::ZERO);
        self.timers.cancel(&Timer::Health(id.to_string()));
        self.timers
            .add(Instant::now() + wait, Timer::Health(id.to_string()));
    }

    /// The container's process is gone: no more probes.
    pub(super) fn health_stop(&mut self, id: &str) {
        self.timers.cancel(&Timer::Health(id.to_string()));
        self.timers.cancel(&Timer::HealthTimeout(id.to_string()));
        if let Some(p) = self.containers.get_mut(id).and_then(|e| e.probe.take()) {
            let _ = kill(p.pid, Signal::SIGKILL);
        }
    }

    /// `Timer::Health`: start a probe.
    pub(super) fn health_probe(&mut self, id: &str) {
        let Some(e) = self.containers.get(id) else {
            return;
        };
        let (Some(live), Status::Running) = (&e.live, e.c.state.status) else {
            return;
        };
        let Some(s) = Settings::of(e.c.config.healthcheck.as_ref()) else {
            return;
        };
        if e.probe.is_some() {
            return;
        }
        let start = SystemTime::now();
        let began = Instant::now();
        let pipe = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK);
        let (r, w) = match pipe {
            Ok(p) => p,
            Err(err) => {
                self.health_result(
                    id,
                    &s,
                    (start, began),
                    1,
                    format!("probe output pipe: {err}"),
                );
                return;
            }
        };
        // pipe2 made both ends non-blocking: the probe's end blocks again.
        let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()));
        let cfg = ExecConfig {
            cmd: s.cmd.clone(),
            ..ExecConfig::default()
        };
        let stdio = StdioSpec {
            stdin: None,
            stdout: w.as_raw_fd(),
            stderr: w.as_raw_fd(),
            tty: false,
        };
        // A probe is confined like any exec (the container's seccomp profile).
        let security = match self.security_of(&e.c) {
            Ok(sec) => sec,
            Err(err) => {
                self.health_result(id, &s, (start, began), 1, format!("probe: {err}"));
                return;
            }
        };
        let mut spec = exec_spec(&e.c, &cfg, false, &security, stdio);
        spec.cgroup_dirs = super::exec::cgroup_dirs(live);
        let launched = exec_in(live.pid, &spec);
        drop(w);
        match launched {
            Ok(pid) => {
                if let Some(e) = self.containers.get_mut(id) {
                    e.probe = Some(Probe {
                        pid,
                        output: r,
                        start,
                        began,
                        timed_out: false,
                    });
                }
                self.timers.add(
                    Instant::now() + s.timeout,
                    Timer::HealthTimeout(id.to_string()),
                );
            }
            Err(err) => {
                let code = err.exit_code();
                self.health_result(id, &s, (start, began), code, err.to_string());
            }
        }
    }

    /// `Timer::HealthTimeout`: the probe took too long; its exit records it.
    pub(super) fn health_timeout(&mut self, id: &str) {
        if let Some(p) = self.containers.get_mut(id).and_then(|e| e.probe.as_mut()) {
            p.timed_out = true;
            let _ = kill(p.pid, Signal::SIGKILL);
        }
    }

    /// A reaped child that may be a probe.
    pub fn on_probe_exit(&mut self, pid: Pid, code: i32) -> bool {
        let Some(id) = self
            .containers
            .iter()
            .find(|e| e.probe.as_ref().is_some_and(|p| p.pid == pid))
            .map(|e| e.c.id.clone())
        else {
            return false;
        };
        let Some(e) = self.containers.get_mut(&id) else {
            return true;
        };
        let Some(p) = e.probe.take() else {
            return true;
        };
        let Some(s) = Settings::of(e.c.config.healthcheck.as_ref()) else {
            return true;
        };
        self.timers.cancel(&Timer::HealthTimeout(id.clone()));
        let (code, output) = if p.timed_out {
            (
                -1,
                format!("Health check exceeded timeout ({})", go_duration(s.timeout)),
            )
        } else {
            (code, clip_output(&drain(&p.output)))
        };
        self.health_result(&id, &s, (p.start, p.began), code, output);
        true
    }

    /// Record a result, publish a status change, schedule the next probe.
    /// `start`: when the probe began, on the wall clock (shown in its log)
    /// and on the monotonic clock (the start period is measured on it).
    fn health_result(
        &mut self,
        id: &str,
        s: &Settings,
        start: (SystemTime, Instant),
        code: i32,
        output: String,
    ) {
        let Some(e) = self.containers.get_mut(id) else {
            return;
        };
        // Time since the container's start, monotonic; no run: past any start period.
        let started = e.live.as_ref().map(|l| l.started);
        let after_start =
            |t: Instant| started.map_or(Duration::MAX, |s| t.saturating_duration_since(s));
        let h = e.health.get_or_insert_with(Health::default);
        let result = health::Result {
            start: start.0,
            end: SystemTime::now(),
            exit_code: code,
            output,
        };
        let changed = h.record(s, result, after_start(start.1));
        let wait = h.next_interval(s, after_start(Instant::now()));
        let running = e.c.state.status == Status::Running && e.live.is_some();
        if let Some(st) = changed {
            self.container_event(id, &format!("health_status: {}", st.as_str()), &[]);
        }
        if running {
            self.timers
                .add(Instant::now() + wait, Timer::Health(id.to_string()));
        }
    }
}
