//! Maps a request to an endpoint: strips the optional `/vX.Y` prefix, checks
//! the version, matches the path against the route table (with `{name*}`
//! captures for image names that contain slashes).

use std::fmt;

use super::error::ApiError;
use crate::http::request::{Method, Request};

/// An API version `major.minor`, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u16, pub u16);

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

pub const MAX_VERSION: ApiVersion = ApiVersion(1, 45);
pub const MIN_VERSION: ApiVersion = ApiVersion(1, 0);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Ping,
    Version,
    Info,
    Events,
    ImageList,
    ImageInspect,
    ImageHistory,
    ImageTag,
    ImageRemove,
    ImagePrune,
    ImageSave,
    ImageLoad,
    ImageCreate,
    ContainerCreate,
    ContainerList,
    ContainerInspect,
    ContainerStart,
    ContainerStop,
    ContainerRestart,
    ContainerKill,
    ContainerWait,
    ContainerRemove,
    ContainerPause,
    ContainerUnpause,
    ContainerRename,
    ContainerUpdate,
    ContainerTop,
    ContainerChanges,
    ContainerExport,
    ContainerPrune,
    ContainerAttach,
    ContainerLogs,
    ContainerResize,
    ExecCreate,
    ExecStart,
    ExecResize,
    ExecInspect,
}

/// What an endpoint does with a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyUse {
    /// Ignored (GET, HEAD, DELETE and bodiless POSTs).
    Ignore,
    /// Buffered whole (JSON), then handled.
    Buffer,
    /// Streamed to a `BodySink` as it arrives (archives).
    Stream,
}

impl Endpoint {
    pub fn body_use(self) -> BodyUse {
        match self {
            Endpoint::ImageLoad | Endpoint::ImageCreate => BodyUse::Stream,
            Endpoint::ImagePrune
            | Endpoint::ContainerCreate
            | Endpoint::ContainerStart
            | Endpoint::ContainerUpdate
            | Endpoint::ContainerPrune
            | Endpoint::ContainerWait
            | Endpoint::ContainerStop
            | Endpoint::ContainerRestart
            | Endpoint::ContainerKill
            | Endpoint::ContainerResize
            | Endpoint::ExecCreate
            | Endpoint::ExecStart
            | Endpoint::ExecResize => BodyUse::Buffer,
            _ => BodyUse::Ignore,
        }
    }
}

/// Method, path pattern, endpoint. `{x}` captures one segment, `{x*}` one or
/// more (at most one per pattern).
const ROUTES: &[(Method, &str, Endpoint)] = &[
    (Method::Get, "/_ping", Endpoint::Ping),
    (Method::Head, "/_ping", Endpoint::Ping),
    (Method::Get, "/version", Endpoint::Version),
    (Method::Get, "/info", Endpoint::Info),
    (Method::Get, "/events", Endpoint::Events),
    (Method::Get, "/images/json", Endpoint::ImageList),
    (Method::Get, "/images/get", Endpoint::ImageSave),
    (Method::Post, "/images/load", Endpoint::ImageLoad),
    (Method::Post, "/images/create", Endpoint::ImageCreate),
    (Method::Post, "/images/prune", Endpoint::ImagePrune),
    (Method::Get, "/images/{name*}/json", Endpoint::ImageInspect),
    (
        Method::Get,
        "/images/{name*}/history",
        Endpoint::ImageHistory,
    ),
    (Method::Get, "/images/{name*}/get", Endpoint::ImageSave),
    (Method::Post, "/images/{name*}/tag", Endpoint::ImageTag),
    (Method::Delete, "/images/{name*}", Endpoint::ImageRemove),
    (
        Method::Post,
        "/containers/create",
        Endpoint::ContainerCreate,
    ),
    (Method::Get, "/containers/json", Endpoint::ContainerList),
    (Method::Post, "/containers/prune", Endpoint::ContainerPrune),
    (
        Method::Get,
        "/containers/{id}/json",
        Endpoint::ContainerInspect,
    ),
    (
        Method::Post,
        "/containers/{id}/start",
        Endpoint::ContainerStart,
    ),
    (
        Method::Post,
        "/containers/{id}/stop",
        Endpoint::ContainerStop,
    ),
    (
        Method::Post,
        "/containers/{id}/restart",
        Endpoint::ContainerRestart,
    ),
    (
        Method::Post,
        "/containers/{id}/kill",
        Endpoint::ContainerKill,
    ),
    (
        Method::Post,
        "/containers/{id}/wait",
        Endpoint::ContainerWait,
    ),
    (
        Method::Delete,
        "/containers/{id}",
        Endpoint::ContainerRemove,
    ),
    (
        Method::Post,
        "/containers/{id}/pause",
        Endpoint::ContainerPause,
    ),
    (
        Method::Post,
        "/containers/{id}/unpause",
        Endpoint::ContainerUnpause,
    ),
    (
        Method::Post,
        "/containers/{id}/rename",
        Endpoint::ContainerRename,
    ),
    (
        Method::Post,
        "/containers/{id}/update",
        Endpoint::ContainerUpdate,
    ),
    (Method::Get, "/containers/{id}/top", Endpoint::ContainerTop),
    (
        Method::Get,
        "/containers/{id}/changes",
        Endpoint::ContainerChanges,
    ),
    (
        Method::Get,
        "/containers/{id}/export",
        Endpoint::ContainerExport,
    ),
    (
        Method::Post,
        "/containers/{id}/attach",
        Endpoint::ContainerAttach,
    ),
    (
        Method::Get,
        "/containers/{id}/logs",
        Endpoint::ContainerLogs,
    ),
    (
        Method::Post,
        "/containers/{id}/resize",
        Endpoint::ContainerResize,
    ),
    (Method::Post, "/containers/{id}/exec", Endpoint::ExecCreate),
    (Method::Post, "/exec/{id}/start", Endpoint::ExecStart),
    (Method::Post, "/exec/{id}/resize", Endpoint::ExecResize),
    (Method::Get, "/exec/{id}/json", Endpoint::ExecInspect),
];

#[derive(Debug)]
pub struct Resolved {
    pub endpoint: Endpoint,
    pub params: Vec<String>,
    pub version: ApiVersion,
}

pub fn resolve(req: &Request) -> Result<Resolved, ApiError> {
    let (version, path) = split_version(&req.path)?;
    let mut path_known = false;
    for (method, pattern, endpoint) in ROUTES {
        if let Some(params) = match_pattern(pattern, path) {
            // HEAD is served wherever GET is, minus the body.
            if *method == req.method || (req.method == Method::Head && *method == Method::Get) {
                return Ok(Resolved {
                    endpoint: *endpoint,
                    params,
                    version,
                });
            }
            path_known = true;
        }
    }
    Err(if path_known {
        ApiError::MethodNotAllowed
    } else {
        ApiError::PageNotFound
    })
}

/// Strip `/vX.Y` and check it; no prefix means the newest version.
fn split_version(path: &str) -> Result<(ApiVersion, &str), ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((MAX_VERSION, path));
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let text = &rest[..end];
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Ok((MAX_VERSION, path));
    }
    let mut parts = text.split('.');
    let major = parts.next().and_then(|p| p.parse().ok());
    let minor = match parts.next() {
        None => Some(0),
        Some(p) => p.parse().ok(),
    };
    let version = match (major, minor, parts.next()) {
        (Some(a), Some(b), None) => ApiVersion(a, b),
        _ => {
            return Err(ApiError::InvalidParameter(format!(
                "invalid API version {text:?}"
            )))
        }
    };
    if version > MAX_VERSION {
        return Err(ApiError::VersionTooNew(text.to_string()));
    }
    if version < MIN_VERSION {
        return Err(ApiError::VersionTooOld(text.to_string()));
    }
    Ok((version, &rest[end..]))
}

fn match_pattern(pattern: &str, path: &str) -> Option<Vec<String>> {
    let pat: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let greedy = pat.iter().position(|p| p.ends_with("*}"));
    let mut params = Vec::new();
    let seg_matches = |p: &str, s: &str, params: &mut Vec<String>| {
        if p.starts_with('{') {
            if s.is_empty() {
                return false;
            }
            params.push(s.to_string());
            true
        } else {
            p == s
        }
    };
    match greedy {
        None => {
            if pat.len() != segs.len() {
                return None;
            }
            for (p, s) in pat.iter().zip(&segs) {
                if !seg_matches(p, s, &mut params) {
                    return None;
                }
            }
        }
        Some(g) => {
            let suffix = pat.len() - g - 1;
            if segs.len() < pat.len() {
                return None;
            }
            for (p, s) in pat[..g].iter().zip(&segs) {
                if !seg_matches(p, s, &mut params) {
                    return None;
                }
            }
            let middle = segs[g..segs.len() - suffix].join("/");
            if middle.is_empty() {
                return None;
            }
            params.push(middle);
            for (p, s) in pat[g + 1..].iter().zip(&segs[segs.len() - suffix..]) {
                if !seg_matches(p, s, &mut params) {
                    return None;
                }
            }
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(split_version("/_ping").unwrap(), (MAX_VERSION, "/_ping"));
        assert_eq!(
            split_version("/v1.24/info").unwrap(),
            (ApiVersion(1, 24), "/info")
        );
        assert_eq!(
            split_version("/v1.3/info").unwrap(),
            (ApiVersion(1, 3), "/info")
        );
        assert!(ApiVersion(1, 3) < ApiVersion(1, 24));
        let e = split_version("/v1.99/info").unwrap_err();
        assert_eq!(
            e.to_string(),
            "client version 1.99 is too new. Maximum supported API version is 1.45"
        );
        assert!(matches!(
            split_version("/v0.9/info"),
            Err(ApiError::VersionTooOld(_))
        ));
        assert!(matches!(
            split_version("/v1.2.3/info"),
            Err(ApiError::InvalidParameter(_))
        ));
        // Not a version: a path that merely starts with "v".
        assert_eq!(split_version("/volumes").unwrap().1, "/volumes");
    }

    #[test]
    fn patterns() {
        assert_eq!(
            match_pattern("/containers/{id}/json", "/containers/abc/json"),
            Some(vec!["abc".into()])
        );
        assert_eq!(
            match_pattern("/containers/{id}/json", "/containers//json"),
            None
        );
        assert_eq!(
            match_pattern("/images/{name*}/json", "/images/my/img:1/json"),
            Some(vec!["my/img:1".into()])
        );
        assert_eq!(
            match_pattern("/images/{name*}", "/images/a/b"),
            Some(vec!["a/b".into()])
        );
        assert_eq!(match_pattern("/images/{name*}/json", "/images/json"), None);
        assert_eq!(match_pattern("/info", "/info/x"), None);
    }
}
