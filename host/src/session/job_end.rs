//! What the server does once a job has ended: deletes its checkpoints as
//! its retention policy says, and its pinned restore source.

use std::path::PathBuf;

use super::model::JobState;
use crate::checkpoint::pin::pin_folder;
use crate::checkpoint::retention::{JobEnd, discard_on_end};
use crate::checkpoint::storage::CheckpointStorage;
use crate::spec::graph::JobGraph;

/// Deletes an ended job's checkpoints as its retention policy says (the
/// same decision `weir run` makes, [`discard_on_end`]).
pub(super) fn discard_checkpoints(graph: &JobGraph, id: &str, state: JobState) {
    let cp = &graph.config.checkpoint;
    let end = match state {
        JobState::Finished => JobEnd::Finished,
        JobState::Canceled | JobState::Cancelling => JobEnd::Cancelled,
        JobState::Failed | JobState::Running => JobEnd::Failed,
    };
    if cp.interval.is_none() || !discard_on_end(cp.retention, end) {
        return;
    }
    let dir: PathBuf = crate::config::resolve_location(&graph.base_dir, &cp.dir);
    match CheckpointStorage::new(cp.storage, &dir, id, &graph.config.s3)
        .and_then(|s| s.discard_all())
    {
        Ok(()) => {}
        Err(e) => tracing::warn!("job {id}: cannot delete its checkpoints: {e}"),
    }
}

/// Deletes the restore source pinned for job `id` (it served its purpose;
/// only local checkpoint folders pin).
pub(super) fn release_pin(graph: &JobGraph, id: &str) {
    let dir = job_dir(graph, id);
    if crate::config::ObjectUri::of(&dir).is_none() {
        let _ = std::fs::remove_dir_all(pin_folder(&dir));
    }
}

/// The checkpoint folder of job `id`: a local folder, or an `s3://`
/// location.
pub(super) fn job_dir(graph: &JobGraph, id: &str) -> PathBuf {
    crate::config::resolve_location(&graph.base_dir, &graph.config.checkpoint.dir).join(id)
}
