//! Named crash points (issue 20): `failpoint!("area.step")` marks a place in a
//! multi-step change of state where a power cut must leave a store that
//! start-up repairs and `coracle check-store` finds consistent.
//!
//! The points exist only in builds with the `failpoints` feature or debug
//! assertions (the debug binary `cargo test` drives); in the release binary
//! the macro expands to nothing. At run time `CORACLE_FAILPOINT=name` (or
//! `name:N`, the Nth time that point is reached once start-up is over: hits
//! during start-up's own repairs are not counted) picks the one to fire: the
//! daemon (and, when a forked worker reaches it, the worker too) is killed
//! with SIGKILL right there, no destructor, no flush: a power cut.
//!
//! [`POINTS`] is the one list of every name: the macro refuses a name that is
//! not in it at compile time, and `tests/failpoints.rs` fails when a name in
//! it has no scenario.

/// Every failpoint, in one place.
#[cfg_attr(not(any(feature = "failpoints", debug_assertions)), allow(dead_code))] // read only where points are compiled in
pub const POINTS: &[&str] = &[
    // load / import / commit / build / pull, worker side (image/layout.rs, image/*)
    "layer.extracted",
    "layer.meta_written",
    "layer.synced",
    "layer.renamed",
    "layer.remove_renamed",
    "journal.written",
    "config.written",
    "pull.hold_written",
    "pull.hold_released",
    "import.layer_extracted",
    "commit.layer_extracted",
    // daemon side of an image job (store/images.rs, engine/commit.rs, engine/build.rs)
    "load.indexed",
    "load.refs_saved",
    "load.journal_removed",
    "commit.indexed",
    "build.step_indexed",
    "build.tagged",
    // tag, untag, image rm and prune (store/images.rs)
    "image.tag_saved",
    "image.untag_saved",
    "image.rm_refs_saved",
    "image.rm_config_removed",
    "image.rm_layer_removed",
    "image.prune_one",
    // every atomic file write (atomic.rs): pick one with name:N
    "atomic.temp_written",
    "atomic.temp_synced",
    "atomic.renamed",
    // containers (store/containers.rs, engine/{create,start,update,remove,tasks}.rs;
    // the create_* ones in the create's worker)
    "container.create_tmp",
    "container.create_record",
    "container.create_renamed",
    "container.create_done",
    "container.start_pending",
    "container.started",
    "container.saved",
    "container.renamed",
    "container.rm_renamed",
    "container.prune_one",
    "tree.delete_begin",
    // records fsynced off the loop (engine/records.rs): staged on the loop,
    // synced by a worker (or a start's child), renamed in by the loop
    "record.staged",
    "record.synced",
    "record.published",
    // volumes (store/volumes.rs)
    "volume.create_tmp",
    "volume.create_record",
    "volume.create_renamed",
    "volume.rm_renamed",
    // networks (store/networks.rs, engine/networks.rs)
    "network.saved",
    "network.create_recorded",
    "network.create_bridge_up",
    "network.rm_bridge_removed",
    "network.rm_record_removed",
    // json-file log rotation (stdio/jsonlog.rs)
    "log.rotate_renamed",
    "log.rotate_reopened",
];

/// Is `name` in [`POINTS`]? (const: the macro checks every name at compile time)
#[cfg_attr(not(any(feature = "failpoints", debug_assertions)), allow(dead_code))] // read only where points are compiled in
pub const fn known(name: &str) -> bool {
    let mut i = 0;
    while i < POINTS.len() {
        if str_eq(POINTS[i], name) {
            return true;
        }
        i += 1;
    }
    false
}

#[cfg_attr(not(any(feature = "failpoints", debug_assertions)), allow(dead_code))] // read only where points are compiled in
const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Mark a crash point. Nothing at all in the release binary.
#[macro_export]
macro_rules! failpoint {
    ($name:literal) => {
        #[cfg(any(feature = "failpoints", debug_assertions))]
        {
            const _: () = assert!($crate::failpoint::known($name), "unknown failpoint name");
            $crate::failpoint::hit($name);
        }
    };
}

#[cfg(any(feature = "failpoints", debug_assertions))]
pub use armed::{hit, init, started};

#[cfg(any(feature = "failpoints", debug_assertions))]
mod armed {
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// The point chosen by `CORACLE_FAILPOINT`, and on which hit it fires.
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    /// Start-up is over: hits count from here.
    static STARTED: AtomicBool = AtomicBool::new(false);
    /// The daemon's PID, recorded before any fork: a worker that fires
    /// takes the daemon down with it.
    static DAEMON: AtomicI32 = AtomicI32::new(0);

    fn target() -> &'static Option<(String, u64)> {
        TARGET.get_or_init(|| {
            let v = std::env::var("CORACLE_FAILPOINT").ok()?;
            let (name, n) = match v.rsplit_once(':') {
                Some((name, n)) => (name.to_string(), n.parse().ok().filter(|n| *n > 0)?),
                None => (v, 1),
            };
            Some((name, n))
        })
    }

    /// Read `CORACLE_FAILPOINT` and note the daemon's PID (call before any fork).
    pub fn init() {
        DAEMON.store(std::process::id() as i32, Ordering::Relaxed);
        if let Some((name, n)) = target() {
            log::warn!("failpoint {name} armed (hit {n})");
        }
    }

    /// Start-up is over (the daemon serves): count hits from now on.
    pub fn started() {
        STARTED.store(true, Ordering::SeqCst);
    }

    /// Reached a point: fire if it is the chosen one and this is its hit.
    pub fn hit(name: &str) {
        let Some((want, n)) = target() else { return };
        if !STARTED.load(Ordering::SeqCst) {
            return;
        }
        if want != name || HITS.fetch_add(1, Ordering::SeqCst) + 1 != *n {
            return;
        }
        let msg = format!("failpoint {name} fired in pid {}\n", std::process::id());
        let daemon = DAEMON.load(Ordering::Relaxed);
        // SAFETY: write(2) of a live buffer to fd 2, then kill(2): no memory
        // is touched; SIGKILL cannot be caught, so nothing after runs.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            if daemon > 0 && daemon != libc::getpid() {
                libc::kill(daemon, libc::SIGKILL);
            }
            libc::kill(libc::getpid(), libc::SIGKILL);
            libc::_exit(137);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_known() {
        let mut seen = std::collections::HashSet::new();
        for p in POINTS {
            assert!(seen.insert(*p), "duplicate failpoint {p}");
            assert!(known(p));
            assert!(p.contains('.'), "{p}: area.step");
        }
        assert!(!known("no.such"));
        assert!(POINTS.len() >= 40);
    }
}
