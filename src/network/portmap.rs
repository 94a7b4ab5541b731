//! Published ports: what a container asks for, host-port reservation, and
//! the shapes the API shows.
//!
//! Public API:
//! - [`Proto`], [`ContainerPort`] ("80/tcp"), [`HostBinding`] (host ip or
//!   any, a host port, a range, or ephemeral), [`PortRequest`] (exposed
//!   ports, bindings, `PublishAllPorts`), built by `container::ports::parse`.
//! - [`PortAllocator`]: `allocate(owner, &request)` reserves everything a
//!   container asks for or nothing (dockerd's "Bind for 0.0.0.0:18080
//!   failed: port is already allocated"); ephemeral ports come round-robin
//!   from dockerd's range (49153-60999, or `ip_local_port_range`);
//!   `restore(owner, &published)` re-holds a running container's ports from
//!   its record after a daemon restart; `release(owner)` at stop/remove.
//! - [`Published`]: one reserved binding (serde: stored in the container's
//!   record); `forwards` turns them into `firewall::Forward`s.
//! - [`inspect_ports`] (`NetworkSettings.Ports` of a running container) and
//!   [`ps_ports`] (`Ports` of a `docker ps` row): pure functions.
//! - [`external_connectivity`]: dockerd's wrapper text for a failed start.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::firewall::Forward;

/// A transport protocol a port is published for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// dockerd's names; anything else is "invalid proto: X".
    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port of the container: "80/tcp".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerPort {
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for ContainerPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// One requested host side of a binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostBinding {
    /// `None`: every address (0.0.0.0).
    pub host_ip: Option<IpAddr>,
    /// `None`: an ephemeral port; `Some((a, b))`: the first free in a..=b.
    pub host_port: Option<(u16, u16)>,
}

/// What a container's configuration asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortRequest {
    /// `Config.ExposedPorts` (and the image's `EXPOSE`).
    pub exposed: BTreeSet<ContainerPort>,
    /// `HostConfig.PortBindings`.
    pub bindings: BTreeMap<ContainerPort, Vec<HostBinding>>,
    /// `HostConfig.PublishAllPorts` (`-P`): every exposed port without a
    /// binding gets an ephemeral one.
    pub publish_all: bool,
}

impl PortRequest {
    /// Every port inspect lists: exposed ones and bound ones.
    pub fn all_ports(&self) -> BTreeSet<ContainerPort> {
        let mut s = self.exposed.clone();
        s.extend(self.bindings.keys().copied());
        s
    }

    /// The bindings to make, in order: explicit ones, then `-P`'s.
    fn wanted(&self) -> Vec<(ContainerPort, HostBinding)> {
        let mut out = Vec::new();
        for (cp, bs) in &self.bindings {
            if bs.is_empty() && self.publish_all {
                out.push((
                    cp,
                    HostBinding {
                        host_ip: None,
                        host_port: None,
                    },
                ));
            }
            out.extend(bs.iter().map(|b| (cp, *b)));
        }
        if self.publish_all {
            for cp in self
                .exposed
                .iter()
                .filter(|p| !self.bindings.contains_key(p))
            {
                out.push((
                    cp,
                    HostBinding {
                        host_ip: None,
                        host_port: None,
                    },
                ));
            }
        }
        out.into_iter().map(|(cp, b)| (*cp, b)).collect()
    }
}

/// One reserved binding, as stored in the container's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Published {
    pub container_port: u16,
    pub proto: Proto,
    /// 0.0.0.0 (or ::) for every address.
    pub host_ip: IpAddr,
    pub host_port: u16,
}

impl Published {
    pub fn container(&self) -> ContainerPort {
        ContainerPort {
            port: self.container_port,
            proto: self.proto,
        }
    }
}

/// The firewall's forwards for a container's IPv4 address (IPv6 bindings
/// are left to the proxy).
pub fn forwards(published: &[Published], container_ip: Ipv4Addr) -> Vec<Forward> {
    published
        .iter()
        .filter_map(|p| match p.host_ip {
            IpAddr::V4(ip) => Some(Forward {
                proto: p.proto,
                host_ip: (!ip.is_unspecified()).then_some(ip),
                host_port: p.host_port,
                container_ip,
                container_port: p.container_port,
            }),
            IpAddr::V6(_) => None,
        })
        .collect()
}

/// Why ports could not be reserved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortError {
    /// "Bind for IP:PORT failed: port is already allocated".
    Allocated { ip: IpAddr, port: u16 },
    /// No free port in the range asked for (or the ephemeral range).
    Exhausted,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Allocated { ip, port } => write!(
                f,
                "Bind for {}:{port} failed: port is already allocated",
                show_ip(*ip)
            ),
            PortError::Exhausted => f.write_str("all ports are allocated"),
        }
    }
}

fn show_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// dockerd's error for a start whose port reservation failed (a 500):
/// "driver failed programming external connectivity on endpoint NAME (ID): ...".
pub fn external_connectivity(endpoint: &str, endpoint_id: &str, e: &PortError) -> String {
    format!("driver failed programming external connectivity on endpoint {endpoint} ({endpoint_id}): {e}")
}

/// dockerd's ephemeral range when /proc does not say otherwise.
pub const EPHEMERAL_DEFAULT: (u16, u16) = (49153, 60999);

/// The ephemeral range: `ip_local_port_range` if readable and sane.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| parse_range_file(&s))
        .unwrap_or(EPHEMERAL_DEFAULT)
}

fn parse_range_file(s: &str) -> Option<(u16, u16)> {
    let mut it = s.split_whitespace().map(|w| w.parse::<u16>().ok());
    let (a, b) = (it.next()??, it.next()??);
    (a > 0 && a <= b).then_some((a, b))
}

/// The holders of one (proto, port): nearly always one, so no Vec for it
/// (a 1000-port range costs about 32 bytes a port here).
enum Holders {
    One((IpAddr, u32)),
    Many(Vec<(IpAddr, u32)>),
}

impl Holders {
    fn as_slice(&self) -> &[(IpAddr, u32)] {
        match self {
            Holders::One(h) => std::slice::from_ref(h),
            Holders::Many(v) => v,
        }
    }

    fn push(&mut self, h: (IpAddr, u32)) {
        match self {
            Holders::One(first) => *self = Holders::Many(vec![*first, h]),
            Holders::Many(v) => v.push(h),
        }
    }

    /// Drop `owner`'s holds; false when none is left.
    fn release(&mut self, owner: u32) -> bool {
        match self {
            Holders::One((_, o)) => *o != owner,
            Holders::Many(v) => {
                v.retain(|(_, o)| *o != owner);
                !v.is_empty()
            }
        }
    }
}

/// Host ports held by containers.
pub struct PortAllocator {
    range: (u16, u16),
    /// Owners (container IDs) interned to small numbers.
    owners: HashMap<String, u32>,
    next_owner: u32,
    /// (proto, port) -> holders (address, owner).
    held: HashMap<(Proto, u16), Holders>,
    /// Where the next ephemeral search starts, per protocol (round robin).
    next: HashMap<Proto, u16>,
    /// Also publish every-address bindings on `::` (hosts with IPv6).
    pub ipv6: bool,
}

/// The host has IPv6 (an address on some interface, not disabled):
/// every-address bindings are published on `::` too, as dockerd does.
pub fn host_has_ipv6() -> bool {
    let on = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|s| s.trim() == "0");
    on && std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty())
}

fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

impl PortAllocator {
    pub fn new(range: (u16, u16)) -> PortAllocator {
        PortAllocator {
            range,
            owners: HashMap::new(),
            next_owner: 0,
            held: HashMap::new(),
            next: HashMap::new(),
            ipv6: false,
        }
    }

    fn owner_id(&mut self, owner: &str) -> u32 {
        if let Some(id) = self.owners.get(owner) {
            return *id;
        }
        let id = self.next_owner;
        self.next_owner = self.next_owner.wrapping_add(1);
        self.owners.insert(owner.to_string(), id);
        id
    }

    fn free(&self, proto: Proto, port: u16, ip: IpAddr) -> bool {
        self.held.get(&(proto, port)).is_none_or(|hs| {
            !hs.as_slice()
                .iter()
                .any(|(h, _)| h.is_ipv4() == ip.is_ipv4() && overlaps(*h, ip))
        })
    }

    fn hold(&mut self, proto: Proto, port: u16, ip: IpAddr, owner: u32) {
        match self.held.get_mut(&(proto, port)) {
            Some(hs) => hs.push((ip, owner)),
            None => {
                self.held.insert((proto, port), Holders::One((ip, owner)));
            }
        }
    }

    fn pick(
        &mut self,
        proto: Proto,
        ip: IpAddr,
        want: Option<(u16, u16)>,
    ) -> Result<u16, PortError> {
        match want {
            Some((a, b)) if a == b => {
                if self.free(proto, a, ip) {
                    Ok(a)
                } else {
                    Err(PortError::Allocated { ip, port: a })
                }
            }
            Some((a, b)) => (a..=b)
                .find(|p| self.free(proto, *p, ip))
                .ok_or(PortError::Exhausted),
            None => {
                let (lo, hi) = self.range;
                let start = self.next.get(&proto).copied().unwrap_or(lo).clamp(lo, hi);
                let span = u32::from(hi - lo) + 1;
                for i in 0..span {
                    let p = (u32::from(start - lo) + i) % span + u32::from(lo);
                    let p = p as u16;
                    if self.free(proto, p, ip) {
                        self.next.insert(proto, if p == hi { lo } else { p + 1 });
                        return Ok(p);
                    }
                }
                Err(PortError::Exhausted)
            }
        }
    }

    /// Reserve everything `req` asks for, for `owner` (one call per start);
    /// on error nothing stays reserved.
    pub fn allocate(
        &mut self,
        owner: &str,
        req: &PortRequest,
    ) -> Result<Vec<Published>, PortError> {
        let id = self.owner_id(owner);
        let mut out = Vec::new();
        for (cp, b) in req.wanted() {
            let ip = b.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
            let port = match self.pick(cp.proto, ip, b.host_port) {
                Ok(p) => p,
                Err(e) => {
                    self.release(owner);
                    return Err(e);
                }
            };
            self.hold(cp.proto, port, ip, id);
            out.push(Published {
                container_port: cp.port,
                proto: cp.proto,
                host_ip: ip,
                host_port: port,
            });
            if self.ipv6 && b.host_ip.is_none() {
                let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
                if self.free(cp.proto, port, any6) {
                    self.hold(cp.proto, port, any6, id);
                    out.push(Published {
                        host_ip: any6,
                        ..out[out.len() - 1]
                    });
                }
            }
        }
        if out.is_empty() {
            self.owners.remove(owner);
        }
        Ok(out)
    }

    /// Re-hold ports a running container had before a daemon restart.
    #[cfg_attr(not(test), allow(dead_code))] // restarts re-publish through `publish` today
    pub fn restore(&mut self, owner: &str, published: &[Published]) -> Result<(), PortError> {
        let id = self.owner_id(owner);
        for p in published {
            if !self.free(p.proto, p.host_port, p.host_ip) {
                self.release(owner);
                return Err(PortError::Allocated {
                    ip: p.host_ip,
                    port: p.host_port,
                });
            }
            self.hold(p.proto, p.host_port, p.host_ip, id);
        }
        Ok(())
    }

    /// Give back everything `owner` holds.
    pub fn release(&mut self, owner: &str) {
        let Some(id) = self.owners.remove(owner) else {
            return;
        };
        self.held.retain(|_, hs| hs.release(id));
    }

    /// Number of (proto, port) slots in use: for tests and `info`.
    #[cfg_attr(not(test), allow(dead_code))] // tests check that ports are given back
    pub fn in_use(&self) -> usize {
        self.held.len()
    }
}

/// `NetworkSettings.Ports` of a running container: every exposed or bound
/// port, `null` when not published. (A container that is not running shows
/// `{}`, as dockerd does.)
pub fn inspect_ports(req: &PortRequest, published: &[Published]) -> Value {
    let mut m = serde_json::Map::new();
    for cp in req.all_ports() {
        let bs: Vec<Value> = published
            .iter()
            .filter(|p| p.container() == cp)
            .map(|p| json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}))
            .collect();
        m.insert(
            cp.to_string(),
            if bs.is_empty() {
                Value::Null
            } else {
                Value::Array(bs)
            },
        );
    }
    for p in published {
        m.entry(p.container().to_string()).or_insert_with(
            || json!([{"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}]),
        );
    }
    Value::Object(m)
}

/// `Ports` of a running container's `docker ps` row: published bindings
/// with `IP`/`PublicPort`, exposed-only ports with just `PrivatePort`/`Type`.
pub fn ps_ports(req: &PortRequest, published: &[Published]) -> Value {
    let mut rows = Vec::new();
    for p in published {
        rows.push(json!({
            "IP": p.host_ip.to_string(),
            "PrivatePort": p.container_port,
            "PublicPort": p.host_port,
            "Type": p.proto.as_str(),
        }));
    }
    for cp in req.all_ports() {
        if !published.iter().any(|p| p.container() == cp) {
            rows.push(json!({"PrivatePort": cp.port, "Type": cp.proto.as_str()}));
        }
    }
    Value::Array(rows)
}
