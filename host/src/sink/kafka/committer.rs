//! The exactly-once Kafka sink's two-phase-commit side: commits the
//! transactions of completed checkpoints, and brings the topic back to what
//! a restored checkpoint saw.
//!
//! librdkafka cannot resume a transaction another producer began, so a
//! restored job cannot commit the transactions its checkpoint had
//! pre-committed, as Flink's Java client does by resuming them. Instead,
//! recovery takes three steps, each for every restored subtask before the
//! next step starts:
//! 1. it opens the transactional id of every producer slot the subtask
//!    had, and [`FENCE_AHEAD`] more: this fences the producers that held
//!    them (a zombie's late commit then fails) and aborts the transactions
//!    they left open;
//! 2. it reads the commit marker of each pre-committed transaction's slot:
//!    the token of the last transaction of the slot that committed. Only
//!    now, with none of the sink's transactions open: a broker may hide
//!    offsets that an open transaction could still change (tansu hides
//!    every group's offsets on the partitions an open transaction writes);
//! 3. it writes the records of every transaction whose token is not its
//!    slot's marker again, from the checkpoint's copy, in a new transaction
//!    under the same id with the same marker, and commits it; a subtask's
//!    transactions one after the other, oldest first, so each key's
//!    records keep their order.
//!
//! Restoring the latest completed checkpoint thus commits each record
//! once. Since step 2 needs every producer of the sink fenced, a job with
//! an exactly-once Kafka sink fails over as a whole, never by region.

use std::sync::Arc;

use rdkafka::producer::{BaseRecord, Producer};

use super::markers::{GroupConsumer, add_marker, marker_consumers, read_marker, record_commit};
use super::producer::{Sender, err, producer_config};
use super::state::{PendingTxn, TxnSinkState, decode_all};
use super::transactions::{FENCE_AHEAD, Registry, TxnWriter, in_parallel, txn_producers};
use crate::sink::{Copies, SinkError, SinkWriter, TransactionalSink};
use crate::spec::KafkaSinkSpec;

/// How long a recovery reads a commit marker again before it takes the
/// transaction for lost (see `KafkaTxnSink::lost`).
const MARKER_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// The two-phase-commit side of an exactly-once Kafka sink node, for one
/// attempt.
#[derive(Debug)]
pub struct KafkaTxnSink {
    spec: Arc<KafkaSinkSpec>,
    registry: Arc<Registry>,
}

impl KafkaTxnSink {
    /// The sink of `spec`.
    pub fn new(spec: &KafkaSinkSpec) -> Self {
        KafkaTxnSink {
            spec: Arc::new(spec.clone()),
            registry: Arc::new(Registry::default()),
        }
    }

    /// Whether the transaction with `token` of slot `slot` of subtask
    /// `subtask` committed: its marker or its record holds its token.
    fn committed(&self, consumers: &[GroupConsumer; 2], token: i64) -> Result<bool, SinkError> {
        for consumer in consumers {
            if read_marker(&self.spec, consumer)? == Some(token) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Step 2 for one subtask's state: its pre-committed transactions
    /// whose marker and record do not hold their token (their places in its
    /// list), each with consumers of its slot's marker groups; with
    /// `settle`, each is read again for up to [`MARKER_SETTLE`] first.
    fn lost(
        &self,
        state: &TxnSinkState,
        settle: bool,
    ) -> Result<Vec<(usize, [GroupConsumer; 2])>, SinkError> {
        let mut lost = Vec::new();
        for (i, p) in state.pending.iter().enumerate() {
            let deadline = std::time::Instant::now() + MARKER_SETTLE;
            let consumers = marker_consumers(&self.spec, state.subtask, p.slot)?;
            let mut committed = self.committed(&consumers, p.token)?;
            while settle && !committed && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(100));
                committed = self.committed(&consumers, p.token)?;
            }
            tracing::debug!(
                "kafka sink: subtask {} slot {}: checkpoint {}'s transaction committed: {committed}",
                state.subtask,
                p.slot,
                p.checkpoint
            );
            if !committed {
                lost.push((i, consumers));
            }
        }
        Ok(lost)
    }

    /// Has the broker settle the transactions the fencing left behind,
    /// when some transaction seems lost: a transaction that writes a
    /// record to every partition and aborts. (A transaction whose commit
    /// the broker took just before the crash may not show its marker
    /// yet: tansu applies a transaction's offsets only at the end of a
    /// transaction on its partitions while none is open there. On Kafka
    /// the aborted records are all this costs; `read_committed` consumers
    /// never see them.)
    fn settle(&self, sender: &Sender) -> Result<(), SinkError> {
        let config = producer_config(&self.spec, &[]);
        let partitions = crate::kafka::partitions(&config, &self.spec.topic)
            .map_err(err)?
            .unwrap_or_default();
        sender.producer.begin_transaction().map_err(err)?;
        for partition in partitions {
            let record = BaseRecord::<[u8], [u8]>::to(&self.spec.topic)
                .payload(&[])
                .partition(partition);
            sender.producer.send(record).map_err(|(e, _)| err(e))?;
        }
        sender.flush()?;
        sender.producer.abort_transaction(sender.block).map_err(err)
    }

    /// Step 3 for one subtask's state: writes its `lost` transactions
    /// again, oldest first, each on its slot's producer of `senders`.
    fn write_again(
        &self,
        state: &TxnSinkState,
        senders: &[Sender],
        lost: &[(usize, [GroupConsumer; 2])],
    ) -> Result<(), SinkError> {
        let s = state.subtask;
        for (i, consumers) in lost {
            let (Some(p), Some(sender)) = (
                state.pending.get(*i),
                state
                    .pending
                    .get(*i)
                    .and_then(|p| senders.get(p.slot as usize)),
            ) else {
                return Err(err(format!(
                    "subtask {s}'s state names a slot it does not have"
                )));
            };
            tracing::warn!(
                "kafka sink: writing again the {} records of checkpoint {}'s transaction of subtask {s}, which the broker aborted",
                p.elements,
                p.checkpoint
            );
            write_transaction(&self.spec, sender, consumers, p)?;
        }
        Ok(())
    }

    /// Recovers the states of `restored` (see the module's steps).
    fn recover_states(&self, restored: Option<&[Vec<u8>]>) -> Result<u64, SinkError> {
        let Some(restored) = restored else {
            return Ok(0);
        };
        let started = std::time::Instant::now();
        let states = decode_all(restored).map_err(SinkError::Failed)?;
        let mut senders = in_parallel(&states, |state| {
            let slots = 0..state.slots.saturating_add(FENCE_AHEAD);
            txn_producers(&self.spec, state.subtask, slots)
        })?;
        let mut lost = in_parallel(&states, |state| self.lost(state, false))?;
        if let Some(sender) = senders.first().and_then(|s| s.first())
            && lost.iter().any(|l| !l.is_empty())
        {
            self.settle(sender)?;
            lost = in_parallel(&states, |state| self.lost(state, true))?;
        }
        let work: Vec<_> = states.iter().zip(&senders).zip(&lost).collect();
        in_parallel(&work, |((state, senders), lost)| {
            self.write_again(state, senders, lost)
        })?;
        tracing::debug!(
            "kafka sink: {} subtasks recovered in {:?}, {} transactions written again",
            states.len(),
            started.elapsed(),
            lost.iter().map(Vec::len).sum::<usize>()
        );
        // The slots the subtasks had serve the new writers of the same
        // subtasks; the ones fenced past them are let go.
        for (state, senders) in states.iter().zip(senders.iter_mut()) {
            let extra = senders.split_off(senders.len().min(state.slots as usize));
            std::thread::spawn(move || drop(extra));
            self.registry
                .add_idle_from(state.subtask, 0, std::mem::take(senders));
        }
        // Writers number nothing: their producers are slots.
        Ok(0)
    }
}

/// Writes the records of transaction `p` on `sender` in a transaction of
/// its own, with its commit marker, commits it and records the commit.
fn write_transaction(
    spec: &KafkaSinkSpec,
    sender: &Sender,
    [marker, record]: &[GroupConsumer; 2],
    p: &PendingTxn,
) -> Result<(), SinkError> {
    sender.producer.begin_transaction().map_err(err)?;
    sender.send(spec, &p.records)?;
    add_marker(sender, spec, marker, p.token)?;
    sender.flush()?;
    sender
        .producer
        .commit_transaction(sender.block)
        .map_err(|e| {
            err(format!(
                "cannot commit checkpoint {}'s transaction again: {e}",
                p.checkpoint
            ))
        })?;
    record_commit(spec, record, p.token)
}

impl TransactionalSink for KafkaTxnSink {
    fn recover(
        &self,
        restored: Option<&[Vec<u8>]>,
        _copies: Option<&Copies<'_>>,
    ) -> Result<u64, SinkError> {
        self.recover_states(restored)
    }

    fn begin(&self, subtask: u32, _first: u64) -> Result<Box<dyn SinkWriter>, SinkError> {
        Ok(Box::new(TxnWriter::new(
            self.spec.clone(),
            subtask,
            self.registry.clone(),
        )?))
    }

    fn commit(&self, states: &[Vec<u8>]) -> Result<(), SinkError> {
        for state in decode_all(states).map_err(SinkError::Failed)? {
            self.registry.commit(&self.spec, &state)?;
        }
        Ok(())
    }

    fn recover_subtask(
        &self,
        subtask: u32,
        _restored: Option<&[Vec<u8>]>,
    ) -> Result<u64, SinkError> {
        // Reading commit markers needs every producer of the sink fenced:
        // a job with this sink fails over as a whole (`needs_whole_failover`).
        Err(err(format!(
            "subtask {subtask} cannot fail over alone: an exactly-once Kafka sink fails over as a whole"
        )))
    }
}
