//! The host functions of the world's imports: what a guest's state, timer,
//! output, operator-state, log, metric and batch-layout calls do. Each is a `Host` trait
//! of the generated bindings, implemented on [`GuestState`].

use super::bindings::weir::operator::{
    batch_layout, log, metrics, operator_state, output, state, timers, types,
};
use super::guest::{GuestState, Phase};
use super::guest_log::{Level, MAX_LOG_LINE, cut};
use crate::state::{KeyedStateBackend, StateError, StateKey, StateKind};
use crate::timers::{Domain, TimerEntry};

/// Most timers one subtask may have registered.
const MAX_TIMERS: usize = 10_000_000;
/// Longest timer namespace, in bytes.
const MAX_TIMER_NAMESPACE: usize = 4096;
/// Most bytes the timers of one subtask may hold (keys and namespaces).
const MAX_TIMER_BYTES: usize = 256 << 20;
/// Longest metric name, in bytes.
const MAX_METRIC_NAME: usize = 256;
/// Most metrics (counters and gauges) one instance may declare.
const MAX_METRICS: usize = 1024;

impl types::Host for GuestState {}

impl batch_layout::Host for GuestState {
    fn use_columns(&mut self) -> wasmtime::Result<()> {
        if self.phase != Phase::Open {
            return Err(wasmtime::format_err!(
                "batch-layout.use-columns is only allowed in `open`"
            ));
        }
        self.columns = true;
        Ok(())
    }
}

/// The backend's state kind for the world's.
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
    f: impl FnOnce(&mut dyn KeyedStateBackend, StateKey<'_>) -> Result<R, StateError>,
) -> wasmtime::Result<R> {
    s.keyed("keyed state")?.with_current_key(namespace, f)
}

/// Declares a keyed state (only in `open`), with a time-to-live if
/// `ttl_ms` is given.
fn declare_state(
    s: &mut GuestState,
    name: String,
    k: state::StateKind,
    prefetch: bool,
    ttl_ms: Option<u64>,
) -> wasmtime::Result<u32> {
    if s.phase != Phase::Open {
        return Err(wasmtime::format_err!(
            "state `{name}` declared outside `open`"
        ));
    }
    let id = s
        .keyed(&format!("keyed state `{name}`"))?
        .register(&name, kind(k), ttl_ms)?;
    if prefetch && k == state::StateKind::Value && !s.prefetched.contains(&id) {
        s.prefetched.push(id);
        s.prefetched.sort_unstable();
    }
    Ok(id)
}

impl state::Host for GuestState {
    fn declare(
        &mut self,
        name: String,
        k: state::StateKind,
        prefetch: bool,
    ) -> wasmtime::Result<u32> {
        declare_state(self, name, k, prefetch, None)
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
        declare_state(self, name, k, prefetch, Some(ttl_ms))
    }

    fn select_key(&mut self, slot: u32) -> wasmtime::Result<()> {
        if self.phase != Phase::Process {
            return Err(wasmtime::format_err!(
                "select-key is only allowed in `process`"
            ));
        }
        if !self.keyed("select-key")?.select_slot(slot) {
            return Err(wasmtime::format_err!(
                "select-key: slot {slot} is not in the batch"
            ));
        }
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

/// The timer service's time domain for the world's.
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
        if namespace.len() > MAX_TIMER_NAMESPACE {
            return Err(wasmtime::format_err!(
                "a timer namespace of {} bytes (at most {MAX_TIMER_NAMESPACE})",
                namespace.len()
            ));
        }
        let key = self.keyed("a timer")?.current()?.0.to_vec();
        if self.timers.len() >= MAX_TIMERS {
            return Err(wasmtime::format_err!(
                "more than {MAX_TIMERS} timers registered in one subtask"
            ));
        }
        if self.timers.bytes() + key.len() + namespace.len() > MAX_TIMER_BYTES {
            return Err(wasmtime::format_err!(
                "the timers of one subtask would hold more than {} MiB of keys and namespaces",
                MAX_TIMER_BYTES >> 20
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
        self.emit_element(e.key.as_deref(), &e.value, e.timestamp)
    }

    fn emit_batch(&mut self, elements: Vec<u8>) -> wasmtime::Result<()> {
        GuestState::emit_batch(self, elements)
    }

    fn emit_side(&mut self, tag: String, elements: Vec<u8>) -> wasmtime::Result<()> {
        GuestState::emit_side(self, tag, elements)
    }
}

impl log::Host for GuestState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        // A panic's message explains the trap that follows: always kept.
        if let Some(p) = message.strip_prefix("panic: ") {
            self.last_panic = Some(cut(p, MAX_LOG_LINE).to_owned());
        }
        let level = match level {
            log::Level::Trace => Level::Trace,
            log::Level::Debug => Level::Debug,
            log::Level::Info => Level::Info,
            log::Level::Warn => Level::Warn,
            log::Level::Error => Level::Error,
        };
        self.log.line(level, &message);
        Ok(())
    }
}

/// The id of metric `name` in `list`, declaring it if new (`others`
/// metrics of the other kind are declared too); a trap past the bounds.
fn declare_metric<T: Default>(
    list: &mut Vec<(String, T)>,
    others: usize,
    name: String,
) -> wasmtime::Result<u32> {
    if let Some(i) = list.iter().position(|(n, _)| *n == name) {
        return Ok(i as u32);
    }
    if name.len() > MAX_METRIC_NAME {
        return Err(wasmtime::format_err!(
            "a metric name of {} bytes (at most {MAX_METRIC_NAME})",
            name.len()
        ));
    }
    if list.len() + others >= MAX_METRICS {
        return Err(wasmtime::format_err!(
            "more than {MAX_METRICS} metrics declared by one instance"
        ));
    }
    list.push((name, T::default()));
    Ok((list.len() - 1) as u32)
}

/// The value of metric `id` in `list`; a trap if it was never declared.
fn metric<'a, T>(list: &'a mut [(String, T)], id: u32, what: &str) -> wasmtime::Result<&'a mut T> {
    list.get_mut(id as usize)
        .map(|(_, v)| v)
        .ok_or_else(|| wasmtime::format_err!("{what} {id} was never declared"))
}

impl metrics::Host for GuestState {
    fn counter(&mut self, name: String) -> wasmtime::Result<u32> {
        declare_metric(&mut self.counters, self.gauges.len(), name)
    }

    fn counter_add(&mut self, id: u32, delta: u64) -> wasmtime::Result<()> {
        let c = metric(&mut self.counters, id, "counter")?;
        *c = c.saturating_add(delta);
        Ok(())
    }

    fn gauge(&mut self, name: String) -> wasmtime::Result<u32> {
        declare_metric(&mut self.gauges, self.counters.len(), name)
    }

    fn gauge_set(&mut self, id: u32, value: f64) -> wasmtime::Result<()> {
        *metric(&mut self.gauges, id, "gauge")? = value;
        Ok(())
    }
}
