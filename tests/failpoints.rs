//! Issue 20: a crash at every named failpoint (src/failpoint.rs). For each
//! point: a daemon on its own data root, armed with `CORACLE_FAILPOINT`, runs
//! the operation until the point kills it (SIGKILL: a power cut); then
//! `coracle check-store` finds no problem (only what start-up cleans: temp
//! files, unreferenced layers, load journals); the daemon restarts unarmed,
//! the operation is redone successfully, the daemon stops, and
//! `check-store --deep` finds the store clean. A point in the list without a
//! scenario fails the test. Several points run at once (one daemon each).

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::registry::Registry;
use common::{binary, busybox_tar, kill_cgroup_leftovers, temp_dir, wait_timeout};

/// Every name of `POINTS` in src/failpoint.rs (the one list).
fn declared_points() -> Vec<String> {
    let src = include_str!("../src/failpoint.rs");
    let start = src
        .find("pub const POINTS")
        .expect("POINTS in src/failpoint.rs");
    let body = &src[start..];
    let body = &body[..body.find("];").expect("end of POINTS")];
    body.lines()
        .map(str::trim)
        .filter(|l| l.starts_with('"'))
        .filter_map(|l| l.split('"').nth(1).map(str::to_string))
        .collect()
}

/// A daemon on its own data root, started and stopped at will.
struct Node {
    dir: PathBuf,
    root: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    registry: Option<String>,
}

impl Node {
    fn new(tag: &str) -> Node {
        let dir = temp_dir(tag);
        std::fs::write(dir.join("daemon.json"), "{}").unwrap();
        Node {
            root: dir.join("root"),
            sock: dir.join("d.sock"),
            log: dir.join("daemon.log"),
            dir,
            child: None,
            registry: None,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Start (armed with `point` when given) and wait for `/_ping`.
    fn start(&mut self, point: Option<&str>) {
        assert!(self.child.is_none());
        let _ = std::fs::remove_file(&self.sock);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("--config-file")
            .arg(self.dir.join("daemon.json"))
            .arg("--data-root")
            .arg(&self.root)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .args(["--log-level", "debug"])
            .env_remove("CORACLE_FAILPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(p) = point {
            cmd.env("CORACLE_FAILPOINT", p);
        }
        self.child = Some(cmd.spawn().expect("spawn coracle"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.ping() {
                return;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("coracle exited at start-up: {st}\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "coracle not serving in 20 s\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(&self.sock) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.starts_with("HTTP/1.1 200")
    }

    /// SIGTERM and wait: a clean stop.
    fn stop(&mut self) {
        let mut c = self.child.take().expect("running");
        common::signal(c.id() as i32, 15);
        let st = wait_timeout(&mut c, Duration::from_secs(30));
        assert!(
            st.is_some_and(|s| s.success()),
            "clean stop failed: {st:?}\n{}",
            self.log_text()
        );
    }

    /// Wait for the armed daemon to die.
    fn wait_crash(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut c = self.child.take().expect("running");
        match wait_timeout(&mut c, limit) {
            Some(st) => Some(st),
            None => {
                self.child = Some(c);
                None
            }
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", self.dir.join("docker-config"))
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null())
            .output()
            .expect("docker CLI")
    }

    /// A docker command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}\n{}\nlog:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            self.log_text()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A docker command that may fail only with "No such" / "not found".
    fn ok_or_absent(&self, args: &[&str]) {
        let o = self.docker(args);
        let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
        assert!(
            o.status.success() || err.contains("no such") || err.contains("not found"),
            "docker {args:?}: {err}\nlog:\n{}",
            self.log_text()
        );
    }

    fn check_store(&self, extra: &[&str]) -> (i32, String) {
        let o = Command::new(binary())
            .arg("check-store")
            .arg("--data-root")
            .arg(&self.root)
            .args(extra)
            .output()
            .expect("coracle check-store");
        (
            o.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            common::signal(c.id() as i32, 15);
            if wait_timeout(&mut c, Duration::from_secs(20)).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        kill_cgroup_leftovers(&self.root);
        // A daemon stopped cleanly removed its bridges; one that never came
        // back after its crash may have left a user network's: the next
        // daemon sweeps default ones, these we remove.
        let nets = self.root.join("networks");
        if let Ok(rd) = std::fs::read_dir(&nets) {
            for e in rd.flatten() {
                let b = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                    .and_then(|v| v["bridge"].as_str().map(str::to_string));
                if let Some(b) = b.filter(|b| b.starts_with("br-")) {
                    let _ = Command::new("ip").args(["link", "del", &b]).output();
                }
            }
        }
        let _ = Command::new("umount")
            .arg("-R")
            .arg("-l")
            .arg(&self.root)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a scenario starts from.
#[derive(Clone, Copy, PartialEq)]
enum Base {
    /// An empty data root.
    Empty,
    /// busybox:latest loaded.
    Busybox,
}

type Step = fn(&Node);

struct Scenario {
    points: &'static [&'static str],
    base: Base,
    /// Run unarmed before the armed start.
    setup: Option<Step>,
    /// The operation the point interrupts.
    op: Step,
    /// After the restart: redo the operation, check its result.
    redo: Step,
}

fn load(n: &Node) {
    let tar = busybox_tar().to_str().unwrap().to_string();
    let _ = n.docker(&["load", "-i", &tar]);
}
fn load_redo(n: &Node) {
    let tar = busybox_tar().to_str().unwrap().to_string();
    assert!(n.ok(&["load", "-i", &tar]).contains("busybox:latest"));
    n.ok(&["run", "--rm", "busybox", "true"]);
}

fn rootfs_tar(n: &Node) -> PathBuf {
    let src = n.dir.join("rootfs");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/motd"), "imported\n").unwrap();
    let tar = n.dir.join("rootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}
fn import(n: &Node) {
    let tar = rootfs_tar(n);
    let _ = n.docker(&["import", tar.to_str().unwrap(), "imp:1"]);
}
fn import_redo(n: &Node) {
    let tar = rootfs_tar(n);
    n.ok(&["import", tar.to_str().unwrap(), "imp:1"]);
    n.ok(&["image", "inspect", "imp:1"]);
}

fn commit_setup(n: &Node) {
    n.ok(&[
        "run",
        "--name",
        "c",
        "busybox",
        "sh",
        "-c",
        "echo hi > /committed",
    ]);
}
fn commit(n: &Node) {
    let _ = n.docker(&["commit", "c", "cm:1"]);
}
fn commit_redo(n: &Node) {
    n.ok(&["commit", "c", "cm:1"]);
    let out = n.ok(&["run", "--rm", "cm:1", "cat", "/committed"]);
    assert_eq!(out.trim(), "hi");
}

fn build_context(n: &Node) -> PathBuf {
    let ctx = n.dir.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY f /f\nLABEL a=b\n",
    )
    .unwrap();
    std::fs::write(ctx.join("f"), "built\n").unwrap();
    ctx
}
fn build(n: &Node) {
    let ctx = build_context(n);
    let _ = n.docker(&["build", "-t", "bd:1", ctx.to_str().unwrap()]);
}
fn build_redo(n: &Node) {
    let ctx = build_context(n);
    n.ok(&["build", "-t", "bd:1", ctx.to_str().unwrap()]);
    let out = n.ok(&["run", "--rm", "bd:1", "cat", "/f"]);
    assert_eq!(out.trim(), "built");
}

fn pull_ref(n: &Node) -> String {
    format!("{}/fp/busybox:1", n.registry.as_deref().expect("registry"))
}
fn pull(n: &Node) {
    let _ = n.docker(&["pull", &pull_ref(n)]);
}
fn pull_redo(n: &Node) {
    n.ok(&["pull", &pull_ref(n)]);
    n.ok(&["run", "--rm", &pull_ref(n), "true"]);
}

fn tag(n: &Node) {
    let _ = n.docker(&["tag", "busybox", "t:1"]);
}
fn tag_redo(n: &Node) {
    n.ok(&["tag", "busybox", "t:1"]);
    n.ok(&["image", "inspect", "t:1"]);
}

fn untag_setup(n: &Node) {
    n.ok(&["tag", "busybox", "u:1"]);
}
fn untag(n: &Node) {
    let _ = n.docker(&["rmi", "u:1"]);
}
fn untag_redo(n: &Node) {
    n.ok_or_absent(&["rmi", "u:1"]);
    assert!(!n.docker(&["image", "inspect", "u:1"]).status.success());
    n.ok(&["image", "inspect", "busybox"]);
}

fn rmi(n: &Node) {
    let _ = n.docker(&["rmi", "busybox"]);
}
fn rmi_redo(n: &Node) {
    n.ok_or_absent(&["rmi", "busybox"]);
    // A crash between the untag and the config's removal leaves the image
    // untagged (dangling), as dockerd's would: removed by its ID.
    for id in n.ok(&["images", "-q"]).split_whitespace() {
        n.ok(&["rmi", id]);
    }
    assert!(n.ok(&["images", "-q"]).trim().is_empty());
    load_redo(n);
}

fn prune_setup(n: &Node) {
    let tar = rootfs_tar(n);
    n.ok(&["import", tar.to_str().unwrap()]);
    let tar2 = n.dir.join("rootfs2.tar");
    std::fs::copy(&tar, &tar2).unwrap();
    n.ok(&["import", "-c", "ENV X=2", tar2.to_str().unwrap()]);
}
fn prune(n: &Node) {
    let _ = n.docker(&["image", "prune", "-f"]);
}
fn prune_redo(n: &Node) {
    n.ok(&["image", "prune", "-f"]);
    let left = n.ok(&["images", "-q", "--filter", "dangling=true"]);
    assert!(left.trim().is_empty(), "dangling left: {left}");
    n.ok(&["image", "inspect", "busybox"]);
}

fn create(n: &Node) {
    let _ = n.docker(&["create", "--name", "c", "busybox", "true"]);
}
fn create_redo(n: &Node) {
    n.ok_or_absent(&["rm", "-f", "c"]);
    n.ok(&["create", "--name", "c", "busybox", "true"]);
    n.ok(&["start", "-a", "c"]);
    n.ok(&["rm", "c"]);
}

fn created_c(n: &Node) {
    n.ok(&["create", "--name", "c", "busybox", "true"]);
}
fn start(n: &Node) {
    let _ = n.docker(&["start", "c"]);
}
fn start_redo(n: &Node) {
    // Not `start -a`: coracle refuses to attach to an exited container
    // (dockerd does not; reported apart).
    n.ok(&["start", "c"]);
    assert_eq!(n.ok(&["wait", "c"]).trim(), "0");
    let st = n.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "c",
    ]);
    assert_eq!(st.trim(), "exited 0");
    n.ok(&["rm", "c"]);
}

fn rename(n: &Node) {
    let _ = n.docker(&["rename", "c", "c2"]);
}
fn rename_redo(n: &Node) {
    let names = n.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        names.trim() == "c" || names.trim() == "c2",
        "after the crash: {names}"
    );
    if names.trim() == "c" {
        n.ok(&["rename", "c", "c2"]);
    }
    n.ok(&["start", "-a", "c2"]);
    assert_eq!(n.ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(), "c2");
    n.ok(&["rm", "c2"]);
}

fn rm(n: &Node) {
    let _ = n.docker(&["rm", "c"]);
}
fn rm_redo(n: &Node) {
    n.ok_or_absent(&["rm", "c"]);
    assert!(n.ok(&["ps", "-aq"]).trim().is_empty());
    create_redo(n);
}

fn two_created(n: &Node) {
    n.ok(&["create", "--name", "p1", "busybox", "true"]);
    n.ok(&["create", "--name", "p2", "busybox", "true"]);
}
fn container_prune(n: &Node) {
    let _ = n.docker(&["container", "prune", "-f"]);
}
fn container_prune_redo(n: &Node) {
    n.ok(&["container", "prune", "-f"]);
    assert!(n.ok(&["ps", "-aq"]).trim().is_empty());
    create_redo(n);
}

fn volume_create(n: &Node) {
    let _ = n.docker(&["volume", "create", "vol1"]);
}
fn volume_create_redo(n: &Node) {
    n.ok(&["volume", "create", "vol1"]);
    n.ok(&["run", "--rm", "-v", "vol1:/v", "busybox", "touch", "/v/x"]);
    n.ok(&["volume", "rm", "vol1"]);
}
fn volume_setup(n: &Node) {
    n.ok(&["volume", "create", "vol1"]);
}
fn volume_rm(n: &Node) {
    let _ = n.docker(&["volume", "rm", "vol1"]);
}
fn volume_rm_redo(n: &Node) {
    n.ok_or_absent(&["volume", "rm", "vol1"]);
    assert!(n.ok(&["volume", "ls", "-q"]).trim().is_empty());
    volume_create_redo(n);
}

fn network_create(n: &Node) {
    let _ = n.docker(&["network", "create", "fpnet"]);
}
fn network_create_redo(n: &Node) {
    n.ok_or_absent(&["network", "rm", "fpnet"]);
    n.ok(&["network", "create", "fpnet"]);
    n.ok(&["run", "--rm", "--network", "fpnet", "busybox", "true"]);
    n.ok(&["network", "rm", "fpnet"]);
}
fn network_setup(n: &Node) {
    n.ok(&["network", "create", "fpnet"]);
}
fn network_rm(n: &Node) {
    let _ = n.docker(&["network", "rm", "fpnet"]);
}

fn log_run(n: &Node) {
    let _ = n.docker(&[
        "run",
        "-d",
        "--name",
        "l",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; i=$((i+1)); done",
    ]);
}
fn log_redo(n: &Node) {
    n.ok(&["logs", "l"]);
    n.ok(&["rm", "-f", "l"]);
    n.ok(&[
        "run",
        "--name",
        "l",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 400 ]; do echo line-$i-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; i=$((i+1)); done",
    ]);
    let tail = n.ok(&["logs", "--tail", "1", "l"]);
    assert!(tail.starts_with("line-399-"), "{tail}");
    n.ok(&["rm", "l"]);
}

fn scenarios() -> Vec<Scenario> {
    let s = |points, base, setup: Option<Step>, op: Step, redo: Step| Scenario {
        points,
        base,
        setup,
        op,
        redo,
    };
    use Base::*;
    vec![
        s(
            &[
                "layer.extracted",
                "layer.meta_written",
                "layer.synced",
                "layer.renamed",
                "journal.written",
                "config.written",
                "load.indexed",
                "load.refs_saved",
                "load.journal_removed",
                "atomic.temp_written",
                "atomic.temp_synced",
                "atomic.renamed",
            ],
            Empty,
            None,
            load,
            load_redo,
        ),
        s(
            &["pull.hold_written", "pull.hold_released"],
            Empty,
            None,
            pull,
            pull_redo,
        ),
        s(
            &["import.layer_extracted"],
            Busybox,
            None,
            import,
            import_redo,
        ),
        s(
            &["commit.layer_extracted", "commit.indexed"],
            Busybox,
            Some(commit_setup),
            commit,
            commit_redo,
        ),
        s(
            &["build.step_indexed", "build.tagged"],
            Busybox,
            None,
            build,
            build_redo,
        ),
        s(&["image.tag_saved"], Busybox, None, tag, tag_redo),
        s(
            &["image.untag_saved"],
            Busybox,
            Some(untag_setup),
            untag,
            untag_redo,
        ),
        s(
            &[
                "image.rm_refs_saved",
                "image.rm_config_removed",
                "image.rm_layer_removed",
                "layer.remove_renamed",
            ],
            Busybox,
            None,
            rmi,
            rmi_redo,
        ),
        s(
            &["image.prune_one"],
            Busybox,
            Some(prune_setup),
            prune,
            prune_redo,
        ),
        s(
            &[
                "container.create_tmp",
                "container.create_record",
                "container.create_renamed",
                "container.create_done",
            ],
            Busybox,
            None,
            create,
            create_redo,
        ),
        s(
            &[
                "container.start_pending",
                "container.started",
                "record.staged",
                "record.synced",
                "record.published",
            ],
            Busybox,
            Some(created_c),
            start,
            start_redo,
        ),
        s(
            &["container.saved", "container.renamed"],
            Busybox,
            Some(created_c),
            rename,
            rename_redo,
        ),
        s(
            &["container.rm_renamed", "tree.delete_begin"],
            Busybox,
            Some(created_c),
            rm,
            rm_redo,
        ),
        s(
            &["container.prune_one"],
            Busybox,
            Some(two_created),
            container_prune,
            container_prune_redo,
        ),
        s(
            &[
                "volume.create_tmp",
                "volume.create_record",
                "volume.create_renamed",
            ],
            Busybox,
            None,
            volume_create,
            volume_create_redo,
        ),
        s(
            &["volume.rm_renamed"],
            Busybox,
            Some(volume_setup),
            volume_rm,
            volume_rm_redo,
        ),
        s(
            &[
                "network.saved",
                "network.create_recorded",
                "network.create_bridge_up",
            ],
            Busybox,
            None,
            network_create,
            network_create_redo,
        ),
        s(
            &["network.rm_bridge_removed", "network.rm_record_removed"],
            Busybox,
            Some(network_setup),
            network_rm,
            network_create_redo,
        ),
        s(
            &["log.rotate_renamed", "log.rotate_reopened"],
            Busybox,
            None,
            log_run,
            log_redo,
        ),
    ]
}

/// Leftovers a crash may leave for start-up to clean (anything else, and
/// any problem, fails).
const ALLOWED_LEFTOVERS: &[&str] = &["temp", "unreferenced layer", "load journal"];

/// One point: crash, check, restart, redo, stop, check clean.
fn run_point(
    point: &str,
    sc: &Scenario,
    base: &Path,
    registry: Option<&str>,
) -> Result<(), String> {
    let mut n = Node::new("fp");
    n.registry = registry.map(str::to_string);
    if sc.base == Base::Busybox {
        let st = Command::new("cp")
            .arg("-a")
            .arg(base)
            .arg(&n.root)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err("copy of the base data root failed".into());
        }
    }
    if let Some(setup) = sc.setup {
        n.start(None);
        setup(&n);
        n.stop();
    }
    n.start(Some(point));
    (sc.op)(&n);
    let st = n.wait_crash(Duration::from_secs(20)).ok_or_else(|| {
        format!(
            "{point}: the operation did not reach the point\n{}",
            n.log_text()
        )
    })?;
    if st.signal() != Some(9) || !n.log_text().contains(&format!("failpoint {point} fired")) {
        return Err(format!(
            "{point}: not killed by the point ({st})\n{}",
            n.log_text()
        ));
    }
    let (_, report) = n.check_store(&[]);
    for line in report.lines() {
        let bad = line.starts_with("problem:")
            || line
                .strip_prefix("leftover: ")
                .is_some_and(|rest| !ALLOWED_LEFTOVERS.iter().any(|k| rest.starts_with(k)));
        if bad {
            return Err(format!("{point}: after the crash, check-store:\n{report}"));
        }
    }
    n.start(None);
    (sc.redo)(&n);
    n.stop();
    let (code, report) = n.check_store(&["--deep"]);
    if code != 0 {
        return Err(format!(
            "{point}: after the restart and redo, check-store --deep ({code}):\n{report}\nlog:\n{}",
            n.log_text()
        ));
    }
    Ok(())
}

#[test]
fn every_failpoint_crash_is_repaired() {
    let declared = declared_points();
    assert!(declared.len() >= 40, "{} points", declared.len());
    let scenarios = scenarios();
    let covered: BTreeSet<&str> = scenarios
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let missing: Vec<&String> = declared
        .iter()
        .filter(|p| !covered.contains(p.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "failpoints without a scenario: {missing:?}"
    );
    let unknown: Vec<&&str> = covered
        .iter()
        .filter(|p| !declared.iter().any(|d| d == *p))
        .collect();
    assert!(
        unknown.is_empty(),
        "scenarios of unknown points: {unknown:?}"
    );

    // The base data root: busybox loaded, stopped cleanly; the registry
    // holds busybox for the pull points.
    let registry = Registry::start();
    let host = format!("127.0.0.1:{}", registry.port);
    let mut base = Node::new("fp-base");
    base.start(None);
    load_redo(&base);
    let pushed = format!("{host}/fp/busybox:1");
    base.ok(&["tag", "busybox", &pushed]);
    base.ok(&["push", &pushed]);
    base.ok(&["rmi", &pushed]);
    base.stop();
    let _ = std::fs::remove_dir_all(base.root.join("networks"));

    let mut queue: VecDeque<(String, usize)> = VecDeque::new();
    for (i, sc) in scenarios.iter().enumerate() {
        for p in sc.points {
            queue.push_back((p.to_string(), i));
        }
    }
    let total = queue.len();
    let queue = Arc::new(Mutex::new(queue));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let passed = Arc::new(Mutex::new(Vec::<String>::new()));
    let scenarios = Arc::new(scenarios);
    let started = Instant::now();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (queue, failures, passed, scenarios) = (
                queue.clone(),
                failures.clone(),
                passed.clone(),
                scenarios.clone(),
            );
            let base = base.root.clone();
            let host = host.clone();
            std::thread::spawn(move || loop {
                let Some((point, i)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let t = Instant::now();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_point(&point, &scenarios[i], &base, Some(&host))
                }));
                match r {
                    Ok(Ok(())) => {
                        eprintln!("failpoint {point}: ok ({:.1} s)", t.elapsed().as_secs_f64());
                        passed.lock().unwrap().push(point);
                    }
                    Ok(Err(e)) => failures.lock().unwrap().push(e),
                    Err(p) => failures.lock().unwrap().push(format!(
                        "{point}: panicked: {}",
                        p.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    )),
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut passed = passed.lock().unwrap().clone();
    passed.sort();
    eprintln!(
        "failpoints covered ({} of {total}, {:.0} s): {}",
        passed.len(),
        started.elapsed().as_secs_f64(),
        passed.join(" ")
    );
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    drop(registry);
}

/// `check-store` on a crafted root: each kind of finding, `--repair`, exit codes.
#[test]
fn check_store_reports_and_repairs() {
    let mut n = Node::new("fp-check");
    n.start(None);
    load_redo(&n);
    n.ok(&["create", "--name", "c", "busybox", "true"]);
    n.stop();
    let (code, out) = n.check_store(&["--deep"]);
    assert_eq!(code, 0, "{out}");

    // Leftovers: a temp file, an unreferenced layer, a container without a record.
    let layers = n.root.join("image/layers");
    std::fs::write(layers.join(".tmp-123-0"), b"x").unwrap();
    let orphan = layers.join("ab".repeat(32));
    std::fs::create_dir_all(orphan.join("diff")).unwrap();
    let stray = n.root.join("containers").join("cd".repeat(32));
    std::fs::create_dir_all(&stray).unwrap();
    let (code, out) = n.check_store(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("leftover: temp"), "{out}");
    assert!(out.contains("leftover: unreferenced layer"), "{out}");
    assert!(
        out.contains("leftover: container without a record"),
        "{out}"
    );
    assert!(!out.contains("problem:"), "{out}");
    let (code, out) = n.check_store(&["--repair"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("repaired: ").count(), 3, "{out}");
    assert!(!orphan.exists() && !stray.exists());

    // Problems: a layer file grown behind the store's back, a tag naming
    // an absent image. --repair cannot fix them: exit 1.
    let refs = n.root.join("image/references.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&refs).unwrap()).unwrap();
    v["Repositories"]["docker.io/library/ghost:latest"] =
        serde_json::json!(format!("sha256:{}", "ef".repeat(32)));
    std::fs::write(&refs, serde_json::to_vec(&v).unwrap()).unwrap();
    let (code, out) = n.check_store(&["--repair"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("problem: tag docker.io/library/ghost:latest"),
        "{out}"
    );
    let bin = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("diff/bin/busybox"))
        .find(|p| p.exists())
        .expect("busybox's layer");
    let mut f = std::fs::OpenOptions::new().append(true).open(&bin).unwrap();
    f.write_all(b"tampered").unwrap();
    let (code, out) = n.check_store(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bytes on disk, its record says"), "{out}");
    let (code, out) = n.check_store(&["--data-root"]);
    assert_ne!(code, 0, "{out}");
}
