//! Regenerate a layer's tar byte for byte from its skeleton (tar-split.gz)
//! and the extracted files, verifying the result against the DiffID.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use flate2::read::GzDecoder;

use super::digest::HashWriter;
use super::error::{ImageError, Result};
use super::layer_extract::{clean_path, DIFF_DIR, EXTRA_DIR, TAR_SPLIT};
use super::tarstream::{copy_sized, Walker};

/// Write the layer's original tar to `out`; returns the number of bytes.
/// Fails with `Corrupt` if the files changed since extraction (the bytes
/// written would not have the expected DiffID); by then `out` has partial
/// data, so callers streaming to a client must abort the stream.
pub fn export_layer<W: Write>(layer_dir: &Path, expected_diff_id: &str, out: W) -> Result<u64> {
    let root = layer_dir.join(DIFF_DIR);
    let skel = File::open(layer_dir.join(TAR_SPLIT))?;
    let mut walker = Walker::new(GzDecoder::new(io::BufReader::new(skel)));
    let extras: HashSet<u64> = match fs::read_dir(layer_dir.join(EXTRA_DIR)) {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => HashSet::new(),
    };
    // Headers and skeleton pieces are small writes: gather them (and the
    // 256 KiB payload pieces pass straight through).
    let mut out = HashWriter::new(io::BufWriter::with_capacity(64 * 1024, out));
    let mut ordinal = 0u64;
    while let Some(e) = walker.next(&mut out)? {
        if !e.payload_external() {
            walker.copy_payload(e.size, &mut out)?;
            continue;
        }
        let path = if extras.contains(&ordinal) {
            layer_dir.join(EXTRA_DIR).join(ordinal.to_string())
        } else {
            root.join(clean_path(&e.path)?)
        };
        ordinal += 1;
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|err| {
                ImageError::Corrupt(format!("layer file {} unreadable: {err}", path.display()))
            })?;
        let n = copy_sized(&mut f, &mut out, e.size)?;
        if n != e.size {
            return Err(ImageError::Corrupt(format!(
                "layer file {} shrank",
                path.display()
            )));
        }
        // Padding is in the skeleton.
        walker.copy_padding(e.size, &mut out)?;
    }
    walker.copy_rest(&mut out)?;
    out.flush()?;
    let (digest, n, _) = out.finish();
    if digest != expected_diff_id {
        return Err(ImageError::Corrupt(format!(
            "regenerated layer has digest {digest}, expected {expected_diff_id}"
        )));
    }
    Ok(n)
}
