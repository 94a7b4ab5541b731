//! RUN, worker side: the build worker asks the daemon to run the step's
//! container (`{"run": create body}`) and waits for the answers on its own
//! pipe (`{"started"}`, then `{"exit"}`); meanwhile it tails the
//! container's json-file log into the build stream. On exit 0 the
//! container's upper dir is committed like any other step; the daemon
//! removes the container when asked (`{"remove": id}`) per `rm`/`forcerm`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::json;
use serde_json::Value;

use super::cache::cache_hit;
use super::context::BuildError;
use super::steps::{commit_ids, State, StepEnv};

/// What the request asks of RUN containers.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `rm` (default true): remove the container after a successful step.
    pub rm: bool,
    /// `forcerm`: remove it whatever the outcome.
    pub forcerm: bool,
    /// The create body's HostConfig (networkmode, memory, cpu..., shmsize,
    /// extrahosts).
    pub host_config: Value,
    /// The daemon's `--userns-remap` mapping, which RUN containers run
    /// with: their upper dirs hold host ids, committed as the container's.
    pub ids: Option<crate::runtime::userns::IdMap>,
}

/// The daemon's answers, one JSON object a line, read with a timeout.
pub struct Answers {
    file: File,
    pending: Vec<u8>,
}

impl Answers {
    pub fn new(file: File) -> Answers {
        Answers {
            file,
            pending: Vec::new(),
        }
    }

    /// The next answer, or None after `timeout_ms` without one.
    fn next(&mut self, timeout_ms: i32) -> Result<Option<Value>, BuildError> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| BuildError::Internal(format!("the daemon's answer: {e}")));
            }
            let mut pfd = libc::pollfd {
                fd: self.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
            if n == 0 {
                return Ok(None);
            }
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(BuildError::Internal(e.to_string()));
            }
            let mut buf = [0u8; 4096];
            match self.file.read(&mut buf) {
                Ok(0) => return Err(BuildError::Internal("the daemon went away".into())),
                Ok(k) => self.pending.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(BuildError::Internal(e.to_string())),
            }
        }
    }
}

/// The container's json-file log, followed from where we left off.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl LogTail {
    /// New complete lines' `log` texts.
    fn poll(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        let Ok(mut f) = File::open(&self.path) else {
            return out;
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return out;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.take(1 << 20).read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        self.partial.extend_from_slice(&buf);
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                if let Some(s) = v.get("log").and_then(Value::as_str) {
                    out.push(s.to_string());
                }
            }
        }
        out
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// The step's build args as dockerd passes them: declared ARGs with a
/// value that no ENV overrides, sorted by name, as `k=v`.
pub fn build_args(st: &State) -> Vec<String> {
    let env_keys: Vec<&str> = st
        .config
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|e| e.split_once('=').map_or(e, |(k, _)| k))
                .collect()
        })
        .unwrap_or_default();
    let mut m = BTreeMap::new();
    for (k, v) in &st.vars {
        if !env_keys.contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
    m.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// One RUN step: from the cache, or a container run and committed.
pub fn run_step(env: &mut StepEnv, st: &mut State, argv: Vec<String>) -> Result<(), BuildError> {
    let args = build_args(st);
    let cmd = argv.join(" ");
    let created_by = if args.is_empty() {
        cmd.clone()
    } else {
        format!("|{} {} {cmd}", args.len(), args.join(" "))
    };
    if cache_hit(env, st, &created_by) {
        return Ok(());
    }
    if st.id.is_empty() {
        return Err(BuildError::Invalid(
            "RUN needs an image to run in: FROM scratch has no shell".into(),
        ));
    }
    let opts = env.run.clone();
    let spec = json!({
        "Image": st.id,
        "Cmd": argv,
        "Entrypoint": [""],
        "Env": args,
        "Labels": {},
        "HostConfig": opts.host_config,
    });
    let Some(answers) = env.answers.as_mut() else {
        return Err(BuildError::Internal("RUN: no channel to the daemon".into()));
    };
    (env.report)(json!({ "run": spec }));
    let started = loop {
        if let Some(a) = answers.next(-1)? {
            break a;
        }
    };
    if let Some(e) = started.get("error").and_then(Value::as_str) {
        return Err(BuildError::Invalid(e.to_string()));
    }
    let cid = started["started"].as_str().unwrap_or("").to_string();
    let mut tail = LogTail {
        path: PathBuf::from(started["log"].as_str().unwrap_or("")),
        offset: 0,
        partial: Vec::new(),
    };
    (env.report)(json!({ "stream": format!(" ---> Running in {}\n", short(&cid)) }));
    let exit = loop {
        let a = answers.next(100)?;
        for line in tail.poll() {
            (env.report)(json!({ "stream": line }));
        }
        if let Some(a) = a {
            break a;
        }
    };
    for line in tail.poll() {
        (env.report)(json!({ "stream": line }));
    }
    let code = exit["exit"].as_i64().unwrap_or(-1) as i32;
    let result = if code == 0 {
        let upper = exit["upper"].as_str().unwrap_or("").to_string();
        let ids = opts.ids.clone();
        commit_ids(env, st, Some(Path::new(&upper)), created_by, ids)
    } else {
        Err(BuildError::RunFailed {
            code,
            message: format!("The command '{cmd}' returned a non-zero code: {code}"),
        })
    };
    if opts.forcerm || (opts.rm && result.is_ok()) {
        (env.report)(json!({ "remove": cid }));
        (env.report)(json!({
            "stream": format!("Removing intermediate container {}\n", short(&cid))
        }));
    }
    result
}
