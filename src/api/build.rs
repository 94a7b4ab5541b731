//! `POST /build` (the classic builder), `POST /session` and `POST /grpc`
//! (BuildKit, which coracle does not have: both answer a clear error that
//! points at `DOCKER_BUILDKIT=0`).

use super::error::ApiError;
use super::Call;
use crate::build::context::BuildError;
use crate::build::dockerfile::BUILDKIT_HINT;
use crate::json;
use crate::streams::job::feed_worker;
use serde_json::Value;

use crate::build::run::RunOptions;
use crate::distribution::auth::Credentials;
use crate::engine::build::BuildOptions;
use crate::engine::build_job::{BuildId, Take};
use crate::engine::{Engine, Response};
use crate::http::handler::Begin;
use crate::reply::{BodySink, BodySource, ConnId, Pending, Pull};

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
    let map: serde_json::Map<String, Value> = serde_json::from_slice(text.as_bytes())
        .map_err(|e| ApiError::InvalidParameter(format!("invalid {key}: {e}")))?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Null => None,
            other => Some((k, crate::json::text(&other))),
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
        quiet: q.bool("q"),
    };
    let quiet = opts.quiet;
    let build = call.engine.build_start(call.conn, opts)?;
    Ok(Begin::Sink(Box::new(BuildSink {
        build,
        broken: false,
        quiet,
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
        Some(text) => serde_json::from_slice(text.as_bytes())
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
        ids: None,
    })
}

/// The context fed into the build job's worker.
struct BuildSink {
    build: BuildId,
    broken: bool,
    quiet: bool,
}

impl BodySink<Engine> for BuildSink {
    fn write(&mut self, engine: &mut Engine, _me: ConnId, data: &[u8]) -> Result<usize, Response> {
        // A build that ended (it failed, or a shutdown cancelled it) takes
        // the rest of the body unread: its end is the answer.
        let Some(worker) = engine.build_input(self.build) else {
            return Ok(data.len());
        };
        Ok(feed_worker(engine, worker, &mut self.broken, data))
    }

    fn finish(self: Box<Self>, engine: &mut Engine, _me: ConnId) -> Response {
        engine.build_input_done(self.build);
        Response::later(Box::new(BuildStart {
            build: self.build,
            quiet: self.quiet,
        }))
    }

    fn cancel(self: Box<Self>, engine: &mut Engine, _me: ConnId) {
        engine.build_detach(self.build);
    }
}

/// Until the Dockerfile parses: a failure is an HTTP error.
struct BuildStart {
    build: BuildId,
    quiet: bool,
}

impl Pending<Engine> for BuildStart {
    fn poll(&mut self, engine: &mut Engine, _me: ConnId) -> Option<Response> {
        Some(match engine.build_progress(self.build)? {
            Ok(()) => {
                let body = BuildBody {
                    build: self.build,
                    done: false,
                    quiet: self.quiet,
                };
                Response::stream(200, "application/json", Box::new(body))
            }
            Err(e) => ApiError::from(e).into_response(),
        })
    }

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        engine.build_detach(self.build);
    }
}

/// The build's output stream, dockerd's JSON messages one a line, as the
/// job (`engine/build_job.rs`) pushes them; then its end.
struct BuildBody {
    build: BuildId,
    done: bool,
    /// `q`: only the image ID (and errors).
    quiet: bool,
}

fn line(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(&crate::json::bytes(v));
    out.extend_from_slice(b"\r\n");
}

impl BodySource<Engine> for BuildBody {
    fn pull(&mut self, engine: &mut Engine, _me: ConnId, out: &mut Vec<u8>) -> Pull {
        if self.done {
            return Pull::End;
        }
        let built = match engine.build_take(self.build, out) {
            Take::Data => return Pull::Data,
            Take::Wait => return Pull::Wait(None),
            Take::End(built) => built,
        };
        self.done = true;
        match built {
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

    fn cancel(&mut self, engine: &mut Engine, _me: ConnId) {
        if !self.done {
            engine.build_detach(self.build);
        }
    }
}
