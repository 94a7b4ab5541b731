//! The steps of a build that need no container, worker side: FROM, the
//! metadata instructions and COPY/ADD of context files. Each step is a
//! commit (`image::commit`) of a scratch upper dir (empty for metadata)
//! on the previous image, reported as it is made. RUN's container is run
//! by the daemon (`build::run`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::json;
use serde_json::{Map, Value};

use super::cache::cache_hit;
use super::context::BuildError;
use super::copy::{checksum, copy_into, dest_path, Copy};
use super::dockerfile::{CmdLine, Command, Dockerfile, Instruction};
use super::from::{base, wanted, PullBase};
use super::run::{run_step, Answers, RunOptions};
use super::shellwords::{process_word, process_words};
use super::sources::{is_dir_in, owner, resolve};
use crate::image::archive_load::LoadSummary;
use crate::image::commit::{commit_container, CommitOptions};
use crate::image::import::apply_changes;
use crate::image::layer_extract::Budget;
use crate::image::layout::Layout;

/// An image: its ID and its full config.
pub type ImageRec = (String, Value);
/// A FROM image by name.
pub type Resolve<'a> = &'a dyn Fn(&str) -> Result<ImageRec, String>;
/// The first image the daemon had at the start that the predicate takes.
pub type Known<'a> = &'a dyn Fn(&mut dyn FnMut(&str, &Value) -> bool) -> Option<ImageRec>;

/// What the steps need from the daemon's side.
pub struct StepEnv<'a> {
    pub layout: &'a Layout,
    /// A FROM image by name: (ID, full image config).
    pub resolve: Resolve<'a>,
    /// Progress: `{"stream":..}` lines and `{"image": summary}` records.
    pub report: &'a mut dyn FnMut(Value),
    pub buildargs: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: String,
    /// The extracted context.
    pub context: PathBuf,
    /// `nocache`: every step is made anew.
    pub nocache: bool,
    /// Images the daemon had at the start, for the cache: (ID, config).
    pub known: Known<'a>,
    /// Images made by this build so far.
    pub built: Vec<ImageRec>,
    /// `platform`: what a FROM image must be (`FROM --platform` wins).
    pub platform: Option<String>,
    /// `pull`: FROM images are pulled even when here.
    pub pull: Option<PullBase<'a>>,
    /// `cachefrom`: the images whose history may satisfy the cache (empty:
    /// every local image may).
    pub cache_from: Vec<ImageRec>,
    /// The stages done: (name, ID, config), for FROM and COPY --from.
    pub stages: Vec<(Option<String>, String, Value)>,
    /// RUN containers' settings.
    pub run: RunOptions,
    /// The daemon's answers to RUN requests (None: RUN cannot be served).
    pub answers: Option<Answers>,
}

pub(super) fn say(env: &mut StepEnv, text: String) {
    (env.report)(json!({ "stream": text }));
}

fn short(id: &str) -> &str {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    &h[..h.len().min(12)]
}

fn invalid(e: impl ToString) -> BuildError {
    BuildError::Invalid(e.to_string())
}

/// One stage's state.
pub struct State {
    pub id: String,
    pub image: Value,
    pub config: Map<String, Value>,
    /// ARG values declared so far.
    pub vars: Vec<(String, String)>,
    pub shell: Vec<String>,
}

/// Run every stage up to the target; the final image's ID.
pub fn run(df: &Dockerfile, env: &mut StepEnv) -> Result<String, BuildError> {
    let last = df.up_to_target(&env.target).map_err(invalid)?;
    // dockerd adds the `labels` parameter as LABEL steps at the end, one
    // per label in key order, shown unquoted (`LABEL k=v`).
    let mut labels = env.labels.clone();
    crate::sort::sort(&mut labels);
    let extra: Vec<Instruction> = labels
        .iter()
        .map(|(k, v)| Instruction {
            line: 0,
            original: format!("LABEL {k}={v}"),
            command: Command::Label(vec![(quoted(k), quoted(v))]),
        })
        .collect();
    let total: usize = df.stages[..last]
        .iter()
        .map(|s| 1 + s.steps.len())
        .sum::<usize>()
        + extra.len();
    let esc = df.escape;
    let mut meta: Vec<(String, String)> = Vec::new();
    for ins in &df.meta_args {
        if let Command::Arg(args) = &ins.command {
            for (k, v) in args {
                let given = env
                    .buildargs
                    .iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone());
                let v = match (given, v) {
                    (Some(g), _) => g,
                    (None, Some(d)) => process_word(d, &meta, esc).map_err(invalid)?,
                    (None, None) => continue,
                };
                meta.push((k.clone(), v));
            }
        }
    }
    let mut n = 0;
    let mut final_id = String::new();
    for stage in &df.stages[..last] {
        n += 1;
        say(env, format!("Step {n}/{total} : {}\n", stage.from.original));
        let Command::From {
            image, platform, ..
        } = &stage.from.command
        else {
            return Err(invalid("no FROM"));
        };
        let name = process_word(image, &meta, esc).map_err(invalid)?;
        let (id, img) = if name.eq_ignore_ascii_case("scratch") {
            (String::new(), json!({"config": {}}))
        } else if let Some((_, id, img)) = env
            .stages
            .iter()
            .find(|(n, _, _)| n.as_deref() == Some(name.to_ascii_lowercase().as_str()))
        {
            (id.clone(), img.clone())
        } else {
            let flag = match platform {
                Some(p) => Some(process_word(p, &meta, esc).map_err(invalid)?),
                None => None,
            };
            let want = wanted(flag.as_deref(), env.platform.as_deref())?;
            base(env, &name, want.as_ref())?
        };
        if !id.is_empty() {
            say(env, format!(" ---> {}\n", short(&id)));
        }
        let config = img
            .get("config")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut st = State {
            id,
            image: img,
            config,
            vars: Vec::new(),
            shell: Vec::new(),
        };
        st.shell = st
            .config
            .get("Shell")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        let is_last = std::ptr::eq(stage, &df.stages[last - 1]);
        for ins in stage.steps.iter().chain(extra.iter().filter(|_| is_last)) {
            n += 1;
            say(env, format!("Step {n}/{total} : {}\n", ins.original));
            step(env, &mut st, ins, esc, &meta)?;
            say(env, format!(" ---> {}\n", short(&st.id)));
        }
        if st.id.is_empty() {
            return Err(invalid("No image was generated. Is your Dockerfile empty?"));
        }
        final_id = st.id.clone();
        env.stages
            .push((stage.name().map(str::to_string), st.id, st.image));
    }
    Ok(final_id)
}

/// The variables a step sees: the config's Env, then ARGs.
fn vars(st: &State) -> Vec<(String, String)> {
    let mut v = st.vars.clone();
    if let Some(a) = st.config.get("Env").and_then(Value::as_array) {
        for e in a.iter().filter_map(Value::as_str) {
            let (k, val) = e.split_once('=').unwrap_or((e, ""));
            v.push((k.to_string(), val.to_string()));
        }
    }
    v
}

/// A `changes` line apply_changes reads, values quoted.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn step(
    env: &mut StepEnv,
    st: &mut State,
    ins: &Instruction,
    esc: char,
    meta: &[(String, String)],
) -> Result<(), BuildError> {
    let vars = vars(st);
    let w = |s: &str| process_word(s, &vars, esc).map_err(invalid);
    let argv_json = |c: &CmdLine, shell: &[String]| crate::json::text(&json!(c.argv(shell)));
    let change = match &ins.command {
        Command::From { .. } => return Err(invalid("FROM inside a stage")),
        Command::Run(c) => return run_step(env, st, c.argv(&st.shell)),
        Command::Cmd(c) => format!("CMD {}", argv_json(c, &st.shell)),
        Command::Entrypoint(c) => format!("ENTRYPOINT {}", argv_json(c, &st.shell)),
        Command::Shell(v) => {
            st.shell = v.clone();
            st.config.insert("Shell".into(), json!(v));
            return cached_or_commit(
                env,
                st,
                nop(&format!("SHELL {}", crate::json::text(&json!(v)))),
            );
        }
        Command::Env(pairs) | Command::Label(pairs) => {
            let kw = if matches!(ins.command, Command::Env(_)) {
                "ENV"
            } else {
                "LABEL"
            };
            let mut parts = Vec::new();
            for (k, v) in pairs {
                parts.push(format!("{}={}", quoted(&w(k)?), quoted(&w(v)?)));
            }
            format!("{kw} {}", parts.join(" "))
        }
        Command::Arg(args) => {
            for (k, v) in args {
                let given = env
                    .buildargs
                    .iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone());
                let from_meta = meta
                    .iter()
                    .rev()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone());
                let val = match (given, v) {
                    (Some(g), _) => Some(g),
                    (None, Some(d)) => Some(w(d)?),
                    (None, None) => from_meta,
                };
                if let Some(val) = val {
                    st.vars.push((k.clone(), val));
                }
            }
            let key: Vec<String> = st.vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
            return cached_or_commit(env, st, nop(&format!("ARG {}", key.join(" "))));
        }
        Command::Maintainer(m) => {
            st.image["author"] = json!(m);
            return cached_or_commit(env, st, nop(&format!("MAINTAINER {m}")));
        }
        Command::Expose(ports) => {
            let p = process_words(&ports.join(" "), &vars, esc).map_err(invalid)?;
            format!("EXPOSE {}", p.join(" "))
        }
        Command::User(u) => format!("USER {}", w(u)?),
        Command::Workdir(d) => format!("WORKDIR {}", w(d)?),
        Command::StopSignal(s) => format!("STOPSIGNAL {}", w(s)?),
        Command::Volume(v) => {
            let v: Vec<String> = v.iter().map(|p| w(p)).collect::<Result<_, _>>()?;
            format!("VOLUME {}", crate::json::text(&json!(v)))
        }
        Command::Healthcheck(h) => {
            let flags: String = h.flags.iter().map(|(k, v)| format!("--{k}={v} ")).collect();
            match &h.test {
                None => "HEALTHCHECK NONE".to_string(),
                Some(CmdLine::Json(v)) => {
                    format!("HEALTHCHECK {flags}CMD {}", crate::json::text(&json!(v)))
                }
                Some(CmdLine::Shell(s)) => format!("HEALTHCHECK {flags}CMD {s}"),
            }
        }
        Command::Onbuild(t) => format!("ONBUILD {t}"),
        Command::Copy(a) | Command::Add(a) => {
            let is_add = matches!(ins.command, Command::Add(_));
            // --from: a previous stage (by name or index) or an image; its
            // layers, bottom to top, are the sources' roots.
            let (roots, from_key) = match &a.from {
                None => (vec![env.context.clone()], None),
                Some(f) => {
                    let f = w(f)?.to_ascii_lowercase();
                    let stage = match f.parse::<usize>() {
                        Ok(i) => env.stages.get(i).cloned(),
                        Err(_) => env
                            .stages
                            .iter()
                            .find(|(n, _, _)| n.as_deref() == Some(f.as_str()))
                            .cloned(),
                    };
                    let (id, img) = match stage {
                        Some((_, id, img)) => (id, img),
                        None => (env.resolve)(&f).map_err(BuildError::Invalid)?,
                    };
                    (layers(env, &img), Some(id))
                }
            };
            let srcs: Vec<String> = a.srcs.iter().map(|s| w(s)).collect::<Result<_, _>>()?;
            let dest = w(&a.dest)?;
            let kw = if is_add { "ADD" } else { "COPY" };
            let image_layers = layers(env, &st.image);
            let wd = st
                .config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string();
            let owner = match a.chown.as_deref().filter(|c| !c.is_empty()) {
                None => None,
                Some(c) => Some(owner(&w(c)?, &image_layers)?),
            };
            let downloads = env.layout.new_temp_dir()?;
            let res = (|| {
                let sources = resolve(&roots, &srcs, &dest, kw, is_add.then_some(&*downloads))?;
                let sum = match &from_key {
                    // An image's content is fixed by its ID.
                    Some(id) => format!("from:{id}:{}:{owner:?}", srcs.join(":")),
                    None => checksum(&sources, owner)?,
                };
                let key = format!("/bin/sh -c #(nop) {kw} {sum} in {dest} ");
                if cache_hit(env, st, &key) {
                    return Ok(());
                }
                let upper = env.layout.new_temp_dir()?;
                let how = Copy {
                    extract: is_add && from_key.is_none(),
                    owner,
                    dest_is_dir: is_dir_in(&image_layers, &dest_path(&wd, &dest)),
                };
                let res = copy_into(&wd, &upper, &sources, &dest, &how);
                let res = res.and_then(|()| commit(env, st, Some(&upper), key));
                let _ = fs::remove_dir_all(&upper);
                res
            })();
            let _ = fs::remove_dir_all(&downloads);
            return res;
        }
    };
    let key = nop(&change);
    // The step's config first: an image restored from `cachefrom` gets it.
    apply_changes(&mut st.config, &[change]).map_err(invalid)?;
    cached_or_commit(env, st, key)
}

/// An image's layer directories, bottom to top.
fn layers(env: &StepEnv, img: &Value) -> Vec<PathBuf> {
    img.pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|d| env.layout.diff_dir(d))
                .collect()
        })
        .unwrap_or_default()
}

/// A metadata step whose state is already changed: from the cache, or made.
/// dockerd's classic builder makes it by committing a container it creates
/// (never starts) and then removes per `rm`/`forcerm`, and says so: its
/// lines are printed here (the container itself is not made: nothing runs).
fn cached_or_commit(env: &mut StepEnv, st: &mut State, key: String) -> Result<(), BuildError> {
    if cache_hit(env, st, &key) {
        return Ok(());
    }
    let cid = crate::container::names::new_id();
    say(env, format!(" ---> Running in {}\n", short(&cid)));
    let res = commit(env, st, None, key);
    if env.run.forcerm || (env.run.rm && res.is_ok()) {
        say(
            env,
            format!("Removing intermediate container {}\n", short(&cid)),
        );
    }
    res
}

/// A metadata step's `created_by`, as dockerd writes it (and its cache key).
fn nop(change: &str) -> String {
    format!("/bin/sh -c #(nop)  {change}")
}

/// Commit the state's config (and `upper`'s files) as a child image.
pub(super) fn commit(
    env: &mut StepEnv,
    st: &mut State,
    upper: Option<&Path>,
    key: String,
) -> Result<(), BuildError> {
    commit_ids(env, st, upper, key, None)
}

/// `commit` of a remapped container's upper dir (`ids`: its mapping; its
/// files' host ids go into the layer as the container's, as `docker commit`).
pub(super) fn commit_ids(
    env: &mut StepEnv,
    st: &mut State,
    upper: Option<&Path>,
    key: String,
    ids: Option<crate::runtime::userns::IdMap>,
) -> Result<(), BuildError> {
    let opts = CommitOptions {
        ids,
        created_by: Some(key),
        config: st.config.clone(),
        parent: st.image.clone(),
        author: st
            .image
            .get("author")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        ..Default::default()
    };
    let res = match upper {
        Some(u) => commit_container(env.layout, u, &opts, &Budget::default()),
        None => {
            let empty = env.layout.new_temp_dir()?;
            let r = commit_container(env.layout, &empty, &opts, &Budget::default());
            let _ = fs::remove_dir_all(&empty);
            r
        }
    };
    let summary: LoadSummary = res.map_err(|e| BuildError::Internal(e.to_string()))?;
    let id = summary
        .images
        .first()
        .map(|i| i.id.clone())
        .unwrap_or_default();
    (env.report)(json!({ "image": summary }));
    if let Some(img) = fs::read(env.layout.config_path(&id))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    {
        env.built.push((id.clone(), img.clone()));
        st.image = img;
    }
    st.id = id;
    Ok(())
}
