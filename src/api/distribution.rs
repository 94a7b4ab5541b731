//! Registry endpoints: `POST /images/create?fromImage=` (pull, with
//! dockerd's progress stream). The job runs in a forked worker
//! (`distribution::pull`); this file decodes the request and shapes the
//! answer.

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use crate::distribution::auth::Credentials;
use crate::distribution::endpoint::{check_supported, Registries};
use crate::distribution::error::DistError;
use crate::distribution::manifest::parse_platform;
use crate::distribution::pull::{PullJob, PullSummary};
use crate::distribution::push::{PushJob, PushSummary};
use crate::distribution::search::{split_term, SearchFilters};
use crate::distribution::session::login;
use crate::engine::{Engine, Response};
use crate::http::handler::Begin;
use crate::http::request::Request;
use crate::image::error::ImageError;
use crate::image::reference::{familiar, Reference};
use crate::reply::ConnId;
use crate::reply::Wake;
use crate::streams::pull::ProgressStart;
use crate::streams::worker_body::WorkerAnswer;
use crate::worker::Outcome;

/// The registries' settings: the insecure ones besides loopback, and the
/// `certs.d` root.
pub(super) fn registries(engine: &Engine) -> Registries {
    let insecure = engine
        .config
        .insecure_registries
        .iter()
        .map(|r| {
            let r = r.trim_end_matches('/');
            r.strip_prefix("http://")
                .or_else(|| r.strip_prefix("https://"))
                .unwrap_or(r)
                .to_string()
        })
        .collect();
    Registries {
        insecure,
        certs_dir: engine.config.registry_certs_dir.clone(),
        mirrors: engine.config.registry.mirrors.clone(),
    }
}

/// `/info`'s `RegistryConfig` as dockerd fills it: the insecure registries
/// given as CIDRs (then loopback's), the others and Docker Hub (with its
/// mirrors) as index configs.
pub fn registry_config(engine: &Engine) -> Value {
    let regs = registries(engine);
    let mut cidrs: Vec<String> = Vec::new();
    let mut index = serde_json::Map::new();
    for r in &regs.insecure {
        if crate::access::cidr::Cidr::parse(r).is_ok() && r.contains('/') {
            cidrs.push(r.clone());
        } else {
            index.insert(
                r.clone(),
                json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}),
            );
        }
    }
    cidrs.extend(["127.0.0.0/8".to_string(), "::1/128".to_string()]);
    index.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": regs.mirrors, "Secure": true, "Official": true}),
    );
    json!({
        "AllowNondistributableArtifactsCIDRs": null,
        "AllowNondistributableArtifactsHostnames": null,
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": index,
        "Mirrors": regs.mirrors,
    })
}

/// dockerd's reference from `fromImage` and `tag` (a tag, or a digest).
pub fn pull_reference(from: &str, tag: &str) -> Result<Reference, ApiError> {
    let mut r = Reference::parse(from)?;
    if !tag.is_empty() {
        if tag.starts_with("sha256:") {
            let whole = format!("{}@{tag}", r.name);
            let d = Reference::parse(&whole)?;
            r.tag = None;
            r.digest = d.digest;
        } else if crate::image::reference::valid_tag(tag) {
            r.tag = Some(tag.to_string());
        } else {
            return Err(ImageError::InvalidReference("invalid reference format".into()).into());
        }
    }
    Ok(r.with_default_tag())
}

/// `X-Registry-Auth`, or anonymous.
pub fn credentials(req: &Request) -> Credentials {
    req.header("x-registry-auth")
        .and_then(Credentials::from_header)
        .unwrap_or_default()
}

/// `POST /images/create?fromImage=...`
pub fn pull(engine: &mut Engine, conn: ConnId, req: &Request) -> Result<Begin<Engine>, ApiError> {
    let q = &req.query;
    let from = q.get("fromImage").unwrap_or("");
    let tag = q.get("tag").unwrap_or("");
    let reference = pull_reference(from, tag)?;
    // dockerd: a name without tag or digest, and no `tag`, means every tag.
    let all_tags = tag.is_empty()
        && Reference::parse(from).is_ok_and(|r| r.tag.is_none() && r.digest.is_none());
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(parse_platform(p)?),
        None => None,
    };
    let registries = registries(engine);
    let domain = reference.name.split('/').next().unwrap_or("");
    check_supported(domain, &registries)?;
    let job = PullJob {
        reference,
        platform,
        creds: credentials(req),
        registries,
        all_tags,
        max_downloads: engine.config.registry.max_downloads,
    };
    let worker = engine.spawn_pull(conn, job)?;
    Ok(Begin::Respond(Response::later(Box::new(ProgressStart {
        worker,
        finish: pull_finish,
        abort: Engine::abort_pull,
    }))))
}

/// A registry job's outcome decoded as its summary; any failure ends the
/// job (`abort_pull`) and becomes the stream's error.
fn job_summary<T: serde::de::DeserializeOwned>(
    engine: &mut Engine,
    outcome: Outcome,
) -> Result<T, (String, Response)> {
    let err = match outcome {
        Outcome::Done(v) => match crate::json::from_value(&v) {
            Ok(summary) => return Ok(summary),
            Err(e) => ApiError::Internal(format!("worker result: {e}")),
        },
        Outcome::Failed(v) => DistError::from_wire(v).into(),
        Outcome::Died(m) => ApiError::Internal(m),
    };
    engine.abort_pull();
    Err((err.to_string(), err.into_response()))
}

fn pull_finish(engine: &mut Engine, outcome: Outcome) -> Result<Vec<Value>, (String, Response)> {
    let fail = |e: ApiError| (e.to_string(), e.into_response());
    let summary: PullSummary = job_summary(engine, outcome)?;
    let newer = engine.finish_pull(&summary).map_err(|e| fail(e.into()))?;
    let first = summary
        .load
        .images
        .first()
        .and_then(|i| i.tags.first())
        .cloned()
        .unwrap_or_default();
    let shown = match Reference::parse(&first) {
        Ok(r) if summary.all_tags => r.familiar_name().to_string(),
        _ => familiar(&first),
    };
    log::info!(
        "pulled {shown} ({}): {} blob bytes fetched",
        summary.digest,
        summary.fetched
    );
    let status = if newer {
        format!("Status: Downloaded newer image for {shown}")
    } else {
        format!("Status: Image is up to date for {shown}")
    };
    Ok(vec![json!({ "status": status })])
}

/// `POST /images/{name}/push?tag=`: the tag (or every tag of the
/// repository) pushed by a worker, with dockerd's progress stream.
pub fn push(call: &mut super::Call) -> Result<Response, ApiError> {
    let name = call.params.first().cloned().unwrap_or_default();
    let tag = call.req.query.get("tag").unwrap_or("").to_string();
    let mut r = Reference::parse(&name)?;
    if !tag.is_empty() {
        if !crate::image::reference::valid_tag(&tag) {
            return Err(ImageError::InvalidReference("invalid reference format".into()).into());
        }
        r.tag = Some(tag);
    }
    let targets = call.engine.push_targets(&r)?;
    let registries = registries(call.engine);
    let domain = r.name.split('/').next().unwrap_or("");
    check_supported(domain, &registries)?;
    let job = PushJob {
        name: r.name.clone(),
        targets,
        creds: credentials(call.req),
        registries,
        max_uploads: call.engine.config.registry.max_uploads,
    };
    let worker = call.engine.spawn_push(call.conn, job)?;
    Ok(Response::later(Box::new(ProgressStart {
        worker,
        finish: push_finish,
        abort: Engine::abort_pull,
    })))
}

fn push_finish(engine: &mut Engine, outcome: Outcome) -> Result<Vec<Value>, (String, Response)> {
    let fail = |e: ApiError| (e.to_string(), e.into_response());
    let summary: PushSummary = job_summary(engine, outcome)?;
    engine.finish_push(&summary).map_err(|e| fail(e.into()))?;
    Ok(Vec::new())
}

/// `GET /images/search?term=&limit=&filters=`: a registry's catalog
/// filtered by the term, read in a worker.
pub fn search(call: &mut super::Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let term = q.get("term").unwrap_or("").to_string();
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 25,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if (1..=100).contains(&n) => n as usize,
            Ok(n) => {
                return Err(ApiError::InvalidParameter(format!(
                    "limit {n} is outside the range of [1, 100]"
                )))
            }
            Err(_) => {
                return Err(ApiError::InvalidParameter(format!(
                    "strconv.Atoi: parsing {l:?}: invalid syntax"
                )))
            }
        },
    };
    let f = super::filters::parse(q.get("filters"), &["is-official", "is-automated", "stars"])?;
    let first = |key: &str| f.get(key).and_then(|v| v.first()).cloned();
    let boolean = |key: &str| -> Result<Option<bool>, ApiError> {
        match first(key).as_deref() {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(v) => Err(ApiError::InvalidParameter(format!(
                "invalid filter '{key}={v}'"
            ))),
        }
    };
    let stars = match first("stars") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::InvalidParameter(format!("invalid filter 'stars={s}'")))?,
    };
    let filters = SearchFilters {
        is_official: boolean("is-official")?,
        is_automated: boolean("is-automated")?,
        stars,
    };
    let registries = registries(call.engine);
    let (domain, _) = split_term(&term);
    check_supported(&domain, &registries)?;
    let creds = credentials(call.req);
    let worker = call
        .engine
        .workers
        .spawn(Wake::Conn(call.conn), move |_input, _rep| {
            crate::distribution::search::search(&term, limit, &filters, creds, &registries)
                .map_err(|e| e.to_wire())
        })?;
    call.engine.workers.close_input(worker);
    Ok(Response::later(Box::new(WorkerAnswer {
        worker,
        finish: search_finish,
    })))
}

fn search_finish(_engine: &mut Engine, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Done(v) => Response::json(200, &v),
        Outcome::Failed(v) => ApiError::from(DistError::from_wire(v)).into_response(),
        Outcome::Died(m) => ApiError::Internal(m).into_response(),
    }
}

/// `POST /auth` (`docker login`): the credentials are tried against the
/// registry in a worker.
pub fn auth(call: &mut super::Call) -> Result<Response, ApiError> {
    let mut creds: Credentials = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))?;
    creds.normalise();
    let registries = registries(call.engine);
    let worker = call
        .engine
        .workers
        .spawn(Wake::Conn(call.conn), move |_input, _rep| {
            login(creds, &registries)
                .map(|token| json!({ "IdentityToken": token.unwrap_or_default() }))
                .map_err(|e| e.to_wire())
        })?;
    call.engine.workers.close_input(worker);
    Ok(Response::later(Box::new(WorkerAnswer {
        worker,
        finish: auth_finish,
    })))
}

fn auth_finish(_engine: &mut Engine, outcome: Outcome) -> Response {
    let err = match outcome {
        Outcome::Done(v) => {
            let token = v["IdentityToken"].as_str().unwrap_or("").to_string();
            return Response::json(
                200,
                &json!({ "Status": "Login Succeeded", "IdentityToken": token }),
            );
        }
        Outcome::Failed(v) => ApiError::from(DistError::from_wire(v)),
        Outcome::Died(m) => ApiError::Internal(m),
    };
    err.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_from_query() {
        let r = pull_reference("127.0.0.1:5000/busybox", "latest").unwrap();
        assert_eq!(r.to_string(), "127.0.0.1:5000/busybox:latest");
        let r = pull_reference("busybox", "").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = pull_reference("h:1/x", &d).unwrap();
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert!(r.tag.is_none());
        assert!(pull_reference("h:1/x", "bad tag").is_err());
        assert!(pull_reference("UPPER", "").is_err());
    }
}
