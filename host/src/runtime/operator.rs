//! What a non-source task runs: the [`StreamOperator`] trait and its
//! implementations (a WebAssembly operator, a sink), and the hook through
//! which the benchmarks run operators compiled into the host.

use std::sync::Arc;

use super::error::{OutputError, TaskFailure};
use super::output::Output;
use super::quarantine::{Culprit, Fingerprint, Part, Quarantine};
use crate::channel::{BarrierKind, Batch};
use crate::checkpoint::hub::StateSnapshot;
use crate::keygroup::KeyGroupRange;
use crate::sandbox::WasmOperator;
use crate::sink::{SinkError, SinkWriter};
use crate::state::KeyedStateBackend;
use crate::state::snapshot::{KeyedSnapshot, SnapshotEncoder};

/// A task body that consumes batches, watermarks and time. Only `process`
/// is required; the rest default to doing nothing.
pub trait StreamOperator: Send {
    /// Called once before any input.
    fn open(&mut self) -> Result<(), TaskFailure> {
        Ok(())
    }
    /// Handles one batch.
    fn process(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskFailure>;
    /// Handles one batch of the second input (two-input operators only).
    fn process_second(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskFailure> {
        let _ = (batch, out);
        Err(TaskFailure::Internal(
            "a batch reached the second input of a one-input operator".into(),
        ))
    }
    /// The task's watermark advanced to `watermark`.
    fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<(), TaskFailure> {
        let _ = (watermark, out);
        Ok(())
    }
    /// The wall clock reached `now` (ms), at or after [`Self::next_processing_timer`].
    fn on_processing_time(&mut self, now: i64, out: &mut Output) -> Result<(), TaskFailure> {
        let _ = (now, out);
        Ok(())
    }
    /// The earliest processing-time timer.
    fn next_processing_timer(&self) -> Option<i64> {
        None
    }
    /// Called once at the end of input, after the final watermark.
    fn close(&mut self, out: &mut Output) -> Result<(), TaskFailure> {
        let _ = out;
        Ok(())
    }
    /// Captures the task's state for checkpoint (or savepoint) `id` (the
    /// synchronous part of a snapshot): keyed state and timers, operator
    /// state.
    fn snapshot(&mut self, id: u64, kind: BarrierKind) -> Result<StateSnapshot, TaskFailure> {
        let _ = (id, kind);
        Ok(StateSnapshot::default())
    }
    /// Captures the task's state for checkpoint `id`, leaving its keyed
    /// part to [`Self::continue_snapshot`] where the state backend
    /// snapshots copy-on-write ([`Self::snapshot_pending`] then says so):
    /// the task goes on while it is written. By default, [`Self::snapshot`].
    fn snapshot_checkpoint(&mut self, id: u64) -> Result<StateSnapshot, TaskFailure> {
        self.snapshot(id, BarrierKind::Checkpoint)
    }
    /// Whether the keyed part of the last snapshot is still being written.
    fn snapshot_pending(&self) -> bool {
        false
    }
    /// Writes more of the pending snapshot's keyed part: it, once whole.
    fn continue_snapshot(&mut self) -> Option<KeyedSnapshot> {
        None
    }
    /// Checkpoint `id` (and every one before it) is complete.
    fn notify_checkpoint_complete(&mut self, id: u64) {
        let _ = id;
    }
    /// The user counters its guest keeps, by name (none by default).
    fn user_counters(&self) -> &[(String, u64)] {
        &[]
    }
}

/// A WebAssembly operator subtask.
pub struct WasmTask {
    pub(crate) guest: WasmOperator,
    pub(crate) config: Vec<(String, String)>,
    /// When the guest's own metrics were last published.
    pub(crate) published: Option<std::time::Instant>,
    /// The job's quarantine, if `weir.dead-letter.enabled`.
    pub(crate) dead_letter: Option<DeadLetterGuard>,
    /// The keyed part of a copy-on-write snapshot being written.
    pub(crate) pending: Option<SnapshotEncoder>,
}

/// What a WebAssembly subtask needs to quarantine the records it fails on.
pub struct DeadLetterGuard {
    /// The job's quarantine.
    pub(crate) quarantine: Arc<Quarantine>,
    /// The operator's uid.
    pub(crate) uid: String,
    /// The subtask.
    pub(crate) subtask: u32,
    /// The last checkpoint the subtask passed (at first, the one restored).
    pub(crate) checkpoint: u64,
}

/// How often a task publishes its guest's own metrics for reporters.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl WasmTask {
    /// Sends what the guest emitted to side outputs since the last time.
    fn route_side(&mut self, out: &mut Output) -> Result<(), TaskFailure> {
        for (tag, elements) in self.guest.take_side_output() {
            out.push_side(&tag, elements)?;
        }
        Ok(())
    }

    /// Publishes the guest's counters and gauges if the last time is
    /// [`PUBLISH_EVERY`] ago (or `now` is set).
    fn publish(&mut self, out: &Output, now: bool) {
        let due = self.published.is_none_or(|t| t.elapsed() >= PUBLISH_EVERY);
        if !(due || now) {
            return;
        }
        let (counters, gauges) = (self.guest.counters(), self.guest.gauges());
        if !counters.is_empty() || !gauges.is_empty() {
            out.metrics().publish_guest(counters, gauges);
        }
        self.published = Some(std::time::Instant::now());
    }
}

impl WasmTask {
    /// Runs `batch` through the guest (its first input, or the second).
    fn call(&mut self, batch: Batch, second: bool, out: &mut Output) -> Result<(), TaskFailure> {
        let produced = self.guest.process(batch, second)?;
        self.publish(out, false);
        self.route_side(out)?;
        emit_all(produced, out)
    }

    /// [`Self::call`] under the quarantine: quarantined records are left
    /// out, suspects go alone, and a failure strikes the records of the
    /// call that failed.
    fn guarded(&mut self, batch: Batch, second: bool, out: &mut Output) -> Result<(), TaskFailure> {
        let Some(guard) = &self.dead_letter else {
            return self.call(batch, second, out);
        };
        let quarantine = guard.quarantine.clone();
        let parts = quarantine
            .plan(&guard.uid, second, &batch)
            .map_err(OutputError::Malformed)?;
        let Some(parts) = parts else {
            return self.strike_on_failure(batch, None, second, out);
        };
        for part in parts {
            match part {
                Part::Run(b) => self.strike_on_failure(b, None, second, out)?,
                Part::Alone(b, fp) => self.strike_on_failure(b, Some(fp), second, out)?,
            }
        }
        Ok(())
    }

    /// One guarded call: on a guest failure its records get a strike (and
    /// one may be quarantined); a suspect that went through `alone` is
    /// cleared.
    fn strike_on_failure(
        &mut self,
        batch: Batch,
        alone: Option<Fingerprint>,
        second: bool,
        out: &mut Output,
    ) -> Result<(), TaskFailure> {
        let elements = batch.data.clone();
        let result = self.call(batch, second, out);
        let Some(guard) = &self.dead_letter else {
            return result;
        };
        match &result {
            Ok(()) => {
                if let Some(fp) = alone {
                    guard.quarantine.cleared(&guard.uid, fp);
                }
            }
            Err(TaskFailure::Guest(failure)) => {
                let who = Culprit {
                    uid: &guard.uid,
                    subtask: guard.subtask,
                    checkpoint: guard.checkpoint,
                };
                let quarantined = guard
                    .quarantine
                    .blame(&who, second, &elements, failure)
                    .map_err(|e| {
                        TaskFailure::Sink(SinkError::Failed(format!("dead-letter file: {e}")))
                    })?;
                if let Some(r) = quarantined {
                    tracing::warn!(
                        "operator `{}` subtask {}: quarantined a record (key {:?}, value {:?}) after {} failures: {}",
                        r.operator,
                        r.subtask + 1,
                        r.key.as_deref().or(r.key_hex.as_deref()),
                        r.value.as_deref().or(r.value_hex.as_deref()),
                        r.failures,
                        r.message
                    );
                }
            }
            Err(_) => {}
        }
        result
    }
}

fn emit_all(buffers: Vec<Vec<u8>>, out: &mut Output) -> Result<(), TaskFailure> {
    for b in buffers {
        out.push_encoded(b)?;
    }
    Ok(())
}

impl StreamOperator for WasmTask {
    fn open(&mut self) -> Result<(), TaskFailure> {
        Ok(self.guest.open(&self.config)?)
    }

    fn process(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskFailure> {
        self.guarded(batch, false, out)
    }

    fn process_second(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskFailure> {
        self.guarded(batch, true, out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<(), TaskFailure> {
        self.guest
            .advance_watermark(watermark, |b| Ok::<_, TaskFailure>(out.push_encoded(b)?))?;
        self.publish(out, false);
        self.route_side(out)
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output) -> Result<(), TaskFailure> {
        self.guest
            .advance_processing_time(now, |b| Ok::<_, TaskFailure>(out.push_encoded(b)?))?;
        self.route_side(out)
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.guest.next_processing_timer()
    }

    fn user_counters(&self) -> &[(String, u64)] {
        self.guest.counters()
    }

    fn close(&mut self, out: &mut Output) -> Result<(), TaskFailure> {
        let produced = self.guest.close()?;
        self.publish(out, true);
        self.route_side(out)?;
        emit_all(produced, out)
    }

    fn snapshot_checkpoint(&mut self, id: u64) -> Result<StateSnapshot, TaskFailure> {
        self.pending = None;
        let Some(encoder) = self.guest.begin_keyed_snapshot() else {
            return self.snapshot(id, BarrierKind::Checkpoint);
        };
        if let Some(g) = self.dead_letter.as_mut() {
            g.checkpoint = id;
        }
        self.pending = Some(encoder);
        Ok(StateSnapshot {
            operator_state: self.guest.operator_state_items(),
            declared: self.guest.declared_states(),
            ..StateSnapshot::default()
        })
    }

    fn snapshot_pending(&self) -> bool {
        self.pending.is_some()
    }

    fn continue_snapshot(&mut self) -> Option<KeyedSnapshot> {
        let encoder = self.pending.as_mut()?;
        if !self.guest.continue_keyed_snapshot(encoder) {
            return None;
        }
        self.pending.take().map(SnapshotEncoder::finish)
    }

    fn snapshot(&mut self, id: u64, kind: BarrierKind) -> Result<StateSnapshot, TaskFailure> {
        // One still being written is abandoned (the input loop finishes
        // it before it takes another).
        self.pending = None;
        if let Some(g) = self.dead_letter.as_mut() {
            g.checkpoint = id;
        }
        let (keyed, native) = self.guest.keyed_snapshot(id, kind)?;
        Ok(StateSnapshot {
            keyed,
            native,
            operator_state: self.guest.operator_state_items(),
            declared: self.guest.declared_states(),
            ..StateSnapshot::default()
        })
    }
}

/// A sink subtask.
pub struct SinkTask {
    pub(crate) writer: Box<dyn SinkWriter>,
}

impl StreamOperator for SinkTask {
    fn process(&mut self, batch: Batch, _out: &mut Output) -> Result<(), TaskFailure> {
        Ok(self.writer.write(&batch)?)
    }

    fn close(&mut self, _out: &mut Output) -> Result<(), TaskFailure> {
        Ok(self.writer.finish()?)
    }

    fn snapshot(&mut self, id: u64, _kind: BarrierKind) -> Result<StateSnapshot, TaskFailure> {
        Ok(StateSnapshot {
            operator_state: self.writer.pre_commit(id)?,
            ..StateSnapshot::default()
        })
    }

    fn notify_checkpoint_complete(&mut self, id: u64) {
        self.writer.notify_checkpoint_complete(id);
    }
}

/// Operators compiled into the host, run where a graph has a
/// [`NodeKind::Native`](crate::spec::graph::NodeKind::Native) node: the
/// benchmarks' baseline for the cost of the WebAssembly boundary. Handed to
/// a job through [`super::RunOptions::native`].
pub trait NativeOperators: Send + Sync + std::fmt::Debug {
    /// Opens native operator `name` for a subtask owning `key_groups` of
    /// `max_parallelism`, its keyed state filled by `restore` (from the
    /// checkpoint restored, if any).
    fn open(
        &self,
        name: &str,
        key_groups: KeyGroupRange,
        max_parallelism: u32,
        restore: &mut dyn FnMut(&mut dyn KeyedStateBackend) -> Result<(), TaskFailure>,
    ) -> Result<Box<dyn StreamOperator>, TaskFailure>;
}
