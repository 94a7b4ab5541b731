//! A container's changes as a layer tar (`docker commit`): its overlay
//! upper dir walked through fds, whiteouts (0/0 character devices) turned
//! into `.wh.<name>` files and opaque directories (`trusted.overlay.opaque`)
//! into `.wh..wh..opq` markers, the OCI/AUFS form dockerd writes. Paths
//! dockerd keeps in the container's init layer (mount points for /etc
//! files, /dev, /proc, /sys) are not changes and are left out, as `docker
//! diff` leaves them out.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;

use super::gotar::{write_end, xattr_in, EntryHook, Header, TreeWriter, TYPE_REG};
use crate::runtime::inroot::{list_dir, open_in, Root};

/// Init-layer paths (dockerd's `initlayer`): never part of a commit.
const INIT: &[&str] = &[
    ".dockerenv",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/mtab",
    "dev",
    "proc",
    "sys",
];

fn is_init(path: &[u8]) -> bool {
    let p = path.strip_suffix(b"/").unwrap_or(path);
    INIT.iter().any(|i| {
        p == i.as_bytes() || (p.starts_with(i.as_bytes()) && p.get(i.len()) == Some(&b'/'))
    })
}

struct Overlay;

impl EntryHook for Overlay {
    fn entry(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        st: &FileStat,
        h: &mut Header,
    ) -> io::Result<(bool, Vec<Header>)> {
        if is_init(&h.name) {
            return Ok((false, Vec::new()));
        }
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFCHR && st.st_rdev == 0 {
            // A whiteout: moby renames it and makes it a plain file (the
            // link name of a hard-linked whiteout stays, as moby leaves it).
            let (parent, base) = match h.name.iter().rposition(|&c| c == b'/') {
                Some(i) => (h.name[..=i].to_vec(), h.name[i + 1..].to_vec()),
                None => (Vec::new(), h.name.clone()),
            };
            let mut n = parent;
            n.extend_from_slice(b".wh.");
            n.extend_from_slice(&base);
            h.name = n;
            h.mode = 0o600;
            h.typeflag = TYPE_REG;
            h.size = 0;
            return Ok((true, Vec::new()));
        }
        if fmt != libc::S_IFDIR {
            return Ok((true, Vec::new()));
        }
        let d = open_in(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
        // A directory copied up only to hold init mount points is no change.
        let children = list_dir(&d)?;
        let only_init = children.iter().all(|c| {
            let mut p = h.name.clone();
            p.extend_from_slice(c.as_bytes());
            is_init(&p)
        });
        if !children.is_empty() && only_init {
            return Ok((false, Vec::new()));
        }
        let mut extra = Vec::new();
        if xattr_in(dir, name, "trusted.overlay.opaque") == b"y" {
            let mut n = h.name.clone();
            n.extend_from_slice(b".wh..wh..opq");
            extra.push(Header {
                name: n,
                typeflag: TYPE_REG,
                mode: h.mode & 0o777,
                uid: h.uid,
                gid: h.gid,
                uname: h.uname.clone(),
                gname: h.gname.clone(),
                ustar: true,
                ..Header::default()
            });
        }
        Ok((true, extra))
    }
}

/// Write the layer tar of an upper dir to `out`.
pub fn write_layer_diff(
    upper: &Path,
    out: &mut impl Write,
    ids: Option<&crate::runtime::userns::IdMap>,
) -> io::Result<()> {
    let root = Root::open(upper)?;
    let dir = root.open_dir(Path::new("/"))?;
    let mut w = TreeWriter::new(out, Overlay);
    w.ids = ids.cloned();
    w.children(&dir, b"")?;
    write_end(w.out)?;
    w.out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_paths() {
        assert!(is_init(b"etc/hosts"));
        assert!(is_init(b"dev/"));
        assert!(is_init(b"proc/self"));
        assert!(!is_init(b"etc/"));
        assert!(!is_init(b"etc/hostsx"));
        assert!(!is_init(b"devices"));
    }
}
