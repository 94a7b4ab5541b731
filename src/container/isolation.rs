//! HostConfig options that change a container's isolation: `--pid`,
//! `--ipc`, `--userns`, `--security-opt`, `--device`,
//! `--device-cgroup-rule`, and mount targets in /proc. Each is either
//! implemented or refused at create: none is silently ignored.

use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::config::HostConfig;
use super::error::ContainerError;
use super::security::Security;
use crate::runtime::cgroups::{default_device_rules, DeviceRule};
use crate::runtime::devices;
use crate::runtime::mounts::check_proc_target;
use crate::runtime::spec::{DeviceNode, NsMode};

fn invalid<T>(m: String) -> Result<T, ContainerError> {
    Err(ContainerError::Invalid(m))
}

/// `--pid` / `--ipc` as written: the default, host, or another container.
#[derive(Debug, PartialEq, Eq)]
enum Mode<'a> {
    Private,
    Host,
    Container(&'a str),
}

fn pid_mode(s: &str) -> Result<Mode<'_>, ContainerError> {
    match s {
        "" => Ok(Mode::Private),
        "host" => Ok(Mode::Host),
        _ => match s.strip_prefix("container:") {
            Some(c) if !c.is_empty() => Ok(Mode::Container(c)),
            _ => invalid(format!("invalid PID mode: {s}")),
        },
    }
}

fn ipc_mode(s: &str) -> Result<Mode<'_>, ContainerError> {
    match s {
        // A new namespace that others may join: both are what we do.
        "" | "private" | "shareable" => Ok(Mode::Private),
        "host" => Ok(Mode::Host),
        "none" => invalid(
            "IPC mode \"none\" is not supported by coracle (use private, shareable, host or container:<id>)"
                .into(),
        ),
        _ => match s.strip_prefix("container:") {
            Some(c) if !c.is_empty() => Ok(Mode::Container(c)),
            _ => invalid(format!("invalid IPC mode: {s}")),
        },
    }
}

/// A mount target as runc sees it: absolute, `.`/`..` resolved lexically.
fn clean(target: &str) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in Path::new(target).components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Host options in `extra` that would change isolation and are not
/// implemented: refused unless empty or the default.
fn check_unmodelled(h: &HostConfig) -> Result<(), ContainerError> {
    let s = |k: &str| h.extra.get(k).and_then(Value::as_str).unwrap_or("");
    match s("UTSMode") {
        "" => {}
        m => return invalid(format!("UTS mode {m:?} is not supported by coracle")),
    }
    if !s("Cgroup").is_empty() {
        return invalid("the Cgroup option is not supported by coracle".into());
    }
    let non_empty = |k: &str| match h.extra.get(k) {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(_) => true,
    };
    if non_empty("DeviceRequests") {
        return invalid("device requests (--gpus) are not supported by coracle".into());
    }
    for k in ["MaskedPaths", "ReadonlyPaths"] {
        if h.extra.get(k).is_some_and(|v| !v.is_null()) {
            return invalid(format!(
                "{k} is not supported by coracle (the default masked and read-only paths always apply)"
            ));
        }
    }
    Ok(())
}

/// Everything above, at create. `exists` resolves a container name or ID
/// (for `container:<id>` modes).
pub fn validate(h: &HostConfig, exists: &dyn Fn(&str) -> bool) -> Result<(), ContainerError> {
    // Syntax, and a profile's JSON decoded now so a bad one fails the create.
    super::security::parse(&h.security_opt, h.privileged, false)?;
    match h.userns_mode.as_str() {
        "" | "host" => {}
        m => {
            return invalid(format!(
                "invalid user namespace mode {m:?}: only \"host\" is supported (remapping is the daemon's --userns-remap)"
            ))
        }
    }
    check_unmodelled(h)?;
    for mode in [pid_mode(&h.pid_mode)?, ipc_mode(&h.ipc_mode)?] {
        if let Mode::Container(c) = mode {
            if !exists(c) {
                return Err(ContainerError::NotFound(c.to_string()));
            }
        }
    }
    for d in &h.devices {
        let access = if d.cgroup_permissions.is_empty() {
            "rwm"
        } else {
            d.cgroup_permissions.as_str()
        };
        if !devices::valid_access(access) {
            return invalid(format!("invalid device mode: {}", d.cgroup_permissions));
        }
        if !d.path_in_container.is_empty() && !d.path_in_container.starts_with('/') {
            return invalid(format!(
                "invalid device path in container: {:?}: it must be absolute",
                d.path_in_container
            ));
        }
        devices::from_mapping(&d.path_on_host, &d.path_in_container, access)
            .map_err(ContainerError::Invalid)?;
    }
    for r in &h.device_cgroup_rules {
        if devices::parse_cgroup_rule(r).is_none() {
            return invalid(format!("invalid device cgroup rule format: '{r}'"));
        }
    }
    // runc's checkProcMount, at create rather than at start.
    let mut targets: Vec<(String, String)> = Vec::new();
    for b in &h.binds {
        let (src, dst, _) = super::create::parse_bind(b)?;
        targets.push((dst, src));
    }
    for m in &h.mounts {
        targets.push((m.target.clone(), m.source.clone()));
    }
    for t in h.tmpfs.keys() {
        targets.push((t.clone(), "tmpfs".into()));
    }
    for (target, source) in targets {
        check_proc_target(&clean(&target), &source, false).map_err(ContainerError::Invalid)?;
    }
    Ok(())
}

/// dockerd's refusals for a container in the daemon's user namespace
/// (`--userns-remap` on, no `--userns host`), at create.
pub fn check_userns(h: &HostConfig, remapped: bool) -> Result<(), ContainerError> {
    if !remapped || h.userns_mode == "host" {
        return Ok(());
    }
    if h.privileged {
        return invalid("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode".into());
    }
    if h.network_mode == "host" {
        return invalid(
            "cannot share the host's network namespace when user namespaces are enabled".into(),
        );
    }
    if h.pid_mode == "host" {
        return invalid(
            "cannot share the host PID namespace when user namespaces are enabled".into(),
        );
    }
    Ok(())
}

/// What the launcher needs, at start. `running` gives the host PID of a
/// running container's first process, or the error to answer.
pub struct Isolation {
    pub pid_ns: NsMode,
    pub ipc_ns: NsMode,
    pub devices: Vec<DeviceNode>,
    /// The full device-cgroup allow-list.
    pub device_rules: Vec<DeviceRule>,
    /// Seccomp and no_new_privs (`--security-opt`, the daemon's default).
    pub security: Security,
}

pub fn resolve(
    h: &HostConfig,
    no_new_privs_default: bool,
    running: &dyn Fn(&str, &str) -> Result<nix::unistd::Pid, ContainerError>,
) -> Result<Isolation, ContainerError> {
    let ns = |what: &str, m: Mode| -> Result<NsMode, ContainerError> {
        Ok(match m {
            Mode::Private => NsMode::Private,
            Mode::Host => NsMode::Host,
            Mode::Container(c) => NsMode::Join(running(what, c)?),
        })
    };
    let security = super::security::parse(&h.security_opt, h.privileged, no_new_privs_default)?;
    let pid_ns = ns("PID", pid_mode(&h.pid_mode)?)?;
    let ipc_ns = ns("IPC", ipc_mode(&h.ipc_mode)?)?;
    let mut nodes = Vec::new();
    for d in &h.devices {
        let access = if d.cgroup_permissions.is_empty() {
            "rwm"
        } else {
            d.cgroup_permissions.as_str()
        };
        nodes.extend(
            devices::from_mapping(&d.path_on_host, &d.path_in_container, access)
                .map_err(ContainerError::Invalid)?,
        );
    }
    let device_rules = if h.privileged {
        vec![DeviceRule::allow('a', None, None, "rwm")]
    } else {
        let mut rules = default_device_rules();
        rules.extend(nodes.iter().map(devices::rule_for));
        rules.extend(
            h.device_cgroup_rules
                .iter()
                .filter_map(|r| devices::parse_cgroup_rule(r)),
        );
        rules
    };
    Ok(Isolation {
        pid_ns,
        ipc_ns,
        devices: nodes,
        device_rules,
        security,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    fn check(v: Value) -> Result<(), ContainerError> {
        validate(&h(v), &|c| c == "known")
    }

    #[test]
    fn security_opts() {
        for ok in [
            "seccomp=unconfined",
            "apparmor=unconfined",
            "label=disable",
            "label:disable",
            "no-new-privileges=false",
            "no-new-privileges",
            "no-new-privileges=true",
            "seccomp=builtin",
            r#"seccomp={"defaultAction": "SCMP_ACT_ALLOW"}"#,
        ] {
            assert!(check(json!({"SecurityOpt": [ok]})).is_ok(), "{ok}");
        }
        for bad in [
            "seccomp={}",
            "seccomp=/etc/profile.json",
            "no-new-privileges=maybe",
            "apparmor=docker-default",
            "label=type:x",
            "bogus=1",
            "bogus",
        ] {
            assert!(check(json!({"SecurityOpt": [bad]})).is_err(), "{bad}");
        }
    }

    #[test]
    fn proc_targets_follow_runc() {
        assert!(check(json!({"Binds": ["/tmp:/proc"]})).is_err());
        let e = check(json!({"Binds": ["/tmp:/proc/sys"]})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"/proc/sys\" cannot be mounted because it is inside /proc"
        );
        assert!(check(json!({"Binds": ["/tmp:/x/../proc/sys/kernel"]})).is_err());
        assert!(check(json!({"Tmpfs": {"/proc/acpi": ""}})).is_err());
        assert!(check(json!({"Binds": ["/etc/hostname:/proc/uptime"]})).is_ok());
        assert!(check(json!({"Binds": ["/tmp:/procfs"]})).is_ok());
    }

    #[test]
    fn modes() {
        assert!(check(json!({"PidMode": "host", "IpcMode": "host", "UsernsMode": "host"})).is_ok());
        assert!(check(json!({"PidMode": "container:known"})).is_ok());
        assert!(matches!(
            check(json!({"PidMode": "container:other"})),
            Err(ContainerError::NotFound(_))
        ));
        assert!(check(json!({"PidMode": "bogus"})).is_err());
        assert!(check(json!({"IpcMode": "none"})).is_err());
        assert!(check(json!({"UsernsMode": "private"})).is_err());
        assert!(check(json!({"DeviceCgroupRules": ["c 1:3 rwx"]})).is_err());
        assert!(check(json!({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwz"}]})).is_err());
        assert!(check(json!({"DeviceRequests": [{"Count": -1}]})).is_err());
        assert!(check(json!({"DeviceRequests": null, "MaskedPaths": null})).is_ok());
    }

    #[test]
    fn userns_refusals_follow_dockerd() {
        let bad = [
            (
                json!({"Privileged": true}),
                "privileged mode is incompatible",
            ),
            (json!({"NetworkMode": "host"}), "host's network namespace"),
            (json!({"PidMode": "host"}), "host PID namespace"),
        ];
        for (v, msg) in bad {
            let e = check_userns(&h(v.clone()), true).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
            assert!(check_userns(&h(v.clone()), false).is_ok());
            let mut host = v;
            host["UsernsMode"] = json!("host");
            assert!(check_userns(&h(host), true).is_ok());
        }
        assert!(check_userns(&h(json!({})), true).is_ok());
    }
}
