//! Container response shapes: `inspect` and the `docker ps` rows, and the
//! list filters.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::key;
use super::router::ApiVersion;
use super::versions;
use super::Call;
use crate::container::model::{Container, Status};
use crate::container::registry::Entry;
use crate::engine::Engine;
use crate::engine::Response;
use crate::store::containers::dir_size;

fn unix_secs(rfc3339: &str) -> i64 {
    crate::timefmt::parse_timestamp(rfc3339)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn state_json(c: &Container) -> Value {
    let s = &c.state;
    json!({
        "Status": s.status.as_str(),
        "Running": matches!(s.status, Status::Running | Status::Paused),
        "Paused": s.status == Status::Paused,
        "Restarting": s.status == Status::Restarting,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == Status::Dead,
        "Pid": s.pid,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": s.started_at,
        "FinishedAt": s.finished_at,
    })
}

/// `State` with `Health` once a healthcheck has run (dockerd's shape).
fn state_with_health(e: &Entry) -> Value {
    let mut v = state_json(&e.c);
    if let Some(h) = &e.health {
        v["Health"] = h.to_json();
    }
    v
}

/// `docker ps`'s status: dockerd appends the health of a running container.
fn ps_status(e: &Entry, now: i64) -> String {
    let text = e.c.status_text(now);
    match (&e.health, e.c.state.status) {
        (Some(h), Status::Running) => format!("{text} {}", h.ps_suffix()),
        _ => text,
    }
}

/// The `health` filter's value of a container ("none" without a healthcheck).
fn health_of(e: &Entry) -> &'static str {
    e.health
        .as_ref()
        .map(|h| h.status.as_str())
        .unwrap_or("none")
}

fn mounts_json(c: &Container) -> Value {
    let mut out = Vec::new();
    for b in &c.host_config.binds {
        if let Ok((src, dst, ro)) = crate::container::create::parse_bind(b) {
            if !src.starts_with('/') {
                continue; // a named volume: in mount_points below
            }
            out.push(json!({"Type": "bind", "Source": src, "Destination": dst, "Mode": if ro { "ro" } else { "" }, "RW": !ro, "Propagation": "rprivate"}));
        }
    }
    for m in c.host_config.mounts.iter().filter(|m| m.kind != "volume") {
        out.push(json!({"Type": m.kind, "Source": m.source, "Destination": m.target, "Mode": "", "RW": !m.read_only, "Propagation": if m.kind == "bind" { "rprivate" } else { "" }}));
    }
    for t in c.host_config.tmpfs.keys() {
        out.push(json!({"Type": "tmpfs", "Source": "", "Destination": t, "Mode": "", "RW": true, "Propagation": ""}));
    }
    out.extend(c.mount_points.iter().map(super::volumes::mount_json));
    Value::Array(out)
}

fn host_config_json(engine: &Engine, c: &Container) -> Value {
    let mut h = crate::json::to_value(&c.host_config).unwrap_or_default();
    // The links as dockerd shows them: `/child:/parent/alias`.
    h["Links"] = engine.links_inspect(c);
    let mode =
        crate::container::create::network_mode(&c.host_config.network_mode).unwrap_or("none");
    h["NetworkMode"] = mode.into();
    if h["LogConfig"]["Type"].as_str().is_none_or(str::is_empty) {
        h["LogConfig"]["Type"] = "json-file".into();
    }
    // dockerd names its default OCI runtime; coracle launches containers
    // itself, the way runc would.
    if h["Runtime"].as_str().is_none_or(str::is_empty) {
        h["Runtime"] = "runc".into();
    }
    if c.host_config.shm_size == 0 {
        h["ShmSize"] = 67108864.into();
    }
    if h["RestartPolicy"]["Name"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        h["RestartPolicy"]["Name"] = "no".into();
    }
    h
}

fn inspect_json(engine: &Engine, e: &Entry) -> Value {
    let c = &e.c;
    let dirs = &engine.container_dirs;
    let lower: Vec<String> = engine
        .images
        .lower_dirs(&c.image)
        .map(|v| v.iter().map(|p| p.display().to_string()).collect())
        .unwrap_or_default();
    let dir = dirs.dir(&c.id);
    let mut v = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state_with_health(e),
        "Image": c.image,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": dirs.log_path(&c.id),
        "Name": c.name,
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Some(engine.execs.of_container(&c.id)).filter(|v| !v.is_empty()),
        "HostConfig": host_config_json(engine, c),
        "GraphDriver": { "Name": "overlay2", "Data": {
            "LowerDir": lower.join(":"),
            "UpperDir": dirs.upper(&c.id),
            "WorkDir": dirs.work(&c.id),
            "MergedDir": dirs.merged(&c.id),
        }},
        "Mounts": mounts_json(c),
        "Config": crate::json::to_value(&c.config).unwrap_or_default(),
        "NetworkSettings": super::network_json::container_network_settings(engine, c),
    });
    // Not dockerd's: log records a full disk kept out of the log.
    if let Some(loss) = engine.outputs.log_loss(&c.id) {
        v["LogLoss"] = json!(loss);
    }
    v
}

pub fn inspect(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    // `size=1` is built fresh each time.
    if call.req.query.bool("size") {
        let v = versions::CONTAINER_INSPECT.render(call.version, inspect_json(call.engine, e));
        let job = size_job(call.engine, e);
        return with_sizes(call, v, vec![job]);
    }
    // Served from the container's cached view while nothing it shows
    // changed (the log loss count is part of the view's key).
    let (id, gen) = (e.c.id.clone(), e.gen);
    let loss = loss_key(call.engine, &id);
    let mut views = std::mem::take(&mut call.engine.views);
    let engine = &*call.engine;
    let view = views.of(&id, gen, loss, (call.version.0, call.version.1));
    let body = match &view.inspect {
        Some(b) => b.clone(),
        None => {
            let e = engine.containers.find(&id)?;
            let v = versions::CONTAINER_INSPECT.render(call.version, inspect_json(engine, e));
            let mut b = crate::json::bytes(&v);
            b.push(b'\n');
            view.inspect = Some(b.clone());
            b
        }
    };
    views.prune(engine.containers.len(), |id| {
        engine.containers.get(id).is_some()
    });
    call.engine.views = views;
    Ok(Response::new(200)
        .header("Content-Type", "application/json")
        .bytes(body))
}

/// A container's log loss count as its views' key.
fn loss_key(engine: &Engine, id: &str) -> (u64, u64) {
    engine
        .outputs
        .log_loss(id)
        .map_or((0, 0), |l| (l.lines, l.bytes))
}

pub(super) fn summary_json(engine: &Engine, e: &Entry) -> Value {
    let c = &e.c;
    // dockerd's ps command: an argument with a space in single quotes
    // (`/bin/sh -c 'echo a && sleep 1'`), as its container view writes it.
    let mut command = c.path.clone();
    for a in &c.args {
        command.push(' ');
        if a.contains(' ') {
            command.push_str(&format!("'{a}'"));
        } else {
            command.push_str(a);
        }
    }
    let v = json!({
        "Id": c.id,
        "Names": [c.name],
        "Image": c.config.image,
        "ImageID": c.image,
        "Command": command,
        "Created": unix_secs(&c.created),
        "Ports": engine.port_shapes(c).1,
        "Labels": c.config.labels,
        "State": c.state.status.as_str(),
        "Status": ps_status(e, now_secs()),
        "HostConfig": { "NetworkMode": crate::container::create::network_mode(&c.host_config.network_mode).unwrap_or("none") },
        "NetworkSettings": { "Networks": super::network_json::container_network_settings(engine, c)["Networks"].clone() },
        "Mounts": mounts_json(c),
    });
    v
}

/// What a row's sizes need: the upper dir (walked) and the image's size.
fn size_job(engine: &Engine, e: &Entry) -> (PathBuf, u64) {
    let image = engine.images.get(&e.c.image).map(|i| i.size).unwrap_or(0);
    (engine.container_dirs.upper(&e.c.id), image)
}

/// `size=1`: the rows are shaped now, their `SizeRw` / `SizeRootFs` filled
/// in a worker that walks the upper dirs, and the answer streams from it.
fn with_sizes(
    call: &mut Call,
    rows: Value,
    jobs: Vec<(PathBuf, u64)>,
) -> Result<Response, ApiError> {
    super::json_from_worker(call, move || {
        let mut rows = rows;
        let fill = |v: &mut Value, (upper, image): &(PathBuf, u64)| {
            let rw = dir_size(upper);
            v["SizeRw"] = rw.into();
            v["SizeRootFs"] = (rw + image).into();
        };
        match &mut rows {
            Value::Array(list) => list.iter_mut().zip(&jobs).for_each(|(v, j)| fill(v, j)),
            one => {
                if let Some(j) = jobs.first() {
                    fill(one, j)
                }
            }
        }
        rows
    })
}

const LIST_FILTERS: &[&str] = &[
    "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume", "health",
    "network", "is-task",
];

fn matches_filters(
    engine: &Engine,
    e: &Entry,
    f: &HashMap<String, Vec<String>>,
) -> Result<bool, ApiError> {
    let c = &e.c;
    for (k, values) in f {
        if values.is_empty() {
            continue;
        }
        let any = |pred: &dyn Fn(&str) -> bool| values.iter().any(|v| pred(v));
        let ok = match k.as_str() {
            "id" => any(&|v| c.id.starts_with(v)),
            "name" => any(&|v| {
                c.name
                    .trim_start_matches('/')
                    .contains(v.trim_start_matches('/'))
            }),
            "label" => {
                any(&|v| crate::label::matches(v, |k| c.config.labels.get(k).map(String::as_str)))
            }
            "status" => {
                for v in values {
                    if !matches!(
                        v.as_str(),
                        "created"
                            | "restarting"
                            | "running"
                            | "removing"
                            | "paused"
                            | "exited"
                            | "dead"
                    ) {
                        return Err(ApiError::InvalidParameter(format!(
                            "invalid filter 'status={v}'"
                        )));
                    }
                }
                any(&|v| c.state.status.as_str() == v)
            }
            "health" => {
                for v in values {
                    if !matches!(v.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                        return Err(ApiError::InvalidParameter(format!(
                            "Unrecognised filter value for health: {v}"
                        )));
                    }
                }
                any(&|v| health_of(e) == v)
            }
            "exited" => any(&|v| {
                c.state.status == Status::Exited && v.parse::<i32>().ok() == Some(c.state.exit_code)
            }),
            "ancestor" => any(&|v| {
                c.config.image == v || engine.images.resolve(v).is_ok_and(|i| i.id == c.image)
            }),
            "before" | "since" => {
                let other = engine.containers.find(&values[0])?;
                let (a, b) = (unix_secs(&c.created), unix_secs(&other.c.created));
                let (ta, tb) = (&c.created, &other.c.created);
                if k == "before" {
                    (a, ta) < (b, tb)
                } else {
                    (a, ta) > (b, tb)
                }
            }
            "volume" => any(&|v| {
                mounts_json(c).as_array().is_some_and(|m| {
                    m.iter()
                        .any(|m| m["Destination"] == v || m["Source"] == v || m["Name"] == v)
                })
            }),
            "network" => any(&|v| {
                crate::container::create::network_mode(&c.host_config.network_mode)
                    .is_ok_and(|n| n == v)
            }),
            _ => true,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn list(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let size = q.bool("size");
    // One second for every row's `Status`, and the cached body's key.
    let now = now_secs();
    let changes = call.engine.containers.changes();
    let cache_key = (!size && call.version >= CACHED_LIST_SINCE).then(|| list_key(call));
    if let Some(k) = &cache_key {
        if let Some(body) = call.engine.views.list_body(changes, now, k) {
            return Ok(json_shared(body));
        }
    }
    let mut filters = super::filters::parse(q.get("filters"), LIST_FILTERS)?;
    // The old `before` / `since` parameters: filters that include stopped
    // containers.
    let mut old_params = false;
    if versions::LIST_BEFORE_SINCE_PARAMS.at(call.version) {
        for k in ["before", "since"] {
            if let Some(v) = q.get(k).filter(|v| !v.is_empty()) {
                filters.insert(k.to_string(), vec![v.to_string()]);
                old_params = true;
            }
        }
    }
    let limit: i64 = match q.get("limit").filter(|l| !l.is_empty()) {
        None => -1,
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for limit: {l:?}")))?,
    };
    let all = q.bool("all")
        || old_params
        || limit > 0
        || filters.contains_key("status")
        || filters.contains_key("exited");
    let engine = &*call.engine;
    let mut entries: Vec<&Entry> = Vec::new();
    for e in engine.containers.iter() {
        if (all || e.c.state.is_alive() || e.c.state.status == Status::Restarting)
            && matches_filters(engine, e, &filters)?
        {
            entries.push(e);
        }
    }
    crate::sort::sort_by(&mut entries, |a, b| b.c.created.cmp(&a.c.created));
    if limit > 0 {
        entries.truncate(limit as usize);
    }
    if let Some(k) = cache_key {
        let keys = entries.iter().map(|e| (e.c.id.clone(), e.gen)).collect();
        let body = cached_rows(call, keys, now);
        let body = call.engine.views.keep_list_body(changes, now, k, body);
        return Ok(json_shared(body));
    }
    let rows: Vec<Value> = entries.iter().map(|e| summary_json(engine, e)).collect();
    let rows = versions::CONTAINER_LIST.render(call.version, Value::Array(rows));
    if size {
        let jobs = entries.iter().map(|e| size_job(engine, e)).collect();
        return with_sizes(call, rows, jobs);
    }
    Ok(Response::json(200, &rows))
}

/// Rows in the current shape (v1.12 on) come from the containers' cached
/// views; older shapes are rebuilt each time.
const CACHED_LIST_SINCE: ApiVersion = ApiVersion(1, 12);

/// What a list body depends on besides the containers, the events and the
/// second: the API version and the parameters that choose and order rows.
fn list_key(call: &Call) -> String {
    let q = &call.req.query;
    let v = call.version;
    let p = |k| q.get(k).unwrap_or("\u{1}");
    format!(
        "{}.{}\0{}\0{}\0{}\0{}\0{}",
        v.0,
        v.1,
        q.bool("all"),
        p("limit"),
        p("filters"),
        p("before"),
        p("since")
    )
}

fn json_shared(body: std::rc::Rc<[u8]>) -> Response {
    Response::new(200)
        .header("Content-Type", "application/json")
        .shared(body)
}

/// The `ps` rows of `keys` (id, gen), in order: each row's cached JSON with
/// the time-dependent `Status` (at `now`) put in front of it.
fn cached_rows(call: &mut Call, keys: Vec<(String, u64)>, now: i64) -> Vec<u8> {
    let mut views = std::mem::take(&mut call.engine.views);
    let engine = &*call.engine;
    let version = (call.version.0, call.version.1);
    let mut body = Vec::with_capacity(keys.len() * 640 + 3);
    body.push(b'[');
    for (i, (id, gen)) in keys.iter().enumerate() {
        let Some(e) = engine.containers.get(id) else {
            continue;
        };
        let view = views.of(id, *gen, loss_key(engine, id), version);
        let rest = view.row_rest.get_or_insert_with(|| {
            let mut row = summary_json(engine, e);
            if let Some(m) = row.as_object_mut() {
                m.remove("Status");
            }
            let text = crate::json::text(&row);
            text.get(1..).unwrap_or("}").to_string()
        });
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"Status\":");
        body.extend_from_slice(&crate::json::bytes(&Value::from(ps_status(e, now))));
        if !rest.starts_with('}') {
            body.push(b',');
        }
        body.extend_from_slice(rest.as_bytes());
    }
    body.extend_from_slice(b"]\n");
    views.prune(engine.containers.len(), |id| {
        engine.containers.get(id).is_some()
    });
    call.engine.views = views;
    body
}
