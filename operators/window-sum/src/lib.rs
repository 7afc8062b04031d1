//! `window-sum`: keyed tumbling event-time window sums.
//!
//! Input: a keyed stream with event timestamps whose values are integers as
//! decimal text. Config: `size-ms` (window size, required). When the
//! watermark passes a window's end, emits the key with the value
//! `<start>\t<end>\t<sum>` and the timestamp `end - 1`. Elements without a
//! timestamp or with a value that is not an integer are dropped and counted
//! (`dropped-elements`); elements later than the watermark for their window
//! are dropped and counted (`late-elements`).

use weir_sdk::prelude::*;

/// Sums per key and tumbling window.
struct WindowSum {
    windows: WindowedValue<i64, TumblingWindows>,
    dropped: Counter,
    late: Counter,
}

impl Operator for WindowSum {
    fn open(ctx: &mut OpenContext) -> Result<Self, String> {
        let size = ctx
            .parse::<i64>("size-ms")?
            .ok_or("missing config key `size-ms`")?;
        Ok(WindowSum {
            windows: WindowedValue::new(ctx, "sum", TumblingWindows::new(size)?),
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
        let late = self
            .windows
            .add(ctx, ts, |acc| acc.unwrap_or(0).saturating_add(v));
        if late > 0 {
            self.late.add(late as u64);
        }
    }

    fn on_timer(&mut self, timer: Timer<'_>, ctx: &mut Context) {
        if let Some((w, sum)) = self.windows.fire(&timer) {
            let value = format!("{}\t{}\t{sum}", w.start, w.end);
            ctx.emit(timer.key, value.as_bytes(), Some(w.max_timestamp()));
        }
    }
}

export_operator!(WindowSum);
