//! The loops a subtask thread runs: a source loop, and an input loop for
//! operators and sinks.

use std::time::{Duration, Instant};

use crossbeam_channel::Select;
use weir_wire::BatchBuilder;

use super::JobControl;
use super::error::TaskFailure;
use super::operator::StreamOperator;
use super::output::Output;
use crate::channel::{Batch, ChannelReceiver, Event};
use crate::metrics::TaskMetrics;
use crate::source::SourceReader;
use crate::watermark::{BoundedOutOfOrderness, NO_WATERMARK, WatermarkTracker};

/// Reads a source until its end (or until the job stops), emitting
/// batches and, with `out_of_orderness_ms`, watermarks.
pub(crate) fn run_source(
    reader: &mut dyn SourceReader,
    out: &mut Output,
    batch_size: usize,
    out_of_orderness_ms: Option<u64>,
    control: &JobControl,
) -> Result<(), TaskFailure> {
    let mut generator = out_of_orderness_ms.map(BoundedOutOfOrderness::new);
    let mut builder = BatchBuilder::with_capacity(batch_size * 32);
    let mut last = NO_WATERMARK;
    loop {
        if control.is_stopping() {
            return Err(TaskFailure::Cancelled);
        }
        let info = reader.next_batch(&mut builder, batch_size)?;
        if !builder.is_empty() {
            let (data, len) = builder.take();
            out.push_batch(Batch { data, len })?;
        }
        if let (Some(g), Some(ts)) = (generator.as_mut(), info.max_timestamp) {
            g.observe(ts);
            let wm = g.current();
            if wm > last {
                last = wm;
                out.broadcast(Event::Watermark(wm))?;
            }
        }
        if !info.more {
            break;
        }
    }
    out.broadcast(Event::EndOfInput)?;
    Ok(())
}

/// Feeds an operator (or sink) from its input channels until every input
/// has ended, then closes it and ends its outputs.
pub(crate) fn run_operator(
    op: &mut dyn StreamOperator,
    inputs: &[ChannelReceiver],
    out: &mut Output,
    metrics: &TaskMetrics,
    is_sink: bool,
) -> Result<(), TaskFailure> {
    op.open()?;
    let mut tracker = WatermarkTracker::new(inputs.len());
    let mut open: Vec<usize> = (0..inputs.len()).collect();
    while !open.is_empty() {
        // Due processing-time timers fire once per turn, before more input
        // is taken: a busy input cannot starve them, and a timer that keeps
        // re-arming itself cannot starve the input.
        if let Some(t) = op.next_processing_timer() {
            let now = crate::sandbox::now_ms();
            if t <= now {
                op.on_processing_time(now, out)?;
                out.flush()?;
            }
        }
        let mut sel = Select::new();
        for &i in &open {
            sel.recv(&inputs[i]);
        }
        let ready = match op.next_processing_timer() {
            Some(t) => {
                let wait = t.saturating_sub(crate::sandbox::now_ms()).max(0) as u64;
                match sel.select_timeout(Duration::from_millis(wait)) {
                    Ok(r) => r,
                    Err(_) => continue,
                }
            }
            None => sel.select(),
        };
        let k = ready.index();
        let i = open[k];
        match ready.recv(&inputs[i]) {
            Ok(Event::Batch(b)) => {
                metrics.add_in(b.len);
                if is_sink && b.len > 0 {
                    metrics.mark_first_record();
                }
                let start = Instant::now();
                op.process(b, out)?;
                out.flush()?;
                metrics.add_busy(start.elapsed());
            }
            Ok(Event::Watermark(w)) => {
                if let Some(wm) = tracker.update(i, w) {
                    advance(op, out, wm)?;
                }
            }
            Ok(Event::Barrier(b)) => {
                return Err(TaskFailure::Internal(format!(
                    "received checkpoint barrier {}, but checkpointing is not enabled in this build",
                    b.id
                )));
            }
            Ok(Event::EndOfInput) => {
                open.remove(k);
                if let Some(wm) = tracker.finish(i) {
                    advance(op, out, wm)?;
                }
            }
            Err(_) => return Err(TaskFailure::UpstreamGone),
        }
    }
    op.close(out)?;
    out.broadcast(Event::EndOfInput)?;
    Ok(())
}

fn advance(
    op: &mut dyn StreamOperator,
    out: &mut Output,
    watermark: i64,
) -> Result<(), TaskFailure> {
    op.on_watermark(watermark, out)?;
    out.broadcast(Event::Watermark(watermark))?;
    Ok(())
}
