//! What an operator sees of the host: elements, timers, config, emit.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__bindings::weir::operator::{log, metrics, state, timers, types};
use crate::runtime;
use crate::state::{ListState, MapState, OperatorListState, ValueState};

/// One input element, borrowed from the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Element<'a> {
    /// The key, if the element has one (always, on a keyed input).
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub value: &'a [u8],
    /// Event time in milliseconds, if the element has one.
    pub timestamp: Option<i64>,
}

impl<'a> Element<'a> {
    /// The value as UTF-8 text, `None` if it is not valid UTF-8.
    pub fn value_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }

    /// The key as UTF-8 text, `None` if absent or not valid UTF-8.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key.and_then(|k| std::str::from_utf8(k).ok())
    }
}

/// The clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeDomain {
    /// Fires when the watermark passes the timer's time.
    EventTime,
    /// Fires when the wall clock passes the timer's time.
    ProcessingTime,
}

impl From<TimeDomain> for types::TimeDomain {
    fn from(d: TimeDomain) -> Self {
        match d {
            TimeDomain::EventTime => types::TimeDomain::EventTime,
            TimeDomain::ProcessingTime => types::TimeDomain::ProcessingTime,
        }
    }
}

/// A timer that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer<'a> {
    /// The key it was registered for.
    pub key: Option<&'a [u8]>,
    /// The namespace it was registered in (empty by default; a window's
    /// encoding for window timers).
    pub namespace: &'a [u8],
    /// The time it was registered for.
    pub time: i64,
    /// Its clock.
    pub domain: TimeDomain,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the operator handled.
    Warn,
    /// Something failed.
    Error,
}

impl From<Level> for log::Level {
    fn from(l: Level) -> Self {
        match l {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        }
    }
}

/// Writes a line to the host's log, tagged with the operator and subtask.
pub fn log_line(level: Level, message: &str) {
    log::log(level.into(), message);
}

/// Handed to [`crate::Operator::open`]: the operator's config and the place
/// to declare state and metrics.
#[derive(Debug)]
pub struct OpenContext {
    config: Vec<(String, String)>,
}

impl OpenContext {
    pub(crate) fn new(config: Vec<(String, String)>) -> Self {
        OpenContext { config }
    }

    /// A config value by name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.config
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A config value that must be present.
    pub fn require(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("missing config key `{name}`"))
    }

    /// A config value parsed with `FromStr`, `Ok(None)` if absent.
    pub fn parse<T>(&self, name: &str) -> Result<Option<T>, String>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|e| format!("config key `{name}`: cannot parse {raw:?}: {e}")),
        }
    }

    /// Every config entry, in the order of the job spec.
    pub fn entries(&self) -> &[(String, String)] {
        &self.config
    }

    /// Declares a keyed value state. The host hands the values of a batch's
    /// keys to the guest with the batch, so reading and writing it costs no
    /// host call per element.
    pub fn value_state<T: Serialize + DeserializeOwned>(&mut self, name: &str) -> ValueState<T> {
        let id = state::declare(name, state::StateKind::Value, true);
        runtime::note_prefetched(id);
        ValueState::new(id, true)
    }

    /// Declares a keyed value state that is read through the host on each
    /// access: for state used mostly in namespaces (windows), where
    /// prefetching the default namespace would be wasted work.
    pub fn value_state_unprefetched<T: Serialize + DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> ValueState<T> {
        ValueState::new(state::declare(name, state::StateKind::Value, false), false)
    }

    /// Declares a keyed list state.
    pub fn list_state<T: Serialize + DeserializeOwned>(&mut self, name: &str) -> ListState<T> {
        ListState::new(state::declare(name, state::StateKind::List, false))
    }

    /// Declares a keyed map state.
    pub fn map_state<K, V>(&mut self, name: &str) -> MapState<K, V>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        MapState::new(state::declare(name, state::StateKind::Map, false))
    }

    /// Declarations of keyed states whose entries expire `ttl` (processing
    /// time, at least 1 ms) after they were created or last written, as
    /// Flink's `StateTtlConfig`: an expired entry reads as absent and the
    /// host removes it in its own time.
    ///
    /// ```ignore
    /// let seen: ValueState<u64> = ctx.with_ttl(Duration::from_secs(3600)).value_state("seen");
    /// ```
    pub fn with_ttl(&mut self, ttl: core::time::Duration) -> TtlStates<'_> {
        TtlStates {
            _ctx: self,
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1),
        }
    }

    /// The operator (non-keyed) list state `name` of this subtask.
    pub fn operator_list_state<T: Serialize + DeserializeOwned>(
        &mut self,
        name: &str,
    ) -> OperatorListState<T> {
        OperatorListState::new(name)
    }

    /// Declares a counter metric.
    pub fn counter(&mut self, name: &str) -> Counter {
        Counter {
            id: metrics::counter(name),
        }
    }

    /// Declares a gauge metric.
    pub fn gauge(&mut self, name: &str) -> Gauge {
        Gauge {
            id: metrics::gauge(name),
        }
    }
}

/// Declares keyed states with a time-to-live; from
/// [`OpenContext::with_ttl`].
#[derive(Debug)]
pub struct TtlStates<'a> {
    _ctx: &'a mut OpenContext,
    ttl_ms: u64,
}

impl TtlStates<'_> {
    /// A keyed value state (prefetched, like [`OpenContext::value_state`]).
    pub fn value_state<T: Serialize + DeserializeOwned>(&mut self, name: &str) -> ValueState<T> {
        let id = state::declare_with_ttl(name, state::StateKind::Value, true, self.ttl_ms);
        runtime::note_prefetched(id);
        ValueState::new(id, true)
    }

    /// A keyed list state; each element expires on its own.
    pub fn list_state<T: Serialize + DeserializeOwned>(&mut self, name: &str) -> ListState<T> {
        ListState::new(state::declare_with_ttl(
            name,
            state::StateKind::List,
            false,
            self.ttl_ms,
        ))
    }

    /// A keyed map state; each entry expires on its own.
    pub fn map_state<K, V>(&mut self, name: &str) -> MapState<K, V>
    where
        K: Serialize + DeserializeOwned,
        V: Serialize + DeserializeOwned,
    {
        MapState::new(state::declare_with_ttl(
            name,
            state::StateKind::Map,
            false,
            self.ttl_ms,
        ))
    }
}

/// A counter metric declared in `open`.
#[derive(Debug, Clone, Copy)]
pub struct Counter {
    id: u32,
}

impl Counter {
    /// Adds `delta`.
    pub fn add(&self, delta: u64) {
        metrics::counter_add(self.id, delta);
    }
}

/// A gauge metric declared in `open`.
#[derive(Debug, Clone, Copy)]
pub struct Gauge {
    id: u32,
}

impl Gauge {
    /// Sets the current value.
    pub fn set(&self, value: f64) {
        metrics::gauge_set(self.id, value);
    }
}

/// Handed to `process`, `on_timer` and `close`: emit elements, read time,
/// register timers for the current key.
#[derive(Debug)]
pub struct Context {
    _private: (),
}

impl Context {
    pub(crate) fn new() -> Self {
        Context { _private: () }
    }

    /// Emits an element downstream. Output is buffered in the guest and
    /// handed to the host in bulk.
    pub fn emit(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
        runtime::emit(key, value, timestamp);
    }

    /// Emits an element to side output `tag` (Flink's `OutputTag`, at most
    /// 128 bytes): only the edges the job spec marks with
    /// `side-output: <tag>` receive it; with none, it is dropped. Meant for
    /// the exceptional (late records, rejects): each call crosses to the
    /// host.
    pub fn emit_side(
        &mut self,
        tag: &str,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: Option<i64>,
    ) {
        runtime::emit_side(tag, key, value, timestamp);
    }

    /// The current event-time watermark (`i64::MIN` before the first).
    pub fn watermark(&self) -> i64 {
        timers::current_watermark()
    }

    /// The wall clock in milliseconds since the Unix epoch.
    pub fn processing_time(&self) -> i64 {
        timers::current_processing_time()
    }

    /// Registers an event-time timer for the current key.
    pub fn register_event_timer(&mut self, time: i64) {
        self.register_timer_in(TimeDomain::EventTime, &[], time);
    }

    /// Registers a processing-time timer for the current key.
    pub fn register_processing_timer(&mut self, time: i64) {
        self.register_timer_in(TimeDomain::ProcessingTime, &[], time);
    }

    /// Registers a timer for the current key in a namespace.
    pub fn register_timer_in(&mut self, domain: TimeDomain, namespace: &[u8], time: i64) {
        runtime::select_current_key();
        timers::register(domain.into(), namespace, time);
    }

    /// Deletes a timer of the current key in a namespace.
    pub fn delete_timer_in(&mut self, domain: TimeDomain, namespace: &[u8], time: i64) {
        runtime::select_current_key();
        timers::delete(domain.into(), namespace, time);
    }

    /// Writes a line to the host's log.
    pub fn log(&self, level: Level, message: &str) {
        log_line(level, message);
    }
}
