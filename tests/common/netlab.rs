//! A network namespace joined to the host by a veth, for servers a test must
//! reach on a non-loopback address (loopback registries are insecure by
//! default, so their certificates are never checked): host end `.1`,
//! namespace end `.2` of a /24 in `10.NET.0.0/16` picked from the test's pid.
//! Its servers are killed and it is removed, with its directory, on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub struct NetLab {
    pub ns: String,
    veth: String,
    net: u8,
    pub subnet: u8,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl NetLab {
    /// `tag` (four letters) names the namespace and its veth; `net` is the
    /// `10.NET.0.0/16` the calling test file owns, so files running at once
    /// never share a subnet.
    pub fn new(tag: &str, net: u8, dir: PathBuf) -> NetLab {
        let pid = std::process::id();
        let lab = NetLab {
            ns: format!("{tag}{pid}"),
            veth: format!("{}{}", &tag[..3], pid % 10_000_000),
            net,
            subnet: (pid % 200 + 20) as u8,
            dir,
            children: Vec::new(),
        };
        let (ns, v) = (&lab.ns, &lab.veth);
        let (n, s) = (lab.net, lab.subnet);
        let script = format!(
            "set -e; ip netns add {ns}; \
             ip link add {v}a type veth peer name {v}b netns {ns}; \
             ip addr add 10.{n}.{s}.1/24 dev {v}a; ip link set {v}a up; \
             ip -n {ns} addr add 10.{n}.{s}.2/24 dev {v}b; \
             ip -n {ns} link set {v}b up; ip -n {ns} link set lo up"
        );
        let o = Command::new("sh").args(["-c", &script]).output().unwrap();
        assert!(
            o.status.success(),
            "netns: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        lab
    }

    /// The namespace's address.
    pub fn addr(&self) -> String {
        self.host(2)
    }

    /// Address `.last` of the lab's /24.
    pub fn host(&self, last: u8) -> String {
        format!("10.{}.{}.{last}", self.net, self.subnet)
    }

    /// A command that runs `program` inside the namespace.
    pub fn exec(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// Keeps `child` (killed on drop) and waits up to 15 s until `port` on
    /// the namespace's address accepts; `what` names it if it never does.
    pub fn keep_serving(&mut self, child: Child, port: u16, what: &str) {
        self.children.push(child);
        let sa: SocketAddr = format!("{}:{port}", self.addr()).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "{what} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}a", self.veth)])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
