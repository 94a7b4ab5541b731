//! Listening sockets from `-H` addresses (unix, tcp, fd) and the accepted
//! stream type the HTTP layer reads and writes.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::tls_listener::{TlsServer, TlsStream};

/// A parsed `-H` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
    /// systemd socket activation: every fd passed in LISTEN_FDS.
    Fd,
}

pub const DEFAULT_UNIX_SOCKET: &str = "/var/run/docker.sock";
const DEFAULT_TCP_PORT: u16 = 2375;
pub const DEFAULT_TLS_PORT: u16 = 2376;

impl HostAddr {
    /// Parse dockerd's `-H` syntax: `unix:///path`, `tcp://ADDR[:PORT]`,
    /// `tcp://:PORT`, `fd://`.
    pub fn parse(s: &str) -> Result<HostAddr, String> {
        HostAddr::parse_with_port(s, DEFAULT_TCP_PORT)
    }

    /// As `parse`, with `port` for a `tcp://` address that names none
    /// (dockerd: 2376 with TLS).
    pub fn parse_with_port(s: &str, port: u16) -> Result<HostAddr, String> {
        if let Some(path) = s.strip_prefix("unix://") {
            let path = if path.is_empty() {
                DEFAULT_UNIX_SOCKET
            } else {
                path
            };
            return Ok(HostAddr::Unix(PathBuf::from(path)));
        }
        if s == "fd://" {
            return Ok(HostAddr::Fd);
        }
        if let Some(rest) = s.strip_prefix("tcp://") {
            let rest = rest.trim_end_matches('/');
            let (host, port) = split_host_port(rest, port)?;
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            let ip = host.parse().map_err(|_| {
                format!("invalid bind address {s:?}: {host:?} is not an IP address")
            })?;
            return Ok(HostAddr::Tcp(SocketAddr::new(ip, port)));
        }
        Err(format!(
            "invalid bind address format: {s} (want unix:///path, tcp://ADDR:PORT or fd://)"
        ))
    }
}

fn split_host_port(s: &str, default_port: u16) -> Result<(&str, u16), String> {
    let bad_port = |p: &str| format!("invalid port {p:?} in tcp://{s}");
    if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("invalid IPv6 address in tcp://{s}"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, p.parse().map_err(|_| bad_port(p))?)),
            None if after.is_empty() => Ok((host, default_port)),
            None => Err(format!("invalid address tcp://{s}")),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) => Ok((h, p.parse().map_err(|_| bad_port(p))?)),
        None => Ok((s, default_port)),
    }
}

pub enum Listener {
    /// The path, and whether we created the socket file (and so remove it).
    Unix(UnixListener, PathBuf, bool),
    Tcp(TcpListener),
    /// A TCP listener whose connections speak TLS.
    Tls(TcpListener, std::rc::Rc<TlsServer>),
}

impl Listener {
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix(_, p, _) => format!("unix://{}", p.display()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp://{a}"),
                Err(_) => "tcp://?".into(),
            },
            Listener::Tls(l, s) => match l.local_addr() {
                Ok(a) if s.verify() => format!("tcp://{a} (TLS, client certificates verified)"),
                Ok(a) => format!("tcp://{a} (TLS)"),
                Err(_) => "tcp://? (TLS)".into(),
            },
        }
    }

    /// TCP listeners speak TLS from now on.
    pub fn with_tls(self, server: &std::rc::Rc<TlsServer>) -> Listener {
        match self {
            Listener::Tcp(l) => Listener::Tls(l, server.clone()),
            other => other,
        }
    }

    /// The address of a TCP listener that is not loopback-only (where the
    /// LAN can reach it).
    pub fn exposed_tcp(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) | Listener::Tls(l, _) => {
                l.local_addr().ok().filter(|a| !a.ip().is_loopback())
            }
            Listener::Unix(..) => None,
        }
    }

    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Unix(l, _, _) => l.accept().map(|(s, _)| Stream::Unix(s)),
            Listener::Tcp(l) => l.accept().map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Stream::Tcp(s)
            }),
            Listener::Tls(l, server) => {
                let (s, _) = l.accept()?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tls(Box::new(server.accept(s)?)))
            }
        }
    }

    /// Remove the socket file of a unix listener (on shutdown).
    pub fn remove_socket_file(&self) {
        // A socket handed over by systemd is systemd's to remove.
        if let Listener::Unix(_, p, true) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Source for Listener {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Unix(l, _, _) => l.register(r, t, i),
            Listener::Tcp(l) | Listener::Tls(l, _) => l.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Listener::Unix(l, _, _) => l.reregister(r, t, i),
            Listener::Tcp(l) | Listener::Tls(l, _) => l.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Listener::Unix(l, _, _) => l.deregister(r),
            Listener::Tcp(l) | Listener::Tls(l, _) => l.deregister(r),
        }
    }
}

/// Bind every listener for `addr`.
pub fn bind(addr: &HostAddr) -> Result<Vec<Listener>, String> {
    match addr {
        HostAddr::Unix(path) => bind_unix(path).map(|l| vec![l]),
        HostAddr::Tcp(sa) => {
            let l = TcpListener::bind(*sa).map_err(|e| format!("listen tcp://{sa}: {e}"))?;
            Ok(vec![Listener::Tcp(l)])
        }
        HostAddr::Fd => activated_listeners(),
    }
}

fn bind_unix(path: &Path) -> Result<Listener, String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A live daemon answers a connect; a stale file refuses it.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(format!(
                    "another daemon is already answering on unix://{shown}; stop it or choose another -H"
                ));
            }
            std::fs::remove_file(path).map_err(|e| format!("remove stale socket {shown}: {e}"))?;
        }
        Ok(_) => {
            return Err(format!(
                "{shown} exists and is not a socket; refusing to replace it"
            ))
        }
        Err(_) => {}
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let l = UnixListener::bind(path).map_err(|e| format!("listen unix://{shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| format!("chmod {shown}: {e}"))?;
    if let Some(gid) = docker_group_id() {
        let _ = nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid)));
    }
    Ok(Listener::Unix(l, path.to_path_buf(), true))
}

/// The gid of group `docker` from /etc/group, when that group exists.
fn docker_group_id() -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == "docker").then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Sockets handed over by systemd (LISTEN_PID / LISTEN_FDS, starting at fd 3).
fn activated_listeners() -> Result<Vec<Listener>, String> {
    let pid: u32 = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or("fd:// given but LISTEN_PID is not set (not socket-activated)")?;
    if pid != std::process::id() {
        return Err("fd:// given but LISTEN_PID names another process".into());
    }
    let n: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or("fd:// given but LISTEN_FDS is not set")?;
    let mut out = Vec::new();
    for fd in 3..3 + n {
        let _ = nix::fcntl::fcntl(
            // SAFETY: `fd` is one of the LISTEN_FDS systemd passed us, open
            // for the whole call.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let family = nix::sys::socket::getsockname::<nix::sys::socket::SockaddrStorage>(fd)
            .map_err(|e| format!("activated fd {fd}: {e}"))?;
        if family.as_unix_addr().is_some() {
            // SAFETY: systemd passed us ownership of these listening sockets.
            let std_l = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
            let path = std_l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                .unwrap_or_default();
            out.push(Listener::Unix(UnixListener::from_std(std_l), path, false));
        } else {
            // SAFETY: as above; nothing else owns `fd`.
            let std_l = unsafe { std::net::TcpListener::from_raw_fd(fd) };
            out.push(Listener::Tcp(TcpListener::from_std(std_l)));
        }
    }
    Ok(out)
}

/// Who is at the other end of a connection, as far as the gate in
/// `api/guard.rs` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// The unix socket: governed by its file mode, as with dockerd.
    Local,
    /// A TCP client.
    Tcp(SocketAddr),
    /// A TLS client whose certificate the CA vouched for.
    TlsVerified(SocketAddr),
}

impl Peer {
    /// The address as the audit log shows it.
    pub fn describe(&self) -> String {
        match self {
            Peer::Local => "unix".into(),
            Peer::Tcp(a) | Peer::TlsVerified(a) => a.to_string(),
        }
    }
}

fn unknown_if_err(a: io::Result<SocketAddr>) -> SocketAddr {
    a.unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// An accepted connection.
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// The peer, for the gate (a TCP peer whose address cannot be read is
    /// reported as 0.0.0.0:0, which no allow-from or token exempts).
    pub fn peer(&self) -> Peer {
        match self {
            Stream::Unix(_) => Peer::Local,
            Stream::Tcp(s) => Peer::Tcp(unknown_if_err(s.peer_addr())),
            Stream::Tls(s) if s.verified() => {
                Peer::TlsVerified(unknown_if_err(s.tcp().peer_addr()))
            }
            Stream::Tls(s) => Peer::Tcp(unknown_if_err(s.tcp().peer_addr())),
        }
    }

    /// Output the stream itself still holds (TLS records not yet sent).
    pub fn has_pending_output(&self) -> bool {
        match self {
            Stream::Tls(s) => s.has_pending_output(),
            _ => false,
        }
    }

    /// Bytes written that the peer has not read yet (unix sockets: the
    /// socket's outgoing queue, SIOCOUTQ); 0 when unknown (TCP, where the
    /// queue counts unacknowledged bytes, not unread ones).
    pub fn unread_by_peer(&self) -> usize {
        let Stream::Unix(s) = self else { return 0 };
        let mut n: libc::c_int = 0;
        // SAFETY: SIOCOUTQ (== TIOCOUTQ) writes one c_int through the
        // pointer, which points at `n`, alive for the call; the fd is ours.
        let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
        if rc == 0 {
            usize::try_from(n).unwrap_or(0)
        } else {
            0
        }
    }

    /// Half-close our sending side (end of a hijacked stream).
    pub fn shutdown_write(&mut self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Tls(s) => {
                s.shutdown_write();
                Ok(())
            }
        };
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Tls(s) => s.tcp().as_raw_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    /// Push out what the stream itself buffers (TLS records).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tls(s) => s.flush(),
            _ => Ok(()),
        }
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.register(r, t, i),
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Tls(s) => s.tcp_mut().register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.reregister(r, t, i),
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Tls(s) => s.tcp_mut().reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.deregister(r),
            Stream::Tcp(s) => s.deregister(r),
            Stream::Tls(s) => s.tcp_mut().deregister(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_flags() {
        assert_eq!(
            HostAddr::parse("unix:///tmp/x.sock").unwrap(),
            HostAddr::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            HostAddr::parse("tcp://127.0.0.1").unwrap(),
            HostAddr::Tcp("127.0.0.1:2375".parse().unwrap())
        );
        assert_eq!(
            HostAddr::parse("tcp://:2376").unwrap(),
            HostAddr::Tcp("0.0.0.0:2376".parse().unwrap())
        );
        assert_eq!(
            HostAddr::parse("tcp://[::1]:9").unwrap(),
            HostAddr::Tcp("[::1]:9".parse().unwrap())
        );
        assert!(HostAddr::parse("tcp://host.example:1").is_err());
        assert!(HostAddr::parse("tcp://1.2.3.4:x").is_err());
        assert!(HostAddr::parse("http://x").is_err());
    }
}
