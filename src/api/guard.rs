//! Requests a web page could make. A browser sends JSON as `text/plain` or a
//! form without a preflight, and reaches a LAN daemon (or, by DNS rebinding,
//! a local one) on its user's behalf; it always names the page's origin in an
//! `Origin` header, which the docker CLI, docker-py and curl never send. So:
//! an `Origin` not allowed by `api-cors-header` is refused, and the endpoints
//! dockerd's `CheckForJSON` guards require `application/json`.

use super::error::ApiError;
use crate::engine::Response;
use crate::http::request::{BodyFraming, Request};

/// The `Origin` check, before anything else is looked at.
pub fn check_origin(cors: &str, req: &Request) -> Result<(), ApiError> {
    match req.header("origin") {
        None => Ok(()),
        Some(_) if cors == "*" => Ok(()),
        Some(o) if !cors.is_empty() && o.eq_ignore_ascii_case(cors) => Ok(()),
        Some(o) => Err(ApiError::Forbidden(format!(
            "cross-origin request from {o:?} refused: the origin is not allowed by api-cors-header"
        ))),
    }
}

/// dockerd's `CheckForJSON`, for the routes that call it (`Handle::Json`).
pub fn check_json(req: &Request) -> Result<(), ApiError> {
    let ct = req.header("content-type").unwrap_or("");
    // No Content-Type is fine without a body (a chunked body counts as one).
    if ct.is_empty() && matches!(req.framing, BodyFraming::None | BodyFraming::Length(0)) {
        return Ok(());
    }
    match media_type(ct) {
        Err(e) => Err(ApiError::InvalidParameter(format!(
            "malformed Content-Type header ({ct}): {e}"
        ))),
        Ok(t) if t == "application/json" => Ok(()),
        Ok(_) => Err(ApiError::InvalidParameter(format!(
            "unsupported Content-Type header ({ct}): must be 'application/json'"
        ))),
    }
}

/// The media type of a Content-Type value, lower-cased, as Go's
/// `mime.ParseMediaType` reads it (with its error texts).
fn media_type(v: &str) -> Result<String, &'static str> {
    let is_token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?=".contains(c);
    let mut parts = v.split(';');
    let t = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let (main, sub) = match t.split_once('/') {
        Some((m, s)) => (m, Some(s)),
        None => (t.as_str(), None),
    };
    if main.is_empty() || !main.chars().all(is_token) {
        return Err("mime: no media type");
    }
    match sub {
        Some("") => return Err("mime: expected token after slash"),
        Some(s) if !s.chars().all(is_token) => {
            return Err("mime: unexpected content after media subtype")
        }
        _ => {}
    }
    for p in parts.map(str::trim).filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some((k, _)) if !k.trim().is_empty() && k.trim().chars().all(is_token) => {}
            _ => return Err("mime: invalid media parameter"),
        }
    }
    Ok(t)
}

/// dockerd's CORS headers, on every response once `api-cors-header` is set.
pub fn with_cors(cors: &str, r: Response) -> Response {
    if cors.is_empty() || r.has_header("Access-Control-Allow-Origin") {
        return r;
    }
    r.header("Access-Control-Allow-Origin", cors)
        .header(
            "Access-Control-Allow-Headers",
            "Origin, X-Requested-With, Content-Type, Accept, X-Registry-Auth",
        )
        .header(
            "Access-Control-Allow-Methods",
            "HEAD, GET, POST, DELETE, PUT, OPTIONS",
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_as_go_reads_them() {
        assert_eq!(media_type("application/json").unwrap(), "application/json");
        assert_eq!(
            media_type(" Application/JSON; charset=utf-8").unwrap(),
            "application/json"
        );
        assert_eq!(media_type("text/plain").unwrap(), "text/plain");
        assert_eq!(media_type(""), Err("mime: no media type"));
        assert_eq!(media_type("text/"), Err("mime: expected token after slash"));
        assert_eq!(
            media_type("application/json; =x"),
            Err("mime: invalid media parameter")
        );
    }
}
