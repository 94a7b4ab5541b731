//! API tokens: a file of `NAME ROLE SHA256-OF-TOKEN` lines (`#` comments,
//! blank lines allowed). Only the hash is stored; a client sends the token
//! itself as `Authorization: Bearer TOKEN`. `coracle token new` makes one.

use std::io::Write;
use std::path::Path;

use crate::sha256::Sha256;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    ReadOnly,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub name: String,
    pub role: Role,
    hash: [u8; 32],
}

/// The tokens of one file.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    list: Vec<Token>,
}

impl Tokens {
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut list: Vec<Token> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("line {}: {why}", n + 1);
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, role, hash] = f[..] else {
                return Err(bad("want NAME ROLE SHA256-OF-TOKEN"));
            };
            if !valid_name(name) {
                return Err(bad("a token name is letters, digits, '.', '_' or '-'"));
            }
            let role = match role {
                "admin" => Role::Admin,
                "read-only" => Role::ReadOnly,
                other => return Err(bad(&format!("unknown role {other:?} (admin or read-only)"))),
            };
            let hash = parse_hash(hash.strip_prefix("sha256:").unwrap_or(hash))
                .ok_or_else(|| bad("the hash must be 64 hex digits (sha256 of the token)"))?;
            if list.iter().any(|t| t.name == name) {
                return Err(bad(&format!("token name {name:?} given twice")));
            }
            list.push(Token {
                name: name.to_string(),
                role,
                hash,
            });
        }
        Ok(Tokens { list })
    }

    /// Read a tokens file; a missing file is an error (the caller decides
    /// whether a missing default file matters).
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("api-tokens file {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("api-tokens file {}: {e}", path.display()))
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The token whose hash matches `secret`. Every entry is compared in
    /// full, so the time taken says nothing about which bytes matched.
    pub fn find(&self, secret: &str) -> Option<&Token> {
        let h: [u8; 32] = Sha256::digest(secret.as_bytes());
        let mut found = None;
        for t in &self.list {
            let diff = t
                .hash
                .iter()
                .zip(h.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(t);
            }
        }
        found
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh secret: 32 bytes from the kernel's CSPRNG, hex. No fallback: a
/// token from a guessable source would be worse than none.
fn new_secret() -> Result<String, String> {
    let mut b = [0u8; 32];
    let mut got = 0;
    while got < b.len() {
        let rest = &mut b[got..];
        // SAFETY: getrandom writes at most `rest.len()` bytes into `rest`,
        // a live, exclusively borrowed buffer.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => got += n,
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(format!("getrandom: {e}"));
                }
            }
        }
    }
    Ok(format!("crc_{}", hex(&b)))
}

/// `coracle token new NAME [--read-only]`: append the new token's hash to
/// `path` (created 0600 if missing) and print the token once.
pub fn new_token(path: &Path, name: &str, role: Role, out: &mut dyn Write) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    if !valid_name(name) {
        return Err(format!(
            "invalid token name {name:?}: use letters, digits, '.', '_' or '-'"
        ));
    }
    let shown = path.display();
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("read {shown}: {e}")),
    };
    let tokens = Tokens::parse(&existing).map_err(|e| format!("{shown}: {e}"))?;
    if tokens.list.iter().any(|t| t.name == name) {
        return Err(format!(
            "a token named {name:?} already exists in {shown}; remove its line first"
        ));
    }
    let secret = new_secret()?;
    let line = format!(
        "{name} {} {}\n",
        role.name(),
        hex(&Sha256::digest(secret.as_bytes()))
    );
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("open {shown}: {e}"))?;
    let sep = if existing.is_empty() || existing.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    f.write_all(format!("{sep}{line}").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("write {shown}: {e}"))?;
    let full = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let shown = full.display();
    let _ = writeln!(
        out,
        "{secret}\n\n\
         Token {name:?} ({}) added to {shown}; only its hash is kept, so copy it now.\n\
         The daemon reads that file at start-up and on SIGHUP; point it there with\n\
         \"api-tokens\": \"{shown}\" in daemon.json (or --api-tokens).\n\
         Clients send it as the header  Authorization: Bearer {secret}\n\
         (docker CLI: \"HttpHeaders\": {{\"Authorization\": \"Bearer {secret}\"}} in config.json).",
        role.name()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_find() {
        let h = hex(&Sha256::digest(b"s3cret"));
        let text = format!(
            "# owners\n\nalice admin {h}\nbob read-only sha256:{}\n",
            "ab".repeat(32)
        );
        let t = Tokens::parse(&text).unwrap();
        assert_eq!(t.len(), 2);
        let alice = t.find("s3cret").unwrap();
        assert_eq!((alice.name.as_str(), alice.role), ("alice", Role::Admin));
        assert!(t.find("s3cre").is_none() && t.find("").is_none());
        for bad in [
            "alice admin",
            "alice root 00",
            &format!("alice admin {}", "g".repeat(64)),
            &format!("a admin {h}\na read-only {h}"),
            &format!("bad/name admin {h}"),
        ] {
            assert!(Tokens::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_token_stores_only_the_hash() {
        let dir = std::env::temp_dir().join(format!("coracle-tok-{}", std::process::id()));
        let path = dir.join("tokens");
        let mut out = Vec::new();
        new_token(&path, "ci", Role::ReadOnly, &mut out).unwrap();
        let printed = String::from_utf8(out).unwrap();
        let secret = printed.lines().next().unwrap().to_string();
        assert!(secret.starts_with("crc_") && secret.len() == 68, "{secret}");
        let stored = std::fs::read_to_string(&path).unwrap();
        assert!(!stored.contains(&secret));
        let t = Tokens::load(&path).unwrap();
        assert_eq!(t.find(&secret).map(|t| t.role), Some(Role::ReadOnly));
        assert!(new_token(&path, "ci", Role::Admin, &mut Vec::new()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
