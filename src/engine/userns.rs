//! `--userns-remap` in the engine: the mapping resolved at start-up (or a
//! refusal to start), and which containers get it.

use super::Engine;
use crate::config::Config;
use crate::container::config::HostConfig;
use crate::runtime::spec::{LaunchSpec, NetworkMode};
use crate::runtime::userns::IdMap;

/// The daemon's mapping: the subordinate ids of the remap user (made for
/// `default` when missing) and a probe that this kernel can idmap layers
/// under the data root. An error stops the daemon, as dockerd's does.
pub(super) fn open(config: &Config) -> Result<Option<IdMap>, String> {
    let Some(value) = &config.userns_remap else {
        return Ok(None);
    };
    let map = crate::runtime::subids::resolve(value)?;
    crate::runtime::userns::probe(&map, &config.data_root)?;
    log::info!(
        "userns-remap {value}: container root is host uid {} gid {} (image layers idmapped)",
        map.root_uid(),
        map.root_gid()
    );
    Ok(Some(map))
}

/// dockerd's sysctl for a container's own network namespace: ports below
/// 1024 need no capability. A remapped root has none over the namespace
/// (the host's user namespace owns it), so without this `httpd -p 80`
/// fails. (dockerd sets it for every container; coracle, so far, for
/// remapped ones.)
pub(super) fn own_netns_sysctls(h: &HostConfig, spec: &mut LaunchSpec) {
    let own =
        matches!(spec.network, NetworkMode::Join(_)) && !h.network_mode.starts_with("container:");
    if own {
        spec.sysctls
            .entry("net.ipv4.ip_unprivileged_port_start".into())
            .or_insert_with(|| "0".into());
    }
}

impl Engine {
    /// The mapping a container runs with: the daemon's, unless it opted
    /// out with `--userns host`.
    pub(super) fn userns_of(&self, h: &HostConfig) -> Option<IdMap> {
        match h.userns_mode.as_str() {
            "host" => None,
            _ => self.userns.clone(),
        }
    }
}
