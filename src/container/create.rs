//! Turning a create request into a container record: dockerd's merge of the
//! image config (Entrypoint/Cmd, Env, WorkingDir, User, Labels) and the
//! validation of HostConfig, all before anything touches the disk.

use serde_json::Value;

use super::config::{ContainerConfig, HealthConfig};
use super::error::ContainerError;
pub use super::validate::{network_mode, parse_bind, validate_config, validate_host_config};

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

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
    merge_healthcheck(config, &image_config["Healthcheck"])?;
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

/// dockerd's merge of the image's `Healthcheck` (unset fields of the
/// request's take the image's), then its checks (1 ms minimum durations).
fn merge_healthcheck(config: &mut ContainerConfig, image: &Value) -> Result<(), ContainerError> {
    if let Ok(img) = crate::json::from_value::<HealthConfig>(image) {
        if !image.is_null() {
            match &mut config.healthcheck {
                None => config.healthcheck = Some(img),
                Some(h) => {
                    if h.test.is_empty() {
                        h.test = img.test;
                    }
                    for (mine, theirs) in [
                        (&mut h.interval, img.interval),
                        (&mut h.timeout, img.timeout),
                        (&mut h.start_period, img.start_period),
                        (&mut h.start_interval, img.start_interval),
                        (&mut h.retries, img.retries),
                    ] {
                        if *mine == 0 {
                            *mine = theirs;
                        }
                    }
                }
            }
        }
    }
    let Some(h) = &config.healthcheck else {
        return Ok(());
    };
    const MIN: i64 = 1_000_000;
    for (v, name) in [
        (h.interval, "Interval"),
        (h.timeout, "Timeout"),
        (h.start_period, "StartPeriod"),
        (h.start_interval, "StartInterval"),
    ] {
        if v != 0 && v < MIN {
            return Err(ContainerError::Invalid(format!(
                "{name} in Healthcheck cannot be less than 1ms"
            )));
        }
    }
    if h.retries < 0 {
        return Err(ContainerError::Invalid(
            "Retries in Healthcheck cannot be negative".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::config::HostConfig;
    use super::super::validate::{check_tmpfs_options, check_tmpfs_target, valid_signal};
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
        // Named volumes are valid (volume_mounts.rs); a bad name is not.
        assert!(validate_host_config(&h(json!({"Binds": ["vol:/x"]}))).is_ok());
        assert!(validate_host_config(&h(json!({"Binds": ["v$l:/x"]}))).is_err());
        assert!(validate_host_config(&h(json!({"Sysctls": {"kernel.hostname": "x"}}))).is_err());
        // container:<name> is checked against the registry by the engine.
        assert!(validate_host_config(&h(json!({"NetworkMode": "container:"}))).is_err());
        assert!(validate_host_config(&h(json!({"NetworkMode": "container:abc"}))).is_ok());
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
