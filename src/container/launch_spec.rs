//! A container's `HostConfig` translated into the launcher's `LaunchSpec`:
//! pure functions, no I/O (the engine creates directories and pipes and
//! passes them in).

use std::path::PathBuf;

use super::config::HostConfig;
use super::create;
use super::error::ContainerError;
use super::isolation::Isolation;
use super::model::Container;
use super::policy::DEFAULT_SHM;
use crate::runtime::spec::{LaunchSpec, MountKind, MountSpec, NetworkMode, RootfsSpec, StdioSpec};

/// Where a container's own files are (from the container store).
pub struct SpecPaths {
    pub upper_dir: PathBuf,
    pub work_dir: PathBuf,
    pub merged_dir: PathBuf,
    /// The container's directory: generated /etc files.
    pub dir: PathBuf,
}

/// Host paths of `-v` binds (created when missing, as dockerd does).
pub fn bind_sources(h: &HostConfig) -> Result<Vec<String>, ContainerError> {
    h.binds
        .iter()
        .map(|b| create::parse_bind(b).map(|(src, _, _)| src))
        // Named volumes are the volume store's (container/volume_mounts.rs).
        .filter(|s| s.as_ref().map_or(true, |s| s.starts_with('/')))
        .collect()
}

/// Binds, `--mount`s and `--tmpfs`, in that order.
pub fn mounts_of(h: &HostConfig) -> Result<Vec<MountSpec>, ContainerError> {
    let mut mounts = Vec::new();
    for b in &h.binds {
        let (src, dst, ro) = create::parse_bind(b)?;
        if !src.starts_with('/') {
            continue; // a named volume: see container/volume_mounts.rs
        }
        mounts.push(MountSpec {
            kind: MountKind::Bind,
            source: src.into(),
            target: dst.into(),
            readonly: ro,
            options: String::new(),
        });
    }
    for m in h.mounts.iter().filter(|m| m.kind != "volume") {
        let (kind, options) = match m.kind.as_str() {
            "tmpfs" => {
                let mut opts = Vec::new();
                if let Some(t) = &m.tmpfs_options {
                    if t.size_bytes > 0 {
                        opts.push(format!("size={}", t.size_bytes));
                    }
                    if t.mode != 0 {
                        opts.push(format!("mode={:o}", t.mode));
                    }
                }
                (MountKind::Tmpfs, opts.join(","))
            }
            _ => (MountKind::Bind, String::new()),
        };
        mounts.push(MountSpec {
            kind,
            source: m.source.clone().into(),
            target: m.target.clone().into(),
            readonly: m.read_only,
            options,
        });
    }
    for (target, opts) in &h.tmpfs {
        mounts.push(MountSpec {
            kind: MountKind::Tmpfs,
            source: "tmpfs".into(),
            target: target.into(),
            readonly: false,
            options: opts.clone(),
        });
    }
    Ok(mounts)
}

/// The process environment: the merged Env plus HOSTNAME (and TERM on a TTY).
pub fn env_of(c: &Container) -> Vec<String> {
    let mut env = c.config.env.clone();
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", c.config.hostname));
    }
    if c.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env
}

/// The launch spec for the container's first process.
pub fn launch_spec(
    c: &Container,
    lower_dirs: Vec<PathBuf>,
    paths: SpecPaths,
    network: NetworkMode,
    mounts: Vec<MountSpec>,
    iso: Isolation,
    stdio: StdioSpec,
) -> LaunchSpec {
    let h = &c.host_config;
    let env = env_of(c);
    let dir = &paths.dir;
    LaunchSpec {
        rootfs: RootfsSpec {
            lower_dirs,
            upper_dir: paths.upper_dir,
            work_dir: paths.work_dir,
            merged_dir: paths.merged_dir,
            readonly: h.readonly_rootfs,
        },
        args: std::iter::once(c.path.clone())
            .chain(c.args.iter().cloned())
            .collect(),
        env,
        cwd: if c.config.working_dir.is_empty() {
            "/".into()
        } else {
            c.config.working_dir.clone()
        },
        user: c.config.user.clone(),
        group_add: h.group_add.clone(),
        hostname: c.config.hostname.clone(),
        domainname: c.config.domainname.clone(),
        network,
        etc_hostname: dir.join("hostname"),
        etc_hosts: dir.join("hosts"),
        etc_resolv_conf: dir.join("resolv.conf"),
        mounts,
        shm_size: if h.shm_size > 0 {
            h.shm_size as u64
        } else {
            DEFAULT_SHM
        },
        privileged: h.privileged,
        pid_ns: iso.pid_ns,
        ipc_ns: iso.ipc_ns,
        devices: iso.devices,
        cap_add: h.cap_add.clone(),
        cap_drop: h.cap_drop.clone(),
        ulimits: h.launch_ulimits(),
        sysctls: h.sysctls.clone(),
        init: h.init.unwrap_or(false),
        cgroupns: h.cgroupns_mode == "private",
        cgroup_view: Vec::new(),
        seccomp: iso.security.seccomp,
        no_new_privs: iso.security.no_new_privs,
        userns: None,
        stdio,
    }
}
