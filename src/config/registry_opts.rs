//! The registry transfer options, dockerd's spelling: `--max-concurrent-downloads`,
//! `--max-concurrent-uploads` and `--registry-mirror` (daemon.json
//! `max-concurrent-downloads`, `max-concurrent-uploads`, `registry-mirrors`).

use serde_json::{Map, Value};

/// daemon.json keys handled here.
pub(super) const KEYS: &[&str] = &[
    "max-concurrent-downloads",
    "max-concurrent-uploads",
    "registry-mirrors",
];

/// dockerd's defaults.
const DEFAULT_DOWNLOADS: usize = 3;
const DEFAULT_UPLOADS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOpts {
    /// Layers downloaded at once by one pull.
    pub max_downloads: usize,
    /// Layers uploaded at once by one push.
    pub max_uploads: usize,
    /// Docker Hub mirrors, normalised as dockerd shows them
    /// (`http://host:port/`), tried in order before Docker Hub.
    pub mirrors: Vec<String>,
}

impl Default for RegistryOpts {
    fn default() -> RegistryOpts {
        RegistryOpts {
            max_downloads: DEFAULT_DOWNLOADS,
            max_uploads: DEFAULT_UPLOADS,
            mirrors: Vec::new(),
        }
    }
}

/// What the command line said.
#[derive(Default)]
pub(super) struct RegistryFlags {
    downloads: Option<String>,
    uploads: Option<String>,
    mirrors: Vec<String>,
}

impl RegistryFlags {
    /// Take `name`'s value if the flag is one of ours.
    pub(super) fn take(
        &mut self,
        name: &str,
        value: &mut dyn FnMut() -> Result<String, String>,
    ) -> Result<bool, String> {
        match name {
            "--max-concurrent-downloads" => self.downloads = Some(value()?),
            "--max-concurrent-uploads" => self.uploads = Some(value()?),
            "--registry-mirror" => self.mirrors.push(value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// dockerd's `ValidateMirror`: an http or https URL with nothing after the
/// host but `/`; shown with a trailing `/`.
pub fn validate_mirror(m: &str) -> Result<String, String> {
    let rest = m
        .strip_prefix("http://")
        .or_else(|| m.strip_prefix("https://"))
        .ok_or_else(|| {
            let scheme = m.split_once("://").map(|(s, _)| s).unwrap_or("");
            format!("invalid mirror: unsupported scheme {scheme:?} in {m:?}")
        })?;
    let host = rest.strip_suffix('/').unwrap_or(rest);
    if host.is_empty() || host.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!(
            "invalid mirror: path, query, or fragment at end of the URI {m:?}"
        ));
    }
    let scheme = &m[..m.len() - rest.len()];
    Ok(format!("{scheme}{host}/"))
}

fn count(what: &str, v: Option<String>, default: usize) -> Result<usize, String> {
    match v {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("invalid max concurrent {what}: {s}")),
    }
}

/// Merge the flags with daemon.json; a setting in both places is refused
/// as dockerd does.
pub(super) fn merge(
    f: RegistryFlags,
    obj: &Map<String, Value>,
    path: &str,
) -> Result<RegistryOpts, String> {
    let mut conflicts = Vec::new();
    let mut number = |key: &str, flag: Option<String>| -> Result<Option<String>, String> {
        let file = match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(format!("{key} in {path} must be a number")),
        };
        if flag.is_some() && file.is_some() {
            conflicts.push(key.to_string());
        }
        Ok(flag.or(file))
    };
    let downloads = number("max-concurrent-downloads", f.downloads)?;
    let uploads = number("max-concurrent-uploads", f.uploads)?;
    let file_mirrors = super::string_list(obj, "registry-mirrors", path)?;
    if !f.mirrors.is_empty() && !file_mirrors.is_empty() {
        conflicts.push("registry-mirrors".into());
    }
    if !conflicts.is_empty() {
        return Err(format!(
            "the following directives are specified both as a flag and in the configuration file: {}",
            conflicts.join(", ")
        ));
    }
    let mirrors = if f.mirrors.is_empty() {
        file_mirrors
    } else {
        f.mirrors
    };
    Ok(RegistryOpts {
        max_downloads: count("downloads", downloads, DEFAULT_DOWNLOADS)?,
        max_uploads: count("uploads", uploads, DEFAULT_UPLOADS)?,
        mirrors: mirrors
            .iter()
            .map(|m| validate_mirror(m))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn defaults_flags_and_file() {
        let o = merge(RegistryFlags::default(), &Map::new(), "f").unwrap();
        assert_eq!(o, RegistryOpts::default());
        assert_eq!((o.max_downloads, o.max_uploads), (3, 5));
        let mut f = RegistryFlags::default();
        let mut one = || Ok("1".to_string());
        assert!(f.take("--max-concurrent-downloads", &mut one).unwrap());
        assert!(!f.take("--other", &mut one).unwrap());
        let file = obj(
            json!({"max-concurrent-uploads": 2, "registry-mirrors": ["http://127.0.0.1:5000"]}),
        );
        let o = merge(f, &file, "f").unwrap();
        assert_eq!(o.max_downloads, 1);
        assert_eq!(o.max_uploads, 2);
        assert_eq!(o.mirrors, vec!["http://127.0.0.1:5000/".to_string()]);
    }

    #[test]
    fn bad_values_are_refused_in_dockerds_words() {
        let file = obj(json!({"max-concurrent-downloads": 0}));
        let e = merge(RegistryFlags::default(), &file, "f").unwrap_err();
        assert_eq!(e, "invalid max concurrent downloads: 0");
        let e = validate_mirror("ftp://x").unwrap_err();
        assert_eq!(
            e,
            "invalid mirror: unsupported scheme \"ftp\" in \"ftp://x\""
        );
        assert!(validate_mirror("https://m.lan/v2/").is_err());
        assert_eq!(validate_mirror("https://m.lan").unwrap(), "https://m.lan/");
        let mut f = RegistryFlags::default();
        let mut v = || Ok("http://a".to_string());
        f.take("--registry-mirror", &mut v).unwrap();
        let file = obj(json!({"registry-mirrors": ["http://b"]}));
        assert!(merge(f, &file, "f")
            .unwrap_err()
            .contains("registry-mirrors"));
    }
}
