//! The OCI layout side of `docker load`: `index.json` walked (nested indexes
//! bounded, this host's platform chosen) down to each image's config and
//! layers.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use super::archive_load::{check_layers, parse_json, parse_tag, Collected, Resolved};
use super::digest::{digest_hex, sha256_digest};
use super::error::{ImageError, Result};

#[derive(Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: HashMap<String, String>,
    #[serde(default)]
    platform: Option<Value>,
}

pub(crate) fn blob<'c>(c: &'c Collected, d: &Descriptor) -> Result<&'c Vec<u8>> {
    let hex = digest_hex(&d.digest)?;
    let data = c
        .json_file(&format!("blobs/sha256/{hex}"))
        .ok_or_else(|| ImageError::BadArchive(format!("blob {} not found in archive", d.digest)))?;
    if sha256_digest(data) != d.digest {
        return Err(ImageError::BadArchive(format!(
            "digest mismatch for blob {}",
            d.digest
        )));
    }
    Ok(data)
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

const MAX_INDEX_DEPTH: usize = 4;

fn resolve_oci_descriptor(
    c: &Collected,
    d: &Descriptor,
    tags: Vec<String>,
    depth: usize,
    out: &mut Vec<Resolved>,
) -> Result<()> {
    let data = blob(c, d)?;
    let v: Value = parse_json(&d.digest, data)?;
    let is_index = d.media_type.contains("index")
        || d.media_type.contains("manifest.list")
        || v.get("manifests").is_some();
    if is_index {
        if depth >= MAX_INDEX_DEPTH {
            return Err(ImageError::BadArchive("OCI index nested too deeply".into()));
        }
        let subs: Vec<Descriptor> =
            serde_json::from_value(v.get("manifests").cloned().unwrap_or(Value::Null))
                .map_err(|e| ImageError::BadArchive(format!("{}: {e}", d.digest)))?;
        // Pick our platform (else the first manifest whose blobs are present).
        let want = |s: &Descriptor| {
            s.platform.as_ref().is_none_or(|p| {
                p.get("os")
                    .and_then(Value::as_str)
                    .is_none_or(|o| o == "linux")
                    && p.get("architecture")
                        .and_then(Value::as_str)
                        .is_none_or(|a| a == host_arch())
            })
        };
        let pick = subs
            .iter()
            .find(|s| want(s) && blob(c, s).is_ok())
            .or_else(|| subs.iter().find(|s| blob(c, s).is_ok()));
        let Some(sub) = pick else {
            return Err(ImageError::BadArchive(format!(
                "no usable manifest in index {}",
                d.digest
            )));
        };
        return resolve_oci_descriptor(c, sub, tags, depth + 1, out);
    }
    #[derive(Deserialize)]
    struct Manifest {
        config: Descriptor,
        #[serde(default)]
        layers: Vec<Descriptor>,
    }
    let m: Manifest = parse_json(&d.digest, data)?;
    let config = blob(c, &m.config)?.clone();
    let mut paths = Vec::new();
    for l in &m.layers {
        let hex = digest_hex(&l.digest)?;
        paths.push((format!("blobs/sha256/{hex}"), Some(l.digest.clone())));
    }
    let diff_ids = check_layers(c, &config, &paths)?;
    out.push(Resolved {
        config,
        diff_ids,
        tags,
    });
    Ok(())
}

pub(crate) fn resolve_oci(c: &Collected, index: &[u8]) -> Result<Vec<Resolved>> {
    #[derive(Deserialize)]
    struct Index {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    let idx: Index = parse_json("index.json", index)?;
    let mut out = Vec::new();
    for d in &idx.manifests {
        let mut tags = Vec::new();
        // docker writes the full name in io.containerd.image.name and only the
        // tag in ref.name; skopeo writes the full reference in ref.name.
        if let Some(n) = d.annotations.get("io.containerd.image.name") {
            tags.push(parse_tag(n)?);
        } else if let Some(n) = d.annotations.get("org.opencontainers.image.ref.name") {
            if n.contains(':') || n.contains('/') {
                tags.push(parse_tag(n)?);
            }
        }
        resolve_oci_descriptor(c, d, tags, 0, &mut out)?;
    }
    Ok(out)
}
