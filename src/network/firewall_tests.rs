//! The firewall table applied by the real kernel in private network
//! namespaces, checked with `nft -j list ruleset` and with real traffic:
//! a "host" namespace with bridges, "containers" behind veths, and an
//! "outside" peer on a veth to the host.

use std::io::{Read, Write};
use std::net::Ipv4Addr;

use serde_json::Value;

use super::firewall::{self, Forward, Network, Ruleset};
use super::portmap::Proto;
use super::testns::{attach, Netns};

fn ruleset(ns: &Netns) -> Value {
    serde_json::from_str(&ns.exec("nft", &["-j", "list", "ruleset"])).expect("nft -j output")
}

fn objects<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["nftables"]
        .as_array()
        .map(|a| a.iter().filter_map(|o| o.get(kind)).collect())
        .unwrap_or_default()
}

fn net(bridge: &str, subnet: [u8; 4], internal: bool) -> Network {
    Network {
        bridge: bridge.into(),
        subnet: Ipv4Addr::from(subnet),
        prefix: 24,
        internal,
    }
}

fn fwd(proto: Proto, host_port: u16, ip: [u8; 4], port: u16) -> Forward {
    Forward {
        proto,
        host_ip: None,
        host_port,
        container_ip: Ipv4Addr::from(ip),
        container_port: port,
    }
}

#[test]
fn table_is_rebuilt_atomically_and_removed_leaving_other_tables() {
    let host = Netns::new("fwt");
    host.exec("nft", &["add", "table", "ip", "theirs"]);
    let mut rs = Ruleset {
        table: String::new(),
        networks: vec![
            net("br-a", [10, 99, 0, 0], false),
            net("br-b", [10, 97, 0, 0], true),
        ],
        forwards: (20000..21000)
            .map(|p| fwd(Proto::Tcp, p, [10, 99, 0, 2], p))
            .collect(),
        loopback: false,
    };
    rs.forwards.push(Forward {
        host_ip: Some(Ipv4Addr::new(10, 98, 0, 1)),
        ..fwd(Proto::Udp, 53, [10, 99, 0, 3], 5353)
    });
    host.within(|| firewall::apply(&rs)).expect("apply");
    let v = ruleset(&host);
    let tables: Vec<String> = objects(&v, "table")
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t["family"].as_str().unwrap_or(""),
                t["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(tables, vec!["ip theirs", "inet coracle"], "{v}");
    let maps = objects(&v, "map");
    let any = maps
        .iter()
        .find(|m| m["name"] == "ports_any")
        .expect("ports_any");
    assert_eq!(
        any["type"],
        serde_json::json!(["inet_proto", "inet_service"])
    );
    assert_eq!(any["map"], "ipv4_addr . inet_service");
    assert_eq!(
        any["elem"].as_array().map(Vec::len),
        Some(1000),
        "one element per port"
    );
    let by_ip = maps
        .iter()
        .find(|m| m["name"] == "ports_ip")
        .expect("ports_ip");
    assert_eq!(
        by_ip["elem"][0],
        serde_json::json!([{"concat": ["10.98.0.1", "udp", 53]}, {"concat": ["10.99.0.3", 5353]}])
    );
    let chains: Vec<String> = objects(&v, "chain")
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                c["name"].as_str().unwrap_or(""),
                c["hook"].as_str().unwrap_or(""),
                c["prio"]
            )
        })
        .collect();
    assert_eq!(
        chains,
        vec![
            "prerouting prerouting -100",
            "output output -100",
            "postrouting postrouting 100",
            "forward forward 0"
        ]
    );
    let listing = host.exec("nft", &["list", "table", "inet", "coracle"]);
    for want in [
        "fib daddr type local dnat ip to meta l4proto . th dport map @ports_any",
        "dnat ip to ip daddr . meta l4proto . th dport map @ports_ip",
        "ip saddr 10.99.0.0/24 oifname != \"br-a\" masquerade",
        "ct status dnat oifname \"br-a\" ip saddr 10.99.0.0/24 masquerade",
        "iifname \"br-b\" oifname != \"br-b\"",
        "iifname \"br-a\" oifname != \"br-a\" oifname @bridges",
    ] {
        assert!(listing.contains(want), "missing {want:?} in\n{listing}");
    }
    assert!(
        !listing.contains("ip saddr 10.97.0.0/24 oifname != \"br-b\" masquerade"),
        "internal network masqueraded:\n{listing}"
    );

    // Rebuild with one port: the old elements are gone in the same step.
    rs.forwards.truncate(1);
    host.within(|| firewall::apply(&rs)).expect("re-apply");
    let v = ruleset(&host);
    let maps = objects(&v, "map");
    let any = maps
        .iter()
        .find(|m| m["name"] == "ports_any")
        .expect("ports_any");
    assert_eq!(any["elem"].as_array().map(Vec::len), Some(1));
    assert!(maps
        .iter()
        .any(|m| m["name"] == "ports_ip" && m.get("elem").is_none()));

    host.within(|| firewall::remove(firewall::TABLE))
        .expect("remove");
    host.within(|| firewall::remove(firewall::TABLE))
        .expect("remove twice");
    let v = ruleset(&host);
    assert_eq!(objects(&v, "table").len(), 1, "{v}");
    assert_eq!(objects(&v, "table")[0]["name"], "theirs");
}

fn roundtrip(s: &mut std::net::TcpStream, l: &std::net::TcpListener) -> std::net::SocketAddr {
    let (mut a, peer) = l.accept().expect("accept");
    s.write_all(b"ping").expect("write");
    let mut buf = [0u8; 4];
    a.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"ping");
    peer
}

#[test]
fn published_ports_masquerade_hairpin_isolation_and_internal_with_real_traffic() {
    let host = Netns::new("fwh");
    let outside = Netns::new("fwx");
    host.ip(&[
        "link",
        "add",
        "vx",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &outside.name,
    ]);
    host.ip(&["addr", "add", "10.98.0.1/24", "dev", "vx"]);
    host.ip(&["link", "set", "vx", "up"]);
    outside.ip(&["addr", "add", "10.98.0.2/24", "dev", "eth0"]);
    outside.ip(&["link", "set", "eth0", "up"]);
    host.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let c = attach(&host, "br-a", "10.99.0.1", 24, "fwc", "10.99.0.2");
    let c2 = attach(&host, "br-a", "10.99.0.1", 24, "fwc", "10.99.0.3");
    let d = attach(&host, "br-b", "10.97.0.1", 24, "fwd", "10.97.0.2");
    let i = attach(&host, "br-i", "10.96.0.1", 24, "fwi", "10.96.0.2");
    host.within(|| firewall::enable_route_localnet("br-a"))
        .expect("route_localnet");
    let rs = Ruleset {
        table: String::new(),
        networks: vec![
            net("br-a", [10, 99, 0, 0], false),
            net("br-b", [10, 97, 0, 0], false),
            net("br-i", [10, 96, 0, 0], true),
        ],
        forwards: vec![
            fwd(Proto::Tcp, 18080, [10, 99, 0, 2], 80),
            fwd(Proto::Udp, 18081, [10, 99, 0, 2], 53),
        ],
        loopback: true,
    };
    host.within(|| firewall::apply(&rs)).expect("apply");

    let web = c.listen_tcp("0.0.0.0:80");
    // From outside, on the host's address: DNAT, the client's own address kept.
    let mut s = outside
        .connect("10.98.0.1:18080", 2000)
        .expect("outside -> published port");
    assert_eq!(roundtrip(&mut s, &web).ip().to_string(), "10.98.0.2");
    // From the host itself, on its own address and on 127.0.0.1.
    let mut s = host
        .connect("10.98.0.1:18080", 2000)
        .expect("host -> own address");
    roundtrip(&mut s, &web);
    let mut s = host
        .connect("127.0.0.1:18080", 2000)
        .expect("host -> 127.0.0.1");
    roundtrip(&mut s, &web);
    // Hairpin: a neighbour on the same bridge through the host's address.
    // (A container reaching its own published port this way is dropped by
    // the kernel's routing, source == destination, as without br_netfilter
    // under dockerd; that case needs the userland proxy.)
    let mut s = c2.connect("10.98.0.1:18080", 2000).expect("hairpin");
    assert_eq!(
        roundtrip(&mut s, &web).ip().to_string(),
        "10.99.0.1",
        "hairpin masqueraded"
    );
    // Another network reaches the published port, not the container directly.
    let mut s = d
        .connect("10.98.0.1:18080", 2000)
        .expect("other network -> published port");
    roundtrip(&mut s, &web);
    assert!(
        d.connect("10.99.0.2:80", 500).is_err(),
        "networks are not isolated"
    );

    // UDP echo through the published port.
    let echo = c.udp("0.0.0.0:53");
    let client = outside.udp("10.98.0.2:0");
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok();
    client
        .send_to(b"dns?", "10.98.0.1:18081")
        .expect("udp send");
    let mut buf = [0u8; 16];
    echo.set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .ok();
    let (n, from) = echo.recv_from(&mut buf).expect("udp reaches the container");
    echo.send_to(&buf[..n], from).expect("udp reply");
    let (n, _) = client
        .recv_from(&mut buf)
        .expect("udp reply reaches outside");
    assert_eq!(&buf[..n], b"dns?");

    // Masquerade: containers reach the outside as the host.
    let out = outside.listen_tcp("10.98.0.2:9000");
    let mut s = c
        .connect("10.98.0.2:9000", 2000)
        .expect("container -> outside");
    assert_eq!(roundtrip(&mut s, &out).ip().to_string(), "10.98.0.1");
    let mut s = d
        .connect("10.98.0.2:9000", 2000)
        .expect("second network -> outside");
    assert_eq!(roundtrip(&mut s, &out).ip().to_string(), "10.98.0.1");
    // --internal: nothing leaves, nothing from another network enters.
    assert!(
        i.connect("10.98.0.2:9000", 500).is_err(),
        "internal network reached outside"
    );
    let _l = i.listen_tcp("0.0.0.0:81");
    assert!(
        c.connect("10.96.0.2:81", 500).is_err(),
        "internal network reachable"
    );
    assert!(
        host.connect("10.96.0.2:81", 2000).is_ok(),
        "host reaches its internal network"
    );

    host.within(|| firewall::remove(firewall::TABLE))
        .expect("remove");
    assert!(
        outside.connect("10.98.0.1:18080", 500).is_err(),
        "DNAT left after remove"
    );
}

#[test]
fn a_refused_batch_changes_nothing_and_names_its_culprit() {
    let host = Netns::new("fwe");
    let rs = Ruleset {
        table: String::new(),
        networks: vec![net("br-a", [10, 99, 0, 0], false)],
        forwards: vec![fwd(Proto::Tcp, 18080, [10, 99, 0, 2], 80)],
        loopback: false,
    };
    host.within(|| firewall::apply(&rs)).expect("apply");
    let before = host.exec("nft", &["list", "ruleset"]);
    let mut bad = firewall::build(&Ruleset::default());
    bad.add_rule(
        firewall::TABLE,
        "nochain",
        &[super::nftables::Expr::Immediate(
            super::nftables::Verdict::Accept,
        )],
    );
    let e = host
        .within(|| super::nftables::commit(&bad))
        .expect_err("refused");
    assert_eq!(
        e,
        super::nftables::NftError::Kernel {
            errno: libc::ENOENT,
            what: "add rule to chain nochain".into()
        }
    );
    assert!(
        e.to_string()
            .starts_with("nftables: the kernel refused to add rule to chain nochain: "),
        "{e}"
    );
    assert_eq!(
        host.exec("nft", &["list", "ruleset"]),
        before,
        "a failed batch changed the ruleset"
    );
}

#[test]
fn publish_and_unpublish_change_only_the_map() {
    let host = Netns::new("fwp");
    let rs = Ruleset {
        table: String::new(),
        networks: vec![net("br-a", [10, 99, 0, 0], false)],
        forwards: vec![fwd(Proto::Tcp, 18080, [10, 99, 0, 2], 80)],
        loopback: false,
    };
    host.within(|| firewall::apply(&rs)).expect("apply");
    let rules_before = host.exec(
        "nft",
        &["-a", "list", "chain", "inet", "coracle", "prerouting"],
    );
    let more: Vec<Forward> = (20000..20010)
        .map(|p| fwd(Proto::Udp, p, [10, 99, 0, 3], p))
        .chain([Forward {
            host_ip: Some(Ipv4Addr::new(127, 0, 0, 1)),
            ..fwd(Proto::Tcp, 8000, [10, 99, 0, 3], 80)
        }])
        .collect();
    host.within(|| firewall::publish(firewall::TABLE, &more))
        .expect("publish");
    let count = |name: &str| {
        let v = ruleset(&host);
        objects(&v, "map")
            .iter()
            .find(|m| m["name"] == name)
            .and_then(|m| m["elem"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    assert_eq!((count("ports_any"), count("ports_ip")), (11, 1));
    // The same host port to another container is refused, nothing added.
    let clash = vec![
        fwd(Proto::Tcp, 18081, [10, 99, 0, 4], 80),
        fwd(Proto::Tcp, 18080, [10, 99, 0, 4], 80),
    ];
    assert!(host
        .within(|| firewall::publish(firewall::TABLE, &clash))
        .is_err());
    assert_eq!(count("ports_any"), 11);
    host.within(|| firewall::unpublish(firewall::TABLE, &more))
        .expect("unpublish");
    assert_eq!((count("ports_any"), count("ports_ip")), (1, 0));
    assert_eq!(
        host.exec(
            "nft",
            &["-a", "list", "chain", "inet", "coracle", "prerouting"]
        ),
        rules_before,
        "rules were rebuilt"
    );
    host.within(|| firewall::publish(firewall::TABLE, &[]))
        .expect("nothing to do");
}
