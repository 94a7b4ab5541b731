//! A container as the daemon records it: configuration, state, and where its
//! files live. Serialised as the container's `config.json`.

use serde::{Deserialize, Serialize};

use super::config::{ContainerConfig, HostConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            oom_killed: false,
        }
    }
}

impl State {
    /// Running or paused: a process exists.
    pub fn is_alive(&self) -> bool {
        matches!(self.status, Status::Running | Status::Paused)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    pub id: String,
    /// With the leading '/'.
    pub name: String,
    pub created: String,
    /// Resolved image ID (`sha256:...`).
    pub image: String,
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    pub restart_count: i64,
    /// Set by an explicit stop; `unless-stopped` and `always` then stay down
    /// until an explicit start.
    pub manually_stopped: bool,
    pub has_been_started: bool,
    /// Written before a start clones the process, cleared once the outcome
    /// is recorded: after a crash, recovery treats the container as running.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start_pending: bool,
    /// Volumes (and `--volumes-from` binds) planned at create.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mount_points: Vec<super::volume_mounts::MountPoint>,
    /// The create request's `NetworkingConfig.EndpointsConfig` (per network:
    /// `IPAMConfig`, `Aliases`, `MacAddress`), used at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networking: Option<serde_json::Value>,
    /// Legacy `--link`s to other containers on the default bridge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<super::links::Link>,
}

impl Container {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// `Up 5 minutes`, `Exited (3) 2 seconds ago`, ... for `docker ps`.
    pub fn status_text(&self, now_secs: i64) -> String {
        let ago = |t: &str| {
            crate::timefmt::parse_timestamp(t)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| human_duration(now_secs - d.as_secs() as i64))
                .unwrap_or_default()
        };
        match self.state.status {
            Status::Running => format!("Up {}", ago(&self.state.started_at)),
            Status::Paused => format!("Up {} (Paused)", ago(&self.state.started_at)),
            Status::Restarting => format!(
                "Restarting ({}) {} ago",
                self.state.exit_code,
                ago(&self.state.finished_at)
            ),
            Status::Exited if self.state.finished_at != ZERO_TIME => format!(
                "Exited ({}) {} ago",
                self.state.exit_code,
                ago(&self.state.finished_at)
            ),
            Status::Exited => format!("Exited ({})", self.state.exit_code),
            Status::Created => "Created".into(),
            Status::Removing => "Removal In Progress".into(),
            Status::Dead => "Dead".into(),
        }
    }
}

/// Go's `units.HumanDuration`, as `docker ps` shows it.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".into(),
        _ if s < 3600 => format!("{} minutes", s / 60),
        _ if s < 2 * 3600 => "About an hour".into(),
        _ if s < 48 * 3600 => format!("{} hours", s / 3600),
        _ if s < 14 * 86400 => format!("{} days", s / 86400),
        _ if s < 60 * 86400 => format!("{} weeks", s / (7 * 86400)),
        _ if s < 365 * 86400 => format!("{} months", s / (30 * 86400)),
        _ => format!("{} years", s / (365 * 86400)),
    }
}
