//! Where the coordinator writes a snapshot's files, and what a task's
//! acknowledgement becomes once they are written.

use crate::checkpoint::metadata::SubtaskState;
use crate::checkpoint::savepoint::SavepointFolder;

/// Where a snapshot's files go.
#[derive(Clone, Copy)]
pub(super) enum Target<'f> {
    /// Checkpoint `id` of the job's checkpoint storage.
    Checkpoint(u64),
    /// A savepoint folder.
    Savepoint(&'f SavepointFolder),
}

/// What a task's acknowledgement became once its files were written: its
/// state in `_metadata`, the bytes of its state, the bytes written.
pub(super) type Written = (SubtaskState, u64, u64);
