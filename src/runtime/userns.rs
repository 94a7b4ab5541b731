//! User namespaces (`--userns-remap`): the id mapping, the namespace a
//! container's process enters, and its image layers as idmapped mounts.
//!
//! How a remapped container is made (see `launch.rs` for the rest):
//! - the daemon makes the user namespace with a throwaway helper cloned
//!   with CLONE_NEWUSER, writes its `uid_map`/`gid_map`, keeps a handle
//!   (`/proc/HELPER/ns/user`) and kills the helper;
//! - the container's child, still host root, joins the network namespace
//!   the daemon prepared and makes its other namespaces, so every one of
//!   them but the user namespace belongs to the host's (as the network
//!   namespace does under dockerd); it mounts each image layer as an
//!   idmapped mount (on-disk 0 shows as the first subordinate id, no
//!   chowned copies) under the overlay, with the container's upper dir
//!   owned by the remapped root;
//! - from then on it creates files as the remapped root (fsuid/fsgid, its
//!   capabilities kept by SECBIT_NO_SETUID_FIXUP): mount points, /dev,
//!   a volume's copy-up, the working dir;
//! - last, before the user switch, seccomp and exec, it enters the user
//!   namespace (`enter`): container root is the first subordinate uid.

use super::errors::{setup, LaunchError, Stage};
use super::launch::reap;
use super::mounts::{attach_tree, clone_tree};
use super::spec::RootfsSpec;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sched::{setns, CloneFlags};
use nix::sys::stat::{fstat, Mode};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// One line of a uid_map / gid_map: `count` ids from `inner` (in the
/// container) onto `outer` (on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub inner: u32,
    pub outer: u32,
    pub count: u32,
}

/// A container's uid and gid mappings; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdMap {
    uids: Vec<IdRange>,
    gids: Vec<IdRange>,
}

fn lookup(ranges: &[IdRange], id: u32, out: bool) -> Option<u32> {
    ranges.iter().find_map(|r| {
        let (from, to) = if out {
            (r.inner, r.outer)
        } else {
            (r.outer, r.inner)
        };
        let off = id.checked_sub(from)?;
        if off < r.count {
            to.checked_add(off)
        } else {
            None
        }
    })
}

impl IdMap {
    /// `None` when either side has no range.
    pub fn new(uids: Vec<IdRange>, gids: Vec<IdRange>) -> Option<IdMap> {
        (!uids.is_empty() && !gids.is_empty()).then_some(IdMap { uids, gids })
    }

    /// The host uid of container root.
    pub fn root_uid(&self) -> u32 {
        self.uids.first().map_or(u32::MAX, |r| r.outer)
    }

    pub fn root_gid(&self) -> u32 {
        self.gids.first().map_or(u32::MAX, |r| r.outer)
    }

    /// A container uid as the host sees it (`None`: unmapped).
    pub fn host_uid(&self, uid: u32) -> Option<u32> {
        lookup(&self.uids, uid, true)
    }

    pub fn host_gid(&self, gid: u32) -> Option<u32> {
        lookup(&self.gids, gid, true)
    }

    /// A host uid as the container sees it (`None`: unmapped).
    pub fn container_uid(&self, uid: u32) -> Option<u32> {
        lookup(&self.uids, uid, false)
    }

    pub fn container_gid(&self, gid: u32) -> Option<u32> {
        lookup(&self.gids, gid, false)
    }

    fn text(ranges: &[IdRange]) -> String {
        ranges
            .iter()
            .map(|r| format!("{} {} {}\n", r.inner, r.outer, r.count))
            .collect()
    }
}

/// A new user namespace with `map`, held by the returned fd.
///
/// The namespace exists once clone returns, so the maps are written at
/// once and the helper is killed straight away: the wait for it is the
/// reaping of a process already SIGKILLed, never a wait on its work.
pub fn make_userns(map: &IdMap) -> Result<OwnedFd, LaunchError> {
    let mut stack = vec![0u8; 16 * 1024];
    let body = Box::new(|| -> isize {
        loop {
            // SAFETY: pause only sleeps; the parent SIGKILLs us.
            unsafe {
                libc::pause();
            }
        }
    });
    // SAFETY: the child gets a copy-on-write copy of the daemon (no
    // CLONE_VM), runs `body` on its own copy of `stack`, touches nothing
    // else and never returns; the daemon is single-threaded.
    let pid = unsafe {
        nix::sched::clone(
            body,
            &mut stack,
            CloneFlags::CLONE_NEWUSER,
            Some(libc::SIGCHLD),
        )
    }
    .stage("clone a user namespace")?;
    let made = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), IdMap::text(&map.uids))
            .stage("write uid_map")?;
        std::fs::write(format!("/proc/{pid}/gid_map"), IdMap::text(&map.gids))
            .stage("write gid_map")?;
        open(
            format!("/proc/{pid}/ns/user").as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .stage("open the user namespace")
    })();
    reap(pid, true);
    made
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// A detached copy of the mount at `path`, idmapped through `userns`.
pub fn idmapped(path: &Path, userns: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let tree = clone_tree(path)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    // SAFETY: mount_setattr on our detached tree with a live attr struct
    // of the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r)?;
    Ok(tree)
}

/// The refusal when the kernel cannot idmap a layer.
fn no_idmap(what: &Path, e: Errno) -> LaunchError {
    LaunchError::Setup(format!(
        "user namespace remapping needs idmapped mounts (Linux 5.12, overlayfs on idmapped layers 5.19): idmap {}: {}",
        what.display(),
        crate::goerr::errno_text(e)
    ))
}

/// In the container's own mount namespace (child, host root): each layer
/// idmapped under `<container dir>/idmap/<n>`, the upper dir owned by the
/// remapped root. Returns the spec to mount the overlay from.
pub fn idmapped_rootfs(
    r: &RootfsSpec,
    userns: RawFd,
    map: &IdMap,
) -> Result<RootfsSpec, LaunchError> {
    // SAFETY: the launcher keeps this fd open for the child's whole setup.
    let ns = unsafe { BorrowedFd::borrow_raw(userns) };
    let Some(dir) = r.merged_dir.parent() else {
        return setup("rootfs: merged dir has no parent");
    };
    let base = dir.join("idmap");
    let mut out = r.clone();
    out.lower_dirs = Vec::with_capacity(r.lower_dirs.len());
    for (i, layer) in r.lower_dirs.iter().enumerate() {
        let target: PathBuf = base.join(i.to_string());
        std::fs::create_dir_all(&target).stage(format!("mkdir {}", target.display()))?;
        let tree = idmapped(layer, ns).map_err(|e| no_idmap(layer, e))?;
        attach_tree(&tree, &target).stage(format!("attach idmapped layer {i}"))?;
        out.lower_dirs.push(target);
    }
    nix::unistd::chown(
        &r.upper_dir,
        Some(map.root_uid().into()),
        Some(map.root_gid().into()),
    )
    .stage("chown the upper dir to the remapped root")?;
    Ok(out)
}

/// The container's /etc/hostname, hosts and resolv.conf (host files bound
/// in) belong to the remapped root, as dockerd makes them.
pub fn give_to_root(files: &[&PathBuf], map: &IdMap) -> Result<(), LaunchError> {
    for f in files {
        if f.exists() {
            nix::unistd::chown(
                f.as_path(),
                Some(map.root_uid().into()),
                Some(map.root_gid().into()),
            )
            .stage(format!("chown {}", f.display()))?;
        }
    }
    Ok(())
}

const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;

/// Create files as the remapped root from now on, keeping the host
/// root's capabilities for the remaining mounts.
pub fn act_as_remapped_root(map: &IdMap) -> Result<(), LaunchError> {
    act_as(map.root_uid(), map.root_gid())
}

/// `act_as_remapped_root` with the ids themselves.
pub fn act_as(uid: u32, gid: u32) -> Result<(), LaunchError> {
    // SAFETY: plain prctl; needs CAP_SETPCAP, which host root has.
    let r = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0) };
    Errno::result(r).stage("keep capabilities across the fsuid change")?;
    // SAFETY: setfsuid/setfsgid cannot fail in a way that matters here:
    // the kernel returns the previous id either way.
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
    }
    Ok(())
}

/// Enter the user namespace (full capabilities in it, none over the
/// host's) and clear the securebit `act_as_remapped_root` set, so the
/// user switch that follows drops capabilities as usual.
pub fn enter(userns: RawFd) -> Result<(), LaunchError> {
    // SAFETY: the launcher keeps this fd open until exec.
    let ns = unsafe { BorrowedFd::borrow_raw(userns) };
    setns(ns, CloneFlags::CLONE_NEWUSER).stage("join user namespace")?;
    // SAFETY: plain prctl; full capabilities in the new namespace.
    let r = unsafe { libc::prctl(libc::PR_SET_SECUREBITS, 0 as libc::c_ulong, 0, 0, 0) };
    Errno::result(r).stage("reset securebits")?;
    Ok(())
}

/// For an exec: the user namespace of `pid` when it is not the caller's
/// own (a remapped container), opened in the daemon's view of /proc.
pub fn of_process(pid: nix::unistd::Pid) -> Result<Option<OwnedFd>, LaunchError> {
    let theirs = super::launch::open_ns(pid, "user")?;
    let ours = open(
        "/proc/self/ns/user",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .stage("open own user namespace")?;
    let a = fstat(&theirs).stage("stat user namespace")?;
    let b = fstat(&ours).stage("stat own user namespace")?;
    Ok((a.st_ino != b.st_ino || a.st_dev != b.st_dev).then_some(theirs))
}

/// At daemon start-up: whether this kernel can idmap a mount of `dir`
/// through a namespace of `map` (the clear refusal, not a failure at each
/// container start). Overlayfs on idmapped layers is checked by release.
pub fn probe(map: &IdMap, dir: &Path) -> Result<(), String> {
    let (major, minor) = kernel_release();
    if (major, minor) < (5, 19) {
        return Err(format!(
            "userns-remap needs Linux 5.19 or later (idmapped overlayfs layers); this kernel is {major}.{minor}"
        ));
    }
    let ns = make_userns(map).map_err(|e| format!("userns-remap: {e}"))?;
    idmapped(dir, ns.as_fd())
        .map(drop)
        .map_err(|e| format!("userns-remap: {}", no_idmap(dir, e)))
}

fn kernel_release() -> (u32, u32) {
    let rel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut it = rel.split(|c: char| !c.is_ascii_digit());
    let n = |s: Option<&str>| s.and_then(|s| s.parse().ok()).unwrap_or(0);
    (n(it.next()), n(it.next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_both_ways() {
        let r = |inner, outer, count| IdRange {
            inner,
            outer,
            count,
        };
        let m = IdMap::new(
            vec![r(0, 100000, 10), r(10, 300000, 5)],
            vec![r(0, 200000, 65536)],
        )
        .unwrap();
        assert_eq!(m.root_uid(), 100000);
        assert_eq!(m.root_gid(), 200000);
        assert_eq!(m.host_uid(0), Some(100000));
        assert_eq!(m.host_uid(12), Some(300002));
        assert_eq!(m.host_uid(15), None);
        assert_eq!(m.container_uid(300004), Some(14));
        assert_eq!(m.container_uid(0), None);
        assert_eq!(m.container_gid(265535), Some(65535));
        assert_eq!(IdMap::text(&m.uids), "0 100000 10\n10 300000 5\n");
        assert!(IdMap::new(vec![], vec![r(0, 1, 1)]).is_none());
    }
}
