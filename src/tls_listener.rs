//! The TLS API listener (dockerd's `--tls`, `--tlsverify`): rustls driven
//! by the same non-blocking connection state machine as plain TCP. A
//! `TlsStream` reads and writes plaintext like a socket; the TLS records
//! go through the socket as it has room (`WouldBlock` when it has none),
//! and whatever rustls still holds goes out on `flush`, which the
//! connection calls whenever the socket is writable. Without the `tls`
//! cargo feature both types are empty and asking for TLS is a start-up error.

use crate::config::TlsFlags;

#[cfg(feature = "tls")]
pub use with_tls::{TlsServer, TlsStream};
#[cfg(not(feature = "tls"))]
pub use without_tls::{TlsServer, TlsStream};

/// The server side of TLS, when the flags ask for it.
pub fn server(flags: &TlsFlags) -> Result<Option<TlsServer>, String> {
    if !flags.enabled() {
        return Ok(None);
    }
    TlsServer::load(flags).map(Some)
}

#[cfg(feature = "tls")]
mod with_tls {
    use std::io::{self, ErrorKind, Read, Write};
    use std::path::Path;
    use std::sync::Arc;

    use mio::net::TcpStream;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{RootCertStore, ServerConfig, ServerConnection};

    use crate::config::TlsFlags;
    use crate::http::tls_verify::ClientCaVerifier;

    pub struct TlsServer {
        config: Arc<ServerConfig>,
        /// Client certificates are required and checked against the CA.
        verify: bool,
    }

    impl TlsServer {
        pub fn verify(&self) -> bool {
            self.verify
        }

        pub fn load(flags: &TlsFlags) -> Result<TlsServer, String> {
            let need = |p: &Option<std::path::PathBuf>, flag: &str| {
                p.clone().ok_or_else(|| {
                    format!("TLS needs {flag} (with --tlscert and --tlskey, and --tlscacert for --tlsverify)")
                })
            };
            let cert_path = need(&flags.cert, "--tlscert")?;
            let key_path = need(&flags.key, "--tlskey")?;
            let certs = load_certs(&cert_path)?;
            let key = PrivateKeyDer::from_pem_file(&key_path)
                .map_err(|e| format!("--tlskey {}: {e}", key_path.display()))?;
            let provider = Arc::new(crate::http::tls_provider::provider());
            let builder = ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?;
            let builder = if flags.verify {
                let ca_path = need(&flags.ca, "--tlscacert")?;
                let mut roots = RootCertStore::empty();
                for c in load_certs(&ca_path)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("--tlscacert {}: {e}", ca_path.display()))?;
                }
                let verifier = ClientCaVerifier::new(roots, provider);
                builder.with_client_cert_verifier(Arc::new(verifier))
            } else {
                builder.with_no_client_auth()
            };
            let config = builder
                .with_single_cert(certs, key)
                .map_err(|e| format!("--tlscert/--tlskey: {e}"))?;
            Ok(TlsServer {
                config: Arc::new(config),
                verify: flags.verify,
            })
        }

        pub fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream> {
            let conn = ServerConnection::new(self.config.clone()).map_err(io::Error::other)?;
            Ok(TlsStream {
                tcp,
                conn,
                verified: self.verify,
            })
        }
    }

    fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no certificate in it", path.display()));
        }
        Ok(certs)
    }

    pub struct TlsStream {
        tcp: TcpStream,
        conn: ServerConnection,
        /// The handshake requires a client certificate the CA signed, so
        /// any request read from this stream comes from a vouched client.
        verified: bool,
    }

    impl TlsStream {
        pub fn verified(&self) -> bool {
            self.verified
        }

        /// Send what rustls holds; `WouldBlock` while the socket is full.
        fn push(&mut self) -> io::Result<()> {
            while self.conn.wants_write() {
                match self.conn.write_tls(&mut self.tcp) {
                    Ok(0) => return Err(ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }

        pub fn has_pending_output(&self) -> bool {
            self.conn.wants_write()
        }

        pub fn tcp(&self) -> &TcpStream {
            &self.tcp
        }

        pub fn tcp_mut(&mut self) -> &mut TcpStream {
            &mut self.tcp
        }

        /// close_notify, then the TCP half-close.
        pub fn shutdown_write(&mut self) {
            self.conn.send_close_notify();
            let _ = self.push();
            let _ = self.tcp.shutdown(std::net::Shutdown::Write);
        }
    }

    impl Read for TlsStream {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            loop {
                match self.conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                let got = match self.conn.read_tls(&mut self.tcp) {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                };
                if let Err(e) = self.conn.process_new_packets() {
                    // Send the alert (a refused certificate, say), then fail.
                    let _ = self.push();
                    return Err(io::Error::new(ErrorKind::InvalidData, e));
                }
                // Handshake messages to answer: best effort now, the rest
                // when the socket is writable (`flush`).
                match self.push() {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if got == 0 {
                    // The peer closed TCP: whatever plaintext is left, then EOF.
                    return match self.conn.reader().read(buf) {
                        Ok(n) => Ok(n),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
                        Err(e) => Err(e),
                    };
                }
            }
        }
    }

    impl Write for TlsStream {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            // Take more plaintext only once earlier records are out: the
            // socket, not rustls, is where output waits.
            self.push()?;
            let n = self.conn.writer().write(buf)?;
            match self.push() {
                Ok(()) => Ok(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(n),
                Err(e) => Err(e),
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            self.push()
        }
    }
}

#[cfg(not(feature = "tls"))]
mod without_tls {
    use std::io::{self, Read, Write};

    use crate::config::TlsFlags;

    /// No value exists: this build has no TLS.
    pub enum TlsServer {}
    /// No value exists: this build has no TLS.
    pub enum TlsStream {}

    impl TlsServer {
        pub fn verify(&self) -> bool {
            match *self {}
        }

        pub fn load(flags: &TlsFlags) -> Result<TlsServer, String> {
            let _named = (&flags.ca, &flags.cert, &flags.key);
            Err("--tls/--tlsverify: this coracle was built without the `tls` feature".into())
        }

        pub fn accept(&self, _tcp: mio::net::TcpStream) -> io::Result<TlsStream> {
            match *self {}
        }
    }

    impl TlsStream {
        pub fn has_pending_output(&self) -> bool {
            match *self {}
        }

        pub fn verified(&self) -> bool {
            match *self {}
        }

        pub fn tcp(&self) -> &mio::net::TcpStream {
            match *self {}
        }

        pub fn tcp_mut(&mut self) -> &mut mio::net::TcpStream {
            match *self {}
        }

        pub fn shutdown_write(&mut self) {
            match *self {}
        }
    }

    impl Read for TlsStream {
        fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
            match *self {}
        }
    }

    impl Write for TlsStream {
        fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
            match *self {}
        }
        fn flush(&mut self) -> io::Result<()> {
            match *self {}
        }
    }
}
