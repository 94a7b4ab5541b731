//! Request heads: parsed once with httparse into an owned, validated form.

use super::limits::{MAX_HEADERS, MAX_HEAD_BYTES};
use super::query::{percent_decode, Query};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Other,
}

impl Method {
    fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// How the request body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    /// Percent-decoded path without the query string.
    pub path: String,
    pub query: Query,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// HTTP/1.x minor version.
    pub minor: u8,
    pub framing: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// Who sent it (set by the connection; `Local` until then).
    pub peer: crate::net::Peer,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_body(&self) -> bool {
        !matches!(self.framing, BodyFraming::None | BodyFraming::Length(0))
    }
}

/// Why a head could not be accepted; each maps to a status and a close.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Syntax error in the request line or headers.
    Malformed(String),
    TooLarge,
    TooManyHeaders,
    /// Transfer-Encoding we cannot decode.
    UnsupportedEncoding,
}

/// Try to parse a complete head from `buf`. `Ok(None)` means more bytes are
/// needed; `Ok(Some((req, n)))` consumed `n` bytes.
pub fn parse_head(buf: &[u8]) -> Result<Option<(Request, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut raw = httparse::Request::new(&mut headers);
    let status = match raw.parse(buf) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
        Err(e) => return Err(HeadError::Malformed(e.to_string())),
    };
    let len = match status {
        httparse::Status::Partial => {
            return if buf.len() > MAX_HEAD_BYTES {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        httparse::Status::Complete(n) => n,
    };
    if len > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let method = Method::parse(raw.method.unwrap_or(""));
    let target = raw.path.unwrap_or("");
    if !target.starts_with('/') {
        return Err(HeadError::Malformed(format!(
            "invalid request target {target:?}"
        )));
    }
    let minor = raw.version.unwrap_or(1);
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));

    let mut out_headers = Vec::with_capacity(raw.headers.len());
    for h in raw.headers.iter() {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| HeadError::Malformed(format!("header {} is not UTF-8", h.name)))?;
        out_headers.push((h.name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |n: &str| {
        out_headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };

    // All Transfer-Encoding headers together; only a lone "chunked" is
    // accepted. Anything else (identity, gzip, lists) is refused rather than
    // guessed at: a framing disagreement is how requests get smuggled.
    let codings: Vec<String> = out_headers
        .iter()
        .filter(|(k, _)| k == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect();
    // Chunked beside a Content-Length is processed as chunked, and the
    // connection is closed after the response (RFC 9112 6.3): the two framings
    // disagree, so nothing after this body can be trusted to start where we think.
    let conflicting_framing = !codings.is_empty() && find("content-length").is_some();
    let framing = match codings.as_slice() {
        [only] if only == "chunked" => BodyFraming::Chunked,
        [] => match find("content-length") {
            None => BodyFraming::None,
            Some(v) => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(HeadError::Malformed(format!(
                        "invalid Content-Length {v:?}"
                    )));
                }
                // Repeated, differing Content-Length values are a smuggling vector.
                let mut lens = out_headers
                    .iter()
                    .filter(|(k, _)| k == "content-length")
                    .map(|(_, v)| v.parse::<u64>());
                let first = lens.next();
                if lens.any(|l| l.as_ref().ok() != first.as_ref().and_then(|f| f.as_ref().ok())) {
                    return Err(HeadError::Malformed("conflicting Content-Length".into()));
                }
                BodyFraming::Length(
                    v.parse::<u64>().map_err(|_| {
                        HeadError::Malformed(format!("invalid Content-Length {v:?}"))
                    })?,
                )
            }
        },
        _ => return Err(HeadError::UnsupportedEncoding),
    };
    if minor >= 1 && find("host").is_none() {
        return Err(HeadError::Malformed("missing required Host header".into()));
    }
    let connection = find("connection").map(|v| v.to_ascii_lowercase());
    let keep_alive = match (minor, connection.as_deref()) {
        (_, Some(c)) if c.split(',').any(|t| t.trim() == "close") => false,
        (0, Some(c)) => c.split(',').any(|t| t.trim() == "keep-alive"),
        (0, None) => false,
        _ => true,
    } && !conflicting_framing;
    let expect_continue = find("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));

    Ok(Some((
        Request {
            method,
            path: percent_decode(raw_path, false),
            query: Query::parse(raw_query),
            headers: out_headers,
            minor,
            framing,
            keep_alive,
            expect_continue,
            peer: crate::net::Peer::Local,
        },
        len,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_complete_head() {
        let (r, n) = parse_head(
            b"POST /v1.45/x%20y?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
        )
        .unwrap()
        .unwrap();
        assert_eq!(n, 62);
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.path, "/v1.45/x y");
        assert_eq!(r.query.get("a"), Some("1"));
        assert_eq!(r.framing, BodyFraming::Length(5));
        assert!(r.keep_alive);
    }

    #[test]
    fn partial_and_errors() {
        assert_eq!(
            parse_head(b"GET / HTTP/1.1\r\nHost:").unwrap().map(|_| ()),
            None
        );
        assert!(matches!(
            parse_head(b"GARBAGE\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse_head(big.as_bytes()).unwrap_err(), HeadError::TooLarge);
        let many: String = (0..150).map(|i| format!("X{i}: y\r\n")).collect();
        let req = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert_eq!(
            parse_head(req.as_bytes()).unwrap_err(),
            HeadError::TooManyHeaders
        );
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n").unwrap_err(),
            HeadError::UnsupportedEncoding
        );
        // identity, lists and repeated headers are refused, not guessed at.
        for te in [
            "Transfer-Encoding: identity\r\nContent-Length: 3",
            "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: chunked, chunked",
        ] {
            let req = format!("POST / HTTP/1.1\r\nHost: x\r\n{te}\r\n\r\n");
            assert_eq!(
                parse_head(req.as_bytes()).unwrap_err(),
                HeadError::UnsupportedEncoding,
                "{te}"
            );
        }
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +0\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |s: &[u8]| parse_head(s).unwrap().unwrap().0.keep_alive;
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(ka(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
        assert!(!ka(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        ));
        // Content-Length beside chunked: chunked, then close.
        let (r, _) = parse_head(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing, BodyFraming::Chunked);
        assert!(!r.keep_alive);
    }
}
