//! The cgroup section of `check-config`: version, hierarchies and each
//! controller the daemon uses, with the reason a missing one is missing.

use super::facts::{cgroup_mounts, cmdline_disables, parse_kernel_version};
use super::{Builder, Level, Status};

pub(super) fn cgroup_checks(b: &mut Builder) {
    let facts = b.facts;
    let host = b.host;
    let cg = cgroup_mounts(&facts.mounts);
    let v1 = cg.v1_controllers();
    let use_v1 = !v1.is_empty();
    let v2_root = cg
        .v2
        .iter()
        .find(|p| p.as_str() == "/sys/fs/cgroup")
        .or(cg.v2.first());
    let v2_controllers: Vec<String> = if use_v1 {
        Vec::new()
    } else {
        v2_root
            .and_then(|p| host.read(&format!("{p}/cgroup.controllers")))
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };

    // Explain a missing controller: compiled out, or disabled on the kernel command line.
    let why_missing = |name: &str| -> String {
        let v1name = if name == "io" { "blkio" } else { name };
        if cmdline_disables(&facts.cmdline, name) || cmdline_disables(&facts.cmdline, v1name) {
            return format!("cgroup_disable={name} is on the kernel command line; remove it");
        }
        match facts.proc_cgroups.get(v1name) {
            Some(false) => format!(
                "compiled in but disabled at boot; add cgroup_enable={v1name}{} to the kernel command line",
                if v1name == "memory" { " cgroup_memory=1" } else { "" }
            ),
            Some(true) if use_v1 => format!("compiled in but no {v1name} hierarchy is mounted under /sys/fs/cgroup"),
            Some(true) => "compiled in but bound to a v1 hierarchy, not offered by cgroup v2".into(),
            None => "not compiled into the kernel".into(),
        }
    };

    let (hier_status, hier_detail) = if use_v1 {
        let mode = if cg.v2.is_empty() {
            "v1".to_string()
        } else {
            format!("v1, hybrid: cgroup2 also at {}", cg.v2.join(", "))
        };
        let lacking: Vec<&str> = ["memory", "pids"]
            .into_iter()
            .filter(|c| !v1.contains(c))
            .collect();
        if lacking.is_empty() {
            (Status::Present, mode)
        } else {
            (
                Status::Missing,
                format!(
                    "{mode} without the {} controller ({})",
                    lacking.join(" and "),
                    lacking
                        .iter()
                        .map(|c| why_missing(c))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
        }
    } else if let Some(root) = v2_root {
        (Status::Present, format!("v2 (unified at {root})"))
    } else {
        let supported: Vec<&str> = ["cgroup2", "cgroup"]
            .into_iter()
            .filter(|f| facts.has_fs(f))
            .collect();
        let d = if supported.is_empty() {
            "no cgroup filesystem in the kernel".to_string()
        } else {
            format!(
                "{} supported but not mounted; mount cgroup2 on /sys/fs/cgroup at boot",
                supported.join(" and ")
            )
        };
        (Status::Missing, d)
    };
    b.add("cgroups", "hierarchy", Level::Required, (hier_status, hier_detail),
        "containers cannot start: each container is tracked and limited through its cgroup (v1 needs memory and pids, or use v2)",
        "CONFIG_CGROUPS");

    let mounted = use_v1 || v2_root.is_some();
    let has = |name: &str| -> bool {
        if use_v1 {
            let v1name = if name == "io" { "blkio" } else { name };
            v1.contains(&v1name)
        } else {
            v2_controllers.iter().any(|c| c == name)
        }
    };
    let ctl = |name: &str| -> (Status, String) {
        if !mounted {
            (Status::Missing, "no cgroup hierarchy mounted".into())
        } else if has(name) {
            (Status::Present, String::new())
        } else {
            (Status::Missing, why_missing(name))
        }
    };

    b.add(
        "cgroups",
        "memory",
        Level::Recommended,
        ctl("memory"),
        "--memory limits, OOM handling and memory statistics do not work",
        "CONFIG_MEMCG",
    );
    b.add(
        "cgroups",
        "pids",
        Level::Recommended,
        ctl("pids"),
        "--pids-limit does not work; a fork bomb in a container can exhaust the device",
        "CONFIG_CGROUP_PIDS",
    );
    b.add(
        "cgroups",
        "cpu",
        Level::Recommended,
        ctl("cpu"),
        "--cpus and --cpu-shares do not work",
        "CONFIG_CGROUP_SCHED, CONFIG_FAIR_GROUP_SCHED, CONFIG_CFS_BANDWIDTH",
    );
    b.add(
        "cgroups",
        "cpuset",
        Level::Optional,
        ctl("cpuset"),
        "--cpuset-cpus does not work",
        "CONFIG_CPUSETS",
    );
    let io = if use_v1 { "blkio" } else { "io" };
    b.add(
        "cgroups",
        if use_v1 { "blkio" } else { "io" },
        Level::Optional,
        ctl(io),
        "--blkio-weight and block I/O statistics do not work",
        "CONFIG_BLK_CGROUP",
    );
    let freezer = if use_v1 || !mounted {
        ctl("freezer")
    } else {
        // cgroup v2 has the freezer built in (cgroup.freeze) since 5.2.
        match parse_kernel_version(&facts.release) {
            Some(v) if v >= (5, 2) => (Status::Present, "cgroup.freeze (v2, kernel 5.2+)".into()),
            Some(_) => (
                Status::Missing,
                "cgroup v2 freezer needs kernel 5.2+".into(),
            ),
            None => (Status::Unknown, "kernel release unknown".into()),
        }
    };
    b.add(
        "cgroups",
        "freezer",
        Level::Recommended,
        freezer,
        "docker pause/unpause do not work; stopping a container cannot freeze it first",
        "CONFIG_CGROUP_FREEZER",
    );
    let devices = if use_v1 || !mounted {
        ctl("devices")
    } else {
        // cgroup v2 controls devices with BPF programs.
        match facts.kconfig("CONFIG_CGROUP_BPF") {
            Some((true, d)) => (Status::Present, format!("BPF device filter ({d})")),
            Some((false, d)) => (Status::Missing, d),
            None => (
                Status::Unknown,
                "cgroup v2 device control needs CONFIG_CGROUP_BPF; no kernel config to confirm"
                    .into(),
            ),
        }
    };
    b.add("cgroups", "devices", Level::Recommended, devices,
        "containers are not stopped from opening host device nodes they can see (--device limits are not enforced)",
        "CONFIG_CGROUP_DEVICE (v1), CONFIG_CGROUP_BPF (v2)");
}
