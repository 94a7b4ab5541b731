//! `docker build` (classic builder), engine side: one forked worker takes
//! the context (the request body), parses the Dockerfile, then makes each
//! step's image (`build::steps`), reporting as it goes; the daemon indexes
//! each image as its record arrives and tags the last one.

use crate::json;
use serde_json::Value;

use super::build_job::BuildId;
use super::Engine;
use crate::build::context::{fetch_remote, receive, BuildError};
use crate::build::run::{Answers, RunOptions};
use crate::build::steps::{run, StepEnv};
use crate::distribution::auth::Credentials;
use crate::distribution::endpoint::Registries;
use crate::distribution::manifest::Platform;
use crate::distribution::pull::{pull, PullJob, PullSummary};
use crate::image::archive_load::LoadSummary;
use crate::image::reference::Reference;
use crate::reply::{ConnId, Wake};
use crate::worker::Outcome;

/// What a build request asks for.
pub struct BuildOptions {
    /// The `dockerfile` parameter: the Dockerfile's path in the context.
    pub dockerfile: String,
    pub tags: Vec<String>,
    pub buildargs: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: String,
    pub nocache: bool,
    /// `remote`: an `http://` URL of the context (a tar) or of a Dockerfile;
    /// the request body is then not read.
    pub remote: Option<String>,
    /// `pull`: FROM images pulled even when here, with these registries'
    /// settings and the `X-Registry-Config` credentials (registry, creds).
    pub pull: Option<BuildPull>,
    /// `platform`: what FROM images must be.
    pub platform: Option<String>,
    /// `cachefrom`: image names whose history may satisfy the cache.
    pub cache_from: Vec<String>,
    /// RUN containers' settings (`rm`, `forcerm`, the HostConfig).
    pub run: RunOptions,
    /// `q`: only the image ID is streamed (and errors).
    pub quiet: bool,
}

fn wire(e: BuildError) -> Value {
    crate::json::to_value(&e).unwrap_or(Value::Null)
}

/// The worker's first message once the Dockerfile parses: the answer is
/// a 200 stream from then on.
pub const READY: &str = "ready";

/// What a `pull=1` build pulls with.
#[derive(Clone)]
pub struct BuildPull {
    pub registries: Registries,
    /// `X-Registry-Config`: (registry, credentials).
    pub auth: Vec<(String, Credentials)>,
    /// The daemon's `max-concurrent-downloads`.
    pub max_downloads: usize,
}

/// `pull=1`, worker side: FROM `name` pulled (progress into the stream),
/// the pull's summary sent for the daemon to index, the image read back.
fn pull_from(
    layout: &crate::image::layout::Layout,
    rep: &std::cell::RefCell<&mut crate::worker::Reporter>,
    name: &str,
    platform: Option<&Platform>,
    how: &BuildPull,
) -> Result<(String, Value), String> {
    let BuildPull {
        registries, auth, ..
    } = how;
    let reference = Reference::parse(name)
        .map_err(|e| e.to_string())?
        .with_default_tag();
    let domain = reference.name.split('/').next().unwrap_or("").to_string();
    let creds = auth
        .iter()
        .find(|(k, _)| {
            let k = k
                .trim_start_matches("https://")
                .trim_start_matches("http://");
            k.split('/').next() == Some(domain.as_str())
                || (domain == "docker.io" && k.starts_with("index.docker.io"))
        })
        .map(|(_, c)| c.clone())
        .unwrap_or_default();
    let job = PullJob {
        reference,
        platform: platform.cloned(),
        creds,
        registries: registries.clone(),
        all_tags: false,
        max_downloads: how.max_downloads,
    };
    let summary = pull(layout, job, &mut rep.borrow_mut()).map_err(|e| e.to_string())?;
    let _ = rep.borrow_mut().send(&json!({ PULLED: summary }));
    let id = summary
        .load
        .images
        .first()
        .map(|i| i.id.clone())
        .ok_or_else(|| format!("pulling {name}: no image"))?;
    let img = std::fs::read(layout.config_path(&id))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| format!("pulling {name}: the image config cannot be read"))?;
    Ok((id, img))
}

/// The worker's record of a pull it made for FROM.
const PULLED: &str = "pulled";

impl Engine {
    /// Start a build job (`build_job.rs`) streamed to `conn`: its worker,
    /// which the context (the request body) is fed into.
    pub fn build_start(&mut self, conn: ConnId, opts: BuildOptions) -> Result<BuildId, BuildError> {
        for t in &opts.tags {
            Reference::parse(t).map_err(|e| BuildError::Invalid(e.to_string()))?;
        }
        // The daemon's answers to RUN requests: the worker blocks on the
        // read end; the loop writes short lines (never near a pipe's size).
        let (ans_r, ans_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| BuildError::Internal(e.to_string()))?;
        nix::fcntl::fcntl(
            &ans_w,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| BuildError::Internal(e.to_string()))?;
        let keep = std::os::fd::AsRawFd::as_raw_fd(&ans_r);
        let answers = std::fs::File::from(ans_r);
        let layout = self.images.layout().clone();
        // RUN containers run remapped under `--userns-remap`: their layers
        // are committed with the container's ids.
        let mut run_opts = opts.run.clone();
        run_opts.ids = self.userns.clone();
        let task = self.reserve_task();
        let images = &self.images;
        let spawned = self
            .workers
            .spawn_keeping(Wake::Task(task), keep, |input, rep| {
                let dir = layout
                    .new_temp_dir()
                    .map_err(|e| wire(BuildError::Internal(e.to_string())))?;
                let input = std::io::BufReader::with_capacity(64 * 1024, input);
                let received = match &opts.remote {
                    Some(url) => fetch_remote(url, &opts.dockerfile)
                        .and_then(|r| receive(r, &dir, &opts.dockerfile)),
                    None => receive(input, &dir, &opts.dockerfile),
                };
                let result = received.and_then(|(r, df)| {
                    let _ = rep.send(&json!({ READY: true }));
                    let resolve = |name: &str| {
                        images
                            .resolve(name)
                            .map(|i| (i.id.clone(), i.config.clone()))
                            .map_err(|e| e.to_string())
                    };
                    let known = |pred: &mut dyn FnMut(&str, &Value) -> bool| {
                        images
                            .images()
                            .find(|i| pred(&i.id, &i.config))
                            .map(|i| (i.id.clone(), i.config.clone()))
                    };
                    let rep = std::cell::RefCell::new(rep);
                    let mut report = |v: Value| {
                        let _ = rep.borrow_mut().send(&v);
                    };
                    let pull_base = |name: &str, platform: Option<&Platform>| {
                        let Some(how) = &opts.pull else {
                            return Err("no pull".to_string());
                        };
                        pull_from(&layout, &rep, name, platform, how)
                    };
                    let mut env = StepEnv {
                        layout: &layout,
                        resolve: &resolve,
                        report: &mut report,
                        buildargs: opts.buildargs.clone(),
                        labels: opts.labels.clone(),
                        target: opts.target.clone(),
                        context: r.root(),
                        nocache: opts.nocache,
                        known: &known,
                        built: Vec::new(),
                        platform: opts.platform.clone(),
                        pull: opts.pull.is_some().then_some(&pull_base as _),
                        // As dockerd, a name that is not here is skipped.
                        cache_from: opts
                            .cache_from
                            .iter()
                            .filter_map(|n| images.resolve(n).ok())
                            .map(|i| (i.id.clone(), i.config.clone()))
                            .collect(),
                        stages: Vec::new(),
                        run: run_opts.clone(),
                        answers: Some(Answers::new(answers)),
                    };
                    run(&df, &mut env)
                });
                let _ = std::fs::remove_dir_all(&dir);
                result.map(|id| json!(id)).map_err(wire)
            });
        let worker = match spawned {
            Ok(w) => w,
            Err(e) => {
                self.tasks.remove(task);
                return Err(BuildError::Internal(e.to_string()));
            }
        };
        self.images.begin_worker();
        let answers = std::fs::File::from(ans_w);
        Ok(self.build_job_insert(task, worker, answers, conn, &opts))
    }

    /// A RUN step's container: created from the worker's create body and
    /// started; its ID and log file.
    pub fn build_run(&mut self, spec: &Value) -> Result<(String, String), String> {
        let body = crate::json::text(spec);
        let (id, _warnings) = self
            .container_create(body.as_bytes(), None)
            .map_err(|e| e.to_string())?;
        if let Err(e) = self.container_start(&id) {
            let _ = self.container_remove(&id, true);
            return Err(e.to_string());
        }
        let log = self.container_dirs.log_path(&id);
        Ok((id, log.to_string_lossy().into_owned()))
    }

    /// A RUN container's exit code once it has exited and its output is
    /// all in its log; its upper dir (the step's layer).
    pub fn build_run_exit(&self, id: &str) -> Option<(i32, String)> {
        let upper = self.container_dirs.upper(id).to_string_lossy().into_owned();
        let Some(e) = self.containers.get(id) else {
            return Some((-1, upper));
        };
        // A start that failed after the fork never ran: its code is final.
        let never_ran = !e.c.start_pending && !e.c.has_been_started;
        let done = e.live.is_none() && (e.exits > 0 || never_ran) && !self.outputs.is_open(id);
        done.then_some((e.c.state.exit_code, upper))
    }

    /// A message of the build worker: an image record is indexed (None),
    /// anything else is for the client.
    pub fn build_message(&mut self, msg: Value) -> Option<Value> {
        if let Some(rec) = msg.get(PULLED) {
            match crate::json::from_value::<PullSummary>(rec) {
                Ok(s) => {
                    self.images.begin_worker();
                    if let Err(e) = self.finish_pull(&s) {
                        log::error!("build: indexing a pulled image: {e}");
                    }
                }
                Err(e) => log::error!("build: a pull's record: {e}"),
            }
            return None;
        }
        let Some(rec) = msg.get("image") else {
            return Some(msg);
        };
        match crate::json::from_value::<LoadSummary>(rec) {
            Ok(s) => {
                self.images.begin_worker();
                if let Err(e) = self.images.apply_load(&s) {
                    log::error!("build: indexing a step's image: {e}");
                }
                crate::failpoint!("build.step_indexed");
            }
            Err(e) => log::error!("build: a step's record: {e}"),
        }
        None
    }

    /// The worker's outcome: the final image ID, tagged.
    pub fn build_finish(
        &mut self,
        outcome: Outcome,
        tags: &[String],
    ) -> Result<(String, Vec<String>), BuildError> {
        self.images.abort_worker();
        let id = match outcome {
            Outcome::Done(v) => v.as_str().unwrap_or("").to_string(),
            Outcome::Failed(v) => {
                return Err(crate::json::from_value(&v)
                    .unwrap_or_else(|_| BuildError::Internal("the build worker failed".into())))
            }
            Outcome::Died(m) => return Err(BuildError::Internal(m)),
        };
        let mut tagged = Vec::new();
        for t in tags {
            self.images
                .tag(&id, t, None)
                .map_err(|e| BuildError::Internal(e.to_string()))?;
            crate::failpoint!("build.tagged");
            tagged.push(
                Reference::parse(t)
                    .map(|r| r.with_default_tag().familiar())
                    .unwrap_or_else(|_| t.clone()),
            );
        }
        Ok((id, tagged))
    }
}
