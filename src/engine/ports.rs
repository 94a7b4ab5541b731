//! Published ports and the firewall in the engine's life: the `inet
//! coracle` table applied at start-up and whenever the networks change,
//! a container's ports reserved and mapped at start (DNAT, or the userland
//! proxy where nf_tables is missing and for 127.0.0.1 when DNAT cannot),
//! released at stop; the table removed at shutdown.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::model::Container;
use crate::network::firewall::{self, Ruleset};
use crate::network::nftables::NftError;
use crate::network::portmap::{self, PortAllocator, Published};
use crate::network::proxy::{Proxy, ProxyId};

/// One running container's published ports.
pub struct Mapped {
    pub published: Vec<Published>,
    pub ip: Ipv4Addr,
    proxies: Vec<ProxyId>,
}

/// The port half of the networks' state.
pub struct Ports {
    pub allocator: PortAllocator,
    pub proxy: Proxy,
    registry: mio::Registry,
    /// nf_tables works here (else every port goes through the proxy).
    pub firewall: bool,
    /// 127.0.0.1 is DNATed too (route_localnet on every bridge).
    pub loopback: bool,
    /// By container ID.
    pub mapped: HashMap<String, Mapped>,
}

impl Ports {
    pub fn new(registry: mio::Registry) -> Ports {
        let mut allocator = PortAllocator::new(portmap::ephemeral_range());
        allocator.ipv6 = portmap::host_has_ipv6();
        Ports {
            allocator,
            proxy: Proxy::new(|i| crate::reactor::Source::Proxy(i).token()),
            registry,
            firewall: true,
            loopback: true,
            mapped: HashMap::new(),
        }
    }
}

impl Engine {
    /// The table as the networks and running containers describe it.
    fn ruleset(&self) -> Ruleset {
        let networks = self
            .networks
            .store
            .nets
            .values()
            .filter(|n| n.driver == "bridge" && !n.bridge.is_empty())
            .filter_map(|n| {
                let s = n.subnet()?;
                Some(firewall::Network {
                    bridge: n.bridge.clone(),
                    subnet: s.base,
                    prefix: s.prefix,
                    internal: n.internal,
                })
            })
            .collect();
        let forwards = self
            .ports
            .mapped
            .values()
            .flat_map(|m| portmap::forwards(&m.published, m.ip))
            .collect();
        Ruleset {
            table: self.firewall_table(),
            networks,
            forwards,
            loopback: self.ports.loopback,
        }
    }

    /// This daemon's table: named after its default bridge.
    fn firewall_table(&self) -> String {
        firewall::table_for(
            self.networks
                .default_net()
                .map_or("", |n| n.bridge.as_str()),
        )
    }

    /// Rebuild the table (start-up, network create and remove). Where the
    /// kernel has no nf_tables, say so once and use the proxy.
    pub(super) fn firewall_apply(&mut self) {
        if !self.ports.firewall {
            return;
        }
        if self.ports.loopback {
            let bridges: Vec<String> = self
                .networks
                .store
                .nets
                .values()
                .filter(|n| n.driver == "bridge" && !n.bridge.is_empty())
                .map(|n| n.bridge.clone())
                .collect();
            for b in bridges {
                if let Err(e) = firewall::enable_route_localnet(&b) {
                    log::warn!("route_localnet on {b}: {e}; 127.0.0.1 goes through the proxy");
                    self.ports.loopback = false;
                }
            }
        }
        match firewall::apply(&self.ruleset()) {
            Ok(()) => {}
            Err(NftError::Unavailable(e)) => {
                log::warn!("no nf_tables in this kernel ({e}): published ports go through the userland proxy, no masquerade or isolation");
                self.ports.firewall = false;
            }
            Err(e) => log::error!("firewall: {e}"),
        }
    }

    /// Shutdown: the table goes.
    pub fn firewall_remove(&mut self) {
        if self.ports.firewall {
            if let Err(e) = firewall::remove(&self.firewall_table()) {
                log::warn!("remove the firewall table: {e}");
            }
        }
    }

    /// Reserve and map the ports container `c` publishes, to `ip`.
    pub(super) fn publish_ports(
        &mut self,
        c: &Container,
        ip: Ipv4Addr,
        endpoint_id: &str,
    ) -> Result<(), ContainerError> {
        let req = crate::container::ports::parse(&c.config.extra, &c.host_config.extra)?;
        let name = c.name.trim_start_matches('/');
        let fail = |e: String| {
            ContainerError::Internal(format!(
                "driver failed programming external connectivity on endpoint {name} ({endpoint_id}): {e}"
            ))
        };
        let published = self.ports.allocator.allocate(&c.id, &req).map_err(|e| {
            ContainerError::Internal(portmap::external_connectivity(name, endpoint_id, &e))
        })?;
        let mut m = Mapped {
            published,
            ip,
            proxies: Vec::new(),
        };
        if self.ports.firewall {
            if let Err(e) =
                firewall::publish(&self.firewall_table(), &portmap::forwards(&m.published, ip))
            {
                self.ports.allocator.release(&c.id);
                return Err(fail(e.to_string()));
            }
        }
        for p in m.published.clone() {
            let target = SocketAddr::new(IpAddr::V4(ip), p.container_port);
            let host = match p.host_ip {
                IpAddr::V4(host) => host,
                // IPv6 clients reach the container's IPv4 address through
                // the proxy (dockerd's docker-proxy on `::`).
                IpAddr::V6(v6) => {
                    let listen = SocketAddr::new(IpAddr::V6(v6), p.host_port);
                    match self
                        .ports
                        .proxy
                        .add(&self.ports.registry, p.proto, listen, target)
                    {
                        Ok((id, _)) => m.proxies.push(id),
                        Err(e) => {
                            self.ports.mapped.insert(c.id.clone(), m);
                            self.unpublish_ports(&c.id);
                            return Err(fail(format!("Bind for {listen} failed: {e}")));
                        }
                    }
                    continue;
                }
            };
            let listen = if !self.ports.firewall {
                Some(SocketAddr::new(IpAddr::V4(host), p.host_port))
            } else if !self.ports.loopback && (host.is_unspecified() || host.is_loopback()) {
                Some(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    p.host_port,
                ))
            } else {
                None
            };
            let Some(listen) = listen else {
                continue;
            };
            match self
                .ports
                .proxy
                .add(&self.ports.registry, p.proto, listen, target)
            {
                Ok((id, _)) => m.proxies.push(id),
                Err(e) => {
                    self.ports.mapped.insert(c.id.clone(), m);
                    self.unpublish_ports(&c.id);
                    return Err(fail(format!("Bind for {listen} failed: {e}")));
                }
            }
        }
        if !m.published.is_empty() {
            self.ports.mapped.insert(c.id.clone(), m);
        }
        Ok(())
    }

    /// The container stopped: its map elements, proxies and reservations go.
    pub(super) fn unpublish_ports(&mut self, cid: &str) {
        let Some(m) = self.ports.mapped.remove(cid) else {
            self.ports.allocator.release(cid);
            return;
        };
        if self.ports.firewall {
            if let Err(e) = firewall::unpublish(
                &self.firewall_table(),
                &portmap::forwards(&m.published, m.ip),
            ) {
                log::warn!(
                    "unpublish ports of {}: {e}",
                    crate::container::names::short(cid)
                );
            }
        }
        for id in m.proxies {
            self.ports.proxy.remove(&self.ports.registry, id);
        }
        self.ports.allocator.release(cid);
    }

    /// Readiness on one of the proxy's sockets.
    pub fn on_proxy_ready(&mut self, index: usize) {
        self.ports.proxy.ready(&self.ports.registry, index);
    }

    /// Idle UDP flows of the proxy end (with the engine timers).
    pub fn proxy_expire(&mut self, now: std::time::Instant) {
        self.ports.proxy.expire(&self.ports.registry, now);
    }

    pub fn proxy_deadline(&self) -> Option<std::time::Instant> {
        self.ports.proxy.next_deadline()
    }

    /// `NetworkSettings.Ports` and `docker ps`'s `Ports` of a container.
    pub fn port_shapes(&self, c: &Container) -> (serde_json::Value, serde_json::Value) {
        // none, host and container: modes show no ports, as with dockerd.
        let mode =
            crate::container::create::network_mode(&c.host_config.network_mode).unwrap_or("none");
        let bridged = !matches!(mode, "none" | "host") && !mode.starts_with("container:");
        let running = c.state.pid > 0 && bridged;
        let req = crate::container::ports::parse(&c.config.extra, &c.host_config.extra);
        match (running, req) {
            (true, Ok(req)) => {
                let published = self
                    .ports
                    .mapped
                    .get(&c.id)
                    .map(|m| m.published.as_slice())
                    .unwrap_or(&[]);
                (
                    portmap::inspect_ports(&req, published),
                    portmap::ps_ports(&req, published),
                )
            }
            _ => (crate::json!({}), crate::json!([])),
        }
    }
}
