//! FROM an image, worker side: `pull=1` pulls it even when it is here
//! (through the daemon's registry code), and `platform` (or `FROM
//! --platform`) must match the image's, with dockerd's error otherwise.

use serde_json::Value;

use super::context::BuildError;
use super::steps::{ImageRec, StepEnv};
use crate::distribution::manifest::{normalise, parse_platform, Platform};

/// A FROM image pulled from its registry for `platform` (its progress
/// goes into the build's stream).
pub type PullBase<'a> = &'a dyn Fn(&str, Option<&Platform>) -> Result<ImageRec, String>;

/// `os/arch[/variant]` as dockerd formats a platform (containerd leaves
/// arm64's default variant out).
fn format(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os, p.architecture);
    let default_variant = p.architecture == "arm64" && p.variant == "v8";
    if !p.variant.is_empty() && !default_variant {
        s.push('/');
        s.push_str(&p.variant);
    }
    s
}

/// An image's platform, normalised (an image without one is the host's).
fn platform_of(img: &Value) -> Platform {
    let field = |k: &str| {
        img.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let host = crate::distribution::manifest::host_platform();
    let os = field("os");
    let arch = field("architecture");
    normalise(Platform {
        os: if os.is_empty() { host.os.clone() } else { os },
        architecture: if arch.is_empty() {
            host.architecture.clone()
        } else {
            arch
        },
        variant: field("variant"),
    })
}

/// containerd's `platforms.Only(want).Match(have)`: same OS and
/// architecture; a variant asked for must be the image's (an image with none
/// is taken for the default one).
fn matches(want: &Platform, have: &Platform) -> bool {
    want.os == have.os
        && want.architecture == have.architecture
        && (want.variant.is_empty() || have.variant.is_empty() || want.variant == have.variant)
}

/// The platform a stage asks for: `FROM --platform`, else `platform`.
pub fn wanted(flag: Option<&str>, param: Option<&str>) -> Result<Option<Platform>, BuildError> {
    match flag.or(param).filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => {
            let p = parse_platform(p).map_err(|e| BuildError::Invalid(e.to_string()))?;
            if p.os != "linux" {
                return Err(BuildError::Invalid(format!("unsupported os {}", p.os)));
            }
            Ok(Some(p))
        }
    }
}

/// The image a stage starts from.
pub fn base(
    env: &mut StepEnv,
    name: &str,
    platform: Option<&Platform>,
) -> Result<ImageRec, BuildError> {
    if let Some(pull) = env.pull {
        return pull(name, platform).map_err(BuildError::Invalid);
    }
    let (id, img) = (env.resolve)(name).map_err(BuildError::Invalid)?;
    if let Some(want) = platform {
        let have = platform_of(&img);
        if !matches(want, &have) {
            return Err(BuildError::Invalid(format!(
                "image with reference {name} was found but does not match the specified platform: wanted {}, actual: {}",
                format(want),
                format(&have)
            )));
        }
    }
    Ok((id, img))
}
