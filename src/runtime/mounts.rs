//! The container's filesystem view, built inside its new mount namespace:
//! rootfs (overlay, or a one-time copy when overlayfs is missing), /proc,
//! /sys, /dev and friends, the /etc files, the user's binds and tmpfs,
//! `--device` nodes and shared /dev/shm; pivot_root and the masks are in
//! `confine.rs`, the rootfs itself in `rootfs.rs`.
//!
//! Every function here runs in the child after `unshare(CLONE_NEWNS)` and
//! after `/` was made rslave, so nothing mounted here reaches the host.

#[cfg(test)]
use super::rootfs::overlay_options;
#[cfg(test)]
use super::spec::RootfsSpec;

use super::errors::{setup, LaunchError, Stage};
use super::spec::{LaunchSpec, MountKind, MountSpec, NsMode};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use std::ffi::{CString, OsString};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

pub(crate) fn mnt(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), Errno> {
    mount(src, target, fstype, flags, data)
}

fn rel(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(r) => format!("/{}", r.display()),
        Err(_) => p.display().to_string(),
    }
}

/// Make every mount a slave of the host's: host mounts still propagate in
/// (runc's default rootfs propagation), nothing propagates out.
pub fn make_rslave() -> Result<(), LaunchError> {
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None,
    )
    .stage("make / rslave")
}

/// Resolve `unsafe_path` inside `root` the way securejoin does: symlinks
/// are followed relative to `root`, and `..` never climbs above it.
pub fn secure_join(root: &Path, unsafe_path: &Path) -> Result<PathBuf, LaunchError> {
    let mut done: Vec<OsString> = Vec::new();
    let mut todo: Vec<OsString> = Vec::new(); // reversed: pop() = next component
    let push_front = |todo: &mut Vec<OsString>, p: &Path| {
        let comps: Vec<OsString> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect();
        todo.extend(comps.into_iter().rev());
    };
    push_front(&mut todo, unsafe_path);
    let mut links = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        let mut cand = root.to_path_buf();
        cand.extend(&done);
        cand.push(&c);
        match fs::symlink_metadata(&cand) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return setup(format!(
                        "resolve {}: too many levels of symbolic links",
                        unsafe_path.display()
                    ));
                }
                let target =
                    fs::read_link(&cand).stage(format!("readlink {}", rel(root, &cand)))?;
                if target.is_absolute() {
                    done.clear();
                }
                push_front(&mut todo, &target);
            }
            _ => done.push(c),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&done);
    Ok(out)
}

// ------------------------------------------------------- standard mounts

fn mkdir_in(root: &Path, path: &str) -> Result<PathBuf, LaunchError> {
    let p = secure_join(root, Path::new(path))?;
    fs::create_dir_all(&p).stage(format!("mkdir {path}"))?;
    Ok(p)
}

/// Create an empty file (and its parents) to mount over, unless present.
fn ensure_file(p: &Path, shown: &str) -> Result<(), LaunchError> {
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).stage(format!(
            "mkdir {}",
            Path::new(shown)
                .parent()
                .unwrap_or(Path::new("/"))
                .display()
        ))?;
    }
    match fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => setup(format!("mount over {shown}: is a directory")),
        Ok(_) => Ok(()),
        Err(_) => fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(p)
            .map(drop)
            .stage(format!("create {shown}")),
    }
}

/// The per-mount flags a bind remount must keep (statvfs → MS_*).
fn kept_flags(p: &Path) -> MsFlags {
    let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
        return MsFlags::empty();
    };
    // SAFETY: statvfs into a zeroed struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid statvfs to fill.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return MsFlags::empty();
    }
    let f = st.f_flag;
    let mut out = MsFlags::empty();
    for (st_bit, ms) in [
        (libc::ST_NOSUID, MsFlags::MS_NOSUID),
        (libc::ST_NODEV, MsFlags::MS_NODEV),
        (libc::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (libc::ST_NOATIME, MsFlags::MS_NOATIME),
        (libc::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f & st_bit != 0 {
            out |= ms;
        }
    }
    out
}

/// The kernel's statfs flag for relatime (linux/statfs.h). glibc's libc bindings name it,
/// musl's do not; musl's statvfs passes the kernel's flags through unchanged.
const ST_RELATIME: libc::c_ulong = 0x1000;

pub(crate) fn remount_ro(p: &Path) -> Result<(), Errno> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept_flags(p);
    mnt(None, p, None, flags, None)
}

const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// /proc, /dev (+ pts, shm, mqueue, nodes, links), /sys, /etc files.
pub fn standard_mounts(spec: &LaunchSpec, root: &Path) -> Result<(), LaunchError> {
    let nosuid_noexec_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let p = mkdir_in(root, "/proc")?;
    mnt(
        Some(Path::new("proc")),
        &p,
        Some("proc"),
        nosuid_noexec_nodev,
        None,
    )
    .stage("mount /proc")?;

    let dev = mkdir_in(root, "/dev")?;
    mnt(
        Some(Path::new("tmpfs")),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        Some("mode=755,size=65536k"),
    )
    .stage("mount /dev")?;
    for (name, major, minor) in DEVICES {
        let node = dev.join(name);
        let made = mknod(
            &node,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(*major, *minor),
        );
        if made.is_err() {
            ensure_file(&node, &format!("/dev/{name}"))?;
            let host = Path::new("/dev").join(name);
            mnt(Some(&host), &node, None, MsFlags::MS_BIND, None)
                .stage(format!("bind /dev/{name}"))?;
        }
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link)).stage(format!("symlink /dev/{link}"))?;
    }
    let pts = mkdir_in(root, "/dev/pts")?;
    mnt(
        Some(Path::new("devpts")),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .stage("mount /dev/pts")?;
    let shm = mkdir_in(root, "/dev/shm")?;
    let size = if spec.shm_size == 0 {
        64 << 20
    } else {
        spec.shm_size
    };
    match spec.ipc_ns {
        NsMode::Private => mnt(
            Some(Path::new("shm")),
            &shm,
            Some("tmpfs"),
            nosuid_noexec_nodev,
            Some(&format!("mode=1777,size={size}")),
        )
        .stage("mount /dev/shm")?,
        NsMode::Host => mnt(
            Some(Path::new("/dev/shm")),
            &shm,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .stage("bind the host's /dev/shm")?,
        NsMode::Join(pid) => shared_shm(pid, &shm)?,
    }
    let mq = mkdir_in(root, "/dev/mqueue")?;
    mnt(
        Some(Path::new("mqueue")),
        &mq,
        Some("mqueue"),
        nosuid_noexec_nodev,
        None,
    )
    .stage("mount /dev/mqueue")?;
    if spec.stdio.tty {
        // runc binds the pty slave over /dev/console. By path, not by
        // /proc/self/fd/0: the fd's mount belongs to the daemon's namespace
        // and mount(2) refuses sources from another namespace (EINVAL).
        let slave = fs::read_link("/proc/self/fd/0").stage("readlink stdin")?;
        let console = dev.join("console");
        ensure_file(&console, "/dev/console")?;
        mnt(Some(&slave), &console, None, MsFlags::MS_BIND, None)
            .stage(format!("bind {} on /dev/console", slave.display()))?;
    }
    let sys = mkdir_in(root, "/sys")?;
    let mut sys_flags = nosuid_noexec_nodev;
    if !spec.privileged {
        sys_flags |= MsFlags::MS_RDONLY;
    }
    mnt(
        Some(Path::new("sysfs")),
        &sys,
        Some("sysfs"),
        sys_flags,
        None,
    )
    .stage("mount /sys")?;
    cgroup_mounts(spec, &sys)?;

    for (src, dst) in [
        (&spec.etc_hostname, "/etc/hostname"),
        (&spec.etc_hosts, "/etc/hosts"),
        (&spec.etc_resolv_conf, "/etc/resolv.conf"),
    ] {
        if src.as_os_str().is_empty() {
            continue;
        }
        let t = secure_join(root, Path::new(dst))?;
        ensure_file(&t, dst)?;
        mnt(Some(src.as_path()), &t, None, MsFlags::MS_BIND, None).stage(format!("bind {dst}"))?;
    }
    Ok(())
}

/// `/sys/fs/cgroup` as runc gives it: the container's own cgroup
/// directories (v1: a tmpfs with one bind per hierarchy and symlinks for
/// co-mounted controllers; v2: one bind), read-only unless privileged. Binds
/// of host paths, so it runs before pivot_root.
fn cgroup_mounts(spec: &LaunchSpec, sys: &Path) -> Result<(), LaunchError> {
    if spec.cgroup_view.is_empty() {
        return Ok(());
    }
    let base = sys.join("fs/cgroup");
    if !base.is_dir() {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV;
    let bind = |src: &Path, dst: &Path, shown: &str| -> Result<(), LaunchError> {
        mnt(Some(src), dst, None, MsFlags::MS_BIND, None).stage(format!("bind {shown}"))?;
        if !spec.privileged {
            remount_ro(dst).stage(format!("remount {shown} read-only"))?;
        }
        Ok(())
    };
    if let [one] = spec.cgroup_view.as_slice() {
        if one.name.is_empty() {
            return bind(&one.dir, &base, "/sys/fs/cgroup");
        }
    }
    mnt(
        Some(Path::new("tmpfs")),
        &base,
        Some("tmpfs"),
        flags,
        Some("mode=755"),
    )
    .stage("mount /sys/fs/cgroup")?;
    for d in &spec.cgroup_view {
        let shown = format!("/sys/fs/cgroup/{}", d.name);
        if d.name.is_empty() || d.name.contains('/') {
            continue;
        }
        let target = base.join(&d.name);
        fs::create_dir(&target).stage(format!("mkdir {shown}"))?;
        bind(&d.dir, &target, &shown)?;
        for a in &d.aliases {
            std::os::unix::fs::symlink(&d.name, base.join(a))
                .stage(format!("symlink /sys/fs/cgroup/{a}"))?;
        }
    }
    if !spec.privileged {
        let ro = flags | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mnt(None, &base, None, ro, None).stage("remount /sys/fs/cgroup read-only")?;
    }
    Ok(())
}

/// `--ipc container:<id>`: a clone of that container's /dev/shm mount,
/// taken inside its mount namespace (mount(2) refuses a bind source from
/// another namespace) and attached here.
fn shared_shm(pid: nix::unistd::Pid, target: &Path) -> Result<(), LaunchError> {
    use nix::fcntl::{open, OFlag};
    use nix::sched::{setns, CloneFlags};
    let own = open(
        "/proc/self/ns/mnt",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .stage("open own mount namespace")?;
    let theirs = super::launch::open_ns(pid, "mnt")?;
    setns(&theirs, CloneFlags::CLONE_NEWNS).stage("enter the ipc container's mounts")?;
    let cloned = clone_tree(Path::new("/dev/shm"));
    setns(&own, CloneFlags::CLONE_NEWNS).stage("return to own mounts")?;
    let tree = cloned.stage("clone the ipc container's /dev/shm")?;
    attach_tree(&tree, target).stage("attach the ipc container's /dev/shm")
}

// Kernel ABI values (linux/mount.h), not in every libc target's bindings.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

fn cpath(p: &Path) -> Result<CString, Errno> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)
}

/// A detached copy of the mount at `path` (`open_tree(OPEN_TREE_CLONE)`),
/// to be changed (idmapped) or attached elsewhere (`attach_tree`).
pub(super) fn clone_tree(path: &Path) -> Result<OwnedFd, Errno> {
    let c = cpath(path)?;
    // SAFETY: open_tree with a valid C string; the fd is owned right away.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    let fd = Errno::result(fd)? as RawFd;
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Attach a detached mount at `target` in the caller's mount namespace.
pub(super) fn attach_tree(tree: &OwnedFd, target: &Path) -> Result<(), Errno> {
    let t = cpath(target)?;
    // SAFETY: move_mount of our own detached tree onto a valid path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// runc's checkProcMount: nothing is mounted on /proc or below it but
/// proc itself and the files lxcfs emulates. `target` is the path inside
/// the container, already cleaned; `is_proc`: a proc filesystem.
pub fn check_proc_target(target: &Path, source: &str, is_proc: bool) -> Result<(), String> {
    const VALID: &[&str] = &[
        "/proc/cpuinfo",
        "/proc/diskstats",
        "/proc/meminfo",
        "/proc/stat",
        "/proc/swaps",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/slabinfo",
        "/proc/sys/kernel/ns_last_pid",
        "/proc/sys/crypto/fips_enabled",
        "/proc/net/dev",
    ];
    if !target.starts_with("/proc") {
        return Ok(());
    }
    if target == Path::new("/proc") {
        if is_proc {
            return Ok(());
        }
        return Err(format!(
            "{source:?} cannot be mounted because it is not of type proc"
        ));
    }
    if VALID.iter().any(|v| target == Path::new(v)) {
        return Ok(());
    }
    Err(format!(
        "{:?} cannot be mounted because it is inside /proc",
        target.display().to_string()
    ))
}

/// `Binds`, `Mounts` and `Tmpfs`, in the given order.
pub fn user_mounts(mounts: &[MountSpec], root: &Path) -> Result<(), LaunchError> {
    for m in mounts {
        let shown = m.target.display().to_string();
        if !m.target.is_absolute() {
            return setup(format!(
                "invalid mount target {shown}: not an absolute path"
            ));
        }
        let t = secure_join(root, &m.target)?;
        // Again after symlinks in the image were resolved.
        let source = match m.kind {
            MountKind::Bind | MountKind::Volume => m.source.display().to_string(),
            MountKind::Tmpfs => "tmpfs".to_string(),
        };
        check_proc_target(Path::new(&rel(root, &t)), &source, false).map_err(LaunchError::Setup)?;
        match m.kind {
            MountKind::Bind | MountKind::Volume => {
                if m.kind == MountKind::Volume {
                    super::copyup::fill_empty(&t, &m.source)
                        .stage(format!("copy {shown} into its volume"))?;
                }
                let md = match fs::metadata(&m.source) {
                    Ok(md) => md,
                    Err(_) => {
                        return setup(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {}",
                            m.source.display()
                        ))
                    }
                };
                if md.is_dir() {
                    fs::create_dir_all(&t).stage(format!("mkdir {shown}"))?;
                } else {
                    ensure_file(&t, &shown)?;
                }
                mnt(
                    Some(&m.source),
                    &t,
                    None,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None,
                )
                .stage(format!("bind {} on {shown}", m.source.display()))?;
                // dockerd's default bind propagation: rprivate.
                mnt(None, &t, None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)
                    .stage(format!("make {shown} rprivate"))?;
                if m.readonly {
                    remount_ro(&t).stage(format!("remount {shown} read-only"))?;
                }
            }
            MountKind::Tmpfs => {
                fs::create_dir_all(&t).stage(format!("mkdir {shown}"))?;
                let (mut flags, data) = super::mount_options::tmpfs_options(&m.options);
                if m.readonly {
                    flags |= MsFlags::MS_RDONLY;
                }
                mnt(
                    Some(Path::new("tmpfs")),
                    &t,
                    Some("tmpfs"),
                    flags,
                    Some(&data),
                )
                .stage(format!("mount tmpfs on {shown}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let root = std::env::temp_dir().join(format!("coracle-sj-{}", std::process::id()));
        fs::create_dir_all(root.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(
            secure_join(&root, Path::new("/a/abs/hosts")).unwrap(),
            root.join("etc/hosts")
        );
        assert_eq!(
            secure_join(&root, Path::new("/a/b/up/x")).unwrap(),
            root.join("x")
        );
        assert_eq!(
            secure_join(&root, Path::new("/../../etc")).unwrap(),
            root.join("etc")
        );
        assert!(secure_join(&root, Path::new("/loop/x")).is_err());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn long_overlay_options_go_relative() {
        let base = PathBuf::from("/var/lib/coracle/overlay2");
        let r = RootfsSpec {
            lower_dirs: (0..60)
                .map(|i| base.join(format!("{i:064}/diff")))
                .collect(),
            upper_dir: base.join("c/diff"),
            work_dir: base.join("c/work"),
            merged_dir: base.join("c/merged"),
            readonly: false,
        };
        let (dir, opts) = overlay_options(&r);
        assert_eq!(dir, Some(base.clone()));
        assert!(opts.starts_with(&format!("lowerdir={:064}/diff:", 0)));
        assert!(opts.ends_with(",upperdir=c/diff,workdir=c/work"));
    }
}
