//! The guest side of the batch protocol: holds the operator instance, the
//! prefetched value state of the current batch, and the output buffer.
//!
//! A component is single-threaded, so this state lives in thread-locals and
//! the typed handles reach it without a context argument. No `RefCell`
//! borrow is held while user code runs.

use std::any::Any;
use std::cell::RefCell;

use weir_wire::{BatchBuilder, BatchReader, SlotValuesReader, UpdatesBuilder};

use crate::__bindings::weir::operator::{log, output, state, types};
use crate::{Context, Element, OpenContext, Operator, TimeDomain, Timer, TwoInputOperator};

/// Output is handed to the host when the buffer grows past this.
const OUTPUT_FLUSH_BYTES: usize = 256 * 1024;

/// Where the operator is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Outside any call.
    Idle,
    /// In `process`, on the element whose key has this slot (none on a
    /// non-keyed input).
    Batch(Option<u32>),
    /// In `on-timer` (the host has set the timer's key as the current key)
    /// or `close` (there is no current key).
    Host,
}

/// Values up to this size are kept inline in a [`Cell`], without allocating.
pub(crate) const INLINE_VALUE: usize = 22;

/// One prefetched value: absent, a range of the prefetched buffer, or a
/// value written during this batch (inline when small).
#[derive(Debug, Clone)]
enum Cell {
    Absent,
    InBuffer { start: usize, len: usize },
    Inline { len: u8, bytes: [u8; INLINE_VALUE] },
    Owned(Vec<u8>),
}

impl Cell {
    fn bytes<'a>(&'a self, buffer: &'a [u8]) -> Option<&'a [u8]> {
        match self {
            Cell::Absent => None,
            Cell::InBuffer { start, len } => Some(&buffer[*start..*start + *len]),
            Cell::Inline { len, bytes } => Some(&bytes[..*len as usize]),
            Cell::Owned(v) => Some(v),
        }
    }
}

/// A value to store in a prefetched cell.
pub(crate) enum NewValue<'a> {
    /// Clear the value.
    Clear,
    /// Encoded bytes that fit inline.
    Small(&'a [u8]),
    /// Encoded bytes that do not.
    Large(Vec<u8>),
}

struct Runtime {
    scope: Scope,
    /// Ids of the prefetched states, in id order (the order of the
    /// prefetched buffer).
    prefetched_ids: Vec<u32>,
    /// The prefetched buffer of the current batch.
    buffer: Vec<u8>,
    /// `slot * prefetched_ids.len() + index` -> value.
    cells: Vec<Cell>,
    dirty: Vec<bool>,
    dirty_list: Vec<u32>,
    /// The slot the host currently treats as the current key.
    host_slot: Option<u32>,
    out: BatchBuilder,
}

thread_local! {
    static RUNTIME: RefCell<Runtime> = RefCell::new(Runtime {
        scope: Scope::Idle,
        prefetched_ids: Vec::new(),
        buffer: Vec::new(),
        cells: Vec::new(),
        dirty: Vec::new(),
        dirty_list: Vec::new(),
        host_slot: None,
        out: BatchBuilder::with_capacity(64 * 1024),
    });
    static INSTANCE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn with<R>(f: impl FnOnce(&mut Runtime) -> R) -> R {
    RUNTIME.with(|rt| f(&mut rt.borrow_mut()))
}

impl Runtime {
    fn cell_index(&self, id: u32) -> Option<usize> {
        let Scope::Batch(Some(slot)) = self.scope else {
            return None;
        };
        let index = self.prefetched_ids.iter().position(|&p| p == id)?;
        let i = slot as usize * self.prefetched_ids.len() + index;
        (i < self.cells.len()).then_some(i)
    }

    fn flush_output(&mut self) {
        if !self.out.is_empty() {
            output::emit_batch(self.out.as_bytes());
            self.out.clear();
        }
    }
}

/// Registers a prefetched state id (called from `OpenContext`).
pub(crate) fn note_prefetched(id: u32) {
    with(|rt| {
        if !rt.prefetched_ids.contains(&id) {
            rt.prefetched_ids.push(id);
            rt.prefetched_ids.sort_unstable();
        }
    });
}

/// Reads a prefetched value of the current key: `None` when the value is
/// not prefetched here (outside `process`, or on a non-keyed input).
pub(crate) fn cached_value<T>(id: u32, decode: impl FnOnce(&[u8]) -> T) -> Option<Option<T>> {
    with(|rt| {
        let i = rt.cell_index(id)?;
        Some(rt.cells[i].bytes(&rt.buffer).map(decode))
    })
}

/// Writes a prefetched value of the current key; returns false when it is
/// not prefetched here (outside `process`, or on a non-keyed input).
pub(crate) fn cache_value(id: u32, value: NewValue<'_>) -> bool {
    with(|rt| {
        let Some(i) = rt.cell_index(id) else {
            return false;
        };
        rt.cells[i] = match value {
            NewValue::Clear => Cell::Absent,
            NewValue::Small(b) => {
                let mut bytes = [0u8; INLINE_VALUE];
                bytes[..b.len()].copy_from_slice(b);
                Cell::Inline {
                    len: b.len() as u8,
                    bytes,
                }
            }
            NewValue::Large(v) => Cell::Owned(v),
        };
        if !rt.dirty[i] {
            rt.dirty[i] = true;
            rt.dirty_list.push(i as u32);
        }
        true
    })
}

/// Tells the host which key the next state or timer call is for.
pub(crate) fn select_current_key() {
    with(|rt| {
        if let Scope::Batch(Some(slot)) = rt.scope
            && rt.host_slot != Some(slot)
        {
            state::select_key(slot);
            rt.host_slot = Some(slot);
        }
    });
}

/// Buffers one output element.
pub(crate) fn emit(key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
    with(|rt| {
        rt.out.push(key, value, timestamp);
        if rt.out.byte_len() >= OUTPUT_FLUSH_BYTES {
            rt.flush_output();
        }
    });
}

/// Sends one element to side output `tag` at once (main output buffered
/// so far goes first, so that a downstream sees the same order whichever
/// edges it reads).
pub(crate) fn emit_side(tag: &str, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
    with(|rt| rt.flush_output());
    let mut one = BatchBuilder::with_capacity(value.len() + key.map_or(0, <[u8]>::len) + 17);
    one.push(key, value, timestamp);
    output::emit_side(tag, one.as_bytes());
}

fn take_instance<T: 'static>() -> Box<T> {
    let any = INSTANCE.with(|i| i.borrow_mut().take());
    match any.map(|a| a.downcast::<T>()) {
        Some(Ok(op)) => op,
        _ => panic!("weir-sdk: operator called before a successful open"),
    }
}

fn put_instance<T: 'static>(op: Box<T>) {
    INSTANCE.with(|i| *i.borrow_mut() = Some(op));
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::log(log::Level::Error, &format!("panic: {info}"));
    }));
}

/// The world's exports, called by the code `export_operator!` generates.
pub mod exports {
    use super::*;

    /// `open`: builds the operator.
    pub fn open<T: Operator>(config: Vec<(String, String)>) -> Result<(), String> {
        install_panic_hook();
        let mut ctx = OpenContext::new(config);
        let op = T::open(&mut ctx)?;
        put_instance(Box::new(op));
        Ok(())
    }

    /// `process`: runs the operator over one batch, returns the changed
    /// prefetched values.
    pub fn process<T: Operator>(batch: types::Batch) -> Vec<u8> {
        run_batch::<T>(batch, T::process)
    }

    /// `process-second` of a one-input operator: the host never calls it.
    pub fn process_second_unsupported<T: Operator>(_batch: types::Batch) -> Vec<u8> {
        panic!("weir-sdk: this operator has one input; an edge names `input: 2`")
    }

    /// `open` of a two-input operator.
    pub fn open_two<T: TwoInputOperator>(config: Vec<(String, String)>) -> Result<(), String> {
        install_panic_hook();
        put_instance(Box::new(T::open(&mut OpenContext::new(config))?));
        Ok(())
    }

    /// `process` of a two-input operator: its first input.
    pub fn process_first<T: TwoInputOperator>(batch: types::Batch) -> Vec<u8> {
        run_batch::<T>(batch, T::process_first)
    }

    /// `process-second` of a two-input operator: its second input.
    pub fn process_second<T: TwoInputOperator>(batch: types::Batch) -> Vec<u8> {
        run_batch::<T>(batch, T::process_second)
    }

    /// Runs `f` on each element of a batch with the right current key.
    fn run_batch<T: 'static>(
        batch: types::Batch,
        mut f: impl FnMut(&mut T, Element<'_>, &mut Context),
    ) -> Vec<u8> {
        let types::Batch {
            elements,
            key_slots,
            prefetched,
        } = batch;
        let mut op = take_instance::<T>();
        with(|rt| begin_batch(rt, prefetched));
        let mut ctx = Context::new();
        let mut reader = BatchReader::new(&elements);
        let mut i = 0usize;
        loop {
            let e = match reader.next_element() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(err) => panic!("weir-sdk: the host sent a malformed batch: {err}"),
            };
            let slot = key_slots.get(i).copied();
            with(|rt| rt.scope = Scope::Batch(slot));
            f(
                &mut op,
                Element {
                    key: e.key,
                    value: e.value,
                    timestamp: e.timestamp,
                },
                &mut ctx,
            );
            i += 1;
        }
        put_instance(op);
        with(end_batch)
    }

    /// `on-timer`: hands one fired timer to the operator.
    pub fn on_timer<T: Operator>(timer: types::Timer) {
        fire::<T>(timer, T::on_timer)
    }

    /// `on-timer` of a two-input operator.
    pub fn on_timer_two<T: TwoInputOperator>(timer: types::Timer) {
        fire::<T>(timer, T::on_timer)
    }

    fn fire<T: 'static>(timer: types::Timer, f: impl FnOnce(&mut T, Timer<'_>, &mut Context)) {
        let mut op = take_instance::<T>();
        with(|rt| rt.scope = Scope::Host);
        let t = Timer {
            key: timer.key.as_deref(),
            namespace: &timer.namespace,
            time: timer.time,
            domain: match timer.domain {
                types::TimeDomain::EventTime => TimeDomain::EventTime,
                types::TimeDomain::ProcessingTime => TimeDomain::ProcessingTime,
            },
        };
        f(&mut op, t, &mut Context::new());
        put_instance(op);
        with(|rt| {
            rt.flush_output();
            rt.scope = Scope::Idle;
        });
    }

    /// `close`: the end of input.
    pub fn close<T: Operator>() {
        finish::<T>(T::close)
    }

    /// `close` of a two-input operator.
    pub fn close_two<T: TwoInputOperator>() {
        finish::<T>(T::close)
    }

    fn finish<T: 'static>(f: impl FnOnce(&mut T, &mut Context)) {
        let mut op = take_instance::<T>();
        with(|rt| rt.scope = Scope::Host);
        f(&mut op, &mut Context::new());
        put_instance(op);
        with(|rt| {
            rt.flush_output();
            rt.scope = Scope::Idle;
        });
    }

    fn begin_batch(rt: &mut Runtime, prefetched: Vec<u8>) {
        rt.cells.clear();
        rt.host_slot = None;
        if !rt.prefetched_ids.is_empty() {
            let mut reader = SlotValuesReader::new(&prefetched);
            while !reader.at_end() {
                let start = reader.position();
                let cell = match reader.next_value() {
                    Ok(None) => Cell::Absent,
                    Ok(Some(v)) => Cell::InBuffer {
                        start: reader.position() - v.len(),
                        len: v.len(),
                    },
                    Err(err) => panic!(
                        "weir-sdk: the host sent malformed prefetched state at {start}: {err}"
                    ),
                };
                rt.cells.push(cell);
            }
        }
        rt.buffer = prefetched;
        rt.dirty.clear();
        rt.dirty.resize(rt.cells.len(), false);
        rt.dirty_list.clear();
    }

    fn end_batch(rt: &mut Runtime) -> Vec<u8> {
        rt.flush_output();
        rt.scope = Scope::Idle;
        let per_slot = rt.prefetched_ids.len().max(1);
        let mut updates = UpdatesBuilder::default();
        for &i in &rt.dirty_list {
            let i = i as usize;
            let slot = (i / per_slot) as u32;
            let id = rt.prefetched_ids[i % per_slot];
            updates.push(slot, id, rt.cells[i].bytes(&rt.buffer));
        }
        updates.take()
    }
}
