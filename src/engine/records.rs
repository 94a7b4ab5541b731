//! Records made durable off the loop (no fsync on the event loop): a
//! container's `config.json` at a start, an exit or a failed start, a
//! network's record when a start or an exit changes its endpoints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::tasks::Task;
use super::Engine;
use crate::reply::{TaskId, Wake};
use crate::worker::{Outcome, WorkerId};

/// Records (a container's `config.json`, a network's endpoints) changed on
/// the loop and made durable off it: each is written unsynced beside its
/// target (`atomic::write_temp`), fdatasynced by a worker (every record
/// staged since the last one, in one batch) or by a start's own child, then
/// renamed over its target by the loop, unless a newer version of the same
/// target superseded it meanwhile (staged again, or written synced).
#[derive(Default)]
pub struct Records {
    next: u64,
    /// The newest staged version of each target: its number and temp file.
    staged: HashMap<PathBuf, (u64, PathBuf)>,
    /// Staged versions for the next sync worker: target, number, temp.
    queue: Vec<(PathBuf, u64, PathBuf)>,
    /// A sync worker runs (its task holds the batch).
    busy: bool,
}

/// The task of one record-sync worker: its batch published once synced.
struct SyncRecords {
    worker: WorkerId,
    batch: Vec<(PathBuf, u64, PathBuf)>,
}

impl Task for SyncRecords {
    fn step(&mut self, engine: &mut Engine, me: TaskId) -> bool {
        engine.workers.take_messages(self.worker);
        // The batch's indices whose sync failed (all of them if the worker
        // died): those stay staged, the previous versions in place (what a
        // crash would leave), until the target's next change.
        let failed: Vec<u64> = match engine.workers.take_outcome(self.worker) {
            None => return false,
            Some(Outcome::Done(v)) => crate::json::from_value(&v).unwrap_or_default(),
            Some(Outcome::Failed(e)) => {
                log::error!("syncing records: {}", crate::json::text(&e));
                (0..self.batch.len() as u64).collect()
            }
            Some(Outcome::Died(m)) => {
                log::error!("syncing records: {m}");
                (0..self.batch.len() as u64).collect()
            }
        };
        for (i, (target, gen, _)) in std::mem::take(&mut self.batch).into_iter().enumerate() {
            if !failed.contains(&(i as u64)) {
                engine.publish_staged(&target, gen);
            }
        }
        let batch = std::mem::take(&mut engine.records.queue);
        if batch.is_empty() {
            engine.records.busy = false;
            return true;
        }
        match engine.workers.spawn(Wake::Task(me), sync_job(&batch)) {
            Ok(worker) => {
                self.worker = worker;
                self.batch = batch;
                false
            }
            Err(e) => {
                log::error!("syncing records: no worker ({e}); synced here");
                engine.records.busy = false;
                for (target, gen, _) in batch {
                    engine.sync_and_publish(&target, gen);
                }
                true
            }
        }
    }
}

/// The record-sync worker's job: fdatasync each temp (one already gone was
/// superseded); its result lists the indices that failed.
fn sync_job(
    batch: &[(PathBuf, u64, PathBuf)],
) -> impl FnOnce(std::fs::File, &mut crate::worker::Reporter) -> Result<Value, Value> {
    let temps: Vec<PathBuf> = batch.iter().map(|(_, _, t)| t.clone()).collect();
    move |_input, _out| {
        let mut failed = Vec::new();
        for (i, t) in temps.iter().enumerate() {
            if let Err(e) = crate::atomic::sync_data_at(t) {
                log::error!("sync {}: {e}", t.display());
                failed.push(i);
            }
        }
        crate::failpoint!("record.synced");
        Ok(crate::json!(failed))
    }
}

impl Engine {
    /// Write `data` as the next version of `target`, unsynced, superseding a
    /// staged one; returns its number and open file (`Records`).
    fn stage_file(&mut self, target: &Path, data: &[u8]) -> std::io::Result<(u64, std::fs::File)> {
        self.records.next += 1;
        let gen = self.records.next;
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let tmp = target.with_file_name(format!(
            "{}{name}-{}-{gen}",
            crate::atomic::TEMP_PREFIX,
            std::process::id()
        ));
        let f = crate::atomic::write_temp(&tmp, data)?;
        crate::failpoint!("record.staged");
        if let Some((_, old)) = self.records.staged.insert(target.to_path_buf(), (gen, tmp)) {
            let _ = std::fs::remove_file(old);
        }
        Ok((gen, f))
    }

    /// Stage `data` for `target` and have the record-sync worker fdatasync
    /// it; renamed in once synced. Err: nothing staged (write it synced).
    fn stage_and_sync(&mut self, target: &Path, data: &[u8]) -> std::io::Result<()> {
        let (gen, _) = self.stage_file(target, data)?;
        if let Some((_, tmp)) = self.records.staged.get(target) {
            self.records
                .queue
                .push((target.to_path_buf(), gen, tmp.clone()));
        }
        if self.records.busy {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.records.queue);
        let task = self.reserve_task();
        match self.workers.spawn(Wake::Task(task), sync_job(&batch)) {
            Ok(worker) => {
                self.records.busy = true;
                self.fill_task(task, Box::new(SyncRecords { worker, batch }));
            }
            Err(e) => {
                self.tasks.remove(task);
                log::warn!("syncing records: no worker ({e}); synced here");
                for (target, gen, _) in batch {
                    self.sync_and_publish(&target, gen);
                }
            }
        }
        Ok(())
    }

    /// Rename staged version `gen` of `target` in, if it is still the newest
    /// (false: superseded, or dropped with its container).
    pub(super) fn publish_staged(&mut self, target: &Path, gen: u64) -> bool {
        if self.records.staged.get(target).map(|(g, _)| *g) != Some(gen) {
            return false;
        }
        let Some((_, tmp)) = self.records.staged.remove(target) else {
            return false;
        };
        match std::fs::rename(&tmp, target) {
            Ok(()) => {
                crate::failpoint!("record.published");
                true
            }
            Err(e) => {
                log::error!("record {}: {e}", target.display());
                let _ = std::fs::remove_file(&tmp);
                false
            }
        }
    }

    /// No worker: fdatasync a staged version here, then publish it.
    fn sync_and_publish(&mut self, target: &Path, gen: u64) {
        let Some((g, tmp)) = self.records.staged.get(target) else {
            return;
        };
        if *g == gen {
            if let Err(e) = crate::atomic::sync_data_at(tmp) {
                log::error!("sync {}: {e}", tmp.display());
                return;
            }
            self.publish_staged(target, gen);
        }
    }

    /// Forget the staged version of `target` (a synced write, or the
    /// target's removal, supersedes it).
    pub(super) fn drop_staged(&mut self, target: &Path) {
        if let Some((_, tmp)) = self.records.staged.remove(target) {
            let _ = std::fs::remove_file(tmp);
        }
    }

    /// Every version still staged, synced and published here (the daemon's
    /// last act: a shutdown cut short by its limit leaves none behind).
    pub(super) fn flush_records(&mut self) {
        let staged: Vec<(PathBuf, u64)> = self
            .records
            .staged
            .iter()
            .map(|(t, (g, _))| (t.clone(), *g))
            .collect();
        for (target, gen) in staged {
            self.sync_and_publish(&target, gen);
        }
    }

    /// Stage container `c`'s record (`Records`); returns its number and
    /// open file (a start's child fdatasyncs it).
    pub(super) fn stage_record(
        &mut self,
        c: &crate::container::model::Container,
    ) -> std::io::Result<(u64, std::fs::File)> {
        let data = crate::store::containers::record(c)?;
        let target = self.container_dirs.record_path(&c.id);
        self.stage_file(&target, &data)
    }

    /// Container `id`'s staged record `gen`, if still the newest: its temp
    /// and target (a start's child syncs and renames it).
    pub(super) fn staged_temp(&self, id: &str, gen: u64) -> Option<(PathBuf, PathBuf)> {
        let target = self.container_dirs.record_path(id);
        match self.records.staged.get(&target) {
            Some((g, temp)) if *g == gen => Some((temp.clone(), target)),
            _ => None,
        }
    }

    /// Staged record `gen` of container `id` was renamed in by a start's
    /// child: no longer staged (unless superseded meanwhile).
    pub(super) fn forget_record(&mut self, id: &str, gen: u64) {
        let target = self.container_dirs.record_path(id);
        if self.records.staged.get(&target).map(|(g, _)| *g) == Some(gen) {
            self.records.staged.remove(&target);
        }
    }

    /// Persist container `id`'s record without an fsync on the loop: staged
    /// now, renamed in once the record-sync worker has synced it. A crash
    /// before leaves the previous record (the durability table: an exit,
    /// a failed start).
    pub(super) fn persist_later(&mut self, id: &str) {
        let Some(c) = self.containers.get(id).map(|e| e.c.clone()) else {
            return;
        };
        let target = self.container_dirs.record_path(id);
        let staged = crate::store::containers::record(&c)
            .and_then(|data| self.stage_and_sync(&target, &data));
        if let Err(e) = staged {
            log::warn!(
                "staging the record of {}: {e}; writing it synced",
                crate::container::names::short(id)
            );
            self.persist(id);
        }
    }

    /// Forget container `id`'s staged record (a synced save or its removal
    /// supersedes it).
    pub(super) fn drop_staged_record(&mut self, id: &str) {
        let target = self.container_dirs.record_path(id);
        self.drop_staged(&target);
    }

    /// Persist network `id`'s record (its endpoints changed at a start or
    /// an exit) as `persist_later` does: its endpoints are not state a
    /// crash keeps (start-up resets them, every container being dead).
    pub(super) fn persist_network_later(&mut self, id: &str) -> std::io::Result<()> {
        let Some((target, data)) = self.networks.store.record(id)? else {
            return Ok(());
        };
        // The newest version is what the file holds: nothing to write.
        if std::fs::read(&target).is_ok_and(|b| b == data) {
            self.drop_staged(&target);
            return Ok(());
        }
        if let Err(e) = self.stage_and_sync(&target, &data) {
            log::warn!("staging network record {id}: {e}; writing it synced");
            self.drop_staged(&target);
            return self.networks.store.save(id);
        }
        Ok(())
    }

    /// Forget network `id`'s staged record (written synced, or removed).
    pub(super) fn drop_staged_network(&mut self, id: &str) {
        let target = self.networks.store.path(id);
        self.drop_staged(&target);
    }
}
