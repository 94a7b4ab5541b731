//! Round 5's batch of fixes: each check fails on the code before its fix.
//! 1. A stop, kill or `rm -f` that lands while a restart policy's relaunch
//!    is launching cancels it (the container stays down, nothing is left).
//! 2. An exec's process joins the container's cgroup itself: the daemon
//!    opens no `cgroup.procs` for it (strace of the daemon alone).
//! 4. build.rs names only existing git paths (a git worktree's real HEAD).
//! 5. The classic builder's output for metadata steps, as dockerd 20.10's.
//! 6. Under `--userns-remap`, RUN layers and `docker export` carry the
//!    container's ids, not the host's.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{cgroup_dirs, Daemon};

fn inspect(d: &Daemon, id: &str) -> serde_json::Value {
    let r = d.request("GET", &format!("/containers/{id}/json"), None);
    assert_eq!(r.status, 200, "inspect {id}: {}", r.body);
    r.json()
}

fn create(d: &Daemon, body: &str) -> String {
    let r = d.request("POST", "/containers/create", Some(body));
    assert_eq!(r.status, 201, "create: {}", r.body);
    r.json()["Id"].as_str().unwrap_or_default().to_string()
}

// ------------------------------------------------ 1: stop during a relaunch

/// The freezer of container `id`'s cgroup (v1 `freezer/coracle/<id>` or
/// v2 `coracle/<id>`), frozen by the test before the daemon relaunches the
/// container: the launch's child joins its cgroup itself and is frozen
/// there, before its exec, so the launch stays in flight until `thaw`.
/// Dropping it thaws (a failed test leaves no frozen process).
struct Frozen {
    dir: PathBuf,
    v2: bool,
}

impl Frozen {
    fn path(id: &str) -> (PathBuf, bool) {
        let v1 = PathBuf::from("/sys/fs/cgroup/freezer");
        if v1.is_dir() {
            (v1.join("coracle").join(id), false)
        } else {
            (PathBuf::from("/sys/fs/cgroup/coracle").join(id), true)
        }
    }

    /// Make and freeze the cgroup now, if the daemon has not made it yet.
    fn try_freeze(id: &str) -> Option<Frozen> {
        let (dir, v2) = Frozen::path(id);
        if let Some(parent) = dir.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::create_dir(&dir).ok()?;
        let (file, value) = if v2 {
            ("cgroup.freeze", "1")
        } else {
            ("freezer.state", "FROZEN")
        };
        std::fs::write(dir.join(file), value).expect("freeze the cgroup");
        Some(Frozen { dir, v2 })
    }

    fn thaw(&self) {
        let (file, value) = if self.v2 {
            ("cgroup.freeze", "0")
        } else {
            ("freezer.state", "THAWED")
        };
        let _ = std::fs::write(self.dir.join(file), value);
    }

    fn procs(&self) -> String {
        std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default()
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.thaw();
    }
}

/// A `--restart always` container that exits at once, caught with its
/// policy relaunch in flight: the launch's child frozen in its cgroup
/// before its exec, the container still `restarting`.
fn relaunch_in_flight(d: &Daemon) -> (String, Frozen) {
    let id = create(
        d,
        r#"{"Image":"busybox","Cmd":["sh","-c","exit 3"],
            "HostConfig":{"NetworkMode":"none","RestartPolicy":{"Name":"always"}}}"#,
    );
    let r = d.request("POST", &format!("/containers/{id}/start"), None);
    assert_eq!(r.status, 204, "start: {}", r.body);
    // The back-off doubles from 100 ms: from the third restart on, the
    // cgroup is absent for at least 400 ms between an exit and the relaunch.
    let deadline = Instant::now() + Duration::from_secs(20);
    let frozen = loop {
        assert!(Instant::now() < deadline, "never caught between restarts");
        let j = inspect(d, &id);
        let between = j["State"]["Status"] == "restarting"
            && j["RestartCount"].as_u64().unwrap_or(0) >= 3
            && !Frozen::path(&id).0.exists();
        if between {
            if let Some(f) = Frozen::try_freeze(&id) {
                break f;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while frozen.procs().trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the relaunch never joined its cgroup"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let j = inspect(d, &id);
    assert_eq!(j["State"]["Status"], "restarting", "{j}");
    (id, frozen)
}

/// After `frozen` is thawed: the container stays exited (never running)
/// with its last exit code, and its cgroup goes.
fn stays_exited(d: &Daemon, id: &str, frozen: Frozen) {
    frozen.thaw();
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let j = inspect(d, id);
        assert_eq!(j["State"]["Status"], "exited", "{j}");
        assert_eq!(j["State"]["Pid"], 0, "{j}");
        assert_eq!(j["State"]["ExitCode"], 3, "{j}");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(frozen);
    cgroups_gone(id);
}

fn cgroups_gone(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = cgroup_dirs(id);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "cgroups left: {left:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn stop_kill_and_rm_cancel_a_policy_relaunch_in_flight() {
    let d = Daemon::with_busybox();

    // docker stop (the CLI) while the relaunch is launching.
    let (id, frozen) = relaunch_in_flight(&d);
    let o = d.docker(&["stop", "-t", "1", &id]);
    assert!(o.status.success(), "docker stop: {o:?}");
    stays_exited(&d, &id, frozen);
    // ... and a start afterwards runs it again, under its policy.
    let r = d.request("POST", &format!("/containers/{id}/start"), None);
    assert_eq!(r.status, 204, "start after the stop: {}", r.body);

    // POST /containers/{id}/kill (SIGKILL): a manual stop, as dockerd.
    let (id, frozen) = relaunch_in_flight(&d);
    let r = d.request("POST", &format!("/containers/{id}/kill"), None);
    assert_eq!(r.status, 204, "kill of a restarting container: {}", r.body);
    stays_exited(&d, &id, frozen);

    // docker rm -f: nothing left, not even the launch's process or cgroup.
    let (id, frozen) = relaunch_in_flight(&d);
    let r = d.request("DELETE", &format!("/containers/{id}?force=1"), None);
    assert_eq!(r.status, 204, "rm -f: {}", r.body);
    frozen.thaw();
    let r = d.request("GET", &format!("/containers/{id}/json"), None);
    assert_eq!(r.status, 404, "{}", r.body);
    drop(frozen);
    cgroups_gone(&id);
}

// ------------------------------------------- 2: exec joins its own cgroup

/// strace of one process (its own syscalls, not its children's), stopped
/// (and the trace read) by `finish`; killed on drop.
struct Strace {
    child: std::process::Child,
    out: PathBuf,
}

impl Strace {
    fn attach(pid: i32, out: PathBuf) -> Strace {
        let child = std::process::Command::new("strace")
            .args(["-qq", "-e", "trace=open,openat", "-o"])
            .arg(&out)
            .args(["-p", &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("strace must be installed (tests check the daemon's syscalls with it)");
        let s = Strace { child, out };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let traced = status
                .lines()
                .any(|l| l.starts_with("TracerPid:") && l.split_whitespace().nth(1) != Some("0"));
            if traced {
                return s;
            }
            assert!(Instant::now() < deadline, "strace never attached");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn finish(mut self) -> String {
        common::signal(self.child.id() as i32, 2);
        let _ = common::wait_timeout(&mut self.child, Duration::from_secs(10));
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Strace {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

#[test]
fn an_exec_joins_the_container_cgroup_itself() {
    let d = Daemon::with_busybox();
    let id = create(
        &d,
        r#"{"Image":"busybox","Cmd":["sleep","60"],"HostConfig":{"NetworkMode":"none"}}"#,
    );
    let r = d.request("POST", &format!("/containers/{id}/start"), None);
    assert_eq!(r.status, 204, "start: {}", r.body);
    let init = inspect(&d, &id)["State"]["Pid"].as_i64().unwrap_or(0);
    let r = d.request(
        "POST",
        &format!("/containers/{id}/exec"),
        Some(r#"{"Cmd":["sleep","30"]}"#),
    );
    assert_eq!(r.status, 201, "exec create: {}", r.body);
    let exec = r.json()["Id"].as_str().unwrap_or_default().to_string();

    let trace = Strace::attach(d.pid(), common::temp_dir("strace").join("trace"));
    let r = d.request(
        "POST",
        &format!("/exec/{exec}/start"),
        Some(r#"{"Detach":true}"#),
    );
    assert_eq!(r.status, 200, "exec start: {}", r.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let j = d.request("GET", &format!("/exec/{exec}/json"), None).json();
        if let Some(p) = j["Pid"].as_i64().filter(|p| *p > 0) {
            break p;
        }
        assert!(Instant::now() < deadline, "the exec never ran: {j}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = trace.finish();
    // The trace saw the exec's launch (the daemon opens the container's
    // PID namespace for the fork) ...
    assert!(text.contains(&format!("/proc/{init}/ns/pid")), "{text}");
    // ... and no cgroup.procs: the process moved itself.
    assert!(
        !text.contains("cgroup.procs"),
        "the daemon wrote the exec's cgroup:\n{text}"
    );
    // It is in the container's cgroup, in every hierarchy.
    let cg = |p: i64| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default();
    let (mine, its) = (cg(pid), cg(init));
    assert!(its.contains(&format!("/coracle/{id}")), "{its}");
    assert_eq!(mine, its, "exec {pid} vs init {init}");
}

// ------------------------------------------- 4: build.rs watches real paths

/// Every path the build script asks cargo to watch exists (a missing one
/// makes cargo rerun it, and rebuild the crate, on every build: `.git/HEAD`
/// in a git worktree, where `.git` is a file), and in a git checkout the
/// checkout's own HEAD is among them.
#[test]
fn build_script_watches_only_existing_git_paths() {
    let output = std::path::Path::new(env!("OUT_DIR")).join("../output");
    let text = std::fs::read_to_string(&output).expect("the build script's output");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let watched: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.strip_prefix("cargo:rerun-if-changed="))
        .map(|p| root.join(p))
        .collect();
    for p in &watched {
        assert!(p.exists(), "watched path {} does not exist", p.display());
    }
    let git_dir = std::process::Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Some(dir) = git_dir {
        let head = std::fs::canonicalize(PathBuf::from(dir).join("HEAD")).expect("HEAD");
        assert!(
            watched
                .iter()
                .any(|p| std::fs::canonicalize(p).is_ok_and(|p| p == head)),
            "HEAD ({}) not watched: {watched:?}",
            head.display()
        );
    }
}

// ------------------------------------- 5: classic builder's metadata steps

/// Every instruction kind: dockerd 20.10 (`DOCKER_BUILDKIT=0`) commits each
/// metadata step from a container it creates and removes, so its output
/// has ` ---> Running in` and `Removing intermediate container` for them
/// too; COPY and ADD make their layer without one.
const EVERY_KIND: &str = "FROM busybox\n\
ARG A=1\n\
ENV E=1\n\
LABEL l=1\n\
MAINTAINER me\n\
WORKDIR /w\n\
EXPOSE 80\n\
USER 0\n\
VOLUME /v\n\
STOPSIGNAL SIGTERM\n\
HEALTHCHECK CMD true\n\
SHELL [\"/bin/sh\", \"-c\"]\n\
ONBUILD RUN true\n\
ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
CMD [\"true\"]\n\
COPY f /f\n\
ADD f /g\n\
RUN true\n";

/// The build's output with IDs (12 hex digits) as `<id>`.
fn without_ids(out: &str) -> String {
    out.lines()
        .map(|l| {
            let hexid = |w: &str| w.len() == 12 && w.bytes().all(|b| b.is_ascii_hexdigit());
            let words: Vec<&str> = l
                .split(' ')
                .map(|w| if hexid(w) { "<id>" } else { w })
                .collect();
            words.join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// dockerd 20.10's output for `EVERY_KIND` with `--label built=1`, from
/// `Step 1` to the last image ID, IDs as `<id>` (recorded side by side).
const DOCKERD_OUTPUT: &str = r#"Step 1/19 : FROM busybox
 ---> <id>
Step 2/19 : ARG A=1
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 3/19 : ENV E=1
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 4/19 : LABEL l=1
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 5/19 : MAINTAINER me
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 6/19 : WORKDIR /w
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 7/19 : EXPOSE 80
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 8/19 : USER 0
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 9/19 : VOLUME /v
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 10/19 : STOPSIGNAL SIGTERM
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 11/19 : HEALTHCHECK CMD true
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 12/19 : SHELL ["/bin/sh", "-c"]
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 13/19 : ONBUILD RUN true
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 14/19 : ENTRYPOINT ["/bin/sh", "-c"]
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 15/19 : CMD ["true"]
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 16/19 : COPY f /f
 ---> <id>
Step 17/19 : ADD f /g
 ---> <id>
Step 18/19 : RUN true
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>
Step 19/19 : LABEL built=1
 ---> Running in <id>
Removing intermediate container <id>
 ---> <id>"#;

#[test]
fn metadata_steps_print_dockerd_container_lines() {
    let d = Daemon::with_busybox();
    let ctx = common::build::context("fix5-kinds", &[("f", "f\n"), ("Dockerfile", EVERY_KIND)]);
    let dir = ctx.to_str().unwrap_or("");
    let o = common::build::docker_build(&d, &["--label", "built=1", "-t", "every", dir]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", common::build::text(&o));
    let from = out.find("Step 1/").unwrap_or(0);
    let to = out.find("Successfully built").unwrap_or(out.len());
    assert_eq!(
        without_ids(out[from..to].trim_end()),
        DOCKERD_OUTPUT,
        "{out}"
    );
    // Each step's container line names one ID, its removal the same.
    let ran: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix(" ---> Running in "))
        .collect();
    let gone: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("Removing intermediate container "))
        .collect();
    assert_eq!(ran, gone);
    // The cached rebuild names no container, as dockerd's.
    let o = common::build::docker_build(&d, &["--label", "built=1", "-t", "every", dir]);
    let again = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{again}");
    assert_eq!(again.matches(" ---> Using cache").count(), 18, "{again}");
    assert!(
        !again.contains("Running in") && !again.contains("Removing"),
        "{again}"
    );
    let _ = std::fs::remove_dir_all(&ctx);
}

// ------------------------------ 6: userns-remap: builds and export unmapped

/// The test's subordinate id files (removed on drop).
struct SubIds(PathBuf);

impl Drop for SubIds {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// uid:gid of each named entry of a tar stream.
fn tar_owners(tar: &[u8], names: &[&str]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    let mut found = std::collections::BTreeMap::new();
    for e in a.entries().expect("tar entries") {
        let e = e.expect("tar entry");
        let path = e.path().expect("entry path").to_string_lossy().into_owned();
        let h = e.header();
        let owner = format!("{}:{}", h.uid().unwrap_or(0), h.gid().unwrap_or(0));
        found.insert(path.trim_start_matches("./").to_string(), owner);
    }
    names
        .iter()
        .map(|n| {
            found
                .get(*n)
                .cloned()
                .unwrap_or_else(|| format!("{n} missing"))
        })
        .collect()
}

#[test]
fn userns_remap_builds_and_exports_carry_container_ids() {
    // As tests/userns.rs: the subordinate ids come from the test's files
    // through CORACLE_DEBUG_SUBID_DIR, which only a debug build reads.
    if std::env::var("CORACLE_BIN").is_ok_and(|b| !b.is_empty()) {
        eprintln!("skipped: CORACLE_BIN is set (a release binary ignores CORACLE_DEBUG_SUBID_DIR)");
        return;
    }
    let subids = SubIds(common::temp_dir("fix5-subids"));
    std::fs::write(subids.0.join("subuid"), "dockremap:200000:65536\n").unwrap();
    std::fs::write(subids.0.join("subgid"), "dockremap:200000:65536\n").unwrap();
    // Only the remapped daemon reads it (the other tests' daemons do not
    // remap).
    std::env::set_var("CORACLE_DEBUG_SUBID_DIR", &subids.0);
    let d = Daemon::with_config_and_busybox(r#"{"userns-remap": "default", "bridge": "none"}"#);

    // RUN's files are the container's root's (and 5:6's) in the image;
    // COPY's keep the ids they were given.
    let ctx = common::build::context(
        "fix5-userns",
        &[
            ("f", "f\n"),
            (
                "Dockerfile",
                "FROM busybox\n\
                 COPY f /copied\n\
                 COPY --chown=7:8 f /chowned\n\
                 RUN touch /run-root /run-five && chown 5:6 /run-five\n",
            ),
        ],
    );
    let o = common::build::docker_build(
        &d,
        &[
            "-t",
            "remapped-build",
            "--network",
            "none",
            ctx.to_str().unwrap_or(""),
        ],
    );
    let _ = std::fs::remove_dir_all(&ctx);
    assert!(o.status.success(), "{}", common::build::text(&o));
    // Outside the remapping, a container shows the ids the layers hold.
    let o = d.docker(&[
        "run",
        "--rm",
        "--userns",
        "host",
        "--network",
        "none",
        "remapped-build",
        "stat",
        "-c",
        "%n %u:%g",
        "/run-root",
        "/run-five",
        "/copied",
        "/chowned",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "/run-root 0:0\n/run-five 5:6\n/copied 0:0\n/chowned 7:8\n",
        "{}",
        common::build::text(&o)
    );

    // docker export: the container's view of its owners.
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "touch /ex-root /ex-five && chown 5:6 /ex-five && touch /ready && sleep 60",
    ]);
    assert!(o.status.success(), "{}", common::build::text(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d
        .docker(&["exec", "ex", "test", "-e", "/ready"])
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the container never made its files"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = d.docker(&["export", "ex"]);
    assert!(o.status.success(), "{}", common::build::text(&o));
    assert_eq!(
        tar_owners(&o.stdout, &["ex-root", "ex-five", "bin/busybox"]),
        ["0:0", "5:6", "0:0"]
    );
}
