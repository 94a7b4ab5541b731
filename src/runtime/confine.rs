//! The last filesystem steps of a container's first process: pivot_root
//! into its rootfs, dockerd's masked and read-only /proc and /sys paths, a
//! read-only root, and namespaced sysctls.

use super::errors::{setup, LaunchError, Stage};
use super::mounts::{mnt, remount_ro};
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags, MsFlags};
use std::fs;
use std::path::Path;

/// dockerd's masked paths (oci/defaults.go).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// dockerd's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// chdir into `root`, pivot_root(".", "."), detach the old root.
pub fn pivot(root: &Path) -> Result<(), LaunchError> {
    nix::unistd::chdir(root).stage("chdir to rootfs")?;
    nix::unistd::pivot_root(".", ".").stage("pivot_root")?;
    mnt(
        None,
        Path::new("."),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )
    .stage("make old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).stage("unmount old root")?;
    nix::unistd::chdir("/").stage("chdir /")?;
    Ok(())
}

/// After pivot_root: mask and write-protect dockerd's lists.
pub fn mask_and_protect() -> Result<(), LaunchError> {
    for p in MASKED_PATHS {
        let path = Path::new(p);
        let md = match fs::symlink_metadata(path) {
            Ok(md) => md,
            Err(_) => continue,
        };
        let r = if md.is_dir() {
            mnt(
                Some(Path::new("tmpfs")),
                path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                None,
            )
        } else {
            mnt(
                Some(Path::new("/dev/null")),
                path,
                None,
                MsFlags::MS_BIND,
                None,
            )
        };
        match r {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(e).stage(format!("mask {p}")),
        }
    }
    for p in READONLY_PATHS {
        let path = Path::new(p);
        if fs::symlink_metadata(path).is_err() {
            continue;
        }
        match mnt(
            Some(path),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        ) {
            Ok(()) => {}
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e).stage(format!("bind {p}")),
        }
        remount_ro(path).stage(format!("remount {p} read-only"))?;
    }
    Ok(())
}

/// `ReadonlyRootfs`: the root mount itself becomes read-only.
pub fn readonly_root() -> Result<(), LaunchError> {
    remount_ro(Path::new("/")).stage("remount / read-only")
}

/// Write namespaced sysctls through the container's /proc/sys.
pub fn sysctls(
    sysctls: &std::collections::BTreeMap<String, String>,
    host_network: bool,
) -> Result<(), LaunchError> {
    for (k, v) in sysctls {
        if k.is_empty() || k.contains('/') || k.contains("..") || k.starts_with('.') {
            return setup(format!("sysctl {k:?}: invalid name"));
        }
        if k.starts_with("net.") && host_network {
            return setup(format!(
                "sysctl {k:?} not allowed in host network namespace"
            ));
        }
        let path = Path::new("/proc/sys").join(k.replace('.', "/"));
        fs::write(&path, v.as_bytes()).stage(format!("sysctl {k}={v}"))?;
    }
    Ok(())
}
