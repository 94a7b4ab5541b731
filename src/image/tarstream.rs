//! A minimal streaming tar walker that keeps the exact bytes.
//!
//! It yields each entry's metadata and hands every byte that is not a regular
//! file's payload (headers, PAX/GNU extension records, padding, end blocks and
//! anything after them) to a sink. Extraction points the sink at the layer's
//! "tar-split" skeleton; export replays the skeleton through the same walker and
//! takes the payloads from the extracted files, reproducing the original tar
//! byte for byte (so DiffIDs, and with them image IDs, survive save/load).

use std::io::{self, Read, Write};

use super::error::{ImageError, Result};

pub const BLOCK: usize = 512;
/// Cap on one PAX / GNU long-name record; they are held in memory.
const EXT_MAX: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Regular,
    Dir,
    Symlink,
    HardLink,
    Char,
    Block,
    Fifo,
    Other(u8),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub path: Vec<u8>,
    pub link: Vec<u8>,
    pub kind: Kind,
    /// Payload bytes following the header.
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    /// Whether this entry's payload lives in the extracted file (and not in
    /// the skeleton). Must be decidable from the header alone.
    pub fn payload_external(&self) -> bool {
        self.kind == Kind::Regular && self.size > 0 && !is_whiteout_name(&self.path)
    }
}

pub fn is_whiteout_name(path: &[u8]) -> bool {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
    base.starts_with(b".wh.")
}

pub fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Largest buffer `copy_sized` uses. `io::copy` moves 8 KiB at a time: for a
/// 100 MiB layer file that is 12,800 reads and 12,800 writes, and each write
/// into ext4 or a pipe pays a fixed cost that 256 KiB pieces amortise.
const COPY_BUF: u64 = 256 * 1024;

/// Copy up to `size` bytes from `r` to `w` in pieces of up to 256 KiB (a
/// buffer no larger than `size`, so small files cost a small buffer).
/// Returns how many bytes were copied: fewer than `size` at EOF.
pub fn copy_sized<R: Read + ?Sized, W: Write + ?Sized>(
    r: &mut R,
    w: &mut W,
    size: u64,
) -> io::Result<u64> {
    let mut buf = vec![0u8; size.min(COPY_BUF) as usize];
    let mut done = 0u64;
    while done < size {
        let want = (size - done).min(buf.len() as u64) as usize;
        let n = match r.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

fn bad(msg: &str) -> ImageError {
    ImageError::BadArchive(msg.to_string())
}

pub struct Walker<R> {
    pub reader: R,
    done: bool,
}

/// Read exactly `buf.len()` bytes; a short read is a truncated archive.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match r.read(&mut buf[off..]) {
            Ok(0) => return Err(bad("unexpected EOF in tar stream")),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn header_checksum_ok(block: &[u8; BLOCK]) -> bool {
    let stored = &block[148..156];
    let text: Vec<u8> = stored.iter().copied().take_while(|&b| b != 0).collect();
    let text = String::from_utf8_lossy(&text);
    let Ok(want) = u64::from_str_radix(text.trim(), 8) else {
        return false;
    };
    let mut sum: u64 = 0;
    for (i, &b) in block.iter().enumerate() {
        sum += if (148..156).contains(&i) {
            32
        } else {
            b as u64
        };
    }
    sum == want
}

impl<R: Read> Walker<R> {
    pub fn new(reader: R) -> Self {
        Walker {
            reader,
            done: false,
        }
    }

    /// Next entry, or None at the end-of-archive block. All header bytes go to `sink`.
    pub fn next(&mut self, sink: &mut dyn Write) -> Result<Option<Entry>> {
        next_entry(&mut self.reader, &mut self.done, sink)
    }

    /// Copy an inline payload and its padding to the sink.
    pub fn copy_payload(&mut self, size: u64, sink: &mut dyn Write) -> Result<()> {
        copy_payload(&mut self.reader, size, sink)
    }

    pub fn copy_padding(&mut self, size: u64, sink: &mut dyn Write) -> Result<()> {
        copy_padding(&mut self.reader, size, sink)
    }

    /// After the end block: copy whatever follows (the second zero block,
    /// record padding) to the sink so the stream is reproduced exactly.
    pub fn copy_rest(&mut self, sink: &mut dyn Write) -> Result<u64> {
        Ok(io::copy(&mut self.reader, sink)?)
    }
}

// The walk itself works on `dyn Read`: one compiled copy serves every
// reader a `Walker` is made over (a layer's hashing reader, a load's
// archive, a skeleton's gzip stream), instead of one per reader type.

fn read_ext(reader: &mut dyn Read, size: u64, sink: &mut dyn Write) -> Result<Vec<u8>> {
    if size > EXT_MAX {
        return Err(ImageError::TooLarge(
            "tar extension header over 1 MiB".into(),
        ));
    }
    let total = size + padding(size);
    let mut data = vec![0u8; total as usize];
    read_full(reader, &mut data)?;
    sink.write_all(&data)?;
    data.truncate(size as usize);
    Ok(data)
}

fn next_entry(
    reader: &mut dyn Read,
    done: &mut bool,
    sink: &mut dyn Write,
) -> Result<Option<Entry>> {
    if *done {
        return Ok(None);
    }
    let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    loop {
        let mut block = [0u8; BLOCK];
        // A clean EOF where a header would start ends the archive, as in Go's archive/tar.
        let first = loop {
            match reader.read(&mut block[..1]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if first == 0 {
            if pax.is_empty() && long_name.is_none() && long_link.is_none() {
                *done = true;
                return Ok(None);
            }
            return Err(bad("unexpected EOF in tar stream"));
        }
        read_full(reader, &mut block[1..])?;
        sink.write_all(&block)?;
        if block.iter().all(|&b| b == 0) {
            *done = true;
            return Ok(None);
        }
        if !header_checksum_ok(&block) {
            return Err(bad("archive/tar: invalid tar header"));
        }
        let h = tar::Header::from_byte_slice(&block);
        let size = h
            .entry_size()
            .map_err(|_| bad("invalid size in tar header"))?;
        let flag = block[156];
        match flag {
            b'x' | b'g' => {
                let data = read_ext(reader, size, sink)?;
                // Global records are rare in layers; treat them like local ones.
                for ext in tar::PaxExtensions::new(&data) {
                    let ext = ext.map_err(|_| bad("invalid PAX header"))?;
                    let key = ext.key().map_err(|_| bad("invalid PAX key"))?.to_string();
                    pax.push((key, ext.value_bytes().to_vec()));
                }
                continue;
            }
            b'L' | b'K' => {
                let mut data = read_ext(reader, size, sink)?;
                if let Some(i) = data.iter().position(|&b| b == 0) {
                    data.truncate(i);
                }
                if flag == b'L' {
                    long_name = Some(data);
                } else {
                    long_link = Some(data);
                }
                continue;
            }
            b'S' => return Err(bad("GNU sparse files are not supported")),
            _ => {}
        }
        let kind = match flag {
            b'0' | 0 | b'7' => Kind::Regular,
            b'5' => Kind::Dir,
            b'2' => Kind::Symlink,
            b'1' => Kind::HardLink,
            b'3' => Kind::Char,
            b'4' => Kind::Block,
            b'6' => Kind::Fifo,
            other => Kind::Other(other),
        };
        let mut e = Entry {
            path: long_name
                .take()
                .unwrap_or_else(|| h.path_bytes().into_owned()),
            link: long_link
                .take()
                .or_else(|| h.link_name_bytes().map(|c| c.into_owned()))
                .unwrap_or_default(),
            kind,
            size,
            mode: h.mode().unwrap_or(0o644),
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0),
            dev_major: h.device_major().ok().flatten().unwrap_or(0),
            dev_minor: h.device_minor().ok().flatten().unwrap_or(0),
            xattrs: Vec::new(),
        };
        let num = |v: &[u8]| -> Result<u64> {
            let s = std::str::from_utf8(v).map_err(|_| bad("invalid PAX number"))?;
            let s = s.split('.').next().unwrap_or("");
            s.parse::<u64>().map_err(|_| bad("invalid PAX number"))
        };
        for (k, v) in pax {
            match k.as_str() {
                "path" => e.path = v,
                "linkpath" => e.link = v,
                "size" => e.size = num(&v)?,
                "uid" => e.uid = num(&v)?,
                "gid" => e.gid = num(&v)?,
                "mtime" => e.mtime = num(&v)?,
                _ => {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        e.xattrs.push((name.as_bytes().to_vec(), v));
                    }
                }
            }
        }
        // Old tars mark directories only with a trailing slash.
        if e.kind == Kind::Regular && e.path.ends_with(b"/") {
            e.kind = Kind::Dir;
        }
        return Ok(Some(e));
    }
}

fn copy_payload(reader: &mut dyn Read, size: u64, sink: &mut dyn Write) -> Result<()> {
    let n = copy_sized(reader, sink, size)?;
    if n != size {
        return Err(bad("unexpected EOF in tar stream"));
    }
    copy_padding(reader, size, sink)
}

fn copy_padding(reader: &mut dyn Read, size: u64, sink: &mut dyn Write) -> Result<()> {
    let mut pad = [0u8; BLOCK];
    let p = padding(size) as usize;
    read_full(reader, &mut pad[..p])?;
    sink.write_all(&pad[..p]).map_err(ImageError::from)
}
