//! Device-cgroup rules in runc's `type major:minor access` form, and the
//! default set a container gets.

use std::fmt;

/// One device-cgroup rule, runc's/v1's `type major:minor access`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub kind: char,
    /// None = `*`.
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// Some of "rwm".
    pub access: String,
}

impl DeviceRule {
    pub fn allow(kind: char, major: Option<u32>, minor: Option<u32>, access: &str) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access: access.to_string(),
        }
    }
}

impl fmt::Display for DeviceRule {
    /// The v1 `devices.allow` / `devices.deny` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == 'a' {
            return f.write_str("a");
        }
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The allow-list for a non-privileged container (everything else denied):
/// mknod of any device, and use of null, zero, full, random, urandom, tty,
/// console, ptmx and the pty slaves. Append `--device` rules to it.
pub fn default_device_rules() -> Vec<DeviceRule> {
    let c = |maj, min| DeviceRule::allow('c', Some(maj), Some(min), "rwm");
    vec![
        DeviceRule::allow('c', None, None, "m"),
        DeviceRule::allow('b', None, None, "m"),
        c(1, 3),                                        // null
        c(1, 5),                                        // zero
        c(1, 7),                                        // full
        c(1, 8),                                        // random
        c(1, 9),                                        // urandom
        c(5, 0),                                        // tty
        c(5, 1),                                        // console
        c(5, 2),                                        // ptmx
        DeviceRule::allow('c', Some(136), None, "rwm"), // pts/*
    ]
}
