//! The userland port proxy, in the event loop: published ports when the
//! kernel has no nf_tables, and 127.0.0.1 when DNAT cannot serve loopback.
//! TCP and UDP, every buffer bounded, never a blocking call.
//!
//! Public API, and how the reactor drives it:
//! - `Proxy::new(token)`: `token(i)` makes the poll token for the proxy's
//!   source index `i` (the reactor adds a `Source::Proxy(i)` kind and
//!   passes `|i| Source::Proxy(i).token()`).
//! - `add(registry, proto, listen, target)` binds `listen` (port 0: any
//!   free one; the bound address is returned with the [`ProxyId`]) and
//!   forwards to `target`; `remove(registry, id)` closes the listener and
//!   every connection it made (container stop).
//! - On readiness of `Source::Proxy(i)`: `ready(registry, i)`. Sources are
//!   registered edge-triggered; `ready` drains what it can and re-pumps
//!   both directions until nothing moves, so no wakeup is lost.
//! - Timers: `next_deadline()` joins the loop's nearest deadline and
//!   `expire(registry, now)` ends idle UDP flows.
//!
//! Bounds: `BUF` bytes queued per direction of a TCP connection (a full
//! buffer stops reading that side: the sender is throttled by TCP),
//! `MAX_CONNS` connections per listener (beyond: accepted and closed), and
//! `MAX_FLOWS` UDP flows per port (the idlest is evicted).

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};

use super::portmap::Proto;
use crate::slab::Slab;

/// A non-blocking IPv6 socket bound to `listen` with IPV6_V6ONLY (IPv4 on
/// the same port is the firewall's, or another listener's), listening if
/// `stream`.
fn v6_only(listen: SocketAddr, stream: bool) -> io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{self as s, sockopt};
    let kind = if stream {
        s::SockType::Stream
    } else {
        s::SockType::Datagram
    };
    let flags = s::SockFlag::SOCK_NONBLOCK | s::SockFlag::SOCK_CLOEXEC;
    let fd = s::socket(s::AddressFamily::Inet6, kind, flags, None).map_err(io::Error::from)?;
    s::setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(io::Error::from)?;
    if stream {
        s::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(io::Error::from)?;
    }
    let addr = match listen {
        SocketAddr::V6(a) => s::SockaddrIn6::from(a),
        SocketAddr::V4(_) => return Err(io::Error::from(ErrorKind::InvalidInput)),
    };
    s::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).map_err(io::Error::from)?;
    if stream {
        s::listen(&fd, s::Backlog::MAXCONN).map_err(io::Error::from)?;
    }
    Ok(fd)
}

/// Bytes queued per direction of a proxied TCP connection.
pub const BUF: usize = 64 * 1024;
/// Connections one published TCP port carries at once.
pub const MAX_CONNS: usize = 1024;
/// UDP flows one published UDP port tracks at once.
pub const MAX_FLOWS: usize = 1024;
/// A UDP flow with no datagram for this long is closed (dockerd: 90 s).
pub const UDP_IDLE: Duration = Duration::from_secs(90);
const DATAGRAM: usize = 65536;

/// A published port's proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProxyId(usize);

enum Front {
    Tcp {
        listener: TcpListener,
        target: SocketAddr,
        conns: usize,
    },
    Udp {
        socket: UdpSocket,
        target: SocketAddr,
        flows: HashMap<SocketAddr, usize>,
    },
}

struct Pipe {
    buf: Vec<u8>,
    /// The source said EOF (or failed): nothing more to read.
    eof: bool,
    /// The destination's write side is shut down.
    shut: bool,
}

impl Pipe {
    fn new() -> Pipe {
        Pipe {
            buf: Vec::new(),
            eof: false,
            shut: false,
        }
    }
}

struct TcpPair {
    front: usize,
    client: TcpStream,
    upstream: TcpStream,
    connected: bool,
    up: Pipe,
    down: Pipe,
}

struct UdpFlow {
    front: usize,
    socket: UdpSocket,
    client: SocketAddr,
    last: Instant,
}

enum Conn {
    Tcp(TcpPair),
    Udp(UdpFlow),
}

// Source index: (n << 2) | kind.
const K_FRONT: usize = 0;
const K_CLIENT: usize = 1;
const K_UPSTREAM: usize = 2;

/// Every published port served by the proxy.
pub struct Proxy {
    token: fn(usize) -> Token,
    fronts: Slab<Front>,
    conns: Slab<Conn>,
    /// One datagram buffer for all UDP reads, made at the first one.
    scratch: Vec<u8>,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == ErrorKind::WouldBlock
}

/// Move bytes from `src` into `pipe` (room permitting) and from `pipe` into
/// `dst`; true if anything moved. Errors end the pipe like an EOF.
fn pump(src: &mut TcpStream, dst: &mut TcpStream, pipe: &mut Pipe) -> (bool, bool) {
    let mut moved = false;
    let mut failed = false;
    loop {
        let mut progress = false;
        while !pipe.buf.is_empty() {
            match dst.write(&pipe.buf) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    pipe.buf.drain(..n);
                    progress = true;
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if !pipe.eof && pipe.buf.len() < BUF {
            let start = pipe.buf.len();
            pipe.buf.resize(BUF, 0);
            match src.read(&mut pipe.buf[start..]) {
                Ok(0) => {
                    pipe.buf.truncate(start);
                    pipe.eof = true;
                    progress = true;
                }
                Ok(n) => {
                    pipe.buf.truncate(start + n);
                    progress = true;
                }
                Err(e) => {
                    pipe.buf.truncate(start);
                    if !would_block(&e) && e.kind() != ErrorKind::Interrupted {
                        pipe.eof = true;
                        failed = true;
                    }
                }
            }
        }
        if pipe.eof && pipe.buf.is_empty() && !pipe.shut {
            let _ = dst.shutdown(Shutdown::Write);
            pipe.shut = true;
        }
        moved |= progress;
        if !progress || failed {
            return (moved, failed);
        }
    }
}

impl Proxy {
    pub fn new(token: fn(usize) -> Token) -> Proxy {
        Proxy {
            token,
            fronts: Slab::default(),
            conns: Slab::default(),
            scratch: Vec::new(),
        }
    }

    fn tok(&self, n: usize, kind: usize) -> Token {
        (self.token)(n << 2 | kind)
    }

    /// Serve `listen` by forwarding to `target`; returns the id and the
    /// address actually bound.
    pub fn add(
        &mut self,
        registry: &Registry,
        proto: Proto,
        listen: SocketAddr,
        target: SocketAddr,
    ) -> io::Result<(ProxyId, SocketAddr)> {
        let front = match proto {
            Proto::Tcp => Front::Tcp {
                listener: match listen {
                    SocketAddr::V6(_) => TcpListener::from_std(v6_only(listen, true)?.into()),
                    SocketAddr::V4(_) => TcpListener::bind(listen)?,
                },
                target,
                conns: 0,
            },
            Proto::Udp => Front::Udp {
                socket: match listen {
                    SocketAddr::V6(_) => UdpSocket::from_std(v6_only(listen, false)?.into()),
                    SocketAddr::V4(_) => UdpSocket::bind(listen)?,
                },
                target,
                flows: HashMap::new(),
            },
            Proto::Sctp => return Err(io::Error::from(ErrorKind::Unsupported)),
        };
        let n = self.fronts.insert(front);
        let token = self.tok(n, K_FRONT);
        let res = match self.fronts.get_mut(n) {
            Some(Front::Tcp { listener, .. }) => registry
                .register(listener, token, Interest::READABLE)
                .and_then(|_| listener.local_addr()),
            Some(Front::Udp { socket, .. }) => registry
                .register(socket, token, Interest::READABLE)
                .and_then(|_| socket.local_addr()),
            None => Err(io::Error::from(ErrorKind::NotFound)),
        };
        match res {
            Ok(addr) => Ok((ProxyId(n), addr)),
            Err(e) => {
                self.fronts.remove(n);
                Err(e)
            }
        }
    }

    /// Stop serving a port: its listener and all its connections close.
    pub fn remove(&mut self, registry: &Registry, id: ProxyId) {
        let ids: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| match c {
                Conn::Tcp(p) => p.front == id.0,
                Conn::Udp(f) => f.front == id.0,
            })
            .map(|(i, _)| i)
            .collect();
        for c in ids {
            self.close(registry, c);
        }
        match self.fronts.remove(id.0) {
            Some(Front::Tcp { mut listener, .. }) => {
                let _ = registry.deregister(&mut listener);
            }
            Some(Front::Udp { mut socket, .. }) => {
                let _ = registry.deregister(&mut socket);
            }
            None => {}
        }
    }

    /// Open connections and UDP flows, for tests and `info`.
    #[cfg_attr(not(test), allow(dead_code))] // `info` does not show them yet
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Bytes queued in all TCP connections (bounded by 2 x BUF each).
    #[cfg_attr(not(test), allow(dead_code))] // tests check the bound
    pub fn buffered(&self) -> usize {
        self.conns
            .iter()
            .map(|(_, c)| match c {
                Conn::Tcp(p) => p.up.buf.len() + p.down.buf.len(),
                Conn::Udp(_) => 0,
            })
            .sum()
    }

    fn close(&mut self, registry: &Registry, c: usize) {
        match self.conns.remove(c) {
            Some(Conn::Tcp(mut p)) => {
                let _ = registry.deregister(&mut p.client);
                let _ = registry.deregister(&mut p.upstream);
                if let Some(Front::Tcp { conns, .. }) = self.fronts.get_mut(p.front) {
                    *conns = conns.saturating_sub(1);
                }
            }
            Some(Conn::Udp(mut f)) => {
                let _ = registry.deregister(&mut f.socket);
                if let Some(Front::Udp { flows, .. }) = self.fronts.get_mut(f.front) {
                    flows.remove(&f.client);
                }
            }
            None => {}
        }
    }

    /// A readiness event for the proxy's source `index`.
    pub fn ready(&mut self, registry: &Registry, index: usize) {
        let (n, kind) = (index >> 2, index & 3);
        match kind {
            K_FRONT => match self.fronts.get(n) {
                Some(Front::Tcp { .. }) => self.accept(registry, n),
                Some(Front::Udp { .. }) => {
                    let mut buf = self.take_scratch();
                    self.udp_front(registry, n, &mut buf);
                    self.scratch = buf;
                }
                None => {}
            },
            _ => match self.conns.get(n) {
                Some(Conn::Tcp(_)) => self.tcp(registry, n),
                Some(Conn::Udp(_)) => {
                    let mut buf = self.take_scratch();
                    self.udp_back(n, &mut buf);
                    self.scratch = buf;
                }
                None => {}
            },
        }
    }

    fn accept(&mut self, registry: &Registry, n: usize) {
        loop {
            let Some(Front::Tcp {
                listener,
                target,
                conns,
            }) = self.fronts.get_mut(n)
            else {
                return;
            };
            let (client, _) = match listener.accept() {
                Ok(c) => c,
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("proxy accept: {e}");
                    return;
                }
            };
            if *conns >= MAX_CONNS {
                continue; // dropped: closed at once
            }
            let Ok(upstream) = TcpStream::connect(*target) else {
                continue;
            };
            *conns += 1;
            let c = self.conns.insert(Conn::Tcp(TcpPair {
                front: n,
                client,
                upstream,
                connected: false,
                up: Pipe::new(),
                down: Pipe::new(),
            }));
            let (tc, tu) = (self.tok(c, K_CLIENT), self.tok(c, K_UPSTREAM));
            let rw = Interest::READABLE | Interest::WRITABLE;
            let ok = match self.conns.get_mut(c) {
                Some(Conn::Tcp(p)) => registry
                    .register(&mut p.client, tc, rw)
                    .and_then(|_| registry.register(&mut p.upstream, tu, rw))
                    .is_ok(),
                _ => false,
            };
            if !ok {
                self.close(registry, c);
            }
        }
    }

    fn tcp(&mut self, registry: &Registry, c: usize) {
        let Some(Conn::Tcp(p)) = self.conns.get_mut(c) else {
            return;
        };
        if !p.connected {
            match p.upstream.take_error() {
                Ok(None) => {}
                _ => return self.close(registry, c),
            }
            match p.upstream.peer_addr() {
                Ok(_) => p.connected = true,
                Err(e) if e.kind() == ErrorKind::NotConnected => {
                    // Still connecting; but a client that already left ends it.
                    return;
                }
                Err(_) => return self.close(registry, c),
            }
        }
        loop {
            let (a, fa) = pump(&mut p.client, &mut p.upstream, &mut p.up);
            let (b, fb) = pump(&mut p.upstream, &mut p.client, &mut p.down);
            if fa || fb || (p.up.shut && p.down.shut) {
                return self.close(registry, c);
            }
            if !a && !b {
                return;
            }
        }
    }

    fn take_scratch(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.scratch);
        buf.resize(DATAGRAM, 0);
        buf
    }

    fn udp_front(&mut self, registry: &Registry, n: usize, buf: &mut [u8]) {
        loop {
            let Some(Front::Udp {
                socket,
                target,
                flows,
            }) = self.fronts.get_mut(n)
            else {
                return;
            };
            let (len, from) = match socket.recv_from(buf) {
                Ok(x) => x,
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let target = *target;
            let flow = match flows.get(&from) {
                Some(f) => *f,
                None => {
                    let full = flows.len() >= MAX_FLOWS;
                    if full {
                        self.evict_idlest(registry, n);
                    }
                    match self.new_flow(registry, n, from, target) {
                        Some(f) => f,
                        None => continue,
                    }
                }
            };
            if let Some(Conn::Udp(f)) = self.conns.get_mut(flow) {
                f.last = Instant::now();
                // A full socket buffer drops the datagram, as UDP may.
                let _ = f.socket.send(&buf[..len]);
            }
        }
    }

    fn new_flow(
        &mut self,
        registry: &Registry,
        n: usize,
        client: SocketAddr,
        target: SocketAddr,
    ) -> Option<usize> {
        let local: SocketAddr = if target.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(local).ok()?;
        socket.connect(target).ok()?;
        let c = self.conns.insert(Conn::Udp(UdpFlow {
            front: n,
            socket,
            client,
            last: Instant::now(),
        }));
        let t = self.tok(c, K_UPSTREAM);
        let ok = match self.conns.get_mut(c) {
            Some(Conn::Udp(f)) => registry
                .register(&mut f.socket, t, Interest::READABLE)
                .is_ok(),
            _ => false,
        };
        if !ok {
            self.conns.remove(c);
            return None;
        }
        if let Some(Front::Udp { flows, .. }) = self.fronts.get_mut(n) {
            flows.insert(client, c);
        }
        Some(c)
    }

    fn evict_idlest(&mut self, registry: &Registry, n: usize) {
        let idlest = self
            .conns
            .iter()
            .filter_map(|(i, c)| match c {
                Conn::Udp(f) if f.front == n => Some((f.last, i)),
                _ => None,
            })
            .min()
            .map(|(_, i)| i);
        if let Some(i) = idlest {
            self.close(registry, i);
        }
    }

    fn udp_back(&mut self, c: usize, buf: &mut [u8]) {
        let Some(Conn::Udp(f)) = self.conns.get_mut(c) else {
            return;
        };
        let Some(Front::Udp { socket, .. }) = self.fronts.get(f.front) else {
            return;
        };
        loop {
            match f.socket.recv(buf) {
                Ok(len) => {
                    f.last = Instant::now();
                    let _ = socket.send_to(&buf[..len], f.client);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// When the idlest UDP flow expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|(_, c)| match c {
                Conn::Udp(f) => Some(f.last + UDP_IDLE),
                Conn::Tcp(_) => None,
            })
            .min()
    }

    /// Close UDP flows idle since `now - UDP_IDLE`.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let old: Vec<usize> = self
            .conns
            .iter()
            .filter_map(|(i, c)| match c {
                Conn::Udp(f) if f.last + UDP_IDLE <= now => Some(i),
                _ => None,
            })
            .collect();
        for i in old {
            self.close(registry, i);
        }
    }
}
