//! A task's event-time watermark over its inputs, and its idleness as its
//! downstream sees it (Flink's `StatusWatermarkValve`).

use super::checkpointing::TaskCheckpointing;
use super::error::TaskFailure;
use super::operator::StreamOperator;
use super::output::Output;
use crate::channel::Event;
use crate::watermark::{NO_WATERMARK, WatermarkTracker};

/// A task's watermark over its inputs (see [`WatermarkTracker`]), and
/// whether it told its downstream it is idle (all its open inputs are).
pub(super) struct Valve {
    pub(super) tracker: WatermarkTracker,
    sent_idle: bool,
}

impl Valve {
    /// The valve of a task with `inputs` inputs: at the watermark of the
    /// checkpoint restored from, if it recorded one (so that a restored
    /// element is late or not as it was before), which the operator and
    /// the downstream learn at once.
    pub(super) fn start(
        inputs: usize,
        checkpointing: Option<&TaskCheckpointing>,
        op: &mut dyn StreamOperator,
        out: &mut Output,
    ) -> Result<Self, TaskFailure> {
        let restored = checkpointing.and_then(|c| c.restored_watermark);
        if let Some(w) = restored {
            advance(op, out, w)?;
        }
        Ok(Valve {
            tracker: WatermarkTracker::starting_at(inputs, restored.unwrap_or(NO_WATERMARK)),
            sent_idle: false,
        })
    }

    /// The task emitted on its own (processing-time timers): downstream now
    /// takes it for active, so if all its inputs are still idle it says
    /// so again.
    pub(super) fn after_own_output(&mut self, out: &mut Output) -> Result<(), TaskFailure> {
        if self.sent_idle && self.tracker.all_idle() {
            out.broadcast(Event::Idle)?;
        }
        Ok(())
    }

    /// Input `i` sent elements: it is active.
    pub(super) fn activate(&mut self, i: usize) {
        self.tracker.activate(i);
        self.sent_idle = false;
    }

    /// Input `i`'s watermark `w`: advances the operator and the downstream if the task's advanced.
    pub(super) fn watermark(
        &mut self,
        i: usize,
        w: i64,
        op: &mut dyn StreamOperator,
        out: &mut Output,
    ) -> Result<(), TaskFailure> {
        if let Some(wm) = self.tracker.update(i, w) {
            advance(op, out, wm)?;
            self.sent_idle = false;
        }
        Ok(())
    }

    /// Input `i` ended: it no longer holds the watermark back.
    pub(super) fn end(
        &mut self,
        i: usize,
        op: &mut dyn StreamOperator,
        out: &mut Output,
    ) -> Result<(), TaskFailure> {
        if let Some(wm) = self.tracker.finish(i) {
            advance(op, out, wm)?;
            self.sent_idle = false;
        }
        Ok(())
    }

    /// Input `i` is idle: the watermark may advance without it, and with
    /// every open input idle the task tells its downstream it is idle.
    pub(super) fn idle(
        &mut self,
        i: usize,
        op: &mut dyn StreamOperator,
        out: &mut Output,
    ) -> Result<(), TaskFailure> {
        if let Some(wm) = self.tracker.set_idle(i) {
            advance(op, out, wm)?;
        }
        if self.tracker.all_idle() && !self.sent_idle {
            out.broadcast(Event::Idle)?;
            self.sent_idle = true;
        }
        Ok(())
    }
}

/// Advances the operator and the downstream to `watermark`.
fn advance(
    op: &mut dyn StreamOperator,
    out: &mut Output,
    watermark: i64,
) -> Result<(), TaskFailure> {
    op.on_watermark(watermark, out)?;
    out.broadcast(Event::Watermark(watermark))?;
    Ok(())
}
