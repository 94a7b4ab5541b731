//! The audit log: one JSON line per request that changes state or was
//! refused (time, peer, token name, method, path, status), appended to a
//! file that is rotated at `MAX_SIZE` into `.1` .. `.KEEP` so it stays
//! bounded on a small disk.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

/// Rotate once the file would grow past this.
pub const MAX_SIZE: u64 = 4 * 1024 * 1024;
/// Rotated files kept besides the live one.
pub const KEEP: u32 = 2;

pub struct AuditLog {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_size: u64,
    /// A write failed: reported once, retried on the next line.
    failing: bool,
}

/// One line of the log.
pub struct Entry<'a> {
    pub peer: &'a str,
    pub token: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

impl AuditLog {
    /// Open (create) the log; a file we cannot write is a start-up error.
    pub fn open(path: PathBuf) -> Result<AuditLog, String> {
        let mut log = AuditLog {
            path,
            file: None,
            size: 0,
            max_size: MAX_SIZE,
            failing: false,
        };
        log.reopen()
            .map_err(|e| format!("audit-log {}: {e}", log.path.display()))?;
        Ok(log)
    }

    fn reopen(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)?;
        self.size = f.metadata()?.len();
        self.file = Some(f);
        Ok(())
    }

    pub fn record(&mut self, e: &Entry) {
        let line = crate::json!({
            "time": crate::timefmt::now_rfc3339(),
            "peer": e.peer,
            "token": e.token,
            "method": e.method,
            "path": e.path,
            "status": e.status,
        });
        let mut line = crate::json::text(&line);
        line.push('\n');
        self.append(line.as_bytes());
    }

    /// A connection closed at accept (its address is outside allow-from).
    pub fn record_refused_connection(&mut self, peer: &str) {
        let line = crate::json!({
            "time": crate::timefmt::now_rfc3339(),
            "peer": peer,
            "refused": "not in allow-from",
        });
        let mut line = crate::json::text(&line);
        line.push('\n');
        self.append(line.as_bytes());
    }

    fn append(&mut self, line: &[u8]) {
        if self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate();
        }
        if self.file.is_none() {
            let _ = self.reopen();
        }
        let res = match &mut self.file {
            Some(f) => f.write_all(line),
            None => Err(std::io::Error::other("not open")),
        };
        match res {
            Ok(()) => {
                self.size += line.len() as u64;
                self.failing = false;
            }
            Err(e) => {
                if !self.failing {
                    log::error!("audit-log {}: {e}", self.path.display());
                }
                self.failing = true;
                self.file = None;
            }
        }
    }

    fn rotate(&mut self) {
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        for n in (1..KEEP).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(1));
        self.file = None;
        if let Err(e) = self.reopen() {
            log::error!("audit-log {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_rotation() {
        let dir = std::env::temp_dir().join(format!("coracle-audit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("audit.log");
        let mut log = AuditLog::open(path.clone()).unwrap();
        log.max_size = 300;
        let e = Entry {
            peer: "10.0.0.2:5000",
            token: Some("ci"),
            method: "POST",
            path: "/containers/create",
            status: 201,
        };
        for _ in 0..10 {
            log.record(&e);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["token"], "ci");
        assert_eq!(first["status"], 201);
        assert!(text.len() <= 300);
        assert!(dir.join("audit.log.1").exists() && dir.join("audit.log.2").exists());
        assert!(!dir.join("audit.log.3").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
