//! The keyed running count as native Rust: the baseline `weir bench`
//! measures the WebAssembly boundary against, run by the runtime through
//! [`NativeOperators`].

use std::time::{Duration, Instant};

use weir_wire::BatchReader;

use crate::channel::Batch;
use crate::checkpoint::hub::StateSnapshot;
use crate::keygroup::{KeyGroupRange, key_group};
use crate::runtime::{NativeOperators, Output, StreamOperator, TaskFailure};
use crate::state::{HashMapBackend, KeyedStateBackend, StateId, StateKey, StateKind};

/// The native operators of the benchmarks, by name: `count`, and
/// `throttle:<records per second>` (forwards its input at most that fast:
/// a slow sink's stand-in).
#[derive(Debug, Default)]
pub struct BenchOperators;

impl NativeOperators for BenchOperators {
    fn open(
        &self,
        name: &str,
        key_groups: KeyGroupRange,
        max_parallelism: u32,
        restore: &mut dyn FnMut(&mut dyn KeyedStateBackend) -> Result<(), TaskFailure>,
    ) -> Result<Box<dyn StreamOperator>, TaskFailure> {
        match name {
            "count" => {
                let mut op = NativeCount::new(HashMapBackend::new(key_groups), max_parallelism)?;
                restore(&mut op.backend)?;
                Ok(Box::new(op))
            }
            other => match other.strip_prefix("throttle:").map(str::parse::<f64>) {
                Some(Ok(rate)) if rate > 0.0 => Ok(Box::new(Throttle {
                    per_record: Duration::from_secs_f64(1.0 / rate),
                    due: Instant::now(),
                })),
                _ => Err(TaskFailure::Internal(format!(
                    "no native operator {other:?}"
                ))),
            },
        }
    }
}

/// Forwards batches, sleeping so that it passes at most one record per
/// `per_record`.
struct Throttle {
    per_record: Duration,
    due: Instant,
}

impl StreamOperator for Throttle {
    fn process(&mut self, batch: Batch, out: &mut Output) -> Result<(), TaskFailure> {
        let now = Instant::now();
        self.due = self.due.max(now) + self.per_record * batch.len as u32;
        std::thread::sleep(self.due.saturating_duration_since(now));
        out.push_encoded(batch.data)?;
        Ok(())
    }
}

/// The keyed running count of `operators/count` as native Rust, for
/// `weir bench` to measure the WebAssembly boundary against. It keeps its
/// count in the same backend, reading and writing per element as a native
/// operator would.
pub struct NativeCount {
    backend: HashMapBackend,
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
    fn snapshot(
        &mut self,
        _id: u64,
        _kind: crate::channel::BarrierKind,
    ) -> Result<StateSnapshot, TaskFailure> {
        Ok(StateSnapshot {
            native: None,
            keyed: Some(crate::state::snapshot::encode(
                &self.backend,
                &crate::timers::TimerService::default(),
                self.max_parallelism,
            )),
            operator_state: Vec::new(),
            ..StateSnapshot::default()
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
