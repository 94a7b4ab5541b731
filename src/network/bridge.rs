//! Linux bridges on the host: made (or adopted) with their gateway address,
//! removed; and the host-wide locks that keep two daemons on one host from
//! sharing a bridge (each takes its own, and the subnets already routed).

use std::fs::File;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;

use super::ipam::Subnet;
use super::netlink::Netlink;

/// Where the host-wide locks live.
const LOCK_DIR: &str = "/run/coracle";

/// Make bridge `name` unless it exists, give it `gateway/prefix` unless it
/// has it, bring it up. Returns its index.
pub fn ensure(name: &str, gateway: Ipv4Addr, subnet: &Subnet) -> io::Result<u32> {
    let mut nl = Netlink::open()?;
    let index = match nl.link_index(name)? {
        Some(i) => i,
        None => {
            nl.add_bridge(name)?;
            nl.link_index(name)?
                .ok_or_else(|| io::Error::other(format!("bridge {name} vanished")))?
        }
    };
    match nl.add_addr(index, gateway, subnet.prefix) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        Err(e) => return Err(e),
    }
    nl.set_up(index)?;
    Ok(index)
}

/// Add the IPv6 gateway address to bridge `name` (an `--ipv6` network).
pub fn ensure_v6(name: &str, gateway: std::net::Ipv6Addr, prefix: u8) -> io::Result<()> {
    let mut nl = Netlink::open()?;
    let index = nl
        .link_index(name)?
        .ok_or_else(|| io::Error::other(format!("bridge {name} does not exist")))?;
    match nl.add_addr6(index, gateway, prefix) {
        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => Err(e),
        _ => Ok(()),
    }
}

/// Remove link `name` if it exists.
pub fn remove(name: &str) -> io::Result<()> {
    let mut nl = Netlink::open()?;
    match nl.link_index(name)? {
        Some(i) => nl.del_link(i),
        None => Ok(()),
    }
}

/// The first IPv4 address of interface `name`, with its prefix.
pub fn address_of(name: &str) -> Option<(Ipv4Addr, u8)> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        if ifa.interface_name != name {
            return None;
        }
        let ip = ifa.address?.as_sockaddr_in()?.ip();
        let mask = ifa.netmask?.as_sockaddr_in()?.ip();
        Some((ip, u32::from(mask).count_ones() as u8))
    })
}

/// A POSIX record lock on a file under /run/coracle, held while the value
/// lives. Record locks belong to the process: forked workers and containers
/// do not inherit them, and the kernel drops them however the daemon dies.
#[derive(Debug)]
pub struct HostLock(#[allow(dead_code)] File); // held for its lock, never read

impl HostLock {
    /// Take `name`'s lock; `wait` blocks until it is free (start-up only),
    /// otherwise `Ok(None)` says another daemon holds it.
    pub fn take(name: &str, wait: bool) -> io::Result<Option<HostLock>> {
        std::fs::create_dir_all(LOCK_DIR)?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{LOCK_DIR}/{name}.lock"))?;
        // SAFETY: flock is plain old data; zeroed is a valid value.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
        // SAFETY: fcntl on our own fd with a valid flock.
        let r = unsafe { libc::fcntl(f.as_raw_fd(), cmd, &fl as *const libc::flock) };
        if r == 0 {
            return Ok(Some(HostLock(f)));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => Ok(None),
            _ => Err(e),
        }
    }
}

/// Default bridges (`coracleN`) a daemon killed with SIGKILL left behind:
/// no daemon holds their lock and nothing is plugged into them. `first`
/// is the default bridge's own name (`coracle0`).
pub fn sweep_stale_defaults(first: &str, ours: &str) {
    for i in 0..64 {
        let name = if i == 0 {
            first.to_string()
        } else {
            format!("coracle{i}")
        };
        let ports = format!("/sys/class/net/{name}/brif");
        if name == ours || !std::path::Path::new(&ports).exists() {
            continue;
        }
        let empty = std::fs::read_dir(&ports).is_ok_and(|mut d| d.next().is_none());
        if let (true, Ok(Some(_lock))) = (empty, HostLock::take(&format!("bridge-{name}"), false)) {
            match remove(&name) {
                Ok(()) => log::info!("removed {name}, left by a daemon that was killed"),
                Err(e) => log::warn!("remove stale bridge {name}: {e}"),
            }
            // Its daemon's firewall table too (none where nf_tables is absent).
            let _ = crate::network::firewall::remove(&crate::network::firewall::table_for(&name));
        }
    }
}
