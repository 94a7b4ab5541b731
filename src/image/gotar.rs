//! Tar output byte for byte as dockerd writes it (Go's `archive/tar` with
//! moby's PAX headers: `ustar\0` `00` blocks, octal fields of width-1 digits
//! and a NUL, the checksum as six digits, NUL, space; PAX records only for
//! what a ustar block cannot hold), so a layer we commit has the diff ID
//! dockerd computes for the same tree. The tree is walked through directory
//! fds (`runtime::inroot`), never through host paths.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;

use crate::runtime::inroot::{list_dir, open_in, stat_in};

pub const TYPE_REG: u8 = b'0';
pub const TYPE_LINK: u8 = b'1';
pub const TYPE_SYMLINK: u8 = b'2';
pub const TYPE_CHAR: u8 = b'3';
pub const TYPE_BLOCK: u8 = b'4';
pub const TYPE_DIR: u8 = b'5';
pub const TYPE_FIFO: u8 = b'6';

/// One entry's header fields.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub name: Vec<u8>,
    pub link: Vec<u8>,
    pub typeflag: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// The owner's names in the host's user database, as Go's
    /// `FileInfoHeader` looks them up (empty when there is none).
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub size: u64,
    pub mtime: i64,
    pub devmajor: u64,
    pub devminor: u64,
    /// PAX records beyond the ones the fields need (`SCHILY.xattr.*`).
    pub pax: Vec<(String, Vec<u8>)>,
    /// Go's format left unset (moby's opaque-directory marker): a long
    /// name is split into the ustar prefix when it fits there.
    pub ustar: bool,
}

impl Header {
    /// The header of `name` from its metadata (moby 20.10's `FileInfoHeader`:
    /// permission and set-id bits plus the file-type bits Go 1.8 wrote,
    /// whole seconds; names are filled in by the walk).
    // stat field widths differ between 64- and 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    pub fn from_stat(name: Vec<u8>, st: &FileStat) -> Header {
        let fmt = st.st_mode & libc::S_IFMT;
        let typeflag = match fmt {
            libc::S_IFDIR => TYPE_DIR,
            libc::S_IFLNK => TYPE_SYMLINK,
            libc::S_IFCHR => TYPE_CHAR,
            libc::S_IFBLK => TYPE_BLOCK,
            libc::S_IFIFO => TYPE_FIFO,
            _ => TYPE_REG,
        };
        let (devmajor, devminor) = if matches!(typeflag, TYPE_CHAR | TYPE_BLOCK) {
            (
                nix::sys::stat::major(st.st_rdev),
                nix::sys::stat::minor(st.st_rdev),
            )
        } else {
            (0, 0)
        };
        Header {
            name,
            typeflag,
            // The S_IF* values are the c_IS* bits of the tar format.
            mode: st.st_mode & (libc::S_IFMT | 0o7777),
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            size: if typeflag == TYPE_REG {
                st.st_size as u64
            } else {
                0
            },
            mtime: st.st_mtime as i64,
            devmajor,
            devminor,
            ..Header::default()
        }
    }
}

fn octal(field: &mut [u8], v: u64) -> bool {
    let s = format!("{v:o}");
    if s.len() > field.len() - 1 {
        field.fill(0);
        let z = field.len() - 1;
        field[..z].fill(b'0');
        return false;
    }
    let pad = field.len() - 1 - s.len();
    field[..pad].fill(b'0');
    field[pad..pad + s.len()].copy_from_slice(s.as_bytes());
    field[field.len() - 1] = 0;
    true
}

fn string(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

fn ascii(s: &[u8]) -> Vec<u8> {
    s.iter().copied().filter(u8::is_ascii).collect()
}

fn finish_block(b: &mut [u8; 512]) {
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&x| x as u64).sum();
    octal(&mut b[148..155], sum);
    b[155] = b' ';
}

fn pad(out: &mut dyn Write, size: u64) -> io::Result<()> {
    let rem = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..rem as usize])
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = body + 1;
    while len.to_string().len() + body != len {
        len = len.to_string().len() + body;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// Go's `splitUSTARPath`: a long ASCII name as (prefix, suffix).
fn split_ustar(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= 100 || !name.is_ascii() {
        return None;
    } else if length > 156 {
        length = 156;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].iter().rposition(|&c| c == b'/')?;
    let nlen = name.len() - i - 1;
    if i == 0 || nlen > 100 || nlen == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// Write one header (with its PAX extension when needed).
pub fn write_header(out: &mut dyn Write, h: &Header) -> io::Result<()> {
    if h.ustar && h.pax.is_empty() {
        if let Some((prefix, suffix)) = split_ustar(&h.name) {
            let mut short = h.clone();
            short.name = suffix.to_vec();
            short.ustar = false;
            return write_block(out, &short, prefix);
        }
    }
    let mut records: Vec<(String, Vec<u8>)> = h.pax.clone();
    if h.name.len() > 100 || !h.name.is_ascii() {
        records.push(("path".into(), h.name.clone()));
    }
    if h.link.len() > 100 || !h.link.is_ascii() {
        records.push(("linkpath".into(), h.link.clone()));
    }
    if h.size >= 1 << 33 {
        records.push(("size".into(), h.size.to_string().into_bytes()));
    }
    if h.uid >= 1 << 21 {
        records.push(("uid".into(), h.uid.to_string().into_bytes()));
    }
    if h.gid >= 1 << 21 {
        records.push(("gid".into(), h.gid.to_string().into_bytes()));
    }
    if h.uname.len() > 32 || !h.uname.is_ascii() {
        records.push(("uname".into(), h.uname.clone()));
    }
    if h.gname.len() > 32 || !h.gname.is_ascii() {
        records.push(("gname".into(), h.gname.clone()));
    }
    if !records.is_empty() {
        crate::sort::sort_by(&mut records, |a, b| a.0.cmp(&b.0));
        let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let (dir, file) = match h.name.iter().rposition(|&c| c == b'/') {
            Some(i) => (&h.name[..=i], &h.name[i + 1..]),
            None => (&b""[..], &h.name[..]),
        };
        let mut name = ascii(&go_join(dir, file));
        name.truncate(100);
        while name.last() == Some(&b'/') {
            name.pop();
        }
        let mut b = [0u8; 512];
        string(&mut b[0..100], &name);
        octal(&mut b[100..108], 0);
        octal(&mut b[108..116], 0);
        octal(&mut b[116..124], 0);
        octal(&mut b[124..136], data.len() as u64);
        octal(&mut b[136..148], 0);
        b[156] = b'x';
        finish_block(&mut b);
        out.write_all(&b)?;
        out.write_all(&data)?;
        pad(out, data.len() as u64)?;
    }
    write_block(out, h, b"")
}

fn write_block(out: &mut dyn Write, h: &Header, prefix: &[u8]) -> io::Result<()> {
    let mut b = [0u8; 512];
    string(&mut b[0..100], &ascii(&h.name));
    octal(&mut b[100..108], h.mode as u64);
    octal(&mut b[108..116], h.uid);
    octal(&mut b[116..124], h.gid);
    octal(&mut b[124..136], h.size);
    octal(&mut b[136..148], h.mtime.max(0) as u64);
    b[156] = h.typeflag;
    string(&mut b[157..257], &ascii(&h.link));
    string(&mut b[265..297], &ascii(&h.uname));
    string(&mut b[297..329], &ascii(&h.gname));
    octal(&mut b[329..337], h.devmajor);
    octal(&mut b[337..345], h.devminor);
    string(&mut b[345..500], prefix);
    finish_block(&mut b);
    out.write_all(&b)
}

/// Go's `path.Join(dir, "PaxHeaders.0", file)`.
fn go_join(dir: &[u8], file: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = dir
        .split(|&c| c == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    parts.push(b"PaxHeaders.0");
    if !file.is_empty() {
        parts.push(file);
    }
    parts.join(&b'/')
}

/// The two zero blocks that end an archive.
pub fn write_end(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(&[0u8; 1024])
}

/// What a walk does with each entry before it is written.
pub trait EntryHook {
    /// Adjust `h` (the entry `name` in directory `dir`); false skips it
    /// (and, for a directory, its contents). Extra headers returned are
    /// written right after it (an opaque directory's marker).
    fn entry(
        &mut self,
        dir: &OwnedFd,
        name: &OsStr,
        st: &FileStat,
        h: &mut Header,
    ) -> io::Result<(bool, Vec<Header>)>;

    /// Whether to walk into this (open) directory; its own entry is
    /// written either way.
    fn descend(&mut self, _dir: &OwnedFd) -> bool {
        true
    }
}

/// Writes entries in Go's `WalkDir` order, with hard links as dockerd
/// finds them (by inode). The output and the hook are `dyn`: one compiled
/// walk serves a layer diff and `docker cp` alike.
pub struct TreeWriter<'a> {
    pub out: &'a mut dyn Write,
    pub hook: Box<dyn EntryHook + 'a>,
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
    /// The host's user and group names (Go's `FileInfoHeader` fills
    /// `Uname`/`Gname` from them, so they are part of a diff ID).
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
    /// A remapped container's mapping: owners in its range are written as
    /// the container's ids (dockerd's IDMap on archives); others as they are.
    pub ids: Option<crate::runtime::userns::IdMap>,
}

impl<'a> TreeWriter<'a> {
    pub fn new(out: &'a mut dyn Write, hook: impl EntryHook + 'a) -> Self {
        TreeWriter {
            out,
            hook: Box::new(hook),
            links: HashMap::new(),
            buf: vec![0; 64 * 1024],
            users: crate::host::account_names("/etc/passwd"),
            groups: crate::host::account_names("/etc/group"),
            ids: None,
        }
    }

    /// Write `name` (in `dir`) as `shown`, then, for a directory, its
    /// contents below `shown/`.
    #[allow(clippy::unnecessary_cast)]
    pub fn entry(&mut self, dir: &OwnedFd, name: &OsStr, shown: &[u8]) -> io::Result<()> {
        let st = match stat_in(dir, name) {
            Ok(st) => st,
            // Gone since the directory was listed (a live container).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let mut tar_name = shown.to_vec();
        if is_dir && tar_name.last() != Some(&b'/') {
            tar_name.push(b'/');
        }
        let mut h = Header::from_stat(tar_name, &st);
        let name_of = |m: &HashMap<u32, String>, id: u32| {
            m.get(&id)
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default()
        };
        h.uname = name_of(&self.users, st.st_uid);
        h.gname = name_of(&self.groups, st.st_gid);
        if let Some(m) = &self.ids {
            h.uid = m.container_uid(st.st_uid).unwrap_or(st.st_uid) as u64;
            h.gid = m.container_gid(st.st_gid).unwrap_or(st.st_gid) as u64;
        }
        if h.typeflag == TYPE_REG {
            // moby keeps file capabilities (and only them) as a PAX record.
            let cap = xattr_in(dir, name, "security.capability");
            if !cap.is_empty() {
                h.pax.push(("SCHILY.xattr.security.capability".into(), cap));
            }
        }
        if h.typeflag == TYPE_SYMLINK {
            h.link = nix::fcntl::readlinkat(dir, name)
                .map_err(io::Error::from)?
                .as_bytes()
                .to_vec();
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
            return Ok(()); // tar has no sockets; dockerd leaves them out
        }
        // moby's order: hard links (any non-directory with more than one
        // link, by inode) before the hook, which may retype the entry.
        if !is_dir && st.st_nlink > 1 {
            let key = (st.st_dev as u64, st.st_ino as u64);
            match self.links.get(&key) {
                Some(first) => {
                    h.typeflag = TYPE_LINK;
                    h.link = first.clone();
                    h.size = 0;
                }
                None => {
                    self.links.insert(key, h.name.clone());
                }
            }
        }
        let (keep, extra) = self.hook.entry(dir, name, &st, &mut h)?;
        if !keep {
            return Ok(());
        }
        let mut file = None;
        if h.typeflag == TYPE_REG && h.size > 0 {
            // O_NOFOLLOW: a file swapped for a link is not read.
            match open_in(dir, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK, 0) {
                Ok(fd) => file = Some(std::fs::File::from(fd)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        write_header(self.out, &h)?;
        if let Some(mut f) = file {
            self.copy_exact(&mut f, h.size)?;
        }
        for x in &extra {
            write_header(self.out, x)?;
        }
        if is_dir {
            let sub = open_in(dir, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY, 0)?;
            if !self.hook.descend(&sub) {
                return Ok(());
            }
            for child in list_dir(&sub)? {
                let mut n = shown.to_vec();
                if n.last() != Some(&b'/') && !n.is_empty() {
                    n.push(b'/');
                }
                n.extend_from_slice(child.as_bytes());
                self.entry(&sub, &child, &n)?;
            }
        }
        Ok(())
    }

    /// The children of an open directory, named below `prefix` (no entry
    /// for the directory itself: a layer's root).
    pub fn children(&mut self, dir: &OwnedFd, prefix: &[u8]) -> io::Result<()> {
        for child in list_dir(dir)? {
            let mut n = prefix.to_vec();
            n.extend_from_slice(child.as_bytes());
            self.entry(dir, &child, &n)?;
        }
        Ok(())
    }

    /// Exactly `size` bytes of a file (it may shrink or grow meanwhile:
    /// zeros fill a shrunk one, growth is cut, as Go's writer enforces).
    fn copy_exact(&mut self, f: &mut std::fs::File, size: u64) -> io::Result<()> {
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match f.read(&mut self.buf[..want]) {
                Ok(0) => {
                    self.buf[..want].fill(0);
                    want
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        pad(self.out, size)
    }
}

/// An xattr of `name` in `dir`, not following a symlink (empty when
/// absent): through the directory fd's `/proc/self/fd` link, so the lookup
/// starts at that very directory.
pub fn xattr_in(dir: &OwnedFd, name: &OsStr, attr: &str) -> Vec<u8> {
    use std::os::fd::AsRawFd;
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.as_bytes());
    let (Ok(cpath), Ok(cattr)) = (std::ffi::CString::new(path), std::ffi::CString::new(attr))
    else {
        return Vec::new();
    };
    let mut buf = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and the kernel writes at
    // most `buf.len()` bytes into `buf`.
    let n = unsafe {
        libc::lgetxattr(
            cpath.as_ptr(),
            cattr.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n <= 0 {
        return Vec::new();
    }
    buf.truncate(n as usize);
    buf
}

/// Kernel filesystems whose contents are no files of the container
/// (`/proc`, `/sys`, `/dev/pts`, `/dev/mqueue`, cgroups): dockerd's view of
/// a container has only their mount points.
const PSEUDO_FS: &[i64] = &[
    0x9fa0,      // proc
    0x6265_6572, // sysfs
    0x1cd1,      // devpts
    0x1980_0202, // mqueue
    0x0027_e0eb, // cgroup
    0x6367_7270, // cgroup2
    0x6462_6720, // debugfs
    0x7363_6673, // securityfs
    0x7472_6163, // tracefs
    0x6e73_6673, // nsfs
    0xcafe_4a11, // bpf
];

/// A hook that keeps every entry as it is (`docker cp` out), without
/// walking into kernel filesystems.
pub struct Plain;

impl EntryHook for Plain {
    fn entry(
        &mut self,
        _dir: &OwnedFd,
        _name: &OsStr,
        _st: &FileStat,
        _h: &mut Header,
    ) -> io::Result<(bool, Vec<Header>)> {
        Ok((true, Vec::new()))
    }

    fn descend(&mut self, dir: &OwnedFd) -> bool {
        match nix::sys::statfs::fstatfs(dir) {
            Ok(fs) => {
                // f_type is i64 on x86_64 glibc, narrower on 32-bit targets.
                #[allow(clippy::unnecessary_cast)]
                let t = fs.filesystem_type().0 as i64;
                !PSEUDO_FS.contains(&t)
            }
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_match_go() {
        // "hello.txt", 0644, uid 0, size 5, mtime 1700000000, in the
        // layout archive/tar's writer gives a PAX-format header (fields per
        // its `formatOctal`, checksum per `setFormat`).
        let h = Header {
            name: b"hello.txt".to_vec(),
            typeflag: TYPE_REG,
            mode: 0o644,
            size: 5,
            mtime: 1_700_000_000,
            ..Header::default()
        };
        let mut out = Vec::new();
        write_header(&mut out, &h).unwrap();
        assert_eq!(out.len(), 512);
        assert_eq!(&out[100..108], b"0000644\0");
        assert_eq!(&out[124..136], b"00000000005\0");
        assert_eq!(&out[136..148], b"14524770400\0");
        assert_eq!(&out[257..265], b"ustar\x0000");
        assert_eq!(&out[329..345], b"0000000\x000000000\x00");
        assert_eq!(out[154], 0);
        assert_eq!(out[155], b' ');
        let long = Header {
            name: vec![b'a'; 150],
            typeflag: TYPE_REG,
            ..h
        };
        let mut out = Vec::new();
        write_header(&mut out, &long).unwrap();
        assert_eq!(out[156], b'x');
        assert!(out[512..].starts_with(b"160 path=aaaa"));
        assert_eq!(&out[..15], b"PaxHeaders.0/aa");
        assert_eq!(pax_record("path", &[b'a'; 150]).len(), 160);
        let mut name = vec![b'd'; 60];
        name.push(b'/');
        name.extend_from_slice(&[b'e'; 60]);
        let split = Header {
            name,
            ustar: true,
            ..Header::default()
        };
        let mut out = Vec::new();
        write_header(&mut out, &split).unwrap();
        assert_eq!(out.len(), 512, "split into the ustar prefix, no PAX");
        assert_eq!(&out[..60], &[b'e'; 60][..]);
        assert_eq!(&out[345..405], &[b'd'; 60][..]);
    }
}
