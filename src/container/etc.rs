//! The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets,
//! generated on the host and bind-mounted in (as dockerd does).

use super::config::HostConfig;

pub fn hostname(name: &str) -> String {
    format!("{name}\n")
}

pub fn hosts(h: &HostConfig, hostname: &str, network: &str) -> String {
    if network == "host" {
        return std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    }
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for e in &h.extra_hosts {
        if let Some((name, ip)) = e.split_once(':') {
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    // Without an address of its own, the container's name resolves to loopback.
    out.push_str(&format!("127.0.0.1\t{hostname}\n"));
    out
}

pub fn resolv_conf(h: &HostConfig, network: &str) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut lines: Vec<String> = Vec::new();
    let mut servers: Vec<String> = h.dns.iter().map(|s| format!("nameserver {s}")).collect();
    if servers.is_empty() {
        servers = host
            .lines()
            .filter(|l| l.trim_start().starts_with("nameserver"))
            // A host-local resolver is unreachable from another namespace.
            .filter(|l| network == "host" || !l.contains("127.") && !l.contains("::1"))
            .map(str::to_string)
            .collect();
    }
    let search = if h.dns_search.is_empty() {
        host.lines()
            .find(|l| l.starts_with("search"))
            .map(str::to_string)
    } else {
        Some(format!("search {}", h.dns_search.join(" ")))
    };
    let options = if h.dns_options.is_empty() {
        host.lines()
            .find(|l| l.starts_with("options"))
            .map(str::to_string)
    } else {
        Some(format!("options {}", h.dns_options.join(" ")))
    };
    lines.extend(servers);
    lines.extend(search);
    lines.extend(options);
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// `--add-host` entries as (name, address); `host-gateway` becomes the
/// default bridge's gateway (dockerd's `host-gateway-ip`).
fn extra_hosts(h: &HostConfig, host_gateway: Option<std::net::Ipv4Addr>) -> Vec<(String, String)> {
    h.extra_hosts
        .iter()
        .filter_map(|e| {
            let at = e.find([':', '='])?;
            let (name, ip) = (&e[..at], &e[at + 1..]);
            let ip = match (ip, host_gateway) {
                ("host-gateway", Some(gw)) => gw.to_string(),
                _ => ip.to_string(),
            };
            Some((name.to_string(), ip))
        })
        .collect()
}

/// /etc/hosts of a container with an address on a bridge network, as
/// dockerd writes it: the defaults, `--add-host` lines, legacy links
/// (address, names), then the container's own address and hostname.
pub fn hosts_on_network(
    h: &HostConfig,
    hostname: &str,
    ip: Option<std::net::Ipv4Addr>,
    host_gateway: Option<std::net::Ipv4Addr>,
    links: &[(String, String)],
) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for (name, addr) in extra_hosts(h, host_gateway) {
        out.push_str(&format!("{addr}\t{name}\n"));
    }
    for (addr, names) in links {
        out.push_str(&format!("{addr}\t{names}\n"));
    }
    match ip {
        Some(ip) => out.push_str(&format!("{ip}\t{hostname}\n")),
        None => out.push_str(&format!("127.0.0.1\t{hostname}\n")),
    }
    out
}

/// /etc/resolv.conf on a bridge network: the host's resolvers less those on
/// loopback (dockerd's Google fallback if none is left), or, on a network
/// with a DNS responder, that responder.
pub fn resolv_conf_on_network(h: &HostConfig, responder: Option<std::net::Ipv4Addr>) -> String {
    let base = resolv_conf(h, "bridge");
    let mut lines: Vec<String> = base
        .lines()
        .filter(|l| responder.is_none() || !l.starts_with("nameserver"))
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    match responder {
        Some(ip) => lines.insert(0, format!("nameserver {ip}")),
        None if !lines.iter().any(|l| l.starts_with("nameserver")) => {
            lines.insert(0, "nameserver 8.8.4.4".into());
            lines.insert(0, "nameserver 8.8.8.8".into());
        }
        None => {}
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The host's resolvers (/etc/resolv.conf), loopback ones included: the
/// daemon, in the host's namespace, can reach them.
pub fn host_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}
