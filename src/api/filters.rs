//! The `filters` query parameter: a JSON object of key -> values, in either
//! the current form `{"k":["v"]}` or the legacy `{"k":{"v":true}}` that the
//! docker CLI still sends.

use std::collections::HashMap;

use super::error::ApiError;

/// A prune's `until` filter (a timestamp or a Go duration before now), the
/// one parse every prune shares; dockerd's "invalid until" otherwise.
pub fn until(
    filters: &HashMap<String, Vec<String>>,
) -> Result<Option<std::time::SystemTime>, ApiError> {
    match filters.get("until").and_then(|v| v.first()) {
        None => Ok(None),
        Some(u) => crate::timefmt::parse_until(u, std::time::SystemTime::now())
            .map(Some)
            .ok_or_else(|| ApiError::InvalidParameter(format!("invalid until: {u}"))),
    }
}

pub fn parse(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<HashMap<String, Vec<String>>, ApiError> {
    let mut out = HashMap::new();
    let raw = match raw {
        None => return Ok(out),
        Some(r) if r.trim().is_empty() => return Ok(out),
        Some(r) => r,
    };
    let bad = |e: String| ApiError::InvalidParameter(format!("invalid filter: {e}"));
    let value: serde_json::Value =
        serde_json::from_slice(raw.as_bytes()).map_err(|e| bad(e.to_string()))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("filters must be a JSON object".into()))?;
    for (key, v) in obj {
        if !allowed.contains(&key.as_str()) {
            return Err(ApiError::InvalidParameter(format!(
                "invalid filter '{key}'"
            )));
        }
        let values: Vec<String> = match v {
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(format!("values of '{key}' must be strings")))?,
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool() != Some(false))
                .map(|(k, _)| k.clone())
                .collect(),
            _ => return Err(bad(format!("values of '{key}' must be a list"))),
        };
        out.insert(key.clone(), values);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let f = parse(
            Some(r#"{"type":["container"],"event":{"start":true,"die":true}}"#),
            &["type", "event"],
        )
        .unwrap();
        assert_eq!(f["type"], vec!["container"]);
        let mut ev = f["event"].clone();
        crate::sort::sort(&mut ev);
        assert_eq!(ev, vec!["die", "start"]);
        assert!(
            matches!(parse(Some(r#"{"bogus":["x"]}"#), &["type"]), Err(ApiError::InvalidParameter(m)) if m == "invalid filter 'bogus'")
        );
        assert!(parse(Some("not json"), &["type"]).is_err());
        assert!(parse(Some(r#"{"type":"x"}"#), &["type"]).is_err());
        assert!(parse(None, &[]).unwrap().is_empty());
    }
}
