//! `docker search` against a registry that has no v1 search: its
//! `/v2/_catalog`, filtered by the term (run in a worker).

use crate::json;
use serde_json::Value;

use super::auth::Credentials;
use super::endpoint::Registries;
use super::error::{DistError, Result};
use super::session::Session;
use crate::http::client::ReqBody;

/// Repositories read from one catalog page (distribution 2.8 allows 1000).
const CATALOG_MAX: usize = 1000;

/// `term` split into the registry it names (if any) and the words to find.
pub fn split_term(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((d, rest)) if d.contains(['.', ':']) || d == "localhost" => {
            (d.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), term.to_string()),
    }
}

/// The filters `docker search` sends.
#[derive(Debug, Clone, Default)]
pub struct SearchFilters {
    pub is_official: Option<bool>,
    pub is_automated: Option<bool>,
    pub stars: u64,
}

pub fn search(
    term: &str,
    limit: usize,
    filters: &SearchFilters,
    creds: Credentials,
    regs: &Registries,
) -> Result<Value> {
    let (domain, words) = split_term(term);
    let mut sess = Session::open(&domain, "", creds, "", regs).map_err(|e| match e {
        DistError::Unauthorized(m) => DistError::Registry(m),
        e => e,
    })?;
    let url = sess.url(&format!("/v2/_catalog?n={CATALOG_MAX}"))?;
    let mut r = sess.send("GET", &url, &[], ReqBody::None)?;
    let body = r.read_body(16 << 20).unwrap_or_default();
    if r.status != 200 {
        return Err(DistError::Registry(format!(
            "Unexpected status code {}",
            r.status
        )));
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| DistError::Registry(format!("registry catalog: {e}")))?;
    // A registry's own repositories are neither official nor automated,
    // and have no stars.
    if filters.is_official == Some(true) || filters.is_automated == Some(true) || filters.stars > 0
    {
        return Ok(json!([]));
    }
    let out: Vec<Value> = v
        .get("repositories")
        .and_then(Value::as_array)
        .map(|a| a.as_slice())
        .unwrap_or(&[])
        .iter()
        .filter_map(Value::as_str)
        .filter(|name| name.contains(words.as_str()))
        .take(limit)
        .map(|name| {
            json!({
                "name": format!("{domain}/{name}"),
                "description": "",
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
            })
        })
        .collect();
    Ok(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry() {
        assert_eq!(
            split_term("127.0.0.1:5000/bus"),
            ("127.0.0.1:5000".into(), "bus".into())
        );
        assert_eq!(
            split_term("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(split_term("library/busybox").0, "docker.io");
    }
}
