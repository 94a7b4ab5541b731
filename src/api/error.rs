//! Every failure a handler can return, and the one place that maps each to
//! an HTTP status and dockerd's `{"message": "..."}` body.

use std::fmt;

use crate::engine::Response;

#[derive(Debug)]
pub enum ApiError {
    /// No route matches the path.
    PageNotFound,
    /// The path exists, but not for this method.
    MethodNotAllowed,
    /// The `/vX.Y` prefix is above what we serve.
    VersionTooNew(String),
    /// The `/vX.Y` prefix is below what we serve.
    VersionTooOld(String),
    /// A query parameter or body field is invalid.
    InvalidParameter(String),
    /// Refused whatever its content (a browser's cross-origin request).
    Forbidden(String),
    /// No valid credentials: an API token over TCP, or a registry's
    /// refusal of `POST /auth`.
    Unauthorized(String),
    /// A named object does not exist ("No such container: x").
    NotFound(String),
    /// The request conflicts with the current state (name in use, ...).
    Conflict(String),
    /// The request changes nothing (start of a running container).
    NotModified,
    /// Something we deliberately do not do (yet).
    NotImplemented(String),
    /// A failure on our side: disk, kernel, a bug.
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            ApiError::PageNotFound | ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed => 405,
            ApiError::VersionTooNew(_) | ApiError::VersionTooOld(_) => 400,
            ApiError::InvalidParameter(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::Unauthorized(_) => 401,
            ApiError::Conflict(_) => 409,
            ApiError::NotModified => 304,
            ApiError::NotImplemented(_) => 501,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn into_response(self) -> Response {
        if let ApiError::NotModified = self {
            return Response::new(304);
        }
        super::error_response(self.status(), &self.to_string())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::PageNotFound => f.write_str("page not found"),
            ApiError::MethodNotAllowed => f.write_str("method not allowed"),
            ApiError::VersionTooNew(v) => write!(
                f,
                "client version {v} is too new. Maximum supported API version is {}",
                super::router::MAX_VERSION
            ),
            ApiError::VersionTooOld(v) => write!(
                f,
                "client version {v} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
                super::router::MIN_VERSION
            ),
            ApiError::InvalidParameter(m)
            | ApiError::Forbidden(m)
            | ApiError::Unauthorized(m)
            | ApiError::NotFound(m)
            | ApiError::Conflict(m)
            | ApiError::NotImplemented(m)
            | ApiError::Internal(m) => f.write_str(m),
            ApiError::NotModified => f.write_str("not modified"),
        }
    }
}

impl From<crate::image::error::ImageError> for ApiError {
    fn from(e: crate::image::error::ImageError) -> ApiError {
        use crate::image::error::ImageError as E;
        let msg = e.to_string();
        match e {
            E::NotFound(_) => ApiError::NotFound(msg),
            E::InvalidReference(_)
            | E::AmbiguousReference(_)
            | E::InvalidArgument(_)
            | E::BadArchive(_)
            | E::UnsafePath(_)
            | E::TooLarge(_) => ApiError::InvalidParameter(msg),
            E::Conflict(_) => ApiError::Conflict(msg),
            E::Corrupt(_) | E::Io(_) => ApiError::Internal(msg),
        }
    }
}

impl From<crate::container::error::ContainerError> for ApiError {
    fn from(e: crate::container::error::ContainerError) -> ApiError {
        match e {
            crate::container::error::ContainerError::NotFound(ref m)
                if m.starts_with("No such image") || m.starts_with("network ") =>
            {
                ApiError::NotFound(m.clone())
            }
            crate::container::error::ContainerError::NotFound(_)
            | crate::container::error::ContainerError::NoSuchExec(_) => {
                ApiError::NotFound(e.to_string())
            }
            crate::container::error::ContainerError::Invalid(m) => ApiError::InvalidParameter(m),
            crate::container::error::ContainerError::Conflict(m) => ApiError::Conflict(m),
            crate::container::error::ContainerError::NotModified => ApiError::NotModified,
            // dockerd answers a failed start with 400 (runc's "exec failed").
            crate::container::error::ContainerError::StartFailed(m, _) => {
                ApiError::InvalidParameter(m)
            }
            crate::container::error::ContainerError::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl From<crate::procps::PsError> for ApiError {
    /// dockerd answers every `docker top` failure (its `ps` exiting non-zero,
    /// a missing PID column, a refused `key=PID`) with a 500.
    fn from(e: crate::procps::PsError) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::build::context::BuildError> for ApiError {
    fn from(e: crate::build::context::BuildError) -> Self {
        use crate::build::context::BuildError as B;
        match e {
            B::NoDockerfile(_) | B::Invalid(_) | B::BadContext(_) => {
                ApiError::InvalidParameter(e.to_string())
            }
            B::Internal(m) => ApiError::Internal(m),
            B::RunFailed { message, .. } => ApiError::Internal(message),
            B::Cancelled => ApiError::Internal(e.to_string()),
        }
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::container::archive::ArchiveError> for ApiError {
    /// dockerd: a missing path or container is a 404, a refused destination
    /// a 400, every other failure of a copy a 500.
    fn from(e: crate::container::archive::ArchiveError) -> ApiError {
        use crate::container::archive::ArchiveError as E;
        let msg = e.to_string();
        match e {
            E::NotFound { .. } | E::NoSuchContainer(_) => ApiError::NotFound(msg),
            E::NotADirectory | E::ReadOnly(_) | E::Invalid(_) => ApiError::InvalidParameter(msg),
            E::Failed(_) => ApiError::Internal(msg),
        }
    }
}

impl From<crate::distribution::error::DistError> for ApiError {
    fn from(e: crate::distribution::error::DistError) -> ApiError {
        use crate::distribution::error::DistError as E;
        match e {
            E::NotFound(m) => ApiError::NotFound(m),
            E::Unauthorized(m) => ApiError::Unauthorized(m),
            E::Invalid(m) => ApiError::InvalidParameter(m),
            E::Registry(m) => ApiError::Internal(m),
            E::Unsupported(m) => ApiError::NotImplemented(m),
            E::Image(i) => i.into(),
        }
    }
}

impl From<crate::engine::VolumeError> for ApiError {
    fn from(e: crate::engine::VolumeError) -> ApiError {
        use crate::engine::VolumeError as E;
        let msg = e.to_string();
        match e {
            E::NotFound(_) | E::NoDriver(..) => ApiError::NotFound(msg),
            E::InUse(..) => ApiError::Conflict(msg),
            E::Invalid(_) => ApiError::InvalidParameter(msg),
            E::Io(_) => ApiError::Internal(msg),
        }
    }
}

impl From<crate::network::error::NetworkError> for ApiError {
    fn from(e: crate::network::error::NetworkError) -> ApiError {
        use crate::network::error::NetworkError as E;
        match e {
            E::NotFound(m) => ApiError::NotFound(m),
            E::Invalid(m) => ApiError::InvalidParameter(m),
            E::Forbidden(m) => ApiError::Forbidden(m),
            E::Conflict(m) => ApiError::Conflict(m),
            E::Internal(m) => ApiError::Internal(m),
        }
    }
}
