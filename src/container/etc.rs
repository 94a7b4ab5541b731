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
