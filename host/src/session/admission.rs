//! What a submission must not collide with, checked while the manager
//! admits one submission at a time: a client-supplied job id that was
//! submitted before (idempotent submission), and a file-sink folder that
//! a running job writes to (a folder belongs to one job at a time). And the
//! pin of a restore source that lies in another job's checkpoint folder.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::entry::JobEntry;
use super::error::SessionError;
use super::job_end::job_dir;
use super::manager::JobManager;
use super::model::SubmitRequest;
use crate::checkpoint::layout::is_job_folder_name;
use crate::checkpoint::pin::{pin, pin_folder};
use crate::checkpoint::restore::RestorePoint;
use crate::spec::SinkType;
use crate::spec::graph::{JobGraph, NodeKind};

/// The folders the file sinks of `graph` write to, made absolute and
/// without `.` or `..`.
fn sink_folders(graph: &JobGraph) -> Vec<PathBuf> {
    graph
        .nodes
        .iter()
        .filter_map(|n| match &n.kind {
            NodeKind::Sink(s) if s.sink_type == SinkType::File => s.path.as_deref(),
            _ => None,
        })
        .map(|p| normalize(&graph.base_dir.join(p)))
        .collect()
}

/// `path` with `.` dropped and `..` applied, through links where it
/// exists (two spellings of one folder compare equal).
fn normalize(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl JobManager {
    /// The job an earlier submission with the request's `jobId` created,
    /// if the request is the same (a retried submission: the same as the
    /// client sent it, `submitted` its [`SubmitRequest::fingerprint`], or the same once
    /// bundles are resolved); an error if the id is malformed or was
    /// submitted with a different request.
    pub(super) fn earlier_submission(
        &self,
        recorded: &SubmitRequest,
        submitted: &str,
    ) -> Result<Option<Arc<JobEntry>>, SessionError> {
        let Some(id) = &recorded.job_id else {
            return Ok(None);
        };
        if !is_job_folder_name(id) || id.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(SessionError::bad_request(format!(
                "jobId {id:?}: use 32 lowercase hex digits, as Flink's job ids"
            )));
        }
        let Ok(earlier) = self.get(id) else {
            return Ok(None);
        };
        let (request, fingerprint) = earlier.request_and_fingerprint();
        if fingerprint.as_deref() == Some(submitted) || request.as_ref() == Some(recorded) {
            return Ok(Some(earlier));
        }
        Err(SessionError::conflict(format!(
            "jobId {id}: a job with this id was submitted with a different request"
        )))
    }

    /// Refuses `graph` if one of its file sinks writes to a folder that a
    /// running job writes to, naming that job.
    pub(super) fn check_sink_folders(&self, graph: &JobGraph) -> Result<(), SessionError> {
        let wanted = sink_folders(graph);
        for job in self.list().iter().filter(|j| j.is_running()) {
            let taken = sink_folders(&job.graph);
            if let Some(folder) = wanted.iter().find(|f| taken.contains(f)) {
                let shown = folder
                    .strip_prefix(&self.roots.files.path)
                    .unwrap_or(folder)
                    .display()
                    .to_string();
                return Err(SessionError::conflict(format!(
                    "sink folder {shown:?} is written by running job {} ({:?}); \
                     a folder belongs to one job at a time",
                    job.id, job.graph.name
                )));
            }
        }
        Ok(())
    }

    /// Pins `restore` for job `id` if it lies in another job's checkpoint
    /// folder (savepoints belong to their user and are not pinned); returns
    /// what the job restores from.
    pub(super) fn pin_restore(
        &self,
        graph: &JobGraph,
        id: &str,
        restore: RestorePoint,
    ) -> Result<RestorePoint, SessionError> {
        // A checkpoint in a bucket is read when the job starts, not
        // pinned; nor is anything for a job whose checkpoints go to one.
        let into = job_dir(graph, id);
        let local = |p: &Path| crate::config::ObjectUri::of(p).is_none();
        let inside = local(Path::new(&restore.path))
            && local(&into)
            && Path::new(&restore.path)
                .canonicalize()
                .is_ok_and(|p| p.starts_with(&self.roots.checkpoints.path));
        if !inside {
            return Ok(restore);
        }
        let into = pin_folder(&into);
        pin(&restore, &into).map_err(|e| {
            let _ = std::fs::remove_dir_all(&into);
            SessionError::internal("cannot pin the restore source", e)
        })
    }

    /// The restore source pinned for job `id`, opened, if it has one.
    pub(super) fn pinned_restore(&self, graph: &JobGraph, id: &str) -> Option<PathBuf> {
        let dir = job_dir(graph, id);
        crate::config::ObjectUri::of(&dir).is_none().then_some(())?;
        let folder = pin_folder(&dir);
        let entries = std::fs::read_dir(folder).ok()?;
        entries
            .flatten()
            .map(|e| e.path())
            .find(|p| p.is_dir() && p.file_name().is_some_and(|n| n != "shared"))
    }
}
