//! Event-time windows, built from keyed value state in a namespace per
//! window and event-time timers.
//!
//! A window is `[start, end)` in event-time milliseconds. An element with
//! timestamp `t` belongs to the windows an assigner gives for `t`
//! (tumbling, sliding), or to a session that grows and merges as elements
//! arrive ([`SessionWindowedValue`]). The window's accumulator lives in a
//! value state whose namespace is the window (16 bytes: start and end as
//! little-endian `i64`), and a timer at `end - 1` (the window's max
//! timestamp) fires once the watermark reaches it, as in Flink.
//!
//! Lateness is Flink's: with an allowed lateness `l`, a window's state is
//! kept until the watermark passes `max timestamp + l`. An element that
//! arrives after the window fired but within that time updates it and
//! fires it again at once (the result is accumulated, not a delta); one
//! that arrives later is late: it is dropped from that window, and the
//! operator may send it to a side output ([`crate::Context::emit_side`]).
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

mod session;
mod value;

pub use session::SessionWindowedValue;
pub use value::{Added, WindowedValue};

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
