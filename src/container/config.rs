//! The create request's `Config` and `HostConfig`, typed for what coracle
//! acts on. Fields it does not model are kept in `extra` and written back in
//! inspect, so clients see what they sent; unknown fields are never an error.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// dockerd's `strslice`: a JSON string or array of strings (or null).
fn strslice<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Null => None,
        Value::String(s) => Some(vec![s]),
        Value::Array(a) => Some(
            a.into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(serde::de::Error::custom(format!(
                        "expected a string, got {}",
                        crate::json::text(&other)
                    ))),
                })
                .collect::<Result<_, _>>()?,
        ),
        other => {
            return Err(serde::de::Error::custom(format!(
                "expected a string or list, got {}",
                crate::json::text(&other)
            )))
        }
    })
}

/// Lists that clients send as `null`.
fn nullable_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn nullable_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub domainname: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub env: Vec<String>,
    #[serde(default, deserialize_with = "strslice")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, deserialize_with = "strslice")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub image: String,
    #[serde(default, deserialize_with = "nullable_map")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `HEALTHCHECK` / `--health-*`; `Test: ["NONE"]` disables the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// dockerd's `HealthConfig`: durations in nanoseconds, 0 for the default.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    #[serde(
        deserialize_with = "nullable_vec",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(deserialize_with = "nullable_map")]
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: i64,
    pub mode: u32,
}

/// One entry of `HostConfig.Mounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    #[serde(rename = "Type")]
    pub kind: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UlimitConfig {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// One entry of `HostConfig.Devices` (`--device host[:ctr[:rwm]]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HostConfig {
    #[serde(default, deserialize_with = "nullable_vec")]
    pub binds: Vec<String>,
    #[serde(default)]
    pub log_config: LogConfig,
    #[serde(default)]
    pub network_mode: String,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    #[serde(default)]
    pub auto_remove: bool,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub mounts: Vec<Mount>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub cap_add: Vec<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub cap_drop: Vec<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub group_add: Vec<String>,
    #[serde(default)]
    pub privileged: bool,
    // Isolation (container/isolation.rs).
    #[serde(default)]
    pub pid_mode: String,
    #[serde(default)]
    pub ipc_mode: String,
    #[serde(default)]
    pub userns_mode: String,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub security_opt: Vec<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub devices: Vec<DeviceMapping>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(default)]
    pub readonly_rootfs: bool,
    #[serde(default, deserialize_with = "nullable_map")]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(default)]
    pub shm_size: i64,
    #[serde(default, deserialize_with = "nullable_map")]
    pub sysctls: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub ulimits: Vec<UlimitConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub dns: Vec<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub dns_search: Vec<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub dns_options: Vec<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub extra_hosts: Vec<String>,
    #[serde(default, deserialize_with = "nullable_vec")]
    pub console_size: Vec<u16>,
    // Resources.
    #[serde(default)]
    pub memory: i64,
    #[serde(default)]
    pub memory_swap: i64,
    #[serde(default)]
    pub memory_reservation: i64,
    #[serde(default)]
    pub nano_cpus: i64,
    #[serde(default)]
    pub cpu_shares: i64,
    #[serde(default)]
    pub cpu_quota: i64,
    #[serde(default)]
    pub cpu_period: i64,
    #[serde(default)]
    pub cpuset_cpus: String,
    #[serde(default)]
    pub cpuset_mems: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(default)]
    pub blkio_weight: u16,
    /// "host" or "private" (filled in at create with the host's default).
    #[serde(default)]
    pub cgroupns_mode: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl HostConfig {
    /// `Ulimits` as the launcher takes them.
    pub fn launch_ulimits(&self) -> Vec<crate::runtime::spec::Ulimit> {
        self.ulimits
            .iter()
            .map(|u| crate::runtime::spec::Ulimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect()
    }
}

/// The create body's nested parts. Config's fields are the body's top level:
/// `parse_create` reads the same bytes again as a `ContainerConfig`, with the
/// decoder a container record's load already has. (`serde(flatten)` here
/// buffered the whole body and built a second decoder of every Config field.)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRequest {
    pub host_config: Option<HostConfig>,
    #[serde(rename = "NetworkingConfig")]
    pub networking_config: Option<Value>,
}

/// The create body's `NetworkingConfig.EndpointsConfig`, if it has one.
pub fn endpoints_config(body: &[u8]) -> Option<Value> {
    let req: CreateRequest = serde_json::from_slice(body).ok()?;
    req.networking_config?
        .get("EndpointsConfig")
        .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
        .cloned()
}

/// Parse a create body (an empty body is an empty config).
pub fn parse_create(body: &[u8]) -> Result<(ContainerConfig, HostConfig), String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    // An object only (a derived decoder also takes a JSON array, `[]` included).
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(serde_json::from_slice::<Map<String, Value>>(body)
            .err()
            .map_or_else(|| "expected a JSON object".into(), |e| e.to_string()));
    }
    let req: CreateRequest = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut config: ContainerConfig = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    // Its `extra` collects these too; they belong elsewhere.
    config.extra.remove("HostConfig");
    config.extra.remove("NetworkingConfig");
    Ok((config, req.host_config.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cli_shaped_bodies() {
        let body = br#"{"Image":"busybox","Cmd":"echo hi","Entrypoint":null,"Env":null,"Labels":{"a":"b"},
            "Unknown":1,"HostConfig":{"Binds":["/tmp:/x:ro"],"Memory":16777216,"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":3},
            "PidsLimit":10,"LogConfig":{"Type":"json-file","Config":{}},"Weird":{"x":1}},"NetworkingConfig":{}}"#;
        let (c, h) = parse_create(body).unwrap();
        assert_eq!(c.cmd, Some(vec!["echo hi".to_string()]));
        assert_eq!(c.entrypoint, None);
        assert_eq!(c.labels["a"], "b");
        assert_eq!(c.extra.get("Unknown"), Some(&serde_json::json!(1)));
        assert!(!c.extra.contains_key("HostConfig"));
        assert_eq!(h.memory, 16 << 20);
        assert_eq!(h.pids_limit, Some(10));
        assert_eq!(h.restart_policy.maximum_retry_count, 3);
        assert_eq!(h.extra.get("Weird"), Some(&serde_json::json!({"x": 1})));
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["Weird"]["x"], 1);
        assert_eq!(v["Binds"][0], "/tmp:/x:ro");
        assert!(parse_create(b"").is_ok());
        assert!(parse_create(b"{\"Cmd\": 5}").is_err());
        assert!(parse_create(b"[1]").is_err());
        assert!(parse_create(b" []").is_err());
        assert!(parse_create(b"null").is_err());
        let (c, h) = parse_create(br#"{"HostConfig":null,"NetworkingConfig":{"a":1}}"#).unwrap();
        assert!(c.extra.is_empty() && h.binds.is_empty());
    }
}
