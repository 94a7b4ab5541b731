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
            ImageError::Io(e) => write!(f, "{e}"),
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
