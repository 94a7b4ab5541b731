//! Networking beyond tests/network.rs: a UDP published port end to end,
//! legacy `--link` on the default bridge, and a container reaching a
//! published port through the host's address (hairpin). Each test runs a
//! daemon on its own bridge and subnet; a second host is a network
//! namespace joined by a veth; guards delete what a test leaves.

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::Value;
use std::process::Command;

fn sh(cmd: &str) -> String {
    let o = Command::new("sh").args(["-c", cmd]).output().expect("sh");
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

/// The tests share host ports and the peer namespace: they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Deletes the named links on drop (after the daemon is gone).
struct LinkGuard(
    Vec<String>,
    #[allow(dead_code)] std::sync::MutexGuard<'static, ()>,
);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
    }
}

/// A daemon with its own default bridge `name` on `bip`.
fn daemon_on(name: &str, bip: &str) -> (Daemon, LinkGuard) {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = LinkGuard(vec![name.to_string()], turn);
    let d = Daemon::with_config_and_busybox(&format!(r#"{{"bridge": "{name}", "bip": "{bip}"}}"#));
    (d, guard)
}

/// A second host: namespace `ncpeer2` joined by a veth (host end ncu0
/// 10.184.0.1/24, its end 10.184.0.2/24). Removed on drop. Made only
/// while holding the turn (after `daemon_on`): the tests share it.
struct PeerNs;

const PEER: &str = "ncpeer2";
const HOST_ON_PEER: &str = "10.184.0.1";

impl PeerNs {
    fn new() -> PeerNs {
        let _ = Command::new("ip").args(["netns", "del", PEER]).output();
        let _ = Command::new("ip").args(["link", "del", "ncu0"]).output();
        let script = format!(
            "set -e; ip netns add {PEER}; \
            ip link add ncu0 type veth peer name ncu1 netns {PEER}; \
            ip addr add {HOST_ON_PEER}/24 dev ncu0; ip link set ncu0 up; \
            ip -n {PEER} addr add 10.184.0.2/24 dev ncu1; \
            ip -n {PEER} link set ncu1 up; ip -n {PEER} link set lo up"
        );
        let o = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        PeerNs
    }

    fn run(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {PEER} {cmd}"))
    }
}

impl Drop for PeerNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", PEER]).output();
        let _ = Command::new("ip").args(["link", "del", "ncu0"]).output();
    }
}

/// The host's python3 run inside a busybox container: /usr and the loader
/// bound read-only from the host (the static busybox has no UDP server).
const HOST_PYTHON: &[&str] = &[
    "-v",
    "/usr:/usr:ro",
    "-v",
    "/usr/lib:/lib:ro",
    "-v",
    "/usr/lib64:/lib64:ro",
    "-e",
    "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:/usr/lib/aarch64-linux-gnu",
];

/// A UDP echo on port 53 that prefixes each reply with `tag`.
fn udp_echo(tag: &str) -> String {
    format!(
        "import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind(('0.0.0.0', 53))\n\
while True:\n    d, a = s.recvfrom(2048)\n    s.sendto(b'{tag}:' + d, a)\n"
    )
}

/// Python: send `msg` by UDP to `ip:port` from a connected socket (so only a
/// reply from that very address counts), print the reply or TIMEOUT.
fn udp_ask(ip: &str, port: u16, msg: &str) -> String {
    format!(
        "python3 -c \"import socket\n\
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.settimeout(1)\n\
s.connect(('{ip}', {port}))\n\
r = 'TIMEOUT'\n\
for _ in range(5):\n    s.send(b'{msg}')\n    try:\n        r = s.recv(2048).decode(); break\n    except OSError:\n        pass\n\
print(r)\""
    )
}

/// `-p 18081:53/udp` with a UDP echo in the container: answered from the
/// second namespace on the host's address and from the host on 127.0.0.1
/// and on the bridge's gateway, each reply from the address asked; the
/// binding shows in `docker port` and inspect; stopped, the port is silent.
#[test]
fn udp_published_port_answers_from_peer_and_loopback() {
    let (mut d, _g) = daemon_on("ncmore1", "10.185.0.1/24");
    let peer = PeerNs::new();
    let mut args = vec!["run", "-d", "--name", "echo", "-p", "18081:53/udp"];
    args.extend_from_slice(HOST_PYTHON);
    let script = udp_echo("echo");
    args.extend_from_slice(&["--stop-timeout", "1", "busybox", "python3", "-c", &script]);
    ok(&d, &args);
    wait_for("the echo to listen", 10, || {
        ok(&d, &["exec", "echo", "cat", "/proc/net/udp"]).contains(":0035 ")
    });

    let from_peer = peer.run(&udp_ask(HOST_ON_PEER, 18081, "peer"));
    assert_eq!(
        from_peer.trim(),
        "echo:peer",
        "{from_peer}\n{}",
        sh("nft list table inet coracle-ncmore1")
    );
    let from_host = sh(&udp_ask("127.0.0.1", 18081, "lo"));
    assert_eq!(from_host.trim(), "echo:lo", "{from_host}");
    let via_gw = sh(&udp_ask("10.185.0.1", 18081, "gw"));
    assert_eq!(via_gw.trim(), "echo:gw", "{via_gw}");

    let port = ok(&d, &["port", "echo"]);
    assert!(port.contains("53/udp -> 0.0.0.0:18081"), "{port}");
    let i = inspect(&d, "echo");
    let p = &i["NetworkSettings"]["Ports"]["53/udp"][0];
    assert_eq!(
        (p["HostIp"].as_str(), p["HostPort"].as_str()),
        (Some("0.0.0.0"), Some("18081")),
        "{i}"
    );
    // A second client: the raw API's ps row.
    let ps = d.request("GET", "/v1.45/containers/json", None).json();
    let row = ps
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or(Value::Null);
    let ports = row["Ports"].as_array().cloned().unwrap_or_default();
    assert!(
        ports
            .iter()
            .any(|p| p["Type"] == "udp" && p["PrivatePort"] == 53 && p["PublicPort"] == 18081),
        "{row}"
    );

    ok(&d, &["stop", "echo"]);
    let after = sh(&udp_ask("127.0.0.1", 18081, "late"));
    assert_eq!(after.trim(), "TIMEOUT", "{after}");
    d.remove_all_containers();
    assert!(d.terminate().success());
    drop(peer);
}

/// Legacy `--link db:my-db` on the default bridge, as dockerd does it: the
/// link's variables and /etc/hosts line in the parent, `HostConfig.Links`
/// in inspect, dockerd's errors at create and start, `rm --link`; on a
/// user network a link registers nothing.
#[test]
fn legacy_links_on_the_default_bridge() {
    let (mut d, mut g) = daemon_on("ncmore2", "10.183.0.1/24");
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "db",
            "--hostname",
            "dbhost",
            "-e",
            "PASSWORD=pw",
            "--expose",
            "6379",
            "--expose",
            "53/udp",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let db_ip = inspect(&d, "db")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(db_ip.starts_with("10.183.0."), "{db_ip}");
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--link",
            "db:my-db",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let env = ok(&d, &["exec", "web", "env"]);
    for want in [
        // The lowest exposed port is the default one.
        format!("MY_DB_PORT=udp://{db_ip}:53"),
        format!("MY_DB_PORT_6379_TCP=tcp://{db_ip}:6379"),
        format!("MY_DB_PORT_6379_TCP_ADDR={db_ip}"),
        "MY_DB_PORT_6379_TCP_PORT=6379".into(),
        "MY_DB_PORT_6379_TCP_PROTO=tcp".into(),
        format!("MY_DB_PORT_53_UDP=udp://{db_ip}:53"),
        "MY_DB_NAME=/web/my-db".into(),
        "MY_DB_ENV_PASSWORD=pw".into(),
    ] {
        assert!(env.lines().any(|l| l == want), "no {want} in\n{env}");
    }
    assert!(!env.contains("MY_DB_ENV_PATH="), "{env}");
    // /etc/hosts: alias, the child's hostname and its name; reachable.
    let hosts = ok(&d, &["exec", "web", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!("{db_ip}\tmy-db dbhost db\n")),
        "{hosts}"
    );
    ok(&d, &["exec", "web", "ping", "-c1", "-W2", "my-db"]);
    let links = &inspect(&d, "web")["HostConfig"]["Links"];
    assert_eq!(links, &serde_json::json!(["/db:/web/my-db"]), "{links}");
    assert_eq!(inspect(&d, "db")["HostConfig"]["Links"], Value::Null);

    // Raw HTTP: dockerd's errors at create; nothing is left of a refusal.
    let create = |body: &str| {
        let r = d.request("POST", "/v1.45/containers/create", Some(body));
        (
            r.status,
            r.json()["message"].as_str().unwrap_or("").to_string(),
        )
    };
    assert_eq!(
        create(r#"{"Image":"busybox","HostConfig":{"Links":["nosuch:x"]}}"#),
        (
            400,
            "could not get container for nosuch: No such container: nosuch".into()
        )
    );
    assert_eq!(
        create(r#"{"Image":"busybox","HostConfig":{"NetworkMode":"host","Links":["db:x"]}}"#),
        (400, "conflicting options: host type networking can't be used with links. This would result in undefined behavior".into())
    );
    assert_eq!(
        create(r#"{"Image":"busybox","HostConfig":{"NetworkMode":"container:db","Links":["db:x"]}}"#),
        (400, "conflicting options: container type network can't be used with links. This would result in undefined behavior".into())
    );
    let all = d
        .request("GET", "/v1.45/containers/json?all=1", None)
        .json();
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");

    // The child stopped: the parent cannot start, with dockerd's words.
    ok(&d, &["stop", "web", "db"]);
    let r = d.request("POST", "/v1.45/containers/web/start", None);
    assert_eq!(
        (r.status, r.json()["message"].as_str().unwrap_or("")),
        (
            500,
            "Cannot link to a non running container: /db AS /web/my-db"
        ),
    );
    // rm --link drops the link only; then web starts alone.
    ok(&d, &["rm", "--link", "/web/my-db"]);
    assert_eq!(inspect(&d, "web")["HostConfig"]["Links"], Value::Null);
    assert_eq!(inspect(&d, "db")["State"]["Status"], "exited");
    let r = d.request("DELETE", "/v1.45/containers/web/my-db?link=1", None);
    assert_eq!(
        (r.status, r.json()["message"].as_str().unwrap_or("")),
        (404, "No such container: web/my-db")
    );
    let r = d.request("DELETE", "/v1.45/containers/web?link=1", None);
    assert_eq!(
        (r.status, r.json()["message"].as_str().unwrap_or("")),
        (
            500,
            "Conflict, cannot remove the default link name of the container"
        )
    );
    ok(&d, &["start", "web"]);
    let env = ok(&d, &["exec", "web", "env"]);
    assert!(!env.contains("MY_DB_"), "{env}");

    // On a user network a link registers nothing (dockerd keeps it for the
    // network's DNS); a bridge container cannot link to a child off the
    // default bridge.
    ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.182.0.0/24",
            "-o",
            "com.docker.network.bridge.name=nclnk",
            "lnet",
        ],
    );
    g.0.push("nclnk".into());
    ok(&d, &["start", "db"]);
    ok(
        &d,
        &[
            "create",
            "--name",
            "u",
            "--network",
            "lnet",
            "--link",
            "db:x",
            "busybox",
        ],
    );
    assert_eq!(inspect(&d, "u")["HostConfig"]["Links"], Value::Null);
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "onlnet",
            "--network",
            "lnet",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let o = dk(
        &d,
        &["run", "--rm", "--link", "onlnet:o", "busybox", "true"],
    );
    assert!(
        show(&o).contains("Cannot link to /onlnet, as it does not belong to the default network"),
        "{}",
        show(&o)
    );

    d.remove_all_containers();
    ok(&d, &["network", "rm", "lnet"]);
    assert!(d.terminate().success());
}

/// Hairpin: a container reaches its own published port, and a sibling's,
/// through the host's addresses (another interface's and the bridge
/// gateway's), as with dockerd.
#[test]
fn hairpin_to_published_ports_through_the_host_address() {
    let (mut d, _g) = daemon_on("ncmore3", "10.181.0.1/24");
    let _peer = PeerNs::new();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "hweb",
            "-p",
            "18083:80",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "echo hello-hairpin > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
        ],
    );
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "sib",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    wait_for("httpd to listen", 10, || {
        sh("curl -s -m 2 http://127.0.0.1:18083/").contains("hello-hairpin")
    });
    // Each container's bridge port is in hairpin mode (with br_netfilter
    // loaded, the DNATed frame goes back out the port it came in on).
    let ports: Vec<_> = std::fs::read_dir("/sys/class/net/ncmore3/brif")
        .expect("bridge ports")
        .flatten()
        .map(|e| e.path().join("hairpin_mode"))
        .collect();
    assert_eq!(ports.len(), 2);
    for p in &ports {
        let mode = std::fs::read_to_string(p).unwrap_or_default();
        assert_eq!(mode.trim(), "1", "{}", p.display());
    }
    let get = |host: &str| format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} 18083");
    for host in [HOST_ON_PEER, "10.181.0.1"] {
        for who in ["hweb", "sib"] {
            let o = dk(&d, &["exec", who, "sh", "-c", &get(host)]);
            assert!(
                show(&o).contains("hello-hairpin"),
                "{who} -> {host}:18083: {}\n{}",
                show(&o),
                sh("nft list table inet coracle-ncmore3")
            );
        }
    }
    d.remove_all_containers();
    assert!(d.terminate().success());
}

/// The host has IPv6 (else the test says so and checks nothing).
fn host_has_ipv6() -> bool {
    std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|s| !s.trim().is_empty())
        && std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
            .is_ok_and(|s| s.trim() == "0")
}

/// IPv6 clients reach published ports (on `::`, as dockerd publishes an
/// every-address binding on a host with IPv6): TCP from the second
/// namespace's IPv6 address and from ::1, UDP from ::1; `docker port`
/// shows both bindings; stopped, the v6 port is closed.
#[test]
fn published_ports_answer_ipv6_clients() {
    if !host_has_ipv6() {
        eprintln!("SKIPPED: this host has no IPv6 (/proc/net/if_inet6)");
        return;
    }
    let (mut d, _g) = daemon_on("ncmore4", "10.180.0.1/24");
    let peer = PeerNs::new();
    let v6 = format!(
        "set -e; ip addr add fd00:184::1/64 dev ncu0 nodad; \
         ip -n {PEER} addr add fd00:184::2/64 dev ncu1 nodad"
    );
    let o = sh(&v6);
    assert!(o.trim().is_empty(), "{o}");
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web6",
            "-p",
            "18084:80",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "echo hello-v6 > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
        ],
    );
    let mut args = vec!["run", "-d", "--name", "echo6", "-p", "18085:53/udp"];
    args.extend_from_slice(HOST_PYTHON);
    let script = udp_echo("six");
    args.extend_from_slice(&["--stop-timeout", "1", "busybox", "python3", "-c", &script]);
    ok(&d, &args);
    wait_for("httpd to listen", 10, || {
        sh("curl -s -m 2 http://127.0.0.1:18084/").contains("hello-v6")
    });
    let local = sh("curl -s -m 5 -g 'http://[::1]:18084/'");
    assert_eq!(local.trim(), "hello-v6", "{local}");
    let remote = peer.run("curl -s -m 5 -g 'http://[fd00:184::1]:18084/'");
    assert_eq!(remote.trim(), "hello-v6", "{remote}");
    wait_for("the echo to listen", 10, || {
        ok(&d, &["exec", "echo6", "cat", "/proc/net/udp"]).contains(":0035 ")
    });
    let ask6 = udp_ask("::1", 18085, "v6").replace("AF_INET,", "AF_INET6,");
    let udp = sh(&ask6);
    assert_eq!(udp.trim(), "six:v6", "{udp}");
    let port = ok(&d, &["port", "web6"]);
    assert!(
        port.contains("80/tcp -> 0.0.0.0:18084") && port.contains("80/tcp -> [::]:18084"),
        "{port}"
    );
    ok(&d, &["stop", "web6"]);
    let after = sh("curl -s -m 2 -g 'http://[::1]:18084/' 2>&1");
    assert!(!after.contains("hello-v6"), "{after}");
    d.remove_all_containers();
    assert!(d.terminate().success());
    drop(peer);
}

/// `docker network create --ipv6 --subnet fd00:179::/64`: containers get
/// an IPv6 address (the IPv4 host part under the /64) and a default IPv6
/// route through the bridge's gateway; they reach the gateway and each
/// other over IPv6; inspect shows `EnableIPv6`, the IPv6 IPAM config and
/// `GlobalIPv6Address`/`IPv6Gateway` as dockerd.
#[test]
fn ipv6_user_network_gives_containers_addresses() {
    if !host_has_ipv6() {
        eprintln!("SKIPPED: this host has no IPv6 (/proc/net/if_inet6)");
        return;
    }
    let (mut d, mut g) = daemon_on("ncmore5", "10.178.0.1/24");
    ok(
        &d,
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "10.179.0.0/24",
            "--subnet",
            "fd00:179::/64",
            "-o",
            "com.docker.network.bridge.name=ncv6",
            "v6net",
        ],
    );
    g.0.push("ncv6".into());
    let addr = sh("ip -6 -o addr show dev ncv6");
    assert!(addr.contains("fd00:179::1/64"), "{addr}");
    for n in ["a6", "b6"] {
        ok(
            &d,
            &[
                "run",
                "-d",
                "--name",
                n,
                "--network",
                "v6net",
                "--stop-timeout",
                "1",
                "busybox",
                "sleep",
                "300",
            ],
        );
    }
    let a = &inspect(&d, "a6")["NetworkSettings"]["Networks"]["v6net"];
    assert_eq!(a["GlobalIPv6Address"], "fd00:179::2", "{a}");
    assert_eq!(a["GlobalIPv6PrefixLen"], 64, "{a}");
    assert_eq!(a["IPv6Gateway"], "fd00:179::1", "{a}");
    let inside = ok(
        &d,
        &["exec", "a6", "ip", "-6", "-o", "addr", "show", "eth0"],
    );
    assert!(inside.contains("fd00:179::2/64"), "{inside}");
    let route = ok(&d, &["exec", "a6", "ip", "-6", "route"]);
    assert!(
        route.contains("default via fd00:179::1 dev eth0"),
        "{route}"
    );
    ok(
        &d,
        &["exec", "a6", "ping", "-6", "-c1", "-W2", "fd00:179::1"],
    );
    ok(
        &d,
        &["exec", "a6", "ping", "-6", "-c1", "-W2", "fd00:179::3"],
    );
    let n = d.request("GET", "/v1.45/networks/v6net", None).json();
    assert_eq!(n["EnableIPv6"], true, "{n}");
    let subnets: Vec<&str> = n["IPAM"]["Config"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["Subnet"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(subnets, ["10.179.0.0/24", "fd00:179::/64"], "{n}");
    let eps = n["Containers"].as_object().cloned().unwrap_or_default();
    assert!(
        eps.values().any(|e| e["IPv6Address"] == "fd00:179::3/64"),
        "{n}"
    );
    // Without --ipv6 a network has no IPv6.
    let bridge = d.request("GET", "/v1.45/networks/bridge", None).json();
    assert_eq!(bridge["EnableIPv6"], false);
    d.remove_all_containers();
    // After a restart the bridge has its IPv6 gateway again.
    assert!(d.terminate().success());
    d.restart();
    assert_eq!(d.request("GET", "/_ping", None).status, 200);
    let addr = sh("ip -6 -o addr show dev ncv6");
    assert!(addr.contains("fd00:179::1/64"), "after restart: {addr}");
    ok(&d, &["network", "rm", "v6net"]);
    assert!(d.terminate().success());
}
