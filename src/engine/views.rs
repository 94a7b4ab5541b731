//! Each container's JSON as last served: its `docker ps` row (all but the
//! time-dependent `Status`) and its inspect body, for one API version.
//! `api/container_json.rs` fills and serves them; a view is valid while
//! the container's `Entry::gen` (bumped by every mutable access to the
//! entry), its log loss count and the engine-wide `epoch` (bumped by every
//! event: networks, execs, ports and images live outside the entry) are
//! those it was made at.
//!
//! Whole `GET /containers/json` bodies are kept too, for the few queries
//! asked last (`list_body`): valid while no container changed
//! (`Registry::changes`), no event was published and the wall-clock second
//! (every row's `Status` counts in seconds) is the one they were built in.

use std::collections::HashMap;
use std::rc::Rc;

/// Whole list bodies kept at most, and their bytes at most (the newest is
/// kept whatever its size).
const LISTS: usize = 4;
const LIST_BYTES: usize = 1 << 20;

#[derive(Default)]
pub struct Views {
    /// Bumped by every published event.
    pub epoch: u64,
    map: HashMap<String, View>,
    /// (registry changes, epoch, second) the bodies in `lists` were built at.
    lists_at: (u64, u64, i64),
    /// (query key, body), newest last; shared with the responses that
    /// serve them.
    lists: Vec<(String, Rc<[u8]>)>,
}

#[derive(Default)]
pub struct View {
    gen: u64,
    epoch: u64,
    /// The container's log loss count (lines, bytes) the view shows: it
    /// changes with no event and no entry access.
    loss: (u64, u64),
    version: (u16, u16),
    /// The `ps` row without `Status`, serialized, minus its opening `{`.
    pub row_rest: Option<String>,
    /// The inspect body (without `size`), serialized, newline-terminated.
    pub inspect: Option<Vec<u8>>,
}

impl Views {
    /// The view of container `id` at `gen` with log loss `loss` for
    /// `version`: emptied first when anything it was made from has changed.
    pub fn of(&mut self, id: &str, gen: u64, loss: (u64, u64), version: (u16, u16)) -> &mut View {
        let epoch = self.epoch;
        let v = self.map.entry(id.to_string()).or_default();
        if v.gen != gen || v.epoch != epoch || v.loss != loss || v.version != version {
            *v = View {
                gen,
                epoch,
                loss,
                version,
                row_rest: None,
                inspect: None,
            };
        }
        v
    }

    /// The list body served for `query` at this registry state (`changes`)
    /// and wall-clock second, if one was kept.
    pub fn list_body(&mut self, changes: u64, second: i64, query: &str) -> Option<Rc<[u8]>> {
        if self.lists_at != (changes, self.epoch, second) {
            self.lists_at = (changes, self.epoch, second);
            self.lists.clear();
            return None;
        }
        let (_, body) = self.lists.iter().find(|(q, _)| q == query)?;
        Some(body.clone())
    }

    /// Keep the list body just built for `query` at `changes` and `second`;
    /// returns it, shared.
    pub fn keep_list_body(
        &mut self,
        changes: u64,
        second: i64,
        query: String,
        body: Vec<u8>,
    ) -> Rc<[u8]> {
        if self.lists_at != (changes, self.epoch, second) {
            self.lists_at = (changes, self.epoch, second);
            self.lists.clear();
        }
        self.lists.retain(|(q, _)| *q != query);
        let mut bytes: usize = self.lists.iter().map(|(_, b)| b.len()).sum();
        while !self.lists.is_empty()
            && (self.lists.len() >= LISTS || bytes + body.len() > LIST_BYTES)
        {
            bytes -= self.lists.remove(0).1.len();
        }
        let body: Rc<[u8]> = body.into();
        self.lists.push((query, body.clone()));
        body
    }

    /// Drop the views of containers that are gone, once they are at least
    /// half of all views (removed containers cost memory for a bounded time).
    pub fn prune(&mut self, live: usize, exists: impl Fn(&str) -> bool) {
        if self.map.len() > 2 * live + 8 {
            self.map.retain(|id, _| exists(id));
        }
    }
}
