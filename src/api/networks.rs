//! `/networks/*`: list, inspect, create, remove, connect, disconnect,
//! prune, with dockerd's shapes and errors.

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::network_json::network_json;
use super::{key, Call};
use crate::engine::networks::{is_predefined, CreateNetwork, VerbError};
use crate::engine::Response;
use crate::store::networks::Network;

impl From<VerbError> for ApiError {
    fn from(e: VerbError) -> ApiError {
        match e {
            VerbError::Network(e) => e.into(),
            VerbError::Container(e) => e.into(),
        }
    }
}

fn body_json(call: &Call) -> Result<Value, ApiError> {
    if call.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))
}

/// Does network `n` pass list filter `k` = one of `values`?
fn passes(n: &Network, k: &str, values: &[String]) -> bool {
    if k == "label" {
        return values
            .iter()
            .all(|v| crate::label::matches(v, |l| n.labels.get(l).map(String::as_str)));
    }
    values.iter().any(|v| match k {
        "name" => n.name.contains(v.as_str()),
        "id" => n.id.starts_with(v.as_str()),
        "driver" => &n.driver == v,
        "scope" => v == "local",
        "type" => match v.as_str() {
            "builtin" => is_predefined(&n.name),
            "custom" => !is_predefined(&n.name),
            _ => false,
        },
        "dangling" => {
            let unused = !is_predefined(&n.name) && !n.endpoints.values().any(|e| e.active);
            (v == "true" || v == "1") == unused
        }
        _ => true,
    })
}

pub fn list(call: &mut Call) -> Result<Response, ApiError> {
    let filters = super::filters::parse(
        call.req.query.get("filters"),
        &["name", "id", "driver", "scope", "type", "label", "dangling"],
    )?;
    if let Some(t) = filters.get("type") {
        if let Some(bad) = t
            .iter()
            .find(|v| !matches!(v.as_str(), "custom" | "builtin"))
        {
            return Err(ApiError::InvalidParameter(format!(
                "invalid filter: 'type'='{bad}'"
            )));
        }
    }
    let engine = &*call.engine;
    let rows: Vec<Value> = engine
        .networks
        .store
        .nets
        .values()
        .filter(|n| filters.iter().all(|(k, v)| passes(n, k, v)))
        .map(|n| network_json(engine, n, false))
        .collect();
    Ok(Response::json(200, &Value::Array(rows)))
}

pub fn inspect(call: &mut Call) -> Result<Response, ApiError> {
    let id = call.engine.network_lookup(&key(call))?;
    let engine = &*call.engine;
    let n = engine
        .networks
        .store
        .nets
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("network {} not found", key(call))))?;
    Ok(Response::json(200, &network_json(engine, n, true)))
}

pub fn create(call: &mut Call) -> Result<Response, ApiError> {
    let req: CreateNetwork = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))?;
    let id = call.engine.network_create(req)?;
    Ok(Response::json(201, &json!({"Id": id, "Warning": ""})))
}

pub fn remove(call: &mut Call) -> Result<Response, ApiError> {
    call.engine.network_remove(&key(call))?;
    Ok(Response::new(204))
}

pub fn connect(call: &mut Call) -> Result<Response, ApiError> {
    let body = body_json(call)?;
    let container = body["Container"].as_str().unwrap_or_default().to_string();
    let config = body
        .get("EndpointConfig")
        .filter(|v| v.is_object())
        .cloned();
    call.engine
        .network_connect(&key(call), &container, config)?;
    Ok(Response::new(200))
}

pub fn disconnect(call: &mut Call) -> Result<Response, ApiError> {
    let body = body_json(call)?;
    let container = body["Container"].as_str().unwrap_or_default().to_string();
    call.engine.network_disconnect(&key(call), &container)?;
    Ok(Response::new(200))
}

pub fn prune(call: &mut Call) -> Result<Response, ApiError> {
    let filters = super::filters::parse(call.req.query.get("filters"), &["label", "until"])?;
    let until = super::filters::until(&filters)?;
    let labels = filters.get("label").cloned().unwrap_or_default();
    let gone = call.engine.network_prune(|n| {
        let old_enough = until
            .is_none_or(|u| crate::timefmt::parse_timestamp(&n.created).is_some_and(|c| c < u));
        old_enough
            && labels
                .iter()
                .all(|v| crate::label::matches(v, |l| n.labels.get(l).map(String::as_str)))
    });
    Ok(Response::json(200, &json!({ "NetworksDeleted": gone })))
}
