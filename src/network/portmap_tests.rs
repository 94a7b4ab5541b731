//! Port reservation and the API shapes of published ports.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::json;

use super::portmap::*;

fn cp(port: u16, proto: Proto) -> ContainerPort {
    ContainerPort { port, proto }
}

/// (container port, host ip, host port range)
type Want<'a> = (ContainerPort, Option<&'a str>, Option<(u16, u16)>);

fn req(bindings: &[Want]) -> PortRequest {
    let mut m: BTreeMap<ContainerPort, Vec<HostBinding>> = BTreeMap::new();
    for (c, ip, port) in bindings {
        m.entry(*c).or_default().push(HostBinding {
            host_ip: ip.map(|s| s.parse().expect("ip")),
            host_port: *port,
        });
    }
    PortRequest {
        bindings: m,
        ..PortRequest::default()
    }
}

#[test]
fn a_taken_port_is_refused_with_dockerds_text_and_nothing_stays_held() {
    let mut a = PortAllocator::new((49153, 49160));
    let web = req(&[(cp(80, Proto::Tcp), None, Some((18080, 18080)))]);
    let got = a.allocate("c1", &web).expect("first");
    assert_eq!(
        got,
        vec![Published {
            container_port: 80,
            proto: Proto::Tcp,
            host_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            host_port: 18080
        }]
    );
    // The second asks for a free udp port first, then the taken tcp one.
    let second = req(&[
        (cp(53, Proto::Udp), None, Some((18080, 18080))),
        (cp(81, Proto::Tcp), None, Some((18080, 18080))),
    ]);
    let e = a.allocate("c2", &second).expect_err("taken");
    assert_eq!(
        e.to_string(),
        "Bind for 0.0.0.0:18080 failed: port is already allocated"
    );
    assert_eq!(a.in_use(), 1, "the udp port was given back");
    // A specific address conflicts with every-address and vice versa.
    let lo = req(&[(cp(80, Proto::Tcp), Some("127.0.0.1"), Some((18080, 18080)))]);
    assert_eq!(
        a.allocate("c3", &lo).expect_err("overlap").to_string(),
        "Bind for 127.0.0.1:18080 failed: port is already allocated"
    );
    a.release("c1");
    assert_eq!(a.in_use(), 0);
    a.allocate("c3", &lo).expect("free after release");
    let e = a.allocate("c4", &web).expect_err("any over a specific ip");
    assert_eq!(
        e,
        PortError::Allocated {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 18080
        }
    );
    let other_ip = req(&[(cp(80, Proto::Tcp), Some("10.0.0.1"), Some((18080, 18080)))]);
    a.allocate("c5", &other_ip)
        .expect("another address, same port");
    assert_eq!(
        external_connectivity("web", "abc123", &e),
        "driver failed programming external connectivity on endpoint web (abc123): Bind for 0.0.0.0:18080 failed: port is already allocated"
    );
}

#[test]
fn ephemeral_ports_round_robin_in_range_and_ranges_take_the_first_free() {
    let mut a = PortAllocator::new((49153, 49155));
    let eph = req(&[(cp(80, Proto::Tcp), None, None)]);
    let ports: Vec<u16> = ["a", "b", "c"]
        .iter()
        .map(|o| a.allocate(o, &eph).expect("ephemeral")[0].host_port)
        .collect();
    assert_eq!(ports, vec![49153, 49154, 49155]);
    assert_eq!(a.allocate("d", &eph), Err(PortError::Exhausted));
    a.release("b");
    assert_eq!(
        a.allocate("e", &eph).expect("freed one")[0].host_port,
        49154
    );
    // udp has its own ports.
    let udp = req(&[(cp(53, Proto::Udp), None, None)]);
    assert_eq!(a.allocate("f", &udp).expect("udp")[0].host_port, 49153);
    let range = req(&[(cp(80, Proto::Tcp), None, Some((49154, 49200)))]);
    a.release("a");
    assert_eq!(a.allocate("g", &range).expect("range")[0].host_port, 49156);
    let full = req(&[(cp(80, Proto::Tcp), None, Some((49153, 49155)))]);
    a.allocate("h", &full).expect("49153 is free again");
    assert_eq!(a.allocate("i", &full), Err(PortError::Exhausted));
    assert_eq!(PortError::Exhausted.to_string(), "all ports are allocated");
}

#[test]
fn publish_all_and_a_thousand_port_range() {
    let mut a = PortAllocator::new(EPHEMERAL_DEFAULT);
    let mut r = req(&[(cp(80, Proto::Tcp), None, Some((8080, 8080)))]);
    r.exposed.insert(cp(80, Proto::Tcp));
    r.exposed.insert(cp(443, Proto::Tcp));
    r.publish_all = true;
    let got = a.allocate("c", &r).expect("-P");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].container_port, 443);
    assert!(got[1].host_port >= 49153);
    let mut big = PortRequest::default();
    for p in 20000..21000u16 {
        big.bindings.insert(
            cp(p, Proto::Tcp),
            vec![HostBinding {
                host_ip: None,
                host_port: Some((p, p)),
            }],
        );
    }
    let got = a.allocate("range", &big).expect("range");
    assert_eq!(got.len(), 1000);
    let f = forwards(&got, Ipv4Addr::new(172, 17, 0, 2));
    assert_eq!(f.len(), 1000);
    assert_eq!(f[0].host_ip, None);
    // Held again after a restart from the record.
    let record = serde_json::to_string(&got).expect("serialise");
    let back: Vec<Published> = serde_json::from_str(&record).expect("parse");
    let mut fresh = PortAllocator::new(EPHEMERAL_DEFAULT);
    fresh.restore("range", &back).expect("restore");
    assert_eq!(
        fresh.allocate("x", &big).map(|_| ()),
        Err(PortError::Allocated {
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 20000
        })
    );
}

#[test]
fn inspect_and_ps_shapes() {
    let mut r = req(&[(cp(80, Proto::Tcp), None, Some((18080, 18080)))]);
    r.exposed.insert(cp(53, Proto::Udp));
    let mut a = PortAllocator::new(EPHEMERAL_DEFAULT);
    let got = a.allocate("c", &r).expect("allocate");
    assert_eq!(
        inspect_ports(&r, &got),
        json!({"53/udp": null, "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]})
    );
    assert_eq!(
        ps_ports(&r, &got),
        json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 18080, "Type": "tcp"},
            {"PrivatePort": 53, "Type": "udp"}
        ])
    );
    let rec = serde_json::to_value(got[0]).expect("json");
    assert_eq!(
        rec,
        json!({"ContainerPort": 80, "Proto": "tcp", "HostIp": "0.0.0.0", "HostPort": 18080})
    );
}

#[test]
fn ipv6_any_binding_when_the_host_has_it() {
    let mut a = PortAllocator::new(EPHEMERAL_DEFAULT);
    a.ipv6 = true;
    let r = req(&[(cp(80, Proto::Tcp), None, Some((18080, 18080)))]);
    let got = a.allocate("c", &r).expect("allocate");
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].host_ip.to_string(), "::");
    assert_eq!(forwards(&got, Ipv4Addr::LOCALHOST).len(), 1);
    assert_eq!(
        PortError::Allocated {
            ip: got[1].host_ip,
            port: 1
        }
        .to_string(),
        "Bind for [::]:1 failed: port is already allocated"
    );
    assert!(ephemeral_range().0 > 0);
}
