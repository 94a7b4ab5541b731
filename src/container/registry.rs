//! The daemon's set of containers: lookup by ID, name or unique ID prefix,
//! the running process of each, and the exit codes of recently removed ones
//! (for `wait?condition=removed`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::Instant;

use nix::unistd::Pid;

use super::error::ContainerError;
use super::model::Container;
use crate::reply::ConnId;
use crate::runtime::cgroups::Cgroup;

/// Removed containers whose exit codes are remembered.
const TOMBSTONES: usize = 256;

/// A container's live process.
pub struct Live {
    pub pid: Pid,
    pub cgroup: Option<Cgroup>,
    /// OOM kills counted in its cgroup before this run.
    pub oom_before: u64,
    pub started: Instant,
}

pub struct Entry {
    pub c: Container,
    pub live: Option<Live>,
    /// Incremented at every exit: `wait?condition=next-exit` watches it.
    pub exits: u64,
    /// Remove as soon as the process is gone (`rm -f`, AutoRemove).
    pub remove_on_exit: bool,
    /// Start again once the process is gone (`restart`).
    pub start_on_exit: bool,
    /// A stop was requested through the API: its exit is a `stop` event.
    pub stop_requested: bool,
    /// The current restart back-off.
    pub restart_delay_ms: u64,
    /// Healthcheck state: memory only (an idle device writes nothing per
    /// probe); None until a start with a healthcheck.
    pub health: Option<crate::container::health::Health>,
    /// The probe running now: its host pid and the read end of its output.
    pub probe: Option<Probe>,
    /// A `pause` waits for the freezer until this instant (polled by a timer).
    pub freezing: Option<std::time::Instant>,
    /// Why the last `pause` failed (the freezer did not freeze).
    pub freeze_error: Option<String>,
    /// Changes whenever the entry may have changed (every `get_mut`,
    /// `rename`, `insert`): the key of its cached JSON (`engine/views.rs`).
    pub gen: u64,
}

/// A healthcheck probe in flight.
pub struct Probe {
    pub pid: Pid,
    pub output: std::os::fd::OwnedFd,
    pub start: std::time::SystemTime,
    /// The same moment on the monotonic clock.
    pub began: std::time::Instant,
    /// Killed at its timeout: its exit is recorded as the timeout.
    pub timed_out: bool,
}

impl Entry {
    pub fn new(c: Container) -> Entry {
        Entry {
            c,
            live: None,
            exits: 0,
            remove_on_exit: false,
            start_on_exit: false,
            stop_requested: false,
            restart_delay_ms: 0,
            health: None,
            probe: None,
            freezing: None,
            freeze_error: None,
            gen: 0,
        }
    }
}

#[derive(Default)]
pub struct Registry {
    map: BTreeMap<String, Entry>,
    names: HashMap<String, String>,
    tombstones: VecDeque<(String, i32)>,
    /// Connections waiting for some container to change state.
    pub waiters: HashSet<ConnId>,
    /// The last `Entry::gen` handed out; also bumped by `remove`.
    gen: u64,
}

impl Registry {
    pub fn insert(&mut self, mut e: Entry) {
        self.gen += 1;
        e.gen = self.gen;
        self.names.insert(e.c.name.clone(), e.c.id.clone());
        self.map.insert(e.c.id.clone(), e);
    }

    /// Forget a container, remembering its last exit code.
    pub fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.map.remove(id)?;
        self.gen += 1;
        self.names.remove(&e.c.name);
        if self.tombstones.len() == TOMBSTONES {
            self.tombstones.pop_front();
        }
        self.tombstones
            .push_back((id.to_string(), e.c.state.exit_code));
        Some(e)
    }

    pub fn removed_exit_code(&self, id: &str) -> Option<i32> {
        self.tombstones
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map(|(_, c)| *c)
    }

    /// Resolve an ID, a name (with or without '/'), or a unique ID prefix,
    /// in dockerd's order of precedence.
    pub fn resolve(&self, key: &str) -> Result<String, ContainerError> {
        if key.is_empty() {
            return Err(ContainerError::NotFound(key.to_string()));
        }
        if self.map.contains_key(key) {
            return Ok(key.to_string());
        }
        let name = if key.starts_with('/') {
            key.to_string()
        } else {
            format!("/{key}")
        };
        if let Some(id) = self.names.get(&name) {
            return Ok(id.clone());
        }
        let mut hits = self.map.keys().filter(|id| id.starts_with(key));
        match (hits.next(), hits.next()) {
            (Some(id), None) => Ok(id.clone()),
            (Some(_), Some(_)) => Err(ContainerError::Invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
            _ => Err(ContainerError::NotFound(key.to_string())),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Entry> {
        self.map.get(id)
    }

    /// A mutable entry: its cached JSON is stale from now on.
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        self.gen += 1;
        let e = self.map.get_mut(id)?;
        e.gen = self.gen;
        Some(e)
    }

    /// Look up by any key and return the entry.
    pub fn find(&self, key: &str) -> Result<&Entry, ContainerError> {
        let id = self.resolve(key)?;
        self.map
            .get(&id)
            .ok_or(ContainerError::NotFound(key.to_string()))
    }

    pub fn name_owner(&self, name: &str) -> Option<&String> {
        self.names.get(name)
    }

    pub fn rename(&mut self, id: &str, new_name: &str) {
        self.gen += 1;
        if let Some(e) = self.map.get_mut(id) {
            e.gen = self.gen;
            self.names.remove(&e.c.name);
            e.c.name = new_name.to_string();
            self.names.insert(new_name.to_string(), id.to_string());
        }
    }

    pub fn by_pid(&self, pid: Pid) -> Option<String> {
        self.map
            .iter()
            .find(|(_, e)| e.live.as_ref().is_some_and(|l| l.pid == pid))
            .map(|(id, _)| id.clone())
    }

    /// Changes whenever any entry may have changed, or was added or removed
    /// (the key of the cached list bodies, `engine/views.rs`).
    pub fn changes(&self) -> u64 {
        self.gen
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.map.values()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// A container using an image (image removal refuses, or must force).
    pub fn using_image(&self, image_id: &str) -> Option<ContainerUse> {
        self.map
            .values()
            .find(|e| e.c.image == image_id)
            .map(|e| ContainerUse {
                container_id: e.c.id.clone(),
                running: e.c.state.is_alive(),
            })
    }
}

/// How a container uses an image, as reported by the container store.
#[derive(Debug, Clone)]
pub struct ContainerUse {
    pub container_id: String,
    pub running: bool,
}
