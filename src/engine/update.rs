//! `docker pause` / `unpause`, `rename` and `update` of a container.

use std::time::Instant;

use super::Engine;
use crate::container::config::HostConfig;
use crate::container::create;
use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::container::names;
use crate::container::policy::resources_of;
use crate::runtime::cgroups::FREEZE_TIMEOUT;
use crate::timers::Timer;

/// How often a freezing cgroup is looked at again.
const FREEZE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

impl Engine {
    /// `pause` / `unpause`. `Ok(Some(id))`: the freezer is still freezing;
    /// the answer waits for `poll_freeze` (see `streams::wait::until_paused`).
    pub fn container_pause(
        &mut self,
        key: &str,
        pause: bool,
    ) -> Result<Option<String>, ContainerError> {
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
        if pause {
            if e.freezing.is_some() {
                return Err(ContainerError::Conflict(format!(
                    "Container {id} is already being paused"
                )));
            }
            let frozen = cg
                .freeze_step()
                .map_err(|e| ContainerError::Internal(e.to_string()))?;
            if !frozen {
                // The kernel freezes asynchronously: poll with a timer, and
                // answer once it is frozen (or the freezer gave up).
                let now = Instant::now();
                e.freezing = Some(now + FREEZE_TIMEOUT);
                e.freeze_error = None;
                self.timers
                    .add(now + FREEZE_POLL, Timer::Freeze(id.clone()));
                return Ok(Some(id));
            }
        } else {
            cg.thaw()
                .map_err(|e| ContainerError::Internal(e.to_string()))?;
        }
        e.c.state.status = if pause {
            Status::Paused
        } else {
            Status::Running
        };
        self.persist(&id);
        self.container_event(&id, if pause { "pause" } else { "unpause" }, &[]);
        Ok(None)
    }

    /// A freezing container's timer: frozen now (the pause is done), still
    /// freezing (look again), or past the deadline (thaw; the pause fails).
    pub(super) fn poll_freeze(&mut self, id: &str) {
        let Some(e) = self.containers.get_mut(id) else {
            return;
        };
        let Some(deadline) = e.freezing else { return };
        let Some(cg) = e.live.as_ref().and_then(|l| l.cgroup.as_ref()) else {
            e.freezing = None;
            e.freeze_error = Some("the container exited while being paused".into());
            self.wake_container_waiters();
            return;
        };
        let now = Instant::now();
        match cg.freeze_step() {
            Ok(true) => {
                e.freezing = None;
                e.c.state.status = Status::Paused;
                self.persist(id);
                self.container_event(id, "pause", &[]);
            }
            Ok(false) if now < deadline => {
                self.timers
                    .add(now + FREEZE_POLL, Timer::Freeze(id.to_string()));
                return;
            }
            result => {
                let _ = cg.thaw();
                e.freezing = None;
                e.freeze_error = Some(match result {
                    Err(err) => err.to_string(),
                    _ => {
                        format!("cgroup of container {id} did not freeze within {FREEZE_TIMEOUT:?}")
                    }
                });
            }
        }
        self.wake_container_waiters();
    }

    pub fn container_rename(&mut self, key: &str, new_name: &str) -> Result<(), ContainerError> {
        let id = self.containers.resolve(key)?;
        let name = names::validate(new_name).map_err(ContainerError::Invalid)?;
        if let Some(owner) = self.name_owner(&name) {
            if owner == id {
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
        crate::failpoint!("container.renamed");
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
}
