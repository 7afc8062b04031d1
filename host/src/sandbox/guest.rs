//! [`GuestState`], the data of a guest's wasmtime `Store`: the WASI
//! context and resource limits of one instance, the export it is in, its
//! keyed context, timers, output, metrics and operator state. The host
//! functions that act on it are in `imports`, the keyed side in `keyed`.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weir_wire::BatchBuilder;

use super::clock::ClockView;
use super::guest_log::GuestLog;
use super::keyed::KeyedContext;
use super::limits::Limits;
use super::stdio::GuestOutput;
use crate::state::StateId;
use crate::state::operator_state::{MAX_OPERATOR_STATE_BYTES, OperatorLists};
use crate::timers::TimerService;
use crate::watermark::NO_WATERMARK;

/// Most output one guest call may produce before it is stopped.
/// Most memories, tables, table elements and core instances one guest
/// component may have (a Rust operator has one memory and a few instances).
const MAX_MEMORIES: usize = 4;
const MAX_TABLES: usize = 16;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_INSTANCES: usize = 64;

/// Which export the guest is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// `open`: states are declared.
    Open,
    /// `process` or `process-second`: a batch is processed.
    Process,
    /// `on-timer`: a timer fired.
    Timer,
    /// `close`: the input has ended.
    Close,
}

/// The data of one guest instance's store.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// The export the guest is in.
    pub(crate) phase: Phase,
    /// Keyed state, if the operator's input is keyed.
    pub(crate) keyed: Option<KeyedContext>,
    /// The timers the guest registered.
    pub(crate) timers: TimerService,
    /// The current event-time watermark.
    pub(crate) watermark: i64,
    /// Output of the current call, in the batch encoding.
    pub(crate) output: Vec<Vec<u8>>,
    /// Bytes of output of the current call so far.
    output_bytes: usize,
    /// `weir.sandbox.output-limit`.
    output_limit: usize,
    /// Where its log lines, stdout and stderr go.
    pub(crate) log: Arc<GuestLog>,
    /// The moment its monotonic clock counts from.
    clock_origin: std::time::Instant,
    /// Side output not yet taken: (tag, elements in the batch encoding).
    pub(crate) side_output: Vec<(String, Vec<u8>)>,
    /// Elements emitted one at a time, not yet in `output`.
    single: BatchBuilder,
    /// Ids of the states declared with prefetch, ascending.
    pub(crate) prefetched: Vec<StateId>,
    /// Whether the guest asked for batches in the column layout.
    pub(crate) columns: bool,
    /// The counters the guest declared, with their values.
    pub(crate) counters: Vec<(String, u64)>,
    /// The gauges the guest declared, with their values.
    pub(crate) gauges: Vec<(String, f64)>,
    /// The last panic message the guest logged, to explain a trap.
    pub(crate) last_panic: Option<String>,
    /// Epoch ticks the running call has left before it times out.
    pub(crate) ticks_left: u64,
    /// Operator (non-keyed) list state.
    pub(crate) operator_state: OperatorLists,
    /// The size of `operator_state` in bytes.
    operator_state_bytes: usize,
}

impl GuestState {
    /// A store's data for a guest with `memory_limit` bytes of memory.
    pub(crate) fn new(label: String, keyed: Option<KeyedContext>, limits: &Limits) -> Self {
        let memory_limit = limits.memory_limit;
        let log = Arc::new(GuestLog::new(label));
        // No preopens, no environment, no arguments, no network; stdin
        // is empty, and stdout and stderr go to the job's log.
        let wasi = WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(GuestOutput::stdout(log.clone()))
            .stderr(GuestOutput::stderr(log.clone()))
            .build();
        GuestState {
            wasi,
            table: ResourceTable::new(),
            // One memory limit per memory, so the number of memories,
            // tables and instances is bounded too.
            limits: StoreLimitsBuilder::new()
                .memory_size(usize::try_from(memory_limit).unwrap_or(usize::MAX))
                .memories(MAX_MEMORIES)
                .tables(MAX_TABLES)
                .table_elements(MAX_TABLE_ELEMENTS)
                .instances(MAX_INSTANCES)
                .trap_on_grow_failure(true)
                .build(),
            phase: Phase::Open,
            keyed,
            timers: TimerService::default(),
            watermark: NO_WATERMARK,
            output: Vec::new(),
            output_bytes: 0,
            output_limit: usize::try_from(limits.output_limit).unwrap_or(usize::MAX),
            log,
            clock_origin: std::time::Instant::now(),
            side_output: Vec::new(),
            single: BatchBuilder::default(),
            prefetched: Vec::new(),
            columns: false,
            counters: Vec::new(),
            gauges: Vec::new(),
            last_panic: None,
            ticks_left: 0,
            operator_state: OperatorLists::new(),
            operator_state_bytes: 0,
        }
    }

    /// Replaces the operator state (with a restored checkpoint's).
    pub(crate) fn set_operator_state(&mut self, lists: OperatorLists) {
        self.operator_state_bytes = lists
            .iter()
            .map(|(n, v)| n.len() + v.iter().map(Vec::len).sum::<usize>())
            .sum();
        self.operator_state = lists;
    }

    /// Accounts for operator state growing by `added` bytes and shrinking
    /// by `removed`; a trap if it would exceed its limit.
    pub(super) fn grow_operator_state(
        &mut self,
        added: usize,
        removed: usize,
    ) -> wasmtime::Result<()> {
        let bytes = self
            .operator_state_bytes
            .saturating_add(added)
            .saturating_sub(removed);
        if bytes > MAX_OPERATOR_STATE_BYTES {
            return Err(wasmtime::format_err!(
                "operator state exceeds {} MiB",
                MAX_OPERATOR_STATE_BYTES >> 20
            ));
        }
        self.operator_state_bytes = bytes;
        Ok(())
    }

    /// Forgets the current key, so state calls outside a keyed context
    /// (in `close`, say) trap instead of touching an arbitrary key.
    pub(crate) fn clear_key(&mut self) {
        if let Some(k) = self.keyed.as_mut() {
            k.clear_key();
        }
    }

    /// The store's resource limiter (memory, tables, instances).
    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    /// Takes the output of the last call.
    pub(crate) fn take_output(&mut self) -> Vec<Vec<u8>> {
        if !self.single.is_empty() {
            let (buf, _) = self.single.take();
            self.output.push(buf);
        }
        self.output_bytes = 0;
        std::mem::take(&mut self.output)
    }

    /// Adds one element to the call's output.
    pub(super) fn emit_element(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: Option<i64>,
    ) -> wasmtime::Result<()> {
        self.count_output(value.len() + key.map_or(0, <[u8]>::len) + 17)?;
        self.single.push(key, value, timestamp);
        Ok(())
    }

    /// Adds a buffer of elements, in the batch encoding, to the call's
    /// output, after the single elements emitted before it.
    pub(super) fn emit_batch(&mut self, elements: Vec<u8>) -> wasmtime::Result<()> {
        self.count_output(elements.len())?;
        if !self.single.is_empty() {
            let (buf, _) = self.single.take();
            self.output.push(buf);
        }
        self.output.push(elements);
        Ok(())
    }

    /// Adds elements, in the batch encoding, to side output `tag`; a trap
    /// for a tag over 128 bytes.
    pub(super) fn emit_side(&mut self, tag: String, elements: Vec<u8>) -> wasmtime::Result<()> {
        if tag.is_empty() || tag.len() > 128 {
            return Err(wasmtime::format_err!(
                "a side output tag has 1 to 128 bytes, not {}",
                tag.len()
            ));
        }
        self.count_output(elements.len() + tag.len())?;
        self.side_output.push((tag, elements));
        Ok(())
    }

    /// The keyed context; a trap naming `what` if the input is not keyed.
    pub(super) fn keyed(&mut self, what: &str) -> wasmtime::Result<&mut KeyedContext> {
        self.keyed.as_mut().ok_or_else(|| {
            wasmtime::format_err!(
                "{what} needs a keyed input, but this operator's input is not keyed \
                 (give its input edge `partition: hash`)"
            )
        })
    }

    /// Counts `bytes` of output of the current call; a trap past
    /// `weir.sandbox.output-limit`.
    fn count_output(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.output_bytes += bytes;
        if self.output_bytes > self.output_limit {
            return Err(wasmtime::format_err!(
                "one call emitted more than {} bytes of output (weir.sandbox.output-limit)",
                self.output_limit
            ));
        }
        Ok(())
    }
}

impl GuestState {
    /// What its monotonic clock's host functions reach.
    pub(crate) fn clock(&mut self) -> ClockView<'_> {
        ClockView {
            table: &mut self.table,
            origin: self.clock_origin,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
