//! `POST /build` (the classic builder), `POST /session` and `POST /grpc`
//! (BuildKit, which coracle does not have: both answer a clear error that
//! points at `DOCKER_BUILDKIT=0`).

use super::error::ApiError;
use super::Call;
use crate::build::context::BuildError;
use crate::build::dockerfile::BUILDKIT_HINT;
use crate::streams::job::feed_worker;
use serde_json::{json, Value};

use crate::build::run::RunOptions;
use crate::distribution::auth::Credentials;
use crate::engine::build::{BuildOptions, READY};
use crate::engine::{Engine, Response};
use crate::http::handler::Begin;
use crate::reply::{BodySink, BodySource, ConnId, Pending, Pull};
use crate::worker::WorkerId;

/// What a BuildKit client is told.
const NO_BUILDKIT: &str = "BuildKit is not supported by this daemon: it has only the classic \
     builder; build with DOCKER_BUILDKIT=0 (or without buildx)";

pub fn session(_call: &mut Call) -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented(NO_BUILDKIT.into()))
}

pub fn grpc(_call: &mut Call) -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented(NO_BUILDKIT.into()))
}

/// `POST /build/prune` (`docker builder prune`): the classic builder's
/// cache (its untagged step images) removed; `until` honoured, `all` and
/// `keep-storage` change nothing (there is no cache in use to keep).
pub fn prune(call: &mut Call) -> Result<Response, ApiError> {
    let raw = call.req.query.get("filters").unwrap_or("");
    let filters = super::filters::parse(
        Some(raw),
        &[
            "until",
            "unused-for",
            "label",
            "type",
            "id",
            "parent",
            "description",
            "inuse",
            "shared",
            "private",
        ],
    )?;
    let mut filters = filters;
    if let Some(v) = filters.remove("unused-for") {
        filters.entry("until".into()).or_insert(v);
    }
    let until =
        super::filters::until(&filters)?.map(|t| crate::timefmt::unix_nanos(t) / 1_000_000_000);
    let report = call.engine.build_prune(until)?;
    Ok(Response::json(200, &report))
}

/// A `remote` the classic builder would clone with git.
fn is_git_url(remote: &str) -> bool {
    remote.starts_with("git://")
        || remote.starts_with("git@")
        || remote.starts_with("github.com/")
        || ((remote.starts_with("http://") || remote.starts_with("https://"))
            && (remote.contains(".git#") || remote.ends_with(".git")))
}

/// The checks a build request gets before its context is read.
pub fn check_query(call: &Call) -> Result<(), ApiError> {
    let q = &call.req.query;
    match q.get("version").unwrap_or("") {
        "" | "1" => {}
        "2" => return Err(ApiError::InvalidParameter(NO_BUILDKIT.into())),
        v => {
            return Err(ApiError::InvalidParameter(format!(
                "unsupported builder version: {v}"
            )))
        }
    }
    if q.get("outputs").is_some_and(|o| !o.is_empty() && o != "[]") {
        return Err(ApiError::InvalidParameter(format!(
            "the --output option requires BuildKit. {BUILDKIT_HINT}"
        )));
    }
    if let Some(remote) = q.get("remote").filter(|r| is_git_url(r)) {
        return Err(ApiError::InvalidParameter(format!(
            "git build contexts are not supported by this daemon ({remote}): \
             send the context as a tar, or a tarball or Dockerfile over http://"
        )));
    }
    crate::build::from::wanted(None, q.get("platform"))?;
    if let Some(remote) = q
        .get("remote")
        .filter(|r| !r.is_empty() && !crate::build::sources::is_url(r))
    {
        return Err(ApiError::InvalidParameter(format!(
            "remoteURL ({remote}) could not be recognized as URL"
        )));
    }
    Ok(())
}

/// A JSON object query parameter (`buildargs`, `labels`) as pairs.
fn pairs(call: &Call, key: &str) -> Result<Vec<(String, String)>, ApiError> {
    let Some(text) = call.req.query.get(key).filter(|t| !t.is_empty()) else {
        return Ok(Vec::new());
    };
    let map: serde_json::Map<String, Value> = serde_json::from_str(text)
        .map_err(|e| ApiError::InvalidParameter(format!("invalid {key}: {e}")))?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Null => None,
            other => Some((k, other.to_string())),
        })
        .collect())
}

/// `POST /build`: the body (the context) is streamed into a worker.
pub fn build(call: &mut Call) -> Result<Begin<Engine>, ApiError> {
    check_query(call)?;
    let q = &call.req.query;
    let opts = BuildOptions {
        dockerfile: q.get("dockerfile").unwrap_or("").to_string(),
        tags: q
            .get_all("t")
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        buildargs: pairs(call, "buildargs")?,
        labels: pairs(call, "labels")?,
        target: q.get("target").unwrap_or("").to_string(),
        nocache: q.bool("nocache"),
        cache_from: string_list(call, "cachefrom")?,
        pull: q.bool("pull").then(|| crate::engine::build::BuildPull {
            registries: super::distribution::registries(call.engine),
            auth: registry_config(call),
            max_downloads: call.engine.config.registry.max_downloads,
        }),
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_string),
        remote: q
            .get("remote")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        run: run_options(call)?,
    };
    let tags = opts.tags.clone();
    let quiet = q.bool("q");
    let (worker, answers) = call.engine.build_start(call.conn, opts)?;
    Ok(Begin::Sink(Box::new(BuildSink {
        worker,
        broken: false,
        tags,
        quiet,
        answers,
    })))
}

/// `X-Registry-Config`: base64url JSON, registry -> credentials (what
/// does not decode is no credentials, as dockerd treats it).
fn registry_config(call: &Call) -> Vec<(String, Credentials)> {
    let Some(raw) = call
        .req
        .header("x-registry-config")
        .and_then(|h| crate::base64::decode(h.trim()))
    else {
        return Vec::new();
    };
    let map: std::collections::BTreeMap<String, Credentials> =
        serde_json::from_slice(&raw).unwrap_or_default();
    map.into_iter()
        .map(|(k, mut c)| {
            c.normalise();
            (k, c)
        })
        .collect()
}

/// A JSON array query parameter (`cachefrom`).
fn string_list(call: &Call, key: &str) -> Result<Vec<String>, ApiError> {
    match call.req.query.get(key).filter(|t| !t.is_empty()) {
        None => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| ApiError::InvalidParameter(format!("invalid {key}: {e}"))),
    }
}

/// An integer query parameter (0 when absent).
fn int(call: &Call, key: &str) -> Result<i64, ApiError> {
    match call.req.query.get(key).filter(|v| !v.is_empty()) {
        None => Ok(0),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::InvalidParameter(format!("invalid {key}: {v}"))),
    }
}

/// What RUN containers get: `rm` (default true), `forcerm`, and the
/// HostConfig of `networkmode`, the resource limits and `extrahosts`.
fn run_options(call: &Call) -> Result<RunOptions, ApiError> {
    let q = &call.req.query;
    let network = match q.get("networkmode").unwrap_or("") {
        "" | "default" => "bridge",
        n => n,
    };
    let mut hc = serde_json::Map::new();
    hc.insert("NetworkMode".into(), json!(network));
    for (param, field) in [
        ("memory", "Memory"),
        ("memswap", "MemorySwap"),
        ("cpushares", "CpuShares"),
        ("cpuperiod", "CpuPeriod"),
        ("cpuquota", "CpuQuota"),
        ("shmsize", "ShmSize"),
    ] {
        let v = int(call, param)?;
        if v != 0 {
            hc.insert(field.into(), json!(v));
        }
    }
    if let Some(c) = q.get("cpusetcpus").filter(|c| !c.is_empty()) {
        hc.insert("CpusetCpus".into(), json!(c));
    }
    let hosts: Vec<&str> = q
        .get_all("extrahosts")
        .flat_map(|h| h.split(','))
        .filter(|h| !h.is_empty())
        .collect();
    if !hosts.is_empty() {
        hc.insert("ExtraHosts".into(), json!(hosts));
    }
    Ok(RunOptions {
        rm: q.get("rm").is_none_or(|v| v.is_empty() || q.bool("rm")),
        forcerm: q.bool("forcerm"),
        host_config: Value::Object(hc),
    })
}

/// The context fed into the build worker.
struct BuildSink {
    worker: WorkerId,
    broken: bool,
    tags: Vec<String>,
    quiet: bool,
    answers: std::fs::File,
}

impl BodySink<Engine> for BuildSink {
    fn write(&mut self, engine: &mut Engine, _me: ConnId, data: &[u8]) -> Result<usize, Response> {
        Ok(feed_worker(engine, self.worker, &mut self.broken, data))
    }

    fn finish(self: Box<Self>, engine: &mut Engine, _me: ConnId) -> Response {
        engine.workers.close_input(self.worker);
        Response::later(Box::new(BuildStart {
            worker: self.worker,
            tags: self.tags,
            quiet: self.quiet,
            answers: Some(self.answers),
        }))
    }

    fn cancel(self: Box<Self>, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
        engine.images.abort_worker();
    }
}

/// Until the Dockerfile parses: a failure is an HTTP error.
struct BuildStart {
    worker: WorkerId,
    tags: Vec<String>,
    quiet: bool,
    answers: Option<std::fs::File>,
}

impl Pending<Engine> for BuildStart {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        let mut msgs = engine.workers.take_messages(self.worker).into_iter();
        if msgs.any(|m| m.get(READY).is_some()) {
            let Some(answers) = self.answers.take() else {
                return Some(ApiError::Internal("the build started twice".into()).into_response());
            };
            let body = BuildBody {
                answers,
                running: None,
                worker: self.worker,
                tags: std::mem::take(&mut self.tags),
                backlog: msgs.collect(),
                done: false,
                quiet: self.quiet,
            };
            return Some(Response::stream(200, "application/json", Box::new(body)));
        }
        let outcome = engine.workers.take_outcome(self.worker)?;
        Some(match engine.build_finish(outcome, &[]) {
            Ok(_) => ApiError::Internal("the build worker ended early".into()).into_response(),
            Err(e) => ApiError::from(e).into_response(),
        })
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.workers.kill(self.worker);
        engine.images.abort_worker();
    }
}

/// The build's output stream, dockerd's JSON messages one a line; RUN
/// requests from the worker are served here (create, start, wait for the
/// exit, remove) and answered on its answers pipe.
struct BuildBody {
    answers: std::fs::File,
    /// The RUN container running now.
    running: Option<String>,
    worker: WorkerId,
    tags: Vec<String>,
    backlog: Vec<Value>,
    done: bool,
    /// `q`: only the image ID (and errors).
    quiet: bool,
}

impl BuildBody {
    /// The worker's messages: RUN requests served, the rest streamed.
    fn handle(&mut self, engine: &mut Engine, me: ConnId, msgs: Vec<Value>, out: &mut Vec<u8>) {
        for m in msgs {
            if let Some(spec) = m.get("run") {
                self.start_run(engine, me, spec);
            } else if let Some(id) = m.get("remove").and_then(Value::as_str) {
                if let Err(e) = engine.container_remove(id, true) {
                    log::error!("build: removing intermediate container {id}: {e}");
                }
            } else if let Some(v) = engine.build_message(m) {
                if !self.quiet {
                    line(out, &v);
                }
            }
        }
    }

    /// Serve a RUN request: the container created and started, or why not.
    fn start_run(&mut self, engine: &mut Engine, me: ConnId, spec: &Value) {
        match engine.build_run(spec) {
            Ok((id, log)) => {
                engine.containers.waiters.insert(me);
                self.answer(&json!({"started": id, "log": log}));
                self.running = Some(id);
            }
            Err(e) => self.answer(&json!({ "error": e })),
        }
    }

    /// One answer line to the worker (short: the pipe never fills).
    fn answer(&mut self, v: &Value) {
        use std::io::Write;
        let mut l = v.to_string().into_bytes();
        l.push(b'\n');
        if let Err(e) = self.answers.write_all(&l) {
            log::error!("build: answering the worker: {e}");
        }
    }
}

fn line(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(v.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

impl BodySource<Engine> for BuildBody {
    fn pull(&mut self, engine: &mut Engine, me: ConnId, out: &mut Vec<u8>) -> Pull {
        if self.done {
            return Pull::End;
        }
        // Every message now: a pull that writes nothing must not say Data
        // (nothing would pull again while the worker waits for an answer).
        let before = out.len();
        for _ in 0..64 {
            let mut msgs = std::mem::take(&mut self.backlog);
            msgs.extend(engine.workers.take_messages(self.worker));
            if msgs.is_empty() {
                break;
            }
            self.handle(engine, me, msgs, out);
        }
        if let Some(id) = &self.running {
            if let Some((code, upper)) = engine.build_run_exit(id) {
                engine.containers.waiters.remove(&me);
                self.running = None;
                self.answer(&json!({"exit": code, "upper": upper}));
            }
        }
        if out.len() > before {
            return Pull::Data;
        }
        if self.running.is_some() {
            // Woken at the exit (a container waiter); the output may close
            // a little later.
            let soon = std::time::Instant::now() + std::time::Duration::from_millis(20);
            return Pull::Wait(Some(soon));
        }
        let Some(outcome) = engine.workers.take_outcome(self.worker) else {
            return Pull::Wait(None);
        };
        self.done = true;
        match engine.build_finish(outcome, &self.tags) {
            Ok((id, tagged)) => {
                line(out, &json!({"aux": {"ID": id}}));
                if self.quiet {
                    line(out, &json!({"stream": format!("{id}\n")}));
                    return Pull::Data;
                }
                let short = id.strip_prefix("sha256:").unwrap_or(&id);
                let short = &short[..short.len().min(12)];
                line(
                    out,
                    &json!({"stream": format!("Successfully built {short}\n")}),
                );
                for t in tagged {
                    line(
                        out,
                        &json!({"stream": format!("Successfully tagged {t}\n")}),
                    );
                }
            }
            Err(BuildError::RunFailed { code, message }) => {
                line(
                    out,
                    &json!({"errorDetail": {"code": code, "message": message}, "error": message}),
                );
            }
            Err(e) => {
                let m = e.to_string();
                line(out, &json!({"errorDetail": {"message": m}, "error": m}));
            }
        }
        Pull::Data
    }

    fn cancel(&mut self, engine: &mut Engine, me: ConnId) {
        if let Some(id) = self.running.take() {
            engine.containers.waiters.remove(&me);
            let _ = engine.container_remove(&id, true);
        }
        if !self.done {
            engine.workers.kill(self.worker);
            engine.images.abort_worker();
        }
    }
}
