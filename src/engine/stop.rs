//! `docker stop`, `kill` and `restart`: signals, the stop timeout.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::container::policy::{parse_signal, stop_signal_of, DEFAULT_STOP_TIMEOUT};
use crate::timers::Timer;

impl Engine {
    /// `POST /containers/{id}/stop`: signal now, SIGKILL after the timeout.
    /// Returns the ID to wait on; NotModified when not running.
    pub fn container_stop(
        &mut self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<String, ContainerError> {
        let id = self.containers.resolve(key)?;
        let e = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
        if e.c.state.status == Status::Restarting {
            self.cancel_restart(&id);
            return Ok(id);
        }
        if !e.c.state.is_alive() {
            return Err(ContainerError::NotModified);
        }
        // Validate before changing anything.
        let sig = match signal
            .filter(|s| !s.is_empty())
            .or(e.c.config.stop_signal.as_deref())
        {
            Some(s) => parse_signal(s)?,
            None => Signal::SIGTERM,
        };
        e.c.manually_stopped = true;
        e.stop_requested = true;
        let t = timeout
            .or(e.c.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        self.persist(&id);
        self.signal_container(&id, sig);
        // A negative timeout waits forever, as does one too far away to
        // represent (`t` is the client's number).
        let deadline = u64::try_from(t)
            .ok()
            .and_then(|t| Instant::now().checked_add(Duration::from_secs(t)));
        // One kill deadline per container: a repeated stop replaces it.
        self.timers.cancel(&Timer::StopKill(id.clone()));
        if let Some(at) = deadline {
            self.timers.add(at, Timer::StopKill(id.clone()));
        }
        Ok(id)
    }

    /// Stopping (or killing) a restarting container cancels its restart:
    /// the back-off timer, or the policy restart's launch in flight (its
    /// child is killed when it reports, `launching.rs`). It stays exited.
    fn cancel_restart(&mut self, id: &str) {
        let Some(e) = self.containers.get_mut(id) else {
            return;
        };
        e.c.manually_stopped = true;
        e.c.state.status = Status::Exited;
        self.timers.cancel(&Timer::Restart(id.to_string()));
        self.launches.set_cancelled(id, true);
        self.persist(id);
        self.wake_container_waiters();
    }

    /// A cancelled launch has ended (its child killed): the container is
    /// left as the stop made it.
    pub(super) fn launch_cancelled(&mut self, id: &str) {
        if let Some(e) = self.containers.get_mut(id) {
            e.c.start_pending = false;
        }
        self.persist(id);
        self.wake_container_waiters();
    }

    /// Deliver a signal to the container's process (thawing a paused one
    /// first so a SIGKILL lands), publishing a `kill` event.
    /// Like dockerd, a paused container is resumed after its stop signal or
    /// SIGKILL, so that the signal can act.
    pub(super) fn signal_container(&mut self, id: &str, sig: Signal) {
        let Some(e) = self.containers.get_mut(id) else {
            return;
        };
        let Some(live) = e.live.as_ref() else { return };
        let _ = nix::sys::signal::kill(live.pid, sig);
        let stop_signal = stop_signal_of(&e.c);
        if e.c.state.status == Status::Paused && (sig == Signal::SIGKILL || sig == stop_signal) {
            if let Some(cg) = &live.cgroup {
                let _ = cg.thaw();
            }
            e.c.state.status = Status::Running;
        }
        self.container_event(id, "kill", &[("signal", (sig as i32).to_string())]);
    }

    /// `POST /containers/{id}/kill`. Returns the ID to wait on when the
    /// signal is SIGKILL: dockerd answers that kill only once the container
    /// has exited.
    pub fn container_kill(
        &mut self,
        key: &str,
        signal: Option<&str>,
    ) -> Result<Option<String>, ContainerError> {
        let id = self.containers.resolve(key)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => Signal::SIGKILL,
        };
        let e = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
        if e.c.state.status == Status::Restarting {
            // dockerd counts a restarting container as running: no process
            // to signal, but a fatal signal is a manual stop that cancels
            // the restart.
            if sig == Signal::SIGKILL || sig == stop_signal_of(&e.c) {
                self.cancel_restart(&id);
            }
            return Ok(None);
        }
        if !e.c.state.is_alive() {
            return Err(ContainerError::Conflict(format!(
                "Container {id} is not running"
            )));
        }
        // dockerd: killing with SIGKILL or the stop signal is a manual stop,
        // so restart policies leave the container down.
        let stop_signal = stop_signal_of(&e.c);
        if sig == Signal::SIGKILL || sig == stop_signal {
            e.c.manually_stopped = true;
            self.persist(&id);
        }
        self.signal_container(&id, sig);
        Ok((sig == Signal::SIGKILL).then_some(id))
    }

    /// `POST /containers/{id}/restart`: stop, then start when it has exited.
    /// Returns the ID to wait on when the restart waits for an exit; a
    /// container that was not running is started and answered at once.
    pub fn container_restart(
        &mut self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<Option<String>, ContainerError> {
        let id = self.containers.resolve(key)?;
        match self.container_stop(&id, timeout, signal) {
            Ok(_) => {
                if let Some(e) = self.containers.get_mut(&id) {
                    if e.live.is_some() {
                        e.start_on_exit = true;
                        return Ok(Some(id));
                    }
                }
            }
            Err(ContainerError::NotModified) => {}
            Err(e) => return Err(e),
        }
        self.container_start(&id)?;
        self.container_event(&id, "restart", &[]);
        Ok(None)
    }
}
