//! The lifecycle's pure rules, used by the engine's verbs: Docker's signal
//! names, exit codes, the stop signal, cgroup resources from a HostConfig,
//! defaults and restart back-off bounds.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::config::HostConfig;
use super::error::ContainerError;
use super::model::Container;
use crate::runtime::cgroups::Resources;
use crate::timefmt::rfc3339_nano;

/// Our cgroups live under this name in every hierarchy.
pub const CGROUP_PARENT: &str = crate::runtime::cgroups::DEFAULT_PARENT;
pub const DEFAULT_STOP_TIMEOUT: i64 = 10;
pub const DEFAULT_SHM: u64 = 64 * 1024 * 1024;
/// A container that ran this long before exiting restarts without back-off.
pub const BACKOFF_RESET: Duration = Duration::from_secs(10);
pub const BACKOFF_MAX_MS: u64 = 60_000;

/// dockerd's restart back-off: 100 ms doubling to a minute, reset after a
/// run of `BACKOFF_RESET`. `ran` is measured on the monotonic clock.
pub fn next_backoff_ms(previous_ms: u64, ran: Duration) -> u64 {
    if ran >= BACKOFF_RESET || previous_ms == 0 {
        100
    } else {
        previous_ms.saturating_mul(2).min(BACKOFF_MAX_MS)
    }
}

pub fn now() -> String {
    rfc3339_nano(SystemTime::now())
}

/// Docker's signal syntax: "KILL", "SIGKILL", "kill", "9".
pub fn parse_signal(s: &str) -> Result<Signal, ContainerError> {
    let s = s.trim();
    let bad = || ContainerError::Invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad());
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| bad())
}

/// The container's stop signal (SIGTERM unless configured).
pub fn stop_signal_of(c: &Container) -> Signal {
    c.config
        .stop_signal
        .as_deref()
        .and_then(|s| parse_signal(s).ok())
        .unwrap_or(Signal::SIGTERM)
}

pub fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
        _ => 255,
    }
}

pub fn resources_of(h: &HostConfig) -> Resources {
    Resources {
        memory: h.memory,
        memory_swap: h.memory_swap,
        memory_reservation: h.memory_reservation,
        nano_cpus: h.nano_cpus,
        cpu_shares: h.cpu_shares,
        cpu_quota: h.cpu_quota,
        cpu_period: h.cpu_period,
        cpuset_cpus: h.cpuset_cpus.clone(),
        cpuset_mems: h.cpuset_mems.clone(),
        pids_limit: h.pids_limit.filter(|&p| p > 0),
        blkio_weight: h.blkio_weight,
    }
}

pub fn image_display(name: &str) -> String {
    crate::image::reference::Reference::parse(name)
        .map(|r| r.with_default_tag().familiar())
        .unwrap_or_else(|_| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_docker() {
        assert_eq!(parse_signal("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("sigusr1").unwrap(), Signal::SIGUSR1);
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("99").is_err());
    }
}
