//! The daemon's firewall: one nftables table, `inet coracle`, rebuilt whole
//! in one atomic batch from a description of the networks and published
//! ports. Nothing outside that table is ever touched.
//!
//! Public API:
//! - [`Ruleset`] { networks: [`Network`] (bridge, subnet, internal),
//!   forwards: [`Forward`] (proto, host ip or any, host port, container ip
//!   and port), loopback: DNAT 127.0.0.1 too (needs [`enable_route_localnet`]
//!   on each bridge; without it the userland proxy serves loopback) }.
//! - [`apply`]: delete and recreate the table in one transaction (start-up,
//!   and whenever networks or published ports change). Existing connections
//!   keep their conntrack NAT state across a rebuild.
//! - [`publish`] / [`unpublish`]: add or delete one container's map
//!   elements in place (start/stop) without rebuilding the rules.
//! - [`remove`]: delete the table (shutdown). [`build`] is the pure part.
//! - Errors are [`NftError`]: `Unavailable` means no nf_tables here; the
//!   daemon logs it once, reports it in check-config and publishes through
//!   `network::proxy` instead.
//!
//! The table:
//! ```text
//! map ports_any  { inet_proto . inet_service : ipv4_addr . inet_service }   one element per port
//! map ports_ip   { ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service }
//! set bridges    { ifname }
//! chain prerouting  nat dstnat:   fib daddr type local -> dnat through ports_ip, then ports_any
//! chain output      nat dstnat:   the same for the host's own connections (not 127/8 unless loopback)
//! chain postrouting nat srcnat:   masquerade each non-internal subnet leaving its bridge;
//!                                 hairpin: DNATed traffic from a subnet back into its bridge;
//!                                 loopback: 127/8 sources DNATed into a bridge
//! chain forward     filter 0:     internal networks: nothing in or out of the bridge;
//!                                 published (ct status dnat) traffic accepted;
//!                                 isolation: bridge to any other of our bridges dropped
//! ```

use std::net::Ipv4Addr;

use super::nftables::batch::{
    concat_type, Elem, TYPE_IFNAME, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE, TYPE_IPADDR,
};
use super::nftables::expr::{
    self, ct_has, daddr_is_local, ifname, ip_in, meta_cmp, CT_STATUS_DNAT, NFPROTO_IPV4, REG32_00,
    REG_1,
};
use super::nftables::{
    commit, Batch, Chain, ChainType, CmpOp, CtKey, Expr, Hook, MetaKey, NftError, Set, Verdict,
};
use super::portmap::Proto;

/// The table's name (family inet) for the daemon on the default bridge;
/// a daemon on another bridge has its own (`table_for`), so two daemons on
/// one host never rebuild or delete each other's rules.
pub const TABLE: &str = "coracle";

/// The table of the daemon whose default bridge is `bridge`.
pub fn table_for(bridge: &str) -> String {
    match bridge {
        "" | "coracle0" => TABLE.to_string(),
        b => format!("coracle-{b}"),
    }
}
const PORTS_ANY: &str = "ports_any";
const PORTS_IP: &str = "ports_ip";
const BRIDGES: &str = "bridges";

/// One bridge network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    pub bridge: String,
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    /// `--internal`: no traffic in or out of the bridge but to the host.
    pub internal: bool,
}

/// One published port (a range is one `Forward` per port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    /// `None` (or 0.0.0.0): every address of the host.
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_ip: Ipv4Addr,
    pub container_port: u16,
}

/// Everything the table is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// The table's name (empty: `TABLE`).
    pub table: String,
    pub networks: Vec<Network>,
    pub forwards: Vec<Forward>,
    /// Also DNAT connections to 127.0.0.0/8 (route_localnet on the bridges).
    pub loopback: bool,
}

/// Build and commit the whole table atomically.
pub fn apply(rs: &Ruleset) -> Result<(), NftError> {
    commit(&build(rs))
}

/// Add published ports to the table `apply` made, without rebuilding it
/// (a container start). Refused as a whole if a key is already mapped to
/// another container.
pub fn publish(table: &str, forwards: &[Forward]) -> Result<(), NftError> {
    commit(&elements_batch(table, forwards, true))
}

/// Remove published ports from the table (a container stop).
pub fn unpublish(table: &str, forwards: &[Forward]) -> Result<(), NftError> {
    commit(&elements_batch(table, forwards, false))
}

fn elements_batch(table: &str, forwards: &[Forward], add: bool) -> Batch {
    let mut b = Batch::new();
    let (any, by_ip) = elements(forwards);
    for (set, elems) in [(PORTS_ANY, any), (PORTS_IP, by_ip)] {
        if elems.is_empty() {
            continue;
        }
        if add {
            b.add_elems(table, set, 0, &elems);
        } else {
            b.del_elems(table, set, &elems);
        }
    }
    b
}

/// Delete the table (no error if it is not there).
pub fn remove(table: &str) -> Result<(), NftError> {
    let mut b = Batch::new();
    b.add_table(table);
    b.del_table(table);
    commit(&b)
}

/// Let a bridge route 127.0.0.0/8 (what DNAT of loopback connections needs).
pub fn enable_route_localnet(bridge: &str) -> std::io::Result<()> {
    if bridge.is_empty() || bridge.contains('/') || bridge.starts_with('.') {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    std::fs::write(
        format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet"),
        "1",
    )
}

fn port_key(p: u16) -> [u8; 4] {
    let b = p.to_be_bytes();
    [b[0], b[1], 0, 0]
}

fn proto_key(p: Proto) -> [u8; 4] {
    [p.number(), 0, 0, 0]
}

fn elem_data(f: &Forward) -> Vec<u8> {
    let mut d = f.container_ip.octets().to_vec();
    d.extend_from_slice(&port_key(f.container_port));
    d
}

/// The map elements for a set of forwards: (ports_any, ports_ip), duplicates
/// of a key dropped (the first wins; port reservation never makes them).
pub fn elements(forwards: &[Forward]) -> (Vec<Elem>, Vec<Elem>) {
    let mut any = Vec::new();
    let mut by_ip = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in forwards {
        let ip = f.host_ip.filter(|ip| !ip.is_unspecified());
        if !seen.insert((ip, f.proto, f.host_port)) {
            continue;
        }
        let mut key = Vec::with_capacity(12);
        if let Some(ip) = ip {
            key.extend_from_slice(&ip.octets());
        }
        key.extend_from_slice(&proto_key(f.proto));
        key.extend_from_slice(&port_key(f.host_port));
        match ip {
            Some(_) => by_ip.push((key, elem_data(f))),
            None => any.push((key, elem_data(f))),
        }
    }
    (any, by_ip)
}

fn ipv4() -> [Expr; 2] {
    meta_cmp(MetaKey::NfProto, CmpOp::Eq, &[NFPROTO_IPV4])
}

/// `dnat ip to [ip daddr .] meta l4proto . th dport map @MAP`.
fn dnat_rule(with_ip: bool, exclude_loopback: bool) -> Vec<Expr> {
    let mut r: Vec<Expr> = ipv4().to_vec();
    if exclude_loopback {
        let mut lo = ip_in(16, [127, 0, 0, 0], 8);
        if let Some(Expr::Cmp { op, .. }) = lo.last_mut() {
            *op = CmpOp::Neq;
        }
        r.extend(lo);
    }
    r.extend(daddr_is_local());
    let mut reg = REG32_00;
    if with_ip {
        r.push(Expr::Payload {
            base: expr::Base::Network,
            offset: 16,
            len: 4,
            dreg: reg,
        });
        reg += 1;
    }
    r.push(Expr::Meta {
        key: MetaKey::L4Proto,
        dreg: reg,
    });
    r.push(Expr::Payload {
        base: expr::Base::Transport,
        offset: 2,
        len: 2,
        dreg: reg + 1,
    });
    let (set, set_id) = if with_ip {
        (PORTS_IP, 2)
    } else {
        (PORTS_ANY, 1)
    };
    r.push(Expr::Lookup {
        set: set.into(),
        set_id,
        sreg: REG32_00,
        dreg: Some(REG32_00),
        invert: false,
    });
    r.push(Expr::Dnat {
        reg_addr: REG32_00,
        reg_proto: REG32_00 + 1,
    });
    r
}

fn subnet(n: &Network, offset: u32) -> Vec<Expr> {
    ip_in(offset, n.subnet.octets(), n.prefix)
}

/// The whole table as one batch: delete-and-recreate, then everything in it.
pub fn build(rs: &Ruleset) -> Batch {
    let t = if rs.table.is_empty() {
        TABLE
    } else {
        rs.table.as_str()
    };
    let mut b = Batch::new();
    b.add_table(t);
    b.del_table(t);
    b.add_table(t);
    let nat = |name, hook, priority| Chain {
        name,
        kind: ChainType::Nat,
        hook,
        priority,
    };
    b.add_chain(t, &nat("prerouting", Hook::Prerouting, -100));
    b.add_chain(t, &nat("output", Hook::Output, -100));
    b.add_chain(t, &nat("postrouting", Hook::Postrouting, 100));
    b.add_chain(
        t,
        &Chain {
            name: "forward",
            kind: ChainType::Filter,
            hook: Hook::Forward,
            priority: 0,
        },
    );
    let svc = concat_type(&[TYPE_IPADDR, TYPE_INET_SERVICE]);
    b.add_set(
        t,
        &Set {
            name: PORTS_ANY,
            id: 1,
            key_type: concat_type(&[TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]),
            key_len: 8,
            fields: &[1, 2],
            data: Some((svc, 8)),
        },
    );
    b.add_set(
        t,
        &Set {
            name: PORTS_IP,
            id: 2,
            key_type: concat_type(&[TYPE_IPADDR, TYPE_INET_PROTOCOL, TYPE_INET_SERVICE]),
            key_len: 12,
            fields: &[4, 1, 2],
            data: Some((svc, 8)),
        },
    );
    b.add_set(
        t,
        &Set {
            name: BRIDGES,
            id: 3,
            key_type: TYPE_IFNAME,
            key_len: 16,
            fields: &[16],
            data: None,
        },
    );
    let (any, by_ip) = elements(&rs.forwards);
    if !any.is_empty() {
        b.add_elems(t, PORTS_ANY, 1, &any);
    }
    if !by_ip.is_empty() {
        b.add_elems(t, PORTS_IP, 2, &by_ip);
    }
    let bridges: Vec<Elem> = rs
        .networks
        .iter()
        .map(|n| (ifname(&n.bridge), Vec::new()))
        .collect();
    if !bridges.is_empty() {
        b.add_elems(t, BRIDGES, 3, &bridges);
    }

    for chain in ["prerouting", "output"] {
        let exclude_lo = chain == "output" && !rs.loopback;
        b.add_rule(t, chain, &dnat_rule(true, exclude_lo));
        b.add_rule(t, chain, &dnat_rule(false, exclude_lo));
    }

    for n in &rs.networks {
        let br = ifname(&n.bridge);
        if !n.internal {
            let mut r = ipv4().to_vec();
            r.extend(subnet(n, 12));
            r.extend(meta_cmp(MetaKey::OifName, CmpOp::Neq, &br));
            r.push(Expr::Masquerade);
            b.add_rule(t, "postrouting", &r);
        }
        // Hairpin: a container reaching a published port through the host's
        // address, DNATed back into its own bridge.
        let mut r: Vec<Expr> = ct_has(CtKey::Status, CT_STATUS_DNAT).to_vec();
        r.extend(meta_cmp(MetaKey::OifName, CmpOp::Eq, &br));
        r.extend(ipv4());
        r.extend(subnet(n, 12));
        r.push(Expr::Masquerade);
        b.add_rule(t, "postrouting", &r);
        if rs.loopback {
            let mut r: Vec<Expr> = meta_cmp(MetaKey::OifName, CmpOp::Eq, &br).to_vec();
            r.extend(ipv4());
            r.extend(ip_in(12, [127, 0, 0, 0], 8));
            r.push(Expr::Masquerade);
            b.add_rule(t, "postrouting", &r);
        }
    }

    let drop = |mut r: Vec<Expr>| {
        r.push(Expr::Counter);
        r.push(Expr::Immediate(Verdict::Drop));
        r
    };
    for n in rs.networks.iter().filter(|n| n.internal) {
        let br = ifname(&n.bridge);
        let mut out = meta_cmp(MetaKey::IifName, CmpOp::Eq, &br).to_vec();
        out.extend(meta_cmp(MetaKey::OifName, CmpOp::Neq, &br));
        b.add_rule(t, "forward", &drop(out));
        let mut inn = meta_cmp(MetaKey::OifName, CmpOp::Eq, &br).to_vec();
        inn.extend(meta_cmp(MetaKey::IifName, CmpOp::Neq, &br));
        b.add_rule(t, "forward", &drop(inn));
    }
    if !rs.networks.is_empty() {
        let mut r: Vec<Expr> = ct_has(CtKey::Status, CT_STATUS_DNAT).to_vec();
        r.push(Expr::Immediate(Verdict::Accept));
        b.add_rule(t, "forward", &r);
    }
    for n in &rs.networks {
        let br = ifname(&n.bridge);
        let mut r = meta_cmp(MetaKey::IifName, CmpOp::Eq, &br).to_vec();
        r.extend(meta_cmp(MetaKey::OifName, CmpOp::Neq, &br));
        r.push(Expr::Meta {
            key: MetaKey::OifName,
            dreg: REG_1,
        });
        r.push(Expr::Lookup {
            set: BRIDGES.into(),
            set_id: 3,
            sreg: REG_1,
            dreg: None,
            invert: false,
        });
        b.add_rule(t, "forward", &drop(r));
    }
    b
}
