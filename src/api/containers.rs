//! `/containers/*`: thin handlers over `engine`, plus the
//! response shapes (inspect, list, top, changes) and the streams (wait,
//! attach, logs, export).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{json, Value};

use super::error::ApiError;
use super::Call;
use crate::container::model::{Container, Status};
use crate::container::registry::Entry;
use crate::engine::Engine;
use crate::engine::Response;
use crate::stdio::jsonlog;
use crate::stdio::stdcopy::{frame, StreamKind};
use crate::streams::attach::AttachSession;
use crate::streams::logs::LogStream;
use crate::streams::wait::{until_stopped, Done, WaitFor, WaitStream};

fn key(call: &Call) -> String {
    call.params.first().cloned().unwrap_or_default()
}

fn timeout_param(call: &Call) -> Result<Option<i64>, ApiError> {
    match call.req.query.get("t").filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for t: {t:?}"))),
    }
}

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

/// Bytes used under `dir` (not following symlinks).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub fn create(call: &mut Call) -> Result<Response, ApiError> {
    let name = call.req.query.get("name").map(str::to_string);
    if let Some(p) = call.req.query.get("platform").filter(|p| !p.is_empty()) {
        let (os, arch) = crate::image::import::host_platform();
        if !p.starts_with(os) || (p.contains('/') && !p.contains(arch)) {
            return Err(ApiError::InvalidParameter(format!(
                "requested platform {p:?} does not match this host ({os}/{arch})"
            )));
        }
    }
    let (id, warnings) = call.engine.container_create(&call.body, name.as_deref())?;
    Ok(Response::json(
        201,
        &json!({ "Id": id, "Warnings": warnings }),
    ))
}

pub fn start(call: &mut Call) -> Result<Response, ApiError> {
    call.engine.container_start(&key(call))?;
    Ok(Response::new(204))
}

pub fn stop(call: &mut Call) -> Result<Response, ApiError> {
    let t = timeout_param(call)?;
    let signal = call.req.query.get("signal").map(str::to_string);
    let id = call
        .engine
        .container_stop(&key(call), t, signal.as_deref())?;
    Ok(until_stopped(call.engine, call.conn, id, Done::Stopped))
}

pub fn restart(call: &mut Call) -> Result<Response, ApiError> {
    let t = timeout_param(call)?;
    let signal = call.req.query.get("signal").map(str::to_string);
    let id = call
        .engine
        .container_restart(&key(call), t, signal.as_deref())?;
    Ok(until_stopped(call.engine, call.conn, id, Done::Restarted))
}

pub fn kill(call: &mut Call) -> Result<Response, ApiError> {
    let signal = call.req.query.get("signal").map(str::to_string);
    call.engine.container_kill(&key(call), signal.as_deref())?;
    Ok(Response::new(204))
}

pub fn remove(call: &mut Call) -> Result<Response, ApiError> {
    let force = call.req.query.bool("force");
    if call.req.query.bool("link") {
        return Err(ApiError::NotImplemented("links are not supported".into()));
    }
    match call.engine.container_remove(&key(call), force)? {
        None => Ok(Response::new(204)),
        Some(id) => Ok(until_stopped(call.engine, call.conn, id, Done::Removed)),
    }
}

pub fn pause(call: &mut Call) -> Result<Response, ApiError> {
    call.engine.container_pause(&key(call), true)?;
    Ok(Response::new(204))
}

pub fn unpause(call: &mut Call) -> Result<Response, ApiError> {
    call.engine.container_pause(&key(call), false)?;
    Ok(Response::new(204))
}

pub fn rename(call: &mut Call) -> Result<Response, ApiError> {
    let name = call.req.query.get("name").unwrap_or("").to_string();
    call.engine.container_rename(&key(call), &name)?;
    Ok(Response::new(204))
}

pub fn update(call: &mut Call) -> Result<Response, ApiError> {
    let warnings = call.engine.container_update(&key(call), &call.body)?;
    Ok(Response::json(200, &json!({ "Warnings": warnings })))
}

/// The wait body's shape: `{"StatusCode": 0, "Error": null}`.
fn wait_body(code: i32, error: &str) -> Value {
    let err = if error.is_empty() {
        Value::Null
    } else {
        json!({ "Message": error })
    };
    json!({ "StatusCode": code, "Error": err })
}

/// `POST /containers/{id}/wait`: the head goes out at once; the body when
/// the condition is met (as dockerd does).
pub fn wait(call: &mut Call) -> Result<Response, ApiError> {
    let condition = match call.req.query.get("condition").unwrap_or("") {
        "" | "not-running" => WaitFor::NotRunning,
        "next-exit" => WaitFor::NextExit,
        "removed" => WaitFor::Removed,
        other => {
            return Err(ApiError::InvalidParameter(format!(
                "invalid condition: {other:?}"
            )))
        }
    };
    let e = call.engine.containers.find(&key(call))?;
    let (id, exits) = (e.c.id.clone(), e.exits);
    call.engine.containers.waiters.insert(call.conn);
    Ok(Response::stream(
        200,
        "application/json",
        Box::new(WaitStream {
            id,
            exits,
            condition,
            shape: wait_body,
        }),
    ))
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

fn network_json(c: &Container) -> Value {
    let mode =
        crate::container::create::network_mode(&c.host_config.network_mode).unwrap_or("none");
    json!({
        "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": false,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        "Networks": { mode: {
            "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "", "NetworkID": "",
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DriverOpts": null, "DNSNames": null
        }}
    })
}

fn mounts_json(c: &Container) -> Value {
    let mut out = Vec::new();
    for b in &c.host_config.binds {
        if let Ok((src, dst, ro)) = crate::container::create::parse_bind(b) {
            out.push(json!({"Type": "bind", "Source": src, "Destination": dst, "Mode": if ro { "ro" } else { "" }, "RW": !ro, "Propagation": "rprivate"}));
        }
    }
    for m in &c.host_config.mounts {
        out.push(json!({"Type": m.kind, "Source": m.source, "Destination": m.target, "Mode": "", "RW": !m.read_only, "Propagation": if m.kind == "bind" { "rprivate" } else { "" }}));
    }
    for t in c.host_config.tmpfs.keys() {
        out.push(json!({"Type": "tmpfs", "Source": "", "Destination": t, "Mode": "", "RW": true, "Propagation": ""}));
    }
    Value::Array(out)
}

fn host_config_json(c: &Container) -> Value {
    let mut h = serde_json::to_value(&c.host_config).unwrap_or_default();
    let mode =
        crate::container::create::network_mode(&c.host_config.network_mode).unwrap_or("none");
    h["NetworkMode"] = mode.into();
    if h["LogConfig"]["Type"].as_str().is_none_or(str::is_empty) {
        h["LogConfig"]["Type"] = "json-file".into();
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

fn inspect_json(engine: &Engine, e: &Entry, size: bool) -> Value {
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
        "State": state_json(c),
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
        "HostConfig": host_config_json(c),
        "GraphDriver": { "Name": "overlay2", "Data": {
            "LowerDir": lower.join(":"),
            "UpperDir": dirs.upper(&c.id),
            "WorkDir": dirs.work(&c.id),
            "MergedDir": dirs.merged(&c.id),
        }},
        "Mounts": mounts_json(c),
        "Config": serde_json::to_value(&c.config).unwrap_or_default(),
        "NetworkSettings": network_json(c),
    });
    if size {
        let rw = dir_size(&dirs.upper(&c.id));
        let image = engine.images.get(&c.image).map(|i| i.size).unwrap_or(0);
        v["SizeRw"] = rw.into();
        v["SizeRootFs"] = (rw + image).into();
    }
    v
}

pub fn inspect(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    let size = call.req.query.bool("size");
    Ok(Response::json(200, &inspect_json(call.engine, e, size)))
}

fn summary_json(engine: &Engine, e: &Entry, size: bool) -> Value {
    let c = &e.c;
    let mut command = c.path.clone();
    if !c.args.is_empty() {
        command.push(' ');
        command.push_str(&c.args.join(" "));
    }
    let mut v = json!({
        "Id": c.id,
        "Names": [c.name],
        "Image": c.config.image,
        "ImageID": c.image,
        "Command": command,
        "Created": unix_secs(&c.created),
        "Ports": [],
        "Labels": c.config.labels,
        "State": c.state.status.as_str(),
        "Status": c.status_text(now_secs()),
        "HostConfig": { "NetworkMode": crate::container::create::network_mode(&c.host_config.network_mode).unwrap_or("none") },
        "NetworkSettings": { "Networks": network_json(c)["Networks"].clone() },
        "Mounts": mounts_json(c),
    });
    if size {
        let rw = dir_size(&engine.container_dirs.upper(&c.id));
        let image = engine.images.get(&c.image).map(|i| i.size).unwrap_or(0);
        v["SizeRw"] = rw.into();
        v["SizeRootFs"] = (rw + image).into();
    }
    v
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
            "label" => any(&|v| match v.split_once('=') {
                Some((k, val)) => c.config.labels.get(k).is_some_and(|x| x == val),
                None => c.config.labels.contains_key(v),
            }),
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
                mounts_json(c)
                    .as_array()
                    .is_some_and(|m| m.iter().any(|m| m["Destination"] == v || m["Source"] == v))
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
    let filters = super::filters::parse(q.get("filters"), LIST_FILTERS)?;
    let limit: i64 = match q.get("limit").filter(|l| !l.is_empty()) {
        None => -1,
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for limit: {l:?}")))?,
    };
    let all = q.bool("all")
        || limit > 0
        || filters.contains_key("status")
        || filters.contains_key("exited");
    let size = q.bool("size");
    let engine = &*call.engine;
    let mut entries: Vec<&Entry> = Vec::new();
    for e in engine.containers.iter() {
        if (all || e.c.state.is_alive() || e.c.state.status == Status::Restarting)
            && matches_filters(engine, e, &filters)?
        {
            entries.push(e);
        }
    }
    entries.sort_by(|a, b| b.c.created.cmp(&a.c.created));
    if limit > 0 {
        entries.truncate(limit as usize);
    }
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| summary_json(engine, e, size))
        .collect();
    Ok(Response::json(200, &Value::Array(rows)))
}

pub fn prune(call: &mut Call) -> Result<Response, ApiError> {
    let filters = super::filters::parse(call.req.query.get("filters"), &["label", "until"])?;
    let until = filters.get("until").and_then(|v| v.first()).map(|u| {
        crate::timefmt::parse_timestamp(u)
            .ok_or_else(|| ApiError::InvalidParameter(format!("invalid until: {u}")))
    });
    let until = until.transpose()?;
    let label_ok = |c: &Container| match filters.get("label") {
        None => true,
        Some(ls) => ls.iter().all(|v| match v.split_once('=') {
            Some((k, val)) => c.config.labels.get(k).is_some_and(|x| x == val),
            None => c.config.labels.contains_key(v),
        }),
    };
    let victims: Vec<String> = call
        .engine
        .containers
        .iter()
        .filter(|e| !e.c.state.is_alive() && e.c.state.status != Status::Restarting)
        .filter(|e| label_ok(&e.c))
        .filter(|e| {
            until.is_none_or(|u| {
                crate::timefmt::parse_timestamp(&e.c.created).is_some_and(|c| c < u)
            })
        })
        .map(|e| e.c.id.clone())
        .collect();
    let mut reclaimed = 0u64;
    let mut deleted = Vec::new();
    for id in victims {
        reclaimed += dir_size(&call.engine.container_dirs.upper(&id));
        if call.engine.container_remove(&id, false).is_ok() {
            deleted.push(id);
        }
    }
    call.engine.publish(
        crate::events::Event::new("container", "prune", "")
            .attr("reclaimed", &reclaimed.to_string()),
    );
    Ok(Response::json(
        200,
        &json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

/// `GET /containers/{id}/top`: the cgroup's processes, in `ps -ef` columns.
pub fn top(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    let Some(live) = e.live.as_ref().filter(|_| e.c.state.is_alive()) else {
        return Err(ApiError::Conflict(format!(
            "container {} is not running",
            e.c.id
        )));
    };
    let mut pids = live.cgroup.as_ref().map(|cg| cg.pids()).unwrap_or_default();
    if pids.is_empty() {
        pids.push(live.pid.as_raw());
    }
    pids.sort_unstable();
    let rows: Vec<Value> = pids
        .iter()
        .filter_map(|&p| crate::host::process_row(p))
        .collect();
    Ok(Response::json(
        200,
        &json!({ "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": rows }),
    ))
}

/// `GET /containers/{id}/changes`: from the overlay upper dir.
pub fn changes(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    let upper = call.engine.container_dirs.upper(&e.c.id);
    let lowers = call
        .engine
        .images
        .lower_dirs(&e.c.image)
        .unwrap_or_default();
    let mut all = Vec::new();
    walk_changes(&upper, &upper, &lowers, &mut all);
    // Paths dockerd keeps in its init layer are not the container's changes;
    // a directory "changed" only by them is not either.
    const INIT: &[&str] = &[
        "/.dockerenv",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/etc/mtab",
        "/dev",
        "/proc",
        "/sys",
    ];
    let is_init = |p: &str| {
        INIT.iter()
            .any(|i| p == *i || p.starts_with(&format!("{i}/")))
    };
    let kept: Vec<Value> = all
        .into_iter()
        .filter(|c| !is_init(c["Path"].as_str().unwrap_or("")))
        .collect();
    let mut out: Vec<Value> = kept
        .iter()
        .filter(|c| {
            let path = c["Path"].as_str().unwrap_or("");
            let is_dir = upper.join(path.trim_start_matches('/')).is_dir();
            c["Kind"] != 0
                || !is_dir
                || kept.iter().any(|o| {
                    o["Path"]
                        .as_str()
                        .is_some_and(|q| q.starts_with(&format!("{path}/")))
                })
        })
        .cloned()
        .collect();
    out.sort_by(|a: &Value, b: &Value| a["Path"].as_str().cmp(&b["Path"].as_str()));
    Ok(Response::json(
        200,
        &if out.is_empty() {
            Value::Null
        } else {
            Value::Array(out)
        },
    ))
}

fn walk_changes(root: &Path, dir: &Path, lowers: &[PathBuf], out: &mut Vec<Value>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let shown = format!("/{}", rel.display());
        let in_lower = lowers
            .iter()
            .any(|l| l.join(rel).symlink_metadata().is_ok());
        // An overlay whiteout: a 0/0 character device.
        let kind = if meta.file_type().is_char_device() && meta.rdev() == 0 {
            2
        } else if in_lower {
            0
        } else {
            1
        };
        out.push(json!({ "Path": shown, "Kind": kind }));
        if meta.is_dir() && kind != 2 {
            walk_changes(root, &path, lowers, out);
        }
    }
}

/// `GET /containers/{id}/export`: the merged rootfs as a tar, written by a
/// worker that mounts it privately.
pub fn export(call: &mut Call) -> Result<Response, ApiError> {
    let e = call.engine.containers.find(&key(call))?;
    let id = e.c.id.clone();
    let upper = call.engine.container_dirs.upper(&id);
    let merged = call.engine.container_dirs.dir(&id).join(".export");
    let lowers = call.engine.images.lower_dirs(&e.c.image)?;
    let worker = call
        .engine
        .workers
        .spawn_raw(call.conn, move |_input, out| {
            crate::container::export::write_rootfs_tar(&upper, &lowers, &merged, out.out_file())
                .map(|()| Value::Null)
                .map_err(|e| json!(e.to_string()))
        })?;
    call.engine.container_event(&id, "export", &[]);
    Ok(Response::stream(
        200,
        "application/x-tar",
        Box::new(crate::streams::worker_body::WorkerBody::new(worker)),
    ))
}

/// `POST /containers/{id}/attach`: hijack the connection and stream the
/// container's output (and feed its stdin).
pub fn attach(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let e = call.engine.containers.find(&key(call))?;
    let c = &e.c;
    if matches!(c.state.status, Status::Exited | Status::Dead)
        && q.bool("stream")
        && !q.bool("logs")
    {
        return Err(ApiError::Conflict(
            "You cannot attach to a stopped container, start it first".into(),
        ));
    }
    let id = c.id.clone();
    let tty = c.config.tty;
    let multiplexed = !tty;
    let (want_out, want_err) = (q.bool("stdout"), q.bool("stderr"));
    let mut backlog = Vec::new();
    if q.bool("logs") {
        for entry in jsonlog::read_all(&call.engine.container_dirs.log_path(&id)) {
            if (entry.kind == StreamKind::Stdout && want_out)
                || (entry.kind == StreamKind::Stderr && want_err)
            {
                frame(&mut backlog, entry.kind, entry.line.as_bytes(), multiplexed);
            }
        }
    }
    let keys = q
        .get("detachKeys")
        .filter(|k| !k.is_empty())
        .unwrap_or(DEFAULT_DETACH_KEYS);
    // Parse everything that can fail before subscribing: an error must
    // not leave a subscription behind.
    let detach_keys = if tty {
        parse_detach_keys(keys)?
    } else {
        Vec::new()
    };
    let stream = q.bool("stream");
    if stream {
        call.engine
            .outputs
            .subscribe(&id, call.conn, want_out, want_err, multiplexed);
    }
    let session = AttachSession {
        key: id,
        backlog,
        backlog_sent: 0,
        stream,
        stdin: q.bool("stdin") && c.config.open_stdin,
        stdin_once: c.config.stdin_once,
        tty,
        exec: None,
        // As dockerd: detach keys act on a TTY only; without one, stdin is
        // arbitrary bytes and is copied as is.
        detach_keys,
        matched: 0,
        detached: false,
        pending: Vec::new(),
        close_pending: false,
    };
    Ok(hijack_response(call, session, tty))
}

/// Docker's detach-key syntax ("ctrl-p,ctrl-q", "a,ctrl-z") as bytes.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, ApiError> {
    let bad = || ApiError::InvalidParameter(format!("Invalid detach keys ({spec}) provided"));
    spec.split(',')
        .map(|k| {
            let k = k.trim();
            if let Some(c) = k.strip_prefix("ctrl-") {
                let c = c.as_bytes();
                if c.len() != 1 {
                    return Err(bad());
                }
                match c[0].to_ascii_lowercase() {
                    b @ b'a'..=b'z' => Ok(b - b'a' + 1),
                    b'@' => Ok(0),
                    b'[' => Ok(27),
                    b'\\' => Ok(28),
                    b']' => Ok(29),
                    b'^' => Ok(30),
                    b'_' => Ok(31),
                    _ => Err(bad()),
                }
            } else if k.len() == 1 {
                Ok(k.as_bytes()[0])
            } else {
                Err(bad())
            }
        })
        .collect()
}

pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// The hijacking response for attach and exec start.
pub fn hijack_response(call: &Call, session: AttachSession, tty: bool) -> Response {
    let content_type = if !tty && call.version >= super::router::ApiVersion(1, 42) {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    let upgrade = call
        .req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("tcp"));
    if upgrade {
        Response::hijack(101, Box::new(session))
            .header("Content-Type", content_type)
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp")
    } else {
        Response::hijack(200, Box::new(session)).header("Content-Type", content_type)
    }
}

/// `POST /containers/{id}/resize`.
pub fn resize(call: &mut Call) -> Result<Response, ApiError> {
    let (h, w) = size_params(call)?;
    let id = call.engine.containers.find(&key(call))?.c.id.clone();
    call.engine
        .outputs
        .resize(&id, h, w)
        .map_err(|e| ApiError::Conflict(format!("cannot resize container {id}: {e}")))?;
    Ok(Response::new(200))
}

pub fn size_params(call: &Call) -> Result<(u16, u16), ApiError> {
    let num = |k: &str| -> Result<u16, ApiError> {
        call.req
            .query
            .get(k)
            .unwrap_or("0")
            .parse()
            .map_err(|_| ApiError::InvalidParameter(format!("invalid value for {k}")))
    };
    Ok((num("h")?, num("w")?))
}

/// `GET /containers/{id}/logs` (without `follow`, or following until the
/// container's output ends).
pub fn logs(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let (want_out, want_err) = (q.bool("stdout"), q.bool("stderr"));
    if !want_out && !want_err {
        return Err(ApiError::InvalidParameter(
            "Bad parameters: you must choose at least one stream".into(),
        ));
    }
    let e = call.engine.containers.find(&key(call))?;
    let id = e.c.id.clone();
    let driver = e.c.host_config.log_config.kind.as_str();
    let driver = if driver.is_empty() {
        call.engine.config.log_driver.as_str()
    } else {
        driver
    };
    if driver == "none" {
        return Err(ApiError::NotImplemented(
            "configured logging driver does not support reading".into(),
        ));
    }
    let multiplexed = !e.c.config.tty;
    let timestamps = q.bool("timestamps");
    let time = |key: &str| -> Result<Option<SystemTime>, ApiError> {
        match q.get(key).filter(|s| !s.is_empty() && *s != "0") {
            None => Ok(None),
            Some(v) => crate::timefmt::parse_timestamp(v).map(Some).ok_or_else(|| {
                ApiError::InvalidParameter(format!("invalid value for {key}: {v:?}"))
            }),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    let tail: Option<usize> =
        match q.get("tail").filter(|t| *t != "all" && !t.is_empty()) {
            None => None,
            // dockerd treats a negative tail as "all".
            Some(t) if t.starts_with('-') && t[1..].parse::<u64>().is_ok() => None,
            Some(t) => Some(t.parse().map_err(|_| {
                ApiError::InvalidParameter(format!("invalid value for tail: {t:?}"))
            })?),
        };
    let entries: Vec<_> = jsonlog::read_all(&call.engine.container_dirs.log_path(&id))
        .into_iter()
        .filter(|en| {
            (en.kind == StreamKind::Stdout && want_out)
                || (en.kind == StreamKind::Stderr && want_err)
        })
        .filter(|en| {
            let t = crate::timefmt::parse_timestamp(&en.time);
            since.is_none_or(|s| t.is_some_and(|t| t >= s))
                && until.is_none_or(|u| t.is_some_and(|t| t <= u))
        })
        .collect();
    let skip = tail.map(|n| entries.len().saturating_sub(n)).unwrap_or(0);
    let mut body = Vec::new();
    for en in &entries[skip..] {
        let line = if timestamps {
            format!("{} {}", en.time, en.line)
        } else {
            en.line.clone()
        };
        frame(&mut body, en.kind, line.as_bytes(), multiplexed);
    }
    let follow = q.bool("follow") && call.engine.outputs.is_open(&id);
    if follow {
        call.engine
            .outputs
            .subscribe(&id, call.conn, want_out, want_err, multiplexed);
    }
    let content_type = if multiplexed {
        "application/vnd.docker.multiplexed-stream"
    } else {
        "application/vnd.docker.raw-stream"
    };
    Ok(Response::stream(
        200,
        content_type,
        Box::new(LogStream {
            backlog: body,
            sent: 0,
            follow,
        }),
    ))
}
