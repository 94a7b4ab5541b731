//! Device nodes in a container: `--device host[:ctr[:rwm]]` (one node, or
//! every node under a directory, as dockerd's devicesFromPath), the host's
//! /dev nodes under `--privileged` (runc's HostDevices), and
//! `--device-cgroup-rule`. The daemon resolves the nodes and allows them in
//! the device cgroup; the container's first process mknods them.

use super::cgroups::DeviceRule;
use super::errors::{LaunchError, Stage};
use super::mounts::secure_join;
use super::spec::DeviceNode;
use nix::errno::Errno;
use nix::sys::stat::{mknod, Mode, SFlag};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Bounds on a directory given to `--device` (and on /dev under
/// `--privileged`): the daemon walks it while starting the container.
const MAX_NODES: usize = 4096;
const MAX_DEPTH: usize = 8;

/// The device node `md` describes, to be made at `ctr`; None if it is not one.
fn node_of(md: &fs::Metadata, ctr: PathBuf, access: &str) -> Option<DeviceNode> {
    let ft = md.file_type();
    let kind = if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        return None;
    };
    let rdev = md.rdev();
    Some(DeviceNode {
        path: ctr,
        kind,
        major: libc::major(rdev),
        minor: libc::minor(rdev),
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        access: access.to_string(),
    })
}

/// `--device host[:ctr[:rwm]]` resolved against the host's nodes. A
/// directory gives every node below it (symlinks inside not followed), at
/// the same place below `ctr`. Errors are dockerd's.
pub fn from_mapping(host: &str, ctr: &str, access: &str) -> Result<Vec<DeviceNode>, String> {
    let fail = |e: &dyn std::fmt::Display| {
        format!("error gathering device information while adding custom device {host:?}: {e}")
    };
    let md = fs::metadata(host).map_err(|e| fail(&go_io(&e)))?;
    let ctr = if ctr.is_empty() { host } else { ctr };
    if let Some(n) = node_of(&md, ctr.into(), access) {
        return Ok(vec![n]);
    }
    if !md.is_dir() {
        return Err(fail(&"not a device node"));
    }
    let mut out = Vec::new();
    walk(Path::new(host), Path::new(ctr), access, 0, &[], &mut out).map_err(|e| fail(&e))?;
    Ok(out)
}

/// Every device node under the host's /dev, as runc gives a privileged
/// container (not pts, shm, fd, mqueue, nor the console).
pub fn host_devices() -> Vec<DeviceNode> {
    let mut out = Vec::new();
    let skip = [
        "pts",
        "shm",
        "fd",
        "mqueue",
        ".lxc",
        ".lxd-mounts",
        ".udev",
        "console",
    ];
    let _ = walk(
        Path::new("/dev"),
        Path::new("/dev"),
        "rwm",
        0,
        &skip,
        &mut out,
    );
    out
}

fn walk(
    dir: &Path,
    ctr: &Path,
    access: &str,
    depth: usize,
    skip: &[&str],
    out: &mut Vec<DeviceNode>,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(dir)?.filter_map(Result::ok).collect();
    crate::sort::sort_by_key(&mut entries, |e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if skip.iter().any(|s| name.as_os_str() == *s) {
            continue;
        }
        let Ok(md) = fs::symlink_metadata(e.path()) else {
            continue;
        };
        if md.is_dir() {
            walk(&e.path(), &ctr.join(&name), access, depth + 1, skip, out)?;
        } else if let Some(n) = node_of(&md, ctr.join(&name), access) {
            if out.len() >= MAX_NODES {
                return Err(io::Error::other(format!(
                    "more than {MAX_NODES} device nodes"
                )));
            }
            out.push(n);
        }
    }
    Ok(())
}

fn go_io(e: &io::Error) -> String {
    crate::goerr::io_text(e)
}

/// `--device` permissions: one to three of r, w, m.
pub fn valid_access(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

/// `--device-cgroup-rule`: `^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`.
pub fn parse_cgroup_rule(s: &str) -> Option<DeviceRule> {
    let (kind, rest) = s.split_once(' ')?;
    let (numbers, access) = rest.split_once(' ')?;
    let (major, minor) = numbers.split_once(':')?;
    let kind = match kind {
        "a" | "b" | "c" => kind.chars().next()?,
        _ => return None,
    };
    let num = |n: &str| -> Option<Option<u32>> {
        if n == "*" {
            Some(None)
        } else if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
            n.parse().ok().map(Some)
        } else {
            None
        }
    };
    if !valid_access(access) {
        return None;
    }
    Some(DeviceRule::allow(kind, num(major)?, num(minor)?, access))
}

/// The device-cgroup rule that lets the container use `n`.
pub fn rule_for(n: &DeviceNode) -> DeviceRule {
    DeviceRule::allow(n.kind, Some(n.major), Some(n.minor), &n.access)
}

/// In the container's first process, before pivot_root: mknod each node
/// under `root` with the host node's mode and owner. A path that already
/// exists is left alone (runc's rule).
pub fn make_nodes(root: &Path, nodes: &[DeviceNode]) -> Result<(), LaunchError> {
    for n in nodes {
        let shown = n.path.display().to_string();
        let t = secure_join(root, &n.path)?;
        if let Some(parent) = t.parent() {
            fs::create_dir_all(parent).stage(format!("mkdir for device {shown}"))?;
        }
        let kind = if n.kind == 'b' {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        let dev = nix::sys::stat::makedev(u64::from(n.major), u64::from(n.minor));
        match mknod(&t, kind, Mode::from_bits_truncate(n.mode), dev) {
            Ok(()) => {}
            Err(Errno::EEXIST) => continue,
            Err(e) => return Err(e).stage(format!("mknod device {shown}")),
        }
        nix::unistd::chown(
            &t,
            Some(nix::unistd::Uid::from_raw(n.uid)),
            Some(nix::unistd::Gid::from_raw(n.gid)),
        )
        .stage(format!("chown device {shown}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_rules_parse_like_dockerd() {
        let r = parse_cgroup_rule("c 1:3 rwm").unwrap();
        assert_eq!(r.to_string(), "c 1:3 rwm");
        assert_eq!(
            parse_cgroup_rule("b 7:* rw").unwrap().to_string(),
            "b 7:* rw"
        );
        assert_eq!(parse_cgroup_rule("c *:* m").unwrap().to_string(), "c *:* m");
        for bad in [
            "",
            "c 1:3",
            "x 1:3 r",
            "c 1:3 rwx",
            "c a:3 r",
            "c 1:3 rwmr",
            "c 1 r",
        ] {
            assert!(parse_cgroup_rule(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn mappings_resolve_host_nodes() {
        let n = from_mapping("/dev/null", "/dev/mynull", "rw").unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].kind, n[0].major, n[0].minor), ('c', 1, 3));
        assert_eq!(n[0].path, Path::new("/dev/mynull"));
        let e = from_mapping("/dev/nope-nope", "", "rwm").unwrap_err();
        assert_eq!(e, "error gathering device information while adding custom device \"/dev/nope-nope\": no such file or directory");
        assert!(from_mapping("/etc/hostname", "", "rwm")
            .unwrap_err()
            .ends_with("not a device node"));
        assert!(host_devices()
            .iter()
            .any(|d| d.path == Path::new("/dev/null")));
    }
}
