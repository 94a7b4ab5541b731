//! TLS for the blocking worker-side client (registry pulls, pushes, logins
//! and searches over HTTPS): rustls over the worker's `TcpStream`. Roots are
//! the system's CA bundle (the device's own, found where Go looks for it)
//! plus a directory in dockerd's `certs.d` layout (`*.crt` CAs, a
//! `*.cert`/`*.key` client pair); or no verification at all, for an
//! insecure registry. Without the `tls` cargo feature `TlsClient` cannot be
//! made and HTTPS stays refused.

#[cfg(feature = "tls")]
pub use with_tls::TlsClient;
#[cfg(not(feature = "tls"))]
pub use without_tls::TlsClient;

#[cfg(feature = "tls")]
mod with_tls {
    use std::io;
    use std::net::TcpStream;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

    use crate::http::tls_verify::{build_epoch, go_words, FloorVerifier, NoVerifier};

    pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

    /// Where Go (and so dockerd) looks for the system's CA bundle.
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/tls/cacert.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    /// Directories of single certificates, read when no bundle exists.
    const DIRS: &[&str] = &["/etc/ssl/certs", "/etc/pki/tls/certs"];

    #[derive(Clone)]
    pub struct TlsClient {
        config: Arc<ClientConfig>,
    }

    impl TlsClient {
        /// Verify servers against the system's roots and `dir`'s `*.crt`,
        /// presenting `dir`'s client certificate when it has one.
        pub fn verified(dir: Option<&Path>) -> Result<TlsClient, String> {
            let provider = Arc::new(crate::http::tls_provider::provider());
            let mut roots = RootCertStore::empty();
            system_roots(&mut roots);
            let mut client = None;
            if let Some(dir) = dir {
                client = read_certs_dir(dir, &mut roots)?;
            }
            let verifier = FloorVerifier::new(roots, provider.clone(), build_epoch());
            let builder = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier));
            let config = match client {
                Some((certs, key)) => builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("client certificate: {e}"))?,
                None => builder.with_no_client_auth(),
            };
            Ok(TlsClient {
                config: Arc::new(config),
            })
        }

        /// dockerd's `InsecureSkipVerify`: an insecure registry's first try.
        pub fn unverified() -> Result<TlsClient, String> {
            let provider = Arc::new(crate::http::tls_provider::provider());
            let verifier = NoVerifier {
                provider: provider.clone(),
            };
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Ok(TlsClient {
                config: Arc::new(config),
            })
        }

        /// The handshake with `host` over `tcp`; a failure is worded as Go
        /// words it (`tls: failed to verify certificate: x509: ...`).
        pub fn connect(&self, mut tcp: TcpStream, host: &str) -> io::Result<TlsStream> {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
            let mut conn = ClientConnection::new(self.config.clone(), name)
                .map_err(|e| io::Error::other(go_words(&e)))?;
            while conn.is_handshaking() {
                if let Err(e) = conn.complete_io(&mut tcp) {
                    let words = e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<rustls::Error>())
                        .map(go_words);
                    return Err(match words {
                        Some(w) => io::Error::new(e.kind(), w),
                        None => e,
                    });
                }
            }
            Ok(StreamOwned::new(conn, tcp))
        }
    }

    fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> usize {
        let Ok(iter) = CertificateDer::pem_file_iter(path) else {
            return 0;
        };
        let certs: Vec<CertificateDer<'static>> = iter.filter_map(Result::ok).collect();
        roots.add_parsable_certificates(certs).0
    }

    /// The system's roots: `SSL_CERT_FILE`, else the first bundle that
    /// exists; `SSL_CERT_DIR` or the usual directories when none gave any.
    fn system_roots(roots: &mut RootCertStore) {
        let file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
        let files = file.into_iter().chain(BUNDLES.iter().map(PathBuf::from));
        for f in files {
            if add_pem_file(roots, &f) > 0 {
                return;
            }
        }
        let dirs: Vec<PathBuf> = match std::env::var("SSL_CERT_DIR") {
            Ok(d) => d.split(':').map(PathBuf::from).collect(),
            Err(_) => DIRS.iter().map(PathBuf::from).collect(),
        };
        for d in dirs {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                add_pem_file(roots, &e.path());
            }
        }
    }

    type ClientPair = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

    /// dockerd's `ReadCertsDirectory`: every `*.crt` is a CA; a `*.cert`
    /// needs its `*.key` (and the other way round). The first client pair
    /// is presented. A missing directory is no error.
    pub fn read_certs_dir(
        dir: &Path,
        roots: &mut RootCertStore,
    ) -> Result<Option<ClientPair>, String> {
        let mut names: Vec<String> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", dir.display())),
        };
        crate::sort::sort(&mut names);
        let mut client = None;
        for name in &names {
            let path = dir.join(name);
            if name.ends_with(".crt") {
                let certs = CertificateDer::pem_file_iter(&path)
                    .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                for c in certs {
                    roots
                        .add(c)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            } else if let Some(stem) = name.strip_suffix(".cert") {
                let key = format!("{stem}.key");
                if !names.contains(&key) {
                    return Err(format!(
                        "missing key {key} for client certificate {name}. CA certificates must use the extension .crt"
                    ));
                }
                if client.is_none() {
                    let certs = CertificateDer::pem_file_iter(&path)
                        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    let key_path = dir.join(&key);
                    let key = PrivateKeyDer::from_pem_file(&key_path)
                        .map_err(|e| format!("{}: {e}", key_path.display()))?;
                    client = Some((certs, key));
                }
            } else if let Some(stem) = name.strip_suffix(".key") {
                let cert = format!("{stem}.cert");
                if !names.contains(&cert) {
                    return Err(format!("missing client certificate {cert} for key {name}"));
                }
            }
        }
        Ok(client)
    }
}

#[cfg(not(feature = "tls"))]
mod without_tls {
    use std::io;
    use std::net::TcpStream;
    use std::path::Path;

    pub type TlsStream = TcpStream;

    /// Never made: this build has no TLS.
    #[derive(Clone)]
    pub enum TlsClient {}

    const NO_TLS: &str = "this build of coracle has no TLS (cargo feature `tls`)";

    impl TlsClient {
        pub fn verified(_dir: Option<&Path>) -> Result<TlsClient, String> {
            Err(NO_TLS.into())
        }

        pub fn unverified() -> Result<TlsClient, String> {
            Err(NO_TLS.into())
        }

        pub fn connect(&self, _tcp: TcpStream, _host: &str) -> io::Result<TlsStream> {
            match *self {}
        }
    }
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::with_tls::read_certs_dir;
    use rustls::RootCertStore;

    #[test]
    fn certs_dirs_follow_dockerds_rules() {
        let dir = std::env::temp_dir().join(format!("coracle-certsd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut roots = RootCertStore::empty();
        // A missing directory is no error.
        assert!(matches!(read_certs_dir(&dir, &mut roots), Ok(None)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("client.cert"), "").unwrap();
        let e = read_certs_dir(&dir, &mut roots).err().unwrap();
        assert_eq!(
            e,
            "missing key client.key for client certificate client.cert. CA certificates must use the extension .crt"
        );
        std::fs::remove_file(dir.join("client.cert")).unwrap();
        std::fs::write(dir.join("client.key"), "").unwrap();
        let e = read_certs_dir(&dir, &mut roots).err().unwrap();
        assert_eq!(
            e,
            "missing client certificate client.cert for key client.key"
        );
        std::fs::remove_file(dir.join("client.key")).unwrap();
        // Other files are ignored.
        std::fs::write(dir.join("notes.txt"), "hello").unwrap();
        assert!(matches!(read_certs_dir(&dir, &mut roots), Ok(None)));
        assert!(roots.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
