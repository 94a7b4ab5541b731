//! Which endpoints a registry is tried at, as dockerd does: HTTPS verified
//! against the system's roots and the registry's `certs.d` directory; for
//! an insecure registry (listed, or loopback) HTTPS without verification
//! first, then plain HTTP. Without the `tls` feature only insecure
//! registries can be reached (over HTTP).

use std::path::{Path, PathBuf};

use super::error::{DistError, Result};
use crate::http::tls_client::TlsClient;

/// What the daemon's configuration says about registries.
#[derive(Debug, Clone)]
pub struct Registries {
    /// `insecure-registries` (`host[:port]`), besides loopback.
    pub insecure: Vec<String>,
    /// The `certs.d` root: `<dir>/<host[:port]>/{*.crt, *.cert, *.key}`.
    pub certs_dir: PathBuf,
    /// `registry-mirrors` for Docker Hub (`http://host:port/`), tried in
    /// order before it by pulls.
    pub mirrors: Vec<String>,
}

/// Is this registry insecure? Loopback always (dockerd's default
/// 127.0.0.0/8 and ::1), else when listed.
pub fn is_insecure(domain: &str, insecure: &[String]) -> bool {
    let host = match domain.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => h,
        _ => domain,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.octets()[0] == 127)
        || insecure.iter().any(|i| i == domain || i == host)
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| {
            insecure
                .iter()
                .filter(|i| i.contains('/'))
                .filter_map(|i| crate::access::cidr::Cidr::parse(i).ok())
                .any(|c| c.contains(ip))
        })
}

/// Refuse early (on the loop, before a worker starts) what this build
/// cannot reach: a secure registry without the `tls` feature (501).
pub fn check_supported(domain: &str, regs: &Registries) -> Result<()> {
    if cfg!(feature = "tls") || is_insecure(domain, &regs.insecure) {
        return Ok(());
    }
    Err(DistError::Unsupported(format!(
        "{domain} is served over HTTPS, which this build of coracle cannot speak: list it in insecure-registries if it serves plain HTTP"
    )))
}

/// One way to reach a registry.
pub struct Endpoint {
    pub scheme: &'static str,
    pub tls: Option<TlsClient>,
}

/// The registry's `certs.d` directory, if its name can be one.
fn host_dir(certs_dir: &Path, domain: &str) -> Option<PathBuf> {
    let safe =
        !domain.is_empty() && !domain.starts_with('.') && !domain.contains(['/', '\\', '\0']);
    safe.then(|| certs_dir.join(domain))
}

/// The endpoints to try, in order (runs in a worker: it reads certificates).
pub fn endpoints(domain: &str, regs: &Registries) -> Result<Vec<Endpoint>> {
    check_supported(domain, regs)?;
    let mut out = Vec::new();
    if is_insecure(domain, &regs.insecure) {
        if let Ok(tls) = TlsClient::unverified() {
            out.push(Endpoint {
                scheme: "https",
                tls: Some(tls),
            });
        }
        out.push(Endpoint {
            scheme: "http",
            tls: None,
        });
        return Ok(out);
    }
    let dir = host_dir(&regs.certs_dir, domain);
    let tls = TlsClient::verified(dir.as_deref()).map_err(DistError::Registry)?;
    out.push(Endpoint {
        scheme: "https",
        tls: Some(tls),
    });
    Ok(out)
}

/// A Docker Hub mirror's endpoint (`http://host/` or `https://host/`):
/// its scheme, and TLS as for a registry of that host.
pub fn mirror_endpoint(mirror: &str, regs: &Registries) -> Result<(String, Endpoint)> {
    let (scheme, rest) = mirror
        .split_once("://")
        .ok_or_else(|| DistError::Invalid(format!("invalid mirror {mirror:?}")))?;
    let host = rest.trim_end_matches('/').to_string();
    if scheme == "http" {
        let ep = Endpoint {
            scheme: "http",
            tls: None,
        };
        return Ok((host, ep));
    }
    let tls = if is_insecure(&host, &regs.insecure) {
        TlsClient::unverified()
    } else {
        TlsClient::verified(host_dir(&regs.certs_dir, &host).as_deref())
    }
    .map_err(DistError::Registry)?;
    let ep = Endpoint {
        scheme: "https",
        tls: Some(tls),
    };
    Ok((host, ep))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_insecure_by_default() {
        assert!(is_insecure("127.0.0.1:5000", &[]));
        assert!(is_insecure("localhost:5000", &[]));
        assert!(is_insecure("[::1]:5000", &[]));
        assert!(!is_insecure("10.0.0.2:5000", &[]));
        assert!(is_insecure("10.0.0.2:5000", &["10.0.0.2:5000".into()]));
        assert!(is_insecure("10.0.0.2:5000", &["10.0.0.0/8".into()]));
        assert!(!is_insecure("11.0.0.2:5000", &["10.0.0.0/8".into()]));
    }

    #[test]
    fn insecure_registries_try_https_then_http() {
        let regs = Registries {
            insecure: Vec::new(),
            certs_dir: PathBuf::from("/nonexistent"),
            mirrors: Vec::new(),
        };
        let eps = endpoints("127.0.0.1:5000", &regs).unwrap();
        let schemes: Vec<&str> = eps.iter().map(|e| e.scheme).collect();
        if cfg!(feature = "tls") {
            assert_eq!(schemes, ["https", "http"]);
            let eps = endpoints("10.0.0.2:5000", &regs).unwrap();
            let schemes: Vec<&str> = eps.iter().map(|e| e.scheme).collect();
            assert_eq!(schemes, ["https"]);
        } else {
            assert_eq!(schemes, ["http"]);
            assert!(matches!(
                endpoints("10.0.0.2:5000", &regs),
                Err(DistError::Unsupported(_))
            ));
        }
    }

    #[test]
    fn certs_dirs_stay_under_the_root() {
        let root = Path::new("/etc/coracle/certs.d");
        assert_eq!(
            host_dir(root, "reg.lan:5000"),
            Some(root.join("reg.lan:5000"))
        );
        assert_eq!(host_dir(root, ".."), None);
        assert_eq!(host_dir(root, "a/../../etc"), None);
    }
}
