//! Launches in flight: a container's child is forked and released, and its
//! setup reports on the error pipe, which the loop watches like any other
//! fd (EOF with nothing read: exec'd; a message: failed). A deadline timer
//! kills a setup that hangs; the child is reaped by the loop's SIGCHLD path.
//! Nothing here waits on the child.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::Interest;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::Engine;
use crate::container::error::ContainerError;
use crate::container::registry::Live;
use crate::reactor::Source;
use crate::runtime::cgroups::Cgroup;
use crate::runtime::launch::{deadline_error, decode_report, PendingLaunch};
use crate::stdio::output::Stdio;
use crate::timers::Timer;

/// How long a container's setup may take before it is killed (30 s; a
/// debug build reads `CORACLE_DEBUG_LAUNCH_DEADLINE_SECS` for tests).
fn setup_deadline() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(s) = std::env::var("CORACLE_DEBUG_LAUNCH_DEADLINE_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        return Duration::from_secs(s);
    }
    Duration::from_secs(30)
}

/// What is being launched.
enum Kind {
    /// A container's first process, with the cgroup it was put in.
    Container {
        cgroup: Option<Cgroup>,
        oom_before: u64,
        /// The staged start record the child syncs and renames (`start.rs`).
        record: Option<u64>,
    },
    /// An exec process (`id` is the exec's).
    Exec,
}

struct Launching {
    kind: Kind,
    id: String,
    /// The launch's number: the API's pending start answers with its outcome.
    seq: u64,
    pid: Pid,
    report: OwnedFd,
    msg: Vec<u8>,
    eof: bool,
    exited: Option<WaitStatus>,
    timed_out: bool,
    /// Stopped, killed or removed while launching (a policy restart): the
    /// child is killed once it reports, and the container stays down.
    cancelled: bool,
    stdio: Stdio,
}

/// The in-flight launches and the last outcomes (for pending answers).
pub struct Launches {
    slab: crate::slab::Slab<Launching>,
    registry: mio::Registry,
    next_seq: u64,
    outcomes: VecDeque<(u64, String, Option<ContainerError>)>,
    /// Cgroups of containers removed while their launch ran: emptied by a
    /// kill, removed once that launch's child is reaped.
    orphans: Vec<(Pid, Cgroup)>,
}

/// The parts of a started child the completion needs.
pub(super) struct Started {
    pub pending: PendingLaunch,
    pub cgroup: Option<Cgroup>,
    pub oom_before: u64,
    pub stdio: Stdio,
    /// The staged start record (the child syncs and renames it).
    pub record: Option<u64>,
}

impl Launches {
    pub fn new(registry: mio::Registry) -> Launches {
        Launches {
            slab: Default::default(),
            registry,
            next_seq: 1,
            outcomes: VecDeque::new(),
            orphans: Vec::new(),
        }
    }

    /// The number of the launch in flight for container `id`.
    pub fn seq_of(&self, id: &str) -> Option<u64> {
        self.slab
            .iter()
            .find(|(_, l)| l.id == id)
            .map(|(_, l)| l.seq)
    }

    /// The outcome of launch `seq` once it is known (Ok: exec'd).
    pub fn outcome(&self, seq: u64) -> Option<Result<(), ContainerError>> {
        self.outcomes
            .iter()
            .find(|(s, _, _)| *s == seq)
            .map(|(_, _, r)| match r {
                None => Ok(()),
                Some(e) => Err(clone_err(e)),
            })
    }

    /// Mark (or unmark, a start after the stop) container `id`'s launch in
    /// flight as cancelled; false when none is in flight.
    pub(super) fn set_cancelled(&mut self, id: &str, cancelled: bool) -> bool {
        let slot = self.slab.iter().find(|(_, l)| l.id == id).map(|(i, _)| i);
        let l = slot.and_then(|i| self.slab.get_mut(i));
        l.map(|l| l.cancelled = cancelled).is_some()
    }

    /// Why the last launch of `id` (an exec) failed, if it did.
    pub fn failure_of(&self, id: &str) -> Option<ContainerError> {
        self.outcomes
            .iter()
            .rev()
            .find(|(_, i, _)| i == id)
            .and_then(|(_, _, r)| r.as_ref().map(clone_err))
    }

    fn record(&mut self, seq: u64, id: &str, r: Option<ContainerError>) {
        if self.outcomes.len() >= 256 {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((seq, id.to_string(), r));
    }
}

fn clone_err(e: &ContainerError) -> ContainerError {
    match e {
        ContainerError::StartFailed(m, c) => ContainerError::StartFailed(m.clone(), *c),
        other => ContainerError::Internal(other.to_string()),
    }
}

impl Engine {
    /// Watch a released child's report; the start completes in `step_launch`.
    pub(super) fn watch_launch(&mut self, id: &str, s: Started) -> u64 {
        let kind = Kind::Container {
            cgroup: s.cgroup,
            oom_before: s.oom_before,
            record: s.record,
        };
        self.watch(kind, id, s.pending, s.stdio)
    }

    /// Watch an exec's report; it completes in `exec_launched` / `exec_failed`.
    pub(super) fn watch_exec(&mut self, id: &str, pending: PendingLaunch, stdio: Stdio) {
        self.watch(Kind::Exec, id, pending, stdio);
    }

    fn watch(&mut self, kind: Kind, id: &str, pending: PendingLaunch, stdio: Stdio) -> u64 {
        let seq = self.launches.next_seq;
        self.launches.next_seq += 1;
        let fd = pending.report.as_raw_fd();
        let mut l = Launching {
            kind,
            id: id.to_string(),
            seq,
            pid: pending.pid,
            report: pending.report,
            msg: Vec::new(),
            eof: false,
            exited: None,
            timed_out: false,
            cancelled: false,
            stdio,
        };
        let nonblock = nix::fcntl::fcntl(
            &l.report,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        if nonblock.is_err() {
            let _ = kill(l.pid, Signal::SIGKILL);
            l.timed_out = true;
        }
        let timed_out = l.timed_out;
        let slot = self.launches.slab.insert(l);
        if !timed_out {
            let registered = self.launches.registry.register(
                &mut SourceFd(&fd),
                Source::Launch(slot).token(),
                Interest::READABLE,
            );
            if let Err(e) = registered {
                log::error!("watching the launch of {id}: {e}");
                if let Some(l) = self.launches.slab.get_mut(slot) {
                    let _ = kill(l.pid, Signal::SIGKILL);
                    l.timed_out = true;
                }
            }
        }
        self.timers.add(
            Instant::now() + setup_deadline(),
            Timer::LaunchDeadline(id.to_string()),
        );
        seq
    }

    /// Readiness on a launch's error pipe.
    pub fn on_launch_ready(&mut self, slot: usize) {
        let Some(l) = self.launches.slab.get_mut(slot) else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(&l.report, &mut buf) {
                Ok(0) => {
                    l.eof = true;
                    break;
                }
                Ok(n) => {
                    if l.msg.len() < 64 * 1024 {
                        l.msg.extend_from_slice(&buf[..n]);
                    }
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    l.eof = true;
                    break;
                }
            }
        }
        self.step_launch(slot);
    }

    /// A reaped child that is a launch in flight (true): its status is kept
    /// for the completion.
    pub(super) fn launch_child_exited(&mut self, pid: Pid, status: WaitStatus) -> bool {
        if let Some(i) = self.launches.orphans.iter().position(|(p, _)| *p == pid) {
            let (_, cg) = self.launches.orphans.swap_remove(i);
            remove_orphan_cgroup(&cg);
            return true;
        }
        let Some(slot) = self
            .launches
            .slab
            .iter()
            .find(|(_, l)| l.pid == pid && l.exited.is_none())
            .map(|(i, _)| i)
        else {
            return false;
        };
        if let Some(l) = self.launches.slab.get_mut(slot) {
            l.exited = Some(status);
        }
        self.step_launch(slot);
        true
    }

    /// The setup deadline of container `id`'s launch: kill the child; the
    /// start fails once it is reaped.
    pub(super) fn launch_deadline(&mut self, id: &str) {
        let Some(slot) = self
            .launches
            .slab
            .iter()
            .find(|(_, l)| l.id == id)
            .map(|(i, _)| i)
        else {
            return;
        };
        if let Some(l) = self.launches.slab.get_mut(slot) {
            l.timed_out = true;
            if l.exited.is_none() {
                let _ = kill(l.pid, Signal::SIGKILL);
                // A container's cgroup holds only this launch (an exec's is
                // the running container's: not touched).
                if let Kind::Container {
                    cgroup: Some(cg), ..
                } = &l.kind
                {
                    cg.kill_all(Signal::SIGKILL);
                }
            }
        }
        self.step_launch(slot);
    }

    fn step_launch(&mut self, slot: usize) {
        let Some(l) = self.launches.slab.get(slot) else {
            return;
        };
        let success = l.eof && l.msg.is_empty() && !l.timed_out;
        let failed = !success && (l.eof || l.timed_out) && l.exited.is_some();
        if !success && !failed {
            return;
        }
        let Some(l) = self.launches.slab.remove(slot) else {
            return;
        };
        let _ = self
            .launches
            .registry
            .deregister(&mut SourceFd(&l.report.as_raw_fd()));
        self.timers.cancel(&Timer::LaunchDeadline(l.id.clone()));
        let failure = (!success).then(|| {
            if l.timed_out {
                deadline_error(setup_deadline())
            } else {
                decode_report(&l.msg)
                    .err()
                    .unwrap_or_else(|| deadline_error(setup_deadline()))
            }
        });
        // Stopped or killed while its setup ran (cancelled), or removed
        // (`rm -f`) while it succeeded: the process goes. (A removed one
        // that failed completes as a failure: its start is answered so.)
        let goes = l.cancelled || (failure.is_none() && self.containers.get(&l.id).is_none());
        match (l.kind, failure) {
            (Kind::Exec, None) => {
                self.launches.record(l.seq, &l.id, None);
                self.exec_launched(&l.id, l.pid, l.stdio);
                if let Some(status) = l.exited {
                    let code = crate::container::policy::exit_code(status);
                    self.on_exec_exit(l.pid, code);
                }
            }
            (Kind::Exec, Some(e)) => {
                let err = ContainerError::StartFailed(e.to_string(), e.exit_code());
                self.launches.record(l.seq, &l.id, Some(clone_err(&err)));
                self.exec_failed(&l.id, e.exit_code());
            }
            (Kind::Container { cgroup, .. }, _) if goes => {
                let _ = kill(l.pid, Signal::SIGKILL);
                if let Some(cg) = cgroup {
                    cg.kill_all(Signal::SIGKILL);
                    // Removable once empty: now if the child is already
                    // reaped, else when it is.
                    if l.exited.is_some() {
                        remove_orphan_cgroup(&cg);
                    } else {
                        self.launches.orphans.push((l.pid, cg));
                    }
                }
                self.network_release(&l.id);
                if l.cancelled {
                    self.launches.record(l.seq, &l.id, None);
                    self.launch_cancelled(&l.id);
                }
            }
            (
                Kind::Container {
                    cgroup,
                    oom_before,
                    record,
                },
                None,
            ) => {
                // The child synced and renamed in its start record.
                if let Some(gen) = record {
                    self.forget_record(&l.id, gen);
                }
                let live = Live {
                    pid: l.pid,
                    cgroup,
                    oom_before,
                    started: Instant::now(),
                };
                let log = self.containers.get(&l.id).map(|e| e.c.clone());
                let log = log.and_then(|c| self.open_log(&c));
                match self.outputs.add(&l.id, l.stdio, log) {
                    Ok(attached) => attached.into_iter().for_each(|conn| self.wake(conn)),
                    Err(e) => log::error!("container {}: watching its output: {e}", l.id),
                }
                self.launches.record(l.seq, &l.id, None);
                self.launch_done(&l.id, Ok(live));
                if let Some(status) = l.exited {
                    self.on_container_exit(l.pid, status);
                }
            }
            (Kind::Container { cgroup, .. }, Some(e)) => {
                if let Some(cg) = &cgroup {
                    let _ = cg.remove();
                }
                self.network_release(&l.id);
                let err = ContainerError::StartFailed(
                    format!("failed to create task for container: {e}"),
                    e.exit_code(),
                );
                self.launches.record(l.seq, &l.id, Some(clone_err(&err)));
                self.launch_done(&l.id, Err(err));
            }
        }
    }
}

/// Remove the cgroup of a container removed while it was launching.
fn remove_orphan_cgroup(cg: &Cgroup) {
    if let Err(e) = cg.remove() {
        log::warn!("removing the cgroup of a container removed while starting: {e}");
    }
}
