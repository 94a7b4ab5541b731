//! `/volumes/*`: create, list (filters), inspect, remove, prune, in
//! dockerd's shapes; and the `Mounts` rows of volumes in container inspect.

use std::collections::{BTreeMap, HashMap};

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::router::ApiVersion;
use super::Call;
use crate::container::volume_mounts::{MountPoint, VolumeRequest};
use crate::engine::{Engine, Response};
use crate::reply::Wake;
use crate::store::volumes::Volume;
use crate::streams::worker_body::{FinishingAnswer, WorkerAnswer};
use crate::worker::Outcome;

/// A volume as `GET /volumes/{name}` shows it.
pub fn volume_json(engine: &Engine, v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created_at,
        "Driver": "local",
        "Labels": v.labels,
        "Mountpoint": engine.volumes.data_dir(&v.name),
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
    })
}

/// One `Mounts` row of container inspect and `ps` for a volume or a bind
/// taken over by `--volumes-from`.
pub fn mount_json(m: &MountPoint) -> Value {
    if m.kind == "volume" {
        json!({"Type": "volume", "Name": m.name, "Source": m.source, "Destination": m.destination,
            "Driver": "local", "Mode": m.mode, "RW": m.rw, "Propagation": ""})
    } else {
        json!({"Type": "bind", "Source": m.source, "Destination": m.destination,
            "Mode": m.mode, "RW": m.rw, "Propagation": "rprivate"})
    }
}

fn name_param(call: &Call) -> String {
    call.params.first().cloned().unwrap_or_default()
}

fn string_map(v: &Value, field: &str) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => o
            .iter()
            .map(|(k, x)| match x {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(ApiError::InvalidParameter(format!(
                    "invalid JSON: {field}: the value of {k:?} must be a string, not {}",
                    crate::json::text(other)
                ))),
            })
            .collect::<Result<_, _>>()
            .map(Some),
        Some(other) => Err(ApiError::InvalidParameter(format!(
            "invalid JSON: {field} must be an object, not {}",
            crate::json::text(other)
        ))),
    }
}

/// `POST /volumes/create`.
pub fn create(call: &mut Call) -> Result<Response, ApiError> {
    let body: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&call.body)
            .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))?
    };
    if !body.is_object() {
        return Err(ApiError::InvalidParameter(
            "invalid JSON: the body must be an object".into(),
        ));
    }
    let text = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let name = text("Name");
    let req = VolumeRequest {
        name: (!name.is_empty()).then_some(name),
        labels: string_map(&body, "Labels")?,
        driver: text("Driver"),
        options: string_map(&body, "DriverOpts")?,
    };
    let v = call.engine.volume_create(req)?;
    Ok(Response::json(201, &volume_json(call.engine, &v)))
}

pub fn inspect(call: &mut Call) -> Result<Response, ApiError> {
    let v = call.engine.volume_get(&name_param(call))?;
    Ok(Response::json(200, &volume_json(call.engine, v)))
}

pub fn remove(call: &mut Call) -> Result<Response, ApiError> {
    let force = call.req.query.bool("force");
    call.engine.volume_remove(&name_param(call), force)?;
    Ok(Response::new(204))
}

/// A boolean filter value as dockerd reads it ("true"/"1", "false"/"0").
fn bool_filter(f: &HashMap<String, Vec<String>>, key: &str) -> Result<Option<bool>, ApiError> {
    let Some(values) = f.get(key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let has = |a: &str, b: &str| values.iter().any(|v| v == a || v == b);
    if has("true", "1") {
        Ok(Some(true))
    } else if has("false", "0") {
        Ok(Some(false))
    } else {
        Err(ApiError::InvalidParameter(format!(
            "invalid filter '{key}=[{}]'",
            values.join(" ")
        )))
    }
}

fn labels_match(v: &Volume, wanted: Option<&Vec<String>>) -> bool {
    wanted.is_none_or(|ls| ls.iter().all(|l| crate::label::matches(l, |k| v.label(k))))
}

/// `GET /volumes`: filters name (substring), label, dangling, driver.
pub fn list(call: &mut Call) -> Result<Response, ApiError> {
    let f = super::filters::parse(
        call.req.query.get("filters"),
        &["name", "label", "dangling", "driver"],
    )?;
    let dangling = bool_filter(&f, "dangling")?;
    let engine = &*call.engine;
    let rows: Vec<Value> = engine
        .volumes
        .iter()
        .filter(|v| {
            f.get("name")
                .is_none_or(|ns| ns.iter().any(|n| v.name.contains(n.as_str())))
        })
        .filter(|v| labels_match(v, f.get("label")))
        .filter(|_| {
            f.get("driver")
                .is_none_or(|ds| ds.iter().any(|d| d == "local"))
        })
        .filter(|v| dangling.is_none_or(|d| d == engine.volume_users(&v.name).is_empty()))
        .map(|v| volume_json(engine, v))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "Volumes": rows, "Warnings": null }),
    ))
}

/// `POST /volumes/prune`: unused volumes, anonymous ones only unless the
/// `all` filter says so (API 1.42+; older clients prune all of them).
pub fn prune(call: &mut Call) -> Result<Response, ApiError> {
    let f = super::filters::parse(call.req.query.get("filters"), &["label", "label!", "all"])?;
    let all = bool_filter(&f, "all")?.unwrap_or(call.version < ApiVersion(1, 42));
    let with = f.get("label").cloned();
    let without = f.get("label!").cloned();
    let keep = move |v: &Volume| {
        (!all && !v.is_anonymous())
            || !labels_match(v, with.as_ref())
            || without
                .as_ref()
                .is_some_and(|ls| ls.iter().any(|l| crate::label::matches(l, |k| v.label(k))))
    };
    let worker = call.engine.volume_prune(&keep, Wake::Conn(call.conn))?;
    Ok(Response::later(Box::new(FinishingAnswer(
        WorkerAnswer {
            worker,
            finish: prune_done,
        },
        "pruned volumes",
    ))))
}

fn prune_done(engine: &mut Engine, outcome: Outcome) -> Response {
    let v = match outcome {
        Outcome::Done(v) => v,
        Outcome::Failed(v) => return ApiError::Internal(crate::json::text(&v)).into_response(),
        Outcome::Died(m) => return ApiError::Internal(m).into_response(),
    };
    let reclaimed = v["reclaimed"].as_u64().unwrap_or(0);
    engine.publish(
        crate::events::Event::new("volume", "prune", "").attr("reclaimed", &reclaimed.to_string()),
    );
    let deleted = match &v["deleted"] {
        Value::Array(a) if !a.is_empty() => Value::Array(a.clone()),
        _ => Value::Null,
    };
    Response::json(
        200,
        &json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    )
}
