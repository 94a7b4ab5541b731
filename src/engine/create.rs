//! `docker create`: a container record from the request and its image.

use super::Engine;
use crate::container::create;
use crate::container::error::ContainerError;
use crate::container::model::{Container, State};
use crate::container::names;
use crate::container::policy::{image_display, now, resources_of};
use crate::container::registry::Entry;

impl Engine {
    /// `POST /containers/create`.
    pub fn container_create(
        &mut self,
        body: &[u8],
        name: Option<&str>,
    ) -> Result<(String, Vec<String>), ContainerError> {
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
                if let Some(owner) = self.containers.name_owner(&n) {
                    return Err(ContainerError::Conflict(format!(
                        "Conflict. The container name \"{n}\" is already in use by container \"{owner}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n
            }
            None => (0..)
                .map(|i| format!("/{}", names::generate(i)))
                .find(|n| self.containers.name_owner(n).is_none())
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
        if let Err(e) = self.container_dirs.create(&c, &etc_files(&c, network)) {
            // The anonymous volumes made for it would belong to nobody.
            self.volumes_on_failed_create(&c.mount_points);
            return Err(e.into());
        }
        crate::failpoint!("container.create_done");
        span.phase("store");
        self.containers.insert(Entry::new(c));
        self.container_event(&id, "create", &[]);
        span.phase("event");
        Ok((id, warnings))
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
