//! The loops a subtask thread runs: a source loop, and an input loop for
//! operators and sinks.

use std::time::{Duration, Instant};

use crossbeam_channel::Select;
use weir_wire::BatchBuilder;

use super::checkpointing::{FINAL_SNAPSHOT, TaskCheckpointing};
use super::control::JobControl;
use super::error::TaskFailure;
use super::operator::StreamOperator;
use super::output::Output;
use crate::channel::{Barrier, Batch, ChannelReceiver, Event};
use crate::checkpoint::alignment::{AlignAction, Alignment};
use crate::checkpoint::hub::{StateSnapshot, StopOutcome, TaskMessage};

use crate::metrics::TaskMetrics;
use crate::source::SourceReader;
use crate::watermark::{BoundedOutOfOrderness, NO_WATERMARK, WatermarkTracker};

/// Reads a source until its end (or until the job stops), emitting
/// batches and, with `out_of_orderness_ms`, watermarks, and marking itself
/// idle after `idle_timeout` without elements; with checkpoints, it
/// records its position and emits a barrier whenever the coordinator
/// triggers one.
pub(crate) fn run_source(
    reader: &mut dyn SourceReader,
    out: &mut Output,
    batch_size: usize,
    out_of_orderness_ms: Option<u64>,
    idle_timeout: Option<Duration>,
    control: &JobControl,
    checkpointing: Option<&TaskCheckpointing>,
) -> Result<(), TaskFailure> {
    let mut generator = out_of_orderness_ms.map(BoundedOutOfOrderness::new);
    let mut idleness = idle_timeout.map(Idleness::new);
    let mut builder = BatchBuilder::with_capacity(batch_size * 32);
    let mut last = NO_WATERMARK;
    let mut last_barrier = checkpointing.map_or(0, |c| c.restored_id);
    loop {
        if control.is_stopping() {
            return Err(TaskFailure::Cancelled);
        }
        if let Some(ck) = checkpointing
            && let Some(barrier) = ck.hub.poll_trigger(last_barrier)
        {
            let t = Instant::now();
            let state = StateSnapshot {
                operator_state: reader.snapshot_position(),
                ..StateSnapshot::default()
            };
            ck.ack(&barrier, state, t.elapsed(), Duration::ZERO);
            out.broadcast(Event::Barrier(barrier))?;
            last_barrier = barrier.id;
            if ck.hub.is_stop(barrier.id) {
                wait_for_stop(ck, control, barrier.id, out)?;
            }
        }
        if checkpointing.is_some_and(|ck| ck.hub.drain_requested()) {
            // Stop with drain: the input ends here, as if the source had
            // reached its end.
            break;
        }
        let info = reader.next_batch(&mut builder, batch_size)?;
        let emitted = !builder.is_empty();
        if emitted {
            let (data, len) = builder.take();
            out.push_batch(Batch { data, len })?;
        }
        if let Some(idle) = idleness.as_mut()
            && idle.turned_idle(emitted)
        {
            out.broadcast(Event::Idle)?;
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
    if let Some(ck) = checkpointing {
        ck.hub.source_finished();
        let t = Instant::now();
        let state = StateSnapshot {
            operator_state: reader.snapshot_position(),
            ..StateSnapshot::default()
        };
        ck.finish(state, t.elapsed(), last_barrier);
    }
    out.broadcast(Event::EndOfInput)?;
    Ok(())
}

/// Whether a source subtask is idle: no element for a timeout.
struct Idleness {
    timeout: Duration,
    last_element: Instant,
    idle: bool,
}

impl Idleness {
    fn new(timeout: Duration) -> Self {
        Idleness {
            timeout,
            last_element: Instant::now(),
            idle: false,
        }
    }

    /// After one read (`emitted`: it gave elements): whether the source
    /// has just become idle.
    fn turned_idle(&mut self, emitted: bool) -> bool {
        if emitted {
            self.last_element = Instant::now();
            self.idle = false;
            return false;
        }
        if !self.idle && self.last_element.elapsed() >= self.timeout {
            self.idle = true;
            return true;
        }
        false
    }
}

/// After the barrier of a stop with savepoint, reads nothing until the
/// savepoint is over: the job then stops (this task ends as cancelled), or,
/// if the savepoint failed, the source reads on.
fn wait_for_stop(
    ck: &TaskCheckpointing,
    control: &JobControl,
    id: u64,
    out: &mut Output,
) -> Result<(), TaskFailure> {
    out.flush()?;
    loop {
        if control.is_stopping() {
            return Err(TaskFailure::Cancelled);
        }
        match ck.hub.stop_outcome(id) {
            StopOutcome::Pending | StopOutcome::Stopped => {
                std::thread::sleep(Duration::from_millis(2));
            }
            StopOutcome::Resumed => return Ok(()),
        }
    }
}

/// Snapshots the task (at `watermark`) for `barrier` and forwards the
/// barrier.
fn snapshot_and_forward(
    op: &mut dyn StreamOperator,
    out: &mut Output,
    ck: &TaskCheckpointing,
    barrier: Barrier,
    (alignment, watermark): (Duration, i64),
) -> Result<(), TaskFailure> {
    // Output made before the barrier goes out before it.
    out.flush()?;
    op.notify_checkpoint_complete(ck.hub.last_completed());
    let t = Instant::now();
    let mut state = op.snapshot(barrier.id, barrier.kind)?;
    state.watermark = (watermark != NO_WATERMARK).then_some(watermark);
    ck.ack(&barrier, state, t.elapsed(), alignment);
    out.broadcast(Event::Barrier(barrier))?;
    Ok(())
}

/// Feeds an operator (or sink) from its input channels until every input
/// has ended, then closes it and ends its outputs. With checkpoints it
/// aligns barriers over its inputs (see [`Alignment`]), snapshots and
/// forwards them, and sends a final snapshot after closing.
pub(crate) fn run_operator(
    op: &mut dyn StreamOperator,
    inputs: &[ChannelReceiver],
    input_sides: &[u8],
    out: &mut Output,
    metrics: &TaskMetrics,
    is_sink: bool,
    checkpointing: Option<&TaskCheckpointing>,
) -> Result<(), TaskFailure> {
    op.open()?;
    let mut valve = Valve::start(inputs.len(), checkpointing, op, out)?;
    let mut open: Vec<usize> = (0..inputs.len()).collect();
    let mode = checkpointing.map_or(crate::config::CheckpointingMode::AtLeastOnce, |c| {
        c.hub.mode
    });
    let mut alignment = Alignment::new(inputs.len(), mode);
    alignment.resume_after(checkpointing.map_or(0, |c| c.restored_id));
    let mut last_barrier = checkpointing.map_or(0, |c| c.restored_id);
    let mut readable: Vec<usize> = Vec::with_capacity(inputs.len());
    while !open.is_empty() {
        if fire_due_timers(op, out)? {
            valve.after_own_output(out)?;
        }
        readable.clear();
        readable.extend(open.iter().copied().filter(|&i| !alignment.is_held(i)));
        let Some((i, event)) = next_event(op, inputs, &readable) else {
            continue;
        };
        let snapshot = match event {
            Ok(Event::Batch(b)) => {
                valve.activate(i);
                let second = input_sides.get(i) == Some(&1);
                process_batch(op, out, metrics, is_sink, second, b)?;
                None
            }
            Ok(Event::Watermark(w)) => valve.watermark(i, w, op, out).map(|()| None)?,
            Ok(Event::Idle) => valve.idle(i, op, out).map(|()| None)?,
            Ok(Event::Barrier(b)) => {
                let Some(ck) = checkpointing else {
                    return Err(TaskFailure::Internal(format!(
                        "received checkpoint barrier {} with checkpointing off",
                        b.id
                    )));
                };
                let action = alignment.on_barrier(i, b, Instant::now());
                for id in alignment.take_abandoned() {
                    ck.hub.send(TaskMessage::Decline {
                        id,
                        reason: "overtaken by a newer checkpoint during alignment".into(),
                    });
                }
                Some((ck, action))
            }
            Ok(Event::EndOfInput) => {
                open.retain(|&x| x != i);
                valve.end(i, op, out)?;
                checkpointing.map(|ck| (ck, alignment.on_end_of_input(i, Instant::now())))
            }
            Err(_) => return Err(TaskFailure::UpstreamGone),
        };
        if let Some((ck, AlignAction::Snapshot { barrier, alignment })) = snapshot {
            let watermark = valve.tracker.current();
            snapshot_and_forward(op, out, ck, barrier, (alignment, watermark))?;
            last_barrier = barrier.id;
        }
    }
    op.close(out)?;
    if let Some(ck) = checkpointing {
        out.flush()?;
        op.notify_checkpoint_complete(ck.hub.last_completed());
        let t = Instant::now();
        let state = op.snapshot(FINAL_SNAPSHOT, ck.hub.final_kind())?;
        ck.finish(state, t.elapsed(), last_barrier);
    }
    out.broadcast(Event::EndOfInput)?;
    Ok(())
}

/// A task's watermark over its inputs (see [`WatermarkTracker`]), and
/// whether it told its downstream it is idle (all its open inputs are).
struct Valve {
    tracker: WatermarkTracker,
    sent_idle: bool,
}

impl Valve {
    /// The valve of a task with `inputs` inputs: at the watermark of the
    /// checkpoint restored from, if it recorded one (so that a restored
    /// element is late or not as it was before), which the operator and
    /// the downstream learn at once.
    fn start(
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
    fn after_own_output(&mut self, out: &mut Output) -> Result<(), TaskFailure> {
        if self.sent_idle && self.tracker.all_idle() {
            out.broadcast(Event::Idle)?;
        }
        Ok(())
    }

    /// Input `i` sent elements: it is active.
    fn activate(&mut self, i: usize) {
        self.tracker.activate(i);
        self.sent_idle = false;
    }

    /// Input `i`'s watermark `w`: advances the operator and the downstream if the task's advanced.
    fn watermark(
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
    fn end(
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
    fn idle(
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

/// Fires the due processing-time timers, once per turn, before more input
/// is taken: a busy input cannot starve them, and a timer that keeps
/// re-arming itself cannot starve the input. Returns whether any fired.
fn fire_due_timers(op: &mut dyn StreamOperator, out: &mut Output) -> Result<bool, TaskFailure> {
    if let Some(t) = op.next_processing_timer() {
        let now = crate::clock::epoch_ms();
        if t <= now {
            op.on_processing_time(now, out)?;
            out.flush()?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits for the next event on one of the `readable` inputs, or until the
/// next processing-time timer is due (`None`).
fn next_event(
    op: &dyn StreamOperator,
    inputs: &[ChannelReceiver],
    readable: &[usize],
) -> Option<(usize, Result<Event, crossbeam_channel::RecvError>)> {
    let mut sel = Select::new();
    for &i in readable {
        sel.recv(&inputs[i]);
    }
    let ready = match op.next_processing_timer() {
        Some(t) => {
            let wait = t.saturating_sub(crate::clock::epoch_ms()).max(0) as u64;
            sel.select_timeout(Duration::from_millis(wait)).ok()?
        }
        None => sel.select(),
    };
    let i = readable[ready.index()];
    Some((i, ready.recv(&inputs[i])))
}

/// Hands a batch to the operator (its second input if `second`).
fn process_batch(
    op: &mut dyn StreamOperator,
    out: &mut Output,
    metrics: &TaskMetrics,
    is_sink: bool,
    second: bool,
    b: Batch,
) -> Result<(), TaskFailure> {
    metrics.add_in(b.len);
    if is_sink && b.len > 0 {
        metrics.mark_first_record();
    }
    let start = Instant::now();
    if second {
        op.process_second(b, out)?;
    } else {
        op.process(b, out)?;
    }
    out.flush()?;
    metrics.add_busy(start.elapsed());
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
