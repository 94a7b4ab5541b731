//! `DistError`: what a registry operation can fail with, worded as dockerd
//! words it. `api/error.rs` maps each variant to its status.

use std::fmt;

use crate::json;
use serde_json::Value;

use crate::image::error::{ImageError, WireError};

#[derive(Debug)]
pub enum DistError {
    /// Unknown repository, tag or manifest, or access denied (404).
    NotFound(String),
    /// Credentials refused (`POST /auth`: 401).
    Unauthorized(String),
    /// A bad parameter (reference, platform): 400.
    Invalid(String),
    /// The registry is unreachable or answered nonsense: 500.
    Registry(String),
    /// Something this build cannot do (HTTPS without the `tls` feature): 501.
    Unsupported(String),
    /// The store failed.
    Image(ImageError),
}

pub type Result<T> = std::result::Result<T, DistError>;

impl fmt::Display for DistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DistError::NotFound(m)
            | DistError::Unauthorized(m)
            | DistError::Invalid(m)
            | DistError::Registry(m)
            | DistError::Unsupported(m) => f.write_str(m),
            DistError::Image(e) => write!(f, "{e}"),
        }
    }
}

impl From<ImageError> for DistError {
    fn from(e: ImageError) -> Self {
        DistError::Image(e)
    }
}

impl From<std::io::Error> for DistError {
    fn from(e: std::io::Error) -> Self {
        DistError::Image(ImageError::Io(e))
    }
}

impl DistError {
    /// The form that crosses the worker pipe.
    pub fn to_wire(&self) -> Value {
        let (kind, detail) = match self {
            DistError::NotFound(m) => ("RegistryNotFound", m.clone()),
            DistError::Unauthorized(m) => ("Unauthorized", m.clone()),
            DistError::Invalid(m) => ("RegistryInvalid", m.clone()),
            DistError::Registry(m) => ("Registry", m.clone()),
            DistError::Unsupported(m) => ("Unsupported", m.clone()),
            DistError::Image(e) => {
                let w = WireError::from(e);
                return json!({ "kind": w.kind, "detail": w.detail });
            }
        };
        json!({ "kind": kind, "detail": detail })
    }

    /// Rebuilt on the daemon's side.
    pub fn from_wire(v: Value) -> DistError {
        let w: WireError = crate::json::from_value(&v).unwrap_or(WireError {
            kind: "Registry".into(),
            detail: "the worker failed".into(),
        });
        match w.kind.as_str() {
            "RegistryNotFound" => DistError::NotFound(w.detail),
            "Unauthorized" => DistError::Unauthorized(w.detail),
            "RegistryInvalid" => DistError::Invalid(w.detail),
            "Registry" => DistError::Registry(w.detail),
            "Unsupported" => DistError::Unsupported(w.detail),
            _ => DistError::Image(ImageError::from(w)),
        }
    }
}
