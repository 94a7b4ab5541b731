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

/// Deletes the named links on drop (after the daemon is gone), then
/// gives the next test its turn.
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

/// Each daemon has its own table (`inet coracle-<its bridge>`), but the
/// tests here also share host ports and a peer namespace: they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A daemon with its own default bridge `name` on `bip`; the guard holds
/// the turn until the test ends.
fn daemon_on(name: &str, bip: &str) -> (Daemon, LinkGuard) {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let guard = LinkGuard(vec![name.to_string()], turn);
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

    // --dns, --dns-search, --dns-option replace the host's settings.
    let resolv = ok(
        &d,
        &[
            "run",
            "--rm",
            "--dns",
            "10.0.0.53",
            "--dns-search",
            "corp.example",
            "--dns-option",
            "ndots:2",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ],
    );
    assert_eq!(
        resolv,
        "nameserver 10.0.0.53\nsearch corp.example\noptions ndots:2\n"
    );
    // /info lists the network drivers.
    let info = d.request("GET", "/info", None).json();
    assert_eq!(
        info["Plugins"]["Network"],
        serde_json::json!(["bridge", "host", "null"])
    );

    // A clean shutdown removes the bridge and every veth.
    d.remove_all_containers();
    assert!(bridge_ports("ncbr0").is_empty());
    assert!(d.terminate().success());
    assert!(!link_exists("ncbr0"), "{}", sh("ip -br link"));
}

/// `docker network` create/ls/inspect/connect/disconnect/rm/prune with
/// dockerd's shapes and errors, isolation into separate bridges, and the
/// networks and their reserved addresses surviving restarts.
#[test]
fn networks_api_user_defined_networks() {
    let (mut d, mut g) = daemon_on("ncbr1", "10.197.0.1/24");
    // The pre-defined networks, as dockerd lists them.
    let ls = ok(
        &d,
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ],
    );
    assert_eq!(
        ls, "bridge bridge local\nhost host local\nnone null local\n",
        "{ls}"
    );

    let id = ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.198.0.0/24",
            "--gateway",
            "10.198.0.254",
            "--label",
            "team=a",
            "-o",
            "com.docker.network.bridge.name=ncapp",
            "appnet",
        ],
    );
    let id = id.trim().to_string();
    g.0.push("ncapp".into());
    assert_eq!(id.len(), 64);
    let addr = sh("ip -4 -o addr show dev ncapp");
    assert!(addr.contains("10.198.0.254/24"), "{addr}");
    // Errors, through the CLI and raw HTTP.
    let o = dk(&d, &["network", "create", "appnet"]);
    assert!(
        show(&o).contains("network with name appnet already exists"),
        "{}",
        show(&o)
    );
    let r = d.request(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.198.0.0/16"}]}}"#),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "Pool overlaps with other one on this address space"
    );
    let r = d.request(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.1.2.3/40"}]}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "invalid CIDR address: 10.1.2.3/40");
    let r = d.request(
        "POST",
        "/networks/create",
        Some(r#"{"Name":"x","IPAM":{"Config":[{"Subnet":"10.3.0.0/24","Gateway":"10.4.0.1"}]}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = d.request("GET", "/networks/nosuch", None);
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (404, Some("network nosuch not found"))
    );
    let r = d.request("DELETE", "/networks/host", None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "host is a pre-defined network and cannot be removed"
    );
    // (A 404 from create makes the CLI try a pull, as with dockerd: ask raw.)
    let r = d.request(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"NetworkMode":"nosuch"}}"#),
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (404, Some("network nosuch not found"))
    );

    // Two containers on appnet reach each other; a static --ip is honoured.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "c1",
            "--network",
            "appnet",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "c2",
            "--network",
            "appnet",
            "--ip",
            "10.198.0.77",
            "--network-alias",
            "db",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let c1 = inspect(&d, "c1");
    assert_eq!(c1["HostConfig"]["NetworkMode"], "appnet");
    let n1 = net(&c1, "appnet");
    assert_eq!(n1["IPAddress"], "10.198.0.1", "{n1}");
    assert_eq!(n1["Gateway"], "10.198.0.254");
    assert_eq!(n1["NetworkID"], id.as_str());
    // Only the default bridge fills the top-level fields.
    assert_eq!(c1["NetworkSettings"]["IPAddress"], "");
    let c2 = inspect(&d, "c2");
    assert_eq!(net(&c2, "appnet")["IPAddress"], "10.198.0.77");
    assert_eq!(
        net(&c2, "appnet")["IPAMConfig"]["IPv4Address"],
        "10.198.0.77"
    );
    let dns: Vec<&str> = net(&c2, "appnet")["DNSNames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(dns.contains(&"c2") && dns.contains(&"db"), "{dns:?}");
    ok(&d, &["exec", "c1", "ping", "-c1", "-W2", "10.198.0.77"]);
    assert_eq!(bridge_ports("ncapp").len(), 2);
    assert!(bridge_ports("ncbr1").is_empty());
    let o = dk(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "appnet",
            "--ip",
            "10.198.0.77",
            "busybox",
            "true",
        ],
    );
    assert!(show(&o).contains("Address already in use"), "{}", show(&o));

    // inspect lists the containers with their addresses.
    let ni: Value = serde_json::from_str(&ok(&d, &["network", "inspect", "appnet"])).unwrap();
    let ni = &ni[0];
    assert_eq!(ni["Name"], "appnet");
    assert_eq!(ni["Driver"], "bridge");
    assert_eq!(ni["Scope"], "local");
    assert_eq!(ni["Labels"]["team"], "a");
    assert_eq!(ni["IPAM"]["Config"][0]["Subnet"], "10.198.0.0/24");
    assert_eq!(ni["IPAM"]["Config"][0]["Gateway"], "10.198.0.254");
    let cid2 = c2["Id"].as_str().unwrap();
    assert_eq!(ni["Containers"][cid2]["Name"], "c2");
    assert_eq!(ni["Containers"][cid2]["IPv4Address"], "10.198.0.77/24");
    assert_eq!(ni["Containers"][cid2]["MacAddress"], "02:42:0a:c6:00:4d");

    // ls filters.
    let custom = ok(
        &d,
        &[
            "network",
            "ls",
            "-q",
            "--no-trunc",
            "--filter",
            "type=custom",
        ],
    );
    assert_eq!(custom.trim(), id);
    let lab = ok(
        &d,
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            "label=team=a",
        ],
    );
    assert_eq!(lab.trim(), "appnet");

    // connect a running container from the default bridge: eth1 appears;
    // twice is refused; disconnect takes it away.
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "c3",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    ok(
        &d,
        &["network", "connect", "--ip", "10.198.0.50", "appnet", "c3"],
    );
    let a = ok(&d, &["exec", "c3", "ip", "-o", "-4", "addr"]);
    assert!(
        a.contains("eth1") && a.contains("10.198.0.50/24") && a.contains("10.197.0.2/24"),
        "{a}"
    );
    ok(&d, &["exec", "c3", "ping", "-c1", "-W2", "10.198.0.1"]);
    let o = dk(&d, &["network", "connect", "appnet", "c3"]);
    assert!(
        show(&o).contains("endpoint with name c3 already exists in network appnet"),
        "{}",
        show(&o)
    );
    ok(&d, &["network", "disconnect", "appnet", "c3"]);
    let a = ok(&d, &["exec", "c3", "ip", "-o", "-4", "addr"]);
    assert!(!a.contains("eth1"), "{a}");
    assert!(net(&inspect(&d, "c3"), "appnet").is_null());

    // --internal: an address on the network, no default route out.
    ok(
        &d,
        &[
            "network",
            "create",
            "--internal",
            "--subnet",
            "10.193.0.0/24",
            "-o",
            "com.docker.network.bridge.name=ncint",
            "intnet",
        ],
    );
    g.0.push("ncint".into());
    let r = ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "intnet",
            "busybox",
            "ip",
            "route",
        ],
    );
    assert!(!r.contains("default") && r.contains("10.193.0.0/24"), "{r}");
    let ni: Value = serde_json::from_str(&ok(&d, &["network", "inspect", "intnet"])).unwrap();
    assert_eq!(ni[0]["Internal"], true);
    ok(&d, &["network", "rm", "intnet"]);

    // rm while in use: 409.
    let r = d.request("DELETE", "/networks/appnet", None);
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("has active endpoints"),
        "{}",
        r.body
    );

    // A clean restart: the network, its bridge and c2's reserved address
    // are back; a start brings c2 back on it.
    assert!(d.terminate().success());
    assert!(!link_exists("ncapp") && !link_exists("ncbr1"));
    d.restart();
    // The socket listens before start-up ends: a request waits for it.
    assert_eq!(d.request("GET", "/_ping", None).status, 200);
    assert!(link_exists("ncapp"), "{}", sh("ip -br link"));
    ok(&d, &["start", "c2", "c1"]);
    assert_eq!(
        net(&inspect(&d, "c2"), "appnet")["IPAddress"],
        "10.198.0.77"
    );
    ok(&d, &["exec", "c2", "ping", "-c1", "-W2", "10.198.0.1"]);
    // kill -9: everything comes back after the restart too.
    d.kill9();
    common::kill_cgroup_leftovers(&d.data_root);
    d.restart();
    // The socket listens before start-up ends: a request waits for it.
    assert_eq!(d.request("GET", "/_ping", None).status, 200);
    assert!(link_exists("ncapp"));
    ok(&d, &["start", "c1"]);
    assert_eq!(net(&inspect(&d, "c1"), "appnet")["IPAddress"], "10.198.0.1");

    // Removing everything leaves no bridge, veth or IPAM state behind.
    d.remove_all_containers();
    let pruned = ok(&d, &["network", "prune", "-f"]);
    assert!(pruned.contains("appnet"), "{pruned}");
    assert!(!link_exists("ncapp"));
    let left: Vec<String> = std::fs::read_dir(d.data_root.join("networks"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(left.len(), 3, "bridge, host, none only");
    assert!(
        left.iter().all(|t| t.contains("\"endpoints\": {}")),
        "{left:?}"
    );
    assert!(bridge_ports("ncbr1").is_empty());
    assert!(d.terminate().success());
    assert!(!link_exists("ncbr1"));
}

/// A stand-in for the host's resolver on 127.0.0.77:53: names under
/// `.test` resolve to 10.9.9.9, everything else is NXDOMAIN. Stops on drop.
struct FakeResolver {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeResolver {
    fn start() -> FakeResolver {
        let sock = std::net::UdpSocket::bind("127.0.0.77:53").expect("bind 127.0.0.77:53");
        sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                // Question: labels from byte 12 to the zero, then type, class.
                let mut at = 12;
                let mut labels = Vec::new();
                while at < n && buf[at] != 0 {
                    let l = buf[at] as usize;
                    labels.push(String::from_utf8_lossy(&buf[at + 1..at + 1 + l]).into_owned());
                    at += 1 + l;
                }
                let end = at + 5;
                let name = labels.join(".");
                let qtype = u16::from_be_bytes([buf[at + 1], buf[at + 2]]);
                let known = name.ends_with(".test");
                let mut r = buf[..end].to_vec();
                r[2] = 0x81;
                r[3] = if known { 0x80 } else { 0x83 };
                let a = known && qtype == 1;
                r[6..8].copy_from_slice(&(a as u16).to_be_bytes());
                r[8..12].copy_from_slice(&[0, 0, 0, 0]);
                if a {
                    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
                }
                let _ = sock.send_to(&r, from);
            }
        });
        FakeResolver {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeResolver {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// On a user-defined network, containers find each other by name, alias
/// and short ID through the responder on the gateway; other names go to
/// the container's resolvers; stopped containers stop resolving; another
/// network does not see them; the default bridge has no responder.
#[test]
fn dns_on_user_networks() {
    let _resolver = FakeResolver::start();
    let (mut d, mut g) = daemon_on("ncbr2", "10.196.0.1/24");
    ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.195.0.0/24",
            "-o",
            "com.docker.network.bridge.name=ncdns",
            "dnsnet",
        ],
    );
    ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.194.0.0/24",
            "-o",
            "com.docker.network.bridge.name=ncother",
            "othernet",
        ],
    );
    g.0.extend(["ncdns".to_string(), "ncother".to_string()]);
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web1",
            "--network",
            "dnsnet",
            "--network-alias",
            "www",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let short = inspect(&d, "web1")["Id"].as_str().unwrap()[..12].to_string();
    let lookup = |net: &str, name: &str| {
        ok(
            &d,
            &[
                "run",
                "--rm",
                "--network",
                net,
                "--dns",
                "127.0.0.77",
                "busybox",
                "sh",
                "-c",
                &format!("nslookup {name} 2>&1; true"),
            ],
        )
    };
    let resolv = ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "dnsnet",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ],
    );
    assert!(resolv.starts_with("nameserver 10.195.0.1\n"), "{resolv}");
    for name in ["web1", "www", short.as_str(), "WEB1"] {
        let out = lookup("dnsnet", name);
        assert!(
            out.contains("10.195.0.1:53") && out.contains("Address: 10.195.0.2"),
            "{name}: {out}"
        );
    }
    let ping = ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "dnsnet",
            "busybox",
            "ping",
            "-c1",
            "-W2",
            "web1",
        ],
    );
    assert!(ping.contains("1 packets received"), "{ping}");
    // Other names: forwarded to the container's --dns.
    let out = lookup("dnsnet", "far.test");
    assert!(out.contains("10.9.9.9"), "{out}");
    let out = lookup("dnsnet", "nowhere.invalid");
    assert!(out.contains("NXDOMAIN"), "{out}");
    // Another network does not resolve web1.
    let out = lookup("othernet", "web1");
    assert!(
        out.contains("NXDOMAIN") && !out.contains("10.195.0.2"),
        "{out}"
    );
    // The default bridge has no responder: the host's resolvers, less loopback.
    let resolv = ok(&d, &["run", "--rm", "busybox", "cat", "/etc/resolv.conf"]);
    assert!(!resolv.contains("10.196.0.1"), "{resolv}");
    // DNS over TCP on the same address (from the host: a raw client).
    let ips = tcp_lookup("10.195.0.1", "www");
    assert_eq!(ips, vec![[10, 195, 0, 2]]);

    // A stopped container's name stops resolving.
    ok(&d, &["stop", "web1"]);
    let out = lookup("dnsnet", "web1");
    assert!(out.contains("NXDOMAIN"), "{out}");

    d.remove_all_containers();
    ok(&d, &["network", "rm", "dnsnet", "othernet"]);
    assert!(!link_exists("ncdns") && !link_exists("ncother"));
    assert!(d.terminate().success());
}

/// One A query over TCP to `server`:53; the addresses answered.
fn tcp_lookup(server: &str, name: &str) -> Vec<[u8; 4]> {
    use std::io::{Read, Write};
    let mut q = vec![0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut s = std::net::TcpStream::connect((server, 53)).expect("DNS over TCP");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    s.write_all(&msg).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut r).unwrap();
    assert_eq!(&r[0..2], &[0xab, 0xcd]);
    let answers = u16::from_be_bytes([r[6], r[7]]) as usize;
    // Each answer: a 2-byte name pointer, then 10 bytes, then 4 of address.
    let mut at = q.len();
    (0..answers)
        .map(|_| {
            let ip = [r[at + 12], r[at + 13], r[at + 14], r[at + 15]];
            at += 16;
            ip
        })
        .collect()
}

/// A second host: network namespace `ncpeer` joined to the host by a veth
/// (host end ncv0 10.192.0.1/24, its end 10.192.0.2/24, no route beyond
/// that subnet). Removed on drop, with the processes run in it.
struct PeerNs {
    children: Vec<std::process::Child>,
}

impl PeerNs {
    fn new() -> PeerNs {
        let _ = Command::new("ip").args(["netns", "del", "ncpeer"]).output();
        let _ = Command::new("ip").args(["link", "del", "ncv0"]).output();
        let script = "set -e; ip netns add ncpeer; \
            ip link add ncv0 type veth peer name ncv1 netns ncpeer; \
            ip addr add 10.192.0.1/24 dev ncv0; ip link set ncv0 up; \
            ip -n ncpeer addr add 10.192.0.2/24 dev ncv1; \
            ip -n ncpeer link set ncv1 up; ip -n ncpeer link set lo up";
        let o = Command::new("sh").args(["-c", script]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        PeerNs {
            children: Vec::new(),
        }
    }

    fn run(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec ncpeer {cmd}"))
    }
}

impl Drop for PeerNs {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", "ncpeer"]).output();
        let _ = Command::new("ip").args(["link", "del", "ncv0"]).output();
    }
}

/// Published ports through the firewall end to end: `-p 18080:80` answers
/// from the second namespace on the host's address and from the host on
/// 127.0.0.1; a container reaches the second namespace (masquerade: it has
/// no route back to the container's subnet); a second container asking for
/// the same port gets dockerd's error; `docker port` and inspect show the
/// binding; another network cannot reach the container; everything is gone
/// from nftables once the containers and the daemon are.
#[test]
fn published_ports_masquerade_and_isolation() {
    let mut peer = PeerNs::new();
    let (mut d, mut g) = daemon_on("ncbr3", "10.191.0.1/24");
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            "18080:80",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "echo hello-from-web > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let from_peer = peer.run("curl -s -m 5 http://10.192.0.1:18080/");
    assert_eq!(
        from_peer.trim(),
        "hello-from-web",
        "{from_peer}\n{}",
        sh("nft list table inet coracle-ncbr3")
    );
    let from_host = sh("curl -s -m 5 http://127.0.0.1:18080/");
    assert_eq!(from_host.trim(), "hello-from-web", "{from_host}");
    // docker port and inspect.
    let port = ok(&d, &["port", "web"]);
    assert!(port.contains("80/tcp -> 0.0.0.0:18080"), "{port}");
    let p = &inspect(&d, "web")["NetworkSettings"]["Ports"]["80/tcp"][0];
    assert_eq!(
        (p["HostIp"].as_str(), p["HostPort"].as_str()),
        (Some("0.0.0.0"), Some("18080")),
        "{p}"
    );
    // The same host port again: dockerd's error.
    let o = dk(
        &d,
        &["run", "-d", "-p", "18080:80", "busybox", "sleep", "5"],
    );
    assert!(
        show(&o).contains("port is already allocated"),
        "{}",
        show(&o)
    );

    // Masquerade: the peer has no route to 10.191.0.0/24, yet answers.
    std::fs::create_dir_all("/tmp/ncpeer-www").unwrap();
    std::fs::write("/tmp/ncpeer-www/index.html", "hello-from-peer\n").unwrap();
    peer.children.push(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                "ncpeer",
                "busybox",
                "httpd",
                "-f",
                "-p",
                "10.192.0.2:8000",
                "-h",
                "/tmp/ncpeer-www",
            ])
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    // (busybox wget of this image crashes: nc speaks HTTP/1.0 instead.)
    let get =
        |ip: &str, port: &str| format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}");
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &get("10.192.0.2", "8000"),
        ],
    );
    assert!(out.contains("hello-from-peer"), "{out}");

    // Isolation: a container on another network cannot reach web.
    ok(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.190.0.0/24",
            "-o",
            "com.docker.network.bridge.name=nciso",
            "isonet",
        ],
    );
    g.0.push("nciso".into());
    let web_ip = inspect(&d, "web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let o = dk(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "isonet",
            "busybox",
            "sh",
            "-c",
            &get(&web_ip, "80"),
        ],
    );
    assert!(
        !show(&o).contains("hello-from-web"),
        "isolation broken: {}",
        show(&o)
    );
    // (From the default bridge, web answers: the check above can fail.)
    let o = dk(
        &d,
        &["run", "--rm", "busybox", "sh", "-c", &get(&web_ip, "80")],
    );
    assert!(show(&o).contains("hello-from-web"), "{}", show(&o));
    // An --internal network cannot reach the peer.
    ok(
        &d,
        &[
            "network",
            "create",
            "--internal",
            "--subnet",
            "10.189.0.0/24",
            "-o",
            "com.docker.network.bridge.name=ncint2",
            "intnet2",
        ],
    );
    g.0.push("ncint2".into());
    let o = dk(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "intnet2",
            "busybox",
            "sh",
            "-c",
            &get("10.192.0.2", "8000"),
        ],
    );
    assert!(
        !show(&o).contains("hello-from-peer"),
        "internal network reached out: {}",
        show(&o)
    );

    // kill -9 of the daemon: a container with a restart policy is back on
    // its port after the restart (the table rebuilt, the port re-published).
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web2",
            "--restart",
            "always",
            "-p",
            "18082:80",
            "--stop-timeout",
            "1",
            "busybox",
            "sh",
            "-c",
            "echo hello-again > /tmp/index.html; exec httpd -f -p 80 -h /tmp",
        ],
    );
    d.kill9();
    common::kill_cgroup_leftovers(&d.data_root);
    d.restart();
    assert_eq!(d.request("GET", "/_ping", None).status, 200);
    let mut back = String::new();
    for _ in 0..50 {
        back = peer.run("curl -s -m 2 http://10.192.0.1:18082/");
        if back.contains("hello-again") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(back.contains("hello-again"), "{back}");
    ok(&d, &["start", "web"]);
    let again = peer.run("curl -s -m 5 http://10.192.0.1:18080/");
    assert_eq!(again.trim(), "hello-from-web", "{again}");

    // A thousand-port range costs the daemon little memory (one map
    // element per port in the kernel, a few bytes a port here).
    let rss = || common::vm_rss_kib(d.pid()).expect("daemon VmRSS");
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "warm",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let before = rss();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "range",
            "-p",
            "20000-20999:20000-20999",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let grown = rss().saturating_sub(before);
    assert!(grown < 100 * 1024, "a 1000-port range cost {grown} KiB");
    let nft = sh("nft list map inet coracle-ncbr3 ports_any");
    assert!(nft.contains("20999"), "{nft}");
    ok(&d, &["rm", "-f", "range", "warm"]);
    assert!(!sh("nft list map inet coracle-ncbr3 ports_any").contains("20999"));

    // Stopped: the port answers no more and is free for another container.
    ok(&d, &["stop", "web"]);
    let after = sh("curl -s -m 2 http://127.0.0.1:18080/ 2>&1");
    assert!(!after.contains("hello-from-web"), "{after}");
    assert_eq!(ok(&d, &["port", "web"]).trim(), "");

    d.remove_all_containers();
    ok(&d, &["network", "rm", "isonet", "intnet2"]);
    assert!(d.terminate().success());
    let nft = sh("nft list table inet coracle-ncbr3 2>&1");
    assert!(!nft.contains("chain"), "table left behind: {nft}");
    let _ = std::fs::remove_dir_all("/tmp/ncpeer-www");
}
