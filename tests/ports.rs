//! Published ports through the real daemon: `ExposedPorts`, `PortBindings`
//! and `PublishAllPorts` checked at create with dockerd's status and texts,
//! over raw HTTP, Python's http.client and the docker CLI. (The firewall,
//! port reservation and proxy are exercised by their unit tests in
//! src/network/, inside private network namespaces.)

mod common;

use std::process::Command;

use common::Daemon;
use serde_json::{json, Value};

fn create(d: &Daemon, body: &Value) -> (u16, String) {
    let r = d.request("POST", "/v1.45/containers/create", Some(&body.to_string()));
    let msg = r.json()["message"].as_str().unwrap_or("").to_string();
    (r.status, msg)
}

#[test]
fn port_specs_are_checked_at_create_like_dockerd() {
    let mut d = Daemon::start();
    d.load_busybox();
    let bad = [
        (
            json!({"PortBindings": {"abc/tcp": []}}),
            None,
            "invalid port specification: \"abc\"",
        ),
        (
            json!({"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}}),
            None,
            "invalid port specification: \"99999\"",
        ),
        (
            json!({"PortBindings": {"80/tcp": [{"HostPort": "9000-8000"}]}}),
            None,
            "invalid port specification: \"9000-8000\"",
        ),
        (
            json!({"PortBindings": {"80/tcp": [{"HostIp": "1.2.3", "HostPort": "80"}]}}),
            None,
            "invalid IP address: 1.2.3",
        ),
        (
            json!({"PortBindings": {"80/sctx": null}}),
            None,
            "invalid proto: sctx",
        ),
        (
            json!({}),
            Some(json!({"x/tcp": {}})),
            "invalid port specification: \"x\"",
        ),
    ];
    for (host, exposed, want) in bad {
        let mut body = json!({"Image": "busybox", "HostConfig": host});
        if let Some(e) = exposed {
            body["ExposedPorts"] = e;
        }
        assert_eq!(create(&d, &body), (400, want.to_string()), "{body}");
    }
    let all = d
        .request("GET", "/v1.45/containers/json?all=1", None)
        .json();
    assert_eq!(all, json!([]), "a refused create left a container");

    // A second client: Python's buffered http.client.
    let script = format!(
        r#"
import http.client, json, socket
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect({sock:?})
c = C("localhost")
body = {{"Image": "busybox", "HostConfig": {{"PortBindings": {{"80/tcp": [{{"HostPort": "1-x"}}]}}}}}}
c.request("POST", "/containers/create", json.dumps(body), {{"Content-Type": "application/json"}})
r = c.getresponse(); print(r.status, json.loads(r.read())["message"])
"#,
        sock = d.sock.display().to_string()
    );
    let o = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("python3 is needed by this test");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "400 invalid port specification: \"1-x\"",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // What the real CLI sends for -p, ranges, udp, --expose and -P is accepted
    // and kept as sent.
    d.has_containers = true;
    let o = d.docker(&[
        "create",
        "--name",
        "web",
        "-p",
        "18080:80",
        "-p",
        "127.0.0.1:8000-8001:90-91/udp",
        "-p",
        "0:81",
        "-p",
        "82",
        "--expose",
        "7000",
        "-P",
        "busybox",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let i = d.request("GET", "/v1.45/containers/web/json", None).json();
    assert_eq!(
        i["HostConfig"]["PortBindings"],
        json!({
            "80/tcp": [{"HostIp": "", "HostPort": "18080"}],
            "81/tcp": [{"HostIp": "", "HostPort": "0"}],
            "82/tcp": [{"HostIp": "", "HostPort": ""}],
            "90/udp": [{"HostIp": "127.0.0.1", "HostPort": "8000"}],
            "91/udp": [{"HostIp": "127.0.0.1", "HostPort": "8001"}]
        })
    );
    assert_eq!(i["HostConfig"]["PublishAllPorts"], json!(true));
    let exposed: Vec<&String> = i["Config"]["ExposedPorts"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        exposed,
        vec!["7000/tcp", "80/tcp", "81/tcp", "82/tcp", "90/udp", "91/udp"]
    );
    d.remove_all_containers();
}

#[test]
fn check_config_reports_nftables_as_the_kernel_has_it() {
    let out = Command::new(common::binary())
        .arg("check-config")
        .output()
        .expect("run check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("network: nftables "))
        .unwrap_or_else(|| panic!("no nftables line in\n{text}"));
    // The truth, from nft in a throwaway network namespace.
    let works = Command::new("unshare")
        .args(["-n", "nft", "add", "table", "inet", "probe"])
        .status()
        .expect("unshare and nft are needed by this test (apt-get install nftables)")
        .success();
    let status = line
        .rsplit(" .")
        .next()
        .unwrap_or("")
        .trim_start_matches('.')
        .trim();
    assert_eq!(status.starts_with("present"), works, "{line}");
}
