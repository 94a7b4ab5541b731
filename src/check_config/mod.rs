//! `coracle check-config`: which kernel features the daemon can use on this host.
//!
//! Everything here is read-only and comes from `/proc`, `/sys`, the kernel config
//! (`/proc/config.gz`, `/boot/config-<release>`) and `/lib/modules/<release>`; nothing is
//! loaded, mounted or executed. Each feature is reported as present, missing or unknown,
//! with what breaks without it, in words a device maker can act on. The exit code is 1
//! when a required feature is missing, 0 otherwise.
//!
//! The probing reads every file relative to a root directory (`/` in the daemon) so the
//! whole evaluation can be tested on a fixed fake tree; the parsing helpers are pure
//! functions over strings.

mod cgroups;
mod facts;
mod probe;
#[cfg(test)]
mod tests;

use cgroups::cgroup_checks;
use facts::Facts;
pub use facts::Host;
pub use probe::probe;

use std::io::{self, Write};

/// How much the daemon depends on a feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Containers cannot start without it.
    Required,
    /// Containers start, but a feature degrades.
    Recommended,
    /// Only some options need it.
    Optional,
}

/// What the probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Present,
    Missing,
    /// Nothing on this host can tell (no kernel config, module neither loaded nor listed).
    Unknown,
}

/// One line of the report.
#[derive(Debug)]
pub struct Check {
    pub section: &'static str,
    pub name: &'static str,
    pub level: Level,
    pub status: Status,
    /// Evidence, or the specific reason it is missing.
    pub detail: String,
    /// What breaks without it.
    pub impact: &'static str,
    /// Kernel options that provide it.
    pub kconfig: &'static str,
}

/// The whole report plus the facts printed in its header.
#[derive(Debug)]
pub struct Report {
    pub kernel_release: String,
    pub kernel_config_source: Option<String>,
    pub checks: Vec<Check>,
}

impl Report {
    /// Required features that are missing.
    pub fn missing_required(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.level == Level::Required && c.status == Status::Missing)
            .count()
    }

    /// 1 when a required feature is missing, 0 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.missing_required() > 0)
    }
}

/// Entry point of `coracle check-config`: probes `/`, prints the report, returns the exit code.
pub fn run(out: &mut impl Write) -> i32 {
    let report = probe(&Host::new("/"));
    match write_report(out, &report) {
        Ok(()) => report.exit_code(),
        Err(e) => {
            eprintln!("coracle check-config: cannot write the report: {e}");
            2
        }
    }
}

struct Builder<'a> {
    host: &'a Host,
    facts: &'a Facts,
    checks: Vec<Check>,
}

impl Builder<'_> {
    fn add(
        &mut self,
        section: &'static str,
        name: &'static str,
        level: Level,
        (status, detail): (Status, String),
        impact: &'static str,
        kconfig: &'static str,
    ) {
        self.checks.push(Check {
            section,
            name,
            level,
            status,
            detail,
            impact,
            kconfig,
        });
    }

    fn namespace(
        &mut self,
        file: &str,
        name: &'static str,
        level: Level,
        impact: &'static str,
        kconfig: &'static str,
    ) {
        let present = self.host.exists(&format!("/proc/self/ns/{file}"));
        let r = if present {
            (Status::Present, String::new())
        } else {
            (
                Status::Missing,
                format!("/proc/self/ns/{file} does not exist"),
            )
        };
        self.add("namespaces", name, level, r, impact, kconfig);
    }
}

// ---------------------------------------------------------------------------------------
// Output

/// Print the report, one feature per line, grouped by section.
pub fn write_report(out: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(
        out,
        "coracle check-config: kernel features for containers on this host"
    )?;
    writeln!(
        out,
        "kernel: {} ({})",
        if r.kernel_release.is_empty() {
            "unknown release (is /proc mounted?)"
        } else {
            &r.kernel_release
        },
        std::env::consts::ARCH
    )?;
    match &r.kernel_config_source {
        Some(src) => writeln!(out, "kernel config: {src}")?,
        None => writeln!(
            out,
            "kernel config: not found (no /proc/config.gz, no /boot/config-<release>); \
             module features are judged from /sys/module and /lib/modules"
        )?,
    }
    writeln!(
        out,
        "levels: required = containers cannot start without it; recommended = a feature degrades; optional = only some options need it"
    )?;
    const WIDTH: usize = 34;
    let mut last = "";
    for c in &r.checks {
        if c.section != last {
            writeln!(out)?;
            last = c.section;
        }
        let label = format!("{}: {} ", c.section, c.name);
        let dots = ".".repeat(WIDTH.saturating_sub(label.len()).max(2));
        let level = match c.level {
            Level::Required => "required",
            Level::Recommended => "recommended",
            Level::Optional => "optional",
        };
        match c.status {
            Status::Present if c.detail.is_empty() => writeln!(out, "{label}{dots} present")?,
            Status::Present => writeln!(out, "{label}{dots} present ({})", c.detail)?,
            Status::Missing => {
                writeln!(out, "{label}{dots} missing ({level}: {})", c.impact)?;
                writeln!(out, "{:WIDTH$}   why: {}", "", c.detail)?;
                writeln!(out, "{:WIDTH$}   kernel: {}", "", c.kconfig)?;
            }
            Status::Unknown => {
                writeln!(
                    out,
                    "{label}{dots} unknown ({level}; without it: {})",
                    c.impact
                )?;
                writeln!(out, "{:WIDTH$}   why: {}", "", c.detail)?;
                writeln!(out, "{:WIDTH$}   kernel: {}", "", c.kconfig)?;
            }
        }
    }
    let count = |lvl: Level, st: Status| {
        r.checks
            .iter()
            .filter(|c| c.level == lvl && c.status == st)
            .count()
    };
    writeln!(out)?;
    let missing_req = r.missing_required();
    if missing_req == 0 {
        writeln!(
            out,
            "result: ok, all required features present ({} recommended missing, {} unknown)",
            count(Level::Recommended, Status::Missing),
            r.checks
                .iter()
                .filter(|c| c.status == Status::Unknown)
                .count()
        )?;
    } else {
        writeln!(
            out,
            "result: {missing_req} required feature(s) missing, containers cannot start on this host"
        )?;
    }
    Ok(())
}
