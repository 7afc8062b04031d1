//! The commit markers of the exactly-once Kafka sink: what tells, after
//! a failure, which of a checkpoint's transactions committed (see
//! `transactions` and `committer`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, DefaultConsumerContext};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

use super::producer::{Sender, block_timeout, err, sink_client_config};
use crate::kafka::DetachedConsumer;
use crate::sink::SinkError;
use crate::spec::KafkaSinkSpec;

/// A consumer of a marker group, which never joins the group; shared, so
/// that a commit can wait for the broker on a thread of its own.
pub(super) type GroupConsumer = Arc<MarkerConsumer>;

/// A marker group's consumer, and whether a commit of it still waits for
/// the broker (at most one does).
pub(super) struct MarkerConsumer {
    consumer: DetachedConsumer<DefaultConsumerContext>,
    committing: AtomicBool,
}

impl std::ops::Deref for MarkerConsumer {
    type Target = BaseConsumer;

    fn deref(&self) -> &BaseConsumer {
        &self.consumer
    }
}

impl std::fmt::Debug for MarkerConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkerConsumer").finish_non_exhaustive()
    }
}

/// The sink's transactional-id prefix.
pub(super) fn prefix(spec: &KafkaSinkSpec) -> Result<&str, SinkError> {
    spec.transactional_id_prefix
        .as_deref()
        .ok_or_else(|| err("exactly-once needs `transactional-id-prefix`"))
}

/// The consumer groups whose offsets on partition 0 of the topic mark the
/// transactions of slot `slot` of subtask `subtask` as committed: the
/// first is committed within each transaction (the commit marker), the
/// second directly once the transaction committed (its record).
///
/// The record exists for brokers that do not apply a transaction's
/// offsets faithfully: tansu defers them while another transaction
/// writes to the same partitions, loses them when the same producer's next
/// transaction is aborted, and may apply an older transaction's deferred
/// offsets after a newer one's. A transaction committed if either group
/// holds its token; on Kafka the marker alone is exact.
pub(super) fn marker_groups(prefix: &str, subtask: u32, slot: u32) -> [String; 2] {
    let marker = format!("{prefix}-{subtask}-{slot}");
    let record = format!("{marker}.committed");
    [marker, record]
}

/// Consumers of the two marker groups of slot `slot` of subtask
/// `subtask` (see [`marker_groups`]): they read the tokens, the first gives
/// the group metadata a transaction commits its marker with, and the
/// second commits the record.
pub(super) fn marker_consumers(
    spec: &KafkaSinkSpec,
    subtask: u32,
    slot: u32,
) -> Result<[GroupConsumer; 2], SinkError> {
    let [marker, record] = marker_groups(prefix(spec)?, subtask, slot);
    Ok([
        group_consumer(spec, &marker)?,
        group_consumer(spec, &record)?,
    ])
}

/// A consumer of group `group` that never joins it.
pub(super) fn group_consumer(
    spec: &KafkaSinkSpec,
    group: &str,
) -> Result<GroupConsumer, SinkError> {
    sink_client_config(
        spec,
        &[("group.id", group), ("enable.auto.commit", "false")],
    )
    .create()
    .map(|consumer| {
        Arc::new(MarkerConsumer {
            consumer: DetachedConsumer::new(consumer),
            committing: AtomicBool::new(false),
        })
    })
    .map_err(err)
}

/// `token` as the offset of partition 0 of the sink's topic: what a
/// marker or a record holds.
fn token_offset(spec: &KafkaSinkSpec, token: i64) -> Result<TopicPartitionList, SinkError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&spec.topic, 0, Offset::Offset(token))
        .map_err(err)?;
    Ok(tpl)
}

/// Writes the commit marker `token` into `sender`'s open transaction.
pub(super) fn add_marker(
    sender: &Sender,
    spec: &KafkaSinkSpec,
    consumer: &GroupConsumer,
    token: i64,
) -> Result<(), SinkError> {
    let tpl = token_offset(spec, token)?;
    let group = consumer
        .group_metadata()
        .ok_or_else(|| err("no consumer group metadata for the commit marker"))?;
    sender
        .producer
        .send_offsets_to_transaction(&tpl, &group, sender.block)
        .map_err(|e| err(format!("cannot add the commit marker: {e}")))
}

/// The token in the commit marker `consumer`'s group holds (`None`: none).
pub(super) fn read_marker(
    spec: &KafkaSinkSpec,
    consumer: &GroupConsumer,
) -> Result<Option<i64>, SinkError> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(&spec.topic, 0);
    let unreadable = |e: &dyn std::fmt::Display| err(format!("cannot read a commit marker: {e}"));
    let found = consumer
        .committed_offsets(tpl, block_timeout(spec))
        .map_err(|e| unreadable(&e))?;
    let Some(marker) = found.elements().into_iter().next() else {
        return Ok(None);
    };
    if let Err(e) = marker.error() {
        return Err(unreadable(&e));
    }
    Ok(match marker.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    })
}

/// Records that the transaction with `token` committed: commits `token`
/// to the record group of `consumer` (see [`marker_groups`]), waiting for
/// the broker no longer than `max.block.ms`.
///
/// librdkafka's synchronous commit waits without end for a group
/// coordinator that does not answer (and rdkafka does not report the
/// outcome of an asynchronous one), so it runs on a thread of its own: on
/// a timeout the checkpoint coordinator goes on, and the thread ends when
/// librdkafka answers, which may be only once the broker is back. Until
/// then no other commit of the same consumer starts (it fails at once),
/// so at most one such thread waits per marker group.
pub(super) fn record_commit(
    spec: &KafkaSinkSpec,
    consumer: &GroupConsumer,
    token: i64,
) -> Result<(), SinkError> {
    let failed = |e: &dyn std::fmt::Display| err(format!("cannot record a commit: {e}"));
    let offsets = token_offset(spec, token)?;
    if consumer.committing.swap(true, Ordering::SeqCst) {
        return Err(failed(&"an earlier one still waits for the broker"));
    }
    let waiting = Arc::clone(consumer);
    let (done, outcome) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("weir-kafka-commit".into())
        .spawn(move || {
            let result = waiting.consumer.commit(&offsets, CommitMode::Sync);
            waiting.committing.store(false, Ordering::SeqCst);
            let _ = done.send(result);
        });
    if let Err(e) = spawned {
        consumer.committing.store(false, Ordering::SeqCst);
        return Err(failed(&e));
    }
    let block = block_timeout(spec);
    match outcome.recv_timeout(block) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(failed(&e)),
        Err(_) => Err(failed(&format!(
            "the broker did not answer within {} ms (max.block.ms)",
            block.as_millis()
        ))),
    }
}
