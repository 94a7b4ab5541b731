//! The container runtime through the real docker CLI and raw HTTP: run,
//! lifecycle, isolation inside the container, resource limits, restart
//! policies, logs, filters, API errors, and daemon crash / shutdown.
//!
//! Every test starts its own daemon with `busybox:latest` loaded and removes
//! its containers at the end (the harness's Drop does it too on failure, so
//! no process or cgroup outlives a test).

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// Stderr of a docker command that must fail.
fn fails(d: &Daemon, args: &[&str]) -> String {
    let o = dk(d, args);
    assert!(
        !o.status.success(),
        "`docker {}` should fail: {}",
        args.join(" "),
        show(&o)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

fn v1_cgroup(controller: &str, id: &str, file: &str) -> std::path::PathBuf {
    std::path::Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("coracle")
        .join(id)
        .join(file)
}

fn read_trim(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Events of one container, in order.
fn container_events(d: &Daemon, id: &str) -> Vec<Value> {
    d.events(Some(&format!(r#"{{"container":["{id}"]}}"#)))
}

fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["Action"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Whether host process `pid` is gone (or only a zombie awaiting its reaper).
fn process_gone(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
    }
}

// ------------------------------------------------------------ foreground run

#[test]
fn run_reports_exit_code_and_splits_stdout_from_stderr() {
    let d = Daemon::with_busybox();

    let o = dk(&d, &["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));

    assert_eq!(ok(&d, &["run", "--rm", "busybox", "echo", "hi"]), "hi\n");

    let o = dk(
        &d,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; echo more-out",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "to-out\nmore-out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "to-err\n");

    // --rm: the CLI waits for removal, so nothing is left.
    assert_eq!(
        ok(&d, &["ps", "-aq"]).trim(),
        "",
        "--rm containers must be gone"
    );
}

#[test]
fn wait_returns_the_exit_code_even_when_called_before_start() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &["run", "-d", "busybox", "sh", "-c", "sleep 0.3; exit 7"],
    );
    assert_eq!(ok(&d, &["wait", id.trim()]).trim(), "7");

    // Raw API: wait for the next exit of a created container, then start it.
    let id = ok(&d, &["create", "busybox", "sh", "-c", "exit 5"])
        .trim()
        .to_string();
    let mut s = d.connect();
    s.write_all(
        format!(
            "POST /containers/{id}/wait?condition=next-exit HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let r = d.request("POST", &format!("/containers/{id}/start"), None);
    assert_eq!(r.status, 204, "{r:?}");
    let resp = common::parse_response(&common::read_all(&mut s));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.json()["StatusCode"], 5, "{resp:?}");
    ok(&d, &["rm", "-f", &id]);
}

// ---------------------------------------------------------------- lifecycle

#[test]
fn lifecycle_ps_top_pause_stop_start_restart_rename_rm() {
    let d = Daemon::with_busybox();
    let id = ok(&d, &["run", "-d", "--name", "s", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id:?}");

    let ps = ok(
        &d,
        &["ps", "--format", "{{.Names}}|{{.Status}}|{{.Command}}"],
    );
    let row = lines(&ps)
        .into_iter()
        .find(|l| l.starts_with("s|"))
        .unwrap_or_else(|| panic!("ps: {ps}"));
    assert!(row.contains("|Up "), "ps row: {row}");

    let top = ok(&d, &["top", "s"]);
    assert!(top.contains("sleep 300"), "top: {top}");
    assert!(top.contains("PID"), "top header: {top}");

    // pause / unpause through the freezer cgroup
    ok(&d, &["pause", "s"]);
    let ps = ok(&d, &["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(ps.contains("(Paused)"), "ps after pause: {ps}");
    assert_eq!(
        read_trim(&v1_cgroup("freezer", &id, "freezer.state")),
        "FROZEN"
    );
    assert_eq!(state(&d, "s")["Paused"], true);
    ok(&d, &["unpause", "s"]);
    let ps = ok(&d, &["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(!ps.contains("(Paused)"), "ps after unpause: {ps}");
    assert_eq!(
        read_trim(&v1_cgroup("freezer", &id, "freezer.state")),
        "THAWED"
    );

    // sleep as PID 1 ignores SIGTERM: stop waits the 2 s, then SIGKILL.
    let t = Instant::now();
    ok(&d, &["stop", "-t", "2", "s"]);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
        "stop -t 2 took {took:?}"
    );
    let st = state(&d, "s");
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(st["ExitCode"], 137, "{st}");
    assert_eq!(st["Running"], false, "{st}");
    let ps = ok(&d, &["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(ps.contains("s|Exited (137)"), "ps -a: {ps}");

    ok(&d, &["start", "s"]);
    let st = state(&d, "s");
    assert_eq!(st["Status"], "running", "{st}");
    let pid1 = st["Pid"].as_i64().unwrap();
    assert!(pid1 > 0);

    let t = Instant::now();
    ok(&d, &["restart", "-t", "1", "s"]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "restart -t 1 took {:?}",
        t.elapsed()
    );
    let st = state(&d, "s");
    assert_eq!(st["Status"], "running", "{st}");
    let pid2 = st["Pid"].as_i64().unwrap();
    assert!(
        pid2 > 0 && pid2 != pid1,
        "restart must give a new PID ({pid1} -> {pid2})"
    );
    wait_for("old PID to be gone", 5, || process_gone(pid1));

    ok(&d, &["rename", "s", "s2"]);
    assert_eq!(inspect(&d, "s2")["Name"], "/s2");
    assert_eq!(d.request("GET", "/containers/s/json", None).status, 404);

    let evs = actions(&container_events(&d, &id));
    for a in [
        "create", "start", "pause", "unpause", "kill", "die", "stop", "restart", "rename",
    ] {
        assert!(evs.iter().any(|e| e == a), "no {a} event in {evs:?}");
    }

    ok(&d, &["rm", "-f", "s2"]);
    assert_eq!(d.request("GET", "/containers/s2/json", None).status, 404);
    wait_for("cgroups of s2 to be removed", 5, || {
        common::cgroup_dirs(&id).is_empty()
    });
    assert!(process_gone(pid2), "process {pid2} survived rm -f");
    let evs = actions(&container_events(&d, &id));
    assert_eq!(evs.last().map(String::as_str), Some("destroy"), "{evs:?}");
}

#[test]
fn rm_force_of_a_running_container_emits_kill_die_destroy_without_stop() {
    // dockerd's rm -f calls daemon.Kill: events kill (signal 9), die, destroy;
    // `stop` is only for `docker stop`.
    let d = Daemon::with_busybox();
    let id = ok(&d, &["run", "-d", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    ok(&d, &["rm", "-f", &id]);
    let evs = container_events(&d, &id);
    assert_eq!(
        actions(&evs),
        ["create", "start", "kill", "die", "destroy"],
        "events of rm -f on a running container"
    );
    assert_eq!(evs[2]["Actor"]["Attributes"]["signal"], "9");
}

#[test]
fn kill_with_usr1_reaches_the_trap_and_the_event_names_the_signal() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "k",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-usr1' USR1; echo ready; while true; do sleep 0.1; done",
        ],
    )
    .trim()
    .to_string();
    wait_for("the trap to be set", 10, || {
        ok(&d, &["logs", "k"]).contains("ready")
    });
    ok(&d, &["kill", "-s", "USR1", "k"]);
    wait_for("got-usr1 in the logs", 10, || {
        ok(&d, &["logs", "k"]).contains("got-usr1")
    });
    assert_eq!(state(&d, "k")["Status"], "running", "USR1 must not stop it");

    let evs = container_events(&d, &id);
    let kill = evs
        .iter()
        .find(|e| e["Action"] == "kill")
        .unwrap_or_else(|| panic!("no kill event: {evs:?}"));
    assert_eq!(kill["Actor"]["Attributes"]["signal"], "10", "{kill}");
    assert_eq!(kill["Actor"]["Attributes"]["name"], "k", "{kill}");
    assert_eq!(kill["Type"], "container", "{kill}");

    // default signal KILL; then kill on a stopped container fails (409)
    ok(&d, &["kill", "k"]);
    let st = wait_exited(&d, "k", 5);
    assert_eq!(st["ExitCode"], 137, "{st}");
    let evs = container_events(&d, &id);
    let die = evs
        .iter()
        .rev()
        .find(|e| e["Action"] == "die")
        .expect("die event");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "137", "{die}");
    let err = fails(&d, &["kill", "k"]);
    assert!(err.contains("is not running"), "{err}");
    ok(&d, &["rm", "k"]);
}

#[test]
fn restart_always_restarts_when_the_process_dies_but_not_after_docker_stop_or_kill() {
    // dockerd (daemon/kill.go, killWithSignal): with no StopSignal configured,
    // or for SIGKILL, every kill calls container.ExitOnNext(), which cancels
    // the restart manager, and sets HasBeenManuallyStopped. So `docker kill`
    // and `docker stop` keep an `always` container down (until `docker start`
    // or a daemon restart); a process that dies on its own is restarted.
    let d = Daemon::with_busybox();
    let args = [
        "run",
        "-d",
        "--name",
        "al",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "300",
    ];
    ok(&d, &args);
    let restarted = |old: i64, what: &str| {
        let mut st = Value::Null;
        wait_for(what, 10, || {
            st = state(&d, "al");
            st["Status"] == "running" && st["Pid"].as_i64().is_some_and(|p| p > 0 && p != old)
        });
    };
    let stays_down = |what: &str| {
        std::thread::sleep(Duration::from_millis(800));
        let st = state(&d, "al");
        assert_eq!(st["Status"], "exited", "{what}: {st}");
    };

    // 1. the process dies on its own (killed from the host): restarted
    let pid1 = state(&d, "al")["Pid"].as_i64().unwrap();
    common::signal(pid1 as i32, 9);
    restarted(
        pid1,
        "al to be restarted after its process was killed from the host",
    );
    assert_eq!(inspect(&d, "al")["RestartCount"], 1);

    // 2. docker stop: stays down
    ok(&d, &["stop", "-t", "0", "al"]);
    stays_down("docker stop must keep an always container down");

    // 3. docker start clears the manual stop: a later crash restarts it again
    ok(&d, &["start", "al"]);
    let pid2 = state(&d, "al")["Pid"].as_i64().unwrap();
    common::signal(pid2 as i32, 9);
    restarted(pid2, "al to be restarted after start + host kill");

    // 4. docker kill (SIGKILL): dockerd cancels the restart policy
    ok(&d, &["kill", "al"]);
    stays_down("docker kill must keep an always container down, as in dockerd");
    ok(&d, &["rm", "-f", "al"]);
}

#[test]
fn restart_on_failure_3_restarts_exactly_three_times() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "rf",
            "--restart",
            "on-failure:3",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ],
    )
    .trim()
    .to_string();
    // back-off 100 + 200 + 400 ms
    let mut info = Value::Null;
    wait_for("three restarts and a final exit", 15, || {
        info = inspect(&d, "rf");
        info["RestartCount"] == 3 && info["State"]["Status"] == "exited"
    });
    std::thread::sleep(Duration::from_millis(1500)); // a 4th restart would be at +800 ms
    let info = inspect(&d, "rf");
    assert_eq!(info["RestartCount"], 3, "{}", info["State"]);
    assert_eq!(info["State"]["Status"], "exited", "{}", info["State"]);
    assert_eq!(info["State"]["ExitCode"], 1, "{}", info["State"]);
    let evs = actions(&container_events(&d, &id));
    let starts = evs.iter().filter(|a| *a == "start").count();
    let dies = evs.iter().filter(|a| *a == "die").count();
    assert_eq!(starts, 4, "exactly 4 start events: {evs:?}");
    assert_eq!(dies, 4, "exactly 4 die events: {evs:?}");
    ok(&d, &["rm", "rf"]);
}

#[test]
fn prune_removes_stopped_containers_only() {
    let d = Daemon::with_busybox();
    let done = ok(&d, &["run", "-d", "--name", "done", "busybox", "true"])
        .trim()
        .to_string();
    let live = ok(
        &d,
        &["run", "-d", "--name", "live", "busybox", "sleep", "300"],
    )
    .trim()
    .to_string();
    wait_exited(&d, "done", 10);
    let out = ok(&d, &["container", "prune", "-f"]);
    assert!(
        out.contains(&done),
        "prune output lists the removed ID: {out}"
    );
    assert!(!out.contains(&live), "{out}");
    let all = ok(&d, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(lines(&all), vec!["live"], "after prune: {all}");
    assert!(
        common::cgroup_dirs(&done).is_empty(),
        "pruned container left cgroups"
    );
    let evs = actions(&container_events(&d, &done));
    assert!(evs.contains(&"destroy".to_string()), "{evs:?}");
    ok(&d, &["rm", "-f", "live"]);
}

// ----------------------------------------------------------- diff and export

#[test]
fn diff_lists_only_the_containers_own_changes() {
    let d = Daemon::with_busybox();
    let o = dk(
        &d,
        &[
            "run",
            "--name",
            "df",
            "busybox",
            "sh",
            "-c",
            "echo x>/new; rm /bin/true",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    let out = ok(&d, &["diff", "df"]);
    let got: BTreeSet<&str> = lines(&out).into_iter().collect();
    let want: BTreeSet<&str> = ["C /bin", "D /bin/true", "A /new"].into_iter().collect();
    assert_eq!(got, want, "docker diff output:\n{out}");
    ok(&d, &["rm", "df"]);
}

#[test]
fn export_of_the_whiteouts_fixture_has_dockerds_file_set() {
    let mut d = Daemon::start();
    d.has_containers = true;
    let o = dk(
        &d,
        &[
            "load",
            "-i",
            &common::fixture("whiteouts-crafted.tar")
                .display()
                .to_string(),
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    ok(&d, &["create", "--name", "ex", "fixture/whiteouts:v1"]);
    let out = d.dir.join("export.tar");
    ok(&d, &["export", "-o", out.to_str().unwrap(), "ex"]);

    let norm = |p: &str| p.trim_start_matches("./").trim_end_matches('/').to_string();
    let mut got = BTreeSet::new();
    let mut links = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&out).unwrap());
    for e in ar.entries().expect("export is a tar") {
        let e = e.expect("tar entry");
        let path = norm(&e.path().unwrap().to_string_lossy());
        if let Ok(Some(t)) = e.link_name() {
            links.push(format!("{path} -> {}", t.to_string_lossy()));
        }
        if !path.is_empty() {
            got.insert(path);
        }
    }
    let expected =
        std::fs::read_to_string(common::fixture("whiteouts-expected-export.txt")).unwrap();
    let want: BTreeSet<String> = expected
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(norm)
        .collect();
    assert_eq!(got, want, "export file set differs from dockerd's");
    assert!(
        links.contains(&"link -> data/b.txt".to_string()),
        "{links:?}"
    );
    assert!(
        links.contains(&"etc/mtab -> /proc/mounts".to_string()),
        "{links:?}"
    );
    ok(&d, &["rm", "ex"]);
}

// ------------------------------------------------------------- resources

#[test]
fn update_memory_reaches_the_cgroup_and_inspect() {
    let d = Daemon::with_busybox();
    let id = ok(&d, &["run", "-d", "--name", "u", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    ok(
        &d,
        &["update", "--memory", "32m", "--memory-swap", "64m", "u"],
    );
    assert_eq!(
        read_trim(&v1_cgroup("memory", &id, "memory.limit_in_bytes")),
        "33554432"
    );
    let memsw = v1_cgroup("memory", &id, "memory.memsw.limit_in_bytes");
    if memsw.exists() {
        assert_eq!(read_trim(&memsw), "67108864");
    }
    let hc = inspect(&d, "u")["HostConfig"].clone();
    assert_eq!(hc["Memory"], 33554432, "{hc}");
    assert_eq!(hc["MemorySwap"], 67108864, "{hc}");
    ok(&d, &["rm", "-f", "u"]);
}

#[test]
fn memory_limit_oom_kills_and_reports_it() {
    let d = Daemon::with_busybox();
    let o = dk(
        &d,
        &[
            "run",
            "--name",
            "oom",
            "--memory",
            "16m",
            "--memory-swap",
            "16m",
            "busybox",
            "sh",
            "-c",
            "x=$(head -c 41943040 /dev/zero | tr '\\0' a); echo survived ${#x}",
        ],
    );
    assert_eq!(o.status.code(), Some(137), "{}", show(&o));
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("survived"),
        "{}",
        show(&o)
    );
    let info = inspect(&d, "oom");
    assert_eq!(info["State"]["OOMKilled"], true, "{}", info["State"]);
    assert_eq!(info["State"]["ExitCode"], 137, "{}", info["State"]);
    assert_eq!(info["HostConfig"]["Memory"], 16777216);
    let id = info["Id"].as_str().unwrap().to_string();
    let evs = actions(&container_events(&d, &id));
    assert!(evs.contains(&"oom".to_string()), "no oom event: {evs:?}");
    ok(&d, &["rm", "oom"]);
}

#[test]
fn pids_limit_caps_a_fork_storm_and_the_container_survives() {
    let d = Daemon::with_busybox();
    // The inner shell forks sleepers until fork fails (and then dies); the
    // outer shell (PID 1) carries on.
    let script = "sh -c 'i=0; while [ $i -lt 40 ]; do sleep 3 & i=$((i+1)); done' 2>/dev/null; \
                  echo survived; sleep 1; echo end";
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "pl",
            "--pids-limit",
            "10",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    )
    .trim()
    .to_string();
    let max = v1_cgroup("pids", &id, "pids.max");
    let current = v1_cgroup("pids", &id, "pids.current");
    let mut seen_max = 0u64;
    let mut checked_limit = false;
    wait_for("the fork storm container to finish", 20, || {
        if let Ok(m) = std::fs::read_to_string(&max) {
            assert_eq!(m.trim(), "10", "pids.max while running");
            checked_limit = true;
        }
        if let Ok(c) = std::fs::read_to_string(&current) {
            let n: u64 = c.trim().parse().unwrap();
            seen_max = seen_max.max(n);
            assert!(n <= 10, "pids.current = {n} exceeds the limit");
        }
        state(&d, "pl")["Status"] == "exited"
    });
    assert!(checked_limit, "never saw {}", max.display());
    assert!(
        seen_max >= 5,
        "the storm never got going (max pids.current {seen_max})"
    );
    let st = state(&d, "pl");
    assert_eq!(st["ExitCode"], 0, "{st}");
    let logs = ok(&d, &["logs", "pl"]);
    assert!(
        logs.contains("survived") && logs.contains("end"),
        "logs: {logs}"
    );
    assert_eq!(inspect(&d, "pl")["HostConfig"]["PidsLimit"], 10);
    ok(&d, &["rm", "pl"]);
}

// -------------------------------------------------------- inside a container

#[test]
fn inside_the_container_pid1_hostname_caps_and_isolation() {
    let d = Daemon::with_busybox();
    let script = "echo pid=$$; echo host=$(hostname); grep -E '^Cap(Eff|Bnd):' /proc/self/status; \
                  ps > /tmp/ps.txt; echo pslines=$(wc -l < /tmp/ps.txt); \
                  echo links=$(ip -o link | cut -d: -f2 | tr -d ' ' | tr '\\n' ,); \
                  echo ===; cat /proc/self/mountinfo";
    let out = ok(&d, &["run", "--name", "in", "busybox", "sh", "-c", script]);
    let id = inspect(&d, "in")["Id"].as_str().unwrap().to_string();
    let (head, mountinfo) = out.split_once("===\n").unwrap_or_else(|| panic!("{out}"));
    let field = |k: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {head}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("pid="), "1", "the command is PID 1");
    assert_eq!(field("host="), &id[..12], "hostname is the short ID");
    assert_eq!(field("CapEff:"), "00000000a80425fb");
    assert_eq!(field("CapBnd:"), "00000000a80425fb");
    let ps: usize = field("pslines=").parse().unwrap();
    assert!(ps <= 3, "host processes visible: {ps} ps lines");
    // The default network is the bridge: lo and the container end of a veth.
    let links = field("links=");
    assert!(
        links.starts_with("lo,eth0@if") && links.matches(',').count() == 2,
        "{links}"
    );
    for l in mountinfo.lines() {
        let mountpoint = l.split_whitespace().nth(4).unwrap_or("");
        assert!(!mountpoint.starts_with("/work"), "host mount visible: {l}");
    }
    assert!(
        mountinfo.lines().count() < 40,
        "too many mounts inside:\n{mountinfo}"
    );
    let net = inspect(&d, "in")["NetworkSettings"]["Networks"].clone();
    assert!(
        net.get("bridge").is_some(),
        "default network is bridge: {net}"
    );
    ok(&d, &["rm", "in"]);
}

#[test]
fn run_options_user_workdir_env_binds_readonly_and_tmpfs() {
    let d = Daemon::with_busybox();
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        ok(&d, &all)
    };

    assert_eq!(
        run(&["-u", "nobody", "busybox", "sh", "-c", "id -u; id -g"]),
        "65534\n65534\n"
    );
    assert_eq!(
        run(&[
            "-w",
            "/work",
            "busybox",
            "sh",
            "-c",
            "pwd; test -d /work && echo dir"
        ]),
        "/work\ndir\n"
    );
    let env = run(&["-e", "A=b", "busybox", "env"]);
    assert!(lines(&env).contains(&"A=b"), "env: {env}");
    assert!(
        env.lines().any(|l| l.starts_with("PATH=/usr/local/sbin")),
        "env: {env}"
    );
    assert!(
        env.lines()
            .any(|l| l.starts_with("HOSTNAME=") && l.len() == 9 + 12),
        "env: {env}"
    );
    assert!(lines(&env).contains(&"HOME=/root"), "env: {env}");

    // -v host:ctr:ro
    let host = d.dir.join("bind");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "hello\n").unwrap();
    let spec = format!("{}:/x:ro", host.display());
    let out = run(&[
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /x/f; if echo y > /x/g 2>/dev/null; then echo WROTE; else echo ro-ok; fi",
    ]);
    assert_eq!(out, "hello\nro-ok\n");
    assert!(!host.join("g").exists(), "a :ro bind was written through");
    // read-write bind writes through
    let spec = format!("{}:/x", host.display());
    run(&["-v", &spec, "busybox", "sh", "-c", "echo rw > /x/h"]);
    assert_eq!(std::fs::read_to_string(host.join("h")).unwrap(), "rw\n");

    // --read-only: / and /tmp (not a tmpfs) are read-only, as with dockerd
    let probe = "for p in /a /tmp/a /t/a; do if touch $p 2>/dev/null; then echo $p:rw; else echo $p:ro; fi; done";
    assert_eq!(
        run(&["--read-only", "busybox", "sh", "-c", probe]),
        "/a:ro\n/tmp/a:ro\n/t/a:ro\n"
    );
    assert_eq!(
        run(&["--read-only", "--tmpfs", "/t", "busybox", "sh", "-c", probe]),
        "/a:ro\n/tmp/a:ro\n/t/a:rw\n"
    );
    let mi = run(&["--tmpfs", "/t", "busybox", "cat", "/proc/self/mountinfo"]);
    assert!(
        mi.lines()
            .any(|l| l.split_whitespace().nth(4) == Some("/t") && l.contains(" - tmpfs ")),
        "no tmpfs at /t:\n{mi}"
    );
}

#[test]
fn network_host_sees_the_host_interfaces() {
    let d = Daemon::with_busybox();
    // Other tests in this binary add and remove veths while this runs: only
    // interfaces present both before and after the container are checked.
    let host_now = || -> BTreeSet<String> {
        std::fs::read_dir("/sys/class/net")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let before = host_now();
    let out = ok(
        &d,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "sh",
            "-c",
            "ls /sys/class/net; echo ===; ip -o link",
        ],
    );
    let host: BTreeSet<String> = host_now().intersection(&before).cloned().collect();
    assert!(host.len() > 1, "host has only {host:?}");
    let ip = out.split_once("===").map(|x| x.1).unwrap_or("");
    for name in &host {
        assert!(
            ip.contains(&format!(": {name}")),
            "{name} not visible with --network host:\n{out}"
        );
    }
}

// ------------------------------------------------------------------ logs, ps

#[test]
fn logs_all_tail_timestamps_and_follow() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "l5",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line$i; done",
        ],
    );
    wait_exited(&d, "l5", 10);
    assert_eq!(
        ok(&d, &["logs", "l5"]),
        "line1\nline2\nline3\nline4\nline5\n"
    );
    assert_eq!(ok(&d, &["logs", "--tail", "2", "l5"]), "line4\nline5\n");
    let ts = ok(&d, &["logs", "-t", "l5"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(lines(&ts).len(), 5, "{ts}");
    for (i, l) in lines(&ts).iter().enumerate() {
        let (stamp, text) = l
            .split_once(' ')
            .unwrap_or_else(|| panic!("no timestamp: {l}"));
        assert_eq!(text, format!("line{}", i + 1));
        // 2024-01-01T00:00:00.123456789Z
        let b = stamp.as_bytes();
        assert!(
            stamp.len() >= 22
                && stamp.len() <= 30
                && b[4] == b'-'
                && b[10] == b'T'
                && b[19] == b'.'
                && stamp.ends_with('Z')
                && stamp[20..stamp.len() - 1]
                    .bytes()
                    .all(|c| c.is_ascii_digit()),
            "not RFC3339Nano UTC: {stamp:?}"
        );
        let year: u64 = stamp[..4].parse().unwrap();
        assert_eq!(year, 1970 + now / 31_556_952, "timestamp year: {stamp}");
    }

    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "lf",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3; do echo $i; sleep 0.3; done",
        ],
    );
    let t = Instant::now();
    let o = dk_t(&d, &["logs", "-f", "lf"], 15);
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1\n2\n3\n");
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "logs -f returned before the container ended"
    );
    // (dockerd, too, may end the follow a moment before it records the exit)
    wait_exited(&d, "lf", 5);
    // -f on an exited container returns at once
    assert_eq!(
        String::from_utf8_lossy(&dk_t(&d, &["logs", "-f", "lf"], 5).stdout),
        "1\n2\n3\n"
    );
    ok(&d, &["rm", "l5", "lf"]);
}

#[test]
fn ps_filters_limit_and_size() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "run", "-d", "--name", "ex1", "--label", "a=b", "busybox", "true",
        ],
    );
    wait_exited(&d, "ex1", 10);
    ok(
        &d,
        &[
            "run", "-d", "--name", "bee", "--label", "a=c", "busybox", "sleep", "300",
        ],
    );
    ok(
        &d,
        &["run", "-d", "--name", "last", "busybox", "sleep", "300"],
    );
    let names = |args: &[&str]| {
        let mut all = vec!["ps", "--format", "{{.Names}}"];
        all.extend_from_slice(args);
        let out = ok(&d, &all);
        let mut v: Vec<String> = lines(&out).into_iter().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]), vec!["bee", "last"]);
    assert_eq!(names(&["-a"]), vec!["bee", "ex1", "last"]);
    assert_eq!(names(&["-a", "--filter", "status=exited"]), vec!["ex1"]);
    assert_eq!(names(&["-a", "--filter", "exited=0"]), vec!["ex1"]);
    assert_eq!(names(&["--filter", "status=running"]), vec!["bee", "last"]);
    assert_eq!(names(&["-a", "--filter", "label=a=b"]), vec!["ex1"]);
    assert_eq!(names(&["-a", "--filter", "label=a"]), vec!["bee", "ex1"]);
    assert_eq!(names(&["-a", "--filter", "name=bee"]), vec!["bee"]);
    assert_eq!(
        names(&["--filter", "ancestor=busybox"]),
        vec!["bee", "last"]
    );
    assert_eq!(
        names(&["-a", "--filter", "ancestor=busybox:latest"]),
        vec!["bee", "ex1", "last"]
    );
    assert_eq!(
        names(&["-a", "--filter", "before=last"]),
        vec!["bee", "ex1"]
    );
    assert_eq!(names(&["-a", "--filter", "since=ex1"]), vec!["bee", "last"]);
    assert_eq!(
        names(&["-n", "1"]),
        vec!["last"],
        "-n 1 is the newest, stopped or not"
    );
    let table = ok(&d, &["ps", "-s"]);
    let header = table.lines().next().unwrap_or("");
    assert!(header.contains("SIZE"), "ps -s header: {table}");
    assert!(
        table.contains("virtual"),
        "ps -s rows show the virtual size: {table}"
    );
    let r = d.request("GET", "/containers/json?size=1", None).json();
    assert!(r[0]["SizeRootFs"].as_u64().unwrap_or(0) > 0, "{r}");
    ok(&d, &["rm", "-f", "ex1", "bee", "last"]);
}

// ---------------------------------------------------------------- API errors

#[test]
fn api_errors_have_dockerds_codes_and_messages() {
    let d = Daemon::with_busybox();
    let msg = |r: &common::HttpResponse| r.json()["message"].as_str().unwrap_or("").to_string();

    let r = d.request("POST", "/containers/create", Some(r#"{"Image":"nope"}"#));
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(msg(&r), "No such image: nope:latest");

    let body = r#"{"Image":"busybox","Cmd":["sleep","300"]}"#;
    let r = d.request("POST", "/containers/create?name=dup", Some(body));
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.json()["Id"].as_str().unwrap().to_string();
    let r = d.request("POST", "/containers/create?name=dup", Some(body));
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        msg(&r).contains(r#"The container name "/dup" is already in use"#),
        "{r:?}"
    );

    let r = d.request("POST", "/containers/create", Some("{bad json"));
    assert_eq!(r.status, 400, "{r:?}");

    let r = d.request("POST", "/containers/dup/start", None);
    assert_eq!(r.status, 204, "{r:?}");
    let r = d.request("POST", "/containers/dup/start", None);
    assert_eq!(r.status, 304, "start of a running container: {r:?}");

    let r = d.request("DELETE", "/containers/dup", None);
    assert_eq!(r.status, 409, "{r:?}");
    assert!(
        msg(&r).contains("stop the container before removing or force remove"),
        "{r:?}"
    );

    let r = d.request("POST", "/containers/dup/wait?condition=bogus", None);
    assert_eq!(r.status, 400, "{r:?}");

    let r = d.request("POST", "/containers/dup/stop?t=0", None);
    assert_eq!(r.status, 204, "{r:?}");
    let r = d.request("POST", "/containers/dup/stop", None);
    assert_eq!(r.status, 304, "stop of a stopped container: {r:?}");
    let r = d.request("POST", "/containers/dup/kill", None);
    assert_eq!(r.status, 409, "kill of a stopped container: {r:?}");
    assert!(msg(&r).contains("is not running"), "{r:?}");

    for (m, p) in [
        ("GET", "/containers/x/json"),
        ("POST", "/containers/x/start"),
        ("POST", "/containers/x/stop"),
        ("POST", "/containers/x/kill"),
        ("POST", "/containers/x/wait"),
        ("DELETE", "/containers/x"),
        ("GET", "/containers/x/logs?stdout=1"),
    ] {
        let r = d.request(m, p, None);
        assert_eq!(r.status, 404, "{m} {p}: {r:?}");
        assert_eq!(msg(&r), "No such container: x", "{m} {p}");
    }

    let r = d.request(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"Memory":1048576}}"#),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(msg(&r), "Minimum memory limit allowed is 6MB");
    let err = fails(&d, &["create", "--memory", "1m", "busybox"]);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");

    let r = d.request(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(msg(&r).contains("AutoRemove"), "{r:?}");

    // Only the one good container exists.
    let all = d.request("GET", "/containers/json?all=1", None).json();
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    let r = d.request("DELETE", &format!("/containers/{id}?force=1"), None);
    assert_eq!(r.status, 204, "{r:?}");
}

// ------------------------------------------------- daemon crash and shutdown

#[test]
fn daemon_crash_recovery_kills_the_old_run_and_restarts_always_containers() {
    let mut d = Daemon::with_busybox();
    let al = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "al",
            "--restart",
            "always",
            "busybox",
            "sleep",
            "300",
        ],
    )
    .trim()
    .to_string();
    let pl = ok(
        &d,
        &["run", "-d", "--name", "pl", "busybox", "sleep", "300"],
    )
    .trim()
    .to_string();
    let gone = ok(
        &d,
        &["run", "-d", "--name", "gone", "busybox", "sleep", "300"],
    )
    .trim()
    .to_string();
    ok(&d, &["rm", "-f", "gone"]);
    let old_al = state(&d, "al")["Pid"].as_i64().unwrap();
    let old_pl = state(&d, "pl")["Pid"].as_i64().unwrap();
    assert!(old_al > 0 && old_pl > 0);

    d.kill9();
    // No shim: the containers outlive the daemon until it comes back.
    assert!(!process_gone(old_pl), "container died with the daemon");
    d.restart();

    let ps = ok(&d, &["ps", "-a", "--format", "{{.Names}}|{{.Status}}"]);
    assert_eq!(lines(&ps).len(), 2, "both containers listed: {ps}");
    wait_for("old processes to be killed", 10, || {
        process_gone(old_al) && process_gone(old_pl)
    });
    let st = state(&d, "pl");
    assert_eq!(st["Status"], "exited", "plain container after crash: {st}");
    assert_eq!(st["Running"], false, "{st}");
    let mut st = Value::Null;
    wait_for("the always container to be running again", 10, || {
        st = state(&d, "al");
        st["Status"] == "running"
    });
    let new_al = st["Pid"].as_i64().unwrap();
    assert!(
        new_al > 0 && new_al != old_al,
        "always container needs a new PID: {st}"
    );
    assert!(!process_gone(new_al));
    let ps = ok(&d, &["ps", "--format", "{{.Names}}|{{.Status}}"]);
    assert!(ps.lines().any(|l| l.starts_with("al|Up")), "{ps}");
    // pl's cgroup: no process left in it
    for dir in common::cgroup_dirs(&pl) {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        assert_eq!(procs.trim(), "", "process left in {}", dir.display());
    }
    assert!(
        common::cgroup_dirs(&gone).is_empty(),
        "cgroups of a removed container"
    );

    ok(&d, &["rm", "-f", "al", "pl"]);
    wait_for("no cgroup dirs left", 5, || {
        common::cgroup_dirs(&al).is_empty() && common::cgroup_dirs(&pl).is_empty()
    });
    assert!(process_gone(new_al));
}

#[test]
fn graceful_shutdown_stops_containers_with_their_stop_signal() {
    let mut d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "g",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ],
    )
    .trim()
    .to_string();
    wait_for("the trap to be set", 10, || {
        ok(&d, &["logs", "g"]).contains("ready")
    });
    let pid = state(&d, "g")["Pid"].as_i64().unwrap();
    let t = Instant::now();
    let status = d.terminate();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "SIGTERM shutdown took {took:?}"
    );
    assert!(status.success(), "daemon exit status {status}");
    assert!(
        process_gone(pid),
        "container process {pid} outlived the daemon"
    );
    assert!(common::cgroup_dirs(&id).iter().all(|d| {
        std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .trim()
            .is_empty()
    }));

    d.restart();
    let st = state(&d, "g");
    assert_eq!(st["Status"], "exited", "{st}");
    assert_eq!(
        st["ExitCode"], 0,
        "stopped with TERM, the trap exits 0: {st}"
    );
    ok(&d, &["rm", "g"]);
}

// --------------------------------------------------------- stdin and attach

/// Run the docker CLI with `input` on its stdin (then EOF), bounded by `secs`.
fn dk_stdin(d: &Daemon, args: &[&str], input: &[u8], secs: u64) -> Output {
    let mut child = docker_cmd(d, args)
        .stdin(Stdio::piped())
        .spawn()
        .expect("run docker");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(o) => o.expect("wait for docker"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!(
                "`docker {}` with piped stdin did not finish within {secs} s (stdin EOF never reached the container?)",
                args.join(" ")
            );
        }
    }
}

#[test]
fn run_i_feeds_piped_stdin_to_the_container_and_ends_at_eof() {
    let d = Daemon::with_busybox();
    let o = dk_stdin(
        &d,
        &["run", "-i", "--name", "si", "busybox", "cat"],
        b"hello\nworld\n",
        15,
    );
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello\nworld\n");
    let o = dk_stdin(
        &d,
        &["run", "-i", "--rm", "busybox", "wc", "-c"],
        &[b'z'; 300_000],
        15,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "300000",
        "{}",
        show(&o)
    );
    ok(&d, &["rm", "-f", "si"]);
}

/// Attach to a created `cat` container with stdin, optionally send `early`
/// before start, start it, send `late`, half-close; returns the demultiplexed
/// stdout and the container's state afterwards.
fn attach_cat(d: &Daemon, name: &str, early: &[u8], late: &[u8]) -> (Vec<u8>, Value) {
    let body = r#"{"Image":"busybox","Cmd":["cat"],"OpenStdin":true,"StdinOnce":true,"AttachStdin":true,"AttachStdout":true,"AttachStderr":true}"#;
    let r = d.request(
        "POST",
        &format!("/containers/create?name={name}"),
        Some(body),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let mut s = d.connect();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!(
            "POST /containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    // read the 101 head
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = std::io::Read::read(&mut s, &mut b).expect("read attach head");
        assert!(
            n == 1,
            "attach closed early: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    if !early.is_empty() {
        s.write_all(early).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = d.request("POST", &format!("/containers/{name}/start"), None);
    assert_eq!(r.status, 204, "{r:?}");
    if !late.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        s.write_all(late).unwrap();
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    let raw = common::read_all(&mut s);
    let raw = raw.as_bytes();
    // stdcopy frames: [stream, 0, 0, 0, len(4, BE)] payload
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= raw.len() {
        let len = u32::from_be_bytes([raw[i + 4], raw[i + 5], raw[i + 6], raw[i + 7]]) as usize;
        if raw[i] == 1 {
            out.extend_from_slice(&raw[i + 8..(i + 8 + len).min(raw.len())]);
        }
        i += 8 + len;
    }
    let mut st = Value::Null;
    let _ = (0..100).any(|_| {
        st = state(d, name);
        let done = st["Status"] == "exited";
        if !done {
            std::thread::sleep(Duration::from_millis(20));
        }
        done
    });
    (out, st)
}

#[test]
fn attach_stdin_sent_after_start_reaches_the_container() {
    let d = Daemon::with_busybox();
    let (out, st) = attach_cat(&d, "late", b"", b"after-start\n");
    assert_eq!(String::from_utf8_lossy(&out), "after-start\n");
    assert_eq!(st["Status"], "exited", "stdin EOF must end cat: {st}");
    assert_eq!(st["ExitCode"], 0, "{st}");
}

#[test]
fn attach_stdin_sent_before_start_is_delivered_not_dropped() {
    // The docker CLI attaches, then starts, and copies stdin at once: with
    // `echo x | docker run -i`, data and EOF can arrive before the start.
    let d = Daemon::with_busybox();
    let (out, st) = attach_cat(&d, "early", b"before-start\n", b"");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "before-start\n",
        "stdin written between attach and start was lost (state {st})"
    );
    assert_eq!(st["Status"], "exited", "stdin EOF must end cat: {st}");
}

#[test]
fn start_a_streams_output_and_returns_the_exit_code() {
    let d = Daemon::with_busybox();
    ok(
        &d,
        &[
            "create",
            "--name",
            "sa",
            "busybox",
            "sh",
            "-c",
            "echo started; echo oops >&2; exit 4",
        ],
    );
    let o = dk(&d, &["start", "-a", "sa"]);
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "started\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "oops\n");
    // attach to a running container
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "at",
            "busybox",
            "sh",
            "-c",
            "sleep 0.5; echo late-line; exit 6",
        ],
    );
    let o = dk_t(&d, &["attach", "at"], 15);
    assert_eq!(o.status.code(), Some(6), "{}", show(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "late-line\n");
    ok(&d, &["rm", "sa", "at"]);
}

// ------------------------------------------------------ exec errors, output

#[test]
fn missing_or_unexecutable_commands_exit_127_and_126() {
    let d = Daemon::with_busybox();
    let o = dk(&d, &["run", "--name", "m1", "busybox", "nope"]);
    assert_eq!(o.status.code(), Some(127), "{}", show(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    let st = state(&d, "m1");
    assert_eq!(st["ExitCode"], 127, "{st}");
    assert!(
        st["Error"].as_str().unwrap_or("").contains("nope"),
        "State.Error: {st}"
    );
    let o = dk(&d, &["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", show(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("permission denied"),
        "{}",
        show(&o)
    );
    ok(&d, &["rm", "m1"]);
}

#[test]
fn large_output_partial_and_long_lines_survive_run_and_logs() {
    let d = Daemon::with_busybox();
    let o = dk(
        &d,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "head -c 3000000 /dev/zero | tr '\\0' a",
        ],
    );
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(o.stdout.len(), 3_000_000, "bytes lost on the attach stream");
    assert!(o.stdout.iter().all(|&b| b == b'a'));

    ok(&d, &["run", "--name", "np", "busybox", "printf", "abc"]);
    assert_eq!(ok(&d, &["logs", "np"]), "abc", "a partial last line");

    let script = "head -c 100000 /dev/zero | tr '\\0' b; echo; echo to-err >&2";
    let o = dk(
        &d,
        &["run", "--name", "long", "busybox", "sh", "-c", script],
    );
    assert_eq!(
        o.stdout.len(),
        100_001,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = dk(&d, &["logs", "long"]);
    assert_eq!(o.stdout.len(), 100_001, "a 100 kB line in the json log");
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "to-err\n",
        "logs keeps stderr apart"
    );
    ok(&d, &["rm", "np", "long"]);
}

// ----------------------------------------------- stop signal, paused, --rm

const TERM_LOOP: &str = "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done";

#[test]
fn stop_uses_the_configured_stop_signal() {
    let d = Daemon::with_busybox();
    let script = "trap 'echo usr1; exit 9' USR1; echo ready; while true; do sleep 0.1; done";
    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "ss",
            "--stop-signal",
            "USR1",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    wait_for("ready", 10, || ok(&d, &["logs", "ss"]).contains("ready"));
    let t = Instant::now();
    ok(&d, &["stop", "ss"]);
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t.elapsed()
    );
    let info = inspect(&d, "ss");
    assert_eq!(info["Config"]["StopSignal"], "USR1");
    assert_eq!(info["State"]["ExitCode"], 9, "{}", info["State"]);
    assert!(ok(&d, &["logs", "ss"]).contains("usr1"));
    ok(&d, &["rm", "ss"]);
}

#[test]
fn paused_containers_can_be_stopped_killed_and_removed() {
    let d = Daemon::with_busybox();
    for n in ["p1", "p2", "p3"] {
        ok(
            &d,
            &["run", "-d", "--name", n, "busybox", "sh", "-c", TERM_LOOP],
        );
    }
    wait_for("ready", 10, || ok(&d, &["logs", "p1"]).contains("ready"));
    for n in ["p1", "p2", "p3"] {
        ok(&d, &["pause", n]);
    }
    let err = fails(&d, &["start", "p1"]);
    assert!(
        err.contains("unpause"),
        "start of a paused container: {err}"
    );

    let t = Instant::now();
    ok(&d, &["stop", "-t", "5", "p1"]);
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "stop of a paused container took {:?}",
        t.elapsed()
    );
    let st = state(&d, "p1");
    assert_eq!(
        (st["Status"].as_str(), st["Paused"].as_bool()),
        (Some("exited"), Some(false)),
        "{st}"
    );

    ok(&d, &["kill", "p2"]);
    let st = wait_exited(&d, "p2", 5);
    assert_eq!(st["ExitCode"], 137, "{st}");
    assert_eq!(st["Paused"], false, "{st}");

    let id3 = inspect(&d, "p3")["Id"].as_str().unwrap().to_string();
    let pid3 = state(&d, "p3")["Pid"].as_i64().unwrap();
    ok(&d, &["rm", "-f", "p3"]);
    wait_for("p3's process to die", 5, || process_gone(pid3));
    wait_for("p3's cgroups to go", 5, || {
        common::cgroup_dirs(&id3).is_empty()
    });
    ok(&d, &["rm", "p1", "p2"]);
}

#[test]
fn detached_rm_container_removes_itself_with_a_destroy_event() {
    let d = Daemon::with_busybox();
    let id = ok(
        &d,
        &[
            "run",
            "-d",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "sleep 0.2; exit 2",
        ],
    )
    .trim()
    .to_string();
    wait_for("the --rm container to be removed", 10, || {
        d.request("GET", &format!("/containers/{id}/json"), None)
            .status
            == 404
    });
    let evs = actions(&container_events(&d, &id));
    assert_eq!(
        evs,
        vec!["create", "start", "die", "destroy"],
        "events of a --rm container"
    );
    let die = container_events(&d, &id)
        .into_iter()
        .find(|e| e["Action"] == "die")
        .unwrap();
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "2", "{die}");
    assert!(common::cgroup_dirs(&id).is_empty());
    assert!(
        !d.data_root.join("containers").join(&id).exists(),
        "container dir left behind"
    );
}

#[test]
fn events_are_streamed_live() {
    let d = Daemon::with_busybox();
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 4;
    let child = docker_cmd(
        &d,
        &[
            "events",
            "--until",
            &until.to_string(),
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    ok(&d, &["run", "--name", "live", "busybox", "true"]);
    ok(&d, &["rm", "live"]);
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        lines(&out),
        vec!["create live", "start live", "die live", "destroy live"],
        "live events: {}",
        show(&o)
    );
}

// ---------------------------------------------- restart policies at startup

#[test]
fn daemon_restart_applies_always_and_unless_stopped_policies() {
    // dockerd restores: `always` even if it was stopped by hand, `unless-stopped`
    // only if it was not, `no` never. A daemon shutdown is not a manual stop.
    let mut d = Daemon::with_busybox();
    let run = |name: &str, policy: &str| {
        ok(
            &d,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--restart",
                policy,
                "busybox",
                "sh",
                "-c",
                TERM_LOOP,
            ],
        );
    };
    run("a_up", "always");
    run("a_stopped", "always");
    run("u_up", "unless-stopped");
    run("u_stopped", "unless-stopped");
    run("n_up", "no");
    ok(&d, &["stop", "a_stopped", "u_stopped"]);
    let t = Instant::now();
    d.terminate();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        t.elapsed()
    );
    d.restart();
    let want = [
        "a_up=running",
        "a_stopped=running",
        "u_up=running",
        "u_stopped=exited",
        "n_up=exited",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got: Vec<String>;
    loop {
        got = ["a_up", "a_stopped", "u_up", "u_stopped", "n_up"]
            .iter()
            .map(|n| format!("{n}={}", state(&d, n)["Status"].as_str().unwrap_or("?")))
            .collect();
        if got == want || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(got, want, "states after a daemon restart");
    ok(
        &d,
        &["rm", "-f", "a_up", "a_stopped", "u_up", "u_stopped", "n_up"],
    );
}

#[test]
fn bad_inputs_are_refused_before_anything_changes() {
    let d = Daemon::with_busybox();
    let r = d.request(
        "POST",
        "/containers/create",
        // (any positive max-file is dockerd's; 0 is not)
        Some(r#"{"Image":"busybox","HostConfig":{"LogConfig":{"Type":"json-file","Config":{"max-file":"0"}}}}"#),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["message"].as_str().unwrap().contains("max-file"),
        "{r:?}"
    );
    assert_eq!(
        d.request("GET", "/containers/json?limit=abc", None).status,
        400
    );

    ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "al",
            "--restart",
            "always",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let r = d.request("GET", "/containers/al/logs?stdout=1&since=garbage", None);
    assert_eq!(r.status, 400, "{r:?}");
    // A stop with a bad signal is refused and leaves the restart policy on.
    let r = d.request("POST", "/containers/al/stop?signal=BOGUS", None);
    assert_eq!(r.status, 400, "{r:?}");
    let pid = state(&d, "al")["Pid"].as_i64().unwrap();
    common::signal(pid as i32, 9);
    wait_for(
        "the always container to restart after a host kill",
        10,
        || inspect(&d, "al")["RestartCount"] == 1 && state(&d, "al")["Status"] == "running",
    );
    ok(&d, &["rm", "-f", "al"]);
}
