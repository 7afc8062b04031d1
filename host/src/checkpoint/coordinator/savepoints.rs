//! The coordinator's savepoints: requests wait in a queue, one savepoint is
//! in progress at a time (and no periodic checkpoint starts meanwhile, so
//! none overtakes it), its files go into its own folder, and it never
//! counts towards the retained checkpoints or the tolerated failures.
//!
//! - An intermediate savepoint is aligned like a checkpoint, but commits
//!   nothing: the sinks' files it pre-committed are committed by the next
//!   checkpoint (or by a restore from it).
//! - A stop with savepoint makes the sources read nothing after its barrier;
//!   once it is complete the sinks commit and the job stops (FINISHED). If
//!   it fails, the sources read on and the job keeps running.
//! - A stop with drain ends the sources' input instead: event-time timers
//!   fire, the operators close, and the tasks' final snapshots become the
//!   savepoint ([`Coordinator::finish`]).

use std::time::Instant;

use super::Coordinator;
use super::savepoint_queue::InFlight;
use super::target::Target;
use crate::channel::BarrierKind;
use crate::checkpoint::hub::{CheckpointHub, StopOutcome};
use crate::checkpoint::metadata::CheckpointMetadata;
use crate::checkpoint::pending::Pending;
use crate::checkpoint::savepoint::{SavepointDone, SavepointFolder, SavepointRequest};
use crate::checkpoint::stats::{CheckpointStats, FailedCheckpoint};
use crate::clock::epoch_ms;
use crate::config::SavepointFormat;
use crate::spec::graph::NodeKind;
use std::path::Path;

impl Coordinator<'_> {
    /// Takes new requests and starts the oldest waiting one if none is in
    /// progress; refuses them while the job stops or ends.
    pub(super) fn poll_savepoints(&mut self, hub: &CheckpointHub, ending: bool) {
        if let Some(id) = self.savepoints.resume.take() {
            hub.end_stop(id, StopOutcome::Resumed);
        }
        if let Some(rx) = self.savepoints.requests {
            self.savepoints.queue.extend(rx.try_iter());
        }
        if self.savepoints.queue.is_empty() {
            return;
        }
        let refuse = if self.savepoints.stopping() {
            Some("the job is already stopping with a savepoint")
        } else if ending || hub.is_source_finished() {
            Some("the job is ending; no savepoint can be taken now")
        } else {
            None
        };
        if let Some(why) = refuse {
            for r in self.savepoints.queue.drain(..) {
                let _ = r.reply.send(Err(why.to_owned()));
            }
            return;
        }
        // Savepoints are aligned and do not run beside an unaligned
        // checkpoint: one in progress finishes first.
        let unaligned_running = hub.unaligned.active() && self.pending.count() > 0;
        if self.savepoints.busy() || unaligned_running {
            return;
        }
        if let Some(request) = self.savepoints.queue.pop_front() {
            self.start_savepoint(hub, request);
        }
    }

    fn start_savepoint(&mut self, hub: &CheckpointHub, request: SavepointRequest) {
        let folder = match SavepointFolder::create(
            &request.target,
            self.job_id,
            self.storage.job_folder(),
            &self.graph.config.s3,
        ) {
            Ok(f) => f,
            Err(e) => {
                let _ = request
                    .reply
                    .send(Err(format!("cannot create the savepoint folder: {e}")));
                return;
            }
        };
        tracing::info!(
            "savepoint ({}{}) into {}",
            request.format.name(),
            match request.stop {
                Some(s) if s.drain => ", stop with drain",
                Some(_) => ", stop",
                None => "",
            },
            folder.path().display()
        );
        if request.stop.is_some_and(|s| s.drain) {
            hub.drain(request.format);
            self.savepoints.draining = Some((folder, request));
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        let ts = epoch_ms();
        self.pending.start(id, Instant::now(), ts);
        if request.stop.is_some() {
            hub.set_stop(id);
        }
        hub.trigger(id, ts, BarrierKind::Savepoint(request.format));
        self.savepoints.in_flight = Some(InFlight {
            id,
            folder,
            request,
        });
    }

    /// Completes the savepoint in progress from its acknowledged states.
    pub(super) fn complete_savepoint(&mut self, hub: &CheckpointHub, id: u64, p: Pending) {
        let Some(f) = self.savepoints.in_flight.take() else {
            return;
        };
        let metadata = self.metadata(id, p, false, Some(f.request.format));
        let result = self.publish_savepoint(f.folder, &metadata, f.request.format);
        match (&result, f.request.stop) {
            (Ok(done), Some(_)) => {
                self.mark_stopped(&done.path);
                // A failed commit is logged; the restore from the savepoint
                // commits what it left.
                let _ = self.commit_sinks(&metadata);
                hub.set_completed(id);
                hub.end_stop(id, StopOutcome::Stopped);
                if let Some(stopped) = self.savepoints.on_stopped {
                    stopped();
                }
            }
            (Err(_), Some(_)) => hub.end_stop(id, StopOutcome::Resumed),
            (_, None) => {}
        }
        if let Err(e) = &result {
            self.report_failed_savepoint(id, metadata.trigger_timestamp, e);
        }
        let _ = f.request.reply.send(result);
    }

    /// Completes a stop with drain: the tasks' final snapshots (already in
    /// `pending`) become the savepoint, and the sinks commit. `None` if no
    /// drain was asked for.
    pub(super) fn finish_drain(&mut self, id: u64, mut p: Pending) -> Option<Result<(), String>> {
        let (folder, request) = self.savepoints.draining.take()?;
        let finals = std::mem::take(&mut self.finals);
        for ((node, subtask), (ack, _)) in finals {
            match self.write_state(Target::Savepoint(&folder), &ack) {
                Ok((state, size, written)) => {
                    p.states.insert((node, subtask), state);
                    p.size += size;
                    p.written += written;
                }
                Err(e) => {
                    let why = e.to_string();
                    let _ = request.reply.send(Err(why.clone()));
                    return Some(Err(why));
                }
            }
        }
        let metadata = self.metadata(id, p, true, Some(request.format));
        let mut result = self.publish_savepoint(folder, &metadata, request.format);
        if result.is_ok()
            && let Err(e) = self.commit_sinks(&metadata)
        {
            result = Err(format!("the sinks did not commit the savepoint: {e}"));
        }
        let outcome = result.as_ref().map(drop).map_err(Clone::clone);
        let _ = request.reply.send(result);
        Some(outcome)
    }

    /// Copies the sinks' pre-committed files into the folder, writes
    /// `_metadata` and renames the folder; records the savepoint in the
    /// history.
    fn publish_savepoint(
        &mut self,
        folder: SavepointFolder,
        metadata: &CheckpointMetadata,
        format: SavepointFormat,
    ) -> Result<SavepointDone, String> {
        self.preserve_sinks(metadata, folder.staging())?;
        let path = folder
            .complete(metadata)
            .map_err(|e| format!("cannot write the savepoint: {e}"))?;
        let path = path.display().to_string();
        tracing::info!(
            "savepoint {} completed: {path} ({} bytes, {:.1} ms)",
            metadata.checkpoint_id,
            metadata.state_size,
            metadata.duration_ms
        );
        self.history.push(CheckpointStats::of(metadata));
        if let (Some(listener), Some(stats)) = (self.on_complete, self.history.last()) {
            listener(stats, &path);
        }
        Ok(SavepointDone {
            path,
            id: metadata.checkpoint_id,
            size: metadata.state_size,
            format,
            timestamp: metadata.completed_timestamp,
            components: metadata
                .operators
                .iter()
                .filter_map(|o| Some((o.uid.clone(), o.component.as_ref()?.sha256.clone())))
                .collect(),
        })
    }

    /// Records, before the sinks commit, that the job stopped with the
    /// savepoint at `path` (see [`crate::checkpoint::layout::STOPPED_FILE`]).
    fn mark_stopped(&self, path: &str) {
        if let Err(e) = self.storage.mark_stopped(path) {
            tracing::warn!("cannot record the stop: {e}");
        }
    }

    /// Keeps in `dir` a copy of every file the sinks of `metadata`
    /// pre-committed, so the savepoint restores them even after a restart
    /// from an older checkpoint rewrote the sink's folder.
    fn preserve_sinks(&self, metadata: &CheckpointMetadata, dir: &Path) -> Result<(), String> {
        let Some(preserve) = self.savepoints.preserver else {
            return Ok(());
        };
        for op in &metadata.operators {
            let Some(n) = self.graph.nodes.iter().position(|x| x.uid == op.uid) else {
                continue;
            };
            if !matches!(self.graph.nodes[n].kind, NodeKind::Sink(_)) {
                continue;
            }
            let states: Vec<Vec<u8>> = op
                .subtasks
                .iter()
                .flat_map(|s| s.operator_state.iter().cloned())
                .collect();
            preserve(n, &states, dir)
                .map_err(|e| format!("cannot keep the sink `{}`'s files: {e}", op.node))?;
        }
        Ok(())
    }

    /// The savepoint in progress failed: its folder goes, the requester
    /// learns why, and a stop's sources read on. Not a checkpoint failure:
    /// the job keeps running whatever the tolerated number.
    pub(super) fn fail_savepoint(&mut self, id: u64, why: &str) {
        let Some(f) = self.savepoints.in_flight.take_if(|f| f.id == id) else {
            return;
        };
        let trigger_ts = self.pending.remove(id).map_or(0, |p| p.trigger_ts);
        tracing::warn!("savepoint {id} failed: {why}");
        if f.request.stop.is_some() {
            self.savepoints.resume = Some(id);
        }
        self.report_failed_savepoint(id, trigger_ts, why);
        drop(f.folder);
        let _ = f.request.reply.send(Err(why.to_owned()));
    }

    fn report_failed_savepoint(&self, id: u64, trigger_timestamp: i64, why: &str) {
        if let Some(listener) = self.on_failure {
            listener(&FailedCheckpoint {
                id,
                trigger_timestamp,
                failure_timestamp: epoch_ms(),
                reason: format!("savepoint: {why}"),
            });
        }
    }
}
