//! Test-only: named network namespaces (`ip netns add`, removed on drop) and
//! sockets made inside them from a thread that joined the namespace, so the
//! tests build a host, containers and an outside peer without ever touching
//! the real host's links or ruleset.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static N: AtomicUsize = AtomicUsize::new(0);

/// A named network namespace, deleted (with its links) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!(
            "crl-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", self.name.as_str()];
        a.extend_from_slice(args);
        run("ip", &a);
    }

    /// A command run inside the namespace; its stdout.
    pub fn exec(&self, prog: &str, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", self.name.as_str(), prog];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Run `f` on a thread that joined this namespace (sockets it makes
    /// stay in the namespace wherever they are used afterwards).
    pub fn within<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let fd = File::open(&path).expect("open the namespace");
                nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("setns into the test namespace");
                f()
            })
            .join()
            .expect("namespace thread")
        })
    }

    pub fn listen_tcp(&self, addr: &str) -> TcpListener {
        self.within(|| TcpListener::bind(addr).expect("bind in namespace"))
    }

    pub fn udp(&self, addr: &str) -> UdpSocket {
        self.within(|| UdpSocket::bind(addr).expect("bind udp in namespace"))
    }

    pub fn connect(&self, addr: &str, timeout_ms: u64) -> io::Result<TcpStream> {
        let a: SocketAddr = addr.parse().expect("socket address");
        self.within(|| TcpStream::connect_timeout(&a, Duration::from_millis(timeout_ms)))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Run a tool the test needs; a missing tool fails the test loudly.
pub fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog).args(args).output().unwrap_or_else(|e| {
        panic!("{prog} is needed by this test (apt-get install iproute2 nftables): {e}")
    });
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Give `host` a bridge `br` with `gw/prefix` and one container namespace
/// attached at `ip` (default route through the bridge).
pub fn attach(host: &Netns, br: &str, gw: &str, prefix: u8, tag: &str, ip: &str) -> Netns {
    if !host
        .exec("ip", &["-o", "link", "show"])
        .contains(&format!(" {br}:"))
    {
        host.ip(&["link", "add", br, "type", "bridge"]);
        host.ip(&["addr", "add", &format!("{gw}/{prefix}"), "dev", br]);
        host.ip(&["link", "set", br, "up"]);
    }
    let c = Netns::new(tag);
    let hv = format!("v{}", N.fetch_add(1, Ordering::SeqCst));
    host.ip(&[
        "link", "add", &hv, "type", "veth", "peer", "name", "eth0", "netns", &c.name,
    ]);
    host.ip(&["link", "set", &hv, "master", br, "up"]);
    c.ip(&["addr", "add", &format!("{ip}/{prefix}"), "dev", "eth0"]);
    c.ip(&["link", "set", "eth0", "up"]);
    c.ip(&["route", "add", "default", "via", gw]);
    c
}
