//! Engine-level deadlines (a container's stop timeout, a restart back-off,
//! healthcheck probes and their timeouts, freezer polls), kept in one
//! ordered set that the loop uses for its poll timeout.
//!
//! Every deadline is an `Instant` (CLOCK_MONOTONIC): a wall-clock jump (NTP
//! setting the time on a device that booted in 1970) neither fires nor
//! stalls any of them. The wall clock is only ever shown, never waited on.
//! `due` takes the time as a parameter, so tests drive it with a fake clock.

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
    /// Wake an engine task (a build job looks at its RUN container again).
    WakeTask(usize),
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

    /// A fake monotonic clock driving a restart back-off sequence and a
    /// stop timeout: nothing fires a moment early, everything fires at its
    /// deadline, whatever the wall clock says meanwhile.
    #[test]
    fn fake_clock_drives_backoff_and_stop_timeout() {
        use crate::container::policy::{next_backoff_ms, BACKOFF_MAX_MS, BACKOFF_RESET};
        let t0 = Instant::now();
        let mut clock = t0;
        let mut t = Timers::default();
        let mut delay = 0;
        let mut waited = Vec::new();
        for _ in 0..12 {
            // The container ran 1 s before exiting: the back-off grows.
            clock += Duration::from_secs(1);
            delay = next_backoff_ms(delay, Duration::from_secs(1));
            let at = clock + Duration::from_millis(delay);
            t.add(at, Timer::Restart("c".into()));
            assert_eq!(t.next(), Some(at));
            assert!(t.due(at - Duration::from_millis(1)).is_empty());
            assert_eq!(t.due(at), vec![Timer::Restart("c".into())]);
            waited.push(delay);
            clock = at;
        }
        assert_eq!(&waited[..4], &[100, 200, 400, 800]);
        assert_eq!(*waited.last().unwrap(), BACKOFF_MAX_MS);
        // A long run resets it.
        assert_eq!(next_backoff_ms(delay, BACKOFF_RESET), 100);

        // A stop timeout of 10 s on the same clock, cancelled by the exit.
        t.add(clock + Duration::from_secs(10), Timer::StopKill("c".into()));
        assert!(t.due(clock + Duration::from_secs(9)).is_empty());
        t.cancel(&Timer::StopKill("c".into()));
        assert!(t.due(clock + Duration::from_secs(3600)).is_empty());
        assert_eq!(t.next(), None);
    }
}
