//! Networks in the engine's life: the default `bridge` made at start-up
//! and the bridges removed at shutdown; a container's endpoints set up at
//! start (its own namespace, a veth into it, an address from the IPAM) and
//! released at exit.

use std::net::Ipv4Addr;

use serde_json::Value;

use super::networks::{endpoint_config, DEFAULT_BRIDGE};
use super::Engine;
use crate::container::error::ContainerError;
use crate::container::model::Container;
use crate::container::names::new_id;
use crate::container::policy::now;
use crate::network::bridge::{self, HostLock};
use crate::network::endpoint::{self, Attach};
use crate::network::ipam::{self, Subnet};
use crate::network::netlink::{sysctl, NetNs};
use crate::runtime::spec::NetworkMode;
use crate::store::networks::{Endpoint, Network};

impl Engine {
    /// Start-up: the default bridge, the user networks' bridges, and every
    /// endpoint of the last run released (no container survives a restart).
    pub(super) fn networks_open(&mut self) -> Result<(), String> {
        // Two daemons starting at once must not pick the same subnet.
        let _setup =
            HostLock::take("networks", true).map_err(|e| format!("network set-up lock: {e}"))?;
        // Only a network whose record changed is written again: a restart
        // after a clean stop rewrites (and fsyncs) nothing.
        let mut changed = Vec::new();
        for (id, n) in self.networks.store.nets.iter_mut() {
            let before = n.endpoints.len();
            n.endpoints.retain(|_, e| e.static_ip);
            let mut dirty = n.endpoints.len() != before;
            for e in n.endpoints.values_mut() {
                dirty |= e.active || !e.veth.is_empty();
                e.active = false;
                e.veth.clear();
            }
            if dirty {
                changed.push(id.clone());
            }
        }
        for id in &changed {
            let _ = self.networks.store.save(id);
        }
        let ids: Vec<String> = self.networks.store.nets.keys().cloned().collect();
        self.default_bridge_up()?;
        self.predefined_networks();
        for n in self.networks.store.nets.values() {
            if n.is_default() {
                continue;
            }
            let (Some(gw), Some(s)) = (n.gateway_ip(), n.subnet()) else {
                continue;
            };
            if let Err(e) = bridge::ensure(&n.bridge, gw, &s) {
                log::error!("network {}: bridge {}: {e}", n.name, n.bridge);
            }
            if let Some((_, prefix, gw6)) = n.subnet6() {
                if let Err(e) = bridge::ensure_v6(&n.bridge, gw6, prefix) {
                    log::error!("network {}: bridge {} IPv6: {e}", n.name, n.bridge);
                }
            }
        }
        for id in &ids {
            self.dns_serve(id);
        }
        if let Err(e) = sysctl("net.ipv4.ip_forward", "1") {
            log::warn!("cannot enable IPv4 forwarding: {e}");
        }
        self.firewall_apply();
        Ok(())
    }

    fn default_bridge_up(&mut self) -> Result<(), String> {
        let old = self.networks.default_net().cloned();
        let name = match self.config.bridge.as_deref() {
            Some("none") => {
                if let Some(o) = old {
                    let _ = self.networks.store.remove(&o.id);
                }
                return Ok(());
            }
            Some(n) => {
                let lock = HostLock::take(&format!("bridge-{n}"), false)
                    .map_err(|e| format!("bridge lock: {e}"))?
                    .ok_or_else(|| format!("bridge {n} is in use by another coracle daemon"))?;
                self.networks.hold(lock);
                n.to_string()
            }
            // The default name; another daemon on this host holding it
            // makes us take the next (tests run several daemons at once).
            None => {
                let mut found = None;
                for i in 0..64 {
                    let n = if i == 0 {
                        DEFAULT_BRIDGE.to_string()
                    } else {
                        format!("coracle{i}")
                    };
                    if let Some(lock) = HostLock::take(&format!("bridge-{n}"), false)
                        .map_err(|e| format!("bridge lock: {e}"))?
                    {
                        self.networks.hold(lock);
                        found = Some(n);
                        break;
                    }
                }
                let ours = found.ok_or("every default bridge name is in use by other daemons")?;
                bridge::sweep_stale_defaults(DEFAULT_BRIDGE, &ours);
                ours
            }
        };
        let (gw, subnet) = match self.config.bip.as_deref() {
            Some(bip) => Subnet::parse_cidr(bip).ok_or_else(|| format!("invalid bip: {bip}"))?,
            None => match bridge::address_of(&name) {
                Some((ip, p)) => (ip, Subnet::new(ip, p)),
                None => {
                    let mut taken = ipam::routed_subnets();
                    taken.extend(
                        self.networks
                            .store
                            .nets
                            .values()
                            .filter(|n| !n.is_default())
                            .filter_map(Network::subnet),
                    );
                    let s =
                        ipam::pick_subnet(&taken).ok_or("no free subnet for the default bridge")?;
                    (s.first_host(), s)
                }
            },
        };
        bridge::ensure(&name, gw, &subnet).map_err(|e| format!("default bridge {name}: {e}"))?;
        let opt = |k: &str, v: &str| (k.to_string(), v.to_string());
        let net = Network {
            id: old.as_ref().map(|o| o.id.clone()).unwrap_or_else(new_id),
            name: "bridge".into(),
            created: old.map(|o| o.created).unwrap_or_else(now),
            driver: "bridge".into(),
            subnet: subnet.to_string(),
            gateway: gw.to_string(),
            bridge: name.clone(),
            options: [
                opt("com.docker.network.bridge.default_bridge", "true"),
                opt("com.docker.network.bridge.enable_icc", "true"),
                opt("com.docker.network.bridge.enable_ip_masquerade", "true"),
                opt("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
                opt("com.docker.network.bridge.name", &name),
                opt("com.docker.network.driver.mtu", "1500"),
            ]
            .into(),
            ..Default::default()
        };
        self.networks
            .store
            .insert(net)
            .map_err(|e| format!("record the default bridge: {e}"))?;
        log::info!("default bridge {name}: {gw}/{}", subnet.prefix);
        Ok(())
    }

    /// Shutdown: every bridge of ours removed (no container is left).
    pub fn networks_shutdown(&mut self) {
        // Records still staged for a worker's fsync (a shutdown cut short
        // by its limit) written now: the daemon's last act.
        self.flush_records();
        for n in self
            .networks
            .store
            .nets
            .values()
            .filter(|n| !n.bridge.is_empty())
        {
            if let Err(e) = bridge::remove(&n.bridge) {
                log::warn!("remove bridge {}: {e}", n.bridge);
            }
        }
        self.networks.release_locks();
    }

    /// The network namespace a starting container gets. For a bridge
    /// network: a new namespace with `lo` up and one endpoint per network.
    /// The namespace's fd must live until the launch is over.
    pub(super) fn network_for_start(
        &mut self,
        c: &Container,
    ) -> Result<(NetworkMode, Option<NetNs>), ContainerError> {
        let mode = crate::container::create::network_mode(&c.host_config.network_mode)?;
        match mode {
            "host" => return Ok((NetworkMode::Host, None)),
            "none" => return Ok((NetworkMode::None, None)),
            _ => {}
        }
        if let Some(key) = mode.strip_prefix("container:") {
            let id = self.containers.resolve(key)?;
            let pid = self
                .containers
                .get(&id)
                .and_then(|e| e.live.as_ref())
                .map(|l| l.pid.as_raw())
                .ok_or_else(|| {
                    ContainerError::Conflict(format!(
                        "cannot join network namespace of a non running container: {id}"
                    ))
                })?;
            let ns = NetNs::of_pid(pid)?;
            return Ok((NetworkMode::Join(ns.raw()), Some(ns)));
        }
        let net_id = self.network_id(mode)?;
        let mut span = crate::trace::Span::start("network", &c.id);
        let ns = NetNs::create()
            .map_err(|e| ContainerError::Internal(format!("network namespace: {e}")))?;
        span.phase("netns");
        endpoint::loopback_up(&ns)
            .map_err(|e| ContainerError::Internal(format!("network namespace: {e}")))?;
        span.phase("lo-up");
        let ip = self.endpoint_up(c, &net_id, &ns, "eth0", true)?;
        span.phase("eth0(veth+addr+routes+firewall)");
        // Networks connected while the container was stopped (or given at
        // create beside the primary one): eth1, eth2, ...
        let extra: Vec<String> = c
            .networking
            .as_ref()
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let mut n = 1;
        for key in extra {
            let Ok(id) = self.network_id(&key) else {
                continue;
            };
            let is_bridge = self
                .networks
                .store
                .nets
                .get(&id)
                .is_some_and(|x| x.driver == "bridge");
            if id == net_id || !is_bridge {
                continue;
            }
            if let Err(e) = self.endpoint_up(c, &id, &ns, &format!("eth{n}"), false) {
                self.network_release(&c.id);
                return Err(e);
            }
            n += 1;
        }
        self.write_etc(c, Some(ip), &net_id);
        span.phase("etc-files");
        let endpoint_id = self
            .networks
            .store
            .nets
            .get(&net_id)
            .and_then(|n| n.endpoints.get(&c.id))
            .map(|e| e.endpoint_id.clone())
            .unwrap_or_default();
        if let Err(e) = self.publish_ports(c, ip, &endpoint_id) {
            self.network_release(&c.id);
            return Err(e);
        }
        span.phase("ports");
        Ok((NetworkMode::Join(ns.raw()), Some(ns)))
    }

    /// A network's ID from its name, ID or ID prefix.
    pub(super) fn network_id(&self, key: &str) -> Result<String, ContainerError> {
        self.networks
            .store
            .resolve(key)
            .map_err(|_| ContainerError::NotFound(format!("network {key} not found")))
    }

    /// Attach the container to network `net_id` inside `ns` as `ifname`;
    /// returns its address.
    pub(super) fn endpoint_up(
        &mut self,
        c: &Container,
        net_id: &str,
        ns: &NetNs,
        ifname: &str,
        default_route: bool,
    ) -> Result<Ipv4Addr, ContainerError> {
        let net = self
            .networks
            .store
            .nets
            .get(net_id)
            .cloned()
            .ok_or_else(|| ContainerError::NotFound(format!("network {net_id} not found")))?;
        let (Some(subnet), Some(gw)) = (net.subnet(), net.gateway_ip()) else {
            return Err(ContainerError::Internal(format!(
                "network {} has no IPv4 subnet",
                net.name
            )));
        };
        let epc = endpoint_config(c, &net);
        let requested_ip = epc
            .and_then(|v| v.pointer("/IPAMConfig/IPv4Address"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let requested_mac = epc
            .and_then(|v| v.get("MacAddress"))
            .and_then(Value::as_str)
            .or_else(|| c.config.extra.get("MacAddress").and_then(Value::as_str))
            .filter(|s| !s.is_empty());
        let aliases: Vec<String> = epc
            .and_then(|v| v.get("Aliases"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let reserved = net.endpoints.get(&c.id).cloned();
        let ip: Ipv4Addr = match requested_ip {
            Some(s) => {
                let ip: Ipv4Addr = s
                    .parse()
                    .map_err(|_| ContainerError::Invalid(format!("invalid IPv4 address: {s}")))?;
                let taken = net.endpoints.iter().any(|(id, e)| id != &c.id && e.ip == s);
                if !subnet.contains(ip) {
                    return Err(ContainerError::Invalid(format!(
                        "no configured subnet or ip-range contain the IP address {s}"
                    )));
                }
                if taken || ip == gw {
                    return Err(ContainerError::Conflict("Address already in use".into()));
                }
                ip
            }
            None => ipam::allocate(&subnet, net.ip_range().as_ref(), gw, |ip| net.in_use(ip))
                .ok_or_else(|| {
                    ContainerError::Internal(format!(
                        "no available IPv4 addresses on this network's address pools: {} ({})",
                        net.name, net.id
                    ))
                })?,
        };
        let mac = match requested_mac {
            Some(m) => ipam::parse_mac(m)
                .ok_or_else(|| ContainerError::Invalid(format!("invalid MAC address: {m}")))?,
            None => ipam::mac_of(ip),
        };
        let veth = format!("veth{}", &new_id()[..7]);
        // IPv6: the subnet's prefix and the IPv4 address's host part, so
        // the address is as unique as the IPv4 one.
        let ip6 = net.subnet6().map(|(base, prefix, gw6)| {
            let host = u32::from(ip)
                & !(u32::MAX
                    .checked_shl(32 - u32::from(subnet.prefix))
                    .unwrap_or(0));
            (
                std::net::Ipv6Addr::from(u128::from(base) | u128::from(host)),
                prefix,
                gw6,
            )
        });
        let ep = Endpoint {
            ip6: ip6.map(|(a, _, _)| a.to_string()).unwrap_or_default(),
            endpoint_id: reserved.map(|r| r.endpoint_id).unwrap_or_else(new_id),
            name: c.name.trim_start_matches('/').to_string(),
            ip: ip.to_string(),
            mac: ipam::mac_string(&mac),
            aliases,
            static_ip: requested_ip.is_some(),
            veth: veth.clone(),
            active: true,
        };
        // The address is recorded before anything exists in the kernel.
        self.set_endpoint(net_id, &c.id, Some(ep))?;
        let attached = endpoint::attach(
            ns,
            &Attach {
                bridge: &net.bridge,
                veth: &veth,
                ifname,
                ip,
                prefix: subnet.prefix,
                mac,
                // dockerd gives no default route on an --internal network.
                gateway: (default_route && !net.internal).then_some(gw),
                ip6: ip6.map(|(a, p, gw6)| (a, p, (default_route && !net.internal).then_some(gw6))),
            },
        );
        if let Err(e) = attached {
            let _ = self.set_endpoint(net_id, &c.id, None);
            return Err(ContainerError::Internal(format!(
                "failed to set up container networking: {e}"
            )));
        }
        Ok(ip)
    }

    fn set_endpoint(
        &mut self,
        net_id: &str,
        cid: &str,
        ep: Option<Endpoint>,
    ) -> Result<(), ContainerError> {
        let Some(n) = self.networks.store.nets.get_mut(net_id) else {
            return Ok(());
        };
        match ep {
            Some(ep) => {
                n.endpoints.insert(cid.to_string(), ep);
            }
            None => {
                n.endpoints.remove(cid);
            }
        }
        // Synced by a worker, not on the loop: an endpoint is not state a
        // crash keeps (every container dies with the daemon; start-up resets
        // them and kernel objects go with their namespaces).
        self.persist_network_later(net_id)
            .map_err(|e| ContainerError::Internal(format!("record the endpoint: {e}")))
    }

    /// The container stopped (or never started): its veths go, its
    /// addresses are released (a requested one stays reserved).
    pub(super) fn network_release(&mut self, cid: &str) {
        self.network_drop(cid, false);
    }

    /// The container is removed: nothing of it stays.
    pub(super) fn network_forget(&mut self, cid: &str) {
        self.network_drop(cid, true);
    }

    fn network_drop(&mut self, cid: &str, all: bool) {
        self.unpublish_ports(cid);
        let ids: Vec<String> = self
            .networks
            .of_container(cid)
            .map(|(n, _)| n.id.clone())
            .collect();
        for id in ids {
            let Some(n) = self.networks.store.nets.get_mut(&id) else {
                continue;
            };
            if let Some(e) = n.endpoints.get_mut(cid) {
                if !e.veth.is_empty() {
                    let _ = endpoint::detach(&e.veth);
                }
                if e.static_ip && !all {
                    e.active = false;
                    e.veth.clear();
                } else {
                    n.endpoints.remove(cid);
                }
            }
            if let Err(e) = self.persist_network_later(&id) {
                log::error!("network {id}: {e}");
            }
        }
    }

    /// /etc/hosts and /etc/resolv.conf for a container on a bridge network.
    fn write_etc(&self, c: &Container, ip: Option<Ipv4Addr>, net_id: &str) {
        let dir = self.container_dirs.dir(&c.id);
        let host_gw = self.networks.default_net().and_then(Network::gateway_ip);
        let user_net = self
            .networks
            .store
            .nets
            .get(net_id)
            .filter(|n| !n.is_default() && self.dns.serves(&n.id))
            .and_then(Network::gateway_ip);
        let hosts = crate::container::etc::hosts_on_network(
            &c.host_config,
            &c.config.hostname,
            ip,
            host_gw,
            &self.links_hosts(c),
        );
        let resolv = crate::container::etc::resolv_conf_on_network(&c.host_config, user_net);
        for (name, text) in [("hosts", hosts), ("resolv.conf", resolv)] {
            if let Err(e) = std::fs::write(dir.join(name), text) {
                log::warn!("container {}: write {name}: {e}", c.short_id());
            }
        }
    }
}

impl Engine {
    /// dockerd's create-time checks of the network a container asks for.
    pub(super) fn check_network_request(
        &self,
        mode: &str,
        endpoints: Option<&Value>,
    ) -> Result<(), ContainerError> {
        if let Some(key) = mode.strip_prefix("container:") {
            self.containers.resolve(key)?;
            return Ok(());
        }
        if matches!(mode, "host" | "none") {
            return Ok(());
        }
        let id = self.network_id(mode)?;
        let is_default = self
            .networks
            .store
            .nets
            .get(&id)
            .is_some_and(Network::is_default);
        let asks_ip = endpoints
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.values())
            .any(|v| {
                v.pointer("/IPAMConfig/IPv4Address")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            });
        if is_default && asks_ip {
            return Err(ContainerError::Invalid(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        Ok(())
    }
}

/// What the DNS responder asks of the engine.
struct DnsView<'a> {
    networks: &'a super::networks::Networks,
    containers: &'a crate::container::registry::Registry,
}

impl crate::network::dns::Lookup for DnsView<'_> {
    fn addresses(&self, net: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
        let n = self.networks.store.nets.get(net)?;
        let ips: Vec<Ipv4Addr> = n
            .endpoints
            .iter()
            .filter(|(_, e)| e.active)
            .filter(|(cid, e)| {
                e.name.eq_ignore_ascii_case(name)
                    || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                    || (name.len() == 12 && cid.starts_with(name))
            })
            .filter_map(|(_, e)| e.ip.parse().ok())
            .collect();
        (!ips.is_empty()).then_some(ips)
    }

    fn upstreams(&self, net: &str, client: Ipv4Addr) -> Vec<std::net::SocketAddr> {
        let ip = client.to_string();
        let own: Vec<String> = self
            .networks
            .store
            .nets
            .get(net)
            .and_then(|n| n.endpoints.iter().find(|(_, e)| e.ip == ip))
            .and_then(|(cid, _)| self.containers.get(cid))
            .map(|e| e.c.host_config.dns.clone())
            .unwrap_or_default();
        let servers = if own.is_empty() {
            crate::container::etc::host_nameservers()
        } else {
            own
        };
        servers
            .iter()
            .filter_map(|s| s.parse::<std::net::IpAddr>().ok())
            .map(|ip| std::net::SocketAddr::new(ip, 53))
            .collect()
    }
}

impl Engine {
    /// Readiness on one of the DNS responder's sockets.
    pub fn on_dns_ready(&mut self, index: usize) {
        let view = DnsView {
            networks: &self.networks,
            containers: &self.containers,
        };
        self.dns.ready(index, &view);
    }

    /// Start the DNS responder of user network `id` on its gateway.
    pub(super) fn dns_serve(&mut self, id: &str) {
        let Some(n) = self.networks.store.nets.get(id) else {
            return;
        };
        if n.is_default() || n.driver != "bridge" {
            return;
        }
        if let Some(gw) = n.gateway_ip() {
            if let Err(e) = self.dns.serve(id, gw) {
                log::warn!("network {}: no DNS responder on {gw}:53: {e}", n.name);
            }
        }
    }
}
