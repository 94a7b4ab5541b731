//! The networks API in the engine: `docker network` create, inspect, remove,
//! connect, disconnect, prune; and the networks' state.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::model::Container;
use crate::container::names::new_id;
use crate::container::policy::now;
use crate::events::Event;
use crate::network::bridge::{self, HostLock};
use crate::network::error::NetworkError;
use crate::network::ipam::{self, Subnet};
use crate::network::netlink::NetNs;
use crate::store::networks::{Endpoint, Lookup, Network, NetworkStore};

/// The default bridge's name unless daemon.json says otherwise.
pub const DEFAULT_BRIDGE: &str = "coracle0";

/// The networks' state: records and the host locks this daemon holds.
#[derive(Debug)]
pub struct Networks {
    pub store: NetworkStore,
    locks: Vec<HostLock>,
}

impl Networks {
    pub fn hold(&mut self, lock: HostLock) {
        self.locks.push(lock);
    }

    pub fn release_locks(&mut self) {
        self.locks.clear();
    }

    pub fn open(data_root: &std::path::Path) -> Result<Networks, String> {
        let store = NetworkStore::open(data_root)
            .map_err(|e| format!("open network store under {}: {e}", data_root.display()))?;
        Ok(Networks {
            store,
            locks: Vec::new(),
        })
    }

    /// The default bridge network's record.
    pub fn default_net(&self) -> Option<&Network> {
        self.store.by_name("bridge")
    }

    /// The networks container `id` has an endpoint on.
    pub fn of_container<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = (&'a Network, &'a Endpoint)> + 'a {
        self.store
            .nets
            .values()
            .filter_map(move |n| n.endpoints.get(id).map(|e| (n, e)))
    }
}

/// The endpoint settings the create request gave for network `net`
/// (`NetworkingConfig.EndpointsConfig`, by name or ID).
pub fn endpoint_config<'a>(c: &'a Container, net: &Network) -> Option<&'a Value> {
    let m = c.networking.as_ref()?.as_object()?;
    // The CLI names the default network `default` when no --network is given.
    m.get(&net.name)
        .or_else(|| m.get(&net.id))
        .or_else(|| m.get("default").filter(|_| net.is_default()))
}

/// `POST /networks/create`, decoded.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateNetwork {
    pub name: String,
    pub driver: String,
    pub internal: bool,
    pub attachable: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Value>,
    pub options: Option<std::collections::BTreeMap<String, String>>,
    pub labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
}

/// `--ipv6`: the IPv6 subnet of the request's IPAM config (a unique-local
/// /64 made from the network's ID if none is given, as dockerd picks one
/// from its ULA pool) and its gateway (the subnet's first address unless
/// given).
fn ipv6_config(
    ipam: Option<&Value>,
    id: &str,
) -> Result<(std::net::Ipv6Addr, u8, std::net::Ipv6Addr), NetworkError> {
    use std::net::Ipv6Addr;
    let cfg = ipam
        .and_then(|i| i.get("Config"))
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter().find(|c| {
                c.get("Subnet")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.contains(':'))
            })
        });
    let field = |k: &str| {
        cfg.and_then(|c| c.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (base, prefix) = match field("Subnet") {
        Some(s) => {
            let bad = || NetworkError::Invalid(format!("invalid CIDR address: {s}"));
            let (a, p) = s.split_once('/').ok_or_else(bad)?;
            let a: Ipv6Addr = a.parse().map_err(|_| bad())?;
            let p: u8 = p.parse().map_err(|_| bad())?;
            if !(1..=126).contains(&p) {
                return Err(bad());
            }
            let mask = u128::MAX << (128 - u32::from(p));
            (Ipv6Addr::from(u128::from(a) & mask), p)
        }
        None => {
            // fdXX:XXXX:XXXX:XXXX::/64 from the ID's first 14 hex digits.
            let bits = u64::from_str_radix(id.get(..14).unwrap_or("0"), 16).unwrap_or(0);
            let net = (0xfdu128 << 120) | (u128::from(bits) << 64);
            (Ipv6Addr::from(net), 64)
        }
    };
    let gateway = match field("Gateway") {
        Some(g) => {
            let ip: Ipv6Addr = g
                .parse()
                .map_err(|_| NetworkError::Invalid(format!("invalid gateway address: {g}")))?;
            let mask = u128::MAX << (128 - u32::from(prefix));
            if u128::from(ip) & mask != u128::from(base) {
                return Err(NetworkError::Invalid(format!(
                    "no matching subnet for gateway {g}"
                )));
            }
            ip
        }
        None => Ipv6Addr::from(u128::from(base) + 1),
    };
    Ok((base, prefix, gateway))
}

/// The networks every daemon has and nobody removes.
pub fn is_predefined(name: &str) -> bool {
    matches!(name, "bridge" | "host" | "none")
}

impl Engine {
    /// `host` and `none` as records (stable IDs), as dockerd lists them.
    pub(super) fn predefined_networks(&mut self) {
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if self.networks.store.by_name(name).is_some() {
                continue;
            }
            let n = Network {
                id: new_id(),
                name: name.into(),
                created: now(),
                driver: driver.into(),
                ..Default::default()
            };
            if let Err(e) = self.networks.store.insert(n) {
                log::error!("record network {name}: {e}");
            }
        }
    }

    fn network_event(&mut self, action: &str, n: &Network, container: Option<&str>) {
        let mut ev = Event::new("network", action, &n.id)
            .attr("name", &n.name)
            .attr("type", &n.driver);
        if let Some(c) = container {
            ev = ev.attr("container", c);
        }
        self.publish(ev);
    }

    /// `docker network create`: returns the new network's ID.
    pub fn network_create(&mut self, req: CreateNetwork) -> Result<String, NetworkError> {
        let name = req.name.trim().to_string();
        if name.is_empty() {
            return Err(NetworkError::Invalid(
                "network name must not be empty".into(),
            ));
        }
        if crate::container::names::validate(&name).is_err() || name.contains('/') {
            return Err(NetworkError::Invalid(format!(
                "invalid network name: {name}"
            )));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            "host" | "null" => {
                return Err(NetworkError::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    req.driver
                )))
            }
            d => return Err(NetworkError::NotFound(format!("plugin \"{d}\" not found"))),
        }
        if self.networks.store.by_name(&name).is_some() {
            return Err(NetworkError::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        let cfg = req
            .ipam
            .as_ref()
            .and_then(|i| i.get("Config"))
            .and_then(Value::as_array)
            .and_then(|a| {
                // IPv4 only: an IPv6 pool is left to a later version.
                a.iter().find(|c| {
                    c.get("Subnet")
                        .and_then(Value::as_str)
                        .is_none_or(|s| !s.contains(':'))
                })
            })
            .cloned()
            .unwrap_or(Value::Null);
        let field = |k: &str| cfg.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        let others: Vec<Subnet> = self
            .networks
            .store
            .nets
            .values()
            .filter_map(Network::subnet)
            .collect();
        let subnet = match field("Subnet") {
            Some(s) => {
                let sub = Subnet::parse(s)
                    .ok_or_else(|| NetworkError::Invalid(format!("invalid CIDR address: {s}")))?;
                if others.iter().any(|o| o.overlaps(&sub)) {
                    return Err(NetworkError::Forbidden(
                        "Pool overlaps with other one on this address space".into(),
                    ));
                }
                sub
            }
            None => {
                let mut taken = ipam::routed_subnets();
                taken.extend(others);
                ipam::pick_subnet(&taken).ok_or_else(|| {
                    NetworkError::Forbidden(
                        "all predefined address pools have been fully subnetted".into(),
                    )
                })?
            }
        };
        let range = match field("IPRange") {
            Some(r) => {
                let rs = Subnet::parse(r)
                    .ok_or_else(|| NetworkError::Invalid(format!("invalid CIDR address: {r}")))?;
                if !subnet.contains(rs.base) || rs.prefix < subnet.prefix {
                    return Err(NetworkError::Invalid(format!(
                        "invalid pool request: ip-range {r} is not within subnet {subnet}"
                    )));
                }
                rs.to_string()
            }
            None => String::new(),
        };
        let gateway = match field("Gateway") {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| NetworkError::Invalid(format!("invalid gateway address: {g}")))?;
                if !subnet.contains(ip) {
                    return Err(NetworkError::Invalid(format!(
                        "no matching subnet for gateway {g}"
                    )));
                }
                ip
            }
            None => subnet.first_host(),
        };
        let id = new_id();
        let v6 = match req.enable_ipv6 {
            Some(true) => Some(ipv6_config(req.ipam.as_ref(), &id)?),
            _ => None,
        };
        let options = req.options.unwrap_or_default();
        let bridge_name = options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| format!("br-{}", &id[..12]));
        let net = Network {
            id: id.clone(),
            name,
            created: now(),
            driver: "bridge".into(),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            ip_range: range,
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels.unwrap_or_default(),
            options,
            bridge: bridge_name.clone(),
            subnet6: v6.map(|(b, p, _)| format!("{b}/{p}")).unwrap_or_default(),
            gateway6: v6.map(|(_, _, g)| g.to_string()).unwrap_or_default(),
            endpoints: Default::default(),
        };
        // The record first: a crash after it leaves a network whose bridge
        // start-up makes; the other order would leak a bridge no record names.
        self.networks.store.insert(net.clone())?;
        crate::failpoint!("network.create_recorded");
        if let Err(e) = bridge::ensure(&bridge_name, gateway, &subnet) {
            let _ = bridge::remove(&bridge_name);
            let _ = self.networks.store.remove(&id);
            return Err(NetworkError::Internal(format!(
                "failed to create bridge {bridge_name}: {e}"
            )));
        }
        if let Some((_, prefix, gw6)) = v6 {
            if let Err(e) = bridge::ensure_v6(&bridge_name, gw6, prefix) {
                let _ = bridge::remove(&bridge_name);
                let _ = self.networks.store.remove(&id);
                return Err(NetworkError::Internal(format!(
                    "failed to create bridge {bridge_name}: {e}"
                )));
            }
        }
        crate::failpoint!("network.create_bridge_up");
        self.dns_serve(&id);
        self.firewall_apply();
        self.network_event("create", &net, None);
        Ok(id)
    }

    /// A network's ID, or dockerd's not-found error.
    pub fn network_lookup(&self, key: &str) -> Result<String, NetworkError> {
        self.networks.store.resolve(key).map_err(|e| match e {
            Lookup::NotFound => NetworkError::NotFound(format!("network {key} not found")),
            Lookup::Ambiguous => NetworkError::NotFound(format!(
                "network {key} is ambiguous ({} matches found based on ID prefix)",
                self.networks
                    .store
                    .nets
                    .keys()
                    .filter(|i| i.starts_with(key))
                    .count()
            )),
        })
    }

    /// `docker network rm`.
    pub fn network_remove(&mut self, key: &str) -> Result<(), NetworkError> {
        let id = self.network_lookup(key)?;
        let Some(n) = self.networks.store.nets.get(&id).cloned() else {
            return Err(NetworkError::NotFound(format!("network {key} not found")));
        };
        if is_predefined(&n.name) {
            return Err(NetworkError::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                n.name
            )));
        }
        if let Some((cid, ep)) = n.endpoints.iter().find(|(_, e)| e.active) {
            return Err(NetworkError::Conflict(format!(
                "error while removing network: network {} has active endpoints (name:\"{}\" id:\"{}\")",
                n.name,
                ep.name,
                &cid[..12.min(cid.len())]
            )));
        }
        self.dns.stop(&id);
        bridge::remove(&n.bridge)
            .map_err(|e| NetworkError::Internal(format!("remove bridge {}: {e}", n.bridge)))?;
        crate::failpoint!("network.rm_bridge_removed");
        self.drop_staged_network(&id);
        self.networks.store.remove(&id)?;
        self.firewall_apply();
        self.network_event("destroy", &n, None);
        Ok(())
    }

    /// `docker network connect`: a running container gets its endpoint now
    /// (`ethN`), a stopped one at its next start.
    pub fn network_connect(
        &mut self,
        key: &str,
        container: &str,
        config: Option<Value>,
    ) -> Result<(), VerbError> {
        let id = self.network_lookup(key)?;
        let cid = self.containers.resolve(container)?;
        let Some(net) = self.networks.store.nets.get(&id).cloned() else {
            return Err(NetworkError::NotFound(format!("network {key} not found")).into());
        };
        let Some(entry) = self.containers.get(&cid) else {
            return Err(ContainerError::NotFound(container.into()).into());
        };
        let c = entry.c.clone();
        let mode = crate::container::create::network_mode(&c.host_config.network_mode)?.to_string();
        if net.driver != "bridge"
            || matches!(mode.as_str(), "host" | "none")
            || mode.starts_with("container:")
        {
            return Err(NetworkError::Forbidden(if mode == "none" || net.name == "none" {
                "container cannot be connected to multiple networks with one of the networks in private (none) mode".to_string()
            } else {
                "container cannot be disconnected from host network or connected to host network".to_string()
            })
            .into());
        }
        let on_primary = self.network_id(&mode).ok().as_deref() == Some(id.as_str());
        let listed = c
            .networking
            .as_ref()
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(&net.name) || m.contains_key(&net.id));
        if on_primary || listed || net.endpoints.get(&cid).is_some_and(|e| e.active) {
            return Err(NetworkError::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name.trim_start_matches('/'),
                net.name
            ))
            .into());
        }
        // Remember it for every later start.
        let mut updated = c.clone();
        let mut m = updated
            .networking
            .take()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        m.insert(net.name.clone(), config.unwrap_or_else(|| crate::json!({})));
        updated.networking = Some(Value::Object(m));
        if let Some(pid) = entry.live.as_ref().map(|l| l.pid.as_raw()) {
            let ns = NetNs::of_pid(pid)?;
            let ifname = format!("eth{}", self.networks.of_container(&cid).count());
            self.endpoint_up(&updated, &id, &ns, &ifname, false)?;
        }
        if let Some(e) = self.containers.get_mut(&cid) {
            e.c.networking = updated.networking;
        }
        self.persist(&cid);
        self.network_event("connect", &net, Some(&cid));
        Ok(())
    }

    /// `docker network disconnect`.
    pub fn network_disconnect(&mut self, key: &str, container: &str) -> Result<(), VerbError> {
        let id = self.network_lookup(key)?;
        let Some(net) = self.networks.store.nets.get(&id).cloned() else {
            return Err(NetworkError::NotFound(format!("network {key} not found")).into());
        };
        let cid = self.containers.resolve(container)?;
        let Some(entry) = self.containers.get_mut(&cid) else {
            return Err(ContainerError::NotFound(container.into()).into());
        };
        let mode = entry.c.host_config.network_mode.clone();
        let listed = entry
            .c
            .networking
            .as_mut()
            .and_then(Value::as_object_mut)
            .map(|m| m.remove(&net.name).is_some() | m.remove(&net.id).is_some())
            .unwrap_or(false);
        let primary = mode == net.name || mode == net.id;
        let live = net.endpoints.contains_key(&cid);
        if !listed && !primary && !live {
            return Err(NetworkError::Forbidden(format!(
                "container {} is not connected to network {}",
                &cid[..12.min(cid.len())],
                net.name
            ))
            .into());
        }
        if primary {
            // Started again, it would join no network: dockerd leaves the
            // mode as is and starts it without this network, we use none.
            entry.c.host_config.network_mode = "none".into();
        }
        if let Some(ep) = net.endpoints.get(&cid) {
            if !ep.veth.is_empty() {
                let _ = crate::network::endpoint::detach(&ep.veth);
            }
        }
        if let Some(n) = self.networks.store.nets.get_mut(&id) {
            n.endpoints.remove(&cid);
        }
        self.drop_staged_network(&id);
        self.networks.store.save(&id)?;
        self.persist(&cid);
        self.network_event("disconnect", &net, Some(&cid));
        Ok(())
    }

    /// `docker network prune`: user networks with no live endpoint that
    /// pass `keep`; returns their names.
    pub fn network_prune(&mut self, keep: impl Fn(&Network) -> bool) -> Vec<String> {
        let victims: Vec<(String, String)> = self
            .networks
            .store
            .nets
            .values()
            .filter(|n| !is_predefined(&n.name))
            .filter(|n| !n.endpoints.values().any(|e| e.active))
            .filter(|n| keep(n))
            .map(|n| (n.id.clone(), n.name.clone()))
            .collect();
        let mut gone = Vec::new();
        for (id, name) in victims {
            if self.network_remove(&id).is_ok() {
                gone.push(name);
            }
        }
        gone
    }
}

/// A networks verb that also looks up containers fails either way.
#[derive(Debug)]
pub enum VerbError {
    Network(NetworkError),
    Container(ContainerError),
}

impl From<NetworkError> for VerbError {
    fn from(e: NetworkError) -> Self {
        VerbError::Network(e)
    }
}

impl From<ContainerError> for VerbError {
    fn from(e: ContainerError) -> Self {
        VerbError::Container(e)
    }
}

impl From<std::io::Error> for VerbError {
    fn from(e: std::io::Error) -> Self {
        VerbError::Network(e.into())
    }
}
