//! The loop a source subtask runs (operators and sinks run the input
//! loop of `input_loop.rs`).

use std::time::{Duration, Instant};

use weir_wire::BatchBuilder;

use super::checkpointing::TaskCheckpointing;
use super::control::JobControl;
use super::error::TaskFailure;
use super::output::Output;
use crate::channel::{BarrierKind, Batch, Event};
use crate::checkpoint::hub::{StateSnapshot, StopOutcome};
use crate::source::{BatchInfo, BatchLimit, SourceOutput, SourceReader};
use crate::watermark::{BoundedOutOfOrderness, NO_WATERMARK};

/// How often a source task publishes its reader's own metrics.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

/// Reads a source until its end (or until the job stops), emitting
/// batches and, with `out_of_orderness_ms`, watermarks, and marking itself
/// idle after `idle_timeout` without elements; with checkpoints, it
/// records its position and emits a barrier whenever the coordinator
/// triggers one.
pub(crate) fn run_source(
    reader: &mut dyn SourceReader,
    out: &mut Output,
    limit: BatchLimit,
    out_of_orderness_ms: Option<u64>,
    idle_timeout: Option<Duration>,
    control: &JobControl,
    checkpointing: Option<&TaskCheckpointing>,
) -> Result<(), TaskFailure> {
    let mut generator = out_of_orderness_ms.map(BoundedOutOfOrderness::new);
    let mut idleness = idle_timeout.map(Idleness::new);
    let mut builder = BatchBuilder::with_capacity(limit.records * 32);
    let mut last = NO_WATERMARK;
    let mut last_barrier = checkpointing.map_or(0, |c| c.restored_id);
    let mut notified = last_barrier;
    let overtaking = checkpointing.is_some_and(|c| c.hub.may_overtake(BarrierKind::Checkpoint));
    let mut published = Instant::now();
    loop {
        if control.is_stopping() {
            return Err(TaskFailure::Cancelled);
        }
        if let Some(ck) = checkpointing {
            source_checkpoints(reader, out, control, ck, (&mut last_barrier, &mut notified))?;
        }
        // The timers of operators chained into this source fire between
        // its reads.
        out.fire_chained_timers(crate::clock::epoch_ms())?;
        if checkpointing.is_some_and(|ck| ck.hub.drain_requested()) {
            // Stop with drain: the input ends here, as if the source had
            // reached its end.
            break;
        }
        if overtaking && !out.has_room() {
            // Backpressured: wait for room rather than in a send, so that
            // a trigger is seen at once (unaligned checkpoints).
            out.wait_for_room(Duration::from_millis(1));
            continue;
        }
        let (info, emitted) = read_into(reader, out, &mut builder, limit)?;
        if published.elapsed() >= METRICS_INTERVAL {
            published = Instant::now();
            let own = reader.metrics();
            out.metrics().publish_guest(&own.counters, &own.gauges);
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

/// One read of a source: routed as it is made where the output allows
/// (see [`Output::key_router`]), else into `builder` and sent as one
/// batch. Returns what the reader said and whether it gave any record.
fn read_into(
    reader: &mut dyn SourceReader,
    out: &mut Output,
    builder: &mut BatchBuilder,
    limit: BatchLimit,
) -> Result<(BatchInfo, bool), TaskFailure> {
    if let Some(mut router) = out.key_router() {
        let info = match reader.next_batch(&mut router, limit) {
            Ok(info) => info,
            Err(e) => {
                router.discard();
                return Err(e.into());
            }
        };
        let emitted = !router.is_empty();
        out.send_routed()?;
        return Ok((info, emitted));
    }
    let info = reader.next_batch(builder, limit)?;
    let emitted = !builder.is_empty();
    if emitted {
        let (data, len) = builder.take();
        out.push_batch(Batch { data, len })?;
    }
    Ok((info, emitted))
}

/// A source subtask's part in checkpoints, between two batches: takes a
/// triggered checkpoint (its position, acknowledged, then the barrier
/// sent), and tells the reader of checkpoints completed since `notified`.
/// `last_barrier` and `notified` are the ids it last saw of each.
fn source_checkpoints(
    reader: &mut dyn SourceReader,
    out: &mut Output,
    control: &JobControl,
    ck: &TaskCheckpointing,
    (last_barrier, notified): (&mut u64, &mut u64),
) -> Result<(), TaskFailure> {
    if let Some(barrier) = ck.hub.poll_trigger(*last_barrier) {
        let t = Instant::now();
        let state = StateSnapshot {
            operator_state: reader.snapshot_position(),
            ..StateSnapshot::default()
        };
        reader.snapshot_taken(barrier.id);
        ck.ack(&barrier, state, t.elapsed(), Duration::ZERO);
        out.send_barrier(barrier, ck.overtake(barrier.kind, false))?;
        *last_barrier = barrier.id;
        if ck.hub.is_stop(barrier.id) {
            wait_for_stop(ck, control, barrier.id, out)?;
        }
    }
    let done = ck.hub.last_completed();
    if done > *notified {
        reader.notify_checkpoint_complete(done);
        *notified = done;
    }
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
