//! The steps of a build that need no container, worker side: FROM, the
//! metadata instructions and COPY/ADD of context files. Each step is a
//! commit (`image::commit`) of a scratch upper dir (empty for metadata)
//! on the previous image, reported as it is made. RUN needs a container
//! run by the engine and is refused for now.

use std::fs;
use std::os::unix::fs::{lchown, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use super::context::BuildError;
use super::dockerfile::{CmdLine, Command, Dockerfile, Instruction};
use super::shellwords::{process_word, process_words};
use crate::image::archive_load::LoadSummary;
use crate::image::commit::{commit_container, CommitOptions};
use crate::image::import::apply_changes;
use crate::image::layer_extract::Budget;
use crate::image::layout::Layout;

/// What the steps need from the daemon's side.
pub struct StepEnv<'a> {
    pub layout: &'a Layout,
    /// A FROM image by name: (ID, full image config).
    pub resolve: &'a dyn Fn(&str) -> Result<(String, Value), String>,
    /// Progress: `{"stream":..}` lines and `{"image": summary}` records.
    pub report: &'a mut dyn FnMut(Value),
    pub buildargs: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub target: String,
    /// The extracted context.
    pub context: PathBuf,
}

fn say(env: &mut StepEnv, text: String) {
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
struct State {
    id: String,
    image: Value,
    config: Map<String, Value>,
    vars: Vec<(String, String)>,
    shell: Vec<String>,
}

/// Run every stage up to the target; the final image's ID.
pub fn run(df: &Dockerfile, env: &mut StepEnv) -> Result<String, BuildError> {
    let last = df.up_to_target(&env.target).map_err(invalid)?;
    let total: usize = df.stages[..last].iter().map(|s| 1 + s.steps.len()).sum();
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
    let mut done: Vec<(Option<String>, String, Value)> = Vec::new();
    let mut n = 0;
    let mut final_id = String::new();
    for stage in &df.stages[..last] {
        n += 1;
        say(env, format!("Step {n}/{total} : {}\n", stage.from.original));
        let Command::From { image, .. } = &stage.from.command else {
            return Err(invalid("no FROM"));
        };
        let name = process_word(image, &meta, esc).map_err(invalid)?;
        let (id, img) = if name.eq_ignore_ascii_case("scratch") {
            (String::new(), json!({"config": {}}))
        } else if let Some((_, id, img)) = done
            .iter()
            .find(|(n, _, _)| n.as_deref() == Some(name.to_ascii_lowercase().as_str()))
        {
            (id.clone(), img.clone())
        } else {
            (env.resolve)(&name).map_err(BuildError::Invalid)?
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
            shell: vec!["/bin/sh".into(), "-c".into()],
        };
        for ins in &stage.steps {
            n += 1;
            say(env, format!("Step {n}/{total} : {}\n", ins.original));
            step(env, &mut st, ins, esc, &meta)?;
            say(env, format!(" ---> {}\n", short(&st.id)));
        }
        if !env.labels.is_empty() && std::ptr::eq(stage, &df.stages[last - 1]) {
            let labels = env.labels.clone();
            let mut l = st
                .config
                .get("Labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (k, v) in labels {
                l.insert(k, json!(v));
            }
            st.config.insert("Labels".into(), Value::Object(l));
            commit(env, &mut st, None)?;
        }
        if st.id.is_empty() {
            return Err(invalid("No image was generated. Is your Dockerfile empty?"));
        }
        final_id = st.id.clone();
        done.push((stage.name().map(str::to_string), st.id, st.image));
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
    let argv_json = |c: &CmdLine, shell: &[String]| json!(c.argv(shell)).to_string();
    let change = match &ins.command {
        Command::From { .. } => return Err(invalid("FROM inside a stage")),
        Command::Run(_) => {
            return Err(BuildError::Invalid(
                "RUN is not supported by this daemon's builder yet (issue 17)".into(),
            ))
        }
        Command::Cmd(c) => format!("CMD {}", argv_json(c, &st.shell)),
        Command::Entrypoint(c) => format!("ENTRYPOINT {}", argv_json(c, &st.shell)),
        Command::Shell(v) => {
            st.shell = v.clone();
            return commit(env, st, None);
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
            return commit(env, st, None);
        }
        Command::Maintainer(m) => {
            st.image["author"] = json!(m);
            return commit(env, st, None);
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
            format!("VOLUME {}", json!(v))
        }
        Command::Healthcheck(h) => {
            let flags: String = h.flags.iter().map(|(k, v)| format!("--{k}={v} ")).collect();
            match &h.test {
                None => "HEALTHCHECK NONE".to_string(),
                Some(CmdLine::Json(v)) => format!("HEALTHCHECK {flags}CMD {}", json!(v)),
                Some(CmdLine::Shell(s)) => format!("HEALTHCHECK {flags}CMD {s}"),
            }
        }
        Command::Onbuild(t) => format!("ONBUILD {t}"),
        Command::Copy(a) | Command::Add(a) => {
            if a.from.is_some() {
                return Err(invalid(
                    "COPY --from is not supported by this daemon's builder yet",
                ));
            }
            let srcs: Vec<String> = a.srcs.iter().map(|s| w(s)).collect::<Result<_, _>>()?;
            let dest = w(&a.dest)?;
            let owner = match &a.chown {
                None => None,
                Some(c) => Some(numeric_owner(&w(c)?)?),
            };
            let upper = env.layout.new_temp_dir()?;
            let res = copy_into(env, st, &upper, &srcs, &dest, owner);
            let res = res.and_then(|()| commit(env, st, Some(&upper)));
            let _ = fs::remove_dir_all(&upper);
            return res;
        }
    };
    apply_changes(&mut st.config, &[change]).map_err(invalid)?;
    commit(env, st, None)
}

fn numeric_owner(spec: &str) -> Result<(u32, u32), BuildError> {
    let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
    match (u.parse(), g.parse()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => Err(invalid(format!(
            "--chown={spec}: only numeric IDs are supported by this daemon's builder"
        ))),
    }
}

/// Copy context sources into `upper` at `dest` (WORKDIR-relative).
fn copy_into(
    env: &StepEnv,
    st: &State,
    upper: &Path,
    srcs: &[String],
    dest: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), BuildError> {
    let wd = st
        .config
        .get("WorkingDir")
        .and_then(Value::as_str)
        .unwrap_or("/");
    let abs = if dest.starts_with('/') {
        dest.to_string()
    } else {
        format!("{}/{dest}", wd.trim_end_matches('/'))
    };
    let dir_dest = dest.ends_with('/') || srcs.len() > 1;
    let target = upper.join(super::dockerignore::clean(&abs).trim_start_matches('/'));
    for src in srcs {
        let rel = super::dockerignore::clean(src)
            .trim_start_matches('/')
            .to_string();
        if rel.starts_with("..") {
            return Err(invalid(format!(
                "forbidden path outside the build context: {src} ()"
            )));
        }
        let from = env.context.join(&rel);
        let meta = fs::symlink_metadata(&from).map_err(|_| {
            invalid(format!("COPY failed: file not found in build context or excluded by .dockerignore: stat {rel}: file does not exist"))
        })?;
        let to = if meta.is_dir() {
            target.clone()
        } else if dir_dest {
            target.join(from.file_name().unwrap_or_default())
        } else {
            target.clone()
        };
        copy_tree(&from, &to, owner)?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), BuildError> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    let meta = fs::symlink_metadata(from)?;
    if meta.is_dir() {
        fs::create_dir_all(to)?;
        fs::set_permissions(to, fs::Permissions::from_mode(meta.permissions().mode()))?;
        for e in fs::read_dir(from)? {
            let e = e?;
            copy_tree(&e.path(), &to.join(e.file_name()), owner)?;
        }
    } else if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
    } else {
        fs::copy(from, to)?;
    }
    let (u, g) = owner.unwrap_or((0, 0));
    lchown(to, Some(u), Some(g))?;
    Ok(())
}

/// Commit the state's config (and `upper`'s files) as a child image.
fn commit(env: &mut StepEnv, st: &mut State, upper: Option<&Path>) -> Result<(), BuildError> {
    let opts = CommitOptions {
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
        st.image = img;
    }
    st.id = id;
    Ok(())
}
