//! Daemon configuration: command-line flags (dockerd's spelling) merged with
//! `/etc/coracle/daemon.json`. Hand-written: the flag set is small.

use std::path::PathBuf;
use std::time::Duration;

use crate::net::{HostAddr, DEFAULT_UNIX_SOCKET};

pub const DEFAULT_CONFIG_FILE: &str = "/etc/coracle/daemon.json";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/coracle";

#[derive(Debug, Clone)]
pub struct Config {
    pub hosts: Vec<HostAddr>,
    pub data_root: PathBuf,
    pub log_level: log::LevelFilter,
    pub pidfile: Option<PathBuf>,
    pub max_connections: usize,
    pub head_timeout: Duration,
    /// Default `LogConfig` options for containers (`max-size`, `max-file`).
    pub log_opts: serde_json::Map<String, serde_json::Value>,
    pub log_driver: String,
    /// dockerd's `api-cors-header`: the one origin (or `*`) whose browser
    /// requests are served; empty refuses every request with an `Origin`.
    pub api_cors_header: String,
    /// `no-new-privileges`: every container gets no_new_privs unless its
    /// `--security-opt no-new-privileges=false` says otherwise.
    pub no_new_privileges: bool,
    /// daemon.json `bridge`: the default bridge's name (`none`: no default
    /// network); unset: `coracle0`.
    pub bridge: Option<String>,
    /// daemon.json `bip`: the default bridge's address and subnet.
    pub bip: Option<String>,
}

/// What the command line asks for (made once: its size does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Run(Config),
    Help,
    Version,
    CheckConfig,
}

pub const USAGE: &str = "Usage: coracle [OPTIONS]
       coracle check-config

A tiny container daemon that speaks the Docker Engine API.

Options:
  -H, --host ADDR           Listen on unix:///path, tcp://ADDR[:PORT] or fd:// (repeatable;
                            default unix:///var/run/docker.sock)
      --data-root DIR       Root of persistent state (default /var/lib/coracle)
      --config-file FILE    Daemon configuration file (default /etc/coracle/daemon.json)
  -l, --log-level LEVEL     debug, info, warn or error (default info)
  -D, --debug               Same as --log-level debug
  -p, --pidfile FILE        Write the daemon's PID to FILE
      --max-connections N   Most API connections at once (default 256)
      --head-timeout SECS   Time allowed for a request head to arrive, and the longest
                            wait for the next byte of a request body (default 30)
      --api-cors-header ORIGIN
                            Serve browser requests from ORIGIN (or * for any); by
                            default requests carrying an Origin header are refused
      --no-new-privileges   Set no_new_privs on every container by default
  -v, --version             Print the version and exit
  -h, --help                Print this help and exit
";

/// Settings given on the command line, before merging with the file.
#[derive(Default)]
struct Flags {
    hosts: Vec<String>,
    data_root: Option<String>,
    config_file: Option<String>,
    log_level: Option<String>,
    pidfile: Option<String>,
    max_connections: Option<String>,
    head_timeout: Option<String>,
    api_cors_header: Option<String>,
    no_new_privileges: bool,
}

pub fn parse_args(args: &[String]) -> Result<Command, String> {
    if args.first().map(String::as_str) == Some("check-config") {
        return Ok(Command::CheckConfig);
    }
    let mut f = Flags::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with('-') => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            i += 1;
            args.get(i)
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: {name}"))
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "-v" | "--version" => return Ok(Command::Version),
            "-H" | "--host" => f.hosts.push(value()?),
            "--data-root" | "-g" | "--graph" => f.data_root = Some(value()?),
            "--config-file" => f.config_file = Some(value()?),
            "-l" | "--log-level" => f.log_level = Some(value()?),
            "-D" | "--debug" => f.log_level = Some("debug".into()),
            "-p" | "--pidfile" => f.pidfile = Some(value()?),
            "--max-connections" => f.max_connections = Some(value()?),
            "--head-timeout" => f.head_timeout = Some(value()?),
            "--api-cors-header" => f.api_cors_header = Some(value()?),
            "--no-new-privileges" => {
                f.no_new_privileges = match inline.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => return Err(format!("invalid value {v:?} for --no-new-privileges")),
                }
            }
            other => return Err(format!("unknown flag: {other}\n\n{USAGE}")),
        }
        i += 1;
    }
    let explicit_file = f.config_file.is_some();
    let path = f
        .config_file
        .clone()
        .unwrap_or_else(|| DEFAULT_CONFIG_FILE.to_string());
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => Some(
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| format!("invalid configuration file {path}: {e}"))?,
        ),
        // A missing default file is fine; a missing named one is not.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit_file => None,
        Err(e) => return Err(format!("unable to read configuration file {path}: {e}")),
    };
    merge(f, file.as_ref(), &path).map(Command::Run)
}

/// Combine flags with the file. As dockerd does, a setting given in both
/// places, or an unknown key in the file, is an error rather than a guess.
fn merge(f: Flags, file: Option<&serde_json::Value>, path: &str) -> Result<Config, String> {
    const KEYS: &[&str] = &[
        "hosts",
        "data-root",
        "log-level",
        "debug",
        "pidfile",
        "max-connections",
        "head-timeout",
        "log-opts",
        "log-driver",
        "api-cors-header",
        "no-new-privileges",
        "bridge",
        "bip",
    ];
    let empty = serde_json::Map::new();
    let obj = match file {
        None => &empty,
        Some(serde_json::Value::Object(o)) => o,
        Some(_) => return Err(format!("configuration file {path} must hold a JSON object")),
    };
    let unknown: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the following directives don't match any configuration option: {}",
            unknown.join(", ")
        ));
    }
    let mut conflicts = Vec::new();
    let mut pick = |key: &str, flag: Option<String>| -> Result<Option<String>, String> {
        let from_file = match obj.get(key) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
            Some(_) => return Err(format!("{key} in {path} must be a string or number")),
        };
        if flag.is_some() && from_file.is_some() {
            conflicts.push(key.to_string());
        }
        Ok(flag.or(from_file))
    };
    let data_root = pick("data-root", f.data_root)?;
    let mut log_level = pick("log-level", f.log_level)?;
    let pidfile = pick("pidfile", f.pidfile)?;
    let max_connections = pick("max-connections", f.max_connections)?;
    let head_timeout = pick("head-timeout", f.head_timeout)?;
    let log_driver = pick("log-driver", None)?;
    let api_cors_header = pick("api-cors-header", f.api_cors_header)?;
    let bridge = pick("bridge", None)?;
    let bip = pick("bip", None)?;
    let file_nnp = match obj.get("no-new-privileges") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err(format!("no-new-privileges in {path} must be a boolean")),
    };
    if f.no_new_privileges && file_nnp.is_some() {
        conflicts.push("no-new-privileges".into());
    }
    let file_hosts: Vec<String> = match obj.get("hosts") {
        None => Vec::new(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or("hosts must be strings")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(format!("hosts in {path} must be an array of strings")),
    };
    if !f.hosts.is_empty() && !file_hosts.is_empty() {
        conflicts.push("hosts".into());
    }
    if !conflicts.is_empty() {
        return Err(format!(
            "the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        ));
    }
    if obj.get("debug").and_then(|v| v.as_bool()) == Some(true) && log_level.is_none() {
        log_level = Some("debug".into());
    }
    let host_strings = if f.hosts.is_empty() {
        file_hosts
    } else {
        f.hosts
    };
    let mut hosts = host_strings
        .iter()
        .map(|h| HostAddr::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    if hosts.is_empty() {
        hosts.push(HostAddr::Unix(PathBuf::from(DEFAULT_UNIX_SOCKET)));
    }
    let log_level = match log_level.as_deref().unwrap_or("info") {
        "debug" => log::LevelFilter::Debug,
        "info" => log::LevelFilter::Info,
        "warn" | "warning" => log::LevelFilter::Warn,
        "error" | "fatal" => log::LevelFilter::Error,
        other => return Err(format!("unable to parse logging level: {other}")),
    };
    let positive = |key: &str, v: Option<String>, default: u64| -> Result<u64, String> {
        match v {
            None => Ok(default),
            Some(s) => s
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{key} must be a positive integer, not {s:?}")),
        }
    };
    let log_opts = match obj.get("log-opts") {
        None => serde_json::Map::new(),
        Some(serde_json::Value::Object(o)) => o.clone(),
        Some(_) => return Err(format!("log-opts in {path} must be an object")),
    };
    let data_root = PathBuf::from(data_root.unwrap_or_else(|| DEFAULT_DATA_ROOT.to_string()));
    if !data_root.is_absolute() {
        return Err(format!(
            "data-root must be an absolute path, not {}",
            data_root.display()
        ));
    }
    Ok(Config {
        hosts,
        data_root,
        log_level,
        pidfile: pidfile.map(PathBuf::from),
        max_connections: positive("max-connections", max_connections, 256)? as usize,
        head_timeout: Duration::from_secs(positive("head-timeout", head_timeout, 30)?),
        log_opts,
        log_driver: log_driver.unwrap_or_else(|| "json-file".into()),
        api_cors_header: api_cors_header.unwrap_or_default(),
        no_new_privileges: f.no_new_privileges || file_nnp == Some(true),
        bridge,
        bip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        v.push("--config-file".into());
        v.push("/nonexistent/coracle.json".into());
        v
    }

    fn run(flags: Flags, file: serde_json::Value) -> Result<Config, String> {
        merge(flags, Some(&file), "daemon.json")
    }

    #[test]
    fn flags_and_defaults() {
        let cfg = merge(Flags::default(), None, "x").unwrap();
        assert_eq!(cfg.hosts, vec![HostAddr::Unix(DEFAULT_UNIX_SOCKET.into())]);
        assert_eq!(cfg.data_root, PathBuf::from(DEFAULT_DATA_ROOT));
        assert!(matches!(parse_args(&["-h".to_string()]), Ok(Command::Help)));
        assert!(parse_args(&args(&["--bogus"])).is_err());
        // An explicitly named config file that is missing is an error.
        assert!(parse_args(&args(&[])).is_err());
    }

    #[test]
    fn file_merge_rules() {
        let f = Flags {
            hosts: vec!["tcp://127.0.0.1:1".into()],
            ..Flags::default()
        };
        let err = run(f, serde_json::json!({"hosts": ["unix:///x"]})).unwrap_err();
        assert!(err.contains("both as a flag"), "{err}");
        let err = run(Flags::default(), serde_json::json!({"nope": 1})).unwrap_err();
        assert!(err.contains("nope"), "{err}");
        let cfg = run(
            Flags::default(),
            serde_json::json!({"hosts": ["tcp://127.0.0.1:9"], "data-root": "/d", "debug": true,
                               "log-opts": {"max-size": "1m"}, "max-connections": 8}),
        )
        .unwrap();
        assert_eq!(
            cfg.hosts,
            vec![HostAddr::Tcp("127.0.0.1:9".parse().unwrap())]
        );
        assert_eq!(cfg.log_level, log::LevelFilter::Debug);
        assert_eq!(cfg.max_connections, 8);
        assert_eq!(cfg.log_opts["max-size"], "1m");
        assert!(run(Flags::default(), serde_json::json!({"data-root": "rel"})).is_err());
        assert!(run(Flags::default(), serde_json::json!({"max-connections": 0})).is_err());
        // api-cors-header: empty (no cross-origin requests) unless set.
        assert_eq!(cfg.api_cors_header, "");
        let cfg = run(
            Flags::default(),
            serde_json::json!({"api-cors-header": "http://ui.example"}),
        )
        .unwrap();
        assert_eq!(cfg.api_cors_header, "http://ui.example");
    }
}
