//! Create-time checks of a container's configuration, with dockerd's
//! wording: refused here, nothing is created (HostConfig, hostname,
//! signals, tmpfs, binds, network mode).

use serde_json::Value;

use super::config::{ContainerConfig, HostConfig};
use super::error::ContainerError;

/// dockerd's lower bound for `Memory` and `MemoryReservation`.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Linux's HOST_NAME_MAX, dockerd's limit for `Hostname`.
const MAX_HOSTNAME: usize = 64;

/// The signal names dockerd's `ParseSignal` knows on Linux (without "SIG").
const SIGNAL_NAMES: &[&str] = &[
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP",
    "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX",
];

/// dockerd's `ParseSignal`: a non-zero number, or a known name in any case
/// with or without "SIG" (RTMIN+n for n in 1..=15, RTMAX-n for n in 1..=14).
pub(super) fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<i64>() {
        return n != 0;
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let rt = |prefix: &str, max: u32| {
        name.strip_prefix(prefix)
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1..=max).contains(&n))
            && !name[prefix.len()..].starts_with('+')
    };
    SIGNAL_NAMES.contains(&name) || rt("RTMIN+", 15) || rt("RTMAX-", 14)
}

/// The request's `Config` checks dockerd makes before anything is created
/// (`validateContainerConfig`, and the hostname length of
/// `verifyPlatformContainerSettings`). Run before the image is merged in.
pub fn validate_config(c: &ContainerConfig) -> Result<(), ContainerError> {
    if c.hostname.len() > MAX_HOSTNAME {
        return Err(ContainerError::Invalid(format!(
            "hostname {:?} is too long (maximum {MAX_HOSTNAME} bytes)",
            c.hostname
        )));
    }
    if let Some(s) = c.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        if !valid_signal(s) {
            return Err(ContainerError::Invalid(format!("invalid signal: {s}")));
        }
    }
    super::ports::parse_values(c.extra.get("ExposedPorts"), None, None)?;
    Ok(())
}

/// dockerd's `MergeTmpfsOptions` check: flags it knows, or `key=value` data
/// for the keys tmpfs takes. Returns the offending option's name.
pub(super) fn check_tmpfs_options(opts: &str) -> Result<(), String> {
    const FLAGS: &[&str] = &[
        "defaults",
        "ro",
        "rw",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "exec",
        "noexec",
        "sync",
        "async",
        "dirsync",
        "remount",
        "mand",
        "nomand",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "bind",
        "rbind",
        "unbindable",
        "runbindable",
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
    ];
    const DATA: &[&str] = &[
        "",
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    if opts.is_empty() {
        return Ok(());
    }
    for o in opts.split(',') {
        if FLAGS.contains(&o) {
            continue;
        }
        match o.split_once('=') {
            Some((k, _)) if DATA.contains(&k) => {}
            Some((k, _)) => return Err(k.to_string()),
            None => return Err(o.to_string()),
        }
    }
    Ok(())
}

/// A tmpfs destination as dockerd's `ValidateTmpfsMountDestination`.
pub(super) fn check_tmpfs_target(t: &str) -> Result<(), ContainerError> {
    let t = t.replace('\\', "/");
    // Go's path.Clean(t) == "/": the components left after "." and ".." are none.
    let mut depth: Vec<&str> = Vec::new();
    for c in t.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                depth.pop();
            }
            c => depth.push(c),
        }
    }
    if t.starts_with('/') && depth.is_empty() {
        return Err(ContainerError::Invalid(
            "invalid specification: destination can't be '/'".into(),
        ));
    }
    if !t.starts_with('/') {
        return Err(ContainerError::Invalid(format!(
            "invalid mount path: '{t}' mount path must be absolute"
        )));
    }
    Ok(())
}

/// The network mode as recorded: `host`, `none`, `container:<name|id>`,
/// `bridge` (also for an empty or `default` mode) or a network's name.
pub fn network_mode(requested: &str) -> Result<&str, ContainerError> {
    match requested {
        "" | "default" => Ok("bridge"),
        "container:" => Err(ContainerError::Invalid(
            "invalid network mode: container: needs a container name or ID".into(),
        )),
        other => Ok(other),
    }
}

/// Check a HostConfig as dockerd would before creating anything; returns
/// warnings to report.
pub fn validate_host_config(h: &HostConfig) -> Result<Vec<String>, ContainerError> {
    let invalid = |m: String| Err(ContainerError::Invalid(m));
    let warnings = Vec::new();
    super::ports::parse_values(
        None,
        h.extra.get("PortBindings"),
        h.extra.get("PublishAllPorts"),
    )?;
    let rp = &h.restart_policy;
    match rp.name.as_str() {
        "" | "no" | "always" | "unless-stopped" => {
            if rp.maximum_retry_count != 0 {
                return invalid(
                    "invalid restart policy: maximum retry count can only be used with 'on-failure'"
                        .to_string(),
                );
            }
        }
        "on-failure" if rp.maximum_retry_count < 0 => {
            return invalid("invalid restart policy: maximum retry count cannot be negative".into())
        }
        "on-failure" => {}
        other => return invalid(format!("invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure' or 'unless-stopped'")),
    }
    if h.auto_remove && !matches!(rp.name.as_str(), "" | "no") {
        return invalid("can't create 'AutoRemove' container with restart policy".into());
    }
    if h.memory != 0 && h.memory < MIN_MEMORY {
        return invalid("Minimum memory limit allowed is 6MB".into());
    }
    if h.memory > 0 && h.memory_swap > 0 && h.memory_swap < h.memory {
        return invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        );
    }
    if h.memory_reservation != 0 && h.memory_reservation < MIN_MEMORY {
        return invalid("Minimum memory reservation allowed is 6MB".into());
    }
    if h.nano_cpus != 0 && (h.cpu_quota != 0 || h.cpu_period != 0) {
        return invalid(
            "Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set".into(),
        );
    }
    if h.nano_cpus < 0 {
        return invalid("Range of CPUs is from 0.01 to the number of CPUs available".into());
    }
    if !matches!(h.cgroupns_mode.as_str(), "" | "host" | "private") {
        return invalid(format!(
            "invalid cgroup namespace mode: {}",
            h.cgroupns_mode
        ));
    }
    if h.shm_size < 0 {
        return invalid("SHM size can not be less than 0".into());
    }
    network_mode(
        h.extra
            .get("NetworkMode")
            .and_then(Value::as_str)
            .unwrap_or(&h.network_mode),
    )?;
    for b in &h.binds {
        parse_bind(b)?;
    }
    for m in &h.mounts {
        match m.kind.as_str() {
            "bind" => {
                if !m.source.starts_with('/') || !std::path::Path::new(&m.source).exists() {
                    return invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {}",
                        m.source
                    ));
                }
            }
            "tmpfs" => {}
            "volume" => {
                if !m.source.is_empty() && !crate::store::volumes::valid_name(&m.source) {
                    return invalid(format!(
                        "create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
                        m.source
                    ));
                }
            }
            other => {
                return invalid(format!(
                    "mount type {other:?} is not supported by coracle (bind, tmpfs and volume are)"
                ))
            }
        }
        if !m.target.starts_with('/') {
            return invalid(format!(
                "invalid mount config: mount path must be absolute: {}",
                m.target
            ));
        }
    }
    match h.log_config.kind.as_str() {
        "" | "json-file" | "none" => {}
        // dockerd's other built-in drivers: known, but not in coracle.
        known @ ("local" | "syslog" | "journald" | "gelf" | "fluentd" | "awslogs" | "splunk"
        | "etwlogs" | "gcplogs" | "logentries") => {
            return invalid(format!(
                "logging driver {known:?} is not supported by coracle (json-file, none)"
            ))
        }
        other => {
            return invalid(format!(
                "logger: no log driver named '{other}' is registered"
            ))
        }
    }
    if let Some(size) = h.log_config.config.get("max-size") {
        if crate::stdio::jsonlog::parse_size(size).is_none_or(|n| n == 0) {
            return invalid(format!(
                "invalid max-size {size:?} for the json-file log driver"
            ));
        }
    }
    if let Some(files) = h.log_config.config.get("max-file") {
        // As dockerd, any positive count; the writer keeps the retention in
        // at most `jsonlog::MAX_FILES` files (see `jsonlog::bounded`).
        match files.parse::<i64>() {
            Ok(n) if n >= 1 && n <= i64::from(u32::MAX) => {}
            Ok(_) => return invalid("max-file cannot be less than 1".into()),
            Err(_) => return invalid(format!("invalid max-file {files:?}: not a number")),
        }
    }
    for (t, opts) in &h.tmpfs {
        check_tmpfs_target(t)?;
        if let Err(o) = check_tmpfs_options(opts) {
            return invalid(format!("invalid tmpfs option {o:?}"));
        }
    }
    if let Err(e) = crate::runtime::caps::check_names(&h.cap_add) {
        return invalid(format!("invalid CapAdd: {e}"));
    }
    if let Err(e) = crate::runtime::caps::check_names(&h.cap_drop) {
        return invalid(format!("invalid CapDrop: {e}"));
    }
    for k in h.sysctls.keys() {
        let namespaced = k.starts_with("net.")
            || k.starts_with("fs.mqueue.")
            || matches!(
                k.as_str(),
                "kernel.msgmax"
                    | "kernel.msgmnb"
                    | "kernel.msgmni"
                    | "kernel.sem"
                    | "kernel.shmall"
                    | "kernel.shmmax"
                    | "kernel.shmmni"
                    | "kernel.shm_rmid_forced"
            );
        if !namespaced {
            return invalid(format!("sysctl '{k}' is not allowed"));
        }
        if k.starts_with("net.") && h.network_mode == "host" {
            return invalid(format!("sysctl '{k}' not allowed in host network mode"));
        }
    }
    for u in &h.ulimits {
        if crate::container::names::ULIMITS
            .iter()
            .all(|n| *n != u.name)
        {
            return invalid(format!("invalid ulimit type: {}", u.name));
        }
        if u.soft > u.hard {
            return invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            ));
        }
    }
    Ok(warnings)
}

/// A `Binds` entry: (host path, container path, read-only).
pub fn parse_bind(spec: &str) -> Result<(String, String, bool), ContainerError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => {
            return Err(ContainerError::Invalid(format!(
                "invalid volume specification: '{spec}'"
            )))
        }
    };
    if !src.starts_with('/') && !crate::store::volumes::valid_name(src) {
        return Err(ContainerError::Invalid(format!(
            "create {src}: \"{src}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    if !dst.starts_with('/') {
        return Err(ContainerError::Invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config: mount path must be absolute"
        )));
    }
    let mut ro = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => ro = true,
            "rw" | "z" | "Z" | "nocopy" | "private" | "rprivate" | "slave" | "rslave"
            | "shared" | "rshared" | "delegated" | "cached" | "consistent" => {}
            other => return Err(ContainerError::Invalid(format!("invalid mode: {other}"))),
        }
    }
    Ok((src.to_string(), dst.to_string(), ro))
}
