//! `Ulimits` by Docker's names → setrlimit.

use super::errors::{setup, LaunchError, Stage};
use super::spec::Ulimit;

/// The type of setrlimit's first argument: glibc's `__rlimit_resource_t` enum, musl's `int`.
#[cfg(target_env = "gnu")]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(target_env = "gnu"))]
type Resource = libc::c_int;

fn resource(name: &str) -> Option<Resource> {
    Some(match name {
        "as" => libc::RLIMIT_AS,
        "core" => libc::RLIMIT_CORE,
        "cpu" => libc::RLIMIT_CPU,
        "data" => libc::RLIMIT_DATA,
        "fsize" => libc::RLIMIT_FSIZE,
        "locks" => libc::RLIMIT_LOCKS,
        "memlock" => libc::RLIMIT_MEMLOCK,
        "msgqueue" => libc::RLIMIT_MSGQUEUE,
        "nice" => libc::RLIMIT_NICE,
        "nofile" => libc::RLIMIT_NOFILE,
        "nproc" => libc::RLIMIT_NPROC,
        "rss" => libc::RLIMIT_RSS,
        "rtprio" => libc::RLIMIT_RTPRIO,
        "rttime" => libc::RLIMIT_RTTIME,
        "sigpending" => libc::RLIMIT_SIGPENDING,
        "stack" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

fn value(v: i64) -> libc::rlim_t {
    if v < 0 {
        libc::RLIM_INFINITY
    } else {
        v as libc::rlim_t
    }
}

/// Apply every ulimit (before the user switch: raising a hard limit needs
/// CAP_SYS_RESOURCE).
pub fn apply(ulimits: &[Ulimit]) -> Result<(), LaunchError> {
    // The open-file limit the daemon started with, not the one it raised.
    crate::fdlimit::restore_in_child();
    for u in ulimits {
        let Some(res) = resource(&u.name) else {
            return setup(format!("invalid ulimit type: {}", u.name));
        };
        let lim = libc::rlimit {
            rlim_cur: value(u.soft),
            rlim_max: value(u.hard),
        };
        // SAFETY: setrlimit with a valid struct.
        let r = unsafe { libc::setrlimit(res, &lim) };
        nix::errno::Errno::result(r)
            .stage(format!("setrlimit {}={}:{}", u.name, u.soft, u.hard))?;
    }
    Ok(())
}
