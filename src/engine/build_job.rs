//! A build as an engine job (`docker build`): the engine owns the build
//! worker and serves it (RUN containers created, started, watched and
//! removed; each step's image indexed) from an engine task, woken by the
//! worker's pipes and, while a RUN container runs, by a 20 ms timer. The
//! connection that started it only feeds it the context and streams its
//! output: the job pushes its lines into a bounded buffer for that
//! subscriber and stops taking the worker's messages while the buffer is
//! full (the worker then blocks on its pipe, never the loop).
//!
//! A subscriber that leaves cancels the build, as dockerd cancels a build
//! whose client went away, and so does a daemon shutdown: the worker is
//! killed, the RUN container killed and removed, and once the worker is
//! gone another worker removes its temporary files. The task (which a
//! clean shutdown waits for) ends only then.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::json;
use serde_json::Value;

use super::tasks::Task;
use super::Engine;
use crate::build::context::BuildError;
use crate::engine::build::{BuildOptions, READY};
use crate::reply::{ConnId, TaskId, Wake};
use crate::timers::Timer;
use crate::worker::WorkerId;

/// A build job's index in `Engine::builds`.
pub type BuildId = usize;

/// Output held for the subscriber before the job stops taking messages.
const OUT_HIGH_WATER: usize = 256 * 1024;
/// How often a running RUN container is looked at (its exit, then its
/// output pipes closing).
const RUN_POLL: Duration = Duration::from_millis(20);

/// What a build job's worker made: the image ID and the tags it got.
pub type Built = Result<(String, Vec<String>), BuildError>;

/// Where the job's worker is.
#[derive(Clone, Copy)]
enum Stage {
    /// The worker runs the build.
    Live,
    /// Cancelled: the worker was killed; waiting for it to be reaped.
    Stopping { pid: Option<nix::unistd::Pid> },
    /// Its temporary files are being removed by this worker.
    Cleaning(WorkerId),
    /// Nothing left running.
    Done,
}

pub struct BuildJob {
    task: TaskId,
    worker: WorkerId,
    stage: Stage,
    /// The daemon's side of the worker's answers pipe (RUN requests).
    answers: std::fs::File,
    tags: Vec<String>,
    /// `q`: the steps' output is not streamed.
    quiet: bool,
    /// The Dockerfile parsed: the answer is a 200 stream.
    ready: bool,
    /// The RUN container running now.
    running: Option<String>,
    /// The last RUN container, exited, until the worker asks for its
    /// removal (or runs the next one).
    unremoved: Option<String>,
    /// `rm` or `forcerm`: a cancelled build removes `unremoved` too.
    rm: bool,
    /// When the RUN poll timer fires.
    poll_at: Option<Instant>,
    /// Lines for the subscriber, bounded by `OUT_HIGH_WATER` (plus one batch).
    out: Vec<u8>,
    /// The connection streaming the job; None once it left or took the end.
    subscriber: Option<ConnId>,
    /// How the build ended, until the subscriber takes it.
    end: Option<Built>,
}

/// What the subscriber finds.
pub enum Take {
    /// Lines were appended.
    Data,
    /// Nothing yet (the subscriber is woken).
    Wait,
    /// The build is over: every line was taken before this.
    End(Built),
}

/// The task of a build job.
struct BuildTask(BuildId);

impl Task for BuildTask {
    fn step(&mut self, engine: &mut Engine, _me: TaskId) -> bool {
        engine.build_step(self.0)
    }
}

fn line(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(&crate::json::bytes(v));
    out.extend_from_slice(b"\r\n");
}

impl Engine {
    /// Register a started build worker as a job of `task` (reserved, and
    /// the worker's owner) streamed to `conn`.
    pub(super) fn build_job_insert(
        &mut self,
        task: TaskId,
        worker: WorkerId,
        answers: std::fs::File,
        conn: ConnId,
        opts: &BuildOptions,
    ) -> BuildId {
        let id = self.builds.insert(BuildJob {
            task,
            worker,
            stage: Stage::Live,
            answers,
            tags: opts.tags.clone(),
            quiet: opts.quiet,
            ready: false,
            running: None,
            unremoved: None,
            rm: opts.run.rm || opts.run.forcerm,
            poll_at: None,
            out: Vec::new(),
            subscriber: Some(conn),
            end: None,
        });
        self.fill_task(task, Box::new(BuildTask(id)));
        id
    }

    /// The worker the context is fed into (None once the build has ended).
    pub fn build_input(&self, b: BuildId) -> Option<WorkerId> {
        self.builds
            .get(b)
            .filter(|j| matches!(j.stage, Stage::Live))
            .map(|j| j.worker)
    }

    /// The whole context has been fed.
    pub fn build_input_done(&mut self, b: BuildId) {
        if let Some(w) = self.build_input(b) {
            self.workers.close_input(w);
        }
    }

    /// Before the stream starts: None while the context is read and the
    /// Dockerfile parsed, Ok once it did (stream from now on), or the
    /// error that ended the build first (the job is then released).
    pub fn build_progress(&mut self, b: BuildId) -> Option<Result<(), BuildError>> {
        let Some(job) = self.builds.get_mut(b) else {
            return Some(Err(BuildError::Internal("the build is gone".into())));
        };
        if job.ready {
            return Some(Ok(()));
        }
        let end = job.end.take()?;
        self.build_detach(b);
        Some(match end {
            Ok(_) => Err(BuildError::Internal("the build worker ended early".into())),
            Err(e) => Err(e),
        })
    }

    /// The subscriber pulls: the lines so far, or the end once every line
    /// was taken (the job is then released).
    pub fn build_take(&mut self, b: BuildId, out: &mut Vec<u8>) -> Take {
        let Some(job) = self.builds.get_mut(b) else {
            return Take::End(Err(BuildError::Internal("the build is gone".into())));
        };
        if !job.out.is_empty() {
            let was_full = job.out.len() >= OUT_HIGH_WATER;
            if out.is_empty() {
                std::mem::swap(out, &mut job.out);
            } else {
                out.append(&mut job.out);
            }
            if was_full {
                // Room again: the job takes the worker's messages again.
                let t = job.task;
                self.wake_target(Wake::Task(t));
            }
            return Take::Data;
        }
        let Some(end) = job.end.take() else {
            return Take::Wait;
        };
        self.build_detach(b);
        Take::End(end)
    }

    /// The subscriber is gone (or done): a build still running is
    /// cancelled; the job is forgotten once its task has ended too.
    pub fn build_detach(&mut self, b: BuildId) {
        let Some(job) = self.builds.get_mut(b) else {
            return;
        };
        job.subscriber = None;
        if matches!(job.stage, Stage::Live) {
            self.build_cancel(b);
        }
        self.build_release(b);
    }

    /// Shutdown: every running build is cancelled (its subscriber is told
    /// "Build cancelled"); the daemon waits for their tasks.
    pub fn cancel_builds(&mut self) {
        for b in self.builds.keys() {
            if self
                .builds
                .get(b)
                .is_some_and(|j| matches!(j.stage, Stage::Live))
            {
                log::info!("shutdown: cancelling build {b}");
                self.build_cancel(b);
            }
        }
    }

    /// Stop a live build: its worker killed (its end awaited, then its
    /// temporary files removed), its RUN container killed and removed,
    /// the image store's count of running jobs given back.
    fn build_cancel(&mut self, b: BuildId) {
        let Some(job) = self.builds.get_mut(b) else {
            return;
        };
        if !matches!(job.stage, Stage::Live) {
            return;
        }
        let (worker, task) = (job.worker, job.task);
        job.stage = Stage::Stopping {
            pid: self.workers.pid(worker),
        };
        job.end.get_or_insert(Err(BuildError::Cancelled));
        let mut leftovers: Vec<String> = job.running.take().into_iter().collect();
        if job.rm {
            leftovers.extend(job.unremoved.take());
        }
        let sub = job.subscriber;
        self.workers.terminate(worker);
        for id in leftovers {
            if let Err(e) = self.container_remove(&id, true) {
                log::warn!("build: removing intermediate container {id}: {e}");
            }
        }
        self.images.abort_worker();
        self.timers.cancel(&Timer::WakeTask(task));
        self.wake_target(Wake::Task(task));
        if let Some(c) = sub {
            self.wake(c);
        }
    }

    /// Forget a job whose task has ended and whose subscriber has left.
    fn build_release(&mut self, b: BuildId) {
        if self
            .builds
            .get(b)
            .is_some_and(|j| j.subscriber.is_none() && matches!(j.stage, Stage::Done))
        {
            self.builds.remove(b);
        }
    }

    /// The job's task was woken: its next step. True when the task is over.
    fn build_step(&mut self, b: BuildId) -> bool {
        let Some((stage, w)) = self.builds.get(b).map(|j| (j.stage, j.worker)) else {
            return true;
        };
        let done = match stage {
            Stage::Live => self.build_live_step(b),
            Stage::Stopping { pid } => {
                if !self.build_drain(b, w) {
                    return false;
                }
                self.build_clean_after(b, pid)
            }
            Stage::Cleaning(w) => self.build_drain(b, w),
            Stage::Done => true,
        };
        if done {
            if let Some(job) = self.builds.get_mut(b) {
                job.stage = Stage::Done;
                let (task, sub) = (job.task, job.subscriber);
                self.timers.cancel(&Timer::WakeTask(task));
                if let Some(c) = sub {
                    self.wake(c);
                }
            }
            self.build_release(b);
        }
        done
    }

    /// A worker whose messages nobody wants: true once it is gone.
    fn build_drain(&mut self, b: BuildId, w: WorkerId) -> bool {
        for _ in 0..64 {
            if self.workers.take_messages(w).is_empty() {
                return self.workers.take_outcome(w).is_some();
            }
        }
        // More queued than one step takes: the next turn goes on.
        if let Some(task) = self.builds.get(b).map(|j| j.task) {
            self.wake_target(Wake::Task(task));
        }
        false
    }

    /// A killed build worker is gone: its temporary files (the extracted
    /// context, a half-made layer) removed by a worker of the same task.
    /// True when there is nothing to wait for.
    fn build_clean_after(&mut self, b: BuildId, pid: Option<nix::unistd::Pid>) -> bool {
        let (Some(pid), Some(task)) = (pid, self.builds.get(b).map(|j| j.task)) else {
            return true;
        };
        let images = &self.images;
        let spawned = self.workers.spawn(Wake::Task(task), move |_input, _rep| {
            images.remove_worker_temps(pid.as_raw());
            Ok(Value::Null)
        });
        match spawned {
            Ok(w) => {
                self.workers.close_input(w);
                if let Some(job) = self.builds.get_mut(b) {
                    job.stage = Stage::Cleaning(w);
                }
                false
            }
            Err(e) => {
                log::error!("build: no worker to remove a cancelled build's files: {e}");
                true
            }
        }
    }

    /// A live build: the worker's messages served while the subscriber's
    /// buffer has room, the RUN container watched, the worker's outcome.
    fn build_live_step(&mut self, b: BuildId) -> bool {
        let Some(job) = self.builds.get(b) else {
            return true;
        };
        let (worker, sub) = (job.worker, job.subscriber);
        // Woken by the worker's input too: the upload may go on.
        if let Some(c) = sub {
            self.wake(c);
        }
        let mut rounds = 0;
        loop {
            let Some(job) = self.builds.get(b) else {
                return true;
            };
            if job.out.len() >= OUT_HIGH_WATER {
                // The subscriber's next pull wakes the task again.
                break;
            }
            if rounds == 64 {
                // More than one step takes: the next turn goes on.
                let task = job.task;
                self.wake_target(Wake::Task(task));
                break;
            }
            rounds += 1;
            let msgs = self.workers.take_messages(worker);
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                self.build_serve(b, m);
            }
        }
        let Some(running) = self.builds.get(b).map(|j| j.running.clone()) else {
            return true;
        };
        if let Some(id) = running {
            let exit = self.build_run_exit(&id);
            let Some(job) = self.builds.get_mut(b) else {
                return true;
            };
            match exit {
                Some((code, upper)) => {
                    job.running = None;
                    job.unremoved = Some(id);
                    job.poll_at = None;
                    answer(&mut job.answers, &json!({"exit": code, "upper": upper}));
                }
                None => {
                    let Some(outcome) = self.workers.take_outcome(worker) else {
                        self.build_poll_soon(b);
                        return false;
                    };
                    // The worker died while its RUN container runs.
                    if let Some(job) = self.builds.get_mut(b) {
                        job.running = None;
                    }
                    if let Err(e) = self.container_remove(&id, true) {
                        log::warn!("build: removing intermediate container {id}: {e}");
                    }
                    self.build_end(b, outcome);
                    return true;
                }
            }
        }
        let Some(outcome) = self.workers.take_outcome(worker) else {
            return false;
        };
        self.build_end(b, outcome);
        true
    }

    /// The worker's outcome: the image tagged, or the error, for the
    /// subscriber.
    fn build_end(&mut self, b: BuildId, outcome: crate::worker::Outcome) {
        let tags = self
            .builds
            .get(b)
            .map(|j| j.tags.clone())
            .unwrap_or_default();
        let built = self.build_finish(outcome, &tags);
        if let Some(job) = self.builds.get_mut(b) {
            job.end = Some(built);
        }
    }

    /// One message of the worker: a RUN request served, a removal, the
    /// Dockerfile parsed, a record indexed, or a line for the subscriber.
    fn build_serve(&mut self, b: BuildId, m: Value) {
        if m.get(READY).is_some() {
            if let Some(job) = self.builds.get_mut(b) {
                job.ready = true;
            }
        } else if let Some(spec) = m.get("run") {
            let started = self.build_run(spec);
            let Some(job) = self.builds.get_mut(b) else {
                return;
            };
            match started {
                Ok((id, log)) => {
                    answer(&mut job.answers, &json!({"started": id, "log": log}));
                    job.unremoved = None;
                    job.running = Some(id);
                    self.build_poll_soon(b);
                }
                Err(e) => answer(&mut job.answers, &json!({ "error": e })),
            }
        } else if let Some(id) = m.get("remove").and_then(Value::as_str) {
            if let Some(job) = self.builds.get_mut(b) {
                if job.unremoved.as_deref() == Some(id) {
                    job.unremoved = None;
                }
            }
            if let Err(e) = self.container_remove(id, true) {
                log::error!("build: removing intermediate container {id}: {e}");
            }
        } else if let Some(v) = self.build_message(m) {
            if let Some(job) = self.builds.get_mut(b) {
                if !job.quiet {
                    line(&mut job.out, &v);
                }
            }
        }
    }

    /// Look at the RUN container again in `RUN_POLL` (one timer at a time).
    fn build_poll_soon(&mut self, b: BuildId) {
        let Some(job) = self.builds.get_mut(b) else {
            return;
        };
        let now = Instant::now();
        if job.poll_at.is_some_and(|t| t > now) {
            return;
        }
        let at = now + RUN_POLL;
        job.poll_at = Some(at);
        self.timers.add(at, Timer::WakeTask(job.task));
    }
}

/// One answer line to the worker (short: the pipe never fills).
fn answer(answers: &mut std::fs::File, v: &Value) {
    let mut l = crate::json::bytes(v);
    l.push(b'\n');
    if let Err(e) = answers.write_all(&l) {
        log::error!("build: answering the worker: {e}");
    }
}
