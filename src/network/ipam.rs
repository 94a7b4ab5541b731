//! IPv4 address management as pure arithmetic: subnets, dockerd's default
//! pools, the lowest free address, MACs derived from addresses. What is
//! allocated is persisted by `store/networks.rs`.

use std::fmt;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits cleared).
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn new(ip: Ipv4Addr, prefix: u8) -> Subnet {
        let prefix = prefix.min(32);
        Subnet {
            base: Ipv4Addr::from(u32::from(ip) & mask(prefix)),
            prefix,
        }
    }

    /// `a.b.c.d/n`; returns the address as written too (a gateway given
    /// as `--bip 172.20.0.1/16`).
    pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, Subnet)> {
        let (ip, n) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let n: u8 = n.parse().ok().filter(|n| *n <= 32)?;
        Some((ip, Subnet::new(ip, n)))
    }

    pub fn parse(s: &str) -> Option<Subnet> {
        Subnet::parse_cidr(s).map(|(_, s)| s)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.base)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        let p = self.prefix.min(other.prefix);
        u32::from(self.base) & mask(p) == u32::from(other.base) & mask(p)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) | !mask(self.prefix))
    }

    /// The first usable address (dockerd's default gateway).
    pub fn first_host(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base).wrapping_add(1))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// dockerd's default local address pools: 172.17-31.0.0/16, then
/// 192.168.0.0/16 in /20s. The first one that overlaps nothing in `taken`.
pub fn pick_subnet(taken: &[Subnet]) -> Option<Subnet> {
    let sixteens = (17..=31u8).map(|b| Subnet::new(Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0..16u8).map(|i| Subnet::new(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    sixteens
        .chain(twenties)
        .find(|s| !taken.iter().any(|t| t.overlaps(s)))
}

/// The lowest address of `range` (the whole subnet if none) that is neither
/// the network, the broadcast address, the gateway nor `used`.
pub fn allocate(
    subnet: &Subnet,
    range: Option<&Subnet>,
    gateway: Ipv4Addr,
    used: impl Fn(Ipv4Addr) -> bool,
) -> Option<Ipv4Addr> {
    let pool = range.unwrap_or(subnet);
    let start = u32::from(pool.base);
    let end = u32::from(pool.broadcast());
    (start..=end)
        .map(Ipv4Addr::from)
        .find(|ip| *ip != subnet.base && *ip != subnet.broadcast() && *ip != gateway && !used(*ip))
}

/// The MAC dockerd derives from an IPv4 address: 02:42 and the four bytes.
pub fn mac_of(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// IPv4 destinations routed on the host (/proc/net/route), the default
/// route left out.
pub fn routed_subnets() -> Vec<Subnet> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let m = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The kernel prints the address's bytes as a little-endian word.
            let dst = Ipv4Addr::from(dst.to_le_bytes());
            (m != 0).then(|| Subnet::new(dst, m.count_ones() as u8))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let (ip, s) = Subnet::parse_cidr("172.20.0.1/16").unwrap();
        assert_eq!(ip, Ipv4Addr::new(172, 20, 0, 1));
        assert_eq!(s.to_string(), "172.20.0.0/16");
        assert!(s.contains(Ipv4Addr::new(172, 20, 9, 9)));
        assert!(!s.contains(Ipv4Addr::new(172, 21, 0, 1)));
        assert!(s.overlaps(&Subnet::parse("172.20.5.0/24").unwrap()));
        assert_eq!(s.broadcast(), Ipv4Addr::new(172, 20, 255, 255));
        assert!(Subnet::parse("1.2.3.4/33").is_none());
        let taken = [Subnet::parse("172.17.0.0/16").unwrap()];
        assert_eq!(pick_subnet(&taken).unwrap().to_string(), "172.18.0.0/16");
    }

    #[test]
    fn allocation_skips_gateway_and_used() {
        let s = Subnet::parse("10.0.0.0/30").unwrap();
        let gw = s.first_host();
        let ip = allocate(&s, None, gw, |_| false).unwrap();
        assert_eq!(ip, Ipv4Addr::new(10, 0, 0, 2));
        assert!(allocate(&s, None, gw, |i| i == ip).is_none());
        assert_eq!(mac_string(&mac_of(ip)), "02:42:0a:00:00:02");
        assert_eq!(parse_mac("02:42:0a:00:00:02"), Some(mac_of(ip)));
    }
}
