//! Daemon configuration: command-line flags (dockerd's spelling) merged with
//! `/etc/coracle/daemon.json`. Hand-written: the flag set is small.

use std::path::PathBuf;
use std::time::Duration;

use crate::access::cidr::Cidr;
use crate::access::tokens::Role;

mod check_store_args;
mod registry_opts;
mod token_args;
use crate::net::{HostAddr, DEFAULT_UNIX_SOCKET};
pub use registry_opts::RegistryOpts;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/coracle/daemon.json";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/coracle";
pub const DEFAULT_TOKENS_FILE: &str = "/etc/coracle/tokens";
/// dockerd's `/etc/docker/certs.d`, coracle's spelling.
pub const DEFAULT_REGISTRY_CERTS_DIR: &str = "/etc/coracle/certs.d";

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
    /// `insecure-registries`: registries (`host[:port]`) spoken to over
    /// plain HTTP, besides loopback.
    pub insecure_registries: Vec<String>,
    /// `registry-certs-dir`: dockerd's `certs.d` layout for registries
    /// (`DIR/HOST[:PORT]/ca.crt`, `client.cert`, `client.key`).
    pub registry_certs_dir: PathBuf,
    /// `--insecure-tcp`: listen on a non-loopback TCP address with neither
    /// tokens nor TLS.
    pub insecure_tcp: bool,
    /// The API tokens file, and whether it was named (flag or daemon.json).
    pub api_tokens: PathBuf,
    pub api_tokens_explicit: bool,
    /// `allow-from`: the only addresses TCP connections are accepted from
    /// (empty: any).
    pub allow_from: Vec<Cidr>,
    /// `audit-log`: the file mutating and refused requests are recorded in.
    pub audit_log: Option<PathBuf>,
    /// dockerd's TLS flags.
    pub tls: TlsFlags,
    /// daemon.json `bridge`: the default bridge's name (`none`: no default
    /// network); unset: `coracle0`.
    pub bridge: Option<String>,
    /// daemon.json `bip`: the default bridge's address and subnet.
    pub bip: Option<String>,
    /// `--trace-timings`: log per-phase times of create/start/attach/wait/remove.
    pub trace_timings: bool,
    /// `max-concurrent-downloads`/`-uploads`, `registry-mirrors`.
    pub registry: RegistryOpts,
    /// `--userns-remap`: `default`, `USER[:GROUP]` or `UID[:GID]`
    /// (resolved against /etc/subuid and /etc/subgid at start-up).
    pub userns_remap: Option<String>,
}

/// `--tls`, `--tlsverify`, `--tlscacert`, `--tlscert`, `--tlskey`.
#[derive(Debug, Clone, Default)]
pub struct TlsFlags {
    pub tls: bool,
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsFlags {
    /// Whether TCP listeners speak TLS.
    pub fn enabled(&self) -> bool {
        self.tls || self.verify
    }
}

/// What the command line asks for (made once: its size does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
    CheckConfig,
    /// `coracle check-store [--repair] [--deep] [--data-root DIR]`.
    CheckStore(crate::store::check::Options),
    /// `coracle token new NAME [--read-only]`.
    TokenNew {
        file: PathBuf,
        name: String,
        role: Role,
    },
}

pub const USAGE: &str = "Usage: coracle [OPTIONS]
       coracle check-config
       coracle check-store [--repair] [--deep] [--data-root DIR]

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
      --api-enable-cors     The v1.3 docs' switch: as --api-cors-header '*' unless
                            an origin is given
      --no-new-privileges   Set no_new_privs on every container by default
      --insecure-registry HOST[:PORT]
                            Pull from / push to this registry over plain HTTP (repeatable)
      --registry-mirror URL Docker Hub mirror tried before Docker Hub (repeatable)
      --max-concurrent-downloads N / --max-concurrent-uploads N
                            Layers pulled (default 3) / pushed (default 5) at once
      --registry-certs-dir DIR
                            Registry CAs and client certificates, DIR/HOST[:PORT]/ca.crt
                            (default /etc/coracle/certs.d)
      --api-tokens FILE     API tokens (NAME ROLE SHA256 lines) required on TCP listeners
                            (default /etc/coracle/tokens, when it exists); SIGHUP rereads it
      --allow-from CIDR     Accept TCP connections only from these addresses (repeatable)
      --audit-log FILE      Record every state-changing or refused request in FILE
      --tlsverify           Serve TCP over TLS and require client certificates signed by
                            --tlscacert (--tls: TLS without client certificates)
      --tlscacert/--tlscert/--tlskey FILE
                            CA, server certificate and key (PEM)
      --insecure-tcp        Allow a non-loopback TCP listener with neither tokens nor TLS
      --userns-remap USER[:GROUP]
                            Run containers in a user namespace: root is the first id of
                            USER's ranges in /etc/subuid and /etc/subgid (default: dockremap,
                            whose ranges are added when missing)
      --trace-timings       Log the per-phase times of create, start, attach, wait and remove
  -v, --version             Print the version and exit
  -h, --help                Print this help and exit

       coracle token new NAME [--read-only] [--api-tokens FILE]
                            Make an API token: print it once, store its hash
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
    api_enable_cors: bool,
    insecure_registries: Vec<String>,
    registry_certs_dir: Option<String>,
    insecure_tcp: bool,
    api_tokens: Option<String>,
    allow_from: Vec<String>,
    audit_log: Option<String>,
    tls: bool,
    tlsverify: bool,
    tlscacert: Option<String>,
    tlscert: Option<String>,
    tlskey: Option<String>,
    trace_timings: bool,
    registry: registry_opts::RegistryFlags,
    userns_remap: Option<String>,
}

impl Flags {
    /// The setting a flag with one value sets (the last one given wins): one
    /// table instead of an assignment per flag in `parse_args`' loop.
    fn value_slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "--data-root" | "-g" | "--graph" => &mut self.data_root,
            "--config-file" => &mut self.config_file,
            "-l" | "--log-level" => &mut self.log_level,
            "-p" | "--pidfile" => &mut self.pidfile,
            "--max-connections" => &mut self.max_connections,
            "--head-timeout" => &mut self.head_timeout,
            "--api-cors-header" => &mut self.api_cors_header,
            "--registry-certs-dir" => &mut self.registry_certs_dir,
            "--api-tokens" => &mut self.api_tokens,
            "--audit-log" => &mut self.audit_log,
            "--tlscacert" => &mut self.tlscacert,
            "--tlscert" => &mut self.tlscert,
            "--tlskey" => &mut self.tlskey,
            "--userns-remap" => &mut self.userns_remap,
            _ => return None,
        })
    }

    /// The list a repeatable flag adds its value to.
    fn list_slot(&mut self, name: &str) -> Option<&mut Vec<String>> {
        Some(match name {
            "-H" | "--host" => &mut self.hosts,
            "--insecure-registry" => &mut self.insecure_registries,
            "--allow-from" => &mut self.allow_from,
            _ => return None,
        })
    }

    /// The switch a `--flag` / `--flag=true|false` sets.
    fn bool_slot(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "--insecure-tcp" => &mut self.insecure_tcp,
            "--tls" => &mut self.tls,
            "--tlsverify" => &mut self.tlsverify,
            "--trace-timings" => &mut self.trace_timings,
            _ => return None,
        })
    }
}

pub fn parse_args(args: &[String]) -> Result<Command, String> {
    if args.first().map(String::as_str) == Some("check-config") {
        return Ok(Command::CheckConfig);
    }
    if args.first().map(String::as_str) == Some("check-store") {
        return check_store_args::parse(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("token") {
        return token_args::parse(&args[1..]);
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
            "-D" | "--debug" => f.log_level = Some("debug".into()),
            "--api-enable-cors" => f.api_enable_cors = true,
            "--no-new-privileges" => {
                f.no_new_privileges = match inline.as_deref() {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(v) => return Err(format!("invalid value {v:?} for --no-new-privileges")),
                }
            }
            other => {
                if let Some(slot) = f.value_slot(other) {
                    *slot = Some(value()?);
                } else if let Some(list) = f.list_slot(other) {
                    list.push(value()?);
                } else if let Some(b) = f.bool_slot(other) {
                    *b = bool_flag(other, inline.as_deref())?;
                } else if !f.registry.take(other, &mut value)? {
                    return Err(format!("unknown flag: {other}\n\n{USAGE}"));
                }
            }
        }
        i += 1;
    }
    let explicit_file = f.config_file.is_some();
    let path = f
        .config_file
        .clone()
        .unwrap_or_else(|| DEFAULT_CONFIG_FILE.to_string());
    let file = match std::fs::read_to_string(&path) {
        Ok(text) => Some(parse_file(&text, &path)?),
        // A missing default file is fine; a missing named one is not.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit_file => None,
        Err(e) => return Err(format!("unable to read configuration file {path}: {e}")),
    };
    merge(f, file.as_ref(), &path).map(|c| Command::Run(Box::new(c)))
}

/// daemon.json's text as JSON.
fn parse_file(text: &str, path: &str) -> Result<serde_json::Value, String> {
    serde_json::from_slice(text.as_bytes())
        .map_err(|e| format!("invalid configuration file {path}: {e}"))
}

/// The configuration from daemon.json's text alone, no flags (the fuzz target's
/// entry point, fuzz/entries.rs): the same parse and merge as `parse_args`.
pub fn from_daemon_json(text: &str) -> Result<Config, String> {
    let path = "daemon.json";
    merge(Flags::default(), Some(&parse_file(text, path)?), path)
}

/// Combine flags with the file. As dockerd does, a setting given in both
/// places, or an unknown key in the file, is an error rather than a guess.
fn merge(mut f: Flags, file: Option<&serde_json::Value>, path: &str) -> Result<Config, String> {
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
        "insecure-registries",
        "insecure-tcp",
        "api-tokens",
        "allow-from",
        "audit-log",
        "tls",
        "tlsverify",
        "tlscacert",
        "tlscert",
        "tlskey",
        "bridge",
        "bip",
        "registry-certs-dir",
        "userns-remap",
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
        .filter(|k| !KEYS.contains(k) && !registry_opts::KEYS.contains(k))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "the following directives don't match any configuration option: {}",
            unknown.join(", ")
        ));
    }
    let registry = registry_opts::merge(std::mem::take(&mut f.registry), obj, path)?;
    let mut conflicts = Vec::new();
    // The settings given as a string (or number, or bool) in either place, in
    // one loop: the first bad file value is the error.
    let mut picked = [
        ("data-root", f.data_root),
        ("log-level", f.log_level),
        ("pidfile", f.pidfile),
        ("max-connections", f.max_connections),
        ("head-timeout", f.head_timeout),
        ("log-driver", None),
        ("api-cors-header", f.api_cors_header),
        ("api-tokens", f.api_tokens),
        ("audit-log", f.audit_log),
        ("bridge", None),
        ("bip", None),
        ("registry-certs-dir", f.registry_certs_dir),
        ("userns-remap", f.userns_remap),
        ("tlscacert", f.tlscacert),
        ("tlscert", f.tlscert),
        ("tlskey", f.tlskey),
    ];
    for (key, flag) in picked.iter_mut() {
        let from_file = match obj.get(*key) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::Bool(b)) => Some(b.to_string()),
            Some(_) => return Err(format!("{key} in {path} must be a string or number")),
        };
        if flag.is_some() && from_file.is_some() {
            conflicts.push(key.to_string());
        }
        if flag.is_none() {
            *flag = from_file;
        }
    }
    let [(_, data_root), (_, mut log_level), (_, pidfile), (_, max_connections), (_, head_timeout), (_, log_driver), (_, api_cors_header), (_, api_tokens), (_, audit_log), (_, bridge), (_, bip), (_, registry_certs_dir), (_, userns_remap), (_, tlscacert), (_, tlscert), (_, tlskey)] =
        picked;
    // dockerd's old `--api-enable-cors`: any origin, unless one is named.
    let api_cors_header = api_cors_header.or(f.api_enable_cors.then(|| "*".to_string()));
    let userns_remap = userns_remap.filter(|v| !v.is_empty());
    let mut file_bool = |key: &str, flag: bool| -> Result<bool, String> {
        match obj.get(key) {
            None | Some(serde_json::Value::Null) => Ok(flag),
            Some(serde_json::Value::Bool(b)) => {
                if flag {
                    conflicts.push(key.to_string());
                }
                Ok(*b)
            }
            Some(_) => Err(format!("{key} in {path} must be a boolean")),
        }
    };
    let insecure_tcp = file_bool("insecure-tcp", f.insecure_tcp)?;
    let tls = file_bool("tls", f.tls)?;
    let tlsverify = file_bool("tlsverify", f.tlsverify)?;
    let file_allow = string_list(obj, "allow-from", path)?;
    if !f.allow_from.is_empty() && !file_allow.is_empty() {
        conflicts.push("allow-from".into());
    }
    let file_nnp = match obj.get("no-new-privileges") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Bool(b)) => Some(*b),
        Some(_) => return Err(format!("no-new-privileges in {path} must be a boolean")),
    };
    if f.no_new_privileges && file_nnp.is_some() {
        conflicts.push("no-new-privileges".into());
    }
    let file_hosts = string_list(obj, "hosts", path)?;
    let file_insecure = string_list(obj, "insecure-registries", path)?;
    if !f.insecure_registries.is_empty() && !file_insecure.is_empty() {
        conflicts.push("insecure-registries".into());
    }
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
        .map(|h| match tls || tlsverify {
            true => HostAddr::parse_with_port(h, crate::net::DEFAULT_TLS_PORT),
            false => HostAddr::parse(h),
        })
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
    let allow_from = if f.allow_from.is_empty() {
        file_allow
    } else {
        f.allow_from
    };
    let allow_from = allow_from
        .iter()
        .map(|c| Cidr::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
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
        insecure_registries: if f.insecure_registries.is_empty() {
            file_insecure
        } else {
            f.insecure_registries
        },
        registry_certs_dir: PathBuf::from(
            registry_certs_dir.unwrap_or_else(|| DEFAULT_REGISTRY_CERTS_DIR.to_string()),
        ),
        insecure_tcp,
        api_tokens_explicit: api_tokens.is_some(),
        api_tokens: PathBuf::from(api_tokens.unwrap_or_else(|| DEFAULT_TOKENS_FILE.to_string())),
        allow_from,
        audit_log: audit_log.map(PathBuf::from),
        tls: TlsFlags {
            tls,
            verify: tlsverify,
            ca: tlscacert.map(PathBuf::from),
            cert: tlscert.map(PathBuf::from),
            key: tlskey.map(PathBuf::from),
        },
        bridge,
        bip,
        trace_timings: f.trace_timings,
        registry,
        userns_remap,
    })
}

/// A daemon.json key holding an array of strings (absent: empty).
fn string_list(
    obj: &serde_json::Map<String, serde_json::Value>,
    key: &str,
    path: &str,
) -> Result<Vec<String>, String> {
    let bad = || format!("{key} in {path} must be an array of strings");
    match obj.get(key) {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or_else(bad))
            .collect(),
        Some(_) => Err(bad()),
    }
}

/// `--flag` or `--flag=true|false`.
fn bool_flag(name: &str, inline: Option<&str>) -> Result<bool, String> {
    match inline {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("invalid value {v:?} for {name}")),
    }
}

#[cfg(test)]
mod tests;
