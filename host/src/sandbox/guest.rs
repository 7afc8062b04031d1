//! The host side of the world's imports: what a guest's state, timer,
//! output, log and metric calls do. [`GuestState`] is the data of a
//! guest's wasmtime `Store`.

use std::collections::BTreeSet;

use hashbrown::HashTable;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use weir_wire::{BatchBuilder, BatchReader, SlotValuesBuilder};

use super::bindings::weir::operator::{log, metrics, operator_state, output, state, timers, types};
use crate::keygroup::{key_group, key_group_of_hash, key_hash};
use crate::state::operator_state::{MAX_OPERATOR_STATE_BYTES, OperatorLists};
use crate::state::{KeyedStateBackend, StateId, StateKey, StateKind, key_eq};
use crate::timers::{Domain, TimerEntry, TimerService};
use crate::watermark::NO_WATERMARK;

/// Most output one guest call may produce before it is stopped.
const MAX_OUTPUT_PER_CALL: usize = 256 << 20;
/// Most memories, tables, table elements and core instances one guest
/// component may have (a Rust operator has one memory and a few instances).
const MAX_MEMORIES: usize = 4;
const MAX_TABLES: usize = 16;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
const MAX_INSTANCES: usize = 64;
/// Most timers one subtask may have registered.
const MAX_TIMERS: usize = 10_000_000;
/// Longest log line kept from a guest.
const MAX_LOG_LINE: usize = 4096;

/// Which export the guest is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    Process,
    Timer,
    Close,
}

/// The key that state and timer calls apply to.
#[derive(Debug, Clone)]
enum CurrentKey {
    None,
    /// A slot of the current batch.
    Slot(u32),
    /// The key of a timer that fired.
    Owned {
        key: Vec<u8>,
        key_group: u32,
    },
}

/// Keyed state and the keys of the current batch.
pub(crate) struct KeyedContext {
    pub(crate) backend: Box<dyn KeyedStateBackend>,
    pub(crate) max_parallelism: u32,
    /// The distinct keys of the current batch, one after the other.
    arena: Vec<u8>,
    /// Per slot: (start in `arena`, length, key group).
    slots: Vec<(u32, u32, u32)>,
    /// Per slot: the key's hash.
    slot_hashes: Vec<u64>,
    /// Key hash -> slot, for the current batch.
    index: HashTable<u32>,
    /// Per slot and prefetched state (slot-major): the backend's hint for
    /// writing the value back.
    hints: Vec<Option<usize>>,
    /// The prefetched states of the current batch, in order.
    hint_states: Vec<StateId>,
    /// Buffers of the previous batch, reused for the next.
    spare: (Vec<u32>, Vec<u8>),
    current: CurrentKey,
    /// The states a restored checkpoint holds, and those of them declared
    /// with a time-to-live.
    pub(crate) restored: Option<(BTreeSet<String>, BTreeSet<String>)>,
}

impl KeyedContext {
    /// The context over `backend`, wrapped so that states may be declared
    /// with a time-to-live.
    pub(crate) fn new(backend: Box<dyn KeyedStateBackend>, max_parallelism: u32) -> Self {
        KeyedContext {
            backend: Box::new(crate::state::ttl::TtlBackend::new(backend)),
            max_parallelism,
            arena: Vec::new(),
            slots: Vec::new(),
            slot_hashes: Vec::new(),
            index: HashTable::new(),
            hints: Vec::new(),
            hint_states: Vec::new(),
            spare: (Vec::new(), Vec::new()),
            current: CurrentKey::None,
            restored: None,
        }
    }

    fn slot_key(&self, slot: u32) -> Option<(&[u8], u32)> {
        let &(start, len, kg) = self.slots.get(slot as usize)?;
        Some((&self.arena[start as usize..(start + len) as usize], kg))
    }

    /// The current key and its key group.
    fn current(&self) -> wasmtime::Result<(&[u8], u32)> {
        match &self.current {
            CurrentKey::Slot(s) => self
                .slot_key(*s)
                .ok_or_else(|| wasmtime::format_err!("key slot {s} is not in the current batch")),
            CurrentKey::Owned { key, key_group } => Ok((key, *key_group)),
            CurrentKey::None => Err(wasmtime::format_err!(
                "keyed state or timer used outside a keyed context (call select-key first)"
            )),
        }
    }

    /// Assigns key slots to a batch's elements and gathers the prefetched
    /// values of its distinct keys. Each key is hashed once: the hash gives
    /// both its key group and its slot.
    pub(crate) fn prepare_batch(
        &mut self,
        elements: &[u8],
        prefetched_states: &[StateId],
    ) -> anyhow::Result<(Vec<u32>, Vec<u8>)> {
        self.arena.clear();
        self.slots.clear();
        self.slot_hashes.clear();
        self.index.clear();
        self.current = CurrentKey::None;
        let (mut key_slots, spare_values) = std::mem::take(&mut self.spare);
        key_slots.clear();
        let range = self.backend.key_groups();
        for e in BatchReader::new(elements) {
            let key = e?.key.unwrap_or_default();
            let hash = key_hash(key);
            let (arena, slots) = (&self.arena, &self.slots);
            let found = self.index.find(hash, |&s| {
                let (start, len, _) = slots[s as usize];
                key_eq(&arena[start as usize..(start + len) as usize], key)
            });
            let slot = match found {
                Some(&s) => s,
                None => {
                    let kg = key_group_of_hash(hash, self.max_parallelism);
                    if !range.contains(kg) {
                        anyhow::bail!(
                            "element with key group {kg} reached a subtask that owns {}..={}",
                            range.start,
                            range.end
                        );
                    }
                    let s = self.slots.len() as u32;
                    self.slots
                        .push((self.arena.len() as u32, key.len() as u32, kg));
                    self.slot_hashes.push(hash);
                    self.arena.extend_from_slice(key);
                    let hashes = &self.slot_hashes;
                    self.index.insert_unique(hash, s, |&x| hashes[x as usize]);
                    s
                }
            };
            key_slots.push(slot);
        }
        let mut values = SlotValuesBuilder::with_buffer(spare_values);
        self.hints.clear();
        self.hint_states.clear();
        self.hint_states.extend_from_slice(prefetched_states);
        if let [id] = prefetched_states {
            // The common case, one prefetched state: all keys at once.
            let keys: Vec<(u32, &[u8])> = self
                .slots
                .iter()
                .map(|&(start, len, kg)| (kg, &self.arena[start as usize..(start + len) as usize]))
                .collect();
            let hints = &mut self.hints;
            self.backend
                .value_get_many(*id, &keys, &mut |value, hint| {
                    values.push(value);
                    hints.push(hint);
                })?;
        } else if !prefetched_states.is_empty() {
            for &(start, len, kg) in &self.slots {
                let key = &self.arena[start as usize..(start + len) as usize];
                for &id in prefetched_states {
                    let at = StateKey {
                        key_group: kg,
                        key,
                        namespace: &[],
                    };
                    let (value, hint) = self.backend.value_get_hinted(id, at)?;
                    values.push(value.as_deref());
                    self.hints.push(hint);
                }
            }
        }
        Ok((key_slots, values.into_inner()))
    }

    /// Hands back the buffers of a batch the guest has processed.
    pub(crate) fn recycle(&mut self, key_slots: Vec<u32>, prefetched: Vec<u8>) {
        self.spare = (key_slots, prefetched);
    }

    /// Applies one change the guest made to a prefetched value.
    pub(crate) fn apply_update(
        &mut self,
        slot: u32,
        state: StateId,
        value: Option<&[u8]>,
    ) -> anyhow::Result<()> {
        let (start, len, kg) = *self.slots.get(slot as usize).ok_or_else(|| {
            anyhow::anyhow!("state update names key slot {slot}, which is not in the batch")
        })?;
        let key = &self.arena[start as usize..(start + len) as usize];
        let at = StateKey {
            key_group: kg,
            key,
            namespace: &[],
        };
        match value {
            Some(v) => {
                let hint = self
                    .hint_states
                    .iter()
                    .position(|&s| s == state)
                    .and_then(|i| self.hints.get(slot as usize * self.hint_states.len() + i))
                    .copied()
                    .flatten();
                self.backend.value_put_hinted(state, at, v, hint)?
            }
            None => self.backend.clear(state, at)?,
        }
        Ok(())
    }

    /// Makes a timer's key the current key.
    pub(crate) fn set_timer_key(&mut self, key: &[u8]) {
        let key_group = key_group(key, self.max_parallelism);
        self.current = CurrentKey::Owned {
            key: key.to_vec(),
            key_group,
        };
    }
}

/// The data of one guest instance's store.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    /// `uid[subtask/parallelism]`, for logs.
    pub(crate) label: String,
    pub(crate) phase: Phase,
    pub(crate) keyed: Option<KeyedContext>,
    pub(crate) timers: TimerService,
    pub(crate) watermark: i64,
    /// Output of the current call, in the batch encoding.
    pub(crate) output: Vec<Vec<u8>>,
    output_bytes: usize,
    single: BatchBuilder,
    /// Ids of the states declared with prefetch, ascending.
    pub(crate) prefetched: Vec<StateId>,
    pub(crate) counters: Vec<(String, u64)>,
    pub(crate) gauges: Vec<(String, f64)>,
    /// The last panic message the guest logged, to explain a trap.
    pub(crate) last_panic: Option<String>,
    /// Operator (non-keyed) list state, and its size in bytes.
    pub(crate) operator_state: OperatorLists,
    operator_state_bytes: usize,
}

impl GuestState {
    /// A store's data for a guest with `memory_limit` bytes of memory.
    pub(crate) fn new(label: String, keyed: Option<KeyedContext>, memory_limit: u64) -> Self {
        // No preopens, no environment, no arguments, no stdio, no network.
        let wasi = WasiCtxBuilder::new()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
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
            label,
            phase: Phase::Open,
            keyed,
            timers: TimerService::default(),
            watermark: NO_WATERMARK,
            output: Vec::new(),
            output_bytes: 0,
            single: BatchBuilder::default(),
            prefetched: Vec::new(),
            counters: Vec::new(),
            gauges: Vec::new(),
            last_panic: None,
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

    fn grow_operator_state(&mut self, added: usize, removed: usize) -> wasmtime::Result<()> {
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
            k.current = CurrentKey::None;
        }
    }

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

    /// Declares a keyed state (only in `open`), with a time-to-live if
    /// `ttl_ms` is given.
    fn declare_state(
        &mut self,
        name: String,
        k: state::StateKind,
        prefetch: bool,
        ttl_ms: Option<u64>,
    ) -> wasmtime::Result<u32> {
        if self.phase != Phase::Open {
            return Err(wasmtime::format_err!(
                "state `{name}` declared outside `open`"
            ));
        }
        let keyed = self.keyed(&format!("keyed state `{name}`"))?;
        // Entries of a state with a time-to-live carry expiry stamps: a
        // restore that switched it on or off would misread every entry.
        if let Some((names, ttl)) = &keyed.restored
            && names.contains(&name)
            && ttl.contains(&name) != ttl_ms.is_some()
        {
            let (was, is) = if ttl_ms.is_some() {
                ("without", "with")
            } else {
                ("with", "without")
            };
            return Err(wasmtime::format_err!(
                "state `{name}` was checkpointed {was} a time-to-live and is declared {is} one now; \
                 a restore cannot change that (its entries would be misread)"
            ));
        }
        let id = match ttl_ms {
            Some(ttl) => keyed.backend.register_with_ttl(&name, kind(k), ttl)?,
            None => keyed.backend.register(&name, kind(k))?,
        };
        if prefetch && k == state::StateKind::Value && !self.prefetched.contains(&id) {
            self.prefetched.push(id);
            self.prefetched.sort_unstable();
        }
        Ok(id)
    }

    fn keyed(&mut self, what: &str) -> wasmtime::Result<&mut KeyedContext> {
        self.keyed.as_mut().ok_or_else(|| {
            wasmtime::format_err!(
                "{what} needs a keyed input, but this operator's input is not keyed \
                 (give its input edge `partition: hash`)"
            )
        })
    }

    fn count_output(&mut self, bytes: usize) -> wasmtime::Result<()> {
        self.output_bytes += bytes;
        if self.output_bytes > MAX_OUTPUT_PER_CALL {
            return Err(wasmtime::format_err!(
                "one call emitted more than {} MiB of output",
                MAX_OUTPUT_PER_CALL >> 20
            ));
        }
        Ok(())
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

impl types::Host for GuestState {}

fn kind(k: state::StateKind) -> StateKind {
    match k {
        state::StateKind::Value => StateKind::Value,
        state::StateKind::List => StateKind::List,
        state::StateKind::Map => StateKind::Map,
    }
}

/// Runs `f` with the backend and the current key.
fn with_key<R>(
    s: &mut GuestState,
    namespace: &[u8],
    f: impl FnOnce(&mut dyn KeyedStateBackend, StateKey<'_>) -> Result<R, crate::state::StateError>,
) -> wasmtime::Result<R> {
    let k = s.keyed("keyed state")?;
    let (key, key_group) = match &k.current {
        CurrentKey::Slot(slot) => {
            let &(start, len, kg) = k.slots.get(*slot as usize).ok_or_else(|| {
                wasmtime::format_err!("key slot {slot} is not in the current batch")
            })?;
            (&k.arena[start as usize..(start + len) as usize], kg)
        }
        CurrentKey::Owned { key, key_group } => (key.as_slice(), *key_group),
        CurrentKey::None => {
            return Err(wasmtime::format_err!(
                "keyed state used outside a keyed context (call select-key first)"
            ));
        }
    };
    let at = StateKey {
        key_group,
        key,
        namespace,
    };
    Ok(f(k.backend.as_mut(), at)?)
}

impl state::Host for GuestState {
    fn declare(
        &mut self,
        name: String,
        k: state::StateKind,
        prefetch: bool,
    ) -> wasmtime::Result<u32> {
        self.declare_state(name, k, prefetch, None)
    }

    fn declare_with_ttl(
        &mut self,
        name: String,
        k: state::StateKind,
        prefetch: bool,
        ttl_ms: u64,
    ) -> wasmtime::Result<u32> {
        if ttl_ms == 0 {
            return Err(wasmtime::format_err!(
                "state `{name}`: a time-to-live must be at least 1 ms"
            ));
        }
        self.declare_state(name, k, prefetch, Some(ttl_ms))
    }

    fn select_key(&mut self, slot: u32) -> wasmtime::Result<()> {
        if self.phase != Phase::Process {
            return Err(wasmtime::format_err!(
                "select-key is only allowed in `process`"
            ));
        }
        let k = self.keyed("select-key")?;
        if slot as usize >= k.slots.len() {
            return Err(wasmtime::format_err!(
                "select-key: slot {slot} is not in the batch"
            ));
        }
        k.current = CurrentKey::Slot(slot);
        Ok(())
    }

    fn value_get(&mut self, id: u32, namespace: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        with_key(self, &namespace, |b, at| {
            Ok(b.value_get(id, at)?.map(|v| v.into_owned()))
        })
    }

    fn value_set(&mut self, id: u32, namespace: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        with_key(self, &namespace, |b, at| b.value_put(id, at, &value))
    }

    fn list_get(&mut self, id: u32, namespace: Vec<u8>) -> wasmtime::Result<Vec<Vec<u8>>> {
        with_key(self, &namespace, |b, at| b.list_get(id, at))
    }

    fn list_add(&mut self, id: u32, namespace: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        with_key(self, &namespace, |b, at| b.list_add(id, at, &value))
    }

    fn list_set(
        &mut self,
        id: u32,
        namespace: Vec<u8>,
        values: Vec<Vec<u8>>,
    ) -> wasmtime::Result<()> {
        with_key(self, &namespace, |b, at| b.list_set(id, at, values))
    }

    fn map_get(
        &mut self,
        id: u32,
        namespace: Vec<u8>,
        map_key: Vec<u8>,
    ) -> wasmtime::Result<Option<Vec<u8>>> {
        with_key(self, &namespace, |b, at| {
            Ok(b.map_get(id, at, &map_key)?.map(|v| v.into_owned()))
        })
    }

    fn map_put(
        &mut self,
        id: u32,
        namespace: Vec<u8>,
        map_key: Vec<u8>,
        value: Vec<u8>,
    ) -> wasmtime::Result<()> {
        with_key(self, &namespace, |b, at| {
            b.map_put(id, at, &map_key, &value)
        })
    }

    fn map_remove(
        &mut self,
        id: u32,
        namespace: Vec<u8>,
        map_key: Vec<u8>,
    ) -> wasmtime::Result<()> {
        with_key(self, &namespace, |b, at| b.map_remove(id, at, &map_key))
    }

    fn map_entries(
        &mut self,
        id: u32,
        namespace: Vec<u8>,
    ) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        with_key(self, &namespace, |b, at| b.map_entries(id, at))
    }

    fn clear(&mut self, id: u32, namespace: Vec<u8>) -> wasmtime::Result<()> {
        with_key(self, &namespace, |b, at| b.clear(id, at))
    }
}

fn domain(d: types::TimeDomain) -> Domain {
    match d {
        types::TimeDomain::EventTime => Domain::EventTime,
        types::TimeDomain::ProcessingTime => Domain::ProcessingTime,
    }
}

impl operator_state::Host for GuestState {
    fn get(&mut self, name: String) -> wasmtime::Result<Vec<Vec<u8>>> {
        Ok(self.operator_state.get(&name).cloned().unwrap_or_default())
    }

    fn update(&mut self, name: String, items: Vec<Vec<u8>>) -> wasmtime::Result<()> {
        let added = name.len() + items.iter().map(Vec::len).sum::<usize>();
        let removed = self
            .operator_state
            .get(&name)
            .map_or(0, |v| name.len() + v.iter().map(Vec::len).sum::<usize>());
        self.grow_operator_state(added, removed)?;
        self.operator_state.insert(name, items);
        Ok(())
    }

    fn add(&mut self, name: String, item: Vec<u8>) -> wasmtime::Result<()> {
        let new = !self.operator_state.contains_key(&name);
        self.grow_operator_state(item.len() + if new { name.len() } else { 0 }, 0)?;
        self.operator_state.entry(name).or_default().push(item);
        Ok(())
    }
}

impl timers::Host for GuestState {
    fn current_watermark(&mut self) -> wasmtime::Result<i64> {
        Ok(self.watermark)
    }

    fn current_processing_time(&mut self) -> wasmtime::Result<i64> {
        Ok(crate::clock::epoch_ms())
    }

    fn register(
        &mut self,
        d: types::TimeDomain,
        namespace: Vec<u8>,
        time: i64,
    ) -> wasmtime::Result<()> {
        if self.phase == Phase::Close || self.phase == Phase::Open {
            return Err(wasmtime::format_err!(
                "timers can only be registered in `process` or `on-timer`"
            ));
        }
        let key = self.keyed("a timer")?.current()?.0.to_vec();
        if self.timers.len() >= MAX_TIMERS {
            return Err(wasmtime::format_err!(
                "more than {MAX_TIMERS} timers registered in one subtask"
            ));
        }
        self.timers.register(
            domain(d),
            TimerEntry {
                time,
                key,
                namespace,
            },
        );
        Ok(())
    }

    fn delete(
        &mut self,
        d: types::TimeDomain,
        namespace: Vec<u8>,
        time: i64,
    ) -> wasmtime::Result<()> {
        let key = self.keyed("a timer")?.current()?.0.to_vec();
        self.timers.delete(
            domain(d),
            &TimerEntry {
                time,
                key,
                namespace,
            },
        );
        Ok(())
    }
}

impl output::Host for GuestState {
    fn emit(&mut self, e: types::Element) -> wasmtime::Result<()> {
        self.count_output(e.value.len() + e.key.as_ref().map_or(0, Vec::len) + 17)?;
        self.single.push(e.key.as_deref(), &e.value, e.timestamp);
        Ok(())
    }

    fn emit_batch(&mut self, elements: Vec<u8>) -> wasmtime::Result<()> {
        self.count_output(elements.len())?;
        if !self.single.is_empty() {
            let (buf, _) = self.single.take();
            self.output.push(buf);
        }
        self.output.push(elements);
        Ok(())
    }
}

impl log::Host for GuestState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
        }
        let op = self.label.as_str();
        match level {
            log::Level::Trace => tracing::trace!(operator = op, "{message}"),
            log::Level::Debug => tracing::debug!(operator = op, "{message}"),
            log::Level::Info => tracing::info!(operator = op, "{message}"),
            log::Level::Warn => tracing::warn!(operator = op, "{message}"),
            log::Level::Error => {
                tracing::error!(operator = op, "{message}");
                if let Some(p) = message.strip_prefix("panic: ") {
                    self.last_panic = Some(p.to_owned());
                }
            }
        }
        Ok(())
    }
}

/// The id of metric `name` in `list`, declaring it if new.
fn declare_metric<T: Default>(list: &mut Vec<(String, T)>, name: String) -> u32 {
    if let Some(i) = list.iter().position(|(n, _)| *n == name) {
        return i as u32;
    }
    list.push((name, T::default()));
    (list.len() - 1) as u32
}

/// The value of metric `id` in `list`; a trap if it was never declared.
fn metric<'a, T>(list: &'a mut [(String, T)], id: u32, what: &str) -> wasmtime::Result<&'a mut T> {
    list.get_mut(id as usize)
        .map(|(_, v)| v)
        .ok_or_else(|| wasmtime::format_err!("{what} {id} was never declared"))
}

impl metrics::Host for GuestState {
    fn counter(&mut self, name: String) -> wasmtime::Result<u32> {
        Ok(declare_metric(&mut self.counters, name))
    }

    fn counter_add(&mut self, id: u32, delta: u64) -> wasmtime::Result<()> {
        let c = metric(&mut self.counters, id, "counter")?;
        *c = c.saturating_add(delta);
        Ok(())
    }

    fn gauge(&mut self, name: String) -> wasmtime::Result<u32> {
        Ok(declare_metric(&mut self.gauges, name))
    }

    fn gauge_set(&mut self, id: u32, value: f64) -> wasmtime::Result<()> {
        *metric(&mut self.gauges, id, "gauge")? = value;
        Ok(())
    }
}
