//! The container's program: found on its PATH as runc finds it (Go's
//! exec.LookPath) and exec'd, failures worded as runc and dockerd word
//! them (not found: 127, not executable: 126).

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;

use super::errors::{setup, LaunchError};

/// Go's syscall error strings: glibc's, first letter lowercased.
fn go_err(e: Errno) -> String {
    crate::goerr::errno_text(e)
}

/// Go's exec.LookPath check: exists, not a dir, some x bit.
fn executable(p: &Path) -> Result<(), Errno> {
    let md =
        std::fs::metadata(p).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    if md.is_dir() || md.mode() & 0o111 == 0 {
        return Err(Errno::EACCES);
    }
    Ok(())
}

/// Find `name` like runc does (exec.LookPath with the container's PATH).
pub fn look_path(name: &str, env: &[String]) -> Result<String, LaunchError> {
    if name.contains('/') {
        return match executable(Path::new(name)) {
            Ok(()) => Ok(name.to_string()),
            Err(Errno::EACCES) => Err(LaunchError::NotExecutable(format!(
                "exec: {name:?}: permission denied"
            ))),
            Err(e) => Err(LaunchError::NotFound(format!(
                "exec: {name:?}: stat {name}: {}",
                go_err(e)
            ))),
        };
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = format!("{}/{name}", dir.trim_end_matches('/'));
        if executable(Path::new(&cand)).is_ok() {
            return Ok(cand);
        }
    }
    Err(LaunchError::NotFound(format!(
        "exec: {name:?}: executable file not found in $PATH"
    )))
}

fn cstrings(v: &[String], what: &str) -> Result<Vec<CString>, LaunchError> {
    v.iter()
        .map(|s| {
            CString::new(s.as_bytes())
                .map_err(|_| LaunchError::Setup(format!("{what} contains a NUL byte")))
        })
        .collect()
}

/// Look the program up and execve it; only returns on failure.
pub fn exec_program(args: &[String], env: &[String]) -> Result<Infallible, LaunchError> {
    let Some(name) = args.first() else {
        return setup("no command specified");
    };
    let path = look_path(name, env)?;
    let cpath = CString::new(path.as_bytes())
        .map_err(|_| LaunchError::Setup("program path contains a NUL byte".into()))?;
    let argv = cstrings(args, "argument")?;
    let envp = cstrings(env, "environment")?;
    let e = match nix::unistd::execve(&cpath, &argv, &envp) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    Err(match e {
        Errno::ENOENT => LaunchError::NotFound(format!("exec {path}: no such file or directory")),
        Errno::EACCES | Errno::EPERM => {
            LaunchError::NotExecutable(format!("exec {path}: permission denied"))
        }
        Errno::ENOEXEC => LaunchError::NotExecutable(format!("exec {path}: exec format error")),
        other => LaunchError::Setup(format!("exec {path}: {}", go_err(other))),
    })
}
