//! What a container sees of its cgroups (namespace, read-only
//! /sys/fs/cgroup with its limits) and `docker stats` / the stats endpoint,
//! driven by the docker CLI, raw HTTP and docker-py.

mod common;

use common::cli::*;
use common::Daemon;
use serde_json::Value;
use std::time::{Duration, Instant};

fn host_is_v1() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|m| {
            !m.lines()
                .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
        })
        .unwrap_or(true)
}

// ---------------------------------------------------------------- cgroups inside

#[test]
fn sys_fs_cgroup_shows_own_limits_read_only() {
    let d = Daemon::with_busybox();
    let script = if host_is_v1() {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
         cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us; \
         cat /sys/fs/cgroup/pids/pids.max; \
         echo 1 > /sys/fs/cgroup/memory/memory.limit_in_bytes && echo WROTE; \
         mkdir /sys/fs/cgroup/memory/sub && echo MKDIR; \
         touch /sys/fs/cgroup/x && echo TOUCHED; \
         grep ' /sys/fs/cgroup/memory ' /proc/self/mountinfo"
    } else {
        "cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/cpu.max; cat /sys/fs/cgroup/pids.max; \
         echo 1 > /sys/fs/cgroup/memory.max && echo WROTE; \
         mkdir /sys/fs/cgroup/sub && echo MKDIR; touch /sys/fs/cgroup/x && echo TOUCHED; \
         grep ' /sys/fs/cgroup ' /proc/self/mountinfo"
    };
    let o = dk(
        &d,
        &[
            "run",
            "--rm",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--pids-limit",
            "77",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let l: Vec<&str> = out.lines().collect();
    if host_is_v1() {
        assert_eq!(l.first(), Some(&"67108864"), "{}", show(&o));
        assert_eq!(l.get(1..3), Some(&["150000", "100000"][..]), "{}", show(&o));
        assert_eq!(l.get(3), Some(&"77"), "{}", show(&o));
    } else {
        assert_eq!(l.first(), Some(&"67108864"), "{}", show(&o));
        assert_eq!(l.get(1), Some(&"150000 100000"), "{}", show(&o));
        assert_eq!(l.get(2), Some(&"77"), "{}", show(&o));
    }
    assert!(
        !out.contains("WROTE") && !out.contains("MKDIR") && !out.contains("TOUCHED"),
        "the container wrote to /sys/fs/cgroup: {}",
        show(&o)
    );
    assert!(err.contains("Read-only file system"), "{}", show(&o));
    let mnt = l.last().unwrap_or(&"");
    assert!(
        mnt.contains(" ro,") || mnt.contains(" ro "),
        "not read-only: {mnt}"
    );
}

#[test]
fn cgroup_namespace_host_by_default_on_v1_private_on_request() {
    let d = Daemon::with_busybox();
    let id = ok(&d, &["create", "busybox", "cat", "/proc/self/cgroup"]);
    let id = id.trim();
    let mode = inspect(&d, id)["HostConfig"]["CgroupnsMode"].clone();
    let want = if host_is_v1() { "host" } else { "private" };
    assert_eq!(mode, want);
    let o = ok(&d, &["start", "-a", id]);
    // Host mode shows the container's path in the host's hierarchy; a
    // private namespace makes that path its root.
    let mem_line = |text: &str| {
        text.lines()
            .find(|l| l.contains(":memory:") || l.starts_with("0::"))
            .unwrap_or("")
            .to_string()
    };
    if host_is_v1() {
        assert!(mem_line(&o).ends_with(&format!("/coracle/{id}")), "{o}");
    } else {
        assert_eq!(mem_line(&o), "0::/", "{o}");
    }
    let p = ok(
        &d,
        &[
            "run",
            "--rm",
            "--cgroupns",
            "private",
            "busybox",
            "cat",
            "/proc/self/cgroup",
        ],
    );
    assert!(mem_line(&p).ends_with(":/"), "{p}");
    // An exec joins the container's cgroup namespace too.
    let id2 = ok(
        &d,
        &[
            "run",
            "-d",
            "--cgroupns",
            "private",
            "busybox",
            "sleep",
            "30",
        ],
    );
    let e = ok(&d, &["exec", id2.trim(), "cat", "/proc/self/cgroup"]);
    assert!(mem_line(&e).ends_with(":/"), "{e}");
    assert_eq!(
        inspect(&d, id2.trim())["HostConfig"]["CgroupnsMode"],
        "private"
    );
    let r = d.request(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"CgroupnsMode":"shared"}}"#),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["message"], "invalid cgroup namespace mode: shared");
    let _ = Instant::now() + Duration::from_secs(1);
    let _: Option<Value> = None;
}
