//! rtnetlink by hand: a NETLINK_ROUTE socket, messages built attribute by
//! attribute, and the kernel's ack read back. Each call is one synchronous
//! kernel round trip (it never waits on anything outside the kernel), so it
//! may run on the loop. Also: network namespaces (made and entered without a
//! child process) and sysctls written through /proc/sys.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sched::{setns, unshare, CloneFlags};

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_INFO_SLAVE_KIND: u16 = 4;
const IFLA_INFO_SLAVE_DATA: u16 = 5;
const IFLA_BRPORT_MODE: u16 = 4;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const IFF_UP: u32 = 0x1;
const NLA_F_NESTED: u16 = 0x8000;

/// A netlink request under construction: header, fixed part, attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// `struct ifinfomsg`.
    fn ifinfo(mut self, index: u32, flags: u32, change: u32) -> Msg {
        self.buf
            .extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, kind: u16, s: &str) {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(kind, &d);
    }

    fn nest(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A NETLINK_ROUTE socket, bound to the network namespace it was made in.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// A socket in the daemon's own namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // The kernel answers at once; the timeout only bounds a kernel bug.
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval and its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(Netlink { fd, seq: 1 })
    }

    /// A socket inside `ns` (the daemon steps in and back out).
    pub fn open_in(ns: &NetNs) -> io::Result<Netlink> {
        ns.run(Netlink::open)
    }

    /// Send one request; return the payloads of the answers before the ack.
    fn call(&mut self, msg: Msg) -> io::Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        // SAFETY: sending a buffer we own, with its length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut answers = Vec::new();
        let mut buf = vec![0u8; 16384];
        loop {
            let fd = self.fd.as_raw_fd();
            // SAFETY: receiving into a buffer we own, with its length.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= 16 {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let mseq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < 16 || len > rest.len() {
                    return Err(io::Error::other("netlink: truncated answer"));
                }
                let body = &rest[16..len];
                if mseq == seq {
                    if kind == NLMSG_ERROR {
                        if body.len() < 4 {
                            return Err(io::Error::other("netlink: short error"));
                        }
                        let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                        return if code == 0 {
                            Ok(answers)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    answers.push(body.to_vec());
                }
                rest = &rest[((len + 3) & !3).min(rest.len())..];
            }
        }
    }

    /// The index of link `name`, if it exists.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut m = Msg::new(RTM_GETLINK, 0).ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.call(m) {
            Ok(answers) => Ok(answers.first().and_then(|a| {
                a.get(4..8)
                    .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `ip link add NAME type bridge`.
    pub fn add_bridge(&mut self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end();
        self.call(m).map(drop)
    }

    /// A veth pair: `host` here, `peer` made straight inside the namespace
    /// `peer_ns` with the MAC address `peer_mac`.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_ns: RawFd,
        peer_mac: [u8; 6],
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, 0);
        m.attr_str(IFLA_IFNAME, host);
        m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.nest(IFLA_INFO_DATA);
        m.nest(VETH_INFO_PEER);
        // The peer's own ifinfomsg, then its attributes.
        m.buf.extend_from_slice(&[0u8; 16]);
        m.attr_str(IFLA_IFNAME, peer);
        m.attr(IFLA_ADDRESS, &peer_mac);
        m.attr(IFLA_NET_NS_FD, &(peer_ns as u32).to_ne_bytes());
        m.end();
        m.end();
        m.end();
        self.call(m).map(drop)
    }

    /// `ip link set dev INDEX master MASTER up`.
    pub fn set_master_up(&mut self, index: u32, master: u32) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0).ifinfo(index, IFF_UP, IFF_UP);
        m.attr(IFLA_MASTER, &master.to_ne_bytes());
        self.call(m).map(drop)
    }

    /// `ip link set dev INDEX type bridge_slave hairpin on`: a frame may
    /// leave by the bridge port it came in on (a container reaching its
    /// own published port, DNATed back by the bridge's netfilter).
    pub fn set_hairpin(&mut self, index: u32) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, 0).ifinfo(index, 0, 0);
        m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_SLAVE_KIND, "bridge");
        m.nest(IFLA_INFO_SLAVE_DATA);
        m.attr(IFLA_BRPORT_MODE, &[1]);
        m.end();
        m.end();
        self.call(m).map(drop)
    }

    /// `ip link set dev INDEX up`.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        self.call(Msg::new(RTM_NEWLINK, 0).ifinfo(index, IFF_UP, IFF_UP))
            .map(drop)
    }

    /// `ip link del dev INDEX` (a veth takes its peer with it).
    pub fn del_link(&mut self, index: u32) -> io::Result<()> {
        self.call(Msg::new(RTM_DELLINK, 0).ifinfo(index, 0, 0))
            .map(drop)
    }

    /// `ip addr add IP/PREFIX brd + dev INDEX`.
    pub fn add_addr(&mut self, index: u32, ip: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        m.buf
            .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, libc::RT_SCOPE_UNIVERSE]);
        m.buf.extend_from_slice(&index.to_ne_bytes());
        m.attr(IFA_LOCAL, &ip.octets());
        m.attr(IFA_ADDRESS, &ip.octets());
        let host_bits = 32 - u32::from(prefix.min(32));
        let brd = if host_bits >= 2 {
            u32::from(ip) | ((1u64 << host_bits) - 1) as u32
        } else {
            u32::from(ip)
        };
        m.attr(IFA_BROADCAST, &brd.to_be_bytes());
        self.call(m).map(drop)
    }

    /// `ip -6 addr add IP/PREFIX dev INDEX nodad` (usable at once: no
    /// duplicate address detection on a bridge we own).
    pub fn add_addr6(&mut self, index: u32, ip: Ipv6Addr, prefix: u8) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
        m.buf
            .extend_from_slice(&[libc::AF_INET6 as u8, prefix, 0, libc::RT_SCOPE_UNIVERSE]);
        m.buf.extend_from_slice(&index.to_ne_bytes());
        m.attr(IFA_LOCAL, &ip.octets());
        m.attr(IFA_ADDRESS, &ip.octets());
        m.attr(IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
        self.call(m).map(drop)
    }

    /// `ip -6 route add default via GW`.
    pub fn add_default_route6(&mut self, gw: Ipv6Addr) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        m.buf.extend_from_slice(&[
            libc::AF_INET6 as u8,
            0,
            0,
            0,
            libc::RT_TABLE_MAIN,
            libc::RTPROT_BOOT,
            libc::RT_SCOPE_UNIVERSE,
            libc::RTN_UNICAST,
        ]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gw.octets());
        self.call(m).map(drop)
    }

    /// `ip route add default via GW`.
    pub fn add_default_route(&mut self, gw: Ipv4Addr) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
        m.buf.extend_from_slice(&[
            libc::AF_INET as u8,
            0, // dst_len: default
            0,
            0,
            libc::RT_TABLE_MAIN,
            libc::RTPROT_BOOT,
            libc::RT_SCOPE_UNIVERSE,
            libc::RTN_UNICAST,
        ]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gw.octets());
        self.call(m).map(drop)
    }
}

/// A network namespace held by an fd.
pub struct NetNs(OwnedFd);

impl NetNs {
    /// A new, empty namespace (only `lo`, down), made without a process:
    /// the daemon unshares into it, keeps an fd, and steps back.
    pub fn create() -> io::Result<NetNs> {
        let home = File::open("/proc/thread-self/ns/net")?;
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let made = File::open("/proc/thread-self/ns/net");
        back_home(&home)?;
        Ok(NetNs(OwnedFd::from(made?)))
    }

    /// The namespace process `pid` is in.
    pub fn of_pid(pid: i32) -> io::Result<NetNs> {
        Ok(NetNs(OwnedFd::from(File::open(format!(
            "/proc/{pid}/ns/net"
        ))?)))
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Run `f` inside this namespace, then return to the daemon's.
    pub fn run<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let home = File::open("/proc/thread-self/ns/net")?;
        setns(self.0.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        let r = f();
        back_home(&home)?;
        r
    }
}

fn back_home(home: &File) -> io::Result<()> {
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
        log::error!("cannot return to the daemon's network namespace: {e}");
        io::Error::from(e)
    })
}

/// Write a sysctl through /proc/sys (`net.ipv4.ip_forward` ->
/// /proc/sys/net/ipv4/ip_forward), unless it already has that value.
pub fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attributes_are_sized() {
        let mut m = Msg::new(RTM_NEWLINK, 0).ifinfo(0, 0, 0);
        m.nest(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.end();
        let b = m.finish(7);
        assert_eq!(
            u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize,
            b.len()
        );
        // header 16 + ifinfomsg 16 + nest 4 + "veth\0" attr (4 + 5, padded to 12)
        assert_eq!(b.len(), 48);
        assert_eq!(u16::from_ne_bytes([b[32], b[33]]), 16);
    }
}
