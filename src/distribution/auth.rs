//! Registry credentials: `X-Registry-Auth` decoded, `WWW-Authenticate`
//! challenges parsed, and the base64 both need.

use std::collections::HashMap;

use crate::base64::{decode, encode};
use serde::Deserialize;

/// What a client gave for a registry (`X-Registry-Auth`, `POST /auth`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// `user:password`, base64 (the CLI's config.json form).
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
    /// A refresh token from an earlier login.
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    /// A bearer token to send as is.
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl Credentials {
    /// Decode `X-Registry-Auth` (base64url JSON; padding optional). An empty
    /// or undecodable header means anonymous, as dockerd treats `{}`.
    pub fn from_header(h: &str) -> Option<Credentials> {
        let raw = decode(h.trim())?;
        let mut c: Credentials = serde_json::from_slice(&raw).ok()?;
        c.normalise();
        Some(c)
    }

    /// Fill username/password from `auth` when only that is given.
    pub fn normalise(&mut self) {
        if self.username.is_empty() && !self.auth.is_empty() {
            if let Some((u, p)) = decode(&self.auth)
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            {
                self.username = u;
                self.password = p;
            }
        }
    }

    pub fn has_password(&self) -> bool {
        !self.username.is_empty() || !self.password.is_empty()
    }

    /// `Basic <base64(user:password)>`
    pub fn basic(&self) -> String {
        format!(
            "Basic {}",
            encode(format!("{}:{}", self.username, self.password).as_bytes())
        )
    }
}

/// One `WWW-Authenticate` challenge: scheme and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lowercase: `basic` or `bearer`.
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parse `Bearer realm="...",service="...",scope="..."` (quoted or token values).
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = HashMap::new();
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i] == b' ' || b[i] == b',') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = rest[start..i].trim().to_ascii_lowercase();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        let mut val = String::new();
        if i < b.len() && b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                val.push(b[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let s = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            val = rest[s..i].trim().to_string();
        }
        if !key.is_empty() {
            params.insert(key, val);
        }
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "http://127.0.0.1:1/token");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let b = parse_challenge("Basic realm=\"Registry Realm\"").unwrap();
        assert_eq!(b.scheme, "basic");
    }

    #[test]
    fn registry_auth_header_decodes() {
        let h = encode(br#"{"username":"u","password":"p","serveraddress":"x"}"#);
        let c = Credentials::from_header(h.trim_end_matches('=')).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        let h = encode(br#"{"auth":"dXNlcjpwYXNz"}"#);
        let c = Credentials::from_header(&h).unwrap();
        assert_eq!(c.username, "user");
    }
}
