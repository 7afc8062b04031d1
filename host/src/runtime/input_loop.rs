//! The loop an operator or sink subtask runs: it takes events from its
//! inputs ([`InputGate`]), hands batches to the operator, advances its
//! watermark ([`Valve`]) and, with checkpoints, aligns barriers or takes
//! unaligned snapshots ([`Alignment`]) and acknowledges them.

use std::time::{Duration, Instant};

use super::checkpointing::{FINAL_SNAPSHOT, TaskCheckpointing};
use super::error::TaskFailure;
use super::inputs::{Arrival, InputChannel, InputGate};
use super::operator::StreamOperator;
use super::output::Output;
use super::valve::Valve;
use crate::channel::{Barrier, BarrierKind, Batch, Event};
use crate::checkpoint::alignment::{AlignAction, Alignment};
use crate::checkpoint::channel_state::ChannelState;
use crate::checkpoint::hub::{StateSnapshot, TaskMessage};
use crate::config::CheckpointingMode;
use crate::metrics::TaskMetrics;
use crate::spec::Partitioning;
use crate::watermark::NO_WATERMARK;

/// Feeds an operator (or sink) from its input channels `inputs` until every input
/// has ended, then closes it and ends its outputs. It first replays
/// `replay`, the in-flight records of the unaligned checkpoint it was
/// restored from (with the operator input each goes to). With checkpoints
/// it aligns barriers over its inputs (see [`Alignment`]), snapshots and
/// forwards them, and sends a final snapshot after closing.
pub(crate) fn run_operator(
    op: &mut dyn StreamOperator,
    inputs: Vec<InputChannel>,
    replay: Vec<(u8, Batch)>,
    out: &mut Output,
    metrics: &TaskMetrics,
    is_sink: bool,
    ck: Option<&TaskCheckpointing>,
) -> Result<(), TaskFailure> {
    op.open()?;
    let overtaking = ck.is_some_and(|c| c.hub.may_overtake(BarrierKind::Checkpoint));
    let gate = InputGate::new(inputs, overtaking);
    let valve = Valve::start(gate.len(), ck, op, out)?;
    let mut run = InputLoop {
        deferred: None,
        alignment: alignment_for(&gate, ck),
        open: (0..gate.len()).collect(),
        last_barrier: ck.map_or(0, |c| c.restored_id),
        overtaking,
        gate,
        valve,
        unaligned: None,
        op,
        out,
        metrics,
        is_sink,
        ck,
    };
    for (side, batch) in replay {
        run.process(side == 1, batch)?;
    }
    run.run()?;
    let InputLoop {
        op,
        out,
        last_barrier,
        ..
    } = run;
    op.close(out)?;
    if let Some(ck) = ck {
        out.flush()?;
        op.notify_checkpoint_complete(ck.hub.last_completed());
        let t = Instant::now();
        let state = op.snapshot(FINAL_SNAPSHOT, ck.hub.final_kind())?;
        ck.finish(state, t.elapsed(), last_barrier);
    }
    out.broadcast(Event::EndOfInput)?;
    Ok(())
}

/// The barrier handling of a task over these inputs: checkpoints may go
/// unaligned here if they are on, and every input comes over a hash or
/// rebalance edge (or `unaligned.forced` lets forward edges go too).
fn alignment_for(gate: &InputGate, ck: Option<&TaskCheckpointing>) -> Alignment {
    let mode = ck.map_or(CheckpointingMode::AtLeastOnce, |c| c.hub.mode);
    let mut alignment = Alignment::new(gate.len(), mode);
    alignment.resume_after(ck.map_or(0, |c| c.restored_id));
    let Some(ck) = ck else { return alignment };
    let u = ck.hub.unaligned;
    let capable = gate
        .channels()
        .iter()
        .all(|c| u.forced || c.partition != Partitioning::Forward);
    if u.active() && capable {
        alignment = alignment.with_unaligned(u.aligned_timeout);
    }
    alignment
}

/// An unaligned checkpoint taken here whose channel state is still being
/// recorded.
struct Unaligned {
    barrier: Barrier,
    state: StateSnapshot,
    sync: Duration,
    alignment: Duration,
    channel: ChannelState,
    /// When the snapshot was taken.
    at: Instant,
}

/// How long a turn of the input loop writes a copy-on-write snapshot
/// before it takes input again: a turn may last as long as a send waits
/// on a backpressured channel, so a key group per turn could stretch a
/// small snapshot over seconds.
const SNAPSHOT_STEP: Duration = Duration::from_millis(1);

/// The longest a copy-on-write snapshot being written waits for its next
/// step while input keeps arriving. The loop writes it when no input is
/// ready, so under load records do not queue behind it; this bound (with
/// [`SNAPSHOT_WAIT_PER_STEP`]) gives a saturated task's snapshot a step
/// (about [`SNAPSHOT_STEP`]) once 3 ms have passed since the last, so it
/// still finishes.
const SNAPSHOT_MAX_WAIT: Duration = Duration::from_millis(3);

/// While input keeps arriving, a snapshot's next step also waits this many
/// times as long as its last step took: a step is at least one key group,
/// several milliseconds with millions of keys, and steps every 3 ms would
/// then take most of a busy task's time, so that input queued up for as
/// long as the snapshot lasted. So a snapshot takes at most a quarter of
/// a task's time while input is waiting, and what the task has spare.
const SNAPSHOT_WAIT_PER_STEP: u32 = 3;

/// A checkpoint taken copy-on-write, acknowledged once its keyed part is
/// written: in steps between batches, when no input is ready or when
/// [`Deferred::step_due`].
struct Deferred {
    barrier: Barrier,
    state: StateSnapshot,
    sync: Duration,
    alignment: Duration,
    /// When the snapshot was taken.
    at: Instant,
    /// When the last step of writing it ended.
    last_step: Instant,
    /// How long that step took.
    step_took: Duration,
}

impl Deferred {
    /// Whether the next step is due even though input is waiting.
    fn step_due(&self) -> bool {
        step_due(self.last_step.elapsed(), self.step_took)
    }
}

/// Whether a snapshot's next step is due while input is waiting, `since`
/// its last step, which took `took`.
fn step_due(since: Duration, took: Duration) -> bool {
    since >= SNAPSHOT_MAX_WAIT.max(took * SNAPSHOT_WAIT_PER_STEP)
}

/// One operator subtask's input loop.
struct InputLoop<'a> {
    /// The checkpoint whose keyed part is being written.
    deferred: Option<Deferred>,
    op: &'a mut dyn StreamOperator,
    out: &'a mut Output,
    metrics: &'a TaskMetrics,
    is_sink: bool,
    ck: Option<&'a TaskCheckpointing>,
    gate: InputGate,
    alignment: Alignment,
    valve: Valve,
    /// The inputs that have not ended.
    open: Vec<usize>,
    /// The last checkpoint this task took part in.
    last_barrier: u64,
    unaligned: Option<Unaligned>,
    /// Checkpoint barriers may overtake data: the task takes no input
    /// while its output has no room, so it never waits in a send and sees
    /// announcements at once (Flink's output availability).
    overtaking: bool,
}

impl InputLoop<'_> {
    fn run(&mut self) -> Result<(), TaskFailure> {
        let mut readable: Vec<usize> = Vec::with_capacity(self.open.len());
        while !self.open.is_empty() {
            if self.deferred.as_ref().is_some_and(Deferred::step_due) {
                self.step_deferred()?;
            }
            if fire_due_timers(self.op, self.out)? {
                self.valve.after_own_output(self.out)?;
            }
            // A busy task may never meet its deadline in a wait.
            if self
                .alignment
                .deadline()
                .is_some_and(|d| d <= Instant::now())
            {
                let action = self.alignment.poll(Instant::now());
                self.act(action)?;
            }
            readable.clear();
            let alignment = &self.alignment;
            let backpressured = self.overtaking && !self.out.has_room();
            if !backpressured {
                readable.extend(self.open.iter().copied().filter(|&i| !alignment.is_held(i)));
            }
            let next_timer = [
                self.op.next_processing_timer(),
                self.out.next_chained_timer(),
            ];
            let timer = next_timer.into_iter().flatten().min().map(|t| {
                let wait = t.saturating_sub(crate::clock::epoch_ms()).max(0) as u64;
                Instant::now() + Duration::from_millis(wait)
            });
            // Backpressured: look at the priority lanes and pull what is
            // being drained without waiting, then wait for output room.
            // A snapshot being written takes no wait either: it is
            // written when no input is ready.
            let now = (backpressured || self.deferred.is_some()).then(Instant::now);
            let deadline = [timer, alignment.deadline(), now]
                .into_iter()
                .flatten()
                .min();
            let draining = |i: usize| alignment.is_draining(i);
            let action = match self.gate.next(&readable, &draining, deadline) {
                Arrival::Timeout if backpressured && self.deferred.is_none() => {
                    self.out.wait_for_room(Duration::from_millis(1));
                    continue;
                }
                Arrival::Timeout => {
                    self.step_deferred()?;
                    self.alignment.poll(Instant::now())
                }
                Arrival::Gone => return Err(TaskFailure::UpstreamGone),
                Arrival::Announcement(i, a) => self.alignment.on_announce(i, a, Instant::now()),
                Arrival::Event(i, e) => self.on_event(i, e)?,
            };
            self.decline_abandoned();
            self.act(action)?;
        }
        self.finish_deferred()
    }

    /// Writes key groups of a checkpoint taken copy-on-write for about
    /// [`SNAPSHOT_STEP`] (at least one), and acknowledges it once it is
    /// whole.
    fn step_deferred(&mut self) -> Result<(), TaskFailure> {
        let (Some(ck), Some(_)) = (self.ck, self.deferred.as_ref()) else {
            return Ok(());
        };
        let start = Instant::now();
        let keyed = loop {
            if let Some(keyed) = self.op.continue_snapshot() {
                break keyed;
            }
            if !self.op.snapshot_pending() {
                return Err(TaskFailure::Internal(
                    "a copy-on-write snapshot ended without its keyed state".into(),
                ));
            }
            if start.elapsed() >= SNAPSHOT_STEP {
                if let Some(d) = self.deferred.as_mut() {
                    d.last_step = Instant::now();
                    d.step_took = start.elapsed();
                }
                return Ok(());
            }
        };
        if let Some(mut d) = self.deferred.take() {
            d.state.keyed = Some(keyed);
            ck.ack_after(&d.barrier, d.state, (d.sync, d.alignment), d.at.elapsed());
        }
        Ok(())
    }

    /// Writes and acknowledges a checkpoint taken copy-on-write to its
    /// end: before another snapshot, and at the end of input.
    fn finish_deferred(&mut self) -> Result<(), TaskFailure> {
        while self.deferred.is_some() {
            self.step_deferred()?;
        }
        Ok(())
    }

    /// Handles one event of input `i`.
    fn on_event(&mut self, i: usize, event: Event) -> Result<AlignAction, TaskFailure> {
        match event {
            Event::Batch(b) => {
                self.valve.activate(i);
                if self.alignment.is_recording(i)
                    && let Some(u) = self.unaligned.as_mut()
                {
                    u.channel.record(i, &b);
                }
                self.alignment.note_processed(b.data.len() as u64);
                let second = self.gate.channels().get(i).is_some_and(|c| c.side == 1);
                self.process(second, b)?;
            }
            Event::Watermark(w) => self.valve.watermark(i, w, self.op, self.out)?,
            Event::Idle => self.valve.idle(i, self.op, self.out)?,
            Event::Barrier(b) => {
                if self.ck.is_none() {
                    return Err(TaskFailure::Internal(format!(
                        "received checkpoint barrier {} with checkpointing off",
                        b.id
                    )));
                }
                if self.alignment.is_recording(i)
                    && let Some(u) = self.unaligned.as_mut().filter(|u| u.barrier.id == b.id)
                {
                    // What was pulled ahead of the barrier was overtaken.
                    for batch in self.gate.buffered_batches(i) {
                        u.channel.record(i, batch);
                    }
                }
                return Ok(self.alignment.on_barrier(i, b, Instant::now()));
            }
            Event::EndOfInput => {
                self.open.retain(|&x| x != i);
                self.valve.end(i, self.op, self.out)?;
                if self.ck.is_some() {
                    return Ok(self.alignment.on_end_of_input(i, Instant::now()));
                }
            }
        }
        Ok(AlignAction::Continue)
    }

    /// Declines the checkpoints alignment abandoned.
    fn decline_abandoned(&mut self) {
        let Some(ck) = self.ck else { return };
        for id in self.alignment.take_abandoned() {
            if self.unaligned.as_ref().is_some_and(|u| u.barrier.id == id) {
                self.unaligned = None;
            }
            ck.hub.send(TaskMessage::Decline {
                id,
                reason: "overtaken by a newer checkpoint during alignment".into(),
            });
        }
    }

    fn act(&mut self, action: AlignAction) -> Result<(), TaskFailure> {
        let Some(ck) = self.ck else { return Ok(()) };
        match action {
            AlignAction::Continue => {}
            AlignAction::Snapshot {
                barrier,
                alignment,
                processed,
            } => {
                let (mut state, sync) = self.snapshot(ck, barrier, true)?;
                state.processed_bytes = processed;
                if self.op.snapshot_pending() {
                    self.deferred = Some(Deferred {
                        barrier,
                        state,
                        sync,
                        alignment,
                        at: Instant::now(),
                        last_step: Instant::now(),
                        step_took: Duration::ZERO,
                    });
                } else {
                    ck.ack(&barrier, state, sync, alignment);
                }
                self.out
                    .send_barrier(barrier, ck.overtake(barrier.kind, false))?;
                self.last_barrier = barrier.id;
            }
            AlignAction::SnapshotUnaligned { barrier, alignment } => {
                let (state, sync) = self.snapshot(ck, barrier, false)?;
                self.out
                    .send_barrier(barrier, ck.overtake(barrier.kind, true))?;
                let inputs = self.gate.channels().iter().map(|c| (c.side, c.partition));
                self.unaligned = Some(Unaligned {
                    barrier,
                    state,
                    sync,
                    alignment,
                    channel: ChannelState::for_inputs(inputs),
                    at: Instant::now(),
                });
                self.last_barrier = barrier.id;
            }
            AlignAction::ChannelStateDone { barrier, processed } => {
                if let Some(mut u) = self.unaligned.take().filter(|u| u.barrier.id == barrier.id) {
                    u.state.channel = Some(u.channel);
                    u.state.processed_bytes = processed;
                    let recording = u.at.elapsed();
                    ck.ack_after(&barrier, u.state, (u.sync, u.alignment), recording);
                }
            }
        }
        Ok(())
    }

    /// Takes the task's snapshot for `barrier` (with its watermark), after
    /// sending what it emitted before and finishing a snapshot still being
    /// written; returns it with its duration (finishing the one before
    /// included). With `deferrable`, a checkpoint may leave its keyed part
    /// to be written copy-on-write.
    fn snapshot(
        &mut self,
        ck: &TaskCheckpointing,
        barrier: Barrier,
        deferrable: bool,
    ) -> Result<(StateSnapshot, Duration), TaskFailure> {
        // Finishing the snapshot before this one stops the task as well:
        // it counts in this one's synchronous part.
        let finishing = Instant::now();
        self.finish_deferred()?;
        let finishing = finishing.elapsed();
        self.out.flush()?;
        self.op.notify_checkpoint_complete(ck.hub.last_completed());
        let t = Instant::now();
        let mut state = if deferrable && barrier.kind == BarrierKind::Checkpoint {
            self.op.snapshot_checkpoint(barrier.id)?
        } else {
            self.op.snapshot(barrier.id, barrier.kind)?
        };
        let watermark = self.valve.tracker.current();
        state.watermark = (watermark != NO_WATERMARK).then_some(watermark);
        Ok((state, finishing + t.elapsed()))
    }

    /// Hands a batch to the operator (its second input if `second`).
    fn process(&mut self, second: bool, b: Batch) -> Result<(), TaskFailure> {
        self.metrics.add_in(b.len);
        if self.is_sink && b.len > 0 {
            self.metrics.mark_first_record();
        }
        let start = Instant::now();
        if second {
            self.op.process_second(b, self.out)?;
        } else {
            self.op.process(b, self.out)?;
        }
        self.out.flush()?;
        self.metrics.add_busy(start.elapsed());
        Ok(())
    }
}

/// Fires the due processing-time timers, once per turn, before more input
/// is taken: a busy input cannot starve them, and a timer that keeps
/// re-arming itself cannot starve the input. Returns whether any of the
/// task's own fired; those of the operators chained into it fire too.
fn fire_due_timers(op: &mut dyn StreamOperator, out: &mut Output) -> Result<bool, TaskFailure> {
    let now = crate::clock::epoch_ms();
    out.fire_chained_timers(now)?;
    if op.next_processing_timer().is_some_and(|t| t <= now) {
        op.on_processing_time(now, out)?;
        out.flush()?;
        return Ok(true);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_snapshot_takes_at_most_a_quarter_of_a_busy_tasks_time() {
        // Small steps: one every 3 ms, as before.
        assert!(!step_due(2 * MS, MS / 2));
        assert!(step_due(3 * MS, MS / 2));
        // A key group of millions of keys takes 5 ms: the next step waits
        // 15 ms of input, so the task keeps three quarters of its time.
        assert!(!step_due(14 * MS, 5 * MS));
        assert!(step_due(15 * MS, 5 * MS));
    }
}
