//! Engine-level deadlines (a container's stop timeout, a restart back-off),
//! kept in one ordered set that the loop uses for its poll timeout.

use std::collections::BTreeSet;
use std::time::Instant;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// The stop grace period is over: SIGKILL the container.
    StopKill(String),
    /// The restart back-off is over: start the container again.
    Restart(String),
    /// Run the container's next healthcheck probe.
    Health(String),
    /// The running probe's timeout.
    HealthTimeout(String),
    /// Look at a freezing container's freezer again (`pause`).
    Freeze(String),
    /// A container's setup did not report in time: kill it (`launching.rs`).
    LaunchDeadline(String),
}

#[derive(Default)]
pub struct Timers {
    set: BTreeSet<(Instant, Timer)>,
}

impl Timers {
    pub fn add(&mut self, at: Instant, t: Timer) {
        self.set.insert((at, t));
    }

    pub fn cancel(&mut self, t: &Timer) {
        self.set.retain(|(_, x)| x != t);
    }

    pub fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Remove and return every timer due at `now`.
    pub fn due(&mut self, now: Instant) -> Vec<Timer> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.set.first() {
            if *at > now {
                break;
            }
            if let Some((_, t)) = self.set.pop_first() {
                out.push(t);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ordered_and_cancellable() {
        let now = Instant::now();
        let mut t = Timers::default();
        t.add(now + Duration::from_secs(2), Timer::Restart("b".into()));
        t.add(now + Duration::from_secs(1), Timer::StopKill("a".into()));
        t.add(now + Duration::from_secs(3), Timer::StopKill("c".into()));
        t.cancel(&Timer::StopKill("c".into()));
        assert_eq!(t.next(), Some(now + Duration::from_secs(1)));
        assert_eq!(
            t.due(now + Duration::from_secs(2)),
            vec![Timer::StopKill("a".into()), Timer::Restart("b".into())]
        );
        assert_eq!(t.next(), None);
    }
}
