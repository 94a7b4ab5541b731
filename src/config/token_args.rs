//! `coracle token new`: its arguments, and which tokens file it writes.

use std::path::PathBuf;

use super::{Command, DEFAULT_CONFIG_FILE, DEFAULT_TOKENS_FILE};
use crate::access::tokens::Role;

/// `coracle token new NAME [--read-only] [--api-tokens FILE] [--config-file FILE]`:
/// the file is the flag's, else daemon.json's `api-tokens`, else the default.
pub(super) fn parse(args: &[String]) -> Result<Command, String> {
    const TOKEN_USAGE: &str =
        "usage: coracle token new NAME [--read-only] [--api-tokens FILE] [--config-file FILE]";
    if args.first().map(String::as_str) != Some("new") {
        return Err(TOKEN_USAGE.into());
    }
    let (mut name, mut role, mut file, mut config) = (None, Role::Admin, None, None);
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or(TOKEN_USAGE)
        };
        match flag {
            "--read-only" => role = Role::ReadOnly,
            "--api-tokens" => file = Some(value()?),
            "--config-file" => config = Some(value()?),
            s if !s.starts_with('-') && name.is_none() => name = Some(s.to_string()),
            _ => return Err(TOKEN_USAGE.into()),
        }
    }
    let name = name.ok_or(TOKEN_USAGE)?;
    let file = match file {
        Some(f) => f,
        None => {
            let explicit = config.is_some();
            let path = config.unwrap_or_else(|| DEFAULT_CONFIG_FILE.to_string());
            match std::fs::read_to_string(&path) {
                Ok(text) => serde_json::from_slice::<serde_json::Value>(text.as_bytes())
                    .map_err(|e| format!("invalid configuration file {path}: {e}"))?
                    .get("api-tokens")
                    .and_then(|v| v.as_str())
                    .unwrap_or(DEFAULT_TOKENS_FILE)
                    .to_string(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                    DEFAULT_TOKENS_FILE.to_string()
                }
                Err(e) => return Err(format!("unable to read configuration file {path}: {e}")),
            }
        }
    };
    Ok(Command::TokenNew {
        file: PathBuf::from(file),
        name,
        role,
    })
}
