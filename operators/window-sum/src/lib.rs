//! `window-sum`: keyed event-time window sums, tumbling or session.
//!
//! Input: a keyed stream with event timestamps whose values are integers as
//! decimal text. Config:
//! - `window`: `tumbling` (the default) or `session`;
//! - `size-ms`: the tumbling window size (required for tumbling);
//! - `gap-ms`: the session gap (required for session): a key's session
//!   ends after this long without elements, and sessions that touch merge;
//! - `allowed-lateness-ms` (default 0): how long past its end a window
//!   keeps its state; an element that arrives after the window fired but
//!   within this time updates it, and the window is emitted again at once;
//! - `late-output` (optional): a side output tag; elements later than the
//!   allowed lateness are emitted there as they came (key, value,
//!   timestamp), besides being counted.
//!
//! When the watermark passes a window's end, emits the key with the value
//! `<start>\t<end>\t<sum>` and the timestamp `end - 1`; a late update emits
//! the same shape with the new sum. Elements without a timestamp or with a
//! value that is not an integer are dropped and counted
//! (`dropped-elements`); elements later than the allowed lateness are
//! dropped and counted (`late-elements`).

use weir_sdk::prelude::*;

/// The windows of one kind.
enum Windows {
    Tumbling(WindowedValue<i64, TumblingWindows>),
    Session(SessionWindowedValue<i64>),
}

/// Sums per key and window.
struct WindowSum {
    windows: Windows,
    late_output: Option<String>,
    dropped: Counter,
    late: Counter,
}

impl Operator for WindowSum {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let lateness = ctx.parse::<i64>("allowed-lateness-ms")?.unwrap_or(0);
        let kind = ctx.get("window").unwrap_or("tumbling").to_owned();
        let windows = match kind.as_str() {
            "tumbling" => {
                let size = ctx
                    .parse::<i64>("size-ms")?
                    .ok_or("missing config key `size-ms`")?;
                let assigner = TumblingWindows::new(size)?;
                Windows::Tumbling(
                    WindowedValue::new(ctx, "sum", assigner).allowed_lateness(lateness),
                )
            }
            "session" => {
                let gap = ctx
                    .parse::<i64>("gap-ms")?
                    .ok_or("missing config key `gap-ms`")?;
                Windows::Session(
                    SessionWindowedValue::new(ctx, "sum", gap)?.allowed_lateness(lateness),
                )
            }
            other => return Err(format!("window: {other:?} is not tumbling or session")),
        };
        Ok(WindowSum {
            windows,
            late_output: ctx.get("late-output").map(str::to_owned),
            dropped: ctx.counter("dropped-elements"),
            late: ctx.counter("late-elements"),
        })
    }

    fn process(&mut self, e: Element<'_>, ctx: &mut Context) {
        let value = e.value_str().and_then(|s| s.trim().parse::<i64>().ok());
        let (Some(ts), Some(v)) = (e.timestamp, value) else {
            self.dropped.add(1);
            return;
        };
        let fold = |acc: Option<i64>| acc.unwrap_or(0).saturating_add(v);
        let added = match &self.windows {
            Windows::Tumbling(w) => w.add(ctx, ts, fold),
            Windows::Session(w) => w.add(ctx, ts, fold, i64::saturating_add),
        };
        if added.late > 0 {
            self.late.add(added.late as u64);
            if let Some(tag) = &self.late_output {
                ctx.emit_side(tag, e.key, e.value, e.timestamp);
            }
        }
        for (w, sum) in added.updated {
            emit(ctx, e.key, w, sum);
        }
    }

    fn on_timer(&mut self, timer: Timer<'_>, ctx: &mut Context) {
        let fired = match &self.windows {
            Windows::Tumbling(w) => w.fire(&timer),
            Windows::Session(w) => w.fire(&timer),
        };
        if let Some((w, sum)) = fired {
            emit(ctx, timer.key, w, sum);
        }
    }
}

/// Emits window `w`'s sum for `key`.
fn emit(ctx: &mut Context, key: Option<&[u8]>, w: Window, sum: i64) {
    let value = format!("{}\t{}\t{sum}", w.start, w.end);
    ctx.emit(key, value.as_bytes(), Some(w.max_timestamp()));
}

export_operator!(WindowSum);
