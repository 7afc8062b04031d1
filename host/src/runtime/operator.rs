//! What a non-source task runs: the [`StreamOperator`] trait and its
//! implementations (a WebAssembly operator, a sink, and the native
//! operators of the benchmark).

use weir_wire::BatchReader;

use super::error::TaskFailure;
use super::output::Output;
use crate::channel::Batch;
use crate::checkpoint::hub::StateSnapshot;
use crate::keygroup::key_group;
use crate::sandbox::WasmOperator;
use crate::sink::SinkWriter;
use crate::state::{HashMapBackend, KeyedStateBackend, StateId, StateKey, StateKind};

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
    /// Captures the task's state for checkpoint `id` (the synchronous part
    /// of a snapshot): keyed state and timers, operator state.
    fn snapshot(&mut self, id: u64) -> Result<StateSnapshot, TaskFailure> {
        let _ = id;
        Ok(StateSnapshot::default())
    }
    /// Checkpoint `id` (and every one before it) is complete.
    fn notify_checkpoint_complete(&mut self, id: u64) {
        let _ = id;
    }
}

/// A WebAssembly operator subtask.
pub struct WasmTask {
    pub(crate) guest: WasmOperator,
    pub(crate) config: Vec<(String, String)>,
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
        let produced = self.guest.process(batch, false)?;
        emit_all(produced, out)
    }

    fn process_second(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskFailure> {
        let produced = self.guest.process(batch, true)?;
        emit_all(produced, out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<(), TaskFailure> {
        self.guest
            .advance_watermark(watermark, |b| Ok::<_, TaskFailure>(out.push_encoded(b)?))
    }

    fn on_processing_time(&mut self, now: i64, out: &mut Output) -> Result<(), TaskFailure> {
        self.guest
            .advance_processing_time(now, |b| Ok::<_, TaskFailure>(out.push_encoded(b)?))
    }

    fn next_processing_timer(&self) -> Option<i64> {
        self.guest.next_processing_timer()
    }

    fn close(&mut self, out: &mut Output) -> Result<(), TaskFailure> {
        let produced = self.guest.close()?;
        emit_all(produced, out)
    }

    fn snapshot(&mut self, id: u64) -> Result<StateSnapshot, TaskFailure> {
        let (keyed, native) = self.guest.keyed_snapshot(id)?;
        Ok(StateSnapshot {
            keyed,
            native,
            operator_state: self.guest.operator_state_items(),
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

    fn snapshot(&mut self, id: u64) -> Result<StateSnapshot, TaskFailure> {
        Ok(StateSnapshot {
            keyed: None,
            native: None,
            operator_state: self.writer.pre_commit(id)?,
        })
    }

    fn notify_checkpoint_complete(&mut self, id: u64) {
        self.writer.notify_checkpoint_complete(id);
    }
}

/// The keyed running count of `operators/count` as native Rust, for
/// `weir bench` to measure the WebAssembly boundary against. It keeps its
/// count in the same backend, reading and writing per element as a native
/// operator would.
pub struct NativeCount {
    pub(crate) backend: HashMapBackend,
    state: StateId,
    max_parallelism: u32,
    text: Vec<u8>,
}

impl NativeCount {
    /// A counter over the key groups of `backend`.
    pub fn new(mut backend: HashMapBackend, max_parallelism: u32) -> Result<Self, TaskFailure> {
        let state = backend.register("count", StateKind::Value)?;
        Ok(NativeCount {
            backend,
            state,
            max_parallelism,
            text: Vec::with_capacity(20),
        })
    }
}

impl StreamOperator for NativeCount {
    fn snapshot(&mut self, _id: u64) -> Result<StateSnapshot, TaskFailure> {
        Ok(StateSnapshot {
            native: None,
            keyed: Some(crate::state::snapshot::encode(
                &self.backend,
                &crate::timers::TimerService::default(),
                self.max_parallelism,
            )),
            operator_state: Vec::new(),
        })
    }

    fn process(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskFailure> {
        for e in BatchReader::new(&batch.data) {
            let e = e.map_err(|e| TaskFailure::Internal(e.to_string()))?;
            let key = e.key.unwrap_or_default();
            let at = StateKey {
                key_group: key_group(key, self.max_parallelism),
                key,
                namespace: &[],
            };
            let n = match self.backend.value_get(self.state, at)? {
                Some(v) if v.len() == 8 => {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&v);
                    u64::from_le_bytes(a) + 1
                }
                _ => 1,
            };
            self.backend.value_put(self.state, at, &n.to_le_bytes())?;
            self.text.clear();
            use std::io::Write;
            let _ = write!(self.text, "{n}");
            out.push(e.key, &self.text, e.timestamp)?;
        }
        Ok(())
    }
}
