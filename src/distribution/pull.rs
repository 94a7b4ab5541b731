//! `docker pull`, run in a forked worker: the manifest resolved (an index
//! narrowed to one platform) and verified, the config fetched and
//! verified, each missing layer streamed (resumable after cuts) through
//! its digest check into the extractor and committed; then the journal,
//! the config, and the tags
//! (by the daemon, from the returned summary). A power cut at any point
//! leaves either the old state or the new; finished layers are held by a
//! pull record (`image/pulls/`) so an interrupted pull never fetches them
//! again.

use crate::json;
use serde::{Deserialize, Serialize};

use super::auth::Credentials;
use super::blob::{self, Counters};
use super::blob_sources::{self, Source};
use super::endpoint::Registries;
use super::error::{DistError, Result};
use super::layers::{fetch_layers, short};
use super::manifest::{self, Manifest, Platform};
use super::progress;
use super::session::{registry_error, Session};
use crate::http::client::ReqBody;
use crate::image::archive_load::{config_diff_ids, LoadSummary, LoadedImage};
use crate::image::digest::sha256_digest;
use crate::image::layout::Layout;
use crate::image::reference::Reference;
use crate::worker::Reporter;

/// Largest image config read.
const CONFIG_MAX: u64 = 8 << 20;

/// What the daemon asks a pull worker to do.
pub struct PullJob {
    /// Normalised, with a tag or a digest.
    pub reference: Reference,
    pub platform: Option<Platform>,
    pub creds: Credentials,
    pub registries: Registries,
    /// `--all-tags`: every tag of the repository.
    pub all_tags: bool,
    /// `max-concurrent-downloads`: blobs in flight at once.
    pub max_downloads: usize,
}

/// What a pull did, sent back over the worker pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullSummary {
    pub load: LoadSummary,
    /// The manifest digest (of the index when there was one).
    pub digest: String,
    /// Blob bytes received from the network.
    pub fetched: u64,
    /// Every tag of the repository was pulled.
    #[serde(default)]
    pub all_tags: bool,
}

fn send(rep: &mut Reporter, v: serde_json::Value) {
    // A client gone away is the daemon's concern; the job goes on.
    let _ = rep.send(&v);
}

/// Fetch a manifest by tag or digest; returns (bytes, content type, digest).
pub fn fetch_manifest(
    sess: &mut Session,
    r: &Reference,
    tag_or_digest: &str,
) -> Result<(Vec<u8>, String, String)> {
    let url = sess.url(&format!("manifests/{tag_or_digest}"))?;
    let accept = manifest::accept();
    let mut resp = sess.send("GET", &url, &[("Accept", &accept)], ReqBody::None)?;
    if resp.status != 200 {
        let body = resp.read_body(64 * 1024).unwrap_or_default();
        return Err(not_found(r, resp.status, &body));
    }
    let ct = resp.header("content-type").unwrap_or("").to_string();
    let header_digest = resp.header("docker-content-digest").map(str::to_string);
    let body = resp
        .read_body(manifest::MANIFEST_MAX)
        .map_err(|e| DistError::Registry(format!("reading manifest: {e}")))?;
    let digest = sha256_digest(&body);
    let expected = if tag_or_digest.starts_with("sha256:") {
        Some(tag_or_digest.to_string())
    } else {
        header_digest.filter(|d| d.starts_with("sha256:"))
    };
    if let Some(want) = expected {
        if want != digest {
            return Err(DistError::Registry(format!(
                "manifest verification failed for digest {want}"
            )));
        }
    }
    Ok((body, ct, digest))
}

/// dockerd's `translatePullError` wording for a refused manifest.
fn not_found(r: &Reference, status: u16, body: &[u8]) -> DistError {
    let name = r.familiar_name().to_string();
    let (code, text) = registry_error(body).unwrap_or_else(|| match status {
        401 | 403 => (
            "DENIED".into(),
            "denied: requested access to the resource is denied".into(),
        ),
        s => (String::new(), format!("unexpected HTTP status {s}")),
    });
    match code.as_str() {
        "MANIFEST_UNKNOWN" => DistError::NotFound(format!(
            "manifest for {} not found: {text}",
            r.familiar()
        )),
        "NAME_UNKNOWN" => DistError::NotFound(format!("repository {name} not found: {text}")),
        "DENIED" | "UNAUTHORIZED" => DistError::NotFound(format!(
            "pull access denied for {name}, repository does not exist or may require 'docker login': {text}"
        )),
        _ => DistError::Registry(text),
    }
}

/// One image fetched, its layers committed and held, its config not yet
/// written.
struct Fetched {
    config: Vec<u8>,
    image: LoadedImage,
    hold: std::path::PathBuf,
    digest: String,
}

/// The repository's tags (`GET tags/list`), for `--all-tags`.
fn list_tags(sess: &mut Session, r: &Reference) -> Result<Vec<String>> {
    let url = sess.url("tags/list")?;
    let mut resp = sess.send("GET", &url, &[], ReqBody::None)?;
    let body = resp.read_body(manifest::MANIFEST_MAX).unwrap_or_default();
    if resp.status != 200 {
        return Err(not_found(r, resp.status, &body));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| DistError::Registry(format!("tags list: {e}")))?;
    Ok(v.get("tags")
        .and_then(|t| t.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str())
                .filter(|t| crate::image::reference::valid_tag(t))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

pub fn pull(layout: &Layout, job: PullJob, rep: &mut Reporter) -> Result<PullSummary> {
    layout.create_dirs()?;
    let r = job.reference.clone();
    let (domain, repo) = r
        .name
        .split_once('/')
        .ok_or_else(|| DistError::Invalid("invalid reference format".into()))?;
    // Docker Hub's mirrors first, in order; any registry error there
    // (unreachable, unknown manifest, denied) moves on, as dockerd's
    // `continueOnError` does for a mirror. Layers a mirror finished stay.
    if domain == "docker.io" {
        for m in &job.registries.mirrors {
            let tried = Session::open_mirror(m, repo, job.creds.clone(), &job.registries)
                .and_then(|mut s| pull_from(layout, &mut s, repo, &job, rep));
            match tried {
                Ok(summary) => return Ok(summary),
                Err(e @ (DistError::Image(_) | DistError::Invalid(_))) => return Err(e),
                Err(e) => log::info!(
                    "pull of {} from mirror {m}: {e}; trying the next endpoint",
                    r.familiar()
                ),
            }
        }
    }
    // A 401 is for `POST /auth` only: the CLI answers one from a pull by
    // prompting for credentials.
    let mut sess = Session::open(domain, repo, job.creds.clone(), "pull", &job.registries)
        .map_err(|e| match e {
            DistError::Unauthorized(m) => DistError::Registry(m),
            e => e,
        })?;
    pull_from(layout, &mut sess, repo, &job, rep)
}

/// The pull, over a session with the registry or one of its mirrors.
fn pull_from(
    layout: &Layout,
    sess: &mut Session,
    repo: &str,
    job: &PullJob,
    rep: &mut Reporter,
) -> Result<PullSummary> {
    let r = job.reference.clone();
    let refs: Vec<Reference> = if job.all_tags {
        let tags = list_tags(sess, &r)?;
        if tags.is_empty() {
            return Err(DistError::NotFound(format!(
                "repository {} not found: no tags",
                r.familiar_name()
            )));
        }
        tags.into_iter()
            .map(|t| Reference {
                name: r.name.clone(),
                tag: Some(t),
                digest: None,
            })
            .collect()
    } else {
        vec![r.clone()]
    };
    let mut counters = Counters { fetched: 0 };
    let mut fetched = Vec::new();
    for one in &refs {
        let f = pull_one(layout, sess, one, repo, job, rep, &mut counters)?;
        send(rep, json!({ "status": format!("Digest: {}", f.digest) }));
        fetched.push(f);
    }
    // Every image's tags on record, then their configs: they appear together.
    let planned = LoadSummary {
        images: fetched.iter().map(|f| f.image.clone()).collect(),
        journal: None,
    };
    let journal = layout.write_journal(&planned)?;
    for f in &fetched {
        layout.write_config(&f.config)?;
        layout.release_layers(&f.hold)?;
    }
    Ok(PullSummary {
        load: LoadSummary {
            journal: Some(journal),
            ..planned
        },
        digest: fetched.last().map(|f| f.digest.clone()).unwrap_or_default(),
        fetched: counters.fetched,
        all_tags: job.all_tags,
    })
}

/// One tag or digest: manifest, config, missing layers.
fn pull_one(
    layout: &Layout,
    sess: &mut Session,
    r: &Reference,
    repo: &str,
    job: &PullJob,
    rep: &mut Reporter,
    counters: &mut Counters,
) -> Result<Fetched> {
    let r = r.clone();
    let tag_or_digest = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".into());
    let (body, ct, top_digest) = fetch_manifest(sess, &r, &tag_or_digest)?;
    let (config_desc, layers) = match manifest::parse(&ct, &body)? {
        Manifest::Image { config, layers } => (config, layers),
        Manifest::Index(subs) => {
            let want = job.platform.clone().unwrap_or_else(manifest::host_platform);
            let pick = manifest::select(&subs, &want).ok_or_else(|| {
                DistError::NotFound(format!(
                    "no matching manifest for {want} in the manifest list entries"
                ))
            })?;
            let digest = pick.digest.clone();
            manifest::check_digest(&digest)?;
            let (b, ct, _) = fetch_manifest(sess, &r, &digest)?;
            match manifest::parse(&ct, &b)? {
                Manifest::Image { config, layers } => (config, layers),
                Manifest::Index(_) => {
                    return Err(DistError::Registry(
                        "invalid manifest: an index inside an index".into(),
                    ))
                }
            }
        }
    };
    let shown = r.tag.clone().unwrap_or_else(|| tag_or_digest.clone());
    // dockerd names the repository by its path on the registry.
    send(
        rep,
        json!({"status": format!("Pulling from {repo}"), "id": shown}),
    );
    let config = blob::fetch_small(sess, &config_desc.digest, CONFIG_MAX)?;
    if let Some(want) = &job.platform {
        check_platform(&config, want, &r)?;
    }
    let diff_ids = config_diff_ids(&config)?;
    if diff_ids.len() != layers.len() {
        return Err(DistError::Registry(format!(
            "invalid manifest: layers length mismatch: expected {}, got {}",
            diff_ids.len(),
            layers.len()
        )));
    }
    let id = sha256_digest(&config);
    // Layers committed from here on are held until the config is written.
    let hold = layout.hold_layers(&id, &diff_ids)?;
    // An image already here (config and layers) gets no layer lines.
    let complete =
        layout.config_path(&id).is_file() && diff_ids.iter().all(|d| layout.layer_exists(d));
    for (l, d) in layers.iter().zip(&diff_ids).filter(|_| !complete) {
        let msg = if layout.layer_exists(d) {
            "Already exists"
        } else {
            "Pulling fs layer"
        };
        send(rep, progress::status(Some(&short(&l.digest)), msg));
    }
    fetch_layers(
        layout,
        sess,
        &layers,
        &diff_ids,
        job.max_downloads,
        rep,
        counters,
    )?;
    // Which blob each layer is, and where: a push HEADs or mounts it.
    let registry = sess.registry();
    for (l, d) in layers.iter().zip(&diff_ids) {
        let src = Source {
            digest: l.digest.clone(),
            size: l.size,
            registry: registry.clone(),
            repo: repo.to_string(),
        };
        blob_sources::record(layout, d, src);
    }
    let mut tags = Vec::new();
    if let Some(t) = &r.tag {
        tags.push(format!("{}:{t}", r.name));
    }
    tags.push(format!("{}@{top_digest}", r.name));
    Ok(Fetched {
        config,
        image: LoadedImage { id, tags },
        hold,
        digest: top_digest,
    })
}

/// dockerd refuses an image whose config names another platform than the
/// one asked for.
fn check_platform(config: &[u8], want: &Platform, r: &Reference) -> Result<()> {
    let v: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| DistError::Registry(format!("image config: {e}")))?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let got = manifest::normalise(Platform {
        os: s("os"),
        architecture: s("architecture"),
        variant: s("variant"),
    });
    if got.os != want.os || got.architecture != want.architecture {
        return Err(DistError::NotFound(format!(
            "image with reference {} was found but does not match the specified platform: wanted {want}, actual: {got}",
            r.familiar()
        )));
    }
    Ok(())
}
