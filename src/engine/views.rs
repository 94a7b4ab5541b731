//! Each container's JSON as last served: its `docker ps` row (all but the
//! time-dependent `Status`) and its inspect body, for one API version.
//! `api/container_json.rs` fills and serves them; a view is valid while
//! the container's `Entry::gen` (bumped by every mutable access to the
//! entry), its log loss count and the engine-wide `epoch` (bumped by every
//! event: networks, execs, ports and images live outside the entry) are
//! those it was made at.

use std::collections::HashMap;

#[derive(Default)]
pub struct Views {
    /// Bumped by every published event.
    pub epoch: u64,
    map: HashMap<String, View>,
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

    /// Drop the views of containers that are gone, once they are at least
    /// half of all views (removed containers cost memory for a bounded time).
    pub fn prune(&mut self, live: usize, exists: impl Fn(&str) -> bool) {
        if self.map.len() > 2 * live + 8 {
            self.map.retain(|id, _| exists(id));
        }
    }
}
