//! The DNS responder of user-defined networks, in the event loop: a UDP
//! socket on each network's gateway address, port 53. Names of the
//! network's running containers (name, aliases, short ID) are answered
//! here; every other query is forwarded to the container's own resolvers
//! (its `--dns`, else the host's) and the answer relayed back. Queries in
//! flight are bounded (`MAX_PENDING`, the oldest dropped) and expire after
//! `PENDING_TTL`.
//!
//! DNS over TCP is served on the same address (length-prefixed messages,
//! at most `MAX_TCP` clients); its forwarded queries go upstream over UDP.
//!
//! Sources are registered through a token function (`token(n << 2 | kind)`:
//! the upstream socket, a network's UDP socket or TCP listener, a TCP
//! client); on readiness the loop calls `ready(index, lookup)`.

use std::collections::HashMap;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use std::io::{Read, Write};

use mio::net::{TcpListener, TcpStream, UdpSocket};
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
    /// DNS over TCP on the same address (None if it could not bind).
    listener: Option<TcpListener>,
    net: String,
}

/// A DNS-over-TCP client: length-prefixed queries in, answers out.
struct TcpConn {
    stream: TcpStream,
    server: usize,
    serial: u64,
    input: Vec<u8>,
    output: Vec<u8>,
    eof: bool,
}

/// Where an answer goes.
#[derive(Clone, Copy)]
enum Client {
    Udp(SocketAddr),
    /// A TCP connection's slot and serial (a reused slot has another).
    Tcp(usize, u64),
}

struct Pending {
    server: usize,
    client: Client,
    id: u16,
    at: Instant,
}

/// Token kinds: `token(n << 2 | kind)`.
const K_UPSTREAM: usize = 0;
const K_UDP: usize = 1;
const K_LISTEN: usize = 2;
const K_TCP: usize = 3;
/// TCP clients at once (beyond: the oldest is closed).
pub const MAX_TCP: usize = 64;
/// The largest DNS message plus its length prefix.
const TCP_MSG: usize = 2 + 65535;

pub struct Dns {
    registry: Registry,
    token: fn(usize) -> Token,
    servers: Vec<Option<Server>>,
    conns: Vec<Option<TcpConn>>,
    serial: u64,
    upstream: Option<UdpSocket>,
    pending: HashMap<u16, Pending>,
    next_id: u16,
}

fn free_slot<T>(v: &mut Vec<Option<T>>) -> usize {
    match v.iter().position(Option::is_none) {
        Some(i) => i,
        None => {
            v.push(None);
            v.len() - 1
        }
    }
}

impl Dns {
    pub fn new(registry: Registry, token: fn(usize) -> Token) -> Dns {
        Dns {
            registry,
            token,
            servers: Vec::new(),
            conns: Vec::new(),
            serial: 0,
            upstream: None,
            pending: HashMap::new(),
            next_id: 1,
        }
    }

    fn tok(&self, kind: usize, n: usize) -> Token {
        (self.token)(n << 2 | kind)
    }

    /// Answer on `ip`:53 (UDP, and TCP where it binds) for network `net`.
    pub fn serve(&mut self, net: &str, ip: Ipv4Addr) -> io::Result<()> {
        self.stop(net);
        let addr = SocketAddr::new(IpAddr::V4(ip), 53);
        let mut socket = UdpSocket::bind(addr)?;
        let slot = free_slot(&mut self.servers);
        self.registry
            .register(&mut socket, self.tok(K_UDP, slot), Interest::READABLE)?;
        let listener = match TcpListener::bind(addr) {
            Ok(mut l) => {
                let t = self.tok(K_LISTEN, slot);
                self.registry
                    .register(&mut l, t, Interest::READABLE)
                    .ok()
                    .map(|_| l)
            }
            Err(e) => {
                log::warn!("dns: no TCP on {addr}: {e}");
                None
            }
        };
        self.servers[slot] = Some(Server {
            socket,
            listener,
            net: net.to_string(),
        });
        Ok(())
    }

    /// Whether network `net` has a responder.
    pub fn serves(&self, net: &str) -> bool {
        self.servers.iter().flatten().any(|s| s.net == net)
    }

    pub fn stop(&mut self, net: &str) {
        for i in 0..self.servers.len() {
            if self.servers[i].as_ref().is_none_or(|x| x.net != net) {
                continue;
            }
            if let Some(mut x) = self.servers[i].take() {
                let _ = self.registry.deregister(&mut x.socket);
                if let Some(l) = x.listener.as_mut() {
                    let _ = self.registry.deregister(l);
                }
            }
            for c in 0..self.conns.len() {
                if self.conns[c].as_ref().is_some_and(|x| x.server == i) {
                    self.close(c);
                }
            }
        }
    }

    /// Readiness of source `index`.
    pub fn ready(&mut self, index: usize, lookup: &dyn Lookup) {
        let n = index >> 2;
        match index & 3 {
            K_UPSTREAM => self.relay_answers(),
            K_UDP => self.serve_udp(n, lookup),
            K_LISTEN => self.accept(n),
            _ => self.serve_tcp(n, lookup),
        }
    }

    fn serve_udp(&mut self, slot: usize, lookup: &dyn Lookup) {
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
            if let Some(reply) = self.handle(slot, Client::Udp(client), &buf[..n], lookup) {
                if let Some(server) = self.servers.get(slot).and_then(Option::as_ref) {
                    let _ = server.socket.send_to(&reply, client);
                }
            }
        }
    }

    /// One query: our answer now, or None (forwarded, or not a query).
    fn handle(
        &mut self,
        slot: usize,
        client: Client,
        query: &[u8],
        lookup: &dyn Lookup,
    ) -> Option<Vec<u8>> {
        let q = parse_query(query)?;
        let server = self.servers.get(slot).and_then(Option::as_ref)?;
        let net = server.net.clone();
        if let Some(ips) = lookup.addresses(&net, &q.name) {
            return Some(answer(&q, query, &ips));
        }
        let client_ip = match client {
            Client::Udp(a) => a.ip(),
            Client::Tcp(c, _) => self
                .conns
                .get(c)
                .and_then(Option::as_ref)
                .and_then(|c| c.stream.peer_addr().ok())?
                .ip(),
        };
        let IpAddr::V4(client_ip) = client_ip else {
            return None;
        };
        let ups = lookup.upstreams(&net, client_ip);
        match ups.first() {
            Some(up) => {
                self.forward(slot, client, &q, query, *up);
                None
            }
            None => {
                let mut r = answer(&q, query, &[]);
                r[3] = (r[3] & 0xf0) | 2; // SERVFAIL
                Some(r)
            }
        }
    }

    fn forward(&mut self, slot: usize, client: Client, q: &Query, query: &[u8], up: SocketAddr) {
        if self.upstream.is_none() {
            match UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)) {
                Ok(mut s) => {
                    let t = self.tok(K_UPSTREAM, 0);
                    if self
                        .registry
                        .register(&mut s, t, Interest::READABLE)
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
        let now = Instant::now();
        self.pending
            .retain(|_, p| now.duration_since(p.at) < PENDING_TTL);
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
            if s.send_to(&out, up).is_ok() {
                self.pending.insert(
                    id,
                    Pending {
                        server: slot,
                        client,
                        id: q.id,
                        at: now,
                    },
                );
            }
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
            match p.client {
                Client::Udp(addr) => {
                    if let Some(s) = self.servers.get(p.server).and_then(Option::as_ref) {
                        let _ = s.socket.send_to(&buf[..n], addr);
                    }
                }
                Client::Tcp(c, serial) => {
                    let live = self
                        .conns
                        .get(c)
                        .and_then(Option::as_ref)
                        .is_some_and(|x| x.serial == serial);
                    if live {
                        self.queue_tcp(c, &buf[..n]);
                        self.flush(c);
                    }
                }
            }
        }
    }

    fn accept(&mut self, slot: usize) {
        loop {
            let Some(l) = self
                .servers
                .get(slot)
                .and_then(Option::as_ref)
                .and_then(|s| s.listener.as_ref())
            else {
                return;
            };
            let mut stream = match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            if self.conns.iter().flatten().count() >= MAX_TCP {
                // The oldest client makes room.
                if let Some(old) = (0..self.conns.len())
                    .filter(|i| self.conns[*i].is_some())
                    .min_by_key(|i| self.conns[*i].as_ref().map(|c| c.serial))
                {
                    self.close(old);
                }
            }
            let c = free_slot(&mut self.conns);
            let t = self.tok(K_TCP, c);
            if self
                .registry
                .register(&mut stream, t, Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                continue;
            }
            self.serial += 1;
            self.conns[c] = Some(TcpConn {
                stream,
                server: slot,
                serial: self.serial,
                input: Vec::new(),
                output: Vec::new(),
                eof: false,
            });
        }
    }

    fn serve_tcp(&mut self, c: usize, lookup: &dyn Lookup) {
        let mut buf = [0u8; 4096];
        loop {
            let Some(conn) = self.conns.get_mut(c).and_then(Option::as_mut) else {
                return;
            };
            if conn.eof || conn.input.len() >= TCP_MSG {
                break;
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => conn.eof = true,
                Ok(n) => conn.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.close(c),
            }
        }
        // Every complete message in the input.
        loop {
            let Some(conn) = self.conns.get_mut(c).and_then(Option::as_mut) else {
                return;
            };
            if conn.input.len() < 2 {
                break;
            }
            let len = u16::from_be_bytes([conn.input[0], conn.input[1]]) as usize;
            if conn.input.len() < 2 + len {
                break;
            }
            let msg: Vec<u8> = conn.input.drain(..2 + len).skip(2).collect();
            let (server, serial) = (conn.server, conn.serial);
            if let Some(reply) = self.handle(server, Client::Tcp(c, serial), &msg, lookup) {
                self.queue_tcp(c, &reply);
            }
        }
        self.flush(c);
    }

    fn queue_tcp(&mut self, c: usize, msg: &[u8]) {
        if let Some(conn) = self.conns.get_mut(c).and_then(Option::as_mut) {
            if conn.output.len() + msg.len() + 2 <= 4 * TCP_MSG {
                conn.output
                    .extend_from_slice(&(msg.len() as u16).to_be_bytes());
                conn.output.extend_from_slice(msg);
            }
        }
    }

    /// Write what is queued; close once the client is done and served.
    fn flush(&mut self, c: usize) {
        let Some(conn) = self.conns.get_mut(c).and_then(Option::as_mut) else {
            return;
        };
        while !conn.output.is_empty() {
            match conn.stream.write(&conn.output) {
                Ok(0) => return self.close(c),
                Ok(n) => {
                    conn.output.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.close(c),
            }
        }
        let waiting = self
            .pending
            .values()
            .any(|p| matches!(p.client, Client::Tcp(x, s) if x == c && s == conn.serial));
        if (conn.eof && !waiting) || conn.input.len() >= TCP_MSG {
            self.close(c);
        }
    }

    fn close(&mut self, c: usize) {
        if let Some(mut conn) = self.conns.get_mut(c).and_then(Option::take) {
            let _ = self.registry.deregister(&mut conn.stream);
        }
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
