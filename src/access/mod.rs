//! Who may use the API over TCP: the state behind the gate in
//! `api/guard.rs` (tokens, the audit log) and the `allow-from` ranges the
//! loop checks at accept. The unix socket is governed by its file mode, as
//! with dockerd, and is not checked here.

pub mod audit;
pub mod cidr;
pub mod tokens;

use std::collections::HashMap;
use std::path::PathBuf;

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
}

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

    /// SIGHUP: read the tokens file again; a broken file keeps the old set.
    pub fn reload(&mut self) {
        match self.read_tokens() {
            Ok(t) => {
                log::info!("API tokens reloaded: {} token(s)", t.len());
                self.tokens = t;
            }
            Err(e) => log::error!("keeping the previous API tokens: {e}"),
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
