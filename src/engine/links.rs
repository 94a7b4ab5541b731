//! Legacy `--link` in the engine, as dockerd keeps it: links registered at
//! create (the child resolved, `container:` modes followed, host mode
//! refused), checked and turned into environment variables and /etc/hosts
//! lines at start on the default bridge, shown in inspect as
//! `/child:/parent/alias`, removed one by one with `DELETE ?link=1`.

use serde_json::Value;

use super::Engine;
use crate::container::config::HostConfig;
use crate::container::error::ContainerError;
use crate::container::links::{self, Link};
use crate::container::model::Container;

const HOST_AND_LINKS: &str =
    "conflicting options: host type networking can't be used with links. This would result in undefined behavior";
const CONTAINER_AND_LINKS: &str =
    "conflicting options: container type network can't be used with links. This would result in undefined behavior";

/// A link of a starting container, resolved.
struct Resolved<'a> {
    /// `/parent/alias`.
    full: String,
    alias: &'a str,
    child: &'a Container,
    running: bool,
    /// The child's address on the default bridge, if it has one now.
    ip: Option<String>,
}

impl Engine {
    /// `network` is the default bridge (by name, ID or `default`).
    fn is_default_bridge(&self, network: &str) -> bool {
        let Some(default) = self.networks.default_net() else {
            return false;
        };
        matches!(network, "bridge" | "default" | "")
            || self.network_id(network).is_ok_and(|id| id == default.id)
    }

    /// Create: the `HostConfig.Links` of a new container on `network`, as
    /// dockerd's `registerLinks` checks them (none kept on a user network).
    pub(super) fn links_register(
        &self,
        h: &HostConfig,
        network: &str,
    ) -> Result<Vec<Link>, ContainerError> {
        let specs: Vec<&str> = match h.extra.get("Links") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        if network == "host" {
            return Err(ContainerError::Invalid(HOST_AND_LINKS.into()));
        }
        if network.starts_with("container:") {
            return Err(ContainerError::Invalid(CONTAINER_AND_LINKS.into()));
        }
        if network != "none" && !self.is_default_bridge(network) {
            return Ok(Vec::new());
        }
        let mut out: Vec<Link> = Vec::new();
        for spec in specs {
            let (name, alias) = links::parse(spec).map_err(ContainerError::Internal)?;
            let not_found = |key: &str| {
                ContainerError::Invalid(format!(
                    "could not get container for {key}: No such container: {key}"
                ))
            };
            let mut child = match self.containers.resolve(&name) {
                Ok(id) => id,
                Err(ContainerError::NotFound(_)) => return Err(not_found(&name)),
                Err(e) => return Err(e),
            };
            // A child sharing another's namespace stands for that one.
            for _ in 0..16 {
                let Some(e) = self.containers.get(&child) else {
                    break;
                };
                let mode = e.c.host_config.network_mode.as_str();
                if mode == "host" {
                    return Err(ContainerError::Invalid(HOST_AND_LINKS.into()));
                }
                let Some(key) = mode.strip_prefix("container:") else {
                    break;
                };
                child = self.containers.resolve(key).map_err(|_| not_found(key))?;
            }
            // A second link under one alias is ignored, as dockerd does.
            if !out.iter().any(|l| l.alias == alias) {
                out.push(Link { alias, child });
            }
        }
        Ok(out)
    }

    /// The links of `c` whose child still exists, resolved.
    fn resolved_links<'a>(&'a self, c: &'a Container) -> Vec<Resolved<'a>> {
        let default = self.networks.default_net();
        c.links
            .iter()
            .filter_map(|l| {
                let e = self.containers.get(&l.child)?;
                let ip = default
                    .and_then(|n| n.endpoints.get(&l.child))
                    .filter(|ep| ep.active && !ep.ip.is_empty())
                    .map(|ep| ep.ip.clone());
                Some(Resolved {
                    full: format!("{}/{}", c.name, l.alias),
                    alias: &l.alias,
                    child: &e.c,
                    running: e.c.state.is_alive(),
                    ip,
                })
            })
            .collect()
    }

    /// Start: the environment `c`'s links give it, after dockerd's checks
    /// (each child on the default bridge, and running). Nothing when `c`
    /// itself is not on the default bridge.
    pub(super) fn links_env(&self, c: &Container) -> Result<Vec<String>, ContainerError> {
        let mode = crate::container::create::network_mode(&c.host_config.network_mode)?;
        if c.links.is_empty() || !self.is_default_bridge(mode) {
            return Ok(Vec::new());
        }
        let resolved = self.resolved_links(c);
        for r in &resolved {
            let child_mode =
                crate::container::create::network_mode(&r.child.host_config.network_mode)
                    .unwrap_or("none");
            let on_default = self.is_default_bridge(child_mode)
                || self
                    .networks
                    .default_net()
                    .is_some_and(|n| n.endpoints.contains_key(&r.child.id));
            if !on_default {
                return Err(ContainerError::Internal(format!(
                    "Cannot link to {}, as it does not belong to the default network",
                    r.child.name
                )));
            }
        }
        let mut env = Vec::new();
        for r in &resolved {
            let ip = match (&r.ip, r.running) {
                (Some(ip), true) => ip,
                _ => {
                    return Err(ContainerError::Internal(format!(
                        "Cannot link to a non running container: {} AS {}",
                        r.child.name, r.full
                    )))
                }
            };
            let exposed: Vec<String> = r
                .child
                .config
                .extra
                .get("ExposedPorts")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            env.extend(links::env(&r.full, ip, &r.child.config.env, &exposed));
        }
        Ok(env)
    }

    /// An exec's environment gets the link variables (none when a check
    /// fails: the exec still runs).
    pub(super) fn links_env_into(&self, c: &Container, env: &mut Vec<String>) {
        if let Ok(link_env) = self.links_env(c) {
            links::merge_env(env, link_env);
        }
    }

    /// /etc/hosts lines (address, names) for `c`'s links to running
    /// children on the default bridge.
    pub(super) fn links_hosts(&self, c: &Container) -> Vec<(String, String)> {
        self.resolved_links(c)
            .into_iter()
            .filter_map(|r| {
                let ip = r.ip?;
                let names = links::host_names(r.alias, &r.child.config.hostname, &r.child.name);
                Some((ip, names))
            })
            .collect()
    }

    /// Inspect's `HostConfig.Links`: `/child:/parent/alias`, or null.
    pub fn links_inspect(&self, c: &Container) -> Value {
        let mut out: Vec<String> = self
            .resolved_links(c)
            .into_iter()
            .map(|r| format!("{}:{}", r.child.name, r.full))
            .collect();
        if out.is_empty() {
            return Value::Null;
        }
        crate::sort::sort(&mut out);
        out.into()
    }

    /// `DELETE /containers/{parent}/{alias}?link=1`: the link goes, both
    /// containers stay (dockerd's `rmLink`).
    pub fn container_remove_link(&mut self, key: &str) -> Result<(), ContainerError> {
        let name = format!("/{}", key.trim_start_matches('/'));
        let Some((parent, alias)) = name.rsplit_once('/').filter(|(p, _)| !p.is_empty()) else {
            self.containers.resolve(key)?;
            return Err(ContainerError::Internal(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        };
        let not_found = || ContainerError::NotFound(key.to_string());
        let pid = self.containers.resolve(parent).map_err(|_| not_found())?;
        let e = self.containers.get_mut(&pid).ok_or_else(not_found)?;
        let before = e.c.links.len();
        e.c.links.retain(|l| l.alias != alias);
        if e.c.links.len() == before {
            return Err(not_found());
        }
        self.persist(&pid);
        Ok(())
    }
}
