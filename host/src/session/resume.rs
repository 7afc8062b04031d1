//! Resuming a server's recorded jobs at start: each that was running
//! continues from its newest intact retained checkpoint (or from its
//! restore source, or from the start if it had none), each whose cancel
//! was asked for ends CANCELED, and each that cannot be rebuilt is listed
//! as FAILED with why.

use super::bundles::BundleStore;
use super::job_end::{discard_checkpoints, job_dir};
use super::manager::JobManager;
use super::model::JobState;
use super::store::{JobRecord, JobStore};
use crate::checkpoint::recovery::{completed_at, stopped_marker_at};
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::retention::newest_intact;
use crate::clock::epoch_ms;
use crate::runtime::{JobError, finish_stopped};
use crate::spec::graph::JobGraph;

impl JobManager {
    /// At server start: lists every recorded job, resumes each that was
    /// running from its newest intact retained checkpoint (or from where it
    /// first started, if it completed none), and ends each whose cancel
    /// was asked for.
    pub fn resume(&self, bundles: &BundleStore) {
        let Some(store) = &self.store else {
            return;
        };
        for mut record in store.load() {
            let id = record.id.clone();
            let (graph, _, used) = match self.prepare(&record.request, bundles) {
                Ok(x) => x,
                Err(e) => {
                    // Still listed, with why it cannot run: a submitted job
                    // is never lost.
                    tracing::error!("job {id}: cannot be rebuilt: {}", e);
                    not_resumed(store, &mut record, &e.to_string());
                    let name = record.request.job["name"]
                        .as_str()
                        .unwrap_or("(unnamed)")
                        .to_owned();
                    let empty = JobGraph {
                        name,
                        max_parallelism: self.config.max_parallelism,
                        nodes: Vec::new(),
                        edges: Vec::new(),
                        config: self.config.clone(),
                        base_dir: self.roots.files.path.clone(),
                    };
                    if let Err(e) = self.start(record, empty, Vec::new(), None) {
                        tracing::error!("job {id}: {}", e);
                    }
                    continue;
                }
            };
            if record.state == JobState::Cancelling {
                record.state = JobState::Canceled;
                record.end_time = Some(epoch_ms());
                if store.save(&record).is_ok() {
                    discard_checkpoints(&graph, &id, JobState::Canceled);
                }
            }
            if record.state == JobState::Running {
                match self.stopped_before_crash(&graph, &mut record) {
                    Ok(true) => {
                        let _ = store.save(&record);
                        discard_checkpoints(&graph, &id, JobState::Finished);
                    }
                    Ok(false) => {}
                    Err(why) => not_resumed(store, &mut record, &why),
                }
            }
            let restore = self.resume_point(store, &mut record, &graph);
            if record.state == JobState::Running {
                tracing::info!(
                    "job {id}: resuming {}",
                    restore.as_ref().map_or_else(
                        || "from the beginning (no completed checkpoint)".to_owned(),
                        |r| format!("from checkpoint {}", r.metadata.checkpoint_id)
                    )
                );
            }
            if let Err(e) = self.start(record, graph, used, restore) {
                tracing::error!("job {id}: cannot start: {}", e);
            }
        }
    }

    /// What recorded job `record` resumes from when it was running: its
    /// newest intact checkpoint, else its pinned or requested restore
    /// source. Never from scratch when it had something to restore from:
    /// a job whose checkpoints cannot be read, or whose restore source is
    /// gone, is recorded as not resumed instead.
    fn resume_point(
        &self,
        store: &JobStore,
        record: &mut JobRecord,
        graph: &JobGraph,
    ) -> Option<RestorePoint> {
        let id = record.id.clone();
        if record.state == JobState::Running {
            match self.latest_checkpoint(graph, &id) {
                Ok(Some(r)) => Some(r),
                // Never from scratch when its checkpoints cannot be
                // read (a bucket that does not answer).
                Err(why) => {
                    not_resumed(store, record, &why);
                    None
                }
                // Never from scratch when it was to restore: a job
                // whose restore source is gone fails, saying so.
                Ok(None) => match self.pinned_restore(graph, &id) {
                    Some(pinned) => self
                        .open_restore_at(&record.request, graph, &pinned)
                        .map(Some),
                    None => self.open_restore(&record.request, graph),
                }
                .unwrap_or_else(|e| {
                    tracing::error!("job {id}: {}", e);
                    let why = format!("its restore source is gone or unusable: {e}");
                    not_resumed(store, record, &why);
                    None
                }),
            }
        } else {
            None
        }
    }

    /// Whether recorded job `record` completed a stop with savepoint before
    /// the server went down (its checkpoint folder names the savepoint):
    /// then its sinks commit what the stop pre-committed and it is recorded
    /// FINISHED, as it would have been.
    /// An error when its checkpoint folder cannot be read.
    fn stopped_before_crash(
        &self,
        graph: &JobGraph,
        record: &mut JobRecord,
    ) -> Result<bool, String> {
        let s3 = &graph.config.s3;
        let marker = stopped_marker_at(&job_dir(graph, &record.id), s3)
            .map_err(|e| format!("its checkpoint folder cannot be read: {e}"))?;
        let Some(path) = marker else {
            return Ok(false);
        };
        let finished = RestorePoint::open_in(std::path::Path::new(&path), s3)
            .map_err(JobError::from)
            .and_then(|point| finish_stopped(graph, &point));
        match finished {
            Ok(()) => {
                tracing::info!(
                    "job {}: had stopped with savepoint {}",
                    record.id,
                    path.trim()
                );
                record.state = JobState::Finished;
                record.end_time = Some(epoch_ms());
                Ok(true)
            }
            Err(e) => {
                tracing::error!(
                    "job {}: its stop cannot be completed ({e}); resuming it",
                    record.id
                );
                Ok(false)
            }
        }
    }

    /// The newest retained checkpoint of job `id` whose files are intact;
    /// an error when its checkpoints cannot be listed.
    fn latest_checkpoint(
        &self,
        graph: &JobGraph,
        id: &str,
    ) -> Result<Option<RestorePoint>, String> {
        let s3 = &graph.config.s3;
        let mut oldest_first = completed_at(&job_dir(graph, id), s3).map_err(|e| {
            tracing::error!("job {id}: cannot list its checkpoints: {e}");
            format!("its checkpoints cannot be listed: {e}")
        })?;
        oldest_first.reverse();
        let mut usable = None;
        newest_intact(&oldest_first, |(n, path)| {
            match RestorePoint::open_in(path, s3).and_then(|r| r.verify().map(|()| r)) {
                Ok(r) => {
                    usable = Some(r);
                    true
                }
                Err(e) => {
                    tracing::error!("job {id}: checkpoint {n} is not usable ({e})");
                    false
                }
            }
        });
        Ok(usable)
    }
}

/// Records that `record` could not be resumed, and why (a job that had
/// ended keeps its end).
fn not_resumed(store: &JobStore, record: &mut JobRecord, why: &str) {
    if record.state.is_terminal() {
        return;
    }
    record.state = JobState::Failed;
    record.end_time = Some(epoch_ms());
    record
        .exceptions
        .push((epoch_ms(), format!("not resumed: {why}")));
    let _ = store.save(record);
}
