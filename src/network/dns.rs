//! The DNS responder of user-defined networks, in the event loop: a UDP
//! socket on each network's gateway address, port 53. Names of the
//! network's running containers (name, aliases, short ID) are answered
//! here; every other query is forwarded to the container's own resolvers
//! (its `--dns`, else the host's) and the answer relayed back. Queries in
//! flight are bounded (`MAX_PENDING`, the oldest dropped) and expire after
//! `PENDING_TTL`.
//!
//! Sources are registered through a token function (`token(i)`: index 0 is
//! the upstream socket, `i + 1` the server of slot `i`); on readiness the
//! loop calls `ready(i, lookup)`.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};

/// Forwarded queries awaiting an answer.
pub const MAX_PENDING: usize = 512;
/// A forwarded query with no answer for this long is forgotten.
pub const PENDING_TTL: Duration = Duration::from_secs(5);
/// The TTL of our own answers (dockerd's).
const TTL: u32 = 600;
const QTYPE_A: u16 = 1;
const QTYPE_ANY: u16 = 255;

/// What the responder needs to know about a query's network.
pub trait Lookup {
    /// Addresses of `name` on network `net`, if it names a container there.
    fn addresses(&self, net: &str, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// Where to forward other names for the client at `client` on `net`.
    fn upstreams(&self, net: &str, client: Ipv4Addr) -> Vec<SocketAddr>;
}

struct Server {
    socket: UdpSocket,
    net: String,
}

struct Pending {
    server: usize,
    client: SocketAddr,
    id: u16,
    at: Instant,
}

pub struct Dns {
    registry: Registry,
    token: fn(usize) -> Token,
    servers: Vec<Option<Server>>,
    upstream: Option<UdpSocket>,
    pending: HashMap<u16, Pending>,
    next_id: u16,
}

impl Dns {
    pub fn new(registry: Registry, token: fn(usize) -> Token) -> Dns {
        Dns {
            registry,
            token,
            servers: Vec::new(),
            upstream: None,
            pending: HashMap::new(),
            next_id: 1,
        }
    }

    /// Answer on `ip`:53 for network `net`.
    pub fn serve(&mut self, net: &str, ip: Ipv4Addr) -> io::Result<()> {
        self.stop(net);
        let mut socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 53))?;
        let slot = match self.servers.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.servers.push(None);
                self.servers.len() - 1
            }
        };
        self.registry
            .register(&mut socket, (self.token)(slot + 1), Interest::READABLE)?;
        self.servers[slot] = Some(Server {
            socket,
            net: net.to_string(),
        });
        Ok(())
    }

    /// Whether network `net` has a responder.
    pub fn serves(&self, net: &str) -> bool {
        self.servers.iter().flatten().any(|s| s.net == net)
    }

    pub fn stop(&mut self, net: &str) {
        for s in self.servers.iter_mut() {
            if s.as_ref().is_some_and(|x| x.net == net) {
                if let Some(mut x) = s.take() {
                    let _ = self.registry.deregister(&mut x.socket);
                }
            }
        }
    }

    /// Readiness of source `index`.
    pub fn ready(&mut self, index: usize, lookup: &dyn Lookup) {
        if index == 0 {
            self.relay_answers();
        } else {
            self.serve_queries(index - 1, lookup);
        }
    }

    fn serve_queries(&mut self, slot: usize, lookup: &dyn Lookup) {
        let mut buf = [0u8; 1500];
        loop {
            let Some(server) = self.servers.get(slot).and_then(Option::as_ref) else {
                return;
            };
            let (n, client) = match server.socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let query = &buf[..n];
            let Some(q) = parse_query(query) else {
                continue;
            };
            let net = server.net.clone();
            if let Some(ips) = lookup.addresses(&net, &q.name) {
                let reply = answer(&q, query, &ips);
                let _ = server.socket.send_to(&reply, client);
                continue;
            }
            let client_ip = match client.ip() {
                IpAddr::V4(ip) => ip,
                IpAddr::V6(_) => continue,
            };
            let ups = lookup.upstreams(&net, client_ip);
            self.forward(slot, client, &q, query, &ups);
        }
    }

    fn forward(
        &mut self,
        slot: usize,
        client: SocketAddr,
        q: &Query,
        query: &[u8],
        ups: &[SocketAddr],
    ) {
        let Some(up) = ups.first() else {
            return self.reply_servfail(slot, client, q, query);
        };
        if self.upstream.is_none() {
            match UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)) {
                Ok(mut s) => {
                    if self
                        .registry
                        .register(&mut s, (self.token)(0), Interest::READABLE)
                        .is_err()
                    {
                        return;
                    }
                    self.upstream = Some(s);
                }
                Err(e) => {
                    log::warn!("dns: upstream socket: {e}");
                    return;
                }
            }
        }
        self.expire(Instant::now());
        if self.pending.len() >= MAX_PENDING {
            if let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| *k)
            {
                self.pending.remove(&oldest);
            }
        }
        let mut id = self.next_id;
        while self.pending.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.next_id = id.wrapping_add(1);
        let mut out = query.to_vec();
        out[0..2].copy_from_slice(&id.to_be_bytes());
        if let Some(s) = &self.upstream {
            if s.send_to(&out, *up).is_ok() {
                self.pending.insert(
                    id,
                    Pending {
                        server: slot,
                        client,
                        id: q.id,
                        at: Instant::now(),
                    },
                );
            }
        }
    }

    fn reply_servfail(&self, slot: usize, client: SocketAddr, q: &Query, query: &[u8]) {
        if let Some(s) = self.servers.get(slot).and_then(Option::as_ref) {
            let mut r = answer(q, query, &[]);
            r[3] = (r[3] & 0xf0) | 2;
            let _ = s.socket.send_to(&r, client);
        }
    }

    fn relay_answers(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(up) = &self.upstream else {
                return;
            };
            let n = match up.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if n < 12 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            buf[0..2].copy_from_slice(&p.id.to_be_bytes());
            if let Some(s) = self.servers.get(p.server).and_then(Option::as_ref) {
                let _ = s.socket.send_to(&buf[..n], p.client);
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        self.pending
            .retain(|_, p| now.duration_since(p.at) < PENDING_TTL);
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Lower case, without the final dot.
    pub name: String,
    pub qtype: u16,
    /// Where the question section ends.
    end: usize,
}

/// A standard query with one question; None for anything else.
pub fn parse_query(b: &[u8]) -> Option<Query> {
    if b.len() < 12 || b[2] & 0x80 != 0 || (b[2] >> 3) & 0x0f != 0 {
        return None;
    }
    if u16::from_be_bytes([b[4], b[5]]) != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *b.get(at)? as usize;
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        let label = b.get(at..at + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += len;
        if at > 12 + 255 {
            return None;
        }
    }
    let qtype = u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]);
    b.get(at + 2..at + 4)?;
    Some(Query {
        id: u16::from_be_bytes([b[0], b[1]]),
        name: labels.join("."),
        qtype,
        end: at + 4,
    })
}

/// Our answer to `q`: A records for `ips` (none for other types: the name
/// exists, so NOERROR with no data, as dockerd answers AAAA).
pub fn answer(q: &Query, query: &[u8], ips: &[Ipv4Addr]) -> Vec<u8> {
    let ips: &[Ipv4Addr] = if matches!(q.qtype, QTYPE_A | QTYPE_ANY) {
        ips
    } else {
        &[]
    };
    let mut r = Vec::with_capacity(q.end + ips.len() * 16);
    r.extend_from_slice(&q.id.to_be_bytes());
    // QR, AA, the query's RD, RA; NOERROR.
    r.push(0x84 | (query[2] & 0x01));
    r.push(0x80);
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&query[12..q.end]);
    for ip in ips {
        r.extend_from_slice(&[0xc0, 0x0c]);
        r.extend_from_slice(&QTYPE_A.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&TTL.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&ip.octets());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut b = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            b.push(l.len() as u8);
            b.extend_from_slice(l.as_bytes());
        }
        b.push(0);
        b.extend_from_slice(&qtype.to_be_bytes());
        b.extend_from_slice(&1u16.to_be_bytes());
        b
    }

    #[test]
    fn answers_a_records() {
        let b = query("Web", 1);
        let b = &b[..b.len()];
        let q = parse_query(b).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype), (0x1234, "web", 1));
        let r = answer(&q, b, &[Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(&r[0..2], &[0x12, 0x34]);
        assert_eq!(r[2] & 0x80, 0x80);
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &[10, 0, 0, 2]);
        let q6 = parse_query(&query("web", 28)).unwrap();
        let r6 = answer(&q6, &query("web", 28), &[Ipv4Addr::new(10, 0, 0, 2)]);
        assert_eq!(u16::from_be_bytes([r6[6], r6[7]]), 0);
    }

    #[test]
    fn refuses_odd_packets() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut b = query("x", 1);
        b[2] |= 0x80; // a response
        assert!(parse_query(&b).is_none());
        let mut b = query("x", 1);
        b[12] = 0xc0; // compression in a question
        assert!(parse_query(&b).is_none());
    }
}
