//! A minimal blocking HTTP/1.1 GET for forked workers (`docker import URL`).
//! Never used on the event loop: a worker may block, the loop may not.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::body::BodyDecoder;
use super::request::BodyFraming;

const TIMEOUT: Duration = Duration::from_secs(30);

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

/// Open `url` (plain `http://` only) and return a reader over its body.
pub fn get(url: &str) -> io::Result<Box<dyn Read>> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    check_url(url).map_err(invalid)?;
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        invalid(format!(
            "unsupported URL {url:?}: only http:// is supported"
        ))
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr_text = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let addr = addr_text
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("cannot resolve {authority}")))?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: coracle\r\nConnection: close\r\n\r\n"
    )?;

    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let (status, framing, used) = loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            ));
        }
        head.extend_from_slice(&buf[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(used)) => {
                let find = |name: &str| {
                    resp.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                };
                let framing = if find("transfer-encoding")
                    .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
                {
                    BodyFraming::Chunked
                } else if let Some(len) = find("content-length").and_then(|v| v.trim().parse().ok())
                {
                    BodyFraming::Length(len)
                } else {
                    BodyFraming::None
                };
                break (resp.code.unwrap_or(0), framing, used);
            }
            Ok(httparse::Status::Partial) if head.len() < 64 * 1024 => continue,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "malformed HTTP response",
                ))
            }
        }
    };
    if !(200..300).contains(&status) {
        return Err(io::Error::other(format!("GET {url}: HTTP status {status}")));
    }
    let leftover = head.split_off(used);
    let raw = io::Cursor::new(leftover).chain(stream);
    Ok(match framing {
        // No length: the body runs to the end of the connection.
        BodyFraming::None => Box::new(raw),
        framing => Box::new(Decoded {
            inner: raw,
            decoder: BodyDecoder::new(framing),
            input: Vec::new(),
            output: Vec::new(),
            pos: 0,
        }),
    })
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
