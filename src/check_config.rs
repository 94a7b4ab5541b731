//! `coracle check-config`: which kernel features the daemon can use on this host.
//!
//! Everything here is read-only and comes from `/proc`, `/sys`, the kernel config
//! (`/proc/config.gz`, `/boot/config-<release>`) and `/lib/modules/<release>`; nothing is
//! loaded, mounted or executed. Each feature is reported as present, missing or unknown,
//! with what breaks without it, in words a device maker can act on. The exit code is 1
//! when a required feature is missing, 0 otherwise.
//!
//! The probing reads every file relative to a root directory (`/` in the daemon) so the
//! whole evaluation can be tested on a fixed fake tree; the parsing helpers are pure
//! functions over strings.

use crate::runtime::mountinfo::{parse as parse_mountinfo, MountEntry};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// How much the daemon depends on a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Containers cannot start without it.
    Required,
    /// Containers start, but a feature degrades.
    Recommended,
    /// Only some options need it.
    Optional,
}

/// What the probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Present,
    Missing,
    /// Nothing on this host can tell (no kernel config, module neither loaded nor listed).
    Unknown,
}

/// One line of the report.
#[derive(Debug)]
pub struct Check {
    pub section: &'static str,
    pub name: &'static str,
    pub level: Level,
    pub status: Status,
    /// Evidence, or the specific reason it is missing.
    pub detail: String,
    /// What breaks without it.
    pub impact: &'static str,
    /// Kernel options that provide it.
    pub kconfig: &'static str,
}

/// The whole report plus the facts printed in its header.
#[derive(Debug)]
pub struct Report {
    pub kernel_release: String,
    pub kernel_config_source: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    /// Required features that are missing.
    pub fn missing_required(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.level == Level::Required && c.status == Status::Missing)
            .count()
    }

    /// 1 when a required feature is missing, 0 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.missing_required() > 0)
    }
}

/// Entry point of `coracle check-config`: probes `/`, prints the report, returns the exit code.
pub fn run(out: &mut impl Write) -> i32 {
    let report = probe(&Host::new("/"));
    match write_report(out, &report) {
        Ok(()) => report.exit_code(),
        Err(e) => {
            eprintln!("coracle check-config: cannot write the report: {e}");
            2
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading the host

/// Read-only view of a root filesystem (`/` on a real host, a fixture tree in tests).
pub struct Host {
    root: PathBuf,
}

impl Host {
    pub fn new(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }

    fn exists(&self, p: &str) -> bool {
        // symlink_metadata: /proc/self/ns/* are magic links whose targets do not resolve.
        std::fs::symlink_metadata(self.path(p)).is_ok()
    }

    fn read_gz(&self, p: &str) -> Option<String> {
        let f = std::fs::File::open(self.path(p)).ok()?;
        let mut s = String::new();
        // The kernel config is tens of KiB; cap it so a corrupt file cannot eat memory.
        flate2::read::GzDecoder::new(f)
            .take(8 << 20)
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    }

    fn list_dir(&self, p: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(p))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

// ---------------------------------------------------------------------------------------
// Parsing helpers (pure)

/// Filesystem types the kernel knows now, from `/proc/filesystems`.
pub fn parse_filesystems(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

/// `CONFIG_X=y|m|"str"` lines of a kernel config; `# CONFIG_X is not set` becomes `n`.
pub fn parse_kernel_config(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# ") {
            if let Some(name) = rest.strip_suffix(" is not set") {
                if name.starts_with("CONFIG_") {
                    map.insert(name.to_string(), "n".to_string());
                }
            }
        } else if let Some((k, v)) = line.split_once('=') {
            if k.starts_with("CONFIG_") {
                map.insert(k.to_string(), v.to_string());
            }
        }
    }
    map
}

/// cgroup v1 controller names as they appear in mount options and `/proc/cgroups`.
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Mounted cgroup hierarchies.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// v1 hierarchies: mount point and the controllers bound to it (named ones have none).
    pub v1: Vec<(String, Vec<String>)>,
    /// cgroup2 mount points.
    pub v2: Vec<String>,
}

impl CgroupMounts {
    pub fn v1_controllers(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self
            .v1
            .iter()
            .flat_map(|(_, cs)| cs.iter().map(String::as_str))
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    }
}

/// The cgroup hierarchies mounted, from parsed mountinfo.
pub fn cgroup_mounts(mounts: &[MountEntry]) -> CgroupMounts {
    let mut cg = CgroupMounts::default();
    for m in mounts {
        match m.fs_type.as_str() {
            "cgroup" => {
                let cs = m
                    .super_opts
                    .iter()
                    .filter(|o| V1_CONTROLLERS.contains(&o.as_str()))
                    .cloned()
                    .collect();
                cg.v1.push((m.mount_point.clone(), cs));
            }
            "cgroup2" => cg.v2.push(m.mount_point.clone()),
            _ => {}
        }
    }
    cg
}

/// `/proc/cgroups`: controller name -> enabled (compiled in; `0` = disabled on the cmdline).
pub fn parse_proc_cgroups(text: &str) -> BTreeMap<String, bool> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[0].to_string(), f[3] == "1"))
        })
        .collect()
}

/// The `Seccomp:` mode of `/proc/self/status`; `None` when the kernel has no seccomp.
pub fn parse_seccomp_status(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether `name.ko` (possibly compressed) is listed in `modules.builtin` / `modules.dep`.
pub fn module_listed(list: &str, name: &str) -> bool {
    let want = format!("{name}.ko");
    list.lines().any(|l| {
        let path = l.split(':').next().unwrap_or("").trim();
        let base = path.rsplit('/').next().unwrap_or("");
        // bridge.ko, bridge.ko.xz, bridge.ko.zst, bridge.ko.gz; dashes and underscores
        // are the same in module names.
        base.replace('-', "_") == want || base.replace('-', "_").starts_with(&format!("{want}."))
    })
}

/// `(major, minor)` from a release string like `6.1.0-18-arm64`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut it = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether the kernel command line turns a cgroup controller off.
pub fn cmdline_disables(cmdline: &str, controller: &str) -> bool {
    cmdline.split_whitespace().any(|w| {
        w.strip_prefix("cgroup_disable=")
            .is_some_and(|v| v.split(',').any(|c| c == controller))
    })
}

// ---------------------------------------------------------------------------------------
// Probing

/// Facts gathered once and shared by the checks.
struct Facts {
    release: String,
    config: Option<BTreeMap<String, String>>,
    config_source: Option<String>,
    filesystems: Vec<String>,
    mounts: Vec<MountEntry>,
    proc_cgroups: BTreeMap<String, bool>,
    cmdline: String,
    modules_builtin: Option<String>,
    modules_dep: Option<String>,
}

impl Facts {
    fn gather(host: &Host) -> Facts {
        let release = host
            .read("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let (config, config_source) = if let Some(t) = host.read_gz("/proc/config.gz") {
            (
                Some(parse_kernel_config(&t)),
                Some("/proc/config.gz".into()),
            )
        } else {
            let p = format!("/boot/config-{release}");
            match host.read(&p).filter(|_| !release.is_empty()) {
                Some(t) => (Some(parse_kernel_config(&t)), Some(p)),
                None => (None, None),
            }
        };
        let modules = |f: &str| {
            (!release.is_empty())
                .then(|| host.read(&format!("/lib/modules/{release}/{f}")))
                .flatten()
        };
        Facts {
            config,
            config_source,
            filesystems: parse_filesystems(&host.read("/proc/filesystems").unwrap_or_default()),
            mounts: parse_mountinfo(&host.read("/proc/self/mountinfo").unwrap_or_default()),
            proc_cgroups: parse_proc_cgroups(&host.read("/proc/cgroups").unwrap_or_default()),
            cmdline: host.read("/proc/cmdline").unwrap_or_default(),
            modules_builtin: modules("modules.builtin"),
            modules_dep: modules("modules.dep"),
            release,
        }
    }

    /// `Some(true)` y/m, `Some(false)` not set, `None` when there is no kernel config.
    fn kconfig(&self, key: &str) -> Option<(bool, String)> {
        let cfg = self.config.as_ref()?;
        Some(match cfg.get(key).map(String::as_str) {
            Some("y") => (true, format!("{key}=y")),
            Some("m") => (
                true,
                format!("{key}=m, module loaded by the kernel on first use"),
            ),
            _ => (false, format!("{key} is not set")),
        })
    }

    /// A feature that is a kernel option and usually a module of the same name.
    fn kernel_feature(&self, host: &Host, key: &str, module: &str) -> (Status, String) {
        if host.exists(&format!("/sys/module/{module}")) {
            let how = self
                .kconfig(key)
                .map(|(_, d)| d)
                .unwrap_or_else(|| format!("/sys/module/{module}"));
            return (Status::Present, how);
        }
        if let Some((on, d)) = self.kconfig(key) {
            return (if on { Status::Present } else { Status::Missing }, d);
        }
        if self
            .modules_builtin
            .as_deref()
            .is_some_and(|l| module_listed(l, module))
        {
            return (Status::Present, "built in (modules.builtin)".into());
        }
        if self
            .modules_dep
            .as_deref()
            .is_some_and(|l| module_listed(l, module))
        {
            return (
                Status::Present,
                format!("module {module} in /lib/modules, loaded by the kernel on first use"),
            );
        }
        (
            Status::Unknown,
            format!(
                "no kernel config (/proc/config.gz, /boot/config-<release>), \
                 {module} not loaded and not in /lib/modules/<release>"
            ),
        )
    }

    fn has_fs(&self, name: &str) -> bool {
        self.filesystems.iter().any(|f| f == name)
    }

    /// A filesystem: registered now, or a module/option that registers it on first mount.
    fn filesystem(&self, host: &Host, fs: &str, key: &str, module: &str) -> (Status, String) {
        if self.has_fs(fs) {
            return (Status::Present, String::new());
        }
        let (st, d) = self.kernel_feature(host, key, module);
        match st {
            Status::Present => (Status::Present, format!("not registered yet; {d}")),
            Status::Missing => (Status::Missing, format!("not in /proc/filesystems; {d}")),
            Status::Unknown => (
                // Not registered, and no module list shows a module the kernel could
                // load (loading needs modules.dep anyway): treat as missing.
                Status::Missing,
                "not in /proc/filesystems and no kernel config or module list says otherwise"
                    .into(),
            ),
        }
    }
}

struct Builder<'a> {
    host: &'a Host,
    facts: &'a Facts,
    checks: Vec<Check>,
}

impl Builder<'_> {
    fn add(
        &mut self,
        section: &'static str,
        name: &'static str,
        level: Level,
        (status, detail): (Status, String),
        impact: &'static str,
        kconfig: &'static str,
    ) {
        self.checks.push(Check {
            section,
            name,
            level,
            status,
            detail,
            impact,
            kconfig,
        });
    }

    fn namespace(
        &mut self,
        file: &str,
        name: &'static str,
        level: Level,
        impact: &'static str,
        kconfig: &'static str,
    ) {
        let present = self.host.exists(&format!("/proc/self/ns/{file}"));
        let r = if present {
            (Status::Present, String::new())
        } else {
            (
                Status::Missing,
                format!("/proc/self/ns/{file} does not exist"),
            )
        };
        self.add("namespaces", name, level, r, impact, kconfig);
    }
}

/// Probe a host (its root directory) and build the report.
pub fn probe(host: &Host) -> Report {
    let facts = Facts::gather(host);
    let mut b = Builder {
        host,
        facts: &facts,
        checks: Vec::new(),
    };

    // --- namespaces
    b.namespace(
        "mnt",
        "mount",
        Level::Required,
        "containers cannot start: no private mount table for the container's root filesystem",
        "CONFIG_NAMESPACES",
    );
    b.namespace(
        "pid",
        "pid",
        Level::Required,
        "containers cannot start: processes would see and signal the host's processes",
        "CONFIG_PID_NS",
    );
    b.namespace(
        "uts",
        "uts",
        Level::Required,
        "containers cannot start: no per-container hostname",
        "CONFIG_UTS_NS",
    );
    b.namespace("ipc", "ipc", Level::Required,
        "containers cannot start: System V IPC and POSIX message queues would be shared with the host",
        "CONFIG_IPC_NS");
    b.namespace(
        "net",
        "network",
        Level::Required,
        "containers cannot start: no private network stack",
        "CONFIG_NET_NS",
    );
    b.namespace(
        "cgroup",
        "cgroup",
        Level::Optional,
        "containers see the host's cgroup paths in /proc/self/cgroup",
        "CONFIG_CGROUPS (cgroup namespace, kernel 4.6+)",
    );
    {
        let ns = host.exists("/proc/self/ns/user");
        let max = host
            .read("/proc/sys/user/max_user_namespaces")
            .and_then(|s| s.trim().parse::<u64>().ok());
        let r = match (ns, max) {
            (false, _) => (Status::Missing, "/proc/self/ns/user does not exist".into()),
            (true, Some(0)) => (
                Status::Missing,
                "user.max_user_namespaces is 0 (disabled by sysctl)".into(),
            ),
            (true, _) => (Status::Present, String::new()),
        };
        b.add("namespaces", "user", Level::Optional, r,
            "user-namespace remapping is unavailable; the default (root in the container is root on the host) is unaffected",
            "CONFIG_USER_NS");
    }

    // --- cgroups
    cgroup_checks(&mut b);

    // --- filesystems
    let overlay = facts.filesystem(host, "overlay", "CONFIG_OVERLAY_FS", "overlay");
    b.add("filesystems", "overlay", Level::Recommended, overlay,
        "the copy fallback is used: every container gets a full copy of its image (slower start, more disk and flash wear)",
        "CONFIG_OVERLAY_FS");
    let devpts = if facts.has_fs("devpts") {
        (Status::Present, String::new())
    } else {
        (Status::Missing, "not in /proc/filesystems".into())
    };
    b.add("filesystems", "devpts", Level::Required, devpts,
        "containers cannot start: each container mounts its own /dev/pts (terminals, `docker run -t`)",
        "CONFIG_UNIX98_PTYS (devpts)");
    let tmpfs = if facts.has_fs("tmpfs") {
        (Status::Present, String::new())
    } else {
        (Status::Missing, "not in /proc/filesystems".into())
    };
    b.add(
        "filesystems",
        "tmpfs",
        Level::Required,
        tmpfs,
        "containers cannot start: /dev, /dev/shm and --tmpfs mounts are tmpfs",
        "CONFIG_TMPFS (CONFIG_SHMEM)",
    );
    let mqueue = if facts.has_fs("mqueue") {
        (Status::Present, String::new())
    } else {
        (Status::Missing, "not in /proc/filesystems".into())
    };
    b.add(
        "filesystems",
        "mqueue",
        Level::Recommended,
        mqueue,
        "containers get no /dev/mqueue (POSIX message queues)",
        "CONFIG_POSIX_MQUEUE",
    );

    // --- process isolation
    {
        let root_fs = facts
            .mounts
            .iter()
            .rev()
            .find(|m| m.mount_point == "/")
            .map(|m| m.fs_type.clone());
        let r = match root_fs.as_deref() {
            Some("rootfs") => (
                Status::Missing,
                "the host root is the initramfs (rootfs), which pivot_root cannot leave; \
                 switch_root to a real root filesystem (or mount a tmpfs and switch_root into it) before starting coracle"
                    .into(),
            ),
            _ => (Status::Present, "system call of every Linux kernel".into()),
        };
        b.add(
            "security",
            "pivot_root",
            Level::Required,
            r,
            "containers cannot start: the container root cannot replace the host root",
            "none (a real root filesystem, not initramfs)",
        );
    }
    {
        let status = host.read("/proc/self/status").unwrap_or_default();
        let r = match parse_seccomp_status(&status) {
            None => (
                Status::Missing,
                "no Seccomp: line in /proc/self/status".into(),
            ),
            Some(_) => {
                if host.exists("/proc/sys/kernel/seccomp/actions_avail") {
                    (Status::Present, "filter mode, seccomp-bpf".into())
                } else {
                    match facts.kconfig("CONFIG_SECCOMP_FILTER") {
                        Some((true, d)) => (Status::Present, d),
                        Some((false, d)) => (Status::Missing, format!("strict mode only; {d}")),
                        None => (
                            Status::Unknown,
                            "seccomp present, filter mode cannot be confirmed (kernel older than 4.14 and no kernel config)".into(),
                        ),
                    }
                }
            }
        };
        b.add(
            "security",
            "seccomp",
            Level::Recommended,
            r,
            "containers run without a system-call filter (less isolation, same function)",
            "CONFIG_SECCOMP, CONFIG_SECCOMP_FILTER",
        );
    }

    // --- network
    let veth = facts.kernel_feature(host, "CONFIG_VETH", "veth");
    b.add(
        "network",
        "veth",
        Level::Recommended,
        veth,
        "no bridge networking: containers only get --network host or none",
        "CONFIG_VETH",
    );
    let bridge = {
        let has_bridge_dev = host
            .list_dir("/sys/class/net")
            .iter()
            .find(|n| host.exists(&format!("/sys/class/net/{n}/bridge")))
            .cloned();
        match has_bridge_dev {
            Some(dev) => (Status::Present, format!("bridge device {dev} exists")),
            None => facts.kernel_feature(host, "CONFIG_BRIDGE", "bridge"),
        }
    };
    b.add(
        "network",
        "bridge",
        Level::Recommended,
        bridge,
        "no bridge networking: containers only get --network host or none",
        "CONFIG_BRIDGE",
    );
    {
        let r = match host.read("/proc/sys/net/ipv4/ip_forward").as_deref().map(str::trim) {
            Some("1") => (Status::Present, "net.ipv4.ip_forward=1".into()),
            Some(v) => (
                Status::Missing,
                format!("net.ipv4.ip_forward={v}; set it to 1 (sysctl.conf) on devices that route container traffic"),
            ),
            None => (Status::Missing, "/proc/sys/net/ipv4/ip_forward not readable (no IPv4?)".into()),
        };
        b.add(
            "network",
            "ip forwarding",
            Level::Optional,
            r,
            "containers on a bridge cannot reach beyond the device",
            "CONFIG_INET (runtime sysctl net.ipv4.ip_forward)",
        );
    }
    {
        let ifs = host.list_dir("/sys/class/net");
        let r = if ifs.is_empty() {
            (
                Status::Unknown,
                "/sys/class/net is empty or /sys is not mounted".into(),
            )
        } else {
            (Status::Present, ifs.join(", "))
        };
        b.add(
            "network",
            "interfaces",
            Level::Optional,
            r,
            "the daemon cannot list network devices (is /sys mounted?)",
            "CONFIG_SYSFS",
        );
    }

    Report {
        kernel_release: facts.release.clone(),
        kernel_config_source: facts.config_source.clone(),
        checks: b.checks,
    }
}

fn cgroup_checks(b: &mut Builder) {
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

// ---------------------------------------------------------------------------------------
// Output

/// Print the report, one feature per line, grouped by section.
pub fn write_report(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(
        out,
        "coracle check-config: kernel features for containers on this host"
    )?;
    writeln!(
        out,
        "kernel: {} ({})",
        if r.kernel_release.is_empty() {
            "unknown release (is /proc mounted?)"
        } else {
            &r.kernel_release
        },
        std::env::consts::ARCH
    )?;
    match &r.kernel_config_source {
        Some(src) => writeln!(out, "kernel config: {src}")?,
        None => writeln!(
            out,
            "kernel config: not found (no /proc/config.gz, no /boot/config-<release>); \
             module features are judged from /sys/module and /lib/modules"
        )?,
    }
    writeln!(
        out,
        "levels: required = containers cannot start without it; recommended = a feature degrades; optional = only some options need it"
    )?;
    const WIDTH: usize = 34;
    let mut last = "";
    for c in &r.checks {
        if c.section != last {
            writeln!(out)?;
            last = c.section;
        }
        let label = format!("{}: {} ", c.section, c.name);
        let dots = ".".repeat(WIDTH.saturating_sub(label.len()).max(2));
        let level = match c.level {
            Level::Required => "required",
            Level::Recommended => "recommended",
            Level::Optional => "optional",
        };
        match c.status {
            Status::Present if c.detail.is_empty() => writeln!(out, "{label}{dots} present")?,
            Status::Present => writeln!(out, "{label}{dots} present ({})", c.detail)?,
            Status::Missing => {
                writeln!(out, "{label}{dots} missing ({level}: {})", c.impact)?;
                writeln!(out, "{:WIDTH$}   why: {}", "", c.detail)?;
                writeln!(out, "{:WIDTH$}   kernel: {}", "", c.kconfig)?;
            }
            Status::Unknown => {
                writeln!(
                    out,
                    "{label}{dots} unknown ({level}; without it: {})",
                    c.impact
                )?;
                writeln!(out, "{:WIDTH$}   why: {}", "", c.detail)?;
                writeln!(out, "{:WIDTH$}   kernel: {}", "", c.kconfig)?;
            }
        }
    }
    let count = |lvl: Level, st: Status| {
        r.checks
            .iter()
            .filter(|c| c.level == lvl && c.status == st)
            .count()
    };
    writeln!(out)?;
    let missing_req = r.missing_required();
    if missing_req == 0 {
        writeln!(
            out,
            "result: ok, all required features present ({} recommended missing, {} unknown)",
            count(Level::Recommended, Status::Missing),
            r.checks
                .iter()
                .filter(|c| c.status == Status::Unknown)
                .count()
        )?;
    } else {
        writeln!(
            out,
            "result: {missing_req} required feature(s) missing, containers cannot start on this host"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_HYBRID: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn filesystems_are_the_last_column() {
        let fs = parse_filesystems("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n\n");
        assert_eq!(fs, vec!["sysfs", "tmpfs", "ext4", "overlay"]);
    }

    #[test]
    fn kernel_config_values_and_not_set() {
        let cfg = parse_kernel_config(
            "#\n# Automatically generated\nCONFIG_VETH=m\nCONFIG_BRIDGE=y\n# CONFIG_USER_NS is not set\nCONFIG_LOCALVERSION=\"-v8\"\nNOT_CONFIG=y\n",
        );
        assert_eq!(cfg.get("CONFIG_VETH").map(String::as_str), Some("m"));
        assert_eq!(cfg.get("CONFIG_BRIDGE").map(String::as_str), Some("y"));
        assert_eq!(cfg.get("CONFIG_USER_NS").map(String::as_str), Some("n"));
        assert_eq!(
            cfg.get("CONFIG_LOCALVERSION").map(String::as_str),
            Some("\"-v8\"")
        );
        assert!(!cfg.contains_key("NOT_CONFIG"));
    }

    #[test]
    fn mountinfo_cgroup_hierarchies() {
        let m = parse_mountinfo(MOUNTINFO_HYBRID);
        assert_eq!(m.len(), 8);
        let cg = cgroup_mounts(&m);
        assert_eq!(cg.v2, vec!["/sys/fs/cgroup/unified"]);
        assert_eq!(cg.v1.len(), 4);
        assert_eq!(cg.v1[0].0, "/sys/fs/cgroup/cpu,cpuacct");
        assert_eq!(cg.v1[0].1, vec!["cpu", "cpuacct"]);
        assert!(cg.v1[3].1.is_empty(), "name=systemd binds no controller");
        assert_eq!(
            cg.v1_controllers(),
            vec!["cpu", "cpuacct", "memory", "pids"]
        );
    }

    #[test]
    fn mountinfo_unescapes_paths_and_skips_junk() {
        let m = parse_mountinfo(
            "garbage\n50 1 0:40 / /mnt/my\\040disk rw - ext4 /dev/sda1 rw\n60 1 0:41 / / rw - rootfs rootfs rw\n",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/mnt/my disk");
        assert_eq!(m[1].fs_type, "rootfs");
    }

    #[test]
    fn pure_v2_mount() {
        let cg = cgroup_mounts(&parse_mountinfo(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
        ));
        assert!(cg.v1.is_empty());
        assert_eq!(cg.v2, vec!["/sys/fs/cgroup"]);
    }

    #[test]
    fn proc_cgroups_enabled_column() {
        let c = parse_proc_cgroups(
            "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\nmemory\t0\t70\t0\npids\t8\t1\t1\n",
        );
        assert_eq!(c.get("memory"), Some(&false));
        assert_eq!(c.get("pids"), Some(&true));
        assert_eq!(c.get("blkio"), None);
    }

    #[test]
    fn seccomp_line() {
        assert_eq!(
            parse_seccomp_status("Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"),
            Some(2)
        );
        assert_eq!(parse_seccomp_status("Seccomp:\t0\n"), Some(0));
        assert_eq!(parse_seccomp_status("Name:\tx\nNoNewPrivs:\t0\n"), None);
    }

    #[test]
    fn modules_lists() {
        let dep = "kernel/net/bridge/bridge.ko.xz: kernel/net/802/stp.ko.xz kernel/net/llc/llc.ko.xz\nkernel/drivers/net/veth.ko:\n";
        assert!(module_listed(dep, "bridge"));
        assert!(module_listed(dep, "veth"));
        assert!(
            !module_listed(dep, "stp"),
            "dependencies are not modules of their own line"
        );
        assert!(!module_listed(dep, "overlay"));
        assert!(module_listed("kernel/fs/overlayfs/overlay.ko\n", "overlay"));
        assert!(!module_listed(
            "kernel/net/bridge/bridge_extra.ko\n",
            "bridge"
        ));
    }

    #[test]
    fn kernel_versions_and_cmdline() {
        assert_eq!(parse_kernel_version("6.1.0-18-arm64"), Some((6, 1)));
        assert_eq!(parse_kernel_version("5.10.110-v7l+"), Some((5, 10)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert!(cmdline_disables(
            "console=tty1 cgroup_disable=memory rootwait",
            "memory"
        ));
        assert!(cmdline_disables("cgroup_disable=cpuset,memory", "memory"));
        assert!(!cmdline_disables(
            "cgroup_enable=memory cgroup_memory=1",
            "memory"
        ));
    }

    /// A fake root tree: `files` are (path, content); directories in `dirs` are created empty.
    fn fake_root(name: &str, files: &[(&str, &str)], dirs: &[&str]) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "coracle-check-config-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        for (p, content) in files {
            let path = root.join(p.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        for d in dirs {
            std::fs::create_dir_all(root.join(d.trim_start_matches('/'))).unwrap();
        }
        root
    }

    fn find<'a>(r: &'a Report, section: &str, name: &str) -> &'a Check {
        r.checks
            .iter()
            .find(|c| c.section == section && c.name == name)
            .unwrap_or_else(|| panic!("no check {section}: {name}"))
    }

    const NS: &[(&str, &str)] = &[
        ("/proc/self/ns/mnt", ""),
        ("/proc/self/ns/pid", ""),
        ("/proc/self/ns/uts", ""),
        ("/proc/self/ns/ipc", ""),
        ("/proc/self/ns/net", ""),
    ];

    #[test]
    fn raspberry_pi_without_memcg_fails_with_a_cmdline_hint() {
        let mut files: Vec<(&str, &str)> = NS.to_vec();
        files.extend([
            ("/proc/sys/kernel/osrelease", "5.10.103-v7l+\n"),
            (
                "/proc/filesystems",
                "nodev\ttmpfs\nnodev\tdevpts\nnodev\tcgroup\n\text4\n",
            ),
            (
                "/proc/self/mountinfo",
                "1 0 179:2 / / rw - ext4 /dev/root rw\n\
                 2 1 0:20 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n\
                 3 1 0:21 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n",
            ),
            (
                "/proc/cgroups",
                "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t1\t0\npids\t2\t1\t1\n",
            ),
            ("/proc/self/status", "Seccomp:\t0\n"),
            ("/proc/sys/net/ipv4/ip_forward", "1\n"),
            (
                "/lib/modules/5.10.103-v7l+/modules.dep",
                "kernel/fs/overlayfs/overlay.ko:\nkernel/drivers/net/veth.ko:\n",
            ),
        ]);
        let root = fake_root("rpi", &files, &["/sys/class/net/eth0"]);
        let r = probe(&Host::new(&root));
        let h = find(&r, "cgroups", "hierarchy");
        assert_eq!(h.status, Status::Missing);
        assert!(
            h.detail.contains("cgroup_enable=memory cgroup_memory=1"),
            "{}",
            h.detail
        );
        assert_eq!(find(&r, "cgroups", "pids").status, Status::Present);
        let ov = find(&r, "filesystems", "overlay");
        assert_eq!(ov.status, Status::Present, "{}", ov.detail);
        assert_eq!(find(&r, "network", "veth").status, Status::Present);
        assert_eq!(find(&r, "network", "bridge").status, Status::Unknown);
        assert_eq!(find(&r, "security", "seccomp").status, Status::Unknown);
        assert_eq!(find(&r, "namespaces", "user").status, Status::Missing);
        assert_eq!(r.exit_code(), 1);
        let mut out = Vec::new();
        write_report(&mut out, &r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("cgroups: hierarchy"), "{text}");
        assert!(
            text.contains("missing (required: containers cannot start"),
            "{text}"
        );
        assert!(text.contains("network: bridge"), "{text}");
        assert!(text.contains("unknown (recommended"), "{text}");
        assert!(
            text.contains("result: 1 required feature(s) missing"),
            "{text}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v2_host_with_config_passes() {
        let mut files: Vec<(&str, &str)> = NS.to_vec();
        files.extend([
            ("/proc/sys/kernel/osrelease", "6.1.0-18-arm64\n"),
            ("/proc/filesystems", "nodev\ttmpfs\nnodev\tdevpts\nnodev\tcgroup2\nnodev\toverlay\nnodev\tmqueue\n"),
            ("/proc/self/mountinfo", "1 0 179:2 / / rw - ext4 /dev/root rw\n2 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
            ("/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n"),
            ("/boot/config-6.1.0-18-arm64", "CONFIG_VETH=m\nCONFIG_BRIDGE=m\nCONFIG_CGROUP_BPF=y\n# CONFIG_SECCOMP_FILTER is not set\n"),
            ("/proc/self/status", "Seccomp:\t0\n"),
            ("/proc/sys/net/ipv4/ip_forward", "0\n"),
        ]);
        let root = fake_root("v2", &files, &[]);
        let r = probe(&Host::new(&root));
        assert_eq!(
            r.kernel_config_source.as_deref(),
            Some("/boot/config-6.1.0-18-arm64")
        );
        assert_eq!(find(&r, "cgroups", "hierarchy").status, Status::Present);
        assert_eq!(find(&r, "cgroups", "io").status, Status::Present);
        assert_eq!(find(&r, "cgroups", "freezer").status, Status::Present);
        assert_eq!(find(&r, "cgroups", "devices").status, Status::Present);
        assert_eq!(find(&r, "network", "bridge").status, Status::Present);
        assert!(find(&r, "network", "veth").detail.contains("=m"));
        assert_eq!(find(&r, "security", "seccomp").status, Status::Missing);
        assert_eq!(find(&r, "network", "ip forwarding").status, Status::Missing);
        assert_eq!(r.exit_code(), 0);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn missing_namespace_and_initramfs_root_are_required() {
        let files = [
            ("/proc/self/ns/mnt", ""),
            ("/proc/filesystems", "nodev\ttmpfs\nnodev\tdevpts\n"),
            ("/proc/self/mountinfo", "1 0 0:1 / / rw - rootfs rootfs rw\n2 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
        ];
        let root = fake_root("initramfs", &files, &[]);
        let r = probe(&Host::new(&root));
        assert_eq!(find(&r, "namespaces", "mount").status, Status::Present);
        assert_eq!(find(&r, "namespaces", "pid").status, Status::Missing);
        assert_eq!(find(&r, "security", "pivot_root").status, Status::Missing);
        assert_eq!(find(&r, "filesystems", "overlay").status, Status::Missing);
        assert_eq!(find(&r, "filesystems", "overlay").level, Level::Recommended);
        assert_eq!(r.missing_required(), 5, "pid, uts, ipc, net, pivot_root");
        std::fs::remove_dir_all(root).unwrap();
    }
}
