//! Event-time windows, built from keyed value state in a namespace per
//! window and an event-time timer at each window's end.
//!
//! A window is `[start, end)` in event-time milliseconds. An element with
//! timestamp `t` belongs to the windows an assigner gives for `t`. The
//! window's accumulator lives in a value state whose namespace is the
//! window (16 bytes: start and end as little-endian `i64`), and a timer at
//! `end - 1` (the window's max timestamp) fires once the watermark reaches
//! it, as in Flink. An element that arrives after the watermark passed a
//! window's max timestamp is late for that window and is dropped from it.
//!
//! ```no_run
//! use weir_sdk::prelude::*;
//!
//! struct Sum { windows: WindowedValue<i64, TumblingWindows> }
//!
//! impl Operator for Sum {
//!     fn open(ctx: &mut OpenContext) -> Result<Self, String> {
//!         let size = ctx.parse::<i64>("size-ms")?.unwrap_or(1000);
//!         Ok(Sum { windows: WindowedValue::new(ctx, "sum", TumblingWindows::new(size)?) })
//!     }
//!     fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
//!         let v: i64 = e.value_str().and_then(|s| s.parse().ok()).unwrap_or(0);
//!         if let Some(ts) = e.timestamp {
//!             self.windows.add(ctx, ts, |acc| acc.unwrap_or(0) + v);
//!         }
//!     }
//!     fn on_timer(&mut self, t: Timer<'_>, ctx: &mut Context) {
//!         if let Some((w, sum)) = self.windows.fire(&t) {
//!             ctx.emit(t.key, format!("{} {} {sum}", w.start, w.end).as_bytes(), Some(w.max_timestamp()));
//!         }
//!     }
//! }
//! export_operator!(Sum);
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, OpenContext, TimeDomain, Timer, ValueState};

/// An event-time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First millisecond in the window.
    pub start: i64,
    /// First millisecond after the window.
    pub end: i64,
}

impl Window {
    /// The last timestamp in the window, when its timer fires.
    pub fn max_timestamp(&self) -> i64 {
        self.end - 1
    }

    /// The state namespace of this window.
    pub fn namespace(&self) -> [u8; 16] {
        let mut ns = [0u8; 16];
        ns[..8].copy_from_slice(&self.start.to_le_bytes());
        ns[8..].copy_from_slice(&self.end.to_le_bytes());
        ns
    }

    /// The window a namespace names, `None` if it is not a window's.
    pub fn from_namespace(ns: &[u8]) -> Option<Window> {
        let start = i64::from_le_bytes(ns.get(..8)?.try_into().ok()?);
        let end = i64::from_le_bytes(ns.get(8..16)?.try_into().ok()?);
        (ns.len() == 16 && start < end).then_some(Window { start, end })
    }
}

/// Assigns a timestamp to the windows it belongs to.
pub trait WindowAssigner {
    /// Appends the windows of `timestamp` to `out`.
    fn assign(&self, timestamp: i64, out: &mut Vec<Window>);
}

/// The start of the window of `size` (shifted by `offset`) that holds
/// `timestamp`, as Flink's `TimeWindow.getWindowStartWithOffset`.
fn window_start(timestamp: i64, offset: i64, size: i64) -> i64 {
    timestamp - (timestamp - offset).rem_euclid(size)
}

/// Fixed-size, non-overlapping windows.
#[derive(Debug, Clone, Copy)]
pub struct TumblingWindows {
    size: i64,
    offset: i64,
}

impl TumblingWindows {
    /// Windows of `size_ms` milliseconds aligned to the epoch.
    pub fn new(size_ms: i64) -> Result<Self, String> {
        Self::with_offset(size_ms, 0)
    }

    /// Windows of `size_ms` shifted by `offset_ms` (for time zones).
    pub fn with_offset(size_ms: i64, offset_ms: i64) -> Result<Self, String> {
        if size_ms <= 0 {
            return Err(format!("window size must be positive, got {size_ms}"));
        }
        Ok(TumblingWindows {
            size: size_ms,
            offset: offset_ms.rem_euclid(size_ms),
        })
    }
}

impl WindowAssigner for TumblingWindows {
    fn assign(&self, timestamp: i64, out: &mut Vec<Window>) {
        let start = window_start(timestamp, self.offset, self.size);
        out.push(Window {
            start,
            end: start.saturating_add(self.size),
        });
    }
}

/// Fixed-size windows that start every `slide` and may overlap.
#[derive(Debug, Clone, Copy)]
pub struct SlidingWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingWindows {
    /// Windows of `size_ms` starting every `slide_ms`.
    pub fn new(size_ms: i64, slide_ms: i64) -> Result<Self, String> {
        if size_ms <= 0 || slide_ms <= 0 {
            return Err(format!(
                "window size and slide must be positive, got {size_ms} and {slide_ms}"
            ));
        }
        Ok(SlidingWindows {
            size: size_ms,
            slide: slide_ms,
            offset: 0,
        })
    }
}

impl WindowAssigner for SlidingWindows {
    fn assign(&self, timestamp: i64, out: &mut Vec<Window>) {
        let last_start = window_start(timestamp, self.offset, self.slide);
        let mut start = last_start;
        while start > timestamp - self.size {
            out.push(Window {
                start,
                end: start.saturating_add(self.size),
            });
            start -= self.slide;
        }
    }
}

/// A keyed, windowed accumulator: one value of `T` per key and window.
#[derive(Debug)]
pub struct WindowedValue<T, A> {
    state: ValueState<T>,
    assigner: A,
}

impl<T, A> WindowedValue<T, A>
where
    T: Serialize + DeserializeOwned,
    A: WindowAssigner,
{
    /// Declares the window state `name` in `open`.
    pub fn new(ctx: &mut OpenContext, name: &str, assigner: A) -> Self {
        WindowedValue {
            state: ctx.value_state_unprefetched(name),
            assigner,
        }
    }

    /// Folds an element with `timestamp` into each of its windows for the
    /// current key: `fold` gets the window's accumulator (`None` for a new
    /// window) and returns the new one. Returns how many windows the element
    /// was late for and so dropped from.
    pub fn add(
        &self,
        ctx: &mut Context,
        timestamp: i64,
        mut fold: impl FnMut(Option<T>) -> T,
    ) -> usize {
        let mut windows = Vec::new();
        self.assigner.assign(timestamp, &mut windows);
        let watermark = ctx.watermark();
        let mut late = 0;
        for w in windows {
            if w.max_timestamp() <= watermark {
                late += 1;
                continue;
            }
            let ns = w.namespace();
            let acc = fold(self.state.get_in(&ns));
            self.state.set_in(&ns, &acc);
            ctx.register_timer_in(TimeDomain::EventTime, &ns, w.max_timestamp());
        }
        late
    }

    /// If `timer` is the end of one of this state's windows, takes that
    /// window's accumulator (clearing it) and returns it with the window.
    pub fn fire(&self, timer: &Timer<'_>) -> Option<(Window, T)> {
        if timer.domain != TimeDomain::EventTime {
            return None;
        }
        let w = Window::from_namespace(timer.namespace)?;
        if w.max_timestamp() != timer.time {
            return None;
        }
        let value = self.state.get_in(timer.namespace)?;
        self.state.clear_in(timer.namespace);
        Some((w, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assign(a: &impl WindowAssigner, ts: i64) -> Vec<Window> {
        let mut v = Vec::new();
        a.assign(ts, &mut v);
        v
    }

    #[test]
    fn tumbling_windows_cover_negative_and_positive_time() {
        let t = TumblingWindows::new(1000).expect("valid");
        assert_eq!(
            assign(&t, 0),
            vec![Window {
                start: 0,
                end: 1000
            }]
        );
        assert_eq!(
            assign(&t, 999),
            vec![Window {
                start: 0,
                end: 1000
            }]
        );
        assert_eq!(
            assign(&t, 1000),
            vec![Window {
                start: 1000,
                end: 2000
            }]
        );
        assert_eq!(
            assign(&t, -1),
            vec![Window {
                start: -1000,
                end: 0
            }]
        );
        assert!(TumblingWindows::new(0).is_err());
    }

    #[test]
    fn sliding_windows_hold_each_timestamp_size_over_slide_times() {
        let s = SlidingWindows::new(1000, 500).expect("valid");
        assert_eq!(
            assign(&s, 700),
            vec![
                Window {
                    start: 500,
                    end: 1500
                },
                Window {
                    start: 0,
                    end: 1000
                }
            ]
        );
    }

    #[test]
    fn namespace_round_trips() {
        let w = Window { start: -5, end: 10 };
        assert_eq!(Window::from_namespace(&w.namespace()), Some(w));
        assert_eq!(Window::from_namespace(b"short"), None);
    }
}
