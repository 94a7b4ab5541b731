//! What the start-up work (cold start, idle memory) must keep true. Timings
//! are measured by `scripts/bench.sh` (cold start, idle memory rows), never
//! here; these are the correctness checks of the faster start-up, on one
//! daemon:
//! - the firewall's NETLINK_NETFILTER socket stays open between commits
//!   (closing it right after a commit waits for an RCU grace period in the
//!   kernel, which was most of the cold start): one socket, kept through
//!   start-up, network create and remove, and the table it writes is the
//!   daemon's as before; a clean stop removes the table, a restart makes it
//!   again.

mod common;

use common::Daemon;
use std::process::Command;

/// Inodes of the sockets `pid` holds open.
fn socket_inodes(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list the daemon's fds")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect()
}

/// How many NETLINK_NETFILTER (protocol 12) sockets `pid` holds open.
fn netfilter_sockets(pid: i32) -> usize {
    let ours = socket_inodes(pid);
    let table = std::fs::read_to_string("/proc/net/netlink").expect("read /proc/net/netlink");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&"12") && f.get(9).is_some_and(|i| ours.iter().any(|o| o == i))
        })
        .count()
}

/// `nft list table inet NAME`: its text, or the error.
fn nft_table(name: &str) -> String {
    let o = Command::new("nft")
        .args(["list", "table", "inet", name])
        .output()
        .expect("nft is needed by this test (apt-get install nftables)");
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn link_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

/// The default bridge's interface and the daemon's firewall table
/// (`inet coracle` on coracle0, `inet coracle-BRIDGE` otherwise).
fn bridge_and_table(d: &Daemon) -> (String, String) {
    let r = d.request("GET", "/networks/bridge", None);
    assert_eq!(r.status, 200, "{r:?}");
    let bridge = r.json()["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(bridge.starts_with("coracle"), "{r:?}");
    let table = if bridge == "coracle0" {
        "coracle".to_string()
    } else {
        format!("coracle-{bridge}")
    };
    (bridge, table)
}

#[test]
fn firewall_socket_is_kept_through_start_up_network_changes_and_restart() {
    let mut d = Daemon::start();
    d.wait_serving();
    let (bridge, table) = bridge_and_table(&d);
    assert!(link_exists(&bridge), "no bridge {bridge} after start-up");
    let text = nft_table(&table);
    assert!(text.contains(&format!("\"{bridge}\"")), "{table}: {text}");
    assert_eq!(
        netfilter_sockets(d.pid()),
        1,
        "one NETLINK_NETFILTER socket kept open after the start-up commit"
    );

    // A user network rebuilds the table through the same socket.
    let r = d.request(
        "POST",
        "/networks/create",
        Some(r#"{"Name": "startup-net", "CheckDuplicate": true}"#),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["Id"].as_str().unwrap_or_default().to_string();
    let user_bridge = format!("br-{}", &id[..12]);
    let text = nft_table(&table);
    assert!(text.contains(&format!("\"{user_bridge}\"")), "{text}");
    let r = d.request("DELETE", "/networks/startup-net", None);
    assert_eq!(r.status, 204, "{r:?}");
    let text = nft_table(&table);
    assert!(!text.contains(&user_bridge), "{text}");
    assert!(text.contains(&format!("\"{bridge}\"")), "{text}");
    assert_eq!(netfilter_sockets(d.pid()), 1);

    // A clean stop removes the table (through the kept socket) and the bridge.
    assert!(d.terminate().success());
    assert!(
        nft_table(&table).contains("No such file or directory"),
        "table {table} left after a clean stop"
    );
    assert!(
        !link_exists(&bridge),
        "bridge {bridge} left after a clean stop"
    );

    // A restart on the same data root makes both again.
    d.restart();
    d.wait_serving();
    let (bridge2, table2) = bridge_and_table(&d);
    assert!(link_exists(&bridge2));
    assert!(nft_table(&table2).contains(&format!("\"{bridge2}\"")));
    assert_eq!(netfilter_sockets(d.pid()), 1);
    assert!(d.terminate().success());
}
