//! The savepoints a coordinator was asked for: requests not started yet,
//! the one in progress (its barriers are out, or its stop drains the
//! input), and a failed stop whose sources must read on.

use std::collections::VecDeque;

use crossbeam_channel::Receiver;

use crate::checkpoint::savepoint::{SavepointFolder, SavepointRequest};

/// Called once a stop with savepoint has completed: the runner stops the
/// job's tasks.
pub type StopListener<'a> = dyn Fn() + Sync + 'a;

/// Keeps in a savepoint folder a copy of the files a sink node's
/// subtasks pre-committed (given its node index and operator states).
pub type SinkPreserver<'a> =
    dyn Fn(usize, &[Vec<u8>], &std::path::Path) -> Result<(), String> + Sync + 'a;

/// A savepoint in progress.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) folder: SavepointFolder,
    pub(super) request: SavepointRequest,
}

/// The savepoint side of a coordinator.
#[derive(Default)]
pub(super) struct Savepoints<'a> {
    /// Where requests arrive.
    pub(super) requests: Option<&'a Receiver<SavepointRequest>>,
    /// Requests not started yet, oldest first.
    pub(super) queue: VecDeque<SavepointRequest>,
    /// The savepoint whose barriers are out.
    pub(super) in_flight: Option<InFlight>,
    /// A stop with drain: its folder and request, completed by `finish`.
    pub(super) draining: Option<(SavepointFolder, SavepointRequest)>,
    /// A stop whose savepoint failed: its sources are told to read on.
    pub(super) resume: Option<u64>,
    /// Told when a stop with savepoint completed.
    pub(super) on_stopped: Option<&'a StopListener<'a>>,
    /// Copies the sinks' pre-committed files into a savepoint.
    pub(super) preserver: Option<&'a SinkPreserver<'a>>,
}

impl Savepoints<'_> {
    /// Whether a savepoint is in progress (periodic checkpoints wait).
    pub(super) fn busy(&self) -> bool {
        self.in_flight.is_some() || self.draining.is_some()
    }

    /// Whether `id` is the savepoint in progress.
    pub(super) fn is_savepoint(&self, id: u64) -> bool {
        self.in_flight.as_ref().is_some_and(|f| f.id == id)
    }

    /// Whether a stop is under way.
    pub(super) fn stopping(&self) -> bool {
        self.draining.is_some()
            || self
                .in_flight
                .as_ref()
                .is_some_and(|f| f.request.stop.is_some())
    }
}
