//! Container lifecycle operations on the engine: create, start, stop, kill,
//! restart, pause, rename, update, remove; what happens when a container's
//! process exits (restart policies with dockerd's back-off, AutoRemove); and
//! recovery after a daemon crash. No HTTP here: `api/containers.rs` calls
//! these and shapes the responses.

use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::config::HostConfig;
use super::create;
use super::error::ContainerError;
use super::model::{Container, State, Status};
use super::names;
use super::registry::{Entry, Live};
use crate::engine::Engine;
use crate::events::Event;
use crate::runtime::cgroups::{Cgroup, Resources};
use crate::runtime::launch::launch;
use crate::runtime::spec::{LaunchSpec, MountKind, MountSpec, NetworkMode, RootfsSpec};
use crate::streams::jsonlog::{parse_size, LogWriter};
use crate::timefmt::rfc3339_nano;
use crate::timers::Timer;

/// Our cgroups live under this name in every hierarchy.
pub const CGROUP_PARENT: &str = "coracle";
const DEFAULT_STOP_TIMEOUT: i64 = 10;
const DEFAULT_SHM: u64 = 64 * 1024 * 1024;
/// A container that ran this long before exiting restarts without back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(10);
const BACKOFF_MAX_MS: u64 = 60_000;

fn now() -> String {
    rfc3339_nano(SystemTime::now())
}

/// Docker's signal syntax: "KILL", "SIGKILL", "kill", "9".
pub fn parse_signal(s: &str) -> Result<Signal, ContainerError> {
    let s = s.trim();
    let bad = || ContainerError::Invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

/// The container's stop signal (SIGTERM unless configured).
fn stop_signal_of(c: &Container) -> Signal {
    c.config
        .stop_signal
        .as_deref()
        .and_then(|s| parse_signal(s).ok())
        .unwrap_or(Signal::SIGTERM)
}

pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    }
}

pub fn resources_of(h: &HostConfig) -> Resources {
    Resources {
        memory: h.memory,
        memory_swap: h.memory_swap,
        memory_reservation: h.memory_reservation,
        nano_cpus: h.nano_cpus,
        cpu_shares: h.cpu_shares,
        cpu_quota: h.cpu_quota,
        cpu_period: h.cpu_period,
        cpuset_cpus: h.cpuset_cpus.clone(),
        cpuset_mems: h.cpuset_mems.clone(),
        pids_limit: h.pids_limit.filter(|&p| p > 0),
        blkio_weight: h.blkio_weight,
    }
}

impl Engine {
    /// Attributes dockerd puts on container events.
    pub fn container_event(&mut self, id: &str, action: &str, extra: &[(&str, String)]) {
        let Some(e) = self.containers.get(id) else {
            return;
        };
        let mut ev = Event::new("container", action, id)
            .attr("image", &e.c.config.image)
            .attr("name", e.c.name.trim_start_matches('/'));
        for (k, v) in &e.c.config.labels {
            ev = ev.attr(k, v);
        }
        for (k, v) in extra {
            ev = ev.attr(k, v);
        }
        self.publish(ev);
    }

    fn wake_container_waiters(&mut self) {
        let waiters: Vec<_> = self.containers.waiters.iter().copied().collect();
        for w in waiters {
            self.wake(w);
        }
    }

    fn persist(&mut self, id: &str) {
        if let Some(e) = self.containers.get(id) {
            if let Err(err) = self.container_dirs.save(&e.c) {
                log::error!("persist container {}: {err}", super::names::short(id));
            }
        }
    }

    /// `POST /containers/create`.
    pub fn container_create(
        &mut self,
        body: &[u8],
        name: Option<&str>,
    ) -> Result<(String, Vec<String>), ContainerError> {
        let (mut config, host_config) = super::config::parse_create(body)
            .map_err(|e| ContainerError::Invalid(format!("invalid JSON: {e}")))?;
        if config.image.is_empty() {
            return Err(ContainerError::Invalid(
                "Config cannot be empty in order to create a container".into(),
            ));
        }
        let image = self.images.resolve(&config.image).map_err(|_| {
            ContainerError::NotFound(format!("No such image: {}", image_display(&config.image)))
        })?;
        let image_id = image.id.clone();
        let image_config = image.config.get("config").cloned().unwrap_or_default();
        create::validate_config(&config)?;
        let mut warnings = create::validate_host_config(&host_config)?;
        super::isolation::validate(&host_config, &|k| self.containers.resolve(k).is_ok())?;
        crate::runtime::cgroups::validate(&resources_of(&host_config))
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let (path, args) = create::merge_image(&mut config, &image_config)?;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = names::validate(n).map_err(ContainerError::Invalid)?;
                if let Some(owner) = self.containers.name_owner(&n) {
                    return Err(ContainerError::Conflict(format!(
                        "Conflict. The container name \"{n}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => (0..)
                .map(|i| format!("/{}", names::generate(i)))
                .find(|n| self.containers.name_owner(n).is_none())
                .unwrap_or_default(),
        };
        let id = names::new_id();
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        if host_config.memory > 0 && !crate::host::cgroups().swap && host_config.memory_swap != -1 {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        }
        let network = create::network_mode(&host_config.network_mode)?;
        let c = Container {
            id: id.clone(),
            name,
            created: now(),
            image: image_id,
            path,
            args,
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            start_pending: false,
            config,
            host_config,
        };
        let etc = [
            ("hostname", super::etc::hostname(&c.config.hostname)),
            (
                "hosts",
                super::etc::hosts(&c.host_config, &c.config.hostname, network),
            ),
            (
                "resolv.conf",
                super::etc::resolv_conf(&c.host_config, network),
            ),
        ];
        self.container_dirs.create(&c, &etc)?;
        self.containers.insert(Entry::new(c));
        self.container_event(&id, "create", &[]);
        Ok((id, warnings))
    }

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
        let r = self.launch_container(&id);
        if r.is_err()
            && self
                .containers
                .get(&id)
                .is_some_and(|e| e.c.host_config.auto_remove)
        {
            self.remove_now(&id);
        }
        r
    }

    /// Start the container's process (first start, restart, policy restart).
    fn launch_container(&mut self, id: &str) -> Result<(), ContainerError> {
        let c = self
            .containers
            .get(id)
            .map(|e| e.c.clone())
            .ok_or_else(|| ContainerError::NotFound(id.into()))?;
        // Record the start before the clone, so that recovery after a crash
        // from here on knows a process may exist.
        let mut pending = c.clone();
        pending.start_pending = true;
        self.container_dirs
            .save(&pending)
            .map_err(|e| ContainerError::Internal(format!("recording the start: {e}")))?;
        if let Some(e) = self.containers.get_mut(id) {
            e.c.start_pending = true;
        }
        let result = self.spawn_process(&c);
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
                self.persist(id);
                self.container_event(id, "start", &[]);
                self.wake_container_waiters();
                Ok(())
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
                self.persist(id);
                for conn in self.outputs.end_container(id) {
                    self.wake(conn);
                }
                self.wake_container_waiters();
                Err(err)
            }
        }
    }

    fn spawn_process(&mut self, c: &Container) -> Result<Live, ContainerError> {
        let id = &c.id;
        let h = &c.host_config;
        let lower_dirs = self
            .images
            .lower_dirs(&c.image)
            .map_err(|e| ContainerError::Internal(format!("image of container: {e}")))?;
        let network = match create::network_mode(&h.network_mode)? {
            "host" => NetworkMode::Host,
            _ => NetworkMode::None,
        };
        let iso = super::isolation::resolve(h, &|what, key| {
            let id = self.containers.resolve(key)?;
            let live = self.containers.get(&id).and_then(|e| e.live.as_ref());
            live.map(|l| l.pid).ok_or_else(|| {
                ContainerError::Conflict(format!(
                    "cannot join {what} of a non running container: {id}"
                ))
            })
        })?;
        let resources = resources_of(h);
        let cgroup = match Cgroup::create(CGROUP_PARENT, id) {
            Ok(cg) => {
                if let Err(e) = cg.apply(&resources) {
                    // Nothing runs in it yet: do not leave it behind.
                    let _ = cg.remove();
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
        let cleanup = |cg: &Option<Cgroup>| {
            if let Some(cg) = cg {
                let _ = cg.remove();
            }
        };
        let console = match c.host_config.console_size.as_slice() {
            [h, w] => Some((*h, *w)),
            _ => None,
        };
        let (child, parent) = match super::stdio::make(c.config.tty, c.config.open_stdin, console) {
            Ok(p) => p,
            Err(e) => {
                cleanup(&cgroup);
                return Err(ContainerError::Internal(format!("container stdio: {e}")));
            }
        };
        // Missing bind sources are created, as dockerd does for -v.
        let mut mounts = Vec::new();
        for b in &h.binds {
            let (src, dst, ro) = create::parse_bind(b)?;
            if !std::path::Path::new(&src).exists() {
                let _ = std::fs::create_dir_all(&src);
            }
            mounts.push(MountSpec {
                kind: MountKind::Bind,
                source: src.into(),
                target: dst.into(),
                readonly: ro,
                options: String::new(),
            });
        }
        for m in &h.mounts {
            let (kind, options) = match m.kind.as_str() {
                "tmpfs" => {
                    let mut opts = Vec::new();
                    if let Some(t) = &m.tmpfs_options {
                        if t.size_bytes > 0 {
                            opts.push(format!("size={}", t.size_bytes));
                        }
                        if t.mode != 0 {
                            opts.push(format!("mode={:o}", t.mode));
                        }
                    }
                    (MountKind::Tmpfs, opts.join(","))
                }
                _ => (MountKind::Bind, String::new()),
            };
            mounts.push(MountSpec {
                kind,
                source: m.source.clone().into(),
                target: m.target.clone().into(),
                readonly: m.read_only,
                options,
            });
        }
        for (target, opts) in &h.tmpfs {
            mounts.push(MountSpec {
                kind: MountKind::Tmpfs,
                source: "tmpfs".into(),
                target: target.into(),
                readonly: false,
                options: opts.clone(),
            });
        }
        let mut env = c.config.env.clone();
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={}", c.config.hostname));
        }
        if c.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let dir = self.container_dirs.dir(id);
        let spec = LaunchSpec {
            rootfs: RootfsSpec {
                lower_dirs,
                upper_dir: self.container_dirs.upper(id),
                work_dir: self.container_dirs.work(id),
                merged_dir: self.container_dirs.merged(id),
                readonly: h.readonly_rootfs,
            },
            args: std::iter::once(c.path.clone())
                .chain(c.args.iter().cloned())
                .collect(),
            env,
            cwd: if c.config.working_dir.is_empty() {
                "/".into()
            } else {
                c.config.working_dir.clone()
            },
            user: c.config.user.clone(),
            group_add: h.group_add.clone(),
            hostname: c.config.hostname.clone(),
            domainname: c.config.domainname.clone(),
            network,
            etc_hostname: dir.join("hostname"),
            etc_hosts: dir.join("hosts"),
            etc_resolv_conf: dir.join("resolv.conf"),
            mounts,
            shm_size: if h.shm_size > 0 {
                h.shm_size as u64
            } else {
                DEFAULT_SHM
            },
            privileged: h.privileged,
            pid_ns: iso.pid_ns,
            ipc_ns: iso.ipc_ns,
            devices: iso.devices,
            cap_add: h.cap_add.clone(),
            cap_drop: h.cap_drop.clone(),
            ulimits: h.launch_ulimits(),
            sysctls: h.sysctls.clone(),
            init: h.init.unwrap_or(false),
            stdio: child.spec,
        };
        let oom_before = cgroup.as_ref().map(|cg| cg.oom_kills()).unwrap_or(0);
        let launched = launch(&spec, &mut |pid| match &cgroup {
            Some(cg) => cg.add_pid(pid.as_raw()).map_err(std::io::Error::other),
            None => Ok(()),
        });
        // The child holds its own copies of these ends now.
        drop(child.fds);
        let pid = match launched {
            Ok(pid) => pid,
            Err(e) => {
                cleanup(&cgroup);
                let code = e.exit_code();
                return Err(ContainerError::StartFailed(
                    format!("failed to create task for container: {e}"),
                    code,
                ));
            }
        };
        let log = self.open_log(c);
        let stdio = parent;
        match self.outputs.add(id, stdio, log) {
            Ok(attached) => attached.into_iter().for_each(|conn| self.wake(conn)),
            Err(e) => log::error!("container {}: watching its output: {e}", c.short_id()),
        }
        Ok(Live {
            pid,
            cgroup,
            oom_before,
            started: Instant::now(),
        })
    }

    fn open_log(&self, c: &Container) -> Option<LogWriter> {
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
            // Stopping a restarting container cancels the restart.
            e.c.manually_stopped = true;
            e.c.state.status = Status::Exited;
            self.timers.cancel(&Timer::Restart(id.clone()));
            self.persist(&id);
            self.wake_container_waiters();
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

    /// Deliver a signal to the container's process (thawing a paused one
    /// first so a SIGKILL lands), publishing a `kill` event.
    /// Like dockerd, a paused container is resumed after its stop signal or
    /// SIGKILL, so that the signal can act.
    fn signal_container(&mut self, id: &str, sig: Signal) {
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

    /// `POST /containers/{id}/kill`.
    pub fn container_kill(
        &mut self,
        key: &str,
        signal: Option<&str>,
    ) -> Result<(), ContainerError> {
        let id = self.containers.resolve(key)?;
        let sig = match signal.filter(|s| !s.is_empty()) {
            Some(s) => parse_signal(s)?,
            None => Signal::SIGKILL,
        };
        let e = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
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
        Ok(())
    }

    /// `POST /containers/{id}/restart`: stop, then start when it has exited.
    pub fn container_restart(
        &mut self,
        key: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<String, ContainerError> {
        let id = self.containers.resolve(key)?;
        match self.container_stop(&id, timeout, signal) {
            Ok(_) => {
                if let Some(e) = self.containers.get_mut(&id) {
                    if e.live.is_some() {
                        e.start_on_exit = true;
                        return Ok(id);
                    }
                }
                self.container_start(&id)?;
                self.container_event(&id, "restart", &[]);
                Ok(id)
            }
            Err(ContainerError::NotModified) => {
                self.container_start(&id)?;
                self.container_event(&id, "restart", &[]);
                Ok(id)
            }
            Err(e) => Err(e),
        }
    }

    /// `DELETE /containers/{id}`. Returns Some(id) when removal waits for the
    /// process to die (force on a running container).
    pub fn container_remove(
        &mut self,
        key: &str,
        force: bool,
    ) -> Result<Option<String>, ContainerError> {
        let id = self.containers.resolve(key)?;
        let e = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
        if e.c.state.is_alive() {
            if !force {
                let what = if e.c.state.status == Status::Paused {
                    "paused"
                } else {
                    "running"
                };
                return Err(ContainerError::Conflict(format!(
                    "cannot remove container \"{}\": container is {what}: stop the container before removing or force remove",
                    e.c.name
                )));
            }
            e.remove_on_exit = true;
            e.c.manually_stopped = true;
            self.signal_container(&id, Signal::SIGKILL);
            return Ok(Some(id));
        }
        self.timers.cancel(&Timer::Restart(id.clone()));
        self.remove_now(&id);
        Ok(None)
    }

    fn remove_now(&mut self, id: &str) {
        if let Some(e) = self.containers.get_mut(id) {
            e.c.state.status = Status::Removing;
        }
        self.container_event(id, "destroy", &[]);
        if let Err(e) = self.container_dirs.remove(id) {
            log::error!("remove container {}: {e}", super::names::short(id));
        }
        self.containers.remove(id);
        self.execs.remove_container(id);
        for conn in self.outputs.end_container(id) {
            self.wake(conn);
        }
        self.wake_container_waiters();
    }

    pub fn container_pause(&mut self, key: &str, pause: bool) -> Result<(), ContainerError> {
        let id = self.containers.resolve(key)?;
        let e = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
        match (pause, e.c.state.status) {
            (true, Status::Paused) => {
                return Err(ContainerError::Conflict(format!(
                    "Container {id} is already paused"
                )))
            }
            (false, Status::Running) => {
                return Err(ContainerError::Conflict(format!(
                    "Container {id} is not paused"
                )))
            }
            (_, Status::Running | Status::Paused) => {}
            _ => {
                return Err(ContainerError::Conflict(format!(
                    "Container {id} is not running"
                )))
            }
        }
        let cg = e
            .live
            .as_ref()
            .and_then(|l| l.cgroup.as_ref())
            .ok_or_else(|| {
                ContainerError::Internal(
                    "pause needs the freezer cgroup, which is unavailable".into(),
                )
            })?;
        if pause { cg.freeze() } else { cg.thaw() }
            .map_err(|e| ContainerError::Internal(e.to_string()))?;
        e.c.state.status = if pause {
            Status::Paused
        } else {
            Status::Running
        };
        self.persist(&id);
        self.container_event(&id, if pause { "pause" } else { "unpause" }, &[]);
        Ok(())
    }

    pub fn container_rename(&mut self, key: &str, new_name: &str) -> Result<(), ContainerError> {
        let id = self.containers.resolve(key)?;
        let name = names::validate(new_name).map_err(ContainerError::Invalid)?;
        if let Some(owner) = self.containers.name_owner(&name) {
            if *owner == id {
                return Err(ContainerError::Invalid(
                    "Renaming a container with the same name as its current name".to_string(),
                ));
            }
            return Err(ContainerError::Conflict(format!(
                "Conflict. The container name \"{name}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        let old = self
            .containers
            .get(&id)
            .map(|e| e.c.name.clone())
            .unwrap_or_default();
        self.containers.rename(&id, &name);
        self.persist(&id);
        self.container_event(&id, "rename", &[("oldName", old)]);
        Ok(())
    }

    /// `POST /containers/{id}/update`: resources and restart policy.
    pub fn container_update(
        &mut self,
        key: &str,
        body: &[u8],
    ) -> Result<Vec<String>, ContainerError> {
        let id = self.containers.resolve(key)?;
        let update: HostConfig = if body.iter().all(u8::is_ascii_whitespace) {
            HostConfig::default()
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ContainerError::Invalid(format!("invalid JSON: {e}")))?
        };
        let raw: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let e = self
            .containers
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NotFound(key.into()))?;
        let mut h = e.c.host_config.clone();
        let set = |k: &str| raw.get(k).is_some_and(|v| !v.is_null());
        macro_rules! take { ($($f:ident => $k:literal),*) => { $( if set($k) { h.$f = update.$f.clone(); } )* } }
        take!(memory => "Memory", memory_swap => "MemorySwap", memory_reservation => "MemoryReservation",
              nano_cpus => "NanoCpus", cpu_shares => "CpuShares", cpu_quota => "CpuQuota", cpu_period => "CpuPeriod",
              cpuset_cpus => "CpusetCpus", cpuset_mems => "CpusetMems", pids_limit => "PidsLimit", blkio_weight => "BlkioWeight",
              restart_policy => "RestartPolicy");
        let warnings = create::validate_host_config(&h)?
            .into_iter()
            .filter(|w| !w.contains("bridge"))
            .collect();
        crate::runtime::cgroups::validate(&resources_of(&h))
            .map_err(|err| ContainerError::Invalid(err.to_string()))?;
        if let Some(cg) = e.live.as_ref().and_then(|l| l.cgroup.as_ref()) {
            cg.update(&resources_of(&h))
                .map_err(|err| ContainerError::Invalid(err.to_string()))?;
        }
        e.c.host_config = h;
        self.persist(&id);
        self.container_event(&id, "update", &[]);
        Ok(warnings)
    }

    /// A child exited: a container's init, or not ours.
    pub fn on_container_exit(&mut self, pid: nix::unistd::Pid, status: WaitStatus) -> bool {
        let Some(id) = self.containers.by_pid(pid) else {
            return false;
        };
        let code = exit_code(status);
        let Some(e) = self.containers.get_mut(&id) else {
            return true;
        };
        let live = e.live.take();
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
        e.exits += 1;
        e.c.state.status = Status::Exited;
        e.c.state.pid = 0;
        e.c.state.exit_code = code;
        e.c.state.finished_at = now();
        e.c.state.oom_killed = oom;
        let stopping = std::mem::take(&mut e.stop_requested);
        self.timers.cancel(&Timer::StopKill(id.clone()));
        if oom {
            self.container_event(&id, "oom", &[]);
        }
        self.container_event(&id, "die", &[("exitCode", code.to_string())]);
        if stopping {
            self.container_event(&id, "stop", &[]);
        }
        self.persist(&id);
        self.after_exit(&id, code, ran);
        self.wake_container_waiters();
        true
    }

    /// Decide what follows an exit: removal, a requested restart, a policy
    /// restart after back-off, or nothing.
    fn after_exit(&mut self, id: &str, code: i32, ran: Duration) {
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
                log::warn!("restart of {}: {err}", super::names::short(id));
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
            // dockerd's back-off: 100 ms doubling to a minute, reset after a good run.
            e.restart_delay_ms = if ran >= BACKOFF_RESET || e.restart_delay_ms == 0 {
                100
            } else {
                (e.restart_delay_ms * 2).min(BACKOFF_MAX_MS)
            };
            e.c.restart_count += 1;
            e.c.state.status = Status::Restarting;
            let delay = Duration::from_millis(e.restart_delay_ms);
            self.timers
                .add(Instant::now() + delay, Timer::Restart(id.to_string()));
            self.persist(id);
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
            Timer::Restart(id) => {
                let due = self
                    .containers
                    .get(&id)
                    .is_some_and(|e| e.c.state.status == Status::Restarting);
                if due && !self.shutting_down {
                    if let Err(err) = self.launch_container(&id) {
                        log::warn!("policy restart of {}: {err}", super::names::short(&id));
                    }
                }
            }
        }
    }

    /// After a crash: kill every process left in the cgroup of any container
    /// of this data root, whatever its record says (a crash during a start
    /// leaves one recorded as created), mark those that were running or
    /// starting exited, then restart what the policies say. Start-up only:
    /// it waits for the kernel to empty the cgroups.
    pub fn recover_containers(&mut self) {
        reap_cgroups(&self.container_dirs.ids());
        let mut restart = Vec::new();
        for c in self.container_dirs.load_all() {
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
                let _ = self.container_dirs.remove(&c.id);
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
                restart.push(c.id.clone());
            }
            if let Err(e) = self.container_dirs.save(&c) {
                log::error!("recover container {}: {e}", c.short_id());
            }
            self.containers.insert(Entry::new(c));
        }
        for id in restart {
            if let Err(e) = self.launch_container(&id) {
                log::warn!(
                    "restart of {} after a daemon restart: {e}",
                    super::names::short(&id)
                );
            }
        }
    }

    /// Graceful shutdown: ask every running container to stop. Returns true
    /// while some are still alive.
    pub fn begin_container_shutdown(&mut self) -> bool {
        self.shutting_down = true;
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

fn image_display(name: &str) -> String {
    crate::image::reference::Reference::parse(name)
        .map(|r| r.with_default_tag().familiar())
        .unwrap_or_else(|_| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigusr1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
