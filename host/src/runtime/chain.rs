//! Subtasks chained into their upstream's thread behind a forward edge
//! (Flink's operator chaining): a chained sink, and a chained operator with
//! its own output. Their upstream hands them batches and events directly,
//! without a channel or a thread of their own; each still acknowledges
//! checkpoints as its own node, and its failures name it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpointing::{FINAL_SNAPSHOT, TaskCheckpointing};
use super::error::{OutputError, TaskFailure};
use super::operator::StreamOperator;
use super::output::{ChainedTask, CounterVisitor, Output};
use super::valve::Valve;
use crate::channel::ChannelSender;
use crate::channel::{Batch, Event};
use crate::checkpoint::hub::StateSnapshot;
use crate::metrics::TaskMetrics;
use crate::sink::SinkWriter;
use crate::watermark::NO_WATERMARK;

/// A sink chained behind a forward edge: it runs in the upstream task's
/// thread and is handed batches directly, without a channel or a thread of
/// its own (Flink's operator chaining, for the sink end of a pipeline).
pub(crate) struct ChainedSink {
    /// The sink's node index.
    pub(crate) node: usize,
    pub(crate) writer: Box<dyn SinkWriter>,
    pub(crate) metrics: Arc<TaskMetrics>,
    /// With checkpoints: the sink's own link to the coordinator (it
    /// acknowledges as its own node), and the last barrier it saw.
    pub(crate) checkpointing: Option<(TaskCheckpointing, u64)>,
}

impl std::fmt::Debug for ChainedSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainedSink")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ChainedSink {
    fn fail(&self, failure: TaskFailure) -> OutputError {
        OutputError::Chained {
            node: self.node,
            failure: Box::new(failure),
        }
    }

    fn write(&mut self, batch: &Batch) -> Result<(), OutputError> {
        self.metrics.add_in(batch.len);
        if batch.len > 0 {
            self.metrics.mark_first_record();
        }
        self.writer.write(batch).map_err(|e| self.fail(e.into()))
    }

    fn on_event(&mut self, event: &Event) -> Result<(), OutputError> {
        match event {
            Event::Batch(b) => self.write(b),
            Event::Watermark(_) | Event::Idle => Ok(()),
            Event::EndOfInput => {
                self.writer.finish().map_err(|e| self.fail(e.into()))?;
                if let Some((ck, last)) = &self.checkpointing {
                    self.writer
                        .notify_checkpoint_complete(ck.hub.last_completed());
                    let t = Instant::now();
                    let state = self
                        .writer
                        .pre_commit(FINAL_SNAPSHOT)
                        .map_err(|e| self.fail(e.into()))?;
                    let state = StateSnapshot {
                        operator_state: state,
                        ..StateSnapshot::default()
                    };
                    ck.finish(state, t.elapsed(), *last);
                }
                Ok(())
            }
            Event::Barrier(b) => {
                let Some((ck, last)) = self.checkpointing.as_mut() else {
                    return Err(self.fail(TaskFailure::Internal(format!(
                        "received checkpoint barrier {} with checkpointing off",
                        b.id
                    ))));
                };
                *last = b.id;
                let ck = ck.clone();
                self.writer
                    .notify_checkpoint_complete(ck.hub.last_completed());
                let t = Instant::now();
                let state = self
                    .writer
                    .pre_commit(b.id)
                    .map_err(|e| self.fail(e.into()))?;
                let state = StateSnapshot {
                    operator_state: state,
                    ..StateSnapshot::default()
                };
                ck.ack(b, state, t.elapsed(), Duration::ZERO);
                Ok(())
            }
        }
    }
}

impl ChainedTask for ChainedSink {
    fn process(&mut self, batch: Batch) -> Result<(), OutputError> {
        self.write(&batch)
    }

    fn event(&mut self, event: &Event) -> Result<(), OutputError> {
        self.on_event(event)
    }
}

/// An operator chained behind a forward edge: it runs in the upstream
/// task's thread, its one input handed to it batch by batch, and sends on
/// through its own [`Output`] (which may hold chained subtasks in turn).
pub(crate) struct ChainedOperator {
    /// The operator's node index.
    node: usize,
    op: Box<dyn StreamOperator>,
    /// Its output, which also holds its counters.
    out: Output,
    /// Its watermark and idleness over its one input.
    valve: Valve,
    /// With checkpoints: its own link to the coordinator, and the last
    /// barrier it saw.
    checkpointing: Option<(TaskCheckpointing, u64)>,
}

impl std::fmt::Debug for ChainedOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainedOperator")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl ChainedOperator {
    /// Opens `op` (node `node`) to run chained, sending to `out` (whose
    /// counters are its own): at the
    /// watermark of the checkpoint restored from, after the in-flight
    /// records `replay` of an unaligned one, taken while it ran unchained.
    pub(super) fn open(
        node: usize,
        mut op: Box<dyn StreamOperator>,
        mut out: Output,
        checkpointing: Option<TaskCheckpointing>,
        replay: Vec<Batch>,
    ) -> Result<Self, TaskFailure> {
        let blame = |f| TaskFailure::Output(blame(node, f));
        op.open().map_err(blame)?;
        let valve =
            Valve::start(1, checkpointing.as_ref(), op.as_mut(), &mut out).map_err(blame)?;
        let mut chained = ChainedOperator {
            node,
            op,
            out,
            valve,
            checkpointing: checkpointing.map(|c| {
                let restored = c.restored_id;
                (c, restored)
            }),
        };
        for batch in replay {
            chained.run_batch(batch)?;
        }
        Ok(chained)
    }

    /// Hands it one batch, and sends on what it emitted.
    fn run_batch(&mut self, batch: Batch) -> Result<(), OutputError> {
        self.valve.activate(0);
        self.out.metrics().add_in(batch.len);
        let start = Instant::now();
        let r = self.op.process(batch, &mut self.out);
        let r = r.and_then(|()| Ok(self.out.flush()?));
        self.out.metrics().add_busy(start.elapsed());
        r.map_err(|f| blame(self.node, f))
    }

    /// Its input ended: the final watermark, `close`, the final snapshot,
    /// and the end of its own output.
    fn end(&mut self) -> Result<(), TaskFailure> {
        self.valve.end(0, self.op.as_mut(), &mut self.out)?;
        self.op.close(&mut self.out)?;
        if let Some((ck, last)) = &self.checkpointing {
            self.out.flush()?;
            self.op.notify_checkpoint_complete(ck.hub.last_completed());
            let t = Instant::now();
            let state = self.op.snapshot(FINAL_SNAPSHOT, ck.hub.final_kind())?;
            ck.finish(state, t.elapsed(), *last);
        }
        Ok(self.out.broadcast(Event::EndOfInput)?)
    }

    /// A checkpoint barrier: with one input there is nothing to align, so
    /// it snapshots at once, acknowledges, and sends the barrier on.
    fn barrier(&mut self, b: &crate::channel::Barrier) -> Result<(), TaskFailure> {
        let Some((ck, last)) = self.checkpointing.as_mut() else {
            return Err(TaskFailure::Internal(format!(
                "received checkpoint barrier {} with checkpointing off",
                b.id
            )));
        };
        *last = b.id;
        self.out.flush()?;
        self.op.notify_checkpoint_complete(ck.hub.last_completed());
        let t = Instant::now();
        let mut state = self.op.snapshot(b.id, b.kind)?;
        let watermark = self.valve.tracker.current();
        state.watermark = (watermark != NO_WATERMARK).then_some(watermark);
        ck.ack(b, state, t.elapsed(), Duration::ZERO);
        let overtake = ck.overtake(b.kind, false);
        Ok(self.out.send_barrier(*b, overtake)?)
    }
}

impl ChainedTask for ChainedOperator {
    fn process(&mut self, batch: Batch) -> Result<(), OutputError> {
        self.run_batch(batch)
    }

    /// Hands it an event of its input.
    fn event(&mut self, event: &Event) -> Result<(), OutputError> {
        let r = match event {
            Event::Batch(b) => return self.run_batch(b.clone()),
            Event::Watermark(w) => self.valve.watermark(0, *w, self.op.as_mut(), &mut self.out),
            Event::Idle => self.valve.idle(0, self.op.as_mut(), &mut self.out),
            Event::EndOfInput => self.end(),
            Event::Barrier(b) => self.barrier(b),
        };
        r.map_err(|f| blame(self.node, f))
    }

    /// Its earliest processing-time timer, or its chained subtasks'.
    fn next_timer(&self) -> Option<i64> {
        let own = self.op.next_processing_timer();
        [own, self.out.next_chained_timer()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires its due processing-time timers, and its chained subtasks'.
    fn fire_timers(&mut self, now: i64) -> Result<(), OutputError> {
        if self.op.next_processing_timer().is_some_and(|t| t <= now) {
            let r = self
                .op
                .on_processing_time(now, &mut self.out)
                .and_then(|()| Ok(self.out.flush()?))
                .and_then(|()| self.valve.after_own_output(&mut self.out));
            r.map_err(|f| blame(self.node, f))?;
        }
        self.out.fire_chained_timers(now)
    }

    fn senders(&self) -> Vec<&ChannelSender> {
        self.out.senders()
    }

    fn has_room(&self) -> bool {
        self.out.has_room()
    }

    fn counters(&self, f: &mut CounterVisitor<'_>) {
        f(self.node, self.op.user_counters());
        self.out.chained_counters(f);
    }
}

/// `failure` of chained node `node` as its upstream's output error: its
/// own, or that of a subtask chained further down, which names itself.
pub(super) fn blame(node: usize, failure: TaskFailure) -> OutputError {
    match failure {
        TaskFailure::Output(e @ OutputError::Chained { .. }) => e,
        failure => OutputError::Chained {
            node,
            failure: Box::new(failure),
        },
    }
}
