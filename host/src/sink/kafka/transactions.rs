//! The exactly-once Kafka sink's writer: one Kafka transaction per
//! subtask per checkpoint.
//!
//! A subtask writes its records into an open transaction, keeping a copy.
//! On a checkpoint barrier it adds the transaction's commit marker (see
//! below), waits until the broker has every record (pre-commit), and hands
//! the transaction to the [`Registry`], where the coordinator commits it
//! once the checkpoint is complete; the checkpoint records the
//! transaction with its copy of the records. The next record opens the
//! next transaction on another producer.
//!
//! Producers are pooled, as Flink's `TransactionNamingStrategy.POOLING`
//! does: subtask `s` uses the transactional ids `<prefix>-<s>-<slot>` of
//! as many slots as it has transactions at once (two while checkpoints
//! complete: one waiting for its commit, one open), and a committed
//! transaction's producer opens a later one. A transactional producer
//! starts with a round trip to the broker (and librdkafka then often
//! waits half a second), which a producer of its own per transaction
//! would pay every checkpoint; new slots are made ready in the background.
//!
//! A transaction's commit marker is an offset committed within the
//! transaction (so it becomes visible exactly when the transaction
//! commits) for consumer group `<prefix>-<s>` on partition 0 of the
//! sink's topic: a random token of the transaction. After a failure, the
//! marker tells which of the restored checkpoint's transactions were
//! committed and which were lost (see `committer`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::producer::Producer;
use weir_wire::BatchBuilder;

use super::markers::{
    GroupConsumer, add_marker, group_consumer, marker_groups, prefix, record_commit,
};
use super::producer::{Sender, block_timeout, err, producer_config};
use super::state::{PendingTxn, TxnSinkState};
use crate::channel::Batch;
use crate::sink::{SinkError, SinkWriter};
use crate::spec::KafkaSinkSpec;

/// `transaction.timeout.ms` unless the sink's properties set it: 15
/// minutes, the most a Kafka broker accepts by default
/// (`transaction.max.timeout.ms`).
pub const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 900_000;

/// The transactional id of slot `slot` of subtask `subtask`.
pub(super) fn transactional_id(prefix: &str, subtask: u32, slot: u32) -> String {
    format!("{prefix}-{subtask}-{slot}")
}

/// The producer of slot `slot` of subtask `subtask`, its transactions
/// initialised: any earlier producer with its transactional id is fenced,
/// and a transaction it left open is aborted.
pub(super) fn txn_producer(
    spec: &KafkaSinkSpec,
    subtask: u32,
    slot: u32,
) -> Result<Sender, SinkError> {
    let id = transactional_id(prefix(spec)?, subtask, slot);
    let timeout = DEFAULT_TRANSACTION_TIMEOUT_MS.to_string();
    let config = producer_config(
        spec,
        &[
            ("transactional.id", id.as_str()),
            ("transaction.timeout.ms", timeout.as_str()),
        ],
    );
    let sender = Sender::create(&config, block_timeout(spec))?;
    // A broker connection first: librdkafka looks for the transaction
    // coordinator only through a connected broker, and without one waits
    // half a second before it looks again.
    let _ = sender
        .producer
        .client()
        .fetch_metadata(Some(&spec.topic), sender.block);
    sender
        .producer
        .init_transactions(sender.block)
        .map_err(|e| err(format!("cannot start transactions as `{id}`: {e}")))?;
    Ok(sender)
}

/// The producers of every subtask of a sink: idle ones, and those whose
/// transaction is pre-committed and waits for the coordinator to commit
/// it; shared by the sink's writers and its committer for one attempt.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Producers>,
}

#[derive(Default)]
struct Producers {
    /// Pre-committed, by subtask and slot: the transaction's token, and
    /// its producer (`None` while its commit runs, or after it failed).
    waiting: HashMap<(u32, u32), (i64, Option<Sender>)>,
    /// A consumer of each slot's record group, by subtask and slot.
    records: HashMap<(u32, u32), GroupConsumer>,
    /// Idle, by subtask: slot and producer.
    idle: HashMap<u32, Vec<(u32, Sender)>>,
    /// The first commit that failed: the attempt fails with it, and its
    /// restart writes the transaction again from the checkpoint.
    failed: Option<String>,
}

impl std::fmt::Debug for Producers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producers")
            .field("waiting", &self.waiting.len())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Producers> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits the transactions of `state` still waiting, oldest first,
    /// and makes their producers idle. A transaction not waiting committed
    /// already. A transaction stays waiting until its commit succeeded, so
    /// the writer keeps it in every snapshot until then.
    pub(super) fn commit(
        &self,
        spec: &KafkaSinkSpec,
        state: &TxnSinkState,
    ) -> Result<(), SinkError> {
        for p in &state.pending {
            let key = (state.subtask, p.slot);
            let sender = {
                let mut w = self.lock();
                if let Some(e) = &w.failed {
                    return Err(err(format!("an earlier commit failed: {e}")));
                }
                match w.waiting.get_mut(&key) {
                    Some((token, sender)) if *token == p.token => sender.take(),
                    _ => None,
                }
            };
            let Some(sender) = sender else { continue };
            let committed = sender
                .producer
                .commit_transaction(sender.block)
                .map_err(err)
                .and_then(|()| {
                    let record = self.record_consumer(spec, key)?;
                    record_commit(spec, &record, p.token)
                });
            if let Err(e) = committed {
                let message = format!(
                    "cannot commit the transaction of checkpoint {} of subtask {}: {e}",
                    p.checkpoint, state.subtask
                );
                self.lock().failed.get_or_insert(message.clone());
                // The producer is dropped outside the lock.
                drop(sender);
                return Err(err(message));
            }
            tracing::debug!(
                "kafka sink: subtask {} slot {}: committed checkpoint {}'s transaction {}",
                state.subtask,
                p.slot,
                p.checkpoint,
                p.token
            );
            let mut w = self.lock();
            w.waiting.remove(&key);
            w.idle
                .entry(state.subtask)
                .or_default()
                .push((p.slot, sender));
        }
        Ok(())
    }

    /// The cached consumer of the record group of slot `key.1` of subtask
    /// `key.0`.
    fn record_consumer(
        &self,
        spec: &KafkaSinkSpec,
        key: (u32, u32),
    ) -> Result<GroupConsumer, SinkError> {
        if let Some(c) = self.lock().records.get(&key) {
            return Ok(c.clone());
        }
        let [_, record] = marker_groups(prefix(spec)?, key.0, key.1);
        let consumer = group_consumer(spec, &record)?;
        self.lock().records.insert(key, consumer.clone());
        Ok(consumer)
    }

    fn failure(&self) -> Result<(), SinkError> {
        match &self.lock().failed {
            Some(e) => Err(err(format!("a transaction's commit failed: {e}"))),
            None => Ok(()),
        }
    }

    /// An idle producer of subtask `subtask`, with its slot.
    fn take_idle(&self, subtask: u32) -> Option<(u32, Sender)> {
        let mut w = self.lock();
        let idle = w.idle.get_mut(&subtask)?;
        let lowest = (0..idle.len()).min_by_key(|i| idle[*i].0)?;
        Some(idle.swap_remove(lowest))
    }

    /// Adds the producers of slots `first..` of subtask `subtask` as idle.
    pub(super) fn add_idle_from(&self, subtask: u32, first: u32, senders: Vec<Sender>) {
        let mut w = self.lock();
        let idle = w.idle.entry(subtask).or_default();
        idle.extend((first..).zip(senders));
    }

    /// Whether the registry knows any producer of subtask `subtask`.
    fn knows(&self, subtask: u32) -> bool {
        let w = self.lock();
        w.idle.contains_key(&subtask) || w.waiting.keys().any(|(s, _)| *s == subtask)
    }

    /// How many slots subtask `subtask` has: past the highest in use.
    fn slots(&self, subtask: u32) -> u32 {
        let w = self.lock();
        let waiting = w
            .waiting
            .keys()
            .filter(|(s, _)| *s == subtask)
            .map(|(_, k)| *k);
        let idle = w.idle.get(&subtask).into_iter().flatten().map(|(k, _)| *k);
        waiting.chain(idle).max().map_or(0, |k| k.saturating_add(1))
    }

    fn has_idle(&self, subtask: u32) -> bool {
        self.lock()
            .idle
            .get(&subtask)
            .is_some_and(|v| !v.is_empty())
    }

    /// Hands a pre-committed transaction over, to wait for its commit.
    fn wait(&self, subtask: u32, slot: u32, token: i64, sender: Sender) -> Result<(), SinkError> {
        let mut w = self.lock();
        if w.waiting.contains_key(&(subtask, slot)) {
            return Err(err(format!(
                "slot {slot} of subtask {subtask} already holds a transaction waiting for its commit"
            )));
        }
        w.waiting.insert((subtask, slot), (token, Some(sender)));
        Ok(())
    }
}

/// The open transaction of a writer.
struct OpenTxn {
    sender: Sender,
    slot: u32,
    token: i64,
    records: BatchBuilder,
}

/// The producers of new slots being made ready, from the first slot on.
type Preparing = std::thread::JoinHandle<Result<Vec<Sender>, SinkError>>;

/// How many slots a subtask the sink's registry does not know yet (a
/// fresh start, or a subtask added by a rescale) takes over at once, and
/// how many slots past those a restored subtask had its recovery fences:
/// so that an earlier run's open transactions in them are aborted rather
/// than left to the broker's transaction timeout. A subtask opens one
/// slot more for each checkpoint that fails in a row; a live zombie
/// further ahead keeps its transactions open until that timeout.
pub(super) const FENCE_AHEAD: u32 = 4;

/// The producers of slots `slots` of subtask `subtask`, made ready at
/// once (each takes the broker a round trip).
pub(super) fn txn_producers(
    spec: &KafkaSinkSpec,
    subtask: u32,
    slots: std::ops::Range<u32>,
) -> Result<Vec<Sender>, SinkError> {
    let slots: Vec<u32> = slots.collect();
    in_parallel(&slots, |slot| txn_producer(spec, subtask, *slot))
}

/// `f` of each item, on at most 16 threads at once (each call waits on
/// the broker); the results in order, or the first error.
pub(super) fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, SinkError> + Sync,
) -> Result<Vec<R>, SinkError> {
    let mut results = Vec::with_capacity(items.len());
    for chunk in items.chunks(16) {
        let done: Vec<Result<R, SinkError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|i| scope.spawn(|| f(i))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(err("a Kafka client thread panicked")))
                })
                .collect()
        });
        for r in done {
            results.push(r?);
        }
    }
    Ok(results)
}

/// One subtask's writer of an exactly-once Kafka sink.
pub struct TxnWriter {
    spec: Arc<KafkaSinkSpec>,
    subtask: u32,
    /// Slots opened so far.
    slots: u32,
    open: Option<OpenTxn>,
    /// Pre-committed, not known to be committed.
    pending: Vec<PendingTxn>,
    registry: Arc<Registry>,
    /// A consumer of each slot's marker group.
    markers: HashMap<u32, GroupConsumer>,
    /// The producers of the next new slots, with the first slot.
    ready: Option<(u32, Preparing)>,
}

impl std::fmt::Debug for TxnWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnWriter")
            .field("subtask", &self.subtask)
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

impl TxnWriter {
    /// The writer of subtask `subtask`.
    pub(super) fn new(
        spec: Arc<KafkaSinkSpec>,
        subtask: u32,
        registry: Arc<Registry>,
    ) -> Result<Self, SinkError> {
        let mut writer = TxnWriter {
            spec,
            subtask,
            slots: registry.slots(subtask),
            open: None,
            pending: Vec::new(),
            registry,
            markers: HashMap::new(),
            ready: None,
        };
        // A subtask new to the registry takes its first slots over.
        let fresh = !writer.registry.knows(subtask);
        writer.prepare_slots(if fresh { FENCE_AHEAD } else { 1 });
        Ok(writer)
    }

    /// Starts making the producers of `n` new slots ready, unless an idle
    /// one is there or some are being made ready.
    fn prepare_slots(&mut self, n: u32) {
        if self.ready.is_some() || self.registry.has_idle(self.subtask) {
            return;
        }
        let (spec, subtask, first) = (self.spec.clone(), self.subtask, self.slots);
        self.slots = first.saturating_add(n);
        let slots = first..self.slots;
        let handle = std::thread::spawn(move || txn_producers(&spec, subtask, slots));
        self.ready = Some((first, handle));
    }

    /// Waits for the producers being made ready, and makes them idle.
    fn take_ready(&mut self) -> Result<(), SinkError> {
        let Some((first, ready)) = self.ready.take() else {
            return Ok(());
        };
        let senders = ready
            .join()
            .unwrap_or_else(|_| Err(err("making a producer ready panicked")))?;
        self.registry.add_idle_from(self.subtask, first, senders);
        Ok(())
    }

    /// The open transaction, opened if there is none.
    fn open(&mut self) -> Result<&mut OpenTxn, SinkError> {
        if self.open.is_none() {
            let started = std::time::Instant::now();
            if !self.registry.has_idle(self.subtask) {
                self.prepare_slots(1);
                self.take_ready()?;
            }
            let (slot, sender) = self
                .registry
                .take_idle(self.subtask)
                .ok_or_else(|| err("no producer ready"))?;
            sender.producer.begin_transaction().map_err(err)?;
            tracing::debug!(
                "kafka sink: subtask {} opened a transaction in slot {slot} in {:?}",
                self.subtask,
                started.elapsed()
            );
            self.open = Some(OpenTxn {
                sender,
                slot,
                token: fastrand::i64(1..i64::MAX),
                records: BatchBuilder::with_capacity(64 * 1024),
            });
        }
        self.open.as_mut().ok_or_else(|| err("no open transaction"))
    }
}

impl Drop for TxnWriter {
    /// Lets no producer outlive the writer: one made ready later would
    /// fence a producer of the next attempt. An open transaction is
    /// aborted.
    fn drop(&mut self) {
        if let Some((_, ready)) = self.ready.take() {
            let _ = ready.join();
        }
        if let Some(txn) = self.open.take() {
            let _ = txn
                .sender
                .producer
                .abort_transaction(std::time::Duration::from_secs(5));
        }
    }
}

impl SinkWriter for TxnWriter {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.registry.failure()?;
        let spec = self.spec.clone();
        let txn = self.open()?;
        txn.sender.send(&spec, &batch.data)?;
        txn.records.extend_encoded(&batch.data, batch.len);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        // The final snapshot pre-commits what is left.
        Ok(())
    }

    fn pre_commit(&mut self, id: u64) -> Result<Vec<Vec<u8>>, SinkError> {
        self.registry.failure()?;
        if let Some(mut txn) = self.open.take() {
            let marker = match self.markers.entry(txn.slot) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let [marker, _] = marker_groups(prefix(&self.spec)?, self.subtask, txn.slot);
                    e.insert(group_consumer(&self.spec, &marker)?)
                }
            };
            add_marker(&txn.sender, &self.spec, marker, txn.token)?;
            txn.sender.flush()?;
            let (records, elements) = txn.records.take();
            self.pending.push(PendingTxn {
                checkpoint: id,
                slot: txn.slot,
                token: txn.token,
                elements: elements as u64,
                records,
            });
            self.registry
                .wait(self.subtask, txn.slot, txn.token, txn.sender)?;
            // The next transaction's producer, unless one is idle by then.
            self.prepare_slots(1);
        }
        // Committed transactions need no copy any more.
        {
            let producers = self.registry.lock();
            self.pending.retain(|p| {
                producers
                    .waiting
                    .get(&(self.subtask, p.slot))
                    .is_some_and(|(token, _)| *token == p.token)
            });
        }
        let state = TxnSinkState {
            prefix: prefix(&self.spec)?.to_owned(),
            topic: self.spec.topic.clone(),
            subtask: self.subtask,
            slots: self.slots,
            pending: self.pending.clone(),
        };
        Ok(vec![state.encode()])
    }
}
