//! A task's output: batches elements and routes them over its outgoing
//! edges by each edge's partitioning.

use std::sync::Arc;
use std::time::Duration;

use weir_wire::{BatchBuilder, BatchReader, count_elements};

use super::checkpointing::Overtake;
use super::error::OutputError;
use crate::channel::{Announcement, Barrier, Batch, ChannelSender, Event};
use crate::keygroup::key_group;
use crate::metrics::TaskMetrics;
use crate::source::SourceOutput;

/// Called with a node and the user counters of one of its subtasks.
pub(crate) type CounterVisitor<'a> = dyn FnMut(usize, &[(String, u64)]) + 'a;

/// A subtask that runs in its upstream's thread behind a forward edge,
/// handed batches and events directly (implemented in `chain.rs`).
pub(crate) trait ChainedTask: Send + std::fmt::Debug {
    /// Hands it one batch.
    fn process(&mut self, batch: Batch) -> Result<(), OutputError>;
    /// Hands it an event: a watermark, idleness, a barrier, the end.
    fn event(&mut self, event: &Event) -> Result<(), OutputError>;
    /// The channels it sends on, its chained subtasks' too.
    fn senders(&self) -> Vec<&ChannelSender> {
        Vec::new()
    }
    /// Whether each of those has room for one more event.
    fn has_room(&self) -> bool {
        true
    }
    /// Its earliest processing-time timer, or its chained subtasks'.
    fn next_timer(&self) -> Option<i64> {
        None
    }
    /// Fires its due processing-time timers (at `now`, in ms), and its
    /// chained subtasks'.
    fn fire_timers(&mut self, now: i64) -> Result<(), OutputError> {
        let _ = now;
        Ok(())
    }
    /// Calls `f` with the node and the user counters of each operator in
    /// it, at any depth.
    fn counters(&self, f: &mut CounterVisitor<'_>) {
        let _ = f;
    }
}

/// One outgoing edge with its channels.
#[derive(Debug)]
pub(crate) enum EdgeOutput {
    /// A subtask chained into this task (a sink, or an operator with its
    /// own output; see `chain.rs`).
    Chained(Box<dyn ChainedTask>),
    /// To the downstream subtask with the same index.
    Forward(ChannelSender),
    /// Whole batches, round robin.
    Rebalance {
        senders: Vec<ChannelSender>,
        next: usize,
    },
    /// Each element to the subtask owning its key's key group.
    Hash {
        senders: Vec<ChannelSender>,
        builders: Vec<BatchBuilder>,
        /// Per key group, the index of the subtask that owns it.
        owners: Vec<u32>,
    },
}

/// The outputs of one subtask.
#[derive(Debug)]
pub struct Output {
    edges: Vec<EdgeOutput>,
    /// Edges of side outputs, by tag.
    sides: Vec<(String, EdgeOutput)>,
    pending: BatchBuilder,
    batch_size: usize,
    /// `weir.batch.max-bytes`: a batch is sent once it holds this much.
    max_batch_bytes: usize,
    max_parallelism: u32,
    metrics: Arc<TaskMetrics>,
}

impl Output {
    pub(crate) fn new(
        edges: Vec<EdgeOutput>,
        sides: Vec<(String, EdgeOutput)>,
        (batch_size, max_batch_bytes): (usize, usize),
        max_parallelism: u32,
        metrics: Arc<TaskMetrics>,
    ) -> Self {
        Output {
            edges,
            sides,
            pending: BatchBuilder::with_capacity(batch_size * 32),
            batch_size,
            max_batch_bytes,
            max_parallelism,
            metrics,
        }
    }

    /// The counters of the subtask this output belongs to.
    pub(crate) fn metrics(&self) -> &TaskMetrics {
        &self.metrics
    }

    /// Emits one element.
    pub fn push(
        &mut self,
        key: Option<&[u8]>,
        value: &[u8],
        timestamp: Option<i64>,
    ) -> Result<(), OutputError> {
        self.pending.push(key, value, timestamp);
        if self.is_full() {
            self.flush()?;
        }
        Ok(())
    }

    /// Whether the pending batch is full, in elements or in bytes.
    #[inline]
    fn is_full(&self) -> bool {
        self.pending.len() >= self.batch_size || self.pending.byte_len() >= self.max_batch_bytes
    }

    /// Emits elements already in the batch encoding (a guest's output),
    /// after checking them.
    pub fn push_encoded(&mut self, encoded: Vec<u8>) -> Result<(), OutputError> {
        let n = count_elements(&encoded)?;
        if n == 0 {
            return Ok(());
        }
        let small = encoded.len() <= self.max_batch_bytes;
        if self.pending.is_empty() && small && n >= self.batch_size / 2 && n <= self.batch_size * 2
        {
            return self.route(Batch {
                data: encoded,
                len: n,
            });
        }
        if n <= self.batch_size && small {
            self.pending.extend_encoded(&encoded, n);
            if self.is_full() {
                self.flush()?;
            }
            return Ok(());
        }
        // A large output is cut into batches, so a channel's capacity in
        // batches also bounds its memory.
        for e in weir_wire::BatchReader::new(&encoded) {
            self.pending.push_ref(e?);
            if self.is_full() {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Emits elements in the batch encoding (a guest's) to side output
    /// `tag`: to the edges that carry it, at once; nowhere if none does.
    pub fn push_side(&mut self, tag: &str, encoded: Vec<u8>) -> Result<(), OutputError> {
        let len = count_elements(&encoded)?;
        if len == 0 {
            return Ok(());
        }
        self.metrics.add_out(len);
        let batch = Batch { data: encoded, len };
        let max_parallelism = self.max_parallelism;
        for (_, edge) in self.sides.iter_mut().filter(|(t, _)| t == tag) {
            send_on(edge, batch.clone(), max_parallelism)?;
        }
        Ok(())
    }

    /// Emits a whole batch as is.
    pub fn push_batch(&mut self, batch: Batch) -> Result<(), OutputError> {
        self.flush()?;
        self.route(batch)
    }

    /// Sends what is pending.
    pub fn flush(&mut self) -> Result<(), OutputError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (data, len) = self.pending.take();
        self.route(Batch { data, len })
    }

    /// Sends an event (watermark, end of input, barrier) on every
    /// channel, side outputs' too, after what is pending.
    pub fn broadcast(&mut self, event: Event) -> Result<(), OutputError> {
        self.flush()?;
        let sides = self.sides.iter_mut().map(|(_, e)| e);
        for edge in self.edges.iter_mut().chain(sides) {
            let senders: &[ChannelSender] = match edge {
                EdgeOutput::Chained(task) => {
                    task.event(&event)?;
                    continue;
                }
                EdgeOutput::Forward(s) => std::slice::from_ref(s),
                EdgeOutput::Rebalance { senders, .. } | EdgeOutput::Hash { senders, .. } => senders,
            };
            for s in senders {
                s.send(event.clone())?;
            }
        }
        Ok(())
    }

    /// Whether every channel has room for one more event, so that a batch
    /// routed now does not wait (one batch puts at most one event on each
    /// channel).
    pub(crate) fn has_room(&self) -> bool {
        // Asked once a batch while checkpoints may overtake: no allocation.
        self.all_edges().all(|edge| match edge {
            EdgeOutput::Chained(task) => task.has_room(),
            EdgeOutput::Forward(s) => s.has_room(),
            EdgeOutput::Rebalance { senders, .. } | EdgeOutput::Hash { senders, .. } => {
                senders.iter().all(ChannelSender::has_room)
            }
        })
    }

    /// Every channel of every edge, side outputs' too, and those of the
    /// subtasks chained into this task.
    pub(super) fn senders(&self) -> Vec<&ChannelSender> {
        let mut all = Vec::new();
        for edge in self.all_edges() {
            match edge {
                EdgeOutput::Chained(task) => all.extend(task.senders()),
                EdgeOutput::Forward(s) => all.push(s),
                EdgeOutput::Rebalance { senders, .. } | EdgeOutput::Hash { senders, .. } => {
                    all.extend(senders);
                }
            }
        }
        all
    }

    /// Every edge, side outputs' too.
    fn all_edges(&self) -> impl Iterator<Item = &EdgeOutput> {
        let sides = self.sides.iter().map(|(_, e)| e);
        self.edges.iter().chain(sides)
    }

    /// Waits at most `timeout` for room in the channels that have none
    /// (see [`ChannelSender::wait_for_room`]).
    pub(crate) fn wait_for_room(&self, timeout: Duration) {
        ChannelSender::wait_for_room(self.senders().into_iter(), timeout);
    }

    /// The earliest processing-time timer of the subtasks chained into
    /// this task, at any depth.
    pub(crate) fn next_chained_timer(&self) -> Option<i64> {
        self.all_edges()
            .filter_map(|e| match e {
                EdgeOutput::Chained(task) => task.next_timer(),
                _ => None,
            })
            .min()
    }

    /// Fires the due processing-time timers of the subtasks chained into
    /// this task (at the wall-clock time `now`, in ms).
    pub(crate) fn fire_chained_timers(&mut self, now: i64) -> Result<(), OutputError> {
        let sides = self.sides.iter_mut().map(|(_, e)| e);
        for edge in self.edges.iter_mut().chain(sides) {
            if let EdgeOutput::Chained(task) = edge {
                task.fire_timers(now)?;
            }
        }
        Ok(())
    }

    /// Calls `f` with the node and the user counters of every operator
    /// chained into this task, at any depth.
    pub(crate) fn chained_counters(&self, f: &mut CounterVisitor<'_>) {
        for edge in self.all_edges() {
            if let EdgeOutput::Chained(task) = edge {
                task.counters(f);
            }
        }
    }

    /// Sends a checkpoint barrier on every channel, after what is pending;
    /// with `overtake`, announces it first on the priority lanes of the
    /// edges that may go unaligned, so the receivers see it at once.
    pub(crate) fn send_barrier(
        &mut self,
        barrier: Barrier,
        overtake: Overtake,
    ) -> Result<(), OutputError> {
        self.flush()?;
        if overtake.announce {
            let a = Announcement {
                barrier,
                unaligned: overtake.unaligned,
            };
            let sides = self.sides.iter().map(|(_, e)| e);
            for edge in self.edges.iter().chain(sides) {
                let senders: &[ChannelSender] = match edge {
                    EdgeOutput::Forward(s) if overtake.forward => std::slice::from_ref(s),
                    EdgeOutput::Rebalance { senders, .. } | EdgeOutput::Hash { senders, .. } => {
                        senders
                    }
                    EdgeOutput::Forward(_) | EdgeOutput::Chained(_) => continue,
                };
                for s in senders {
                    s.announce(a)?;
                }
            }
        }
        self.broadcast(Event::Barrier(barrier))
    }

    /// Where a source subtask's records go as it makes them when its only
    /// output is one hash edge to several subtasks (and nothing is
    /// pending): straight into the batch of the subtask that owns each
    /// key, instead of into one batch that routing then reads back and
    /// copies apart (Flink's record writer routes each record as it is
    /// emitted). Send what it gathered with [`Self::send_routed`].
    pub(crate) fn key_router(&mut self) -> Option<KeyRouter<'_>> {
        if !self.pending.is_empty() || !self.sides.is_empty() {
            return None;
        }
        let max_parallelism = self.max_parallelism;
        match self.edges.as_mut_slice() {
            [
                EdgeOutput::Hash {
                    senders,
                    builders,
                    owners,
                },
            ] if senders.len() > 1 => Some(KeyRouter {
                builders,
                owners,
                max_parallelism,
            }),
            _ => None,
        }
    }

    /// Sends the batches a [`KeyRouter`] gathered.
    pub(crate) fn send_routed(&mut self) -> Result<(), OutputError> {
        if let [
            EdgeOutput::Hash {
                senders, builders, ..
            },
        ] = self.edges.as_mut_slice()
        {
            let sent = send_built(senders, builders)?;
            self.metrics.add_out(sent);
        }
        Ok(())
    }

    fn route(&mut self, batch: Batch) -> Result<(), OutputError> {
        self.metrics.add_out(batch.len);
        let n = self.edges.len();
        let mut batch = Some(batch);
        for (i, edge) in self.edges.iter_mut().enumerate() {
            let b = if i + 1 == n {
                batch.take()
            } else {
                batch.clone()
            };
            let Some(b) = b else { break };
            send_on(edge, b, self.max_parallelism)?;
        }
        Ok(())
    }
}

/// A source's records routed as they are made (see [`Output::key_router`]).
pub(crate) struct KeyRouter<'a> {
    /// The hash edge's own builders: what a failed read leaves in them is
    /// dropped ([`KeyRouter::discard`]), since routing a batch expects
    /// them empty.
    builders: &'a mut [BatchBuilder],
    /// Per key group, the index of the subtask that owns it.
    owners: &'a [u32],
    max_parallelism: u32,
}

impl KeyRouter<'_> {
    /// Drops what was routed and not sent (a read that failed).
    pub(crate) fn discard(&mut self) {
        self.builders.iter_mut().for_each(BatchBuilder::clear);
    }
}

impl SourceOutput for KeyRouter<'_> {
    fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
        let owner = owner_of(key, self.owners, self.max_parallelism);
        // `owners` names only the edge's subtasks, one builder each.
        self.builders[owner].push(key, value, timestamp);
    }

    // The builders start empty (routing a batch leaves them so), so what
    // they hold is what this read routed.
    fn len(&self) -> usize {
        self.builders.iter().map(BatchBuilder::len).sum()
    }

    fn byte_len(&self) -> usize {
        self.builders.iter().map(BatchBuilder::byte_len).sum()
    }
}

/// Sends batch `b` over one edge, by its partitioning.
fn send_on(edge: &mut EdgeOutput, b: Batch, max_parallelism: u32) -> Result<(), OutputError> {
    match edge {
        EdgeOutput::Chained(task) => task.process(b)?,
        EdgeOutput::Forward(s) => s.send(Event::Batch(b))?,
        EdgeOutput::Rebalance { senders, next } => {
            senders[*next].send(Event::Batch(b))?;
            *next = (*next + 1) % senders.len();
        }
        EdgeOutput::Hash { senders, .. } if senders.len() == 1 => {
            senders[0].send(Event::Batch(b))?;
        }
        EdgeOutput::Hash {
            senders,
            builders,
            owners,
        } => {
            split_by_owner(&b.data, builders, owners, max_parallelism);
            send_built(senders, builders)?;
        }
    }
    Ok(())
}

/// Sends each non-empty builder's batch to its subtask; returns the
/// elements sent.
fn send_built(
    senders: &[ChannelSender],
    builders: &mut [BatchBuilder],
) -> Result<usize, OutputError> {
    let mut sent = 0;
    for (sender, builder) in senders.iter().zip(builders.iter_mut()) {
        if !builder.is_empty() {
            let (data, len) = builder.take();
            sender.send(Event::Batch(Batch { data, len }))?;
            sent += len;
        }
    }
    Ok(sent)
}

/// The subtask owning `key`'s key group (`owners`, per key group); an
/// element without a key has the empty key's key group.
fn owner_of(key: Option<&[u8]>, owners: &[u32], max_parallelism: u32) -> usize {
    let kg = key_group(key.unwrap_or_default(), max_parallelism);
    owners.get(kg as usize).map_or(0, |&o| o as usize)
}

/// Appends each element of `data` (a checked batch) to the builder of the
/// subtask owning its key's key group (`owners`, per key group), copying
/// runs of consecutive elements for one subtask at once, as encoded.
fn split_by_owner(
    data: &[u8],
    builders: &mut [BatchBuilder],
    owners: &[u32],
    max_parallelism: u32,
) {
    let mut reader = BatchReader::new(data);
    // The run being gathered: its subtask, where it starts, its length.
    let mut run: Option<(usize, usize, usize)> = None;
    let mut end = 0;
    // Batches on channels were checked when they were made: a malformed
    // element cannot be met here, and would end the batch.
    while let Ok(Some(e)) = reader.next_element() {
        let owner = owner_of(e.key, owners, max_parallelism);
        match &mut run {
            Some((o, _, n)) if *o == owner => *n += 1,
            _ => {
                if let Some((o, start, n)) = run {
                    builders[o].extend_encoded(&data[start..end], n);
                }
                run = Some((owner, end, 1));
            }
        }
        end = reader.position();
    }
    if let Some((o, start, n)) = run {
        builders[o].extend_encoded(&data[start..end], n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygroup::subtask_for_key_group;

    /// An element, owned: key, value, timestamp.
    type Owned = (Option<Vec<u8>>, Vec<u8>, Option<i64>);

    const MAX: u32 = 128;

    /// Per key group, its owner among three subtasks.
    fn owners() -> Vec<u32> {
        (0..MAX)
            .map(|kg| subtask_for_key_group(kg, MAX, 3))
            .collect()
    }

    /// 500 elements over 37 keys, some without a key or a timestamp.
    fn elements() -> Vec<Owned> {
        (0..500i64)
            .map(|i| {
                let key = format!("k{}", i % 37).into_bytes();
                let key = (i % 11 != 0).then_some(key);
                (key, format!("v{i}").into_bytes(), (i % 3 == 0).then_some(i))
            })
            .collect()
    }

    fn builders() -> Vec<BatchBuilder> {
        (0..3).map(|_| BatchBuilder::default()).collect()
    }

    #[test]
    fn a_batch_splits_by_owner_in_order_with_runs_copied_whole() {
        let owners = owners();
        let mut batch = BatchBuilder::default();
        let mut want: Vec<Vec<Owned>> = vec![Vec::new(); 3];
        for (key, value, ts) in elements() {
            batch.push(key.as_deref(), &value, ts);
            let kg = key_group(key.as_deref().unwrap_or_default(), MAX);
            want[owners[kg as usize] as usize].push((key, value, ts));
        }
        let (data, _) = batch.take();
        let mut builders = builders();
        split_by_owner(&data, &mut builders, &owners, MAX);
        for (b, want) in builders.iter_mut().zip(want) {
            let (data, len) = b.take();
            assert_eq!(len, want.len());
            let got: Vec<_> = BatchReader::new(&data)
                .map(|e| e.map(|e| (e.key.map(<[u8]>::to_vec), e.value.to_vec(), e.timestamp)))
                .collect::<Result<_, _>>()
                .expect("valid batch");
            assert_eq!(got, want);
        }
    }

    #[test]
    fn records_routed_as_they_are_made_land_where_a_split_batch_would() {
        let owners = owners();
        let mut batch = BatchBuilder::default();
        let (mut split, mut routed) = (builders(), builders());
        let mut router = KeyRouter {
            builders: &mut routed,
            owners: &owners,
            max_parallelism: MAX,
        };
        for (key, value, ts) in elements() {
            batch.push(key.as_deref(), &value, ts);
            router.push(key.as_deref(), &value, ts);
        }
        let (len, bytes) = (router.len(), router.byte_len());
        assert_eq!((len, bytes), (batch.len(), batch.byte_len()));
        let (data, _) = batch.take();
        split_by_owner(&data, &mut split, &owners, MAX);
        for (a, b) in split.iter_mut().zip(routed.iter_mut()) {
            assert!(!a.is_empty());
            assert_eq!(a.take(), b.take());
        }
    }
}
