//! SHA-256, the one hasher behind every digest (image IDs, DiffIDs, blobs,
//! build checksums, API token hashes). With the `tls` feature it is *ring*'s,
//! which TLS already puts in the binary; without it, the `sha2` crate's.
//! Two copies of SHA-256 in one binary were ~13 KiB.

use std::io;

/// An incremental SHA-256.
#[derive(Clone)]
pub struct Sha256(Inner);

#[cfg(feature = "tls")]
type Inner = ring::digest::Context;
#[cfg(not(feature = "tls"))]
type Inner = sha2::Sha256;

impl Sha256 {
    pub fn new() -> Sha256 {
        #[cfg(feature = "tls")]
        return Sha256(ring::digest::Context::new(&ring::digest::SHA256));
        #[cfg(not(feature = "tls"))]
        return Sha256(<sha2::Sha256 as sha2::Digest>::new());
    }

    pub fn update(&mut self, data: &[u8]) {
        #[cfg(feature = "tls")]
        self.0.update(data);
        #[cfg(not(feature = "tls"))]
        sha2::Digest::update(&mut self.0, data);
    }

    pub fn finalize(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        #[cfg(feature = "tls")]
        out.copy_from_slice(self.0.finish().as_ref());
        #[cfg(not(feature = "tls"))]
        out.copy_from_slice(&sha2::Digest::finalize(self.0));
        out
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(data);
        h.finalize()
    }
}

/// Hashes what is written (`io::copy` into a hasher).
impl io::Write for Sha256 {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// FIPS 180-2's vectors, whole and fed in pieces across block edges.
    #[test]
    fn known_answers() {
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        let want = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
        assert_eq!(hex(&Sha256::digest(long)), want);
        let mut h = Sha256::new();
        for piece in long.chunks(7) {
            h.update(piece);
        }
        assert_eq!(hex(&h.clone().finalize()), want);
        let mut m = vec![b'a'; 1_000_000];
        let mut h = Sha256::new();
        io::Write::write_all(&mut h, &m[..333_333]).unwrap();
        h.update(&m[333_333..]);
        assert_eq!(
            hex(&h.finalize()),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        m.clear();
    }
}
