//! [`WindowedValue`]: one accumulator per key and window of an assigner
//! (tumbling, sliding), with Flink's allowed lateness.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Window, WindowAssigner};
use crate::{Context, OpenContext, TimeDomain, Timer, ValueState};

/// What became of an element folded into its windows.
#[derive(Debug, Clone, PartialEq)]
pub struct Added<T> {
    /// Windows the element was too late for (past the allowed lateness):
    /// it was dropped from them.
    pub late: usize,
    /// Windows that had fired already and took the element within the
    /// allowed lateness, with their new accumulators: emit each again.
    pub updated: Vec<(Window, T)>,
}

impl<T> Default for Added<T> {
    fn default() -> Self {
        Added {
            late: 0,
            updated: Vec::new(),
        }
    }
}

/// A keyed, windowed accumulator: one value of `T` per key and window.
#[derive(Debug)]
pub struct WindowedValue<T, A> {
    state: ValueState<T>,
    assigner: A,
    lateness: i64,
}

impl<T, A> WindowedValue<T, A>
where
    T: Serialize + DeserializeOwned + Clone,
    A: WindowAssigner,
{
    /// Declares the window state `name` in `open`.
    pub fn new(ctx: &mut OpenContext, name: &str, assigner: A) -> Self {
        WindowedValue {
            state: ctx.value_state_unprefetched(name),
            assigner,
            lateness: 0,
        }
    }

    /// Keeps each window's state `ms` past its end (Flink's
    /// `allowedLateness`); 0, the default, drops it when it fires.
    pub fn allowed_lateness(mut self, ms: i64) -> Self {
        self.lateness = ms.max(0);
        self
    }

    /// Folds an element with `timestamp` into each of its windows for the
    /// current key: `fold` gets the window's accumulator (`None` for a new
    /// window) and returns the new one.
    pub fn add(
        &self,
        ctx: &mut Context,
        timestamp: i64,
        mut fold: impl FnMut(Option<T>) -> T,
    ) -> Added<T> {
        let mut windows = Vec::new();
        self.assigner.assign(timestamp, &mut windows);
        let watermark = ctx.watermark();
        let mut added = Added::default();
        for w in windows {
            if cleanup_time(&w, self.lateness) <= watermark {
                added.late += 1;
                continue;
            }
            let ns = w.namespace();
            let acc = fold(self.state.get_in(&ns));
            self.state.set_in(&ns, &acc);
            schedule(ctx, &w, self.lateness, watermark, acc, &mut added);
        }
        added
    }

    /// Handles one of this state's timers: at a window's end, returns the
    /// window with its accumulator (cleared unless lateness keeps it); at
    /// its cleanup time, clears it.
    pub fn fire(&self, timer: &Timer<'_>) -> Option<(Window, T)> {
        fire(&self.state, self.lateness, timer).map(|(w, v, _)| (w, v))
    }
}

/// When a window's state goes: its max timestamp plus the lateness.
pub(super) fn cleanup_time(w: &Window, lateness: i64) -> i64 {
    w.max_timestamp().saturating_add(lateness)
}

/// Registers window `w`'s timers (its end, unless the watermark passed it
/// already: then it is updated at once; and its cleanup time).
pub(super) fn schedule<T>(
    ctx: &mut Context,
    w: &Window,
    lateness: i64,
    watermark: i64,
    acc: T,
    added: &mut Added<T>,
) {
    let ns = w.namespace();
    if w.max_timestamp() <= watermark {
        added.updated.push((*w, acc));
    } else {
        ctx.register_timer_in(TimeDomain::EventTime, &ns, w.max_timestamp());
    }
    if lateness > 0 {
        ctx.register_timer_in(TimeDomain::EventTime, &ns, cleanup_time(w, lateness));
    }
}

/// The timer logic both window kinds share: the window, its value, and
/// whether its state was cleared.
pub(super) fn fire<T: Serialize + DeserializeOwned>(
    state: &ValueState<T>,
    lateness: i64,
    timer: &Timer<'_>,
) -> Option<(Window, T, bool)> {
    if timer.domain != TimeDomain::EventTime {
        return None;
    }
    let w = Window::from_namespace(timer.namespace)?;
    if timer.time == w.max_timestamp() {
        let value = state.get_in(timer.namespace)?;
        if lateness == 0 {
            state.clear_in(timer.namespace);
        }
        return Some((w, value, lateness == 0));
    }
    if timer.time == cleanup_time(&w, lateness) {
        state.clear_in(timer.namespace);
    }
    None
}
