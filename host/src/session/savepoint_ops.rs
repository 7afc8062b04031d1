//! What a session does with savepoints: triggers one (or a stop with
//! one) on a running job, disposes of one, answers how an operation
//! stands, lists the savepoints it wrote, and reports whether a snapshot
//! fits a job before it is submitted (the dry run).

use std::path::PathBuf;

use super::bundles::BundleStore;
use super::error::SessionError;
use super::manager::JobManager;
use super::model::{JobState, SubmitRequest};
use super::savepoints::{Operation, SavepointEntry};
use crate::checkpoint::compatibility::CompatibilityReport;
use crate::checkpoint::restore::RestorePoint;
use crate::checkpoint::savepoint::{SavepointDone, StopMode, dispose_in};
use crate::config::{SavepointFormat, parse_location};
use crate::runtime::{SavepointOutcome, SavepointRefused, load_components, restore_report};
use crate::sandbox::Sandbox;

/// A retained checkpoint of a job, as the dashboard lists it to recover
/// from.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetainedCheckpoint {
    /// Its id.
    pub id: u64,
    /// Its folder.
    pub path: String,
    /// When it completed (ms since the Unix epoch).
    pub timestamp: i64,
    /// Bytes of state.
    pub size: u64,
    /// The state backend that wrote it.
    pub backend: String,
}

/// The operations scope of disposals (a savepoint's scope is its job id).
pub const DISPOSAL: &str = "savepoint-disposal";

/// A savepoint asked for over the API.
#[derive(Debug, Clone, Default)]
pub struct SavepointTrigger {
    /// The folder it goes into (under the savepoints root); `None`: the
    /// root itself.
    pub target: Option<String>,
    /// Canonical (default) or native.
    pub format: SavepointFormat,
    /// Stop the job with it.
    pub stop: Option<StopMode>,
    /// Cancel the job once it is complete (Flink's cancel with savepoint).
    pub cancel_job: bool,
    /// The client's id for it: a retry with the same id starts nothing new.
    pub trigger_id: Option<String>,
}

impl JobManager {
    /// Starts a savepoint of job `id`; returns the trigger id to poll.
    pub fn trigger_savepoint(
        &self,
        id: &str,
        trigger: SavepointTrigger,
    ) -> Result<String, SessionError> {
        let job = self.get(id)?;
        let (state, _, _) = job.status();
        if state.is_terminal() || !job.is_running() {
            return Err(SessionError::conflict(format!(
                "job {id} is not running ({state:?}); a savepoint needs a running job"
            )));
        }
        let target = match &trigger.target {
            Some(t) => Some(self.savepoint_path(t, "targetDirectory")?),
            None => None,
        };
        let trigger_id = trigger_id(trigger.trigger_id.clone())?;
        let keep = self.config.server.async_store_duration;
        if !self.operations.start(id, &trigger_id, keep) {
            return Ok(trigger_id);
        }
        let outcome = job
            .control
            .request_savepoint(&job.graph, target.as_deref(), trigger.format, trigger.stop)
            .map_err(|e| {
                self.operations
                    .finish(id, &trigger_id, Operation::Failed(e.to_string()));
                let text = self.roots.redact(&e.to_string());
                match e {
                    SavepointRefused::NoTarget => SessionError::bad_request(text),
                    _ => SessionError::conflict(text),
                }
            })?;
        let (ops, index) = (self.operations.clone(), self.savepoints.clone());
        let (job_id, tid) = (id.to_owned(), trigger_id.clone());
        let cancel = trigger
            .cancel_job
            .then(|| (job.clone(), self.store.clone()));
        let name = job.graph.name.clone();
        let waiter = std::thread::Builder::new()
            .name("savepoint-waiter".into())
            .spawn(move || {
                let result: SavepointOutcome = outcome
                    .recv()
                    .unwrap_or_else(|_| Err("the job ended before the savepoint completed".into()));
                let op = match result {
                    Ok(done) => {
                        index.add(entry(&job_id, &name, &done));
                        if let Some((job, store)) = cancel {
                            // Recorded first, as a cancel over the API is.
                            let _ = job.transition(
                                store.as_ref(),
                                JobState::Running,
                                JobState::Cancelling,
                            );
                            job.control.cancel();
                        }
                        Operation::Completed(Some(done.path))
                    }
                    Err(why) => Operation::Failed(why),
                };
                ops.finish(&job_id, &tid, op);
            });
        if let Err(e) = waiter {
            let why = "cannot wait for the savepoint (no thread)".to_owned();
            self.operations
                .finish(id, &trigger_id, Operation::Failed(why.clone()));
            return Err(SessionError::internal(&why, e));
        }
        Ok(trigger_id)
    }

    /// How operation `trigger_id` of `scope` (a job id, or [`DISPOSAL`])
    /// stands; failure messages name paths relative to the roots.
    pub fn operation(&self, scope: &str, trigger_id: &str) -> Result<Operation, SessionError> {
        match self.operations.get(scope, trigger_id) {
            Some(Operation::Failed(why)) => Ok(Operation::Failed(self.roots.redact(&why))),
            Some(op) => Ok(op),
            None => Err(SessionError::not_found(format!(
                "no operation {trigger_id:?} (unknown, or older than rest.async.store-duration)"
            ))),
        }
    }

    /// Deletes the savepoint at `path` (under the savepoints root for a
    /// server): refused, deleting nothing, if it is not one. Returns the
    /// trigger id; the deletion itself is done when this returns.
    pub fn dispose_savepoint(
        &self,
        path: &str,
        trigger_id: Option<String>,
    ) -> Result<String, SessionError> {
        let folder = self.savepoint_path(path, "savepointPath")?;
        let trigger_id = self::trigger_id(trigger_id)?;
        let keep = self.config.server.async_store_duration;
        if !self.operations.start(DISPOSAL, &trigger_id, keep) {
            return Ok(trigger_id);
        }
        let op = match dispose_in(&folder, &self.config.s3) {
            Ok(gone) => {
                self.savepoints.remove(&gone.display().to_string());
                Operation::Completed(None)
            }
            Err(e) => Operation::Failed(self.roots.redact(&e.to_string())),
        };
        self.operations.finish(DISPOSAL, &trigger_id, op);
        Ok(trigger_id)
    }

    /// The retained checkpoints of job `id` on disk (a running, cancelled,
    /// failed or finished job's), newest first: what it can be recovered
    /// from besides its savepoints.
    pub fn retained_checkpoints(&self, id: &str) -> Result<Vec<RetainedCheckpoint>, SessionError> {
        let job = self.get(id)?;
        let s3 = &job.graph.config.s3;
        let dir = super::job_end::job_dir(&job.graph, &job.id);
        let completed = crate::checkpoint::recovery::completed_at(&dir, s3)
            .map_err(|e| SessionError::internal("cannot list the job's checkpoints", e))?;
        Ok(completed
            .into_iter()
            .filter_map(|(_, path)| {
                let m = RestorePoint::open_in(&path, s3).ok()?.metadata;
                Some(RetainedCheckpoint {
                    id: m.checkpoint_id,
                    path: path.display().to_string(),
                    timestamp: m.completed_timestamp,
                    size: m.state_size,
                    backend: m.backend,
                })
            })
            .collect())
    }

    /// A savepoint folder or target a request names (in its `field`):
    /// under the savepoints root for a server, as given for the API of
    /// `weir run`.
    fn savepoint_path(&self, given: &str, field: &str) -> Result<PathBuf, SessionError> {
        let bad = |e: String| SessionError::bad_request(format!("{field}: {e}"));
        let path = parse_location(given).map_err(|e| bad(e.to_string()))?;
        if self.store.is_none() {
            // The API of `weir run`: anywhere.
            return Ok(path);
        }
        self.roots
            .savepoints
            .resolve(&path.to_string_lossy())
            .map_err(bad)
    }

    /// The savepoints this server wrote (of job `job` only, if given).
    pub fn savepoints(&self, job: Option<&str>) -> Vec<SavepointEntry> {
        self.savepoints.list(job)
    }

    /// What a submit of `request` would restore where, and whether the
    /// components fit, without starting anything.
    pub fn dry_run(
        &self,
        request: &SubmitRequest,
        bundles: &BundleStore,
    ) -> Result<(CompatibilityReport, RestorePoint), SessionError> {
        let (graph, _, _) = self.prepare(request, bundles)?;
        let bad = |m: String| SessionError::bad_request(self.roots.redact(&m));
        let requested = request
            .savepoint_path
            .as_deref()
            .ok_or_else(|| bad("savepointPath: a dry run needs one".into()))?;
        let path = self
            .roots
            .restore_path(requested)
            .map_err(|e| bad(format!("savepointPath: {e}")))?;
        let point = RestorePoint::open_in(&path, &self.config.s3)
            .map_err(|e| bad(format!("savepointPath: {e}")))?;
        let allow = super::manager::allow_non_restored(request, &graph);
        point
            .check(&graph, allow)
            .and_then(|()| point.verify())
            .map_err(|e| bad(format!("savepointPath: {e}")))?;
        let sandbox = Sandbox::new(&graph.config).map_err(|e| bad(e.to_string()))?;
        let components = load_components(&graph, &sandbox).map_err(|e| bad(e.to_string()))?;
        let report = restore_report(&graph, &sandbox, &components, &point, allow)
            .map_err(|e| bad(e.to_string()))?;
        Ok((report, point))
    }
}

/// The trigger id a client gave (1 to 64 letters, digits, `-`, `_`, `.`),
/// or a new one.
fn trigger_id(given: Option<String>) -> Result<String, SessionError> {
    let Some(id) = given else {
        return Ok(crate::checkpoint::storage::new_job_id());
    };
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(id)
    } else {
        Err(SessionError::bad_request(
            "triggerId: 1 to 64 letters, digits, `-`, `_` or `.`",
        ))
    }
}

/// The index entry of a completed savepoint.
fn entry(job_id: &str, job_name: &str, done: &SavepointDone) -> SavepointEntry {
    SavepointEntry {
        path: done.path.clone(),
        job_id: job_id.to_owned(),
        job_name: job_name.to_owned(),
        checkpoint_id: done.id,
        timestamp: done.timestamp,
        size: done.size,
        format: done.format.name().to_owned(),
        components: done.components.clone(),
    }
}
