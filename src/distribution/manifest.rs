//! Manifests as registries serve them (Docker v2 schema 2, manifest list,
//! OCI manifest, OCI index) and the choice of one platform from a list:
//! the daemon's architecture and variant (arm64 = v8; arm/v7 falls back to
//! v6 then v5; the variant read from `/proc/cpuinfo`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{DistError, Result};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The `Accept` header of a manifest request: every kind we read.
pub fn accept() -> String {
    [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ")
}

/// Largest manifest we read.
pub const MANIFEST_MAX: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Manifest {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index(Vec<Descriptor>),
}

/// Parse a manifest by its media type (the `Content-Type`, else its own
/// `mediaType` field, else its shape).
pub fn parse(content_type: &str, body: &[u8]) -> Result<Manifest> {
    let bad = |m: String| DistError::Registry(format!("invalid manifest: {m}"));
    let v: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let mt = v.get("mediaType").and_then(Value::as_str).unwrap_or(ct);
    let mt = if mt.is_empty() { ct } else { mt };
    if v.get("schemaVersion").and_then(Value::as_u64) == Some(1) {
        return Err(DistError::Registry(
            "unsupported manifest: Docker Image manifest version 2, schema 1 is no longer supported"
                .into(),
        ));
    }
    let is_index = mt == DOCKER_LIST || mt == OCI_INDEX || v.get("manifests").is_some();
    if is_index {
        let subs: Vec<Descriptor> =
            serde_json::from_value(v.get("manifests").cloned().unwrap_or(Value::Null))
                .map_err(|e| bad(e.to_string()))?;
        return Ok(Manifest::Index(subs));
    }
    let config: Descriptor =
        serde_json::from_value(v.get("config").cloned().unwrap_or(Value::Null))
            .map_err(|e| bad(format!("config: {e}")))?;
    let layers: Vec<Descriptor> =
        serde_json::from_value(v.get("layers").cloned().unwrap_or(Value::Array(Vec::new())))
            .map_err(|e| bad(format!("layers: {e}")))?;
    for d in std::iter::once(&config).chain(&layers) {
        check_digest(&d.digest)?;
    }
    Ok(Manifest::Image { config, layers })
}

/// Only sha256 digests are read.
pub fn check_digest(d: &str) -> Result<()> {
    match d.strip_prefix("sha256:") {
        Some(h) if crate::image::digest::is_hex64(h) => Ok(()),
        _ => Err(DistError::Registry(format!("unsupported digest {d:?}"))),
    }
}

/// `os/arch[/variant]` as `--platform` gives it.
pub fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let bad = || {
        DistError::Invalid(format!(
            "\"{s}\": unknown operating system or architecture: invalid argument"
        ))
    };
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (os, arch, variant) = match parts.as_slice() {
        [os] if *os == "linux" => ("linux", crate::host::go_arch(), ""),
        [arch] => ("linux", *arch, ""),
        [os, arch] => (*os, *arch, ""),
        [os, arch, v] => (*os, *arch, *v),
        _ => return Err(bad()),
    };
    Ok(normalise(Platform {
        os: os.to_ascii_lowercase(),
        architecture: arch.to_ascii_lowercase(),
        variant: variant.to_ascii_lowercase(),
    }))
}

/// containerd's normalisation: aarch64 -> arm64 (v8), x86_64 -> amd64, armhf -> arm/v7.
pub fn normalise(mut p: Platform) -> Platform {
    let (arch, variant) = match (p.architecture.as_str(), p.variant.as_str()) {
        ("x86_64" | "x86-64" | "amd64", v) => ("amd64", if v == "v1" { "" } else { v }),
        ("aarch64" | "arm64", "" | "8" | "v8") => ("arm64", "v8"),
        ("aarch64" | "arm64", v) => ("arm64", v),
        ("armhf", _) => ("arm", "v7"),
        ("armel", _) => ("arm", "v6"),
        ("arm", "") => ("arm", "v7"),
        ("arm", v) if !v.starts_with('v') => (
            "arm",
            if v == "5" {
                "v5"
            } else if v == "6" {
                "v6"
            } else if v == "8" {
                "v8"
            } else {
                "v7"
            },
        ),
        ("i386" | "386", v) => ("386", v),
        (a, v) => (a, v),
    };
    p.architecture = arch.to_string();
    p.variant = variant.to_string();
    p
}

/// The daemon's own platform, with the ARM variant from `/proc/cpuinfo`.
pub fn host_platform() -> Platform {
    let arch = crate::host::go_arch();
    let variant = if arch == "arm" {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        arm_variant(&cpuinfo).to_string()
    } else {
        String::new()
    };
    normalise(Platform {
        os: "linux".into(),
        architecture: arch.into(),
        variant,
    })
}

/// `CPU architecture: 7` -> v7 (as containerd reads it).
pub fn arm_variant(cpuinfo: &str) -> &'static str {
    let v = cpuinfo
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == "CPU architecture").then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    match v.as_str() {
        "8" | "AArch64" => "v8",
        "7" => "v7",
        "6" | "5TEJ" => "v6",
        "5" | "5T" | "5TE" => "v5",
        _ => "v7",
    }
}

/// Pick the manifest for `want` from an index: exact variant first, then
/// the variants an ARM CPU also runs (v7 -> v6 -> v5).
pub fn select<'a>(subs: &'a [Descriptor], want: &Platform) -> Option<&'a Descriptor> {
    let fallbacks: Vec<&str> = match (want.architecture.as_str(), want.variant.as_str()) {
        ("arm", "v8") => vec!["v8", "v7", "v6", "v5"],
        ("arm", "v7") => vec!["v7", "v6", "v5"],
        ("arm", "v6") => vec!["v6", "v5"],
        (_, v) => vec![v],
    };
    for v in fallbacks {
        let hit = subs.iter().find(|d| {
            let Some(p) = &d.platform else {
                return false;
            };
            let p = normalise(p.clone());
            p.os == want.os && p.architecture == want.architecture && p.variant == v
        });
        if hit.is_some() {
            return hit;
        }
    }
    // An amd64 request matches any amd64 variant (v2, v3) last.
    subs.iter().find(|d| {
        d.platform.as_ref().is_some_and(|p| {
            let p = normalise(p.clone());
            p.os == want.os && p.architecture == want.architecture && want.variant.is_empty()
        })
    })
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(arch: &str, variant: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{arch}{variant}"),
            size: 1,
            platform: Some(Platform {
                os: "linux".into(),
                architecture: arch.into(),
                variant: variant.into(),
            }),
            urls: vec![],
        }
    }

    #[test]
    fn platform_selection_follows_containerd() {
        let subs = vec![
            d("amd64", ""),
            d("arm64", "v8"),
            d("arm", "v6"),
            d("arm", "v5"),
        ];
        let arm64 = parse_platform("linux/arm64").unwrap();
        assert_eq!(select(&subs, &arm64).unwrap().digest, "sha256:arm64v8");
        let armv7 = parse_platform("linux/arm/v7").unwrap();
        assert_eq!(select(&subs, &armv7).unwrap().digest, "sha256:armv6");
        let amd = parse_platform("linux/amd64").unwrap();
        assert_eq!(select(&subs, &amd).unwrap().digest, "sha256:amd64");
        assert!(select(&subs, &parse_platform("linux/s390x").unwrap()).is_none());
        // arm64 without a variant in the index still matches.
        let subs = vec![d("arm64", "")];
        assert!(select(&subs, &arm64).is_some());
        assert_eq!(arm_variant("processor : 0\nCPU architecture: 7\n"), "v7");
        assert!(parse_platform("linux//x").is_err());
    }
}
