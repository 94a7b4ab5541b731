//! A minimal blocking HTTP/1.1 client for forked workers (`docker import
//! URL`, registry pulls and pushes). Never used on the event loop: a worker
//! may block, the loop may not. One request per connection (`Connection:
//! close`), so a cut link costs only the request it cut.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::body::BodyDecoder;
use super::request::BodyFraming;
use super::tls_client::TlsClient;

const TIMEOUT: Duration = Duration::from_secs(30);
/// dockerd's `TLSHandshakeTimeout`: a peer that does not speak TLS (a plain
/// HTTP proxy in front of an insecure registry that waits for a request
/// head) fails the HTTPS try quickly, and the HTTP fallback follows.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest response head we accept.
const HEAD_MAX: usize = 64 * 1024;

/// Refuse a URL that would not go onto the request line as one token:
/// control characters (`%0d%0a` injects header lines) and spaces. The
/// wording is Go's `url.Parse`, as dockerd reports it.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.chars().any(|c| c.is_ascii_control()) {
        return Err(format!(
            "parse {url:?}: net/url: invalid control character in URL"
        ));
    }
    if url.contains(' ') {
        return Err(format!("parse {url:?}: invalid character \" \" in URL"));
    }
    Ok(())
}

/// A URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    /// `host[:port]` as written (the `Host` header).
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> io::Result<Url> {
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        check_url(url).map_err(invalid)?;
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(format!("unsupported URL {url:?}: no scheme")))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains(['@', '\\']) {
            return Err(invalid(format!("unsupported URL {url:?}")));
        }
        Ok(Url {
            scheme: scheme.to_ascii_lowercase(),
            authority: authority.to_string(),
            path,
        })
    }

    /// The host without the port.
    pub fn host(&self) -> &str {
        match self.authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h,
            _ => &self.authority,
        }
    }

    /// Resolve a `Location` (absolute, or a path on this host).
    pub fn join(&self, location: &str) -> io::Result<Url> {
        if location.contains("://") {
            return Url::parse(location);
        }
        if let Some(p) = location.strip_prefix("//") {
            return Url::parse(&format!("{}://{p}", self.scheme));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let dir = self.path.rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{location}")
        };
        Url::parse(&format!("{}://{}{path}", self.scheme, self.authority))
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", self.scheme, self.authority, self.path)
    }
}

/// A request body: none, bytes, or a reader of a known length.
pub enum ReqBody<'a> {
    None,
    Bytes(&'a [u8]),
    Reader(&'a mut dyn Read, u64),
}

/// A response: status, headers, and the body as a reader (framing undone).
pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Read>,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body, read whole up to `max` bytes.
    pub fn read_body(&mut self, max: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        (&mut self.body).take(max + 1).read_to_end(&mut out)?;
        if out.len() as u64 > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("response body larger than {max} bytes"),
            ));
        }
        Ok(out)
    }
}

fn header_safe(s: &str) -> bool {
    !s.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
}

/// Send one request over plain HTTP and read the response head.
pub fn request(
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: ReqBody<'_>,
) -> io::Result<ClientResponse> {
    request_via(None, method, url, headers, body)
}

/// Send one request and read the response head: `https` URLs through
/// `tls` (refused without it).
pub fn request_via(
    tls: Option<&TlsClient>,
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: ReqBody<'_>,
) -> io::Result<ClientResponse> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    let tls = match (url.scheme.as_str(), tls) {
        ("http", _) => None,
        ("https", Some(t)) => Some(t),
        _ => {
            return Err(invalid(format!(
                "unsupported URL {:?}: only http:// is supported",
                url.to_string()
            )))
        }
    };
    if headers
        .iter()
        .any(|(n, v)| !header_safe(n) || !header_safe(v))
    {
        return Err(invalid("invalid header value".into()));
    }
    let addr_text = if url.host().len() != url.authority.len() {
        url.authority.clone()
    } else if tls.is_some() {
        format!("{}:443", url.authority)
    } else {
        format!("{}:80", url.authority)
    };
    let addr = addr_text
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("cannot resolve {}", url.authority)))?;
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    match tls {
        Some(t) => {
            let handle = stream.try_clone()?;
            handle.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
            let s = t.connect(stream, url.host())?;
            handle.set_read_timeout(Some(TIMEOUT))?;
            exchange(s, method, url, headers, body)
        }
        None => exchange(stream, method, url, headers, body),
    }
}

/// Write the request to `stream` and read the response head.
fn exchange<S: Read + Write + 'static>(
    mut stream: S,
    method: &str,
    url: &Url,
    headers: &[(&str, &str)],
    body: ReqBody<'_>,
) -> io::Result<ClientResponse> {
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: coracle\r\nConnection: close\r\n",
        url.path, url.authority
    );
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    match &body {
        ReqBody::None if method == "GET" || method == "HEAD" => {}
        ReqBody::None => head.push_str("Content-Length: 0\r\n"),
        ReqBody::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
        ReqBody::Reader(_, n) => head.push_str(&format!("Content-Length: {n}\r\n")),
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    match body {
        ReqBody::None => {}
        ReqBody::Bytes(b) => stream.write_all(b)?,
        ReqBody::Reader(r, n) => {
            let copied = io::copy(&mut r.take(n), &mut stream)?;
            if copied != n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "request body ended early",
                ));
            }
        }
    }
    stream.flush()?;
    read_response(stream, method == "HEAD")
}

fn read_response<S: Read + 'static>(mut stream: S, head_only: bool) -> io::Result<ClientResponse> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let (status, headers, framing, used) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            ));
        }
        head.extend_from_slice(&buf[..n]);
        let mut hdrs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hdrs);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(used)) => {
                let headers: Vec<(String, String)> = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).trim().to_string(),
                        )
                    })
                    .collect();
                let find = |name: &str| {
                    headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                };
                let code = resp.code.unwrap_or(0);
                let framing = if head_only || code == 204 || code == 304 {
                    BodyFraming::Length(0)
                } else if find("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
                {
                    BodyFraming::Chunked
                } else if let Some(len) = find("content-length").and_then(|v| v.parse().ok()) {
                    BodyFraming::Length(len)
                } else {
                    BodyFraming::None
                };
                break (code, headers, framing, used);
            }
            Ok(httparse::Status::Partial) if head.len() < HEAD_MAX => continue,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed HTTP response",
                ))
            }
        }
    };
    let leftover = head.split_off(used);
    let raw = io::Cursor::new(leftover).chain(stream);
    let body: Box<dyn Read> = match framing {
        // No length: the body runs to the end of the connection.
        BodyFraming::None => Box::new(raw),
        framing => Box::new(Decoded {
            inner: raw,
            decoder: BodyDecoder::new(framing),
            input: Vec::new(),
            output: Vec::new(),
            pos: 0,
        }),
    };
    Ok(ClientResponse {
        status,
        headers,
        body,
    })
}

/// Open `url` (plain `http://` only) and return a reader over its body.
pub fn get(url: &str) -> io::Result<Box<dyn Read>> {
    check_url(url).map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    if !url.starts_with("http://") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unsupported URL {url:?}: only http:// is supported"),
        ));
    }
    let parsed = Url::parse(url)?;
    let resp = request("GET", &parsed, &[], ReqBody::None)?;
    if !(200..300).contains(&resp.status) {
        return Err(io::Error::other(format!(
            "GET {url}: HTTP status {}",
            resp.status
        )));
    }
    Ok(resp.body)
}

/// A reader that undoes Content-Length / chunked framing.
struct Decoded<R> {
    inner: R,
    decoder: BodyDecoder,
    input: Vec<u8>,
    output: Vec<u8>,
    pos: usize,
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.output.len() {
            if self.decoder.is_done() {
                return Ok(0);
            }
            self.output.clear();
            self.pos = 0;
            let used = self
                .decoder
                .decode(&self.input, &mut self.output, 64 * 1024)
                .map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body")
                })?;
            self.input.drain(..used);
            if self.output.is_empty() && !self.decoder.is_done() {
                let mut chunk = [0u8; 16 * 1024];
                let n = self.inner.read(&mut chunk)?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body ended early",
                    ));
                }
                self.input.extend_from_slice(&chunk[..n]);
            }
        }
        let n = buf.len().min(self.output.len() - self.pos);
        buf[..n].copy_from_slice(&self.output[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
