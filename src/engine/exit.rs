//! A container's process exited: its state, restart policies with dockerd's
//! back-off, AutoRemove; engine timers (stop kill deadlines, restarts).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::Engine;
use crate::container::model::Status;
use crate::container::policy::{exit_code, next_backoff_ms, now};
use crate::timers::Timer;

impl Engine {
    /// A child exited: a container's init, or not ours.
    pub fn on_container_exit(&mut self, pid: nix::unistd::Pid, status: WaitStatus) -> bool {
        let Some(id) = self.containers.by_pid(pid) else {
            return false;
        };
        let code = exit_code(status);
        let mut span = crate::trace::Span::start("exit", &id);
        let Some(e) = self.containers.get_mut(&id) else {
            return true;
        };
        let live = e.live.take();
        if let Some(l) = &live {
            span.phase("reaped");
            crate::trace::mark("exit-ran", &id, Some(l.started));
        }
        self.network_release(&id);
        span.phase("network-release");
        let Some(e) = self.containers.get_mut(&id) else {
            return true;
        };
        let ran = live
            .as_ref()
            .map(|l| l.started.elapsed())
            .unwrap_or_default();
        let mut oom = false;
        if let Some(cg) = live.as_ref().and_then(|l| l.cgroup.as_ref()) {
            oom = cg.oom_kills() > live.as_ref().map(|l| l.oom_before).unwrap_or(0);
            // PID 1 is gone, so the kernel kills the rest of the namespace;
            // make sure, then drop the cgroup.
            cg.kill_all(Signal::SIGKILL);
            let _ = cg.remove();
        }
        span.phase("cgroup-remove");
        e.exits += 1;
        e.c.state.status = Status::Exited;
        e.c.state.pid = 0;
        e.c.state.exit_code = code;
        e.c.state.finished_at = now();
        e.c.state.oom_killed = oom;
        let stopping = std::mem::take(&mut e.stop_requested);
        self.timers.cancel(&Timer::StopKill(id.clone()));
        self.health_stop(&id);
        if oom {
            self.container_event(&id, "oom", &[]);
        }
        self.container_event(&id, "die", &[("exitCode", code.to_string())]);
        if stopping {
            self.container_event(&id, "stop", &[]);
        }
        // Staged, fsynced by a worker, then renamed in: a crash before
        // leaves the start's pending record (exited 255, as documented).
        self.persist_later(&id);
        span.phase("events+persist");
        self.release_volumes(Some(&id));
        self.after_exit(&id, code, ran);
        span.phase("after-exit(remove)");
        self.wake_container_waiters();
        true
    }

    /// Decide what follows an exit: removal, a requested restart, a policy
    /// restart after back-off, or nothing.
    pub(super) fn after_exit(&mut self, id: &str, code: i32, ran: Duration) {
        let Some(e) = self.containers.get_mut(id) else {
            return;
        };
        if e.remove_on_exit {
            self.remove_now(id);
            return;
        }
        if e.start_on_exit {
            e.start_on_exit = false;
            e.c.manually_stopped = false;
            if let Err(err) = self.launch_container(id) {
                log::warn!("restart of {}: {err}", crate::container::names::short(id));
            }
            self.container_event(id, "restart", &[]);
            return;
        }
        if self.shutting_down {
            return;
        }
        let rp = &e.c.host_config.restart_policy;
        let restart = !e.c.manually_stopped
            && match rp.name.as_str() {
                "always" | "unless-stopped" => true,
                "on-failure" => {
                    code != 0
                        && (rp.maximum_retry_count == 0
                            || e.c.restart_count < rp.maximum_retry_count)
                }
                _ => false,
            };
        if restart {
            e.restart_delay_ms = next_backoff_ms(e.restart_delay_ms, ran);
            e.c.restart_count += 1;
            e.c.state.status = Status::Restarting;
            let delay = Duration::from_millis(e.restart_delay_ms);
            self.timers
                .add(Instant::now() + delay, Timer::Restart(id.to_string()));
            self.persist_later(id);
        } else if e.c.host_config.auto_remove {
            self.remove_now(id);
        }
    }

    pub fn on_timer(&mut self, t: Timer) {
        match t {
            Timer::StopKill(id) => {
                if self.containers.get(&id).is_some_and(|e| e.live.is_some()) {
                    self.signal_container(&id, Signal::SIGKILL);
                }
            }
            Timer::Health(id) => self.health_probe(&id),
            Timer::HealthTimeout(id) => self.health_timeout(&id),
            Timer::Freeze(id) => self.poll_freeze(&id),
            Timer::LaunchDeadline(id) => self.launch_deadline(&id),
            Timer::WakeTask(t) => self.wake_target(crate::reply::Wake::Task(t)),
            Timer::Restart(id) => {
                let due = self
                    .containers
                    .get(&id)
                    .is_some_and(|e| e.c.state.status == Status::Restarting);
                if due && !self.shutting_down {
                    if let Err(err) = self.launch_container(&id) {
                        log::warn!(
                            "policy restart of {}: {err}",
                            crate::container::names::short(&id)
                        );
                    }
                }
            }
        }
    }
}
