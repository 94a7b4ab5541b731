//! What `check-config` learns about the host: files under /proc, /sys and
//! /boot read through `Host` (so tests can fake them), parsed into `Facts`.

use super::Status;
use crate::runtime::mountinfo::{parse as parse_mountinfo, MountEntry};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------
// Reading the host

/// Read-only view of a root filesystem (`/` on a real host, a fixture tree in tests).
pub struct Host {
    pub(super) root: PathBuf,
}

impl Host {
    pub fn new(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    pub(super) fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    pub(super) fn read(&self, p: &str) -> Option<String> {
        std::fs::read_to_string(self.path(p)).ok()
    }

    pub(super) fn exists(&self, p: &str) -> bool {
        // symlink_metadata: /proc/self/ns/* are magic links whose targets do not resolve.
        std::fs::symlink_metadata(self.path(p)).is_ok()
    }

    pub(super) fn read_gz(&self, p: &str) -> Option<String> {
        let f = std::fs::File::open(self.path(p)).ok()?;
        let mut s = String::new();
        // The kernel config is tens of KiB; cap it so a corrupt file cannot eat memory.
        flate2::read::GzDecoder::new(f)
            .take(8 << 20)
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    }

    pub(super) fn list_dir(&self, p: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(p))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        crate::sort::sort(&mut names);
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
pub(super) const V1_CONTROLLERS: &[&str] = &[
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
        crate::sort::sort(&mut c);
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
pub(super) struct Facts {
    pub(super) release: String,
    pub(super) config: Option<BTreeMap<String, String>>,
    pub(super) config_source: Option<String>,
    pub(super) filesystems: Vec<String>,
    pub(super) mounts: Vec<MountEntry>,
    pub(super) proc_cgroups: BTreeMap<String, bool>,
    pub(super) cmdline: String,
    pub(super) modules_builtin: Option<String>,
    pub(super) modules_dep: Option<String>,
}

impl Facts {
    pub(super) fn gather(host: &Host) -> Facts {
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
    pub(super) fn kconfig(&self, key: &str) -> Option<(bool, String)> {
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
    pub(super) fn kernel_feature(&self, host: &Host, key: &str, module: &str) -> (Status, String) {
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

    pub(super) fn has_fs(&self, name: &str) -> bool {
        self.filesystems.iter().any(|f| f == name)
    }

    /// A filesystem: registered now, or a module/option that registers it on first mount.
    pub(super) fn filesystem(
        &self,
        host: &Host,
        fs: &str,
        key: &str,
        module: &str,
    ) -> (Status, String) {
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
