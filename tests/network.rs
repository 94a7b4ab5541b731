//! Container networking: the default bridge (a Linux bridge with its
//! gateway address), a veth per container with an address from the IPAM,
//! `none` / `host` / `container:` modes, /etc/hosts, and the networks API.
//! The kernel's state is checked with `ip` and `nsenter`; each daemon gets
//! its own bridge name and subnet so tests run side by side, and a guard
//! deletes whatever links a test leaves.

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::Value;
use std::process::Command;

/// Deletes the named links on drop (after the daemon is gone).
struct LinkGuard(Vec<String>);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
    }
}

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

/// Host ends of veths enslaved to `bridge`.
fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A daemon with its own default bridge `name` on `bip`.
fn daemon_on(name: &str, bip: &str) -> (Daemon, LinkGuard) {
    let guard = LinkGuard(vec![name.to_string()]);
    let d = Daemon::with_config_and_busybox(&format!(r#"{{"bridge": "{name}", "bip": "{bip}"}}"#));
    (d, guard)
}

fn net<'a>(v: &'a Value, name: &str) -> &'a Value {
    &v["NetworkSettings"]["Networks"][name]
}

#[test]
fn default_bridge_gives_each_container_an_address() {
    let (mut d, _g) = daemon_on("ncbr0", "10.199.0.1/24");
    // The bridge exists, up, with the gateway address.
    let addr = sh("ip -4 -o addr show dev ncbr0");
    assert!(addr.contains("10.199.0.1/24"), "{addr}");

    ok(&d, &["run", "-d", "--name", "a", "busybox", "sleep", "300"]);
    let a = inspect(&d, "a");
    assert_eq!(a["HostConfig"]["NetworkMode"], "bridge", "{a}");
    let s = &a["NetworkSettings"];
    assert_eq!(s["IPAddress"], "10.199.0.2", "{s}");
    assert_eq!(s["Gateway"], "10.199.0.1");
    assert_eq!(s["IPPrefixLen"], 24);
    assert_eq!(s["MacAddress"], "02:42:0a:c7:00:02");
    let b = net(&a, "bridge");
    assert_eq!(b["IPAddress"], "10.199.0.2", "{b}");
    assert_eq!(b["EndpointID"].as_str().unwrap().len(), 64);
    assert_eq!(b["NetworkID"].as_str().unwrap().len(), 64);

    // Inside: eth0 with the address and MAC, the default route; the
    // gateway answers, and the host reaches the container.
    let ipa = ok(&d, &["exec", "a", "ip", "-o", "addr", "show", "eth0"]);
    assert!(ipa.contains("10.199.0.2/24"), "{ipa}");
    let link = ok(&d, &["exec", "a", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(link.trim(), "02:42:0a:c7:00:02");
    let route = ok(&d, &["exec", "a", "ip", "route"]);
    assert!(route.contains("default via 10.199.0.1 dev eth0"), "{route}");
    ok(&d, &["exec", "a", "ping", "-c1", "-W2", "10.199.0.1"]);
    let p = sh("busybox ping -c1 -W2 10.199.0.2");
    assert!(p.contains("1 packets received"), "{p}");
    // The host end is on the bridge; the container end was made in the
    // container's namespace (not visible on the host).
    assert_eq!(bridge_ports("ncbr0").len(), 1);
    assert!(!link_exists("eth0@") && sh("ip -o link").matches("ncbr0").count() >= 2);

    // /etc/hosts as dockerd writes it; host-gateway is the bridge's address.
    let hosts = ok(&d, &["exec", "a", "cat", "/etc/hosts"]);
    let hostname = a["Config"]["Hostname"].as_str().unwrap();
    assert!(
        hosts.ends_with(&format!("10.199.0.2\t{hostname}\n")),
        "{hosts}"
    );
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--add-host",
            "gw:host-gateway",
            "--add-host",
            "x:1.2.3.4",
            "busybox",
            "cat",
            "/etc/hosts",
        ],
    );
    assert!(
        out.contains("10.199.0.1\tgw\n") && out.contains("1.2.3.4\tx\n"),
        "{out}"
    );

    // A second container gets the next address and reaches the first.
    ok(&d, &["run", "-d", "--name", "b", "busybox", "sleep", "300"]);
    assert_eq!(
        inspect(&d, "b")["NetworkSettings"]["IPAddress"],
        "10.199.0.3"
    );
    ok(&d, &["exec", "b", "ping", "-c1", "-W2", "10.199.0.2"]);
    assert_eq!(bridge_ports("ncbr0").len(), 2);

    // --mac-address is honoured.
    let mac = ok(
        &d,
        &[
            "run",
            "--rm",
            "--mac-address",
            "02:00:00:aa:bb:cc",
            "busybox",
            "cat",
            "/sys/class/net/eth0/address",
        ],
    );
    assert_eq!(mac.trim(), "02:00:00:aa:bb:cc");

    // none: only lo. host: the host's interfaces. container: a's namespace.
    let none = ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "ls",
            "/sys/class/net",
        ],
    );
    assert_eq!(
        none.split_whitespace().collect::<Vec<_>>(),
        ["lo"],
        "{none}"
    );
    let host = ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "ls",
            "/sys/class/net",
        ],
    );
    assert!(host.contains("ncbr0"), "{host}");
    let joined = ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "container:a",
            "busybox",
            "ip",
            "-o",
            "addr",
            "show",
            "eth0",
        ],
    );
    assert!(joined.contains("10.199.0.2/24"), "{joined}");

    // A stopped container releases its address and its veth; the address
    // goes to the next container.
    ok(&d, &["stop", "-t", "0", "a"]);
    let s = inspect(&d, "a");
    assert_eq!(s["NetworkSettings"]["IPAddress"], "", "{s}");
    assert_eq!(net(&s, "bridge")["IPAddress"], "");
    assert_eq!(bridge_ports("ncbr0").len(), 1);
    ok(&d, &["run", "-d", "--name", "c", "busybox", "sleep", "300"]);
    assert_eq!(
        inspect(&d, "c")["NetworkSettings"]["IPAddress"],
        "10.199.0.2"
    );

    // --ip is for user-defined networks only (dockerd's words).
    let o = dk(&d, &["create", "--ip", "10.199.0.9", "busybox"]);
    assert!(
        show(&o).contains("user specified IP address is supported on user defined networks only"),
        "{}",
        show(&o)
    );

    // A clean shutdown removes the bridge and every veth.
    d.remove_all_containers();
    assert!(bridge_ports("ncbr0").is_empty());
    assert!(d.terminate().success());
    assert!(!link_exists("ncbr0"), "{}", sh("ip -br link"));
}
