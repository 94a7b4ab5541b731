//! Endpoints only old API versions have, or that old clients reach before
//! the code that owns them lands: a second route table the router consults
//! after `ROUTES` (so a route added there takes precedence over one here).
//! Each entry names the first version that no longer has the endpoint.

use crate::json;
use serde_json::Value;

use super::error::ApiError;
use super::router::{ApiVersion, Handle};
use super::{attach, key, Call};
use crate::engine::images::Job;
use crate::engine::Response;
use crate::http::request::Method;
use crate::image::insert::InsertOptions;
use crate::reply::Wake;
use crate::streams::job::JobResult;
use Handle::{Json, Now};

const GET: Method = Method::Get;
const POST: Method = Method::Post;
/// Still served at the newest version.
const ALWAYS: ApiVersion = ApiVersion(u16::MAX, 0);

/// Method, pattern, handler, and the version that removed the endpoint.
#[rustfmt::skip]
pub const ROUTES: &[(Method, &str, Handle, ApiVersion)] = &[
    (GET, "/images/viz", Now(viz), ApiVersion(1, 7)),
    (GET, "/containers/{id}/attach/ws", Now(attach::attach_ws), ALWAYS),
    (POST, "/containers/{id}/copy", Json(copy), ApiVersion(1, 24)),
    (POST, "/images/{name*}/insert", Now(insert), ApiVersion(1, 12)),
];

/// `GET /images/viz` (until v1.7): the image tree as a Graphviz digraph, in
/// the v1.3 doc's form. Images here have no parent chain (every image is
/// loaded or imported whole), so each is a root under the invisible `base`.
pub fn viz(call: &mut Call) -> Result<Response, ApiError> {
    let mut edges = Vec::new();
    let mut labels = Vec::new();
    let mut images: Vec<_> = call.engine.images.images().collect();
    crate::sort::sort_by(&mut images, |a, b| a.id.cmp(&b.id));
    for img in images {
        let short: String = img
            .id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        let parent = img
            .config
            .get("parent")
            .and_then(Value::as_str)
            .unwrap_or("");
        let parent: String = parent
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        if parent.is_empty() {
            edges.push(format!("base -> \"{short}\" [style=invis]\n"));
        } else {
            edges.push(format!("\"{parent}\" -> \"{short}\"\n"));
        }
        let mut repos: Vec<String> = call
            .engine
            .images
            .repo_tags(&img.id)
            .iter()
            .map(|t| {
                t.rsplit_once(':')
                    .map_or(t.as_str(), |(r, _)| r)
                    .to_string()
            })
            .collect();
        repos.dedup();
        if !repos.is_empty() {
            labels.push(format!(
                "\"{short}\" [label=\"{short}\\n{}\",shape=box,fillcolor=\"paleturquoise\",style=\"filled,rounded\"];\n",
                repos.join("\\n")
            ));
        }
    }
    let mut out = String::from("digraph docker {\n");
    edges.iter().chain(&labels).for_each(|l| out.push_str(l));
    out.push_str("base [style=invisible]\n}\n");
    Ok(Response::new(200)
        .header("Content-Type", "text/plain")
        .bytes(out.into_bytes()))
}

/// `POST /containers/{id}/copy` (v1.11's copy, gone in v1.24): a tar of
/// `{"Resource": path}` from the container's filesystem, written by a worker
/// that mounts the layers privately (as `export`).
pub fn copy(call: &mut Call) -> Result<Response, ApiError> {
    let body: Value = serde_json::from_slice(&call.body)
        .map_err(|e| ApiError::InvalidParameter(format!("invalid JSON: {e}")))?;
    let resource = body["Resource"].as_str().unwrap_or("").to_string();
    if resource.is_empty() {
        return Err(ApiError::InvalidParameter("Path cannot be empty".into()));
    }
    // No path is longer (and the existence check below stays short).
    if resource.len() > 4096 {
        return Err(ApiError::InvalidParameter(format!(
            "path too long: {} bytes",
            resource.len()
        )));
    }
    let e = call.engine.containers.find(&key(call))?;
    let id = e.c.id.clone();
    let upper = call.engine.container_dirs.upper(&id);
    let lowers = call.engine.images.lower_dirs(&e.c.image)?;
    let layers: Vec<_> = std::iter::once(upper.clone())
        .chain(lowers.iter().cloned())
        .collect();
    if !crate::container::export::resource_exists(&layers, &resource) {
        return Err(ApiError::NotFound(format!(
            "Could not find the file {resource} in container {}",
            key(call)
        )));
    }
    let mnt = call.engine.container_dirs.dir(&id).join(".copy");
    let ids = call.engine.archive_ids(&id);
    let worker = call
        .engine
        .workers
        .spawn_raw(Wake::Conn(call.conn), move |_input, out| {
            crate::container::export::write_resource_tar(
                &upper,
                &lowers,
                &mnt,
                &resource,
                ids.as_ref(),
                out.out_file(),
            )
            .map(|()| Value::Null)
            .map_err(|e| json!(e.to_string()))
        })?;
    call.engine.container_event(&id, "copy", &[]);
    Ok(Response::stream(
        200,
        "application/x-tar",
        Box::new(crate::streams::worker_body::WorkerBody::new(worker)),
    ))
}

/// `POST /images/{name}/insert?path=&url=` (until v1.12): the file at the
/// `http://` URL, fetched by a worker, becomes a new layer on the image at
/// `path`; the answer is v1.3's status stream ending with the new ID.
pub fn insert(call: &mut Call) -> Result<Response, ApiError> {
    let q = &call.req.query;
    let url = q.get("url").unwrap_or("").to_string();
    let path = q.get("path").unwrap_or("").to_string();
    crate::image::insert::check_path(&path)?;
    crate::http::client::check_url(&url).map_err(ApiError::InvalidParameter)?;
    if !url.starts_with("http://") {
        return Err(ApiError::InvalidParameter(format!(
            "unsupported url {url:?}: only http:// is supported"
        )));
    }
    let base = call.engine.images.resolve(&key(call))?;
    let job = Job::Insert(InsertOptions {
        base_id: base.id.clone(),
        base_config: base.config.clone(),
        path,
        url,
    });
    let worker = call.engine.spawn_image_job(call.conn, job.clone(), None)?;
    call.engine.workers.close_input(worker);
    Ok(Response::later(Box::new(JobResult {
        worker,
        job,
        finish: super::images::job_response,
    })))
}
