//! One running guest instance: calls its exports under the sandbox's
//! limits and turns every way a guest can fail into a [`GuestFailure`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use thiserror::Error;
use wasmtime::{Store, Trap, UpdateDeadline};
use weir_wire::UpdatesReader;

use super::bindings::Operator;
use super::bindings::weir::operator::types;
use super::component::LoadedComponent;
use super::engine::Sandbox;
use super::guest::{GuestState, Phase};
use super::keyed::KeyedContext;
use crate::channel::Batch;
use crate::state::KeyedStateBackend;
use crate::timers::Domain;

/// How a guest failed.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestFailureKind {
    /// A call ran past `weir.sandbox.call-timeout`.
    Timeout(Duration),
    /// Memory grew past `weir.sandbox.memory-limit` (bytes).
    OutOfMemory(u64),
    /// The guest trapped (a panic, an unreachable, a bad import call).
    Trap,
    /// `open` returned an error for the operator's config.
    OpenFailed,
    /// The guest returned a malformed buffer.
    Protocol,
    /// The call was stopped because the job was cancelled.
    Interrupted,
}

/// A guest failure, with the export it happened in.
#[derive(Debug, Clone, Error, PartialEq)]
pub struct GuestFailure {
    /// The export that was running (`open`, `process`, ...).
    pub call: &'static str,
    /// What happened.
    pub kind: GuestFailureKind,
    /// The trap message or the guest's panic message.
    pub detail: String,
    /// Whether the guest's own code failed (a trap, a timeout, its memory
    /// exhausted), rather than the host refusing one of its calls (a
    /// state, output or timer limit, a misused import).
    pub by_guest: bool,
}

impl fmt::Display for GuestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.call;
        match &self.kind {
            GuestFailureKind::Timeout(d) => write!(
                f,
                "exceeded its call timeout of {d:?} in `{call}` (weir.sandbox.call-timeout)"
            ),
            GuestFailureKind::OutOfMemory(limit) => write!(
                f,
                "exceeded its memory limit of {} MiB in `{call}` (weir.sandbox.memory-limit): {}",
                limit >> 20,
                self.detail
            ),
            GuestFailureKind::Trap => write!(f, "trapped in `{call}`: {}", self.detail),
            GuestFailureKind::OpenFailed => {
                write!(f, "refused its config in `open`: {}", self.detail)
            }
            GuestFailureKind::Protocol => {
                write!(f, "broke the batch protocol in `{call}`: {}", self.detail)
            }
            GuestFailureKind::Interrupted => {
                write!(f, "was stopped in `{call}`: the job was cancelled")
            }
        }
    }
}

/// A live guest instance of one operator subtask.
pub struct WasmOperator {
    store: Store<GuestState>,
    op: Operator,
    ticks: u64,
    call_timeout: Duration,
    memory_limit: u64,
}

impl Sandbox {
    /// Instantiates `component` for one subtask; `keyed` gives it keyed
    /// state (its input is hash-partitioned) with `max_parallelism` key groups.
    pub fn instantiate(
        &self,
        component: &LoadedComponent,
        label: String,
        keyed: Option<(Box<dyn KeyedStateBackend>, u32)>,
    ) -> Result<WasmOperator, GuestFailure> {
        let keyed = keyed.map(|(backend, max)| KeyedContext::new(backend, max));
        let limits = self.limits();
        let mut store = Store::new(&self.engine, GuestState::new(label, keyed, &limits));
        store.limiter(|s| s.limiter());
        let ticks = self.deadline_ticks();
        watch_deadline(&mut store, self.interrupt.clone());
        arm(&mut store, ticks);
        let mut w = WasmOperator {
            op: match component.pre.instantiate(&mut store) {
                Ok(op) => op,
                Err(e) => {
                    return Err(classify(
                        "instantiate",
                        e,
                        None,
                        limits.call_timeout,
                        limits.memory_limit,
                    ));
                }
            },
            store,
            ticks,
            call_timeout: limits.call_timeout,
            memory_limit: limits.memory_limit,
        };
        arm(&mut w.store, w.ticks);
        Ok(w)
    }
}

/// Why a call was stopped before its deadline: the job's interrupt flag.
#[derive(Debug, Error)]
#[error("the job was cancelled")]
struct CallInterrupted;

/// Checks, at every epoch tick while guest code runs, whether `interrupt`
/// was raised (the call stops at once) and whether the call's deadline
/// passed (it traps as a timeout). Counting the ticks here, rather than
/// letting wasmtime trap at a far deadline, is what lets a cancel stop a
/// guest that loops.
fn watch_deadline(store: &mut Store<GuestState>, interrupt: Option<Arc<AtomicBool>>) {
    store.epoch_deadline_callback(move |mut ctx| {
        if interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Err(CallInterrupted.into());
        }
        let left = &mut ctx.data_mut().ticks_left;
        *left = left.saturating_sub(1);
        if *left == 0 {
            return Err(Trap::Interrupt.into());
        }
        Ok(UpdateDeadline::Continue(1))
    });
}

/// Gives the next call `ticks` epoch ticks before it times out.
fn arm(store: &mut Store<GuestState>, ticks: u64) {
    store.data().log.begin_call();
    store.data_mut().ticks_left = ticks;
    store.set_epoch_deadline(1);
}

fn classify(
    call: &'static str,
    e: wasmtime::Error,
    panic: Option<String>,
    timeout: Duration,
    memory: u64,
) -> GuestFailure {
    let text = format!("{e:#}");
    let kind = if e.downcast_ref::<CallInterrupted>().is_some() {
        GuestFailureKind::Interrupted
    } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        GuestFailureKind::Timeout(timeout)
    } else if text.contains("growing memory") {
        GuestFailureKind::OutOfMemory(memory)
    } else {
        GuestFailureKind::Trap
    };
    // The root cause is the trap itself or the host's error (a state
    // limit, a misused import); the outer layers are wasm backtraces.
    let by_guest = e.downcast_ref::<Trap>().is_some()
        || matches!(
            kind,
            GuestFailureKind::Timeout(_) | GuestFailureKind::OutOfMemory(_)
        );
    // `wasi:cli/exit` ends the call with the exit code as its error.
    let exit = e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|x| x.0);
    let by_guest = by_guest || exit.is_some();
    let detail = match (panic, exit) {
        (Some(p), _) => format!("guest panicked: {p}"),
        (None, Some(code)) => format!(
            "the operator called exit (status {code}); an operator cannot end its process, only fail its call"
        ),
        (None, None) => e.root_cause().to_string(),
    };
    GuestFailure {
        call,
        kind,
        detail,
        by_guest,
    }
}

impl WasmOperator {
    fn fail(&mut self, call: &'static str, e: wasmtime::Error) -> GuestFailure {
        let data = self.store.data_mut();
        let panic = data.last_panic.take();
        let stderr = data.log.take_recent_stderr();
        let panicked = panic.is_some();
        let mut failure = classify(call, e, panic, self.call_timeout, self.memory_limit);
        // A language runtime reports an uncaught exception on stderr and
        // then traps: its last lines say what went wrong.
        if let (false, Some(lines), GuestFailureKind::Trap) = (panicked, stderr, &failure.kind) {
            failure.detail = format!("{}; the guest's last stderr lines: {lines}", failure.detail);
        }
        failure
    }

    fn protocol(call: &'static str, detail: impl fmt::Display) -> GuestFailure {
        GuestFailure {
            call,
            kind: GuestFailureKind::Protocol,
            detail: detail.to_string(),
            by_guest: true,
        }
    }

    /// Calls `open` with the operator's config.
    pub fn open(&mut self, config: &[(String, String)]) -> Result<(), GuestFailure> {
        self.store.data_mut().phase = Phase::Open;
        arm(&mut self.store, self.ticks);
        match self
            .op
            .weir_operator_handler()
            .call_open(&mut self.store, config)
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(msg)) => Err(GuestFailure {
                call: "open",
                kind: GuestFailureKind::OpenFailed,
                detail: msg,
                by_guest: true,
            }),
            Err(e) => Err(self.fail("open", e)),
        }
    }

    /// A batch's elements and key slots as the guest asked for them: the
    /// batch encoding and its slots, or the column layout (which holds the
    /// slots; the list stays empty but keeps its buffer for the next batch).
    fn elements_for_guest(
        columns: bool,
        rows: Vec<u8>,
        key_slots: Vec<u32>,
        call: &'static str,
    ) -> Result<(Vec<u8>, Vec<u32>), GuestFailure> {
        if !columns {
            return Ok((rows, key_slots));
        }
        let mut layout = Vec::new();
        // The batch encoding is the host's own, so a failure here is not
        // the guest's.
        weir_wire::write_columns(&rows, &key_slots, &mut layout).map_err(|e| GuestFailure {
            by_guest: false,
            ..Self::protocol(call, e)
        })?;
        let mut spare = key_slots;
        spare.clear();
        Ok((layout, spare))
    }

    /// Runs one batch through `process`; returns the output buffers.
    pub fn process(&mut self, batch: Batch, second: bool) -> Result<Vec<Vec<u8>>, GuestFailure> {
        let call = if second { "process-second" } else { "process" };
        let data = self.store.data_mut();
        data.phase = Phase::Process;
        let (key_slots, prefetched) = match data.keyed.as_mut() {
            Some(k) => k
                .prepare_batch(&batch.data, &data.prefetched)
                .map_err(|e| Self::protocol(call, format!("{e:#}")))?,
            None => (Vec::new(), Vec::new()),
        };
        let (elements, key_slots) =
            Self::elements_for_guest(data.columns, batch.data, key_slots, call)?;
        let arg = types::Batch {
            elements,
            key_slots,
            prefetched,
        };
        arm(&mut self.store, self.ticks);
        let handler = self.op.weir_operator_handler();
        let result = if second {
            handler.call_process_second(&mut self.store, &arg)
        } else {
            handler.call_process(&mut self.store, &arg)
        };
        let updates = match result {
            Ok(u) => u,
            Err(e) => return Err(self.fail(call, e)),
        };
        let types::Batch {
            key_slots,
            prefetched,
            ..
        } = arg;
        let data = self.store.data_mut();
        if let Some(k) = data.keyed.as_mut() {
            k.recycle(key_slots, prefetched);
        }
        data.clear_key();
        if !updates.is_empty() {
            let prefetched = data.prefetched.clone();
            let Some(keyed) = data.keyed.as_mut() else {
                return Err(Self::protocol(
                    call,
                    "returned state updates on a non-keyed input",
                ));
            };
            let mut reader = UpdatesReader::new(&updates);
            loop {
                match reader.next_update() {
                    Ok(None) => break,
                    Ok(Some(u)) => {
                        if !prefetched.contains(&u.state) {
                            return Err(Self::protocol(
                                call,
                                format!(
                                    "returned an update of state {}, which is not prefetched",
                                    u.state
                                ),
                            ));
                        }
                        keyed
                            .apply_update(u.slot, u.state, u.value)
                            .map_err(|e| Self::protocol(call, format!("{e:#}")))?;
                    }
                    Err(e) => return Err(Self::protocol(call, e)),
                }
            }
        }
        Ok(data.take_output())
    }

    /// Advances the watermark and fires every event-time timer it passes,
    /// handing each callback's output to `emit` as it comes.
    pub fn advance_watermark<E: From<GuestFailure>>(
        &mut self,
        watermark: i64,
        emit: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.store.data_mut().watermark = watermark;
        self.fire(Domain::EventTime, watermark, emit)
    }

    /// Fires every processing-time timer due at `now`, handing each
    /// callback's output to `emit`.
    pub fn advance_processing_time<E: From<GuestFailure>>(
        &mut self,
        now: i64,
        emit: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.fire(Domain::ProcessingTime, now, emit)
    }

    /// The earliest processing-time timer.
    pub fn next_processing_timer(&self) -> Option<i64> {
        self.store.data().timers.next_processing_time()
    }

    fn fire<E: From<GuestFailure>>(
        &mut self,
        domain: Domain,
        now: i64,
        mut emit: impl FnMut(Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let due = self.store.data_mut().timers.take_due(domain, now);
        for t in due {
            let data = self.store.data_mut();
            data.phase = Phase::Timer;
            if let Some(k) = data.keyed.as_mut() {
                k.set_timer_key(&t.key);
            }
            let timer = types::Timer {
                key: Some(t.key),
                namespace: t.namespace,
                time: t.time,
                domain: match domain {
                    Domain::EventTime => types::TimeDomain::EventTime,
                    Domain::ProcessingTime => types::TimeDomain::ProcessingTime,
                },
            };
            arm(&mut self.store, self.ticks);
            if let Err(e) = self
                .op
                .weir_operator_handler()
                .call_on_timer(&mut self.store, &timer)
            {
                return Err(self.fail("on-timer", e).into());
            }
            for buffer in self.store.data_mut().take_output() {
                emit(buffer)?;
            }
        }
        self.store.data_mut().clear_key();
        Ok(())
    }

    /// Calls `close` at the end of input; returns its output.
    pub fn close(&mut self) -> Result<Vec<Vec<u8>>, GuestFailure> {
        self.store.data_mut().phase = Phase::Close;
        self.store.data_mut().clear_key();
        arm(&mut self.store, self.ticks);
        if let Err(e) = self.op.weir_operator_handler().call_close(&mut self.store) {
            return Err(self.fail("close", e));
        }
        Ok(self.store.data_mut().take_output())
    }

    /// Begins a snapshot of the keyed state copy-on-write, if the state
    /// backend has such snapshots (see
    /// [`crate::state::KeyedStateBackend::begin_snapshot`]): the encoder,
    /// with the timers copied, that [`Self::continue_keyed_snapshot`] then
    /// drives while the guest goes on. `None`: use [`Self::keyed_snapshot`].
    pub fn begin_keyed_snapshot(&mut self) -> Option<crate::state::snapshot::SnapshotEncoder> {
        let data = self.store.data_mut();
        let k = data.keyed.as_mut()?;
        if !k.backend.begin_snapshot() {
            return None;
        }
        let mut encoder = crate::state::snapshot::SnapshotEncoder::new(
            k.backend.as_ref(),
            &data.timers,
            k.max_parallelism,
        );
        encoder.reserve(k.backend.size_bytes());
        Some(encoder)
    }

    /// Writes the next key group of the snapshot `encoder` began; returns
    /// whether it is complete.
    pub fn continue_keyed_snapshot(
        &mut self,
        encoder: &mut crate::state::snapshot::SnapshotEncoder,
    ) -> bool {
        match self.store.data_mut().keyed.as_mut() {
            Some(k) => encoder.encode_next(k.backend.as_mut()),
            None => true,
        }
    }

    /// Snapshots the keyed state and timers of this subtask for
    /// checkpoint `id`: a portable snapshot of both, or the backend's own
    /// (incremental) snapshot and a portable one of the timers only;
    /// nothing for an operator without keyed state. `kind` decides for a
    /// savepoint: canonical is always portable, native always the
    /// backend's own files where it has them.
    pub fn keyed_snapshot(
        &self,
        id: u64,
        kind: crate::channel::BarrierKind,
    ) -> Result<
        (
            Option<crate::state::snapshot::KeyedSnapshot>,
            Option<crate::state::incremental::NativeSnapshot>,
        ),
        crate::state::StateError,
    > {
        use crate::state::snapshot;
        let data = self.store.data();
        let Some(k) = data.keyed.as_ref() else {
            return Ok((None, None));
        };
        let backend = k.backend.as_ref();
        use crate::channel::BarrierKind;
        use crate::config::SavepointFormat;
        let native = match kind {
            BarrierKind::Checkpoint => backend.native_snapshot(id, false)?,
            BarrierKind::Savepoint(SavepointFormat::Native) => backend.native_snapshot(id, true)?,
            BarrierKind::Savepoint(SavepointFormat::Canonical) => None,
        };
        Ok(match native {
            Some(native) => (
                Some(snapshot::encode_timers(
                    backend,
                    &data.timers,
                    k.max_parallelism,
                )),
                Some(native),
            ),
            None => (
                Some(snapshot::encode(backend, &data.timers, k.max_parallelism)),
                None,
            ),
        })
    }

    /// The keyed states the guest declared, in order (none for an
    /// operator without keyed state).
    pub fn declared_states(&self) -> Vec<crate::state::DeclaredState> {
        self.store
            .data()
            .keyed
            .as_ref()
            .map(|k| k.declared().to_vec())
            .unwrap_or_default()
    }

    /// The operator state, as checkpoint items.
    pub fn operator_state_items(&self) -> Vec<Vec<u8>> {
        crate::state::operator_state::encode(&self.store.data().operator_state)
    }

    /// Replaces the operator state (with a restored checkpoint's).
    pub fn set_operator_state(&mut self, lists: crate::state::operator_state::OperatorLists) {
        self.store.data_mut().set_operator_state(lists);
    }

    /// Tells the keyed context which states a restored checkpoint holds and
    /// which of them had a time-to-live, so that `open` cannot declare one
    /// of them differently.
    pub fn set_restored_states(
        &mut self,
        names: std::collections::BTreeSet<String>,
        ttl: std::collections::BTreeSet<String>,
    ) {
        if let Some(k) = self.store.data_mut().keyed.as_mut() {
            k.set_restored(names, ttl);
        }
    }

    /// Replaces the timers (with those of a restored checkpoint).
    pub fn set_timers(&mut self, timers: crate::timers::TimerService) {
        self.store.data_mut().timers = timers;
    }

    /// Takes the side output emitted since the last time: (tag, elements
    /// in the batch encoding).
    pub fn take_side_output(&mut self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut self.store.data_mut().side_output)
    }

    /// The user counters the guest declared, with their values.
    pub fn counters(&self) -> &[(String, u64)] {
        &self.store.data().counters
    }

    /// The gauges the guest declared, with their values.
    pub fn gauges(&self) -> &[(String, f64)] {
        &self.store.data().gauges
    }

    /// Number of keyed state entries held.
    pub fn state_entries(&self) -> usize {
        self.store
            .data()
            .keyed
            .as_ref()
            .map_or(0, |k| k.backend.entry_count())
    }
}
