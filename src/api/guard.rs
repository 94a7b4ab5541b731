//! Requests a web page could make. A browser sends JSON as `text/plain` or a
//! form without a preflight, and reaches a LAN daemon (or, by DNS rebinding,
//! a local one) on its user's behalf; it always names the page's origin in an
//! `Origin` header, which the docker CLI, docker-py and curl never send. So:
//! an `Origin` not allowed by `api-cors-header` is refused, and the endpoints
//! dockerd's `CheckForJSON` guards require `application/json`.
//!
//! And who may use the API over TCP (`check_access`): with API tokens
//! configured, a TCP request needs `Authorization: Bearer TOKEN` (401
//! without), and a read-only token may only read (403 otherwise). The unix
//! socket and TLS clients whose certificate the CA signed are not asked.

use super::error::ApiError;
use crate::access::tokens::{Role, Tokens};
use crate::engine::Response;
use crate::http::request::{BodyFraming, Method, Request};
use crate::net::Peer;

/// The gate's answer: the token used (for the audit log), and the refusal
/// if the request may not go on.
pub struct Verdict {
    pub token: Option<String>,
    pub refusal: Option<ApiError>,
}

/// Check a request's credentials before it is routed.
pub fn check_access(tokens: &Tokens, req: &Request) -> Verdict {
    let pass = |token| Verdict {
        token,
        refusal: None,
    };
    match req.peer {
        Peer::Local | Peer::TlsVerified(_) => return pass(None),
        Peer::Tcp(_) if tokens.is_empty() => return pass(None),
        Peer::Tcp(_) => {}
    }
    let refuse = |token, e| Verdict {
        token,
        refusal: Some(e),
    };
    let secret = req.header("authorization").and_then(|v| {
        let (scheme, rest) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    let Some(secret) = secret else {
        return refuse(
            None,
            ApiError::Unauthorized(
                "authentication required: this daemon needs an API token, sent as \"Authorization: Bearer TOKEN\" (docker CLI: HttpHeaders in config.json)".into(),
            ),
        );
    };
    let Some(token) = tokens.find(secret) else {
        return refuse(None, ApiError::Unauthorized("invalid API token".into()));
    };
    let name = token.name.clone();
    if token.role == Role::ReadOnly && !read_only_may(req) {
        let e = ApiError::Forbidden(format!(
            "token {name:?} is read-only: {} {} needs an admin token",
            method_name(req.method),
            req.path
        ));
        return refuse(Some(name), e);
    }
    pass(Some(name))
}

/// What a read-only token may do: GET and HEAD (which covers `/_ping`,
/// `ps`, `inspect`, `logs`, `events`, `stats`), except what hands out a
/// container's contents or a shell: attach, and archive/export downloads.
fn read_only_may(req: &Request) -> bool {
    if !matches!(req.method, Method::Get | Method::Head) {
        return false;
    }
    let path = unversioned(&req.path);
    let Some(rest) = path.strip_prefix("/containers/") else {
        return true;
    };
    let last = rest.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let under_id = rest.trim_end_matches('/').contains('/');
    !(under_id && matches!(last, "attach" | "ws" | "archive" | "export"))
}

/// The path without its `/vX.Y` prefix.
fn unversioned(path: &str) -> &str {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        if end > 0 && rest[..end].chars().all(|c| c.is_ascii_digit() || c == '.') {
            return &rest[end..];
        }
    }
    path
}

pub fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other => "OTHER",
    }
}

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

    fn req(method: &str, path: &str, auth: Option<&str>, peer: Peer) -> Request {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
        if let Some(a) = auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        head.push_str("\r\n");
        let (mut r, _) = crate::http::request::parse_head(head.as_bytes())
            .unwrap()
            .unwrap();
        r.peer = peer;
        r
    }

    #[test]
    fn access_by_role() {
        let hash = |s: &str| -> String {
            crate::sha256::Sha256::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let tokens = Tokens::parse(&format!(
            "root admin {}\nview read-only {}\n",
            hash("A"),
            hash("R")
        ))
        .unwrap();
        let tcp = Peer::Tcp("10.0.0.9:4000".parse().unwrap());
        let status = |m: &str, p: &str, a: Option<&str>, peer: Peer| {
            let v = check_access(&tokens, &req(m, p, a, peer));
            (v.token, v.refusal.map(|e| e.status()))
        };
        assert_eq!(status("GET", "/_ping", None, tcp), (None, Some(401)));
        assert_eq!(
            status("GET", "/_ping", Some("Bearer nope"), tcp),
            (None, Some(401))
        );
        assert_eq!(
            status("GET", "/_ping", Some("Basic A"), tcp),
            (None, Some(401))
        );
        assert_eq!(status("GET", "/_ping", None, Peer::Local), (None, None));
        let view = Some("view".to_string());
        for ok in [
            "/v1.45/containers/json",
            "/containers/x/json",
            "/containers/x/logs",
            "/images/json",
        ] {
            assert_eq!(
                status("GET", ok, Some("Bearer R"), tcp),
                (view.clone(), None),
                "{ok}"
            );
        }
        for no in [
            "/v1.45/containers/x/attach",
            "/containers/x/attach/ws",
            "/containers/x/archive",
            "/containers/x/export",
        ] {
            assert_eq!(
                status("GET", no, Some("Bearer R"), tcp),
                (view.clone(), Some(403)),
                "{no}"
            );
        }
        assert_eq!(
            status("HEAD", "/containers/x/archive", Some("bearer R"), tcp).1,
            Some(403)
        );
        assert_eq!(
            status("POST", "/containers/create", Some("Bearer R"), tcp).1,
            Some(403)
        );
        assert_eq!(
            status("DELETE", "/containers/x", Some("Bearer R"), tcp).1,
            Some(403)
        );
        assert_eq!(
            status("POST", "/containers/create", Some("Bearer A"), tcp),
            (Some("root".into()), None)
        );
        // No tokens configured: TCP is open (loopback or --insecure-tcp).
        let v = check_access(&Tokens::default(), &req("POST", "/x", None, tcp));
        assert!(v.refusal.is_none());
    }

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
