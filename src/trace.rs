//! `--trace-timings`: per-phase wall times of the container verbs (create,
//! start, attach, wait, remove), one log line per verb.
//!
//! Off (the default) a span is `None` and every call is one branch on a
//! relaxed atomic load: no clock reads, no allocation.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);

pub fn enable(on: bool) {
    ON.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

struct Running {
    verb: &'static str,
    subject: String,
    start: Instant,
    last: Instant,
    phases: Vec<(&'static str, u128)>,
}

/// One verb's timeline: `phase(name)` closes the phase that ran since the
/// previous mark; dropping the span logs
/// `timings create 3f2a.. total=812us parse=40us image=12us ...`.
pub struct Span(Option<Box<Running>>);

impl Span {
    pub fn start(verb: &'static str, subject: &str) -> Span {
        if !enabled() {
            return Span(None);
        }
        let now = Instant::now();
        Span(Some(Box::new(Running {
            verb,
            subject: subject.chars().take(12).collect(),
            start: now,
            last: now,
            phases: Vec::new(),
        })))
    }

    /// The phase that ended now.
    pub fn phase(&mut self, name: &'static str) {
        if let Some(r) = &mut self.0 {
            let now = Instant::now();
            r.phases
                .push((name, now.duration_since(r.last).as_micros()));
            r.last = now;
        }
    }

    /// Name the subject once it is known (a create's new id).
    pub fn subject(&mut self, s: &str) {
        if let Some(r) = &mut self.0 {
            r.subject = s.chars().take(12).collect();
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(r) = self.0.take() {
            let mut line = format!(
                "timings {} {} total={}us",
                r.verb,
                r.subject,
                r.start.elapsed().as_micros()
            );
            for (name, us) in &r.phases {
                line.push_str(&format!(" {name}={us}us"));
            }
            log::info!("{line}");
        }
    }
}

/// A single point event on a container's timeline (attach opened, wait
/// answered), with the time since the container's start when known.
pub fn mark(verb: &'static str, subject: &str, since: Option<Instant>) {
    if !enabled() {
        return;
    }
    let id: String = subject.chars().take(12).collect();
    match since {
        Some(t) => log::info!(
            "timings {verb} {id} since_start={}us",
            t.elapsed().as_micros()
        ),
        None => log::info!("timings {verb} {id}"),
    }
}
