//! The one rustls `CryptoProvider` both TLS ends use (the API listener and
//! the registry client): *ring*'s, as `rustls::crypto::ring::default_provider()`
//! builds it, less the ChaCha20-Poly1305 cipher suites. Those are the only
//! suites that need ChaCha20 and Poly1305 (about 48 KiB of the static binary);
//! every TLS 1.3 peer must speak `TLS_AES_128_GCM_SHA256` (RFC 8446, 9.1) and
//! the TLS 1.2 ones we accept all speak ECDHE with AES-GCM. Key exchange
//! groups, signature algorithms, randomness and key loading are *ring*'s own,
//! in rustls's order.

use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite, kx_group, sign};
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::SignatureScheme;
use webpki::ring as alg;

/// The provider; cheap (a few vectors of static references).
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            #[cfg(feature = "tls12")]
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            #[cfg(feature = "tls12")]
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            #[cfg(feature = "tls12")]
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            #[cfg(feature = "tls12")]
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        signature_verification_algorithms: SIG_ALGS,
        secure_random: &Ring,
        key_provider: &Ring,
    }
}

/// rustls's table for *ring* (`crypto/ring/mod.rs`, private there).
static SIG_ALGS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        alg::ECDSA_P256_SHA256,
        alg::ECDSA_P256_SHA384,
        alg::ECDSA_P384_SHA256,
        alg::ECDSA_P384_SHA384,
        alg::ED25519,
        alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
        alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
        alg::RSA_PKCS1_2048_8192_SHA256,
        alg::RSA_PKCS1_2048_8192_SHA384,
        alg::RSA_PKCS1_2048_8192_SHA512,
        alg::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
        alg::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    ],
    mapping: &[
        // For TLS 1.2 the curve is not fixed by the scheme; for TLS 1.3 it is.
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[alg::ECDSA_P384_SHA384, alg::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[alg::ECDSA_P256_SHA256, alg::ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[alg::ED25519]),
        (
            SignatureScheme::RSA_PSS_SHA512,
            &[alg::RSA_PSS_2048_8192_SHA512_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA384,
            &[alg::RSA_PSS_2048_8192_SHA384_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PSS_SHA256,
            &[alg::RSA_PSS_2048_8192_SHA256_LEGACY_KEY],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA512,
            &[alg::RSA_PKCS1_2048_8192_SHA512],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA384,
            &[alg::RSA_PKCS1_2048_8192_SHA384],
        ),
        (
            SignatureScheme::RSA_PKCS1_SHA256,
            &[alg::RSA_PKCS1_2048_8192_SHA256],
        ),
    ],
};

/// *ring*'s randomness and key loading, as rustls's own provider has them.
#[derive(Debug)]
struct Ring;

impl SecureRandom for Ring {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| GetRandomFailed)
    }
}

impl KeyProvider for Ring {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        sign::any_supported_type(&key_der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same as rustls's *ring* provider but for the ChaCha20 suites.
    #[test]
    fn ring_default_less_chacha() {
        let ring = rustls::crypto::ring::default_provider();
        let ours = provider();
        let names = |p: &CryptoProvider| -> Vec<String> {
            p.cipher_suites
                .iter()
                .map(|s| format!("{:?}", s.suite()))
                .filter(|n| !n.contains("CHACHA20"))
                .collect()
        };
        assert_eq!(names(&ours), names(&ring));
        assert_eq!(names(&ours).len(), ours.cipher_suites.len());
        let groups =
            |p: &CryptoProvider| -> Vec<_> { p.kx_groups.iter().map(|g| g.name()).collect() };
        assert_eq!(groups(&ours), groups(&ring));
        assert_eq!(
            format!("{:?}", ours.signature_verification_algorithms),
            format!("{:?}", ring.signature_verification_algorithms)
        );
        let mut a = [0u8; 32];
        ours.secure_random.fill(&mut a).expect("random bytes");
        assert_ne!(a, [0u8; 32]);
    }
}
