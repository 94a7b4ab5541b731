//! The daemon's core state, shared by every handler: configuration, the
//! event bus, identity. It knows nothing of HTTP; handlers in `api/` turn
//! requests into calls on it.

pub mod archive;
pub mod build;
mod build_cache;
pub mod build_job;
pub mod commit;
mod create;
mod endpoints;
mod exec;
mod exit;
mod health;
pub mod images;
mod launching;
mod links;
pub mod networks;
mod ports;
pub mod pull;
pub mod push;
mod records;
mod recover;
mod remove;
mod start;
mod start_config;
pub mod stats;
mod stop;
mod tasks;
mod update;
mod userns;
pub mod views;
mod volumes;
pub use volumes::VolumeError;

use std::io::Read;
use std::path::Path;

use crate::atomic;
use crate::config::Config;
use crate::container::registry::Registry;
use crate::events::{Event, EventBus};
use crate::image::layout::Layout;
use crate::reply::{ConnId, Wake};
use crate::stdio::output::Outputs;
use crate::store::containers::ContainerDirs;
use crate::store::images::ImageStore;
use crate::timers::Timers;
use crate::worker::Workers;

/// A response whose long parts run against the engine.
pub type Response = crate::reply::Response<Engine>;

pub struct Engine {
    pub config: Config,
    pub events: EventBus,
    /// Persistent daemon ID (a UUID, as dockerd uses).
    pub id: String,
    pub images: ImageStore,
    pub containers: Registry,
    pub execs: crate::container::exec::Execs,
    pub container_dirs: ContainerDirs,
    /// Running containers' stdio.
    pub outputs: Outputs,
    pub timers: Timers,
    /// SIGTERM received: no more policy restarts.
    pub shutting_down: bool,
    /// Forked jobs (archive extraction and writing).
    pub workers: Workers,
    /// Connections whose streams have news (the loop drives them) and
    /// engine tasks ready for their next step.
    wakes: Vec<Wake>,
    /// Multi-step jobs no connection owns (a slot is None while it runs).
    tasks: crate::slab::Slab<Option<Box<dyn tasks::Task>>>,
    /// Volumes of the local driver (`store/volumes.rs`).
    pub volumes: crate::store::volumes::VolumeStore,
    /// Containers whose anonymous volumes go with them (`rm -v`).
    rm_volumes_of: std::collections::HashSet<String>,
    /// API tokens and the audit log (the gate is `api/guard.rs`).
    pub access: crate::access::Access,
    /// Networks: records, IPAM, host locks.
    pub networks: networks::Networks,
    /// The DNS responder on user networks' gateways.
    pub dns: crate::network::dns::Dns,
    /// Published ports: reservations, the firewall, the userland proxy.
    pub ports: ports::Ports,
    /// Each container's cached `ps` row and inspect body.
    pub views: views::Views,
    /// Container launches whose setup has not reported yet.
    pub launches: launching::Launches,
    /// `--userns-remap`: the mapping of containers not run with `--userns host`.
    pub userns: Option<crate::runtime::userns::IdMap>,
    /// Builds running (`docker build`), each driven by an engine task.
    builds: crate::slab::Slab<build_job::BuildJob>,
    /// Container records staged on the loop, fsynced off it (`tasks.rs`).
    records: records::Records,
    /// Container creates whose directory a worker is writing (`create.rs`).
    creates: create::Creates,
}

impl Engine {
    /// Prepare the data root and load persistent identity.
    pub fn open(config: Config, registry: mio::Registry) -> Result<Engine, String> {
        let root = &config.data_root;
        std::fs::create_dir_all(root)
            .map_err(|e| format!("create data root {}: {e}", root.display()))?;
        // Like dockerd: the root is traversable but not listable by others.
        let _ = std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o711));
        let removed = atomic::remove_temp_leftovers(root).unwrap_or(0);
        if removed > 0 {
            log::info!("removed {removed} unfinished temporary files from an earlier run");
        }
        let id = load_or_create_id(&root.join("engine-id"))?;
        // Before the store collects unreferenced layers: abandoned pulls.
        crate::distribution::cleanup::sweep(&Layout::new(root), std::time::SystemTime::now());
        let images = ImageStore::open(Layout::new(root))
            .map_err(|e| format!("open image store under {}: {e}", root.display()))?;
        let container_dirs = ContainerDirs::new(root)
            .map_err(|e| format!("open container store under {}: {e}", root.display()))?;
        let volumes = crate::store::volumes::VolumeStore::open(root)
            .map_err(|e| format!("open volume store under {}: {e}", root.display()))?;
        let networks = networks::Networks::open(root)?;
        let userns = crate::engine::userns::open(&config)?;
        let mut volumes = volumes;
        volumes.owner = userns.as_ref().map(|m| (m.root_uid(), m.root_gid()));
        let dns = crate::network::dns::Dns::new(
            registry
                .try_clone()
                .map_err(|e| format!("event loop: {e}"))?,
            |i| crate::reactor::Source::Dns(i).token(),
        );
        let ports = ports::Ports::new(
            registry
                .try_clone()
                .map_err(|e| format!("event loop: {e}"))?,
        );
        let outputs = Outputs::new(
            registry
                .try_clone()
                .map_err(|e| format!("event loop: {e}"))?,
        );
        let launches = launching::Launches::new(
            registry
                .try_clone()
                .map_err(|e| format!("event loop: {e}"))?,
        );
        let mut engine = Engine {
            config,
            events: EventBus::default(),
            id,
            workers: Workers::new(registry),
            images,
            containers: Registry::default(),
            execs: Default::default(),
            container_dirs,
            outputs,
            timers: Timers::default(),
            shutting_down: false,
            wakes: Vec::new(),
            tasks: Default::default(),
            volumes,
            rm_volumes_of: Default::default(),
            access: Default::default(),
            networks,
            dns,
            ports,
            views: Default::default(),
            launches,
            userns,
            builds: Default::default(),
            records: Default::default(),
            creates: Default::default(),
        };
        engine.networks_open()?;
        engine.recover_containers();
        Ok(engine)
    }

    /// Ask the loop to drive `conn` (its stream has something new).
    pub fn wake(&mut self, conn: ConnId) {
        self.wakes.push(Wake::Conn(conn));
    }

    /// Wake a connection or a task.
    pub fn wake_target(&mut self, w: Wake) {
        self.wakes.push(w);
    }

    /// Whether anything waits in the wake list (the loop must not sleep).
    pub fn has_wakes(&self) -> bool {
        !self.wakes.is_empty()
    }

    /// Run the woken tasks' next steps, then hand the loop the connections
    /// to drive.
    pub fn take_wakes(&mut self) -> Vec<ConnId> {
        let mut conns = Vec::new();
        // A task's step may wake further tasks: run until none is left.
        for _round in 0..8 {
            let mut w = std::mem::take(&mut self.wakes);
            crate::sort::sort(&mut w);
            w.dedup();
            let mut ran = false;
            for x in w {
                match x {
                    Wake::Conn(c) => conns.push(c),
                    Wake::Task(t) => {
                        ran = true;
                        self.run_task(t);
                    }
                }
            }
            if !ran {
                break;
            }
        }
        crate::sort::sort(&mut conns);
        conns.dedup();
        conns
    }

    /// SIGCHLD arrived: reap every exited child and tell its owner.
    pub fn on_children_exited(&mut self) {
        for (pid, status) in crate::worker::reap() {
            if let Some(exited) = self.workers.on_exit(pid, status) {
                match exited {
                    crate::worker::Exited::Owner(w) => self.wake_target(w),
                    crate::worker::Exited::Killed(pid) => {
                        self.images.remove_worker_temps(pid.as_raw())
                    }
                }
            } else {
                let code = crate::container::policy::exit_code(status);
                let known = self.launch_child_exited(pid, status)
                    || self.on_probe_exit(pid, code)
                    || self.on_exec_exit(pid, code)
                    || self.on_container_exit(pid, status);
                if !known {
                    log::debug!("reaped unknown child {pid}");
                }
            }
        }
    }

    /// Readiness on a container's output pipes.
    pub fn on_output_ready(&mut self, slot: usize) {
        for conn in self.outputs.on_output_ready(slot) {
            self.wake(conn);
        }
    }

    /// Room in a container's stdin pipe.
    pub fn on_stdin_ready(&mut self, slot: usize) {
        if let Some(conn) = self.outputs.on_stdin_ready(slot) {
            self.wake(conn);
        }
    }

    /// Output pumping left over from the last loop turn.
    pub fn pump_unfinished_output(&mut self) {
        for conn in self.outputs.pump_unfinished() {
            self.wake(conn);
        }
    }

    /// Run engine timers that are due.
    pub fn run_timers(&mut self, now: std::time::Instant) {
        for t in self.timers.due(now) {
            self.on_timer(t);
        }
        self.proxy_expire(now);
    }

    /// Readiness on a worker's pipe.
    pub fn on_worker_ready(&mut self, id: crate::worker::WorkerId) {
        if let Some(w) = self.workers.on_ready(id) {
            self.wake_target(w);
        }
    }

    pub fn publish(&mut self, event: Event) {
        // Every event may change what a container's JSON shows from outside
        // its entry (networks, execs, ports, images).
        self.views.epoch += 1;
        let woken = self.events.publish(event);
        self.wakes.extend(woken.into_iter().map(Wake::Conn));
    }
}

/// Helpers the verbs share.
impl Engine {
    /// Attributes dockerd puts on container events.
    pub fn container_event(&mut self, id: &str, action: &str, extra: &[(&str, String)]) {
        let Some(e) = self.containers.get(id) else {
            return;
        };
        let mut ev = Event::new("container", action, id)
            .attr("image", &e.c.config.image)
            .attr("name", e.c.name.trim_start_matches('/'));
        for (k, v) in &e.c.config.labels {
            ev = ev.attr(k, v);
        }
        for (k, v) in extra {
            ev = ev.attr(k, v);
        }
        self.publish(ev);
    }

    pub(super) fn wake_container_waiters(&mut self) {
        let waiters: Vec<_> = self.containers.waiters.iter().copied().collect();
        for w in waiters {
            self.wake(w);
        }
    }

    pub(super) fn persist(&mut self, id: &str) {
        // This record supersedes one staged for a worker's fsync.
        self.drop_staged_record(id);
        if let Some(e) = self.containers.get(id) {
            if let Err(err) = self.container_dirs.save(&e.c) {
                log::error!(
                    "persist container {}: {err}",
                    crate::container::names::short(id)
                );
            }
        }
    }
}

fn load_or_create_id(path: &Path) -> Result<String, String> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let id = text.trim();
        if is_uuid(id) {
            return Ok(id.to_string());
        }
        log::warn!("{} is corrupt; creating a new daemon ID", path.display());
    }
    let id = new_uuid().map_err(|e| format!("read /dev/urandom: {e}"))?;
    atomic::write_file(path, id.as_bytes())
        .map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(id)
}

fn new_uuid() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_persists() {
        let dir = std::env::temp_dir().join(format!("coracle-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("engine-id");
        let a = load_or_create_id(&p).unwrap();
        assert!(is_uuid(&a), "{a}");
        assert_eq!(load_or_create_id(&p).unwrap(), a);
        std::fs::write(&p, "garbage").unwrap();
        assert_ne!(load_or_create_id(&p).unwrap(), a);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
