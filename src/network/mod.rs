//! Networking: rtnetlink (links, bridges, veth endpoints, addresses,
//! routes), IPAM, the DNS responder; nftables through nfnetlink, the
//! daemon's firewall table, published ports (reservation and their API
//! shapes) and the userland port proxy.
//!
//! How the daemon wires the port half (each module documents its API):
//! - start-up: `firewall::apply(&Ruleset { networks, forwards of running
//!   containers, loopback })`; `NftError::Unavailable` -> log it once and
//!   publish through `proxy::Proxy` instead.
//! - start: `container::ports::parse(&config.extra, &host_config.extra)`,
//!   `allocator.allocate(id, &req)`, keep the `Published` list in the
//!   record, then `firewall::publish(&portmap::forwards(&published,
//!   container_ip))`; 127.0.0.1 by DNAT with `loopback` (and
//!   `firewall::enable_route_localnet(bridge)`), else by the proxy.
//! - stop/remove: `firewall::unpublish(..)`, `proxy.remove(id)`,
//!   `allocator.release(id)`. Network create/rm: `apply` again.
//! - shutdown: `firewall::remove()`.

pub mod bridge;
pub mod dns;
pub mod endpoint;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod netlink;
pub mod nftables;
pub mod portmap;
pub mod proxy;

#[cfg(test)]
mod firewall_tests;
#[cfg(test)]
mod portmap_tests;
#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod testns;
