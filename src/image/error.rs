//! The one error type of the image store. Variants are semantic so the API
//! layer can map them to HTTP statuses in one place; `Display` gives the text
//! dockerd would put in the `message` field.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum ImageError {
    /// No image (or reference) by that name. 404.
    NotFound(String),
    /// A reference that does not parse, or a tag request that is refused. 400.
    InvalidReference(String),
    /// A short ID matching more than one image. 400.
    AmbiguousReference(String),
    /// A bad request parameter (import `changes`, filters). 400.
    InvalidArgument(String),
    /// Malformed, truncated or inconsistent archive / tar / gzip / JSON. 400.
    BadArchive(String),
    /// A tar entry that would write outside the layer or is not allowed
    /// (`..`, absolute path, write through a symlink, device node). 400.
    UnsafePath(String),
    /// Over a size cap (total bytes, gzip ratio, JSON blob). 413 (or 400).
    TooLarge(String),
    /// Refused because of the current state (image in use, multiple repos). 409.
    Conflict(String),
    /// On-disk store content does not match what it should (a layer whose
    /// regenerated tar no longer has its DiffID). 500.
    Corrupt(String),
    /// Any other I/O failure. 500.
    Io(io::Error),
}

pub type Result<T> = std::result::Result<T, ImageError>;

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NotFound(name) => write!(f, "No such image: {name}"),
            ImageError::InvalidReference(m) => write!(f, "{m}"),
            ImageError::AmbiguousReference(m) => write!(f, "{m}"),
            ImageError::InvalidArgument(m) => write!(f, "{m}"),
            ImageError::BadArchive(m) => write!(f, "invalid archive: {m}"),
            ImageError::UnsafePath(m) => write!(f, "unsafe archive entry: {m}"),
            ImageError::TooLarge(m) => write!(f, "archive too large: {m}"),
            ImageError::Conflict(m) => write!(f, "{m}"),
            ImageError::Corrupt(m) => write!(f, "image store corrupt: {m}"),
            ImageError::Io(e) => f.write_str(&crate::goerr::io_text(e)),
        }
    }
}

impl std::error::Error for ImageError {}

impl From<io::Error> for ImageError {
    fn from(e: io::Error) -> Self {
        // Our own readers smuggle typed errors through io::Error so that
        // limits hit deep inside a decoder keep their meaning.
        if e.get_ref().is_some_and(|inner| inner.is::<ImageError>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(img) = inner.downcast::<ImageError>() {
                    return *img;
                }
            }
            return ImageError::Io(io::Error::other("error"));
        }
        if e.kind() == io::ErrorKind::UnexpectedEof {
            return ImageError::BadArchive("unexpected EOF".into());
        }
        ImageError::Io(e)
    }
}

impl From<nix::Error> for ImageError {
    fn from(e: nix::Error) -> Self {
        ImageError::Io(io::Error::from(e))
    }
}

impl ImageError {
    /// Wrap into an io::Error (to cross `Read` boundaries) without losing the variant.
    pub fn into_io(self) -> io::Error {
        match self {
            ImageError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

/// An `ImageError` flattened to cross the worker pipe (serde) and be
/// rebuilt on the daemon side with the same variant and text.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WireError {
    pub kind: String,
    pub detail: String,
}

impl From<&ImageError> for WireError {
    fn from(e: &ImageError) -> Self {
        let (kind, detail) = match e {
            ImageError::NotFound(m) => ("NotFound", m.clone()),
            ImageError::InvalidReference(m) => ("InvalidReference", m.clone()),
            ImageError::AmbiguousReference(m) => ("AmbiguousReference", m.clone()),
            ImageError::InvalidArgument(m) => ("InvalidArgument", m.clone()),
            ImageError::BadArchive(m) => ("BadArchive", m.clone()),
            ImageError::UnsafePath(m) => ("UnsafePath", m.clone()),
            ImageError::TooLarge(m) => ("TooLarge", m.clone()),
            ImageError::Conflict(m) => ("Conflict", m.clone()),
            ImageError::Corrupt(m) => ("Corrupt", m.clone()),
            ImageError::Io(e) => ("Io", crate::goerr::io_text(e)),
        };
        WireError {
            kind: kind.into(),
            detail,
        }
    }
}

impl From<WireError> for ImageError {
    fn from(w: WireError) -> Self {
        let d = w.detail;
        match w.kind.as_str() {
            "NotFound" => ImageError::NotFound(d),
            "InvalidReference" => ImageError::InvalidReference(d),
            "AmbiguousReference" => ImageError::AmbiguousReference(d),
            "InvalidArgument" => ImageError::InvalidArgument(d),
            "BadArchive" => ImageError::BadArchive(d),
            "UnsafePath" => ImageError::UnsafePath(d),
            "TooLarge" => ImageError::TooLarge(d),
            "Conflict" => ImageError::Conflict(d),
            "Corrupt" => ImageError::Corrupt(d),
            _ => ImageError::Io(io::Error::other(d)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip_keeps_variant_and_text() {
        let e = ImageError::UnsafePath("x/../y".into());
        let w: WireError =
            serde_json::from_str(&serde_json::to_string(&WireError::from(&e)).unwrap()).unwrap();
        let back = ImageError::from(w);
        assert!(matches!(back, ImageError::UnsafePath(_)));
        assert_eq!(back.to_string(), e.to_string());
        assert_eq!(
            ImageError::NotFound("busybox:latest".into()).to_string(),
            "No such image: busybox:latest"
        );
    }
}
