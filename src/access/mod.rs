//! Who may use the API over TCP: the state behind the gate in
//! `api/guard.rs` (tokens, the audit log) and the `allow-from` ranges the
//! loop checks at accept. The unix socket is governed by its file mode, as
//! with dockerd, and is not checked here.

pub mod audit;
pub mod cidr;
pub mod tokens;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::reply::ConnId;
use audit::AuditLog;
use tokens::Tokens;

/// A mutating or refused request whose answer is not written yet: what
/// its audit line will say besides the status.
#[derive(Debug, Clone)]
pub struct AuditCtx {
    pub peer: String,
    pub token: Option<String>,
    pub method: String,
    pub path: String,
}

#[derive(Default)]
pub struct Access {
    /// The tokens file, and whether it was named explicitly (a missing
    /// default file means "no tokens"; a missing named one is an error).
    tokens_path: Option<(PathBuf, bool)>,
    pub tokens: Tokens,
    pub audit: Option<AuditLog>,
    /// Audit lines waiting for a buffered body's answer, by connection.
    pub pending: HashMap<ConnId, AuditCtx>,
    /// Failed authentications by address: the count in the current window
    /// and when it began.
    failures: HashMap<IpAddr, (u32, Instant)>,
}

/// Failed authentications an address may have per window; beyond that its
/// connections are closed at accept until the window ends (token guessing
/// slowed to a trickle).
pub const FAIL_LIMIT: u32 = 20;
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at once (the oldest window is forgotten first).
const FAIL_TRACKED: usize = 1024;

impl Access {
    pub fn open(config: &Config) -> Result<Access, String> {
        let mut a = Access {
            tokens_path: Some((config.api_tokens.clone(), config.api_tokens_explicit)),
            ..Access::default()
        };
        a.tokens = a.read_tokens()?;
        if let Some(p) = &config.audit_log {
            a.audit = Some(AuditLog::open(p.clone())?);
        }
        Ok(a)
    }

    fn read_tokens(&self) -> Result<Tokens, String> {
        let Some((path, explicit)) = &self.tokens_path else {
            return Ok(Tokens::default());
        };
        if !explicit && !path.exists() {
            return Ok(Tokens::default());
        }
        Tokens::load(path)
    }

    /// SIGHUP: read the tokens file again; a broken file keeps the old set,
    /// and so does an empty one when `required` (an exposed listener that
    /// would otherwise be open to anyone).
    pub fn reload(&mut self, required: bool) {
        match self.read_tokens() {
            Ok(t) if t.is_empty() && required => log::error!(
                "keeping the previous API tokens: the file now has none, which would open an exposed TCP listener to anyone"
            ),
            Ok(t) => {
                log::info!("API tokens reloaded: {} token(s)", t.len());
                self.tokens = t;
            }
            Err(e) => log::error!("keeping the previous API tokens: {e}"),
        }
    }

    /// A request from `ip` failed authentication.
    pub fn note_failure(&mut self, ip: IpAddr, now: Instant) {
        let e = self.failures.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= FAIL_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        if e.0 == FAIL_LIMIT {
            log::warn!(
                "{ip}: {FAIL_LIMIT} failed authentications in a minute; its connections are closed until {}s have passed",
                FAIL_WINDOW.as_secs()
            );
        }
        if self.failures.len() > FAIL_TRACKED {
            let oldest = self
                .failures
                .iter()
                .min_by_key(|(_, v)| v.1)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.failures.remove(&k);
            }
        }
    }

    /// Whether `ip` failed too often in the current window.
    pub fn locked_out(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.failures.get(&ip) {
            Some((_, since)) if now.duration_since(*since) >= FAIL_WINDOW => {
                self.failures.remove(&ip);
                false
            }
            Some((n, _)) => *n >= FAIL_LIMIT,
            None => false,
        }
    }

    /// Write an audit line (when the log is on).
    pub fn record(&mut self, ctx: &AuditCtx, status: u16) {
        if let Some(log) = &mut self.audit {
            log.record(&audit::Entry {
                peer: &ctx.peer,
                token: ctx.token.as_deref(),
                method: &ctx.method,
                path: &ctx.path,
                status,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_lock_an_address_out_for_a_window() {
        let mut a = Access::default();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let other: IpAddr = "10.0.0.8".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FAIL_LIMIT - 1 {
            a.note_failure(ip, t0);
        }
        assert!(!a.locked_out(ip, t0));
        a.note_failure(ip, t0);
        assert!(a.locked_out(ip, t0) && !a.locked_out(other, t0));
        assert!(!a.locked_out(ip, t0 + FAIL_WINDOW));
        for i in 0..FAIL_TRACKED as u32 + 10 {
            a.note_failure(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(a.failures.len() <= FAIL_TRACKED);
    }
}
