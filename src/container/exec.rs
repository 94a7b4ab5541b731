//! `docker exec`: extra processes in a running container. The process is the
//! daemon's own child inside the container's namespaces and cgroup; its
//! stdio goes through the same output pump as a container's, keyed by the
//! exec ID.

use std::collections::HashMap;

use serde::Deserialize;

use crate::reply::ConnId;

/// Finished exec records kept for inspection, per daemon.
const KEEP_FINISHED: usize = 256;
/// Exec instances created but not started, per container.
pub const MAX_UNSTARTED: usize = 64;
/// Longest command text put in an event's action.
const MAX_ACTION_CMD: usize = 256;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub detach_keys: String,
    pub tty: bool,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
    pub console_size: Option<Vec<u16>>,
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

pub struct ExecInstance {
    pub id: String,
    pub container: String,
    pub config: ExecConfig,
    pub started: bool,
    pub running: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
    /// The connection streaming its output, woken when it exits.
    pub attached: Option<ConnId>,
    /// Creation order, for trimming old records.
    pub(crate) seq: u64,
}

#[derive(Default)]
pub struct Execs {
    pub(crate) map: HashMap<String, ExecInstance>,
    pub(crate) next_seq: u64,
}

impl Execs {
    pub fn get(&self, id: &str) -> Option<&ExecInstance> {
        self.map.get(id)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut ExecInstance> {
        self.map.get_mut(id)
    }

    pub(crate) fn by_pid(&self, pid: i32) -> Option<String> {
        self.map
            .values()
            .find(|e| e.running && e.pid == pid)
            .map(|e| e.id.clone())
    }

    /// IDs of a container's running execs (for inspect's ExecIDs).
    pub fn of_container(&self, container: &str) -> Vec<String> {
        self.map
            .values()
            .filter(|e| e.container == container && e.running)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Forget a removed container's execs.
    pub fn remove_container(&mut self, container: &str) {
        self.map.retain(|_, e| e.container != container);
    }

    pub(crate) fn unstarted(&self, container: &str) -> usize {
        self.map
            .values()
            .filter(|e| e.container == container && !e.started)
            .count()
    }

    pub(crate) fn trim(&mut self) {
        let finished = self.map.values().filter(|e| e.exit_code.is_some()).count();
        if finished <= KEEP_FINISHED {
            return;
        }
        let mut old: Vec<(u64, String)> = self
            .map
            .values()
            .filter(|e| e.exit_code.is_some())
            .map(|e| (e.seq, e.id.clone()))
            .collect();
        crate::sort::sort(&mut old);
        for (_, id) in old.into_iter().take(finished - KEEP_FINISHED) {
            self.map.remove(&id);
        }
    }
}

/// `exec_start: sh -c ...`, the command cut short so one event stays small.
pub fn action(prefix: &str, cmd: &[String]) -> String {
    let mut text = cmd.join(" ");
    if text.len() > MAX_ACTION_CMD {
        let mut end = MAX_ACTION_CMD;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    format!("{prefix}: {text}")
}
