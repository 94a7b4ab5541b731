//! The daemon's own open-file limit (`RLIMIT_NOFILE`), raised at start-up to
//! fit `--max-connections` plus headroom for containers' pipes, logs,
//! workers and listeners: the soft limit up to what is needed (within the
//! hard one), and the hard one too when it is short and we may (root,
//! CAP_SYS_RESOURCE; at most `fs.nr_open`). Like Go's runtime under dockerd,
//! the soft limit found at start-up is what containers and execs inherit
//! (`restore_in_child`), so raising ours changes nothing inside them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Descriptors kept for everything that is not an API connection.
pub const HEADROOM: u64 = 512;

/// The soft limit found at start-up, when we raised it (else `u64::MAX`).
static INHERITED_SOFT: AtomicU64 = AtomicU64::new(u64::MAX);

fn get() -> std::io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we own.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // rlim_t is not u64 on every target.
    #[allow(clippy::unnecessary_cast)]
    Ok((lim.rlim_cur as u64, lim.rlim_max as u64))
}

fn set(soft: u64, hard: u64) -> std::io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we own.
    let r = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The limits to ask for: (soft, hard), or None when the current ones fit.
/// `nr_open` is the kernel's ceiling for a hard limit.
pub fn plan(max_connections: usize, soft: u64, hard: u64, nr_open: u64) -> Option<(u64, u64)> {
    let needed = (max_connections as u64).saturating_add(HEADROOM);
    if soft >= needed {
        return None;
    }
    let hard = if hard >= needed {
        hard
    } else {
        needed.min(nr_open).max(hard)
    };
    Some((needed.min(hard), hard))
}

/// Raise our limit to fit `max_connections`; a warning when it cannot.
pub fn fit(max_connections: usize) {
    let Ok((soft, hard)) = get() else {
        return;
    };
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let needed = (max_connections as u64).saturating_add(HEADROOM);
    let Some((new_soft, new_hard)) = plan(max_connections, soft, hard, nr_open) else {
        return;
    };
    let mut done = set(new_soft, new_hard);
    if done.is_err() && new_hard > hard {
        // Not allowed to raise the hard limit: the soft one up to it.
        done = set(needed.min(hard), hard);
    }
    let (now_soft, now_hard) = get().unwrap_or((soft, hard));
    if done.is_ok() && now_soft > soft {
        INHERITED_SOFT.store(soft, Ordering::Relaxed);
        log::info!(
            "open-file limit raised from {soft}:{hard} to {now_soft}:{now_hard} for --max-connections {max_connections}"
        );
    }
    if now_soft < needed {
        log::warn!(
            "open-file limit {now_soft} is below the {needed} that --max-connections {max_connections} needs; connections beyond it fail"
        );
    }
}

/// In a container's or exec's child, before its own ulimits: the soft
/// limit the daemon was started with. Async-signal-safe (one syscall pair).
pub fn restore_in_child() {
    let soft = INHERITED_SOFT.load(Ordering::Relaxed);
    if soft == u64::MAX {
        return;
    }
    if let Ok((_, hard)) = get() {
        let _ = set(soft.min(hard), hard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        // Enough already: nothing.
        assert_eq!(plan(256, 1024, 4096, 1 << 20), None);
        // Soft up to what is needed, within the hard limit.
        assert_eq!(plan(4096, 1024, 1 << 20, 1 << 20), Some((4608, 1 << 20)));
        // Hard short: raised too (root), never past nr_open.
        assert_eq!(plan(4096, 1024, 4096, 1 << 20), Some((4608, 4608)));
        assert_eq!(plan(4096, 1024, 1024, 2000), Some((2000, 2000)));
    }
}
