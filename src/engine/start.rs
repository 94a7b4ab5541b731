//! `docker start`: the container's process launched into its cgroup, its stdio
//! registered with the loop.

use super::launching::Started;
use super::Engine;
use crate::container::create;
use crate::container::error::ContainerError;
use crate::container::launch_spec::{bind_sources, launch_spec, mounts_of, SpecPaths};
use crate::container::model::{Container, State, Status};
use crate::container::policy::{now, resources_of, CGROUP_PARENT};
use crate::container::registry::Live;
use crate::container::security::{self, Security};
use crate::runtime::cgroups::Cgroup;
use crate::runtime::launch::{launch_pending_synced, StartRecord};
use crate::stdio::jsonlog::{parse_size, LogWriter};
use crate::timers::Timer;
use std::os::fd::AsRawFd;

impl Engine {
    /// `POST /containers/{id}/start`.
    pub fn container_start(&mut self, key: &str) -> Result<(), ContainerError> {
        let id = self.containers.resolve(key)?;
        let e = self
            .containers
            .get(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
        match e.c.state.status {
            Status::Running => return Err(ContainerError::NotModified),
            Status::Paused => {
                return Err(ContainerError::Conflict(
                    "cannot start a paused container, try unpause instead".into(),
                ))
            }
            // A second start while the first one's setup runs: it answers
            // with the first one's outcome (the API waits on it). Like any
            // start it ends a manual stop: a `restart` (stop + start) of a
            // container whose policy restart is launching keeps its policy.
            _ if e.c.start_pending && self.launches.seq_of(&id).is_some() => {
                if let Some(e) = self.containers.get_mut(&id) {
                    e.c.manually_stopped = false;
                }
                // A stop that cancelled that launch is undone by this start.
                self.launches.set_cancelled(&id, false);
                return Ok(());
            }
            Status::Removing => {
                return Err(ContainerError::Conflict(
                    "container is marked for removal and cannot be started".to_string(),
                ))
            }
            _ => {}
        }
        if let Some(e) = self.containers.get_mut(&id) {
            e.c.manually_stopped = false;
            e.restart_delay_ms = 0;
        }
        self.timers.cancel(&Timer::Restart(id.clone()));
        self.launch_container(&id)
    }

    /// Start the container's process (first start, restart, policy restart).
    pub(super) fn launch_container(&mut self, id: &str) -> Result<(), ContainerError> {
        let c = self
            .containers
            .get(id)
            .map(|e| e.c.clone())
            .ok_or_else(|| ContainerError::NotFound(id.into()))?;
        // Record the start before the clone, so that recovery after a crash
        // from here on knows a process may exist.
        let mut span = crate::trace::Span::start("start", id);
        // Recovery treats a pending start as a run that ended with the
        // crash (its cgroup killed, exited 255, restarted per its policy),
        // which is all a `Running` record would tell it: so only this
        // record is written, with the start time, and none once it runs.
        //
        // The loop does not fsync it: it is staged (written, unsynced), and
        // the child fdatasyncs it and renames it in first thing, before it
        // joins its cgroup (`launch_pending_synced`). A crash before leaves
        // the previous record and no process in the cgroup.
        let mut pending = c.clone();
        pending.start_pending = true;
        pending.state.started_at = now();
        let (gen, record) = self
            .stage_record(&pending)
            .map_err(|e| ContainerError::Internal(format!("recording the start: {e}")))?;
        if let Some(e) = self.containers.get_mut(id) {
            e.c.start_pending = true;
        }
        crate::failpoint!("container.start_pending");
        span.phase("record-pending");
        // The span ends at the fork: the rest of the launch (the child's
        // setup up to its exec) is reported later, by the loop.
        let spawned = match self.staged_temp(id, gen) {
            Some((temp, target)) => {
                let record = StartRecord {
                    fd: record.as_raw_fd(),
                    temp: &temp,
                    target: &target,
                };
                self.spawn_process(&c, Some(record), &mut span)
            }
            None => Err(ContainerError::Internal(
                "recording the start: no record".into(),
            )),
        };
        // The child holds its own descriptor of the record now.
        drop(record);
        match spawned {
            Ok(mut started) => {
                started.record = Some(gen);
                self.watch_launch(id, started);
                Ok(())
            }
            Err(e) => {
                self.launch_done(id, Err(clone_start_err(&e)));
                Err(e)
            }
        }
    }

    /// A launch's outcome (`launching.rs`): the container running, or the
    /// start failed (an AutoRemove container goes).
    pub(super) fn launch_done(&mut self, id: &str, result: Result<Live, ContainerError>) {
        if let Some(e) = self.containers.get_mut(id) {
            e.c.start_pending = false;
        }
        match result {
            Ok(live) => {
                let pid = live.pid.as_raw();
                if let Some(e) = self.containers.get_mut(id) {
                    e.live = Some(live);
                    e.c.state = State {
                        status: Status::Running,
                        pid,
                        exit_code: 0,
                        error: String::new(),
                        started_at: now(),
                        finished_at: e.c.state.finished_at.clone(),
                        oom_killed: false,
                    };
                    e.c.has_been_started = true;
                }
                // Not persisted: the pending record stands for it (above).
                crate::failpoint!("container.started");
                self.volumes_started(id);
                self.container_event(id, "start", &[]);
                self.health_start(id);
                self.wake_container_waiters();
            }
            Err(err) => {
                let (msg, code) = match &err {
                    ContainerError::StartFailed(m, c) => (m.clone(), *c),
                    other => (other.to_string(), 128),
                };
                if let Some(e) = self.containers.get_mut(id) {
                    e.c.state.status = if e.c.has_been_started {
                        Status::Exited
                    } else {
                        Status::Created
                    };
                    e.c.state.exit_code = code;
                    e.c.state.error = msg;
                    e.c.state.pid = 0;
                }
                self.persist_later(id);
                self.release_volumes(None);
                for conn in self.outputs.end_container(id) {
                    self.wake(conn);
                }
                self.wake_container_waiters();
                if self
                    .containers
                    .get(id)
                    .is_some_and(|e| e.c.host_config.auto_remove)
                {
                    self.remove_now(id);
                }
            }
        }
    }

    pub(super) fn spawn_process(
        &mut self,
        c: &Container,
        record: Option<StartRecord>,
        span: &mut crate::trace::Span,
    ) -> Result<Started, ContainerError> {
        let id = &c.id;
        let h = &c.host_config;
        let lower_dirs = self
            .images
            .lower_dirs(&c.image)
            .map_err(|e| ContainerError::Internal(format!("image of container: {e}")))?;
        let mode = create::network_mode(&h.network_mode)?;
        // Derived files a crash may have left empty (not fsynced at create).
        if let Err(e) = self
            .container_dirs
            .restore_etc(id, &super::create::etc_files(c, mode))
        {
            log::warn!("container {}: /etc files: {e}", c.short_id());
        }
        // Missing bind sources are created, as dockerd does for -v.
        for src in bind_sources(h)? {
            if !std::path::Path::new(&src).exists() {
                let _ = std::fs::create_dir_all(&src);
            }
        }
        let mounts = self.with_volume_mounts(&c.mount_points, mounts_of(h)?)?;
        let nnp = self.config.no_new_privileges;
        let iso = crate::container::isolation::resolve(h, nnp, &|what, key| {
            let id = self.containers.resolve(key)?;
            let live = self.containers.get(&id).and_then(|e| e.live.as_ref());
            live.map(|l| l.pid).ok_or_else(|| {
                ContainerError::Conflict(format!(
                    "cannot join {what} of a non running container: {id}"
                ))
            })
        })?;
        span.phase("image+mounts+isolation");
        // The namespace (and its endpoints) last: nothing above can fail
        // after it exists.
        let link_env = self.links_env(c)?;
        let (network, netns) = self.network_for_start(c)?;
        span.phase("network");
        let resources = resources_of(h);
        let cgroup = match Cgroup::create(CGROUP_PARENT, id) {
            Ok(cg) => {
                if let Err(e) = cg.apply(&resources) {
                    // Nothing runs in it yet: do not leave it behind.
                    let _ = cg.remove();
                    self.network_release(id);
                    return Err(ContainerError::Invalid(e.to_string()));
                }
                if let Err(e) = cg.apply_device_rules(&iso.device_rules) {
                    log::warn!("container {}: device cgroup: {e}", c.short_id());
                }
                Some(cg)
            }
            Err(e) => {
                log::warn!(
                    "container {}: no cgroup ({e}); limits and top are unavailable",
                    c.short_id()
                );
                None
            }
        };
        span.phase("cgroup");
        let cleanup = |engine: &mut Engine, cg: &Option<Cgroup>| {
            if let Some(cg) = cg {
                let _ = cg.remove();
            }
            engine.network_release(id);
        };
        let console = match c.host_config.console_size.as_slice() {
            [h, w] => Some((*h, *w)),
            _ => None,
        };
        let (child, parent) =
            match crate::container::stdio::make(c.config.tty, c.config.open_stdin, console) {
                Ok(p) => p,
                Err(e) => {
                    cleanup(self, &cgroup);
                    return Err(ContainerError::Internal(format!("container stdio: {e}")));
                }
            };
        let paths = SpecPaths {
            upper_dir: self.container_dirs.upper(id),
            work_dir: self.container_dirs.work(id),
            merged_dir: self.container_dirs.merged(id),
            dir: self.container_dirs.dir(id),
        };
        let mut spec = launch_spec(c, lower_dirs, paths, network, mounts, iso, child.spec);
        crate::container::links::merge_env(&mut spec.env, link_env);
        spec.cgroup_view = cgroup.as_ref().map(Cgroup::view).unwrap_or_default();
        spec.userns = self.userns_of(h);
        if spec.userns.is_some() {
            super::userns::own_netns_sysctls(h, &mut spec);
        }
        let oom_before = cgroup.as_ref().map(|cg| cg.oom_kills()).unwrap_or(0);
        span.phase("stdio+spec");
        // The child joins `spec.cgroup_view`'s cgroup itself (launch.rs).
        // ... and makes `record` (the staged start record) durable before.
        let launched = launch_pending_synced(&spec, record, &mut |_| Ok(()));
        // The child holds its own copies of these ends now.
        drop(child.fds);
        drop(netns);
        match launched {
            Ok(pending) => Ok(Started {
                pending,
                cgroup,
                oom_before,
                stdio: parent,
                record: None,
            }),
            Err(e) => {
                cleanup(self, &cgroup);
                let code = e.exit_code();
                Err(ContainerError::StartFailed(
                    format!("failed to create task for container: {e}"),
                    code,
                ))
            }
        }
    }

    /// The container's seccomp setting and no_new_privs (the daemon's
    /// `no-new-privileges` unless its own options say otherwise).
    pub(super) fn security_of(&self, c: &Container) -> Result<Security, ContainerError> {
        security::parse(
            &c.host_config.security_opt,
            c.host_config.privileged,
            self.config.no_new_privileges,
        )
    }

    pub(super) fn open_log(&self, c: &Container) -> Option<LogWriter> {
        let lc = &c.host_config.log_config;
        let driver = if lc.kind.is_empty() {
            self.config.log_driver.as_str()
        } else {
            lc.kind.as_str()
        };
        if driver == "none" {
            return None;
        }
        let opt = |k: &str| {
            lc.config.get(k).cloned().or_else(|| {
                self.config
                    .log_opts
                    .get(k)
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
        };
        let max_size = opt("max-size").and_then(|s| parse_size(&s)).unwrap_or(0);
        let max_file = opt("max-file").and_then(|s| s.parse().ok()).unwrap_or(1);
        match LogWriter::open(&self.container_dirs.log_path(&c.id), max_size, max_file) {
            Ok(w) => Some(w),
            Err(e) => {
                log::error!("container {}: open log: {e}", c.short_id());
                None
            }
        }
    }
}

/// The error a failed start records (the caller gets the original).
fn clone_start_err(e: &ContainerError) -> ContainerError {
    match e {
        ContainerError::StartFailed(m, c) => ContainerError::StartFailed(m.clone(), *c),
        other => ContainerError::Internal(other.to_string()),
    }
}
