//! Extract one layer tar (plain or gzip) into a layer directory:
//!
//! ```text
//! <dir>/diff/            the files, ready to be an overlayfs lowerdir
//! <dir>/tar-split.gz     the tar with regular-file payloads cut out (see tarstream)
//! <dir>/extra/<n>        payloads of regular files a later entry replaced (rare)
//! ```
//!
//! Safety: entry paths are cleaned (`..` and absolute paths rejected) and
//! every parent component is lstat'ed, so nothing is ever written through a
//! symlink; the final component is created with O_NOFOLLOW / after unlinking.
//! Whiteouts become overlayfs whiteouts (0/0 char device, opaque xattr).
//! Device nodes are rejected: layers from archives have no business carrying
//! them and containers get their /dev from the runtime.

use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use super::digest::HashReader;
use super::error::{ImageError, Result};
use super::tarstream::{copy_sized, Entry, Kind, Walker};

pub const DIFF_DIR: &str = "diff";
pub const TAR_SPLIT: &str = "tar-split.gz";
pub const EXTRA_DIR: &str = "extra";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Size caps for one load / import. Shared by every layer of the load.
#[derive(Debug)]
pub struct Budget {
    remaining: Cell<u64>,
    /// Max uncompressed/compressed ratio of a gzip layer (plus 1 MiB slack).
    pub max_gzip_ratio: u64,
    pub max_total: u64,
}

pub const DEFAULT_MAX_TOTAL: u64 = 16 << 30;
pub const DEFAULT_MAX_GZIP_RATIO: u64 = 200;

impl Budget {
    pub fn new(max_total: u64, max_gzip_ratio: u64) -> Self {
        Budget {
            remaining: Cell::new(max_total),
            max_gzip_ratio,
            max_total,
        }
    }
    fn take(&self, n: u64) -> io::Result<()> {
        let left = self.remaining.get();
        if n > left {
            return Err(ImageError::TooLarge(format!(
                "uncompressed size exceeds the limit of {} bytes",
                self.max_total
            ))
            .into_io());
        }
        self.remaining.set(left - n);
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new(DEFAULT_MAX_TOTAL, DEFAULT_MAX_GZIP_RATIO)
    }
}

/// Counts bytes read through it into a shared cell.
pub struct CountReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Enforces the total budget and, for gzip, the expansion ratio.
struct BudgetReader<'b, R> {
    inner: R,
    budget: &'b Budget,
    compressed: Option<Rc<Cell<u64>>>,
    count: u64,
}

impl<R: Read> Read for BudgetReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.take(n as u64)?;
        self.count += n as u64;
        if let Some(c) = &self.compressed {
            let limit = c
                .get()
                .saturating_mul(self.budget.max_gzip_ratio)
                .saturating_add(1 << 20);
            if self.count > limit {
                return Err(ImageError::TooLarge(format!(
                    "gzip stream expands more than {}:1",
                    self.budget.max_gzip_ratio
                ))
                .into_io());
            }
        }
        Ok(n)
    }
}

/// A reader that replays sniffed bytes, then the rest of the stream.
pub type Replay<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Read up to `n` bytes to sniff a stream, and give back a reader that replays them.
pub fn peek<R: Read>(mut r: R, n: usize) -> io::Result<(Vec<u8>, Replay<R>)> {
    let mut head = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(got);
    Ok((head.clone(), io::Cursor::new(head).chain(r)))
}

pub fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(&[0x1f, 0x8b])
}

/// Decompress if gzip, else pass through; the budget applies to the output.
/// Returns the reader over uncompressed bytes.
pub fn maybe_gunzip<'b, R: Read + 'b>(r: R, budget: &'b Budget) -> io::Result<Box<dyn Read + 'b>> {
    gunzip_dyn(Box::new(r), budget)
}

/// `maybe_gunzip` for one reader type: the gzip decoder and the budget and
/// count readers around it are compiled once, not once per caller's reader.
fn gunzip_dyn<'b>(r: Box<dyn Read + 'b>, budget: &'b Budget) -> io::Result<Box<dyn Read + 'b>> {
    let (head, r) = peek(r, 2)?;
    if is_gzip(&head) {
        let count = Rc::new(Cell::new(0));
        let counted = CountReader {
            inner: r,
            count: count.clone(),
        };
        let gz = MultiGzDecoder::new(io::BufReader::new(counted));
        Ok(Box::new(BudgetReader {
            inner: gz,
            budget,
            compressed: Some(count),
            count: 0,
        }))
    } else {
        Ok(Box::new(BudgetReader {
            inner: r,
            budget,
            compressed: None,
            count: 0,
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar.
    pub diff_id: String,
    /// Length of the uncompressed tar (needed up front when saving).
    pub tar_size: u64,
    /// Sum of regular file sizes: the layer size reported by the API.
    pub size: u64,
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| ImageError::UnsafePath("path contains NUL".into()))
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// Clean an entry path to a relative path of normal components.
/// Returns an empty path for the root (`./`).
pub fn clean_path(raw: &[u8]) -> Result<PathBuf> {
    if raw.starts_with(b"/") {
        return Err(ImageError::UnsafePath(format!(
            "absolute path {}",
            show(raw)
        )));
    }
    let mut out = PathBuf::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                return Err(ImageError::UnsafePath(format!(
                    "path {} contains ..",
                    show(raw)
                )))
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

struct Extractor<'a> {
    root: &'a Path,
    layer_dir: &'a Path,
    /// Regular files written by this layer, by path: their payload ordinal.
    ordinals: HashMap<PathBuf, u64>,
    next_ordinal: u64,
    dir_times: Vec<(PathBuf, u64)>,
    size: u64,
}

impl Extractor<'_> {
    /// Make sure every parent of `rel` is a real directory inside the root
    /// (creating missing ones); never traverse a symlink.
    fn ensure_parents(&self, rel: &Path, create: bool) -> Result<()> {
        let mut cur = self.root.to_path_buf();
        let comps: Vec<_> = rel.components().collect();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(ImageError::UnsafePath(format!(
                        "{} would be written through symlink {}",
                        rel.display(),
                        cur.strip_prefix(self.root).unwrap_or(&cur).display()
                    )))
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(ImageError::BadArchive(format!(
                        "{}: parent is not a directory",
                        rel.display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::create_dir(&cur)?;
                    fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Clear the way for a new entry at `path`. Keeps an existing directory
    /// when the new entry is a directory too.
    fn make_room(&mut self, rel: &Path, path: &Path, new_is_dir: bool) -> Result<()> {
        let m = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if m.is_dir() {
            if !new_is_dir {
                fs::remove_dir_all(path)?;
            }
            return Ok(());
        }
        if let Some(ord) = self.ordinals.remove(rel) {
            // Keep the replaced payload so export can reproduce the tar.
            let extra = self.layer_dir.join(EXTRA_DIR);
            fs::create_dir_all(&extra)?;
            fs::rename(path, extra.join(ord.to_string()))?;
        } else {
            fs::remove_file(path)?;
        }
        Ok(())
    }

    fn set_owner_mode_time(&self, path: &Path, e: &Entry, symlink: bool) -> Result<()> {
        let c = cstr(path)?;
        let uid = u32::try_from(e.uid).unwrap_or(0);
        let gid = u32::try_from(e.gid).unwrap_or(0);
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
            return Err(io::Error::last_os_error().into());
        }
        for (name, value) in &e.xattrs {
            // Only harmless namespaces: trusted.overlay.* from a tar could forge whiteouts.
            if !(name.starts_with(b"user.") || name == b"security.capability") {
                continue;
            }
            let Ok(n) = CString::new(name.clone()) else {
                continue;
            };
            // SAFETY: valid pointers and lengths.
            let r = unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            if r != 0 {
                log::warn!(
                    "cannot set xattr on {}: {}",
                    path.display(),
                    io::Error::last_os_error()
                );
            }
        }
        if !symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(e.mode & 0o7777))?;
        }
        if e.kind != Kind::Dir {
            set_mtime(&c, e.mtime)?;
        }
        Ok(())
    }

    fn entry<R: Read>(
        &mut self,
        e: &Entry,
        walker: &mut Walker<R>,
        skel: &mut dyn Write,
    ) -> Result<()> {
        let rel = clean_path(&e.path)?;
        let base = rel
            .file_name()
            .map(|b| b.as_bytes().to_vec())
            .unwrap_or_default();
        if !e.payload_external() {
            walker.copy_payload(e.size, skel)?;
        }
        if rel.as_os_str().is_empty() {
            // "./": the layer root itself.
            if e.kind != Kind::Dir {
                return Err(ImageError::BadArchive(format!(
                    "entry {:?} has an empty name",
                    show(&e.path)
                )));
            }
            self.set_owner_mode_time(self.root, e, false)?;
            self.dir_times.push((self.root.to_path_buf(), e.mtime));
            return Ok(());
        }
        self.ensure_parents(&rel, true)?;
        let path = self.root.join(&rel);
        if base.starts_with(b".wh.") {
            return self.whiteout(&rel, &path, &base[4..]);
        }
        match e.kind {
            Kind::Dir => {
                self.make_room(&rel, &path, true)?;
                if fs::symlink_metadata(&path).is_err() {
                    fs::create_dir(&path)?;
                }
                self.set_owner_mode_time(&path, e, false)?;
                self.dir_times.push((path, e.mtime));
            }
            Kind::Regular => {
                self.make_room(&rel, &path, false)?;
                let mut f = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)?;
                if e.size > 0 {
                    let n = copy_sized(&mut walker.reader, &mut f, e.size)?;
                    if n != e.size {
                        return Err(ImageError::BadArchive(
                            "unexpected EOF in tar stream".into(),
                        ));
                    }
                    walker.copy_padding(e.size, skel)?;
                    self.ordinals.insert(rel.clone(), self.next_ordinal);
                    self.next_ordinal += 1;
                }
                drop(f);
                self.size += e.size;
                self.set_owner_mode_time(&path, e, false)?;
            }
            Kind::Symlink => {
                self.make_room(&rel, &path, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&e.link), &path)?;
                self.set_owner_mode_time(&path, e, true)?;
            }
            Kind::HardLink => {
                let target_rel = clean_path(&e.link).map_err(|_| {
                    ImageError::UnsafePath(format!(
                        "hard link {} points outside the layer ({})",
                        rel.display(),
                        show(&e.link)
                    ))
                })?;
                self.ensure_parents(&target_rel, false)
                    .map_err(|err| match err {
                        ImageError::Io(_) => ImageError::BadArchive(format!(
                            "hard link target {} does not exist",
                            show(&e.link)
                        )),
                        other => other,
                    })?;
                let target = self.root.join(&target_rel);
                match fs::symlink_metadata(&target) {
                    Ok(m) if !m.is_dir() && !target_rel.as_os_str().is_empty() => {}
                    _ => {
                        return Err(ImageError::BadArchive(format!(
                            "hard link target {} does not exist in the layer",
                            show(&e.link)
                        )))
                    }
                }
                if target != path {
                    self.make_room(&rel, &path, false)?;
                    fs::hard_link(&target, &path)?;
                }
            }
            Kind::Fifo => {
                self.make_room(&rel, &path, false)?;
                mknod(&path, libc::S_IFIFO | 0o600, 0)?;
                self.set_owner_mode_time(&path, e, false)?;
            }
            Kind::Char if e.dev_major == 0 && e.dev_minor == 0 => {
                // Already an overlay-style whiteout.
                self.make_room(&rel, &path, false)?;
                mknod(&path, libc::S_IFCHR, 0)?;
            }
            Kind::Char | Kind::Block => {
                return Err(ImageError::UnsafePath(format!(
                    "device node {} is not allowed in a layer",
                    rel.display()
                )))
            }
            Kind::Other(t) => {
                // Unknown types carry no files (e.g. 'V' volume labels); skip them.
                log::warn!(
                    "skipping tar entry {} of type {:?}",
                    rel.display(),
                    t as char
                );
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, rel: &Path, path: &Path, name: &[u8]) -> Result<()> {
        let parent = path.parent().unwrap_or(self.root);
        if name == b".wh..opq" {
            // ".wh..wh..opq": this directory hides everything below it in lower layers.
            if fs::symlink_metadata(parent).is_err() {
                fs::create_dir(parent)?;
            }
            let p = cstr(parent)?;
            let key = CString::new(OPAQUE_XATTR)
                .map_err(|_| ImageError::Io(io::Error::other("xattr")))?;
            let (path, name, value) = (p.as_ptr(), key.as_ptr(), b"y".as_ptr());
            // SAFETY: valid pointers.
            let r = unsafe { libc::lsetxattr(path, name, value.cast(), 1, 0) };
            if r != 0 {
                return Err(io::Error::last_os_error().into());
            }
            return Ok(());
        }
        if name.starts_with(b".wh.") {
            // Other aufs metadata (.wh..wh.plnk etc.): nothing to create.
            return Ok(());
        }
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return Err(ImageError::UnsafePath(format!(
                "bad whiteout {}",
                rel.display()
            )));
        }
        let target = parent.join(OsStr::from_bytes(name));
        let target_rel = rel.with_file_name(OsStr::from_bytes(name));
        self.make_room(&target_rel, &target, false)?;
        mknod(&target, libc::S_IFCHR, 0)
    }
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) -> Result<()> {
    let c = cstr(path)?;
    // SAFETY: valid path.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

// time_t is i32 on 32-bit glibc, so the `into()` below is a no-op there.
#[allow(clippy::useless_conversion)]
fn set_mtime(c: &CString, mtime: u64) -> Result<()> {
    let t = libc::timespec {
        // time_t is i64, or i32 on older 32-bit ABIs: saturate there instead of wrapping.
        tv_sec: mtime
            .min(i64::MAX as u64)
            .try_into()
            .unwrap_or(i32::MAX.into()),
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: valid path and two timespecs.
    let r = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

/// Extract an uncompressed-or-gzip layer stream into `layer_dir` (which
/// must exist and be empty). Reads `input` to its end. The caller makes the
/// directory durable (`syncfs`) and renames it into place.
pub fn extract_layer<'r, R: Read + 'r>(
    input: R,
    layer_dir: &Path,
    budget: &Budget,
) -> Result<LayerInfo> {
    extract_dyn(Box::new(input), layer_dir, budget)
}

/// `extract_layer` for one reader type: compiled once, not once per caller's.
fn extract_dyn(input: Box<dyn Read + '_>, layer_dir: &Path, budget: &Budget) -> Result<LayerInfo> {
    let root = layer_dir.join(DIFF_DIR);
    fs::create_dir(&root)?;
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755))?;
    let plain = gunzip_dyn(input, budget)?;
    let hashed = HashReader::new(plain);
    let skel_file = File::create(layer_dir.join(TAR_SPLIT))?;
    let mut skel = GzEncoder::new(io::BufWriter::new(skel_file), flate2::Compression::fast());
    let mut walker = Walker::new(hashed);
    let mut ex = Extractor {
        root: &root,
        layer_dir,
        ordinals: HashMap::new(),
        next_ordinal: 0,
        dir_times: Vec::new(),
        size: 0,
    };
    while let Some(e) = walker.next(&mut skel)? {
        ex.entry(&e, &mut walker, &mut skel)?;
    }
    walker.copy_rest(&mut skel)?;
    let (diff_id, tar_size, _) = walker.reader.finish();
    let mut w = skel.finish()?;
    w.flush()?;
    // Directory times last: creating children changed them.
    for (p, t) in ex.dir_times.iter().rev() {
        set_mtime(&cstr(p)?, *t)?;
    }
    Ok(LayerInfo {
        diff_id,
        tar_size,
        size: ex.size,
    })
}

/// Flush everything under `dir` to disk (one syncfs for the whole filesystem
/// is much cheaper than an fsync per extracted file).
pub fn sync_tree(dir: &Path) -> Result<()> {
    let f = File::open(dir)?;
    use std::os::fd::AsRawFd;
    // SAFETY: valid fd.
    if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}
