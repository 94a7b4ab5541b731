//! Healthchecks as dockerd runs them: the effective settings, the state
//! kept in memory (never written per probe), and what one probe's result
//! does to it. The engine (`engine/health.rs`) runs the probes.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::json;
use serde_json::Value;

use super::config::HealthConfig;
use crate::timefmt::rfc3339_nano;

/// dockerd's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// Results kept in `State.Health.Log`.
pub const MAX_LOG: usize = 5;
/// Output kept per result.
pub const MAX_OUTPUT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Starting,
    Healthy,
    Unhealthy,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
        }
    }
}

/// The settings in force, defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// argv of the probe.
    pub cmd: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub start_period: Duration,
    pub start_interval: Duration,
    pub retries: u32,
}

fn or_default(ns: i64, d: Duration) -> Duration {
    if ns > 0 {
        Duration::from_nanos(ns as u64)
    } else {
        d
    }
}

impl Settings {
    /// None: no healthcheck (none configured, `NONE`, or an empty test).
    pub fn of(h: Option<&HealthConfig>) -> Option<Settings> {
        let h = h?;
        let cmd = match h.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
                vec!["/bin/sh".into(), "-c".into(), rest.join(" ")]
            }
            _ => return None,
        };
        Some(Settings {
            cmd,
            interval: or_default(h.interval, DEFAULT_INTERVAL),
            timeout: or_default(h.timeout, DEFAULT_TIMEOUT),
            start_period: or_default(h.start_period, Duration::ZERO),
            start_interval: or_default(h.start_interval, DEFAULT_START_INTERVAL),
            retries: if h.retries > 0 {
                h.retries as u32
            } else {
                DEFAULT_RETRIES
            },
        })
    }
}

/// One probe's outcome, as `State.Health.Log` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Result {
    pub start: SystemTime,
    pub end: SystemTime,
    pub exit_code: i32,
    pub output: String,
}

/// A container's health, in memory only.
#[derive(Debug, Clone)]
pub struct Health {
    pub status: Status,
    pub failing_streak: u32,
    pub log: VecDeque<Result>,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            status: Status::Starting,
            failing_streak: 0,
            log: VecDeque::new(),
        }
    }
}

impl Health {
    /// The wait before the next probe (dockerd's `getInterval`): the start
    /// interval while starting inside the start period.
    pub fn next_interval(&self, s: &Settings, since_start: Duration) -> Duration {
        if since_start < s.start_period && self.status == Status::Starting {
            s.start_interval
        } else {
            s.interval
        }
    }

    /// Record a result (dockerd's `handleProbeResult`); returns the new
    /// status when it changed.
    /// `after_start`: how long after the container's start the probe
    /// began, on the monotonic clock (a wall-clock jump must not end or
    /// stretch the start period).
    pub fn record(&mut self, s: &Settings, r: Result, after_start: Duration) -> Option<Status> {
        let before = self.status;
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = Status::Healthy;
        } else {
            // Failures inside the start period do not count while starting.
            let in_start_period = after_start < s.start_period;
            if !(self.status == Status::Starting && in_start_period) {
                self.failing_streak += 1;
                if self.failing_streak >= s.retries {
                    self.status = Status::Unhealthy;
                }
            }
        }
        self.log.push_back(r);
        while self.log.len() > MAX_LOG {
            self.log.pop_front();
        }
        (self.status != before).then_some(self.status)
    }

    pub fn to_json(&self) -> Value {
        let log: Vec<Value> = self
            .log
            .iter()
            .map(|r| {
                json!({
                    "Start": rfc3339_nano(r.start),
                    "End": rfc3339_nano(r.end),
                    "ExitCode": r.exit_code,
                    "Output": r.output,
                })
            })
            .collect();
        json!({
            "Status": self.status.as_str(),
            "FailingStreak": self.failing_streak,
            "Log": log,
        })
    }

    /// `docker ps`'s suffix: "(healthy)", "(health: starting)".
    pub fn ps_suffix(&self) -> String {
        match self.status {
            Status::Starting => "(health: starting)".into(),
            other => format!("({})", other.as_str()),
        }
    }
}

/// Go's `time.Duration.String()` for the timeout message ("30s", "1.5s",
/// "500ms", "1m0s").
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (unit, div) = if ns < 1_000 {
            ("ns", 1)
        } else if ns < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", trim_frac(ns as f64 / div as f64));
    }
    let total = d.as_secs_f64();
    let h = d.as_secs() / 3600;
    let m = d.as_secs() / 60 % 60;
    let s = total - (h * 3600 + m * 60) as f64;
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&format!("{}s", trim_frac(s)));
    out
}

fn trim_frac(v: f64) -> String {
    let t = format!("{v:.9}");
    t.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// At most `MAX_OUTPUT` bytes of a probe's output, cut at a character.
pub fn clip_output(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]);
    text.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::of(Some(&HealthConfig {
            test: vec!["CMD-SHELL".into(), "test -f /ok".into()],
            interval: 1_000_000_000,
            retries: 2,
            ..HealthConfig::default()
        }))
        .unwrap()
    }

    #[test]
    fn settings_and_defaults() {
        let s = settings();
        assert_eq!(s.cmd, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.retries, 2);
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..HealthConfig::default()
        };
        assert_eq!(Settings::of(Some(&none)), None);
        assert_eq!(Settings::of(None), None);
    }

    #[test]
    fn transitions() {
        let s = settings();
        let t0 = SystemTime::now();
        let r = |code| Result {
            start: t0,
            end: t0,
            exit_code: code,
            output: String::new(),
        };
        let mut h = Health::default();
        assert_eq!(h.record(&s, r(1), Duration::ZERO), None);
        assert_eq!(h.record(&s, r(1), Duration::ZERO), Some(Status::Unhealthy));
        assert_eq!(h.failing_streak, 2);
        assert_eq!(h.record(&s, r(0), Duration::ZERO), Some(Status::Healthy));
        assert_eq!(h.failing_streak, 0);
        for _ in 0..10 {
            h.record(&s, r(0), Duration::ZERO);
        }
        assert_eq!(h.log.len(), MAX_LOG);
        assert_eq!(h.ps_suffix(), "(healthy)");
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
    }
}
