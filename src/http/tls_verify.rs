//! How certificates are checked, on both TLS ends. The worker-side TLS
//! client checks a server's certificate with webpki against the trusted
//! roots, with the clock never read as earlier than the binary's build date
//! (a device without an RTC boots in 1970 and must still verify
//! certificates: it checks them as at the build date and says so once); or
//! not at all, for an insecure registry (the handshake's signatures are
//! still checked). The `--tlsverify` listener checks a client's
//! certificate against `--tlscacert` (`ClientCaVerifier`).
//!
//! Both are webpki's own checks (chain to a root, validity times, key usage,
//! name constraints, signatures; the server's name) as rustls's
//! `WebPkiServerVerifier` / `WebPkiClientVerifier` make them when given no
//! CRLs, which neither end ever has: those builders parse CRLs all the same,
//! and their code is ~9 KiB of the static binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, RootCertStore,
    SignatureScheme,
};

/// The build date in Unix seconds (build.rs).
pub fn build_epoch() -> u64 {
    env!("CORACLE_BUILD_EPOCH").parse().unwrap_or(0)
}

/// The clock certificates are checked against: `now`, or the build date
/// when `now` is earlier. Debug builds (the integration tests) may fake
/// `now` with `CORACLE_FAKE_CLOCK` (Unix seconds); release builds never
/// read it.
pub fn verification_time(now: UnixTime, floor: u64) -> (UnixTime, bool) {
    #[cfg(debug_assertions)]
    let now = std::env::var("CORACLE_FAKE_CLOCK")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(now, secs);
    if now.as_secs() < floor {
        (secs(floor), true)
    } else {
        (now, false)
    }
}

fn secs(s: u64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(s))
}

static CLOCK_LOGGED: AtomicBool = AtomicBool::new(false);

/// The handshake's signatures, checked the same way by every verifier here:
/// with the algorithms of the verifier's `provider` (ours, http/tls_provider.rs).
/// The three trait methods are the same in `ServerCertVerifier` and
/// `ClientCertVerifier`, so one body serves all three verifiers.
macro_rules! handshake_signatures_by_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

/// webpki with the build date as the clock's floor. With no trusted root
/// at all every certificate is unknown.
#[derive(Debug)]
pub struct FloorVerifier {
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
    floor: u64,
}

impl FloorVerifier {
    pub fn new(roots: RootCertStore, provider: Arc<CryptoProvider>, floor: u64) -> FloorVerifier {
        FloorVerifier {
            roots,
            provider,
            floor,
        }
    }
}

impl ServerCertVerifier for FloorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self.roots.is_empty() {
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        }
        let (at, floored) = verification_time(now, self.floor);
        if floored && !CLOCK_LOGGED.swap(true, Ordering::Relaxed) {
            log::warn!(
                "the system clock reads {}, before this binary's build date {}: registry certificates are checked as at the build date",
                rfc3339(now_or_fake(now).as_secs()),
                rfc3339(self.floor)
            );
        }
        // An OCSP response is not checked (rustls's verifier only logs it).
        let _ = ocsp_response;
        let cert = ParsedCertificate::try_from(end_entity)?;
        let algs = self.provider.signature_verification_algorithms.all;
        verify_server_cert_signed_by_trust_anchor(&cert, &self.roots, intermediates, at, algs)?;
        verify_server_name(&cert, server_name)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_by_provider!();
}

/// The clock as the verifier sees it before the floor (for the log line).
fn now_or_fake(now: UnixTime) -> UnixTime {
    verification_time(now, 0).0
}

/// dockerd's `InsecureSkipVerify`: any certificate, any name; the
/// handshake's signatures are still checked.
#[derive(Debug)]
pub struct NoVerifier {
    pub provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    handshake_signatures_by_provider!();
}

/// The `--tlsverify` listener's check of a client certificate: issued
/// (through the client's intermediates) by a `--tlscacert` root, valid now,
/// for client authentication. A client must present one (Go's
/// `RequireAndVerifyClientCert`), and the handshake names the roots'
/// subjects as the acceptable CAs.
#[derive(Debug)]
pub struct ClientCaVerifier {
    roots: RootCertStore,
    subjects: Vec<DistinguishedName>,
    provider: Arc<CryptoProvider>,
}

impl ClientCaVerifier {
    pub fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> ClientCaVerifier {
        ClientCaVerifier {
            subjects: roots.subjects(),
            roots,
            provider,
        }
    }
}

impl ClientCertVerifier for ClientCaVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.subjects
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(cert_error)?;
        cert.verify_for_usage(
            self.provider.signature_verification_algorithms.all,
            &self.roots.roots,
            intermediates,
            now,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map_err(cert_error)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures_by_provider!();
}

/// A webpki error as rustls words it for a client certificate (so the
/// client gets the same alert: unknown CA, certificate expired,
/// unsupported certificate, bad certificate, decrypt error); the rest as
/// rustls leaves them, `Other` (certificate unknown).
fn cert_error(e: webpki::Error) -> Error {
    use webpki::Error as W;
    #[allow(deprecated)]
    let c = match e {
        W::BadDer | W::BadDerTime | W::TrailingData(_) => CertificateError::BadEncoding,
        W::CertNotValidYet { time, not_before } => {
            CertificateError::NotValidYetContext { time, not_before }
        }
        W::CertExpired { time, not_after } => CertificateError::ExpiredContext { time, not_after },
        W::InvalidCertValidity => CertificateError::Expired,
        W::UnknownIssuer => CertificateError::UnknownIssuer,
        W::InvalidSignatureForPublicKey
        | W::UnsupportedSignatureAlgorithm
        | W::UnsupportedSignatureAlgorithmForPublicKey
        | W::UnsupportedSignatureAlgorithmContext(_)
        | W::UnsupportedSignatureAlgorithmForPublicKeyContext(_) => CertificateError::BadSignature,
        W::RequiredEkuNotFound | W::RequiredEkuNotFoundContext(_) => {
            CertificateError::InvalidPurpose
        }
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    Error::InvalidCertificate(c)
}

/// Unix seconds as Go prints a `time.Time` in x509 errors (RFC 3339, UTC).
pub fn rfc3339(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    let s = crate::timefmt::rfc3339_nano(t);
    // Whole seconds: drop any fraction.
    match (s.find('.'), s.rfind('Z')) {
        (Some(dot), Some(z)) if dot < z => format!("{}Z", &s[..dot]),
        _ => s,
    }
}

/// A rustls error in Go's `crypto/tls` / `crypto/x509` words, as dockerd
/// reports a failed handshake.
pub fn go_words(e: &Error) -> String {
    const VERIFY: &str = "tls: failed to verify certificate: x509: ";
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                format!("{VERIFY}certificate signed by unknown authority")
            }
            CertificateError::NotValidYetContext { time, not_before } => format!(
                "{VERIFY}certificate has expired or is not yet valid: current time {} is before {}",
                rfc3339(time.as_secs()),
                rfc3339(not_before.as_secs())
            ),
            CertificateError::ExpiredContext { time, not_after } => format!(
                "{VERIFY}certificate has expired or is not yet valid: current time {} is after {}",
                rfc3339(time.as_secs()),
                rfc3339(not_after.as_secs())
            ),
            CertificateError::Expired | CertificateError::NotValidYet => {
                format!("{VERIFY}certificate has expired or is not yet valid")
            }
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => {
                let want = match expected {
                    ServerName::DnsName(d) => d.as_ref().to_string(),
                    ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
                    other => format!("{other:?}"),
                };
                if presented.is_empty() {
                    format!("{VERIFY}certificate is not valid for any names, but wanted to match {want}")
                } else {
                    let names: Vec<&str> = presented
                        .iter()
                        .map(|p| {
                            p.trim_start_matches("DnsName(\"")
                                .trim_start_matches("IpAddress(")
                                .trim_end_matches("\")")
                                .trim_end_matches(')')
                        })
                        .collect();
                    format!(
                        "{VERIFY}certificate is valid for {}, not {want}",
                        names.join(", ")
                    )
                }
            }
            CertificateError::NotValidForName => {
                format!("{VERIFY}certificate is not valid for this name")
            }
            other => format!("{VERIFY}{other:?}"),
        },
        Error::InvalidMessage(_) => "http: server gave HTTP response to HTTPS client".into(),
        Error::AlertReceived(a) => {
            format!("remote error: tls: {}", alert_words(&format!("{a:?}")))
        }
        other => format!("tls: {other}"),
    }
}

/// `BadCertificate` -> `bad certificate` (Go's alert texts).
fn alert_words(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_clock_is_raised_to_the_build_date() {
        let floor = 1_700_000_000;
        let early = secs(86_400);
        let (at, floored) = verification_time(early, floor);
        assert!(floored);
        assert_eq!(at.as_secs(), floor);
        let late = secs(floor + 10);
        let (at, floored) = verification_time(late, floor);
        if std::env::var_os("CORACLE_FAKE_CLOCK").is_none() {
            assert!(!floored);
            assert_eq!(at.as_secs(), floor + 10);
        }
        assert!(build_epoch() > 1_600_000_000, "build.rs exports the date");
    }

    #[test]
    fn errors_are_worded_as_go() {
        let e = Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            go_words(&e),
            "tls: failed to verify certificate: x509: certificate signed by unknown authority"
        );
        let e = Error::InvalidCertificate(CertificateError::NotValidYetContext {
            time: secs(0),
            not_before: secs(86_400),
        });
        assert_eq!(
            go_words(&e),
            "tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 1970-01-01T00:00:00Z is before 1970-01-02T00:00:00Z"
        );
        assert_eq!(alert_words("BadCertificate"), "bad certificate");
    }
}
