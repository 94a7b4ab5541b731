//! Maps a request to its handler: strips the optional `/vX.Y` prefix, checks
//! the version, matches the path against the route table (with `{name*}`
//! captures for image names that contain slashes).

use std::fmt;

use super::build;
use super::distribution;
use super::error::ApiError;
use super::networks;
use super::{archive, commit};
use super::{attach, changes, container_json, containers, events, exec, images, system, Call};
use super::{system_df, volumes};
use crate::engine::{Engine, Response};
use crate::http::handler::Begin;
use crate::http::request::{Method, Request};
use Handle::{Body, Json, Now, Stream};

const GET: Method = Method::Get;
const HEAD: Method = Method::Head;
const POST: Method = Method::Post;
const DELETE: Method = Method::Delete;
const PUT: Method = Method::Put;

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

/// What a handler does with the request body, and the handler itself.
#[derive(Clone, Copy)]
pub enum Handle {
    /// Answered at the head; a body is not read.
    Now(HandlerFn),
    /// The body is buffered whole, then handled.
    Body(HandlerFn),
    /// As `Body`, and it must be `application/json` (dockerd's
    /// `CheckForJSON`).
    Json(HandlerFn),
    /// The body is streamed, as it arrives, into the sink the handler
    /// returns (archives).
    Stream(fn(&mut Call) -> Result<Begin<Engine>, ApiError>),
}

pub type HandlerFn = fn(&mut Call) -> Result<Response, ApiError>;

/// Method, path pattern, handler. `{x}` captures one segment, `{x*}` one or
/// more (at most one per pattern). HEAD is served wherever GET is.
#[rustfmt::skip]
const ROUTES: &[(Method, &str, Handle)] = &[
    (GET, "/_ping", Now(system::ping)),
    (HEAD, "/_ping", Now(system::ping)),
    (GET, "/version", Now(system::version)),
    (GET, "/info", Now(system::info)),
    (GET, "/events", Now(events::stream)),
    (GET, "/plugins", Now(system::plugins)),
    (GET, "/networks", Now(networks::list)),
    (POST, "/networks/create", Json(networks::create)),
    (POST, "/networks/prune", Body(networks::prune)),
    (GET, "/networks/{id}", Now(networks::inspect)),
    (DELETE, "/networks/{id}", Now(networks::remove)),
    (POST, "/networks/{id}/connect", Json(networks::connect)),
    (POST, "/networks/{id}/disconnect", Json(networks::disconnect)),
    (GET, "/images/json", Now(images::list)),
    (GET, "/images/search", Now(distribution::search)),
    (GET, "/images/get", Now(images::save)),
    (POST, "/images/load", Stream(images::load)),
    (POST, "/images/create", Stream(images::create)),
    (POST, "/images/prune", Body(images::prune)),
    (GET, "/images/{name*}/json", Now(images::inspect)),
    (GET, "/images/{name*}/history", Now(images::history)),
    (GET, "/images/{name*}/get", Now(images::save)),
    (POST, "/images/{name*}/tag", Now(images::tag)),
    (DELETE, "/images/{name*}", Now(images::remove)),
    (POST, "/containers/create", Json(containers::create)),
    (GET, "/containers/json", Now(container_json::list)),
    (POST, "/containers/prune", Body(containers::prune)),
    (GET, "/containers/{id}/json", Now(container_json::inspect)),
    (POST, "/containers/{id}/start", Body(containers::start)),
    (POST, "/containers/{id}/stop", Body(containers::stop)),
    (POST, "/containers/{id}/restart", Body(containers::restart)),
    (POST, "/containers/{id}/kill", Body(containers::kill)),
    (POST, "/containers/{id}/wait", Body(containers::wait)),
    (DELETE, "/containers/{id}", Now(containers::remove)),
    (POST, "/containers/{id}/pause", Now(containers::pause)),
    (POST, "/containers/{id}/unpause", Now(containers::unpause)),
    (POST, "/containers/{id}/rename", Now(containers::rename)),
    (POST, "/containers/{id}/update", Json(containers::update)),
    (GET, "/containers/{id}/top", Now(containers::top)),
    (GET, "/containers/{id}/stats", Now(containers::stats)),
    (GET, "/containers/{id}/changes", Now(changes::changes)),
    (GET, "/containers/{id}/export", Now(containers::export)),
    (POST, "/containers/{id}/attach", Now(attach::attach)),
    (GET, "/containers/{id}/logs", Now(attach::logs)),
    (POST, "/containers/{id}/resize", Body(attach::resize)),
    (POST, "/containers/{id}/exec", Json(exec::create)),
    (POST, "/exec/{id}/start", Json(exec::start)),
    (POST, "/exec/{id}/resize", Body(exec::resize)),
    (GET, "/exec/{id}/json", Now(exec::inspect)),
    (HEAD, "/containers/{id}/archive", Now(archive::head)),
    (GET, "/containers/{id}/archive", Now(archive::get)),
    (PUT, "/containers/{id}/archive", Stream(archive::put)),
    (POST, "/commit", Json(commit::commit)),
    (POST, "/auth", Json(distribution::auth)),
    (POST, "/images/{name*}/push", Now(distribution::push)),
    (POST, "/volumes/create", Json(volumes::create)),
    (GET, "/volumes", Now(volumes::list)),
    (POST, "/volumes/prune", Body(volumes::prune)),
    (GET, "/volumes/{name}", Now(volumes::inspect)),
    (DELETE, "/volumes/{name}", Now(volumes::remove)),
    (GET, "/system/df", Now(system_df::df)),
    (POST, "/build", Stream(build::build)),
    (POST, "/build/prune", Now(build::prune)),
    (POST, "/session", Now(build::session)),
    (POST, "/grpc", Now(build::grpc)),
];

/// A request matched to its route.
pub struct Resolved {
    pub handle: Handle,
    pub params: Vec<String>,
    pub version: ApiVersion,
}

pub fn resolve(req: &Request) -> Result<Resolved, ApiError> {
    let (version, path) = split_version(&req.path)?;
    // `docker rm --link /web/db` sends DELETE /containers/web/db: a link's
    // name holds a slash. Only DELETE looks here, so other methods' paths
    // under /containers/{id}/ keep their 404 / 405.
    if req.method == Method::Delete && path.matches('/').count() == 3 {
        if let Some(params) = match_pattern("/containers/{id*}", path) {
            return Ok(Resolved {
                handle: Now(containers::remove),
                params,
                version,
            });
        }
    }
    let mut path_known = false;
    for (method, pattern, handle) in ROUTES {
        if let Some(params) = match_pattern(pattern, path) {
            // HEAD is served wherever GET is, minus the body.
            if *method == req.method || (req.method == Method::Head && *method == Method::Get) {
                return Ok(Resolved {
                    handle: *handle,
                    params,
                    version,
                });
            }
            path_known = true;
        }
    }
    // Endpoints of older versions, and stand-ins (`legacy.rs`).
    for (method, pattern, handle, removed) in super::legacy::ROUTES {
        if version >= *removed {
            continue;
        }
        if let Some(params) = match_pattern(pattern, path) {
            if *method == req.method || (req.method == Method::Head && *method == Method::Get) {
                return Ok(Resolved {
                    handle: *handle,
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
    // Most routes differ from the path in their first segment or, without
    // a `{name*}` capture, in their number of segments: those are refused
    // here without allocating (every request is matched against the table).
    let (pattern_t, path_t) = (
        pattern.trim_start_matches('/'),
        path.trim_start_matches('/'),
    );
    let p0 = pattern_t.split('/').next().unwrap_or_default();
    if !p0.starts_with('{') && Some(p0) != path_t.split('/').next() {
        return None;
    }
    if !pattern.contains("*}") && pattern_t.matches('/').count() != path_t.matches('/').count() {
        return None;
    }
    let pat: Vec<&str> = pattern_t.split('/').collect();
    let segs: Vec<&str> = path_t.split('/').collect();
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
