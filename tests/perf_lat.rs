//! What the start path's latency work must keep true (issue 16, latency
//! half). Timings themselves are measured by `scripts/bench.sh`, never
//! here; these are the correctness checks of the faster paths, on one
//! daemon:
//! - the container's first process joins its cgroup itself (every v1
//!   hierarchy, or the v2 group), before it runs the program;
//! - the default seccomp program is compiled once per capability set:
//!   containers started one after another each get the filter their own
//!   settings ask for (and `unconfined` none);
//! - the generated /etc files (not fsynced at create) are written again at
//!   start when a crash left one empty;
//! - no `Running` record is written once a start succeeds (the pending
//!   record, with the start time, stands for it): after `kill -9` the run
//!   shows as exited 255 with its StartedAt, and `always` runs again.

mod common;

use common::cli::*;
use common::Daemon;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Lines of /proc/<pid>/cgroup: (controllers, path).
fn cgroups_of(pid: i64) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("read cgroup");
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, ctrl, path) = (it.next()?, it.next()?, it.next()?);
            Some((ctrl.to_string(), path.to_string()))
        })
        .collect()
}

fn seccomp_mode(pid: i64) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

fn pid_of(d: &Daemon, name: &str) -> i64 {
    state(d, name)["Pid"].as_i64().unwrap_or(0)
}

fn run_sleeper(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name, "--network", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sleep", "300"]);
    ok(d, &args).trim().to_string()
}

fn unix_secs_of(rfc3339: &str) -> i64 {
    let o = std::process::Command::new("date")
        .args(["-u", "-d", rfc3339, "+%s"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn faster_start_path_keeps_cgroups_seccomp_and_recovery_right() {
    let mut d = Daemon::with_busybox();
    d.has_containers = true;

    // Three starts in a row: the default filter (cached after the first),
    // the same again, and unconfined.
    let a = run_sleeper(&d, "a", &[]);
    let b = run_sleeper(&d, "b", &[]);
    let _u = run_sleeper(&d, "u", &["--security-opt", "seccomp=unconfined"]);
    let (pa, pb, pu) = (pid_of(&d, "a"), pid_of(&d, "b"), pid_of(&d, "u"));
    assert!(pa > 0 && pb > 0 && pu > 0);
    assert_eq!(seccomp_mode(pa), "2", "a: default profile");
    assert_eq!(seccomp_mode(pb), "2", "b: default profile (cached)");
    assert_eq!(seccomp_mode(pu), "0", "u: unconfined");

    // Each first process sits in its own container's cgroup everywhere.
    for (id, pid) in [(&a, pa), (&b, pb)] {
        let groups = cgroups_of(pid);
        let mut placed = 0;
        for (ctrl, path) in &groups {
            // The named systemd hierarchy and, beside v1 controllers, the
            // empty unified one are not ours to set.
            let v1_ours = !ctrl.is_empty() && !ctrl.starts_with("name=");
            let v2_only = groups.len() == 1 && ctrl.is_empty();
            if v1_ours || v2_only {
                assert!(
                    path.ends_with(&format!("/coracle/{id}")),
                    "{id}: {ctrl} cgroup is {path}"
                );
                placed += 1;
            }
        }
        assert!(placed > 0, "{id}: in no cgroup of ours: {groups:?}");
        // And so are its children (it joined before exec'ing the program).
        let procs = common::cgroup_dirs(id)
            .into_iter()
            .map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default())
            .collect::<Vec<_>>();
        assert!(
            procs
                .iter()
                .all(|p| p.lines().any(|l| l.trim() == pid.to_string())),
            "{id}: pid {pid} missing from a cgroup.procs: {procs:?}"
        );
    }

    // The generated /etc files are not fsynced at create: one a crash left
    // empty is written again by the start.
    let e = ok(
        &d,
        &[
            "create",
            "--name",
            "etc",
            "--network",
            "none",
            "busybox",
            "cat",
            "/etc/hosts",
        ],
    )
    .trim()
    .to_string();
    let hosts = d.data_root.join("containers").join(&e).join("hosts");
    std::fs::write(&hosts, b"").expect("empty the hosts file");
    let out = ok(&d, &["start", "-a", "etc"]);
    assert!(
        out.contains("localhost"),
        "/etc/hosts after the start: {out:?}"
    );

    // A started container's record is the pending one: after kill -9 the
    // run is exited 255 with the StartedAt of the start; `always` runs again.
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    ok(&d, &["rm", "-f", "a", "b", "u"]);
    run_sleeper(&d, "plain", &[]);
    run_sleeper(&d, "al", &["--restart", "always"]);
    let started = state(&d, "plain")["StartedAt"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let old_al = pid_of(&d, "al");
    d.kill9();
    d.restart();
    let st = state(&d, "plain");
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["ExitCode"], 255, "{st}");
    let recorded = st["StartedAt"].as_str().unwrap_or("");
    let secs = unix_secs_of(recorded);
    assert!(
        secs >= before - 2 && (secs - unix_secs_of(&started)).abs() <= 2,
        "StartedAt after recovery {recorded}, the run started at {started}"
    );
    wait_for("al running again", 20, || {
        let s = state(&d, "al");
        s["Running"] == true && s["Pid"].as_i64().unwrap_or(0) != old_al
    });
    let st = state(&d, "al");
    assert!(st["Pid"].as_i64().unwrap_or(0) > 0, "{st}");
    // Stopped and started again normally, it records a fresh run.
    ok(&d, &["stop", "-t", "0", "al"]);
    assert_eq!(state(&d, "al")["Running"], false);
    std::thread::sleep(Duration::from_millis(1100));
    ok(&d, &["start", "al"]);
    let again = state(&d, "al");
    assert_eq!(again["Running"], true, "{again}");
    assert!(
        unix_secs_of(again["StartedAt"].as_str().unwrap_or("")) > secs,
        "{again}"
    );
}
