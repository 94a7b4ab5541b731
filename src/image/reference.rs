//! Image references (`name[:tag][@digest]`) parsed and normalised like
//! dockerd's distribution/reference: `busybox` is stored as
//! `docker.io/library/busybox:latest` and shown as `busybox:latest`.

use super::digest::is_hex64;
use super::error::{ImageError, Result};

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const NAME_MAX: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    /// Fully qualified repository name, e.g. `docker.io/library/busybox`.
    pub name: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`
    pub digest: Option<String>,
}

fn invalid() -> ImageError {
    ImageError::InvalidReference("invalid reference format".into())
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.starts_with('[') || h.ends_with(']') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') {
        return host.ends_with(']') && host.len() > 2;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !c.starts_with('-')
                && !c.ends_with('-')
        })
}

/// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | -+
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

pub fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || x == b'_' || x == b'.' || x == b'-')
}

impl Reference {
    /// Parse and normalise a reference the way `docker` does for user input.
    pub fn parse(s: &str) -> Result<Reference> {
        if s.is_empty() {
            return Err(invalid());
        }
        if is_hex64(s) {
            return Err(ImageError::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                match d.strip_prefix("sha256:") {
                    Some(h) if is_hex64(h) => {}
                    _ => return Err(invalid()),
                }
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(invalid());
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        let (domain, remote) = match name.split_once('/') {
            Some((d, r)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => {
                (d.to_string(), r.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if remote.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ImageError::InvalidReference(format!(
                "invalid reference format: repository name ({remote}) must be lowercase"
            )));
        }
        if !valid_domain(&domain) || !remote.split('/').all(valid_path_component) {
            return Err(invalid());
        }
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        let remote = if domain == DEFAULT_DOMAIN && !remote.contains('/') {
            format!("{OFFICIAL_PREFIX}{remote}")
        } else {
            remote
        };
        let full = format!("{domain}/{remote}");
        if full.len() > NAME_MAX {
            return Err(ImageError::InvalidReference(
                "invalid reference format: repository name must not be more than 255 characters"
                    .into(),
            ));
        }
        Ok(Reference {
            name: full,
            tag,
            digest,
        })
    }

    /// Add `:latest` when neither a tag nor a digest was given.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".into());
        }
        self
    }

    /// Name without `docker.io/` or `docker.io/library/`, as dockerd shows it.
    pub fn familiar_name(&self) -> &str {
        match self.name.strip_prefix("docker.io/") {
            Some(r) => match r.strip_prefix(OFFICIAL_PREFIX) {
                Some(short) if !short.contains('/') => short,
                _ => r,
            },
            None => &self.name,
        }
    }

    /// Familiar form with tag/digest: `busybox:latest`.
    pub fn familiar(&self) -> String {
        self.render(self.familiar_name())
    }

    fn render(&self, name: &str) -> String {
        let mut s = name.to_string();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(&self.name))
    }
}

/// How dockerd names an image in events: the familiar reference (the text
/// itself when it does not parse).
pub fn familiar(reference: &str) -> String {
    Reference::parse(reference)
        .map(|r| r.familiar())
        .unwrap_or_else(|_| reference.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(s: &str) -> String {
        Reference::parse(s).unwrap().with_default_tag().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(full("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(full("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(
            full("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full("docker.io/library/busybox:x"),
            "docker.io/library/busybox:x"
        );
        assert_eq!(
            full("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            full("fixture/whiteouts:v1"),
            "docker.io/fixture/whiteouts:v1"
        );
        assert_eq!(full("localhost/a"), "localhost/a:latest");
        assert_eq!(full("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(
            full("reg.example.com/x__y/z-1.a"),
            "reg.example.com/x__y/z-1.a:latest"
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            full(&format!("busybox@{d}")),
            format!("docker.io/library/busybox@{d}")
        );
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| Reference::parse(s).unwrap().with_default_tag().familiar();
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("docker.io/fixture/whiteouts:v1"), "fixture/whiteouts:v1");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b:latest");
        assert_eq!(f("quay.io/x/y:1"), "quay.io/x/y:1");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Busybox",
            "a:b:c",
            "a/",
            "/a",
            "a//b",
            "a:",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "a:-tag",
            "a@sha256:123",
            "a b",
            "a/B",
            "a:tag@md5:x",
        ] {
            assert!(
                matches!(Reference::parse(bad), Err(ImageError::InvalidReference(_))),
                "{bad:?} should be rejected"
            );
        }
        let e = Reference::parse("Busybox").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
        let hex = "a".repeat(64);
        assert!(Reference::parse(&hex)
            .unwrap_err()
            .to_string()
            .contains("64-byte hexadecimal"));
        assert!(Reference::parse(&format!("x{}", "a".repeat(300))).is_err());
    }
}
