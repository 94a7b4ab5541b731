//! A container's interface: a veth pair whose container end is made
//! straight inside the container's network namespace (IFLA_NET_NS_FD),
//! its host end enslaved to the network's bridge; then the address, the
//! link and the default route set from a netlink socket inside the
//! namespace.

use std::io;
use std::net::Ipv4Addr;

use super::netlink::{NetNs, Netlink};

pub struct Attach<'a> {
    pub bridge: &'a str,
    /// The host end's name (`veth` and 7 hex digits, as dockerd names it).
    pub veth: &'a str,
    /// The container end's name (`eth0`, `eth1`, ...).
    pub ifname: &'a str,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// Set the default route through this gateway.
    pub gateway: Option<Ipv4Addr>,
    /// On an `--ipv6` network: the address, prefix, and the gateway of the
    /// default IPv6 route (if any).
    pub ip6: Option<(std::net::Ipv6Addr, u8, Option<std::net::Ipv6Addr>)>,
}

/// Bring `lo` up inside `ns`.
pub fn loopback_up(ns: &NetNs) -> io::Result<()> {
    let mut nl = Netlink::open_in(ns)?;
    let lo = nl
        .link_index("lo")?
        .ok_or_else(|| io::Error::other("no lo in the namespace"))?;
    nl.set_up(lo)
}

/// Make the veth pair and configure both ends; on failure nothing is left.
pub fn attach(ns: &NetNs, a: &Attach) -> io::Result<()> {
    let mut host = Netlink::open()?;
    let master = host
        .link_index(a.bridge)?
        .ok_or_else(|| io::Error::other(format!("bridge {} does not exist", a.bridge)))?;
    host.add_veth(a.veth, a.ifname, ns.raw(), a.mac)?;
    let r = (|| {
        let index = host
            .link_index(a.veth)?
            .ok_or_else(|| io::Error::other("veth vanished"))?;
        host.set_master_up(index, master)?;
        host.set_hairpin(index)?;
        let mut inside = Netlink::open_in(ns)?;
        let eth = inside
            .link_index(a.ifname)?
            .ok_or_else(|| io::Error::other("container end of the veth is missing"))?;
        inside.add_addr(eth, a.ip, a.prefix)?;
        inside.set_up(eth)?;
        if let Some(gw) = a.gateway {
            inside.add_default_route(gw)?;
        }
        if let Some((ip6, prefix, gw6)) = a.ip6 {
            inside.add_addr6(eth, ip6, prefix)?;
            if let Some(gw6) = gw6 {
                inside.add_default_route6(gw6)?;
            }
        }
        Ok(())
    })();
    if r.is_err() {
        let _ = detach(a.veth);
    }
    r
}

/// Remove the host end (the container end goes with it), if still there.
pub fn detach(veth: &str) -> io::Result<()> {
    super::bridge::remove(veth)
}
