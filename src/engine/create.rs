//! `docker create`: a container record from the request and its image.

use std::collections::VecDeque;

use super::tasks::Task;
use super::Engine;
use crate::container::create;
use crate::container::error::ContainerError;
use crate::container::model::{Container, State};
use crate::container::names;
use crate::container::policy::{image_display, now, resources_of};
use crate::container::registry::Entry;
use crate::reply::{TaskId, Wake};
use crate::worker::{Outcome, WorkerId};

/// What a create answers: the ID and the warnings.
pub type Created = Result<(String, Vec<String>), ContainerError>;

/// Creates whose directory a worker is writing and syncing (the loop does
/// not fsync): their names reserved, their outcomes kept for the answer.
#[derive(Default)]
pub struct Creates {
    next: u64,
    inflight: Vec<InFlight>,
    outcomes: VecDeque<(u64, Created)>,
}

struct InFlight {
    seq: u64,
    c: Container,
    warnings: Vec<String>,
}

/// The task owning a create's worker: a client that leaves does not stop
/// it, so a crash leaves the whole container or nothing, and no crash
/// leaves one the daemon forgot.
struct CreateDir {
    worker: WorkerId,
    seq: u64,
}

impl Task for CreateDir {
    fn step(&mut self, engine: &mut Engine, _me: TaskId) -> bool {
        engine.workers.take_messages(self.worker);
        let written = match engine.workers.take_outcome(self.worker) {
            None => return false,
            Some(Outcome::Done(_)) => Ok(()),
            Some(Outcome::Failed(v)) => Err(ContainerError::Internal(
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| crate::json::text(&v)),
            )),
            Some(Outcome::Died(m)) => Err(ContainerError::Internal(m)),
        };
        let Some(i) = engine
            .creates
            .inflight
            .iter()
            .position(|f| f.seq == self.seq)
        else {
            return true;
        };
        let f = engine.creates.inflight.swap_remove(i);
        let outcome = engine.create_finish(f.c, f.warnings, written);
        let outcomes = &mut engine.creates.outcomes;
        if outcomes.len() >= 256 {
            outcomes.pop_front();
        }
        outcomes.push_back((self.seq, outcome));
        engine.wake_container_waiters();
        true
    }
}

impl Engine {
    /// `POST /containers/create` as the API runs it: checked and planned
    /// now (a refusal is immediate), the directory written and fsynced by
    /// a worker, the container registered once it reports. Returns the
    /// number whose outcome (`create_outcome`) the answer waits for.
    pub fn container_create_later(
        &mut self,
        body: &[u8],
        name: Option<&str>,
    ) -> Result<u64, ContainerError> {
        let (c, warnings, etc, mut span) = self.create_plan(body, name)?;
        self.creates.next += 1;
        let seq = self.creates.next;
        let task = self.reserve_task();
        let dirs = self.container_dirs.clone();
        let (record, files) = (c.clone(), etc.clone());
        let spawned = self.workers.spawn(Wake::Task(task), move |_input, _out| {
            dirs.create(&record, &files)
                .map(|()| serde_json::Value::Null)
                .map_err(|e| crate::json!(crate::goerr::io_text(&e)))
        });
        span.phase("worker-spawn");
        match spawned {
            Ok(worker) => {
                self.creates.inflight.push(InFlight { seq, c, warnings });
                self.fill_task(task, Box::new(CreateDir { worker, seq }));
            }
            Err(e) => {
                // No worker (fork refused): written here, as before.
                self.tasks.remove(task);
                log::warn!("create: no worker ({e}); writing the container here");
                let written = self.container_dirs.create(&c, &etc).map_err(Into::into);
                let outcome = self.create_finish(c, warnings, written);
                self.creates.outcomes.push_back((seq, outcome));
            }
        }
        Ok(seq)
    }

    /// The outcome of create `seq`, once (None: still being written).
    pub fn create_outcome(&mut self, seq: u64) -> Option<Created> {
        let i = self.creates.outcomes.iter().position(|(s, _)| *s == seq)?;
        self.creates.outcomes.remove(i).map(|(_, r)| r)
    }

    /// A create on the loop, its fsyncs included (a build's RUN container,
    /// whose step waits for it anyway).
    pub fn container_create(&mut self, body: &[u8], name: Option<&str>) -> Created {
        let (c, warnings, etc, mut span) = self.create_plan(body, name)?;
        let written = self.container_dirs.create(&c, &etc).map_err(Into::into);
        span.phase("store");
        self.create_finish(c, warnings, written)
    }

    /// The container whose name is `name`, or whose create reserved it.
    pub(super) fn name_owner(&self, name: &str) -> Option<String> {
        if let Some(id) = self.containers.name_owner(name) {
            return Some(id.clone());
        }
        self.creates
            .inflight
            .iter()
            .find(|f| f.c.name == name)
            .map(|f| f.c.id.clone())
    }

    /// The directory is written (or not): register the container, or undo
    /// what the plan made (its anonymous volumes).
    fn create_finish(
        &mut self,
        c: Container,
        warnings: Vec<String>,
        written: Result<(), ContainerError>,
    ) -> Created {
        if let Err(e) = written {
            // The anonymous volumes made for it would belong to nobody.
            self.volumes_on_failed_create(&c.mount_points);
            return Err(e);
        }
        crate::failpoint!("container.create_done");
        let id = c.id.clone();
        self.containers.insert(Entry::new(c));
        self.container_event(&id, "create", &[]);
        Ok((id, warnings))
    }

    /// Everything of a create but its directory: the checks, the name, the
    /// volumes, the record and its generated /etc files.
    #[allow(clippy::type_complexity)]
    fn create_plan(
        &mut self,
        body: &[u8],
        name: Option<&str>,
    ) -> Result<
        (
            Container,
            Vec<String>,
            [(&'static str, String); 3],
            crate::trace::Span,
        ),
        ContainerError,
    > {
        let mut span = crate::trace::Span::start("create", "");
        let (mut config, host_config) = crate::container::config::parse_create(body)
            .map_err(|e| ContainerError::Invalid(format!("invalid JSON: {e}")))?;
        if config.image.is_empty() {
            return Err(ContainerError::Invalid(
                "Config cannot be empty in order to create a container".into(),
            ));
        }
        let image = self.images.resolve(&config.image).map_err(|_| {
            ContainerError::NotFound(format!("No such image: {}", image_display(&config.image)))
        })?;
        span.phase("parse+image");
        let image_id = image.id.clone();
        let image_config = image.config.get("config").cloned().unwrap_or_default();
        create::validate_config(&config)?;
        let mut warnings = create::validate_host_config(&host_config)?;
        crate::container::isolation::validate(&host_config, &|k| {
            self.containers.resolve(k).is_ok()
        })?;
        crate::container::isolation::check_userns(&host_config, self.userns.is_some())?;
        crate::runtime::cgroups::validate(&resources_of(&host_config))
            .map_err(|e| ContainerError::Invalid(e.to_string()))?;
        let (path, args) = create::merge_image(&mut config, &image_config)?;
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = names::validate(n).map_err(ContainerError::Invalid)?;
                if let Some(owner) = self.name_owner(&n) {
                    return Err(ContainerError::Conflict(format!(
                        "Conflict. The container name \"{n}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => (0..)
                .map(|i| format!("/{}", names::generate(i)))
                .find(|n| self.name_owner(n).is_none())
                .unwrap_or_default(),
        };
        span.phase("validate+name");
        // Volumes last: nothing is created for a request refused above.
        let mount_points = self.plan_volumes(&config, &host_config)?;
        let id = names::new_id();
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        if host_config.memory > 0 && !crate::host::cgroups().swap && host_config.memory_swap != -1 {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        }
        let network = create::network_mode(&host_config.network_mode)?.to_string();
        let networking = crate::container::config::endpoints_config(body);
        self.check_network_request(&network, networking.as_ref())?;
        let links = self.links_register(&host_config, &network)?;
        let mut host_config = host_config;
        host_config.network_mode = network.clone();
        let network = network.as_str();
        if host_config.cgroupns_mode.is_empty() {
            // dockerd's default: private on cgroup v2, the host's on v1.
            host_config.cgroupns_mode = match crate::runtime::cgroups::detect() {
                crate::runtime::cgroups::CgroupVersion::V2 => "private".into(),
                crate::runtime::cgroups::CgroupVersion::V1 => "host".into(),
            };
        }
        if host_config.cgroupns_mode == "private"
            && !std::path::Path::new("/proc/self/ns/cgroup").exists()
        {
            warnings.push(
                "Your kernel does not support cgroup namespaces.  Cgroup namespace setting discarded."
                    .into(),
            );
            host_config.cgroupns_mode = "host".into();
        }
        let c = Container {
            id: id.clone(),
            name,
            created: now(),
            image: image_id,
            path,
            args,
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            start_pending: false,
            mount_points,
            networking,
            links,
            config,
            host_config,
        };
        span.subject(&id);
        span.phase("volumes+network");
        let etc = etc_files(&c, network);
        Ok((c, warnings, etc, span))
    }
}

/// The container's generated /etc/hostname, /etc/hosts, /etc/resolv.conf
/// (a bridge network's start rewrites the last two with its addresses).
pub(super) fn etc_files(c: &Container, network: &str) -> [(&'static str, String); 3] {
    [
        (
            "hostname",
            crate::container::etc::hostname(&c.config.hostname),
        ),
        (
            "hosts",
            crate::container::etc::hosts(&c.host_config, &c.config.hostname, network),
        ),
        (
            "resolv.conf",
            crate::container::etc::resolv_conf(&c.host_config, network),
        ),
    ]
}
