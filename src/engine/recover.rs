//! Start-up recovery of containers left by an earlier run, and shutdown.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Engine;
use crate::container::model::Status;
use crate::container::names;
use crate::container::policy::{now, parse_signal, CGROUP_PARENT, DEFAULT_STOP_TIMEOUT};
use crate::container::registry::Entry;
use crate::runtime::cgroups::Cgroup;
use crate::timers::Timer;

/// Containers relaunched per loop turn after a daemon restart, and the
/// time between two such turns.
const BOOT_RESTARTS_PER_TURN: usize = 4;
const BOOT_RESTART_SPACING_MS: u64 = 2;

impl Engine {
    /// After a crash: kill every process left in the cgroup of any container
    /// of this data root, whatever its record says (a crash during a start
    /// leaves one recorded as created), mark those that were running or
    /// starting exited, then queue the restarts the policies ask for (the
    /// loop runs them). Start-up only: it waits for the kernel to empty the
    /// cgroups.
    pub fn recover_containers(&mut self) {
        reap_cgroups(&self.container_dirs.ids());
        let mut restart = Vec::new();
        let mut changed = Vec::new();
        for c in self.container_dirs.load_all() {
            let loaded = serde_json::to_vec(&c).ok();
            let mut c = c;
            let was_alive = c.start_pending
                || matches!(
                    c.state.status,
                    Status::Running | Status::Paused | Status::Restarting
                );
            if was_alive {
                c.start_pending = false;
                c.has_been_started = true;
                c.state.status = Status::Exited;
                c.state.pid = 0;
                if c.state.exit_code == 0 {
                    c.state.exit_code = 255;
                }
                c.state.finished_at = now();
            } else if c.state.status == Status::Removing {
                // A removal the crash interrupted: finish it.
                if let Ok(tmp) = self.container_dirs.remove(&c.id) {
                    self.delete_tree_later(tmp, format!("container {}", c.short_id()));
                }
                continue;
            }
            if c.state.status == Status::Restarting {
                c.state.status = Status::Exited;
            }
            // dockerd's ShouldRestart at daemon start: `always` even after a
            // manual stop, `unless-stopped` unless stopped by hand,
            // `on-failure` after a failure.
            let rp = &c.host_config.restart_policy;
            let boot_restart = c.has_been_started
                && match rp.name.as_str() {
                    "always" => true,
                    "unless-stopped" => !c.manually_stopped,
                    "on-failure" => c.state.exit_code != 0,
                    _ => false,
                };
            if boot_restart {
                c.manually_stopped = false;
                c.state.status = Status::Restarting;
                restart.push(c.id.clone());
            }
            // Only what recovery changed is written (a stopped container's
            // record stays as it is), all with one filesystem sync: 500
            // records fsynced one by one kept the daemon from listening for
            // seconds.
            if serde_json::to_vec(&c).ok() != loaded {
                changed.push(c.clone());
            }
            self.containers.insert(Entry::new(c));
        }
        for (id, e) in self.container_dirs.save_many(&changed) {
            log::error!("recover container {}: {e}", names::short(&id));
        }
        // Relaunched by the loop once it listens, through the restart
        // timer (`exit.rs`), a few per turn: the first requests are answered
        // at once however many containers come back, and they show as
        // `restarting` until then.
        let now = Instant::now();
        for (i, id) in restart.into_iter().enumerate() {
            let wave = (i / BOOT_RESTARTS_PER_TURN) as u64;
            let at = now + Duration::from_millis(wave * BOOT_RESTART_SPACING_MS);
            self.timers.add(at, Timer::Restart(id));
        }
    }

    /// Graceful shutdown: ask every running container to stop. Returns true
    /// while some are still alive.
    pub fn begin_container_shutdown(&mut self) -> bool {
        self.shutting_down = true;
        self.cancel_builds();
        let alive: Vec<(String, Option<String>, Option<i64>)> = self
            .containers
            .iter()
            .filter(|e| e.live.is_some())
            .map(|e| {
                (
                    e.c.id.clone(),
                    e.c.config.stop_signal.clone(),
                    e.c.config.stop_timeout,
                )
            })
            .collect();
        for (id, sig, t) in &alive {
            let sig = sig
                .as_deref()
                .and_then(|s| parse_signal(s).ok())
                .unwrap_or(Signal::SIGTERM);
            self.signal_container(id, sig);
            let t = t.unwrap_or(DEFAULT_STOP_TIMEOUT).max(0) as u64;
            // The daemon's own 60 s shutdown limit bounds this anyway.
            if let Some(at) = Instant::now().checked_add(Duration::from_secs(t)) {
                self.timers.add(at, Timer::StopKill(id.clone()));
            }
        }
        !alive.is_empty()
    }

    pub fn any_container_alive(&self) -> bool {
        self.containers.iter().any(|e| e.live.is_some())
    }
}

/// SIGKILL everything in the cgroups of `ids` (thawed first), wait up to
/// two seconds for them to empty, and remove them.
fn reap_cgroups(ids: &[String]) {
    let groups: Vec<(&String, Cgroup)> = ids
        .iter()
        .filter_map(|id| Cgroup::open(CGROUP_PARENT, id).map(|cg| (id, cg)))
        .collect();
    for (id, cg) in &groups {
        let n = cg.pids().len();
        if n > 0 {
            log::warn!(
                "container {}: killing {n} process(es) left from the previous run",
                names::short(id)
            );
        }
        let _ = cg.thaw();
        cg.kill_all(Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline && groups.iter().any(|(_, cg)| !cg.pids().is_empty()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for (id, cg) in &groups {
        if let Err(e) = cg.remove() {
            log::warn!("container {}: cgroup left: {e}", names::short(id));
        }
    }
}
