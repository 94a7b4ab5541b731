//! Running the real docker CLI against a test daemon, and waiting on
//! container state: shared by the container and stream tests.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Daemon;

pub fn docker_cmd(d: &Daemon, args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args)
        .env("DOCKER_HOST", format!("unix://{}", d.sock.display()))
        .env("DOCKER_CONFIG", d.dir.join("docker-config"))
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Run the docker CLI with optional stdin data (then EOF), failing the test
/// if it takes longer than `secs`.
pub fn dk_in(d: &Daemon, args: &[&str], input: Option<Vec<u8>>, secs: u64) -> Output {
    let mut cmd = docker_cmd(d, args);
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("run the docker CLI");
    let feeder = input.map(|data| {
        let mut stdin = child.stdin.take().expect("stdin pipe");
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        })
    });
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(o) => o.expect("wait for docker"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("`docker {}` did not finish within {secs} s", args.join(" "));
        }
    };
    if let Some(f) = feeder {
        let _ = f.join();
    }
    out
}

pub fn dk_t(d: &Daemon, args: &[&str], secs: u64) -> Output {
    dk_in(d, args, None, secs)
}

pub fn dk(d: &Daemon, args: &[&str]) -> Output {
    dk_t(d, args, 60)
}

pub fn show(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Stdout of a docker command that must succeed.
pub fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = dk(d, args);
    assert!(
        o.status.success(),
        "`docker {}` failed: {}",
        args.join(" "),
        show(&o)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn inspect(d: &Daemon, name: &str) -> Value {
    let r = d.request("GET", &format!("/containers/{name}/json"), None);
    assert_eq!(r.status, 200, "inspect {name}: {r:?}");
    r.json()
}

pub fn state(d: &Daemon, name: &str) -> Value {
    inspect(d, name)["State"].clone()
}

/// Poll `f` every 20 ms until it holds; panic after `secs`.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if f() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn wait_exited(d: &Daemon, name: &str, secs: u64) -> Value {
    let mut last = Value::Null;
    wait_for(&format!("{name} to exit"), secs, || {
        last = state(d, name);
        last["Status"] == "exited"
    });
    last
}
