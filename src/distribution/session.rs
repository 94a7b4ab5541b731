//! A session with one repository of one registry: the first endpoint
//! (`endpoint.rs`) whose `/v2/` ping answers, the ping and its challenge, Basic or Bearer
//! auth (tokens expire on the monotonic clock), redirects (no
//! `Authorization` to another host), and registry errors in dockerd's words.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::auth::{parse_challenge, Challenge, Credentials};
use super::endpoint::{endpoints, mirror_endpoint, Endpoint, Registries};
use super::error::{DistError, Result};
use crate::http::client::{request_via, ClientResponse, ReqBody, Url};
use crate::http::tls_client::TlsClient;

/// Redirects followed for one request.
const MAX_REDIRECTS: usize = 5;
/// A token without `expires_in` lives this long (the spec's default).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);

/// `%XX` for everything but unreserved characters (query values).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of a registry's error body: `code lowercased: message` for the
/// first error (Go's `errcode.Error`), or None.
pub fn registry_error(body: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("errors")?.as_array()?.first()?;
    let code = e.get("code")?.as_str()?.to_string();
    let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
    let text = format!("{}: {msg}", code.to_ascii_lowercase().replace('_', " "));
    Some((code, text))
}

/// Go's spelling of a method in its `url.Error` texts: `Get`, `Head`.
fn go_method(method: &str) -> String {
    let mut m = method.to_ascii_lowercase();
    if let Some(first) = m.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    m
}

#[derive(Clone)]
pub struct Session {
    base: Url,
    /// TLS for an `https` base (also used for its token server and
    /// redirects on other hosts).
    tls: Option<TlsClient>,
    pub repo: String,
    creds: Credentials,
    /// `pull` or `pull,push`.
    actions: String,
    challenge: Option<Challenge>,
    /// The current Authorization value and, for a token, when it expires.
    authorization: Option<(String, Option<Instant>)>,
    /// A refresh token the token server gave (returned by `POST /auth`).
    pub refresh_token: Option<String>,
}

impl Session {
    /// Connect to `domain`'s registry for `repo` and settle auth.
    pub fn open(
        domain: &str,
        repo: &str,
        creds: Credentials,
        actions: &str,
        regs: &Registries,
    ) -> Result<Session> {
        let host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        let eps = endpoints(domain, regs)?;
        let count = eps.len();
        let mut last = None;
        for (i, ep) in eps.into_iter().enumerate() {
            match Session::at(host, ep, repo, &creds, actions) {
                Ok(s) => return Ok(s),
                // An insecure registry: HTTPS failed, try plain HTTP.
                Err(DistError::Registry(m)) if i + 1 < count => {
                    log::debug!("registry {domain}: {m}; trying the next endpoint");
                    last = Some(DistError::Registry(m));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| DistError::Registry(format!("no endpoint for {domain}"))))
    }

    /// A session with a Docker Hub mirror (`http://host:port/`).
    pub fn open_mirror(
        mirror: &str,
        repo: &str,
        creds: Credentials,
        regs: &Registries,
    ) -> Result<Session> {
        let (host, ep) = mirror_endpoint(mirror, regs)?;
        Session::at(&host, ep, repo, &creds, "pull")
    }

    /// Ping one endpoint and settle auth there.
    fn at(
        host: &str,
        ep: Endpoint,
        repo: &str,
        creds: &Credentials,
        actions: &str,
    ) -> Result<Session> {
        let base = Url::parse(&format!("{}://{host}/v2/", ep.scheme))
            .map_err(|e| DistError::Invalid(e.to_string()))?;
        let mut s = Session {
            base,
            tls: ep.tls,
            repo: repo.to_string(),
            creds: creds.clone(),
            actions: actions.to_string(),
            challenge: None,
            authorization: None,
            refresh_token: None,
        };
        s.ping()?;
        Ok(s)
    }

    /// TLS for `url`: the registry's for an `https` URL, or (after the
    /// plain-HTTP fallback) the system's roots for an `https` token server.
    fn tls_for(&self, url: &Url) -> Option<TlsClient> {
        if url.scheme != "https" {
            return None;
        }
        self.tls.clone().or_else(|| TlsClient::verified(None).ok())
    }

    /// `GET /v2/`: 200 is anonymous access; 401 names how to authenticate.
    fn ping(&mut self) -> Result<()> {
        let url = self.base.clone();
        let mut r = self.raw("GET", &url, &[], ReqBody::None, false)?;
        let _ = r.read_body(64 * 1024);
        match r.status {
            200..=299 => {}
            401 => {
                let c = r
                    .header("www-authenticate")
                    .and_then(parse_challenge)
                    .ok_or_else(|| {
                        DistError::Registry(format!("{url}: 401 without a usable challenge"))
                    })?;
                self.challenge = Some(c);
                self.authenticate()?;
            }
            s => {
                return Err(DistError::Registry(format!(
                    "error pinging the registry {url}: HTTP status {s}"
                )))
            }
        }
        Ok(())
    }

    /// Get the Authorization value for the current challenge.
    fn authenticate(&mut self) -> Result<()> {
        let Some(c) = self.challenge.clone() else {
            return Ok(());
        };
        match c.scheme.as_str() {
            "basic" => {
                if self.creds.has_password() {
                    self.authorization = Some((self.creds.basic(), None));
                }
                Ok(())
            }
            "bearer" => {
                if !self.creds.registry_token.is_empty() {
                    let t = format!("Bearer {}", self.creds.registry_token);
                    self.authorization = Some((t, None));
                    return Ok(());
                }
                let (token, life) = self.fetch_token(&c)?;
                self.authorization = Some((format!("Bearer {token}"), Some(Instant::now() + life)));
                Ok(())
            }
            other => Err(DistError::Registry(format!(
                "unsupported authentication scheme {other:?}"
            ))),
        }
    }

    fn fetch_token(&mut self, c: &Challenge) -> Result<(String, Duration)> {
        let realm = c
            .params
            .get("realm")
            .ok_or_else(|| DistError::Registry("bearer challenge without a realm".into()))?;
        let mut query = Vec::new();
        if let Some(s) = c.params.get("service") {
            query.push(format!("service={}", percent_encode(s)));
        }
        if !self.repo.is_empty() {
            let scope = format!("repository:{}:{}", self.repo, self.actions);
            query.push(format!("scope={}", percent_encode(&scope)));
        }
        let sep = if realm.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            realm.clone()
        } else {
            format!("{realm}{sep}{}", query.join("&"))
        };
        let url = Url::parse(&url).map_err(|e| DistError::Registry(e.to_string()))?;
        let basic = self.creds.basic();
        let mut headers: Vec<(&str, &str)> = Vec::new();
        let mut r = if !self.creds.identity_token.is_empty() {
            // An identity token from `docker login`: OAuth2's refresh grant.
            let mut form = vec![
                "grant_type=refresh_token".to_string(),
                format!(
                    "refresh_token={}",
                    percent_encode(&self.creds.identity_token)
                ),
                "client_id=docker".to_string(),
            ];
            form.extend(query.iter().cloned());
            let form = form.join("&");
            let realm = Url::parse(realm).map_err(|e| DistError::Registry(e.to_string()))?;
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
            let tls = self.tls_for(&realm);
            request_via(
                tls.as_ref(),
                "POST",
                &realm,
                &headers,
                ReqBody::Bytes(form.as_bytes()),
            )
            .map_err(|e| DistError::Registry(format!("Post \"{realm}\": {e}")))?
        } else {
            if self.creds.has_password() {
                headers.push(("Authorization", &basic));
            }
            let tls = self.tls_for(&url);
            request_via(tls.as_ref(), "GET", &url, &headers, ReqBody::None)
                .map_err(|e| DistError::Registry(format!("Get \"{url}\": {e}")))?
        };
        let body = r.read_body(1 << 20).unwrap_or_default();
        if r.status == 401 || r.status == 403 {
            return Err(DistError::Unauthorized(
                registry_error(&body)
                    .map(|(_, t)| t)
                    .unwrap_or_else(|| "unauthorized: authentication required".into()),
            ));
        }
        if !(200..300).contains(&r.status) {
            return Err(DistError::Registry(format!(
                "token server {url}: HTTP status {}",
                r.status
            )));
        }
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| DistError::Registry(format!("token server answer: {e}")))?;
        let token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| DistError::Registry("token server gave no token".into()))?
            .to_string();
        if let Some(rt) = v.get("refresh_token").and_then(Value::as_str) {
            self.refresh_token = Some(rt.to_string());
        }
        let life = v
            .get("expires_in")
            .and_then(Value::as_u64)
            .filter(|s| *s >= 1)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFE);
        Ok((token, life))
    }

    /// One request without auth handling; redirects followed for GET/HEAD.
    fn raw(
        &self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: ReqBody<'_>,
        with_auth: bool,
    ) -> Result<ClientResponse> {
        let mut url = url.clone();
        let mut body = Some(body);
        for _ in 0..=MAX_REDIRECTS {
            let mut h: Vec<(&str, &str)> = headers.to_vec();
            // Credentials go only to the registry's own host.
            if with_auth && url.authority == self.base.authority {
                if let Some((a, _)) = &self.authorization {
                    h.push(("Authorization", a));
                }
            }
            let b = body.take().unwrap_or(ReqBody::None);
            let tls = self.tls_for(&url);
            let r = request_via(tls.as_ref(), method, &url, &h, b).map_err(|e| {
                DistError::Registry(format!("{} \"{url}\": {e}", go_method(method)))
            })?;
            let redirect = matches!(r.status, 301 | 302 | 303 | 307 | 308)
                && (method == "GET" || method == "HEAD");
            if !redirect {
                return Ok(r);
            }
            let loc = r
                .header("location")
                .ok_or_else(|| DistError::Registry("redirect without a Location".into()))?;
            url = url
                .join(loc)
                .map_err(|e| DistError::Registry(e.to_string()))?;
        }
        Err(DistError::Registry(format!(
            "{method} {url}: too many redirects"
        )))
    }

    /// The registry as reached (`host[:port]`), for `blob_sources`.
    pub fn registry(&self) -> String {
        self.base.authority.clone()
    }

    /// The URL of `path` under this repository (`manifests/latest`), or an
    /// absolute URL or path the registry gave (upload locations).
    pub fn url(&self, path: &str) -> Result<Url> {
        let u = if path.starts_with('/') || path.contains("://") {
            self.base.join(path)
        } else {
            self.base.join(&format!("/v2/{}/{path}", self.repo))
        };
        u.map_err(|e| DistError::Registry(e.to_string()))
    }

    /// Send with auth: an expired token is renewed first; a 401 renews it
    /// and retries once when the body can be sent again.
    pub fn send(
        &mut self,
        method: &str,
        url: &Url,
        headers: &[(&str, &str)],
        body: ReqBody<'_>,
    ) -> Result<ClientResponse> {
        if self
            .authorization
            .as_ref()
            .is_some_and(|(_, exp)| exp.is_some_and(|e| Instant::now() >= e))
        {
            self.authenticate()?;
        }
        let again = match &body {
            ReqBody::None => Some(ReqBody::None),
            ReqBody::Bytes(b) => Some(ReqBody::Bytes(b)),
            ReqBody::Reader(..) => None,
        };
        let r = self.raw(method, url, headers, body, true)?;
        if r.status != 401 {
            return Ok(r);
        }
        let Some(again) = again else {
            return Ok(r);
        };
        if let Some(c) = r.header("www-authenticate").and_then(parse_challenge) {
            self.challenge = Some(c);
        }
        self.authenticate()?;
        self.raw(method, url, headers, again, true)
    }
}

/// `POST /auth`: check `creds` against the registry `server` names.
/// Returns the token server's refresh token, if it gave one (dockerd's
/// `IdentityToken`).
pub fn login(creds: Credentials, regs: &Registries) -> Result<Option<String>> {
    let server = creds.server_address.clone();
    let addr = server.trim();
    let addr = addr
        .strip_prefix("https://")
        .or_else(|| addr.strip_prefix("http://"))
        .unwrap_or(addr);
    let domain = addr.split('/').next().unwrap_or("");
    let domain = match domain {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        d => d,
    };
    let mut s = Session::open(domain, "", creds, "", regs).map_err(|e| match e {
        DistError::Unauthorized(m) => {
            DistError::Unauthorized(format!("Get \"https://{domain}/v2/\": {m}"))
        }
        e => e,
    })?;
    if s.challenge.is_none() {
        // The registry asks for nothing: any credentials will do.
        return Ok(None);
    }
    let url = s.base.clone();
    let mut r = s.send("GET", &url, &[], ReqBody::None)?;
    let _ = r.read_body(64 * 1024);
    match r.status {
        200..=299 => Ok(s.refresh_token.take()),
        401 => Err(DistError::Unauthorized(format!(
            "login attempt to {url} failed with status: 401 Unauthorized"
        ))),
        st => Err(DistError::Registry(format!(
            "login attempt to {url} failed with status: {st}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_spelled_as_go() {
        assert_eq!(go_method("GET"), "Get");
        assert_eq!(go_method("HEAD"), "Head");
    }

    #[test]
    fn registry_errors_are_worded_as_go_does() {
        let b =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        let (code, text) = registry_error(b).unwrap();
        assert_eq!(code, "MANIFEST_UNKNOWN");
        assert_eq!(text, "manifest unknown: manifest unknown");
    }
}
