//! `docker exec`: instances created, started in a running container's
//! namespaces, reaped, resized, inspected.

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::exec::{action, ExecConfig, ExecInstance, MAX_UNSTARTED};
use crate::container::model::Status;
use crate::runtime::exec::{exec_in_pending, ExecSpec};

impl Engine {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&mut self, key: &str, body: &[u8]) -> Result<String, ContainerError> {
        let config: ExecConfig = serde_json::from_slice(body)
            .map_err(|e| ContainerError::Invalid(format!("invalid JSON: {e}")))?;
        let container = self.containers.find(key)?;
        let cid = container.c.id.clone();
        match container.c.state.status {
            Status::Running => {}
            Status::Paused => {
                return Err(ContainerError::Conflict(format!(
                    "Container {cid} is paused, unpause the container before exec"
                )))
            }
            _ => {
                return Err(ContainerError::Conflict(format!(
                    "Container {cid} is not running"
                )))
            }
        }
        if config.cmd.is_empty() {
            return Err(ContainerError::Invalid("No exec command specified".into()));
        }
        if self.execs.unstarted(&cid) >= MAX_UNSTARTED {
            return Err(ContainerError::Conflict(format!(
                "container {cid} has {MAX_UNSTARTED} exec instances that were never started; start or forget them first"
            )));
        }
        let id = crate::container::names::new_id();
        let act = action("exec_create", &config.cmd);
        self.execs.next_seq += 1;
        let seq = self.execs.next_seq;
        self.execs.map.insert(
            id.clone(),
            ExecInstance {
                id: id.clone(),
                container: cid.clone(),
                config,
                started: false,
                running: false,
                pid: 0,
                exit_code: None,
                attached: None,
                seq,
            },
        );
        self.execs.trim();
        self.container_event(&cid, &act, &[("execID", id.clone())]);
        Ok(id)
    }

    /// What `exec_start` checks before launching: the exec exists, has not
    /// run, and its container is running (a hijacked start answers these
    /// with an HTTP error before its head).
    pub fn exec_startable(&self, id: &str) -> Result<(), ContainerError> {
        self.exec_target(id).map(|_| ())
    }

    fn exec_target(
        &self,
        id: &str,
    ) -> Result<(&ExecInstance, &crate::container::registry::Entry), ContainerError> {
        let ex = self
            .execs
            .get(id)
            .ok_or_else(|| ContainerError::NoSuchExec(id.to_string()))?;
        if ex.started {
            return Err(ContainerError::Conflict(format!(
                "Exec command {id} has already run"
            )));
        }
        let cid = &ex.container;
        let entry = self
            .containers
            .get(cid)
            .ok_or_else(|| ContainerError::NotFound(cid.clone()))?;
        match (&entry.live, entry.c.state.status) {
            (Some(_), Status::Running) => Ok((ex, entry)),
            _ => Err(ContainerError::Conflict(format!(
                "Container {cid} is not running"
            ))),
        }
    }

    /// `POST /exec/{id}/start`: launch the process (with the TTY its create
    /// asked for, as dockerd: the start's own `Tty` only picks the stream
    /// framing); its output is keyed by the exec ID (subscribe before calling
    /// this to miss nothing).
    pub fn exec_start(
        &mut self,
        id: &str,
        console: Option<(u16, u16)>,
    ) -> Result<(), ContainerError> {
        let (ex, entry) = self.exec_target(id)?;
        let cid = ex.container.clone();
        let Some(live) = entry.live.as_ref() else {
            return Err(ContainerError::Conflict(format!(
                "Container {cid} is not running"
            )));
        };
        let c = &entry.c;
        let cfg = &ex.config;
        let tty = cfg.tty;
        let console = console.or(match cfg.console_size.as_deref() {
            Some([h, w]) => Some((*h, *w)),
            _ => None,
        });
        let (child, parent) = crate::container::stdio::make(tty, cfg.attach_stdin, console)
            .map_err(|e| ContainerError::Internal(format!("exec stdio: {e}")))?;
        let security = self.security_of(c)?;
        let mut spec = exec_spec(c, cfg, tty, &security, child.spec);
        // Link variables, as dockerd gives execs (none if a child is gone).
        self.links_env_into(c, &mut spec.env);
        let init = live.pid;
        spec.cgroup_dirs = cgroup_dirs(live);
        let result = exec_in_pending(init, &spec);
        drop(child.fds);
        let ex = self
            .execs
            .get_mut(id)
            .ok_or_else(|| ContainerError::NotFound(id.to_string()))?;
        ex.started = true;
        match result {
            Ok(pending) => {
                // Completed by `exec_launched` / `exec_failed` when the
                // child's report arrives (`launching.rs`).
                self.watch_exec(id, pending, parent);
                Ok(())
            }
            Err(e) => {
                self.exec_failed(id, e.exit_code());
                Err(ContainerError::StartFailed(e.to_string(), e.exit_code()))
            }
        }
    }

    /// An exec's process exec'd: its output is watched, its event sent.
    pub(super) fn exec_launched(
        &mut self,
        id: &str,
        pid: nix::unistd::Pid,
        stdio: crate::stdio::output::Stdio,
    ) {
        let Some(ex) = self.execs.get_mut(id) else {
            return;
        };
        ex.running = true;
        ex.pid = pid.as_raw();
        let act = action("exec_start", &ex.config.cmd);
        let (cid, attached) = (ex.container.clone(), ex.attached);
        match self.outputs.add(id, stdio, None) {
            Ok(conns) => conns.into_iter().for_each(|conn| self.wake(conn)),
            Err(e) => {
                log::error!(
                    "exec {}: watching its output: {e}",
                    crate::container::names::short(id)
                )
            }
        }
        self.container_event(&cid, &act, &[("execID", id.to_string())]);
        if let Some(conn) = attached {
            self.wake(conn);
        }
        self.wake_container_waiters();
    }

    /// An exec's process could not be started: its exit code is the
    /// failure's (126/127), its streams end.
    pub(super) fn exec_failed(&mut self, id: &str, code: i32) {
        let attached = match self.execs.get_mut(id) {
            Some(ex) => {
                ex.exit_code = Some(code);
                ex.attached
            }
            None => None,
        };
        for conn in self.outputs.end_container(id) {
            self.wake(conn);
        }
        if let Some(conn) = attached {
            self.wake(conn);
        }
        self.wake_container_waiters();
    }

    /// A reaped child that may be an exec process.
    pub fn on_exec_exit(&mut self, pid: nix::unistd::Pid, code: i32) -> bool {
        let Some(id) = self.execs.by_pid(pid.as_raw()) else {
            return false;
        };
        let Some(ex) = self.execs.get_mut(&id) else {
            return false;
        };
        ex.running = false;
        ex.exit_code = Some(code);
        let (cid, attached) = (ex.container.clone(), ex.attached);
        self.container_event(
            &cid,
            "exec_die",
            &[("execID", id.clone()), ("exitCode", code.to_string())],
        );
        if let Some(conn) = attached {
            self.wake(conn);
        }
        true
    }

    pub fn exec_resize(&mut self, id: &str, h: u16, w: u16) -> Result<(), ContainerError> {
        if self.execs.get(id).is_none() {
            return Err(ContainerError::NoSuchExec(id.to_string()));
        }
        // A process without a pty (or one that has ended) resizes as a
        // no-op, as containerd does.
        if !self.outputs.has_tty(id) {
            return Ok(());
        }
        self.outputs
            .resize(id, h, w)
            .map_err(|e| ContainerError::Conflict(e.to_string()))
    }

    /// An exec instance and the user it runs as (its own, else the
    /// container's), for `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<(&ExecInstance, String), ContainerError> {
        let ex = self
            .execs
            .get(id)
            .ok_or_else(|| ContainerError::NoSuchExec(id.to_string()))?;
        let c = &ex.config;
        let user = if c.user.is_empty() {
            self.containers
                .get(&ex.container)
                .map(|e| e.c.config.user.clone())
                .unwrap_or_default()
        } else {
            c.user.clone()
        };
        Ok((ex, user))
    }
}

/// What an exec (or a healthcheck probe) runs: the container's settings
/// under the exec's own.
pub(super) fn exec_spec(
    c: &crate::container::model::Container,
    cfg: &ExecConfig,
    tty: bool,
    security: &crate::container::security::Security,
    stdio: crate::runtime::spec::StdioSpec,
) -> ExecSpec {
    let mut env = crate::container::create::merge_env(c.config.env.clone(), cfg.env.clone());
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    ExecSpec {
        args: cfg.cmd.clone(),
        env,
        cwd: if cfg.working_dir.is_empty() {
            c.config.working_dir.clone()
        } else {
            cfg.working_dir.clone()
        },
        user: if cfg.user.is_empty() {
            c.config.user.clone()
        } else {
            cfg.user.clone()
        },
        group_add: c.host_config.group_add.clone(),
        privileged: cfg.privileged || c.host_config.privileged,
        cap_add: c.host_config.cap_add.clone(),
        cap_drop: c.host_config.cap_drop.clone(),
        ulimits: c.host_config.launch_ulimits(),
        seccomp: security.seccomp.clone(),
        no_new_privs: security.no_new_privs,
        stdio,
        cgroup_dirs: Vec::new(),
    }
}

/// The directories an exec's child joins (`ExecSpec::cgroup_dirs`).
pub(super) fn cgroup_dirs(live: &crate::container::registry::Live) -> Vec<std::path::PathBuf> {
    let view = live.cgroup.as_ref().map(|cg| cg.view()).unwrap_or_default();
    view.into_iter().map(|d| d.dir).collect()
}
