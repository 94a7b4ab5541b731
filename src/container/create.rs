//! Turning a create request into a container record: dockerd's merge of the
//! image config (Entrypoint/Cmd, Env, WorkingDir, User, Labels) and the
//! validation of HostConfig, all before anything touches the disk.

use serde_json::Value;

use super::config::{ContainerConfig, HostConfig};
use super::error::ContainerError;

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    })
}

fn env_key(e: &str) -> &str {
    e.split_once('=').map(|(k, _)| k).unwrap_or(e)
}

/// `base` overridden key by key by `overrides`, in linear time: a base entry
/// stays unless an override has its key; of several overrides with one key
/// the last wins. Order is kept (base first, then the surviving overrides
/// in request order). A key without '=' (`FOO`) counts as the key `FOO`, so
/// it replaces `FOO=...` and is kept as given, as before.
pub fn merge_env(base: Vec<String>, overrides: Vec<String>) -> Vec<String> {
    use std::collections::HashMap;
    // One hash per entry: an override seen again drops its earlier self.
    let mut keep = vec![true; overrides.len()];
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(overrides.len());
    for (i, e) in overrides.iter().enumerate() {
        if let Some(earlier) = seen.insert(env_key(e), i) {
            keep[earlier] = false;
        }
    }
    let mut out: Vec<String> = Vec::with_capacity(base.len() + seen.len());
    out.extend(base.into_iter().filter(|b| !seen.contains_key(env_key(b))));
    drop(seen);
    out.extend(
        overrides
            .into_iter()
            .zip(keep)
            .filter_map(|(e, k)| k.then_some(e)),
    );
    out
}

/// Fill `config` from the image's config (`image_config` is the `config`
/// object of the image JSON) as dockerd does at create time. Returns the
/// process path and arguments.
pub fn merge_image(
    config: &mut ContainerConfig,
    image_config: &Value,
) -> Result<(String, Vec<String>), ContainerError> {
    // Env: the image's, overridden key by key by the request's.
    let base = strings(&image_config["Env"]).unwrap_or_default();
    let mut env = merge_env(base, std::mem::take(&mut config.env));
    if !env.iter().any(|e| env_key(e) == "PATH") {
        env.push(DEFAULT_PATH.to_string());
    }
    config.env = env;

    // An Entrypoint in the request replaces the image's Entrypoint *and* Cmd.
    if config.entrypoint.is_none() {
        config.entrypoint = strings(&image_config["Entrypoint"]).filter(|v| !v.is_empty());
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            config.cmd = strings(&image_config["Cmd"]).filter(|v| !v.is_empty());
        }
    } else if config
        .entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        // `--entrypoint ""` clears it.
        config.entrypoint = None;
    }
    if config.working_dir.is_empty() {
        config.working_dir = image_config["WorkingDir"]
            .as_str()
            .unwrap_or("")
            .to_string();
    }
    if config.user.is_empty() {
        config.user = image_config["User"].as_str().unwrap_or("").to_string();
    }
    if config.stop_signal.is_none() {
        config.stop_signal = image_config["StopSignal"].as_str().map(str::to_string);
    }
    if let Some(labels) = image_config["Labels"].as_object() {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                config
                    .labels
                    .entry(k.clone())
                    .or_insert_with(|| v.to_string());
            }
        }
    }
    for key in ["ExposedPorts", "Volumes"] {
        if let Some(obj) = image_config[key].as_object() {
            let entry = config
                .extra
                .entry(key.to_string())
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(target) = entry.as_object_mut() {
                for (k, v) in obj {
                    target.entry(k.clone()).or_insert_with(|| v.clone());
                }
            } else if entry.is_null() {
                *entry = Value::Object(obj.clone());
            }
        }
    }
    if !config.working_dir.is_empty() && !config.working_dir.starts_with('/') {
        return Err(ContainerError::Invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            config.working_dir
        )));
    }
    let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
    argv.extend(config.cmd.clone().unwrap_or_default());
    if argv.is_empty() || argv[0].is_empty() {
        return Err(ContainerError::Invalid("no command specified".into()));
    }
    let path = argv.remove(0);
    Ok((path, argv))
}

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
fn valid_signal(s: &str) -> bool {
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
    Ok(())
}

/// dockerd's `MergeTmpfsOptions` check: flags it knows, or `key=value` data
/// for the keys tmpfs takes. Returns the offending option's name.
fn check_tmpfs_options(opts: &str) -> Result<(), String> {
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
fn check_tmpfs_target(t: &str) -> Result<(), ContainerError> {
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

/// The network namespaces coracle can give a container.
pub fn network_mode(requested: &str) -> Result<&'static str, ContainerError> {
    match requested {
        "host" => Ok("host"),
        "none" => Ok("none"),
        // No bridge yet: the default is a private namespace with loopback.
        "" | "default" | "bridge" => Ok("none"),
        other => Err(ContainerError::Invalid(format!(
            "network mode {other:?} is not supported by coracle (use none or host)"
        ))),
    }
}

/// Check a HostConfig as dockerd would before creating anything; returns
/// warnings to report.
pub fn validate_host_config(h: &HostConfig) -> Result<Vec<String>, ContainerError> {
    let invalid = |m: String| Err(ContainerError::Invalid(m));
    let warnings = Vec::new();
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
    if h.shm_size < 0 {
        return invalid("SHM size can not be less than 0".into());
    }
    network_mode(
        h.extra
            .get("NetworkMode")
            .and_then(Value::as_str)
            .unwrap_or(&h.network_mode),
    )?;
    // No bridge yet: the default becomes "none", which inspect reports.
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
            other => {
                return invalid(format!(
                    "mount type {other:?} is not supported by coracle (bind and tmpfs are)"
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
        other => {
            return invalid(format!(
                "logging driver {other:?} is not supported by coracle (json-file, none)"
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
        // The reader looks at .1 to .99.
        if files
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=99).contains(n))
            .is_none()
        {
            return invalid(format!(
                "invalid max-file {files:?}: it must be between 1 and 99"
            ));
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
    if !src.starts_with('/') {
        return Err(ContainerError::Invalid(format!(
            "named volumes are not supported by coracle yet: '{src}' (use an absolute host path)"
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: Value) -> ContainerConfig {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn entrypoint_and_cmd_rules() {
        let image = json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Entrypoint": null, "WorkingDir": "/data", "Labels": {"l": "1"}});
        let mut c = cfg(json!({"Cmd": ["echo", "hi"], "Env": ["A=2", "B=3"]}));
        assert_eq!(
            merge_image(&mut c, &image).unwrap(),
            ("echo".to_string(), vec!["hi".to_string()])
        );
        assert_eq!(c.env, vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.working_dir, "/data");
        assert_eq!(c.labels["l"], "1");
        let mut c = cfg(json!({}));
        assert_eq!(merge_image(&mut c, &image).unwrap().0, "sh");
        // An entrypoint in the request drops the image's Cmd.
        let image2 = json!({"Entrypoint": ["/init"], "Cmd": ["x"]});
        let mut c = cfg(json!({"Entrypoint": ["top"]}));
        assert_eq!(
            merge_image(&mut c, &image2).unwrap(),
            ("top".to_string(), vec![])
        );
        let mut c = cfg(json!({}));
        assert_eq!(
            merge_image(&mut c, &image2).unwrap(),
            ("/init".to_string(), vec!["x".to_string()])
        );
        let mut c = cfg(json!({}));
        assert!(matches!(
            merge_image(&mut c, &json!({})),
            Err(ContainerError::Invalid(_))
        ));
        let mut c = cfg(json!({"Cmd": ["x"]}));
        merge_image(&mut c, &json!({})).unwrap();
        assert!(c.env.contains(&DEFAULT_PATH.to_string()));
    }

    #[test]
    fn env_merge_keeps_the_quadratic_rules() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            merge_env(
                v(&["PATH=/bin", "A=1", "A=dup", "B=1", "C=1"]),
                v(&["A=2", "D=1", "B", "A=3", "D=2"])
            ),
            v(&["PATH=/bin", "C=1", "B", "A=3", "D=2"])
        );
        assert_eq!(merge_env(v(&["A=1"]), v(&[])), v(&["A=1"]));
        assert_eq!(merge_env(v(&[]), v(&["X=1", "X=1"])), v(&["X=1"]));
    }

    #[test]
    fn create_time_checks_like_dockerd() {
        for s in [
            "TERM",
            "sigkill",
            "SIGRTMIN+15",
            "RTMAX-1",
            "9",
            "-1",
            "Sigusr1",
        ] {
            assert!(valid_signal(s), "{s}");
        }
        for s in [
            "0",
            "FOO",
            "SIGRTMIN+16",
            "RTMAX-0",
            "RTMIN++1",
            "SIG",
            " TERM",
        ] {
            assert!(!valid_signal(s), "{s}");
        }
        assert_eq!(check_tmpfs_options(""), Ok(()));
        assert_eq!(check_tmpfs_options("size=1m,mode=1777,exec,nosuid"), Ok(()));
        assert_eq!(check_tmpfs_options("size=1m,,x"), Err("".to_string()));
        assert_eq!(check_tmpfs_options("foo=1"), Err("foo".to_string()));
        for t in ["/", "//", "/.", "/a/..", "/../"] {
            assert!(
                check_tmpfs_target(t)
                    .unwrap_err()
                    .to_string()
                    .contains("can't be '/'"),
                "{t}"
            );
        }
        assert!(check_tmpfs_target("a")
            .unwrap_err()
            .to_string()
            .contains("must be absolute"));
        assert!(check_tmpfs_target("/a/b").is_ok());
    }

    #[test]
    fn host_config_checks() {
        let h = |v: Value| -> HostConfig { serde_json::from_value(v).unwrap() };
        assert!(validate_host_config(&h(json!({"Memory": 1000}))).is_err());
        assert!(validate_host_config(&h(
            json!({"AutoRemove": true, "RestartPolicy": {"Name": "always"}})
        ))
        .is_err());
        assert!(validate_host_config(&h(json!({"RestartPolicy": {"Name": "sometimes"}}))).is_err());
        assert!(validate_host_config(&h(json!({"Binds": ["vol:/x"]}))).is_err());
        assert!(validate_host_config(&h(json!({"Sysctls": {"kernel.hostname": "x"}}))).is_err());
        assert!(validate_host_config(&h(json!({"NetworkMode": "container:abc"}))).is_err());
        let w = validate_host_config(&h(
            json!({"Binds": ["/tmp:/x:ro"], "Sysctls": {"net.ipv4.ip_forward": "1"}}),
        ))
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            parse_bind("/a:/b:ro").unwrap(),
            ("/a".into(), "/b".into(), true)
        );
        assert!(parse_bind("/a:/b:bogus").is_err());
    }
}
