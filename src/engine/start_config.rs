//! The host configuration a start request carried before v1.24 (the v1.3
//! doc's `POST /containers/{id}/start` with `{"Binds": [...]}`): checked as
//! create checks it, then it replaces the container's, as dockerd's
//! `setHostConfig` did.

use super::Engine;
use crate::container::config::HostConfig;
use crate::container::create;
use crate::container::error::ContainerError;
use crate::container::model::Status;
use crate::container::policy::resources_of;

impl Engine {
    /// Apply `body` (a HostConfig object; empty or `{}`/`null` changes
    /// nothing) to the container `key` before it starts. A running
    /// container keeps its configuration (the start answers 304).
    pub fn container_start_host_config(
        &mut self,
        key: &str,
        body: &[u8],
    ) -> Result<(), ContainerError> {
        let value: serde_json::Value = if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ContainerError::Invalid(format!("invalid JSON: {e}")))?
        };
        match &value {
            serde_json::Value::Null => return Ok(()),
            serde_json::Value::Object(o) if o.is_empty() => return Ok(()),
            serde_json::Value::Object(_) => {}
            _ => {
                return Err(ContainerError::Invalid(
                    "invalid JSON: the start request's body must be a HostConfig object".into(),
                ))
            }
        }
        let id = self.containers.resolve(key)?;
        if self
            .containers
            .get(&id)
            .is_some_and(|e| matches!(e.c.state.status, Status::Running | Status::Paused))
        {
            return Ok(());
        }
        // From the bytes, as create reads its HostConfig: the same decoder
        // (`from_value` would build a second one, ~29 KiB of release binary).
        let mut hc: HostConfig = serde_json::from_slice(body)
            .map_err(|e| ContainerError::Invalid(format!("invalid JSON: {e}")))?;
        create::validate_host_config(&hc)?;
        crate::container::isolation::validate(&hc, &|k| self.containers.resolve(k).is_ok())?;
        crate::runtime::cgroups::validate(&resources_of(&hc))
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        create::network_mode(&hc.network_mode)?;
        let Some(e) = self.containers.get_mut(&id) else {
            return Err(ContainerError::NotFound(key.into()));
        };
        // Settings create decided for the host stay as they were.
        if hc.cgroupns_mode.is_empty() {
            hc.cgroupns_mode = e.c.host_config.cgroupns_mode.clone();
        }
        e.c.host_config = hc;
        self.persist(&id);
        Ok(())
    }
}
