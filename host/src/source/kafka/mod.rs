//! The Kafka source: a subtask reads the partitions it owns (assigned, not
//! subscribed, so a rescale re-assigns them deterministically), keeps the
//! next offset of each as operator state in the checkpoint (the source of
//! truth on restore, as in Flink), and makes each record an element: its
//! key, its value (with `headers: true`, the record envelope of its
//! headers and value), and its Kafka timestamp as event time.
//!
//! The watermark is per partition: the source reports the smallest of its
//! partitions' largest timestamps, leaving out partitions that are done or
//! that have had no record for `idle-timeout`, so an empty partition does
//! not hold the watermark back. A bounded source (`stopping-offsets`) ends
//! once every partition it owns reached its stopping offset.
//!
//! `stopping-offsets: latest` is the end of each partition as the first
//! fetch reports it (the fetch's high watermark, not a ListOffsets
//! request), and is kept in the checkpoint, so a restored bounded job
//! stops where the first attempt would have.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use weir_wire::{HeaderRef, write_envelope};

mod partitions;
mod stats;

pub use partitions::{OFFSET_STATE_VERSION, PartitionOffset, owner, parse_offsets};
use partitions::{Partition, cached_watermarks};
use stats::ConsumerStats;

use super::{BatchInfo, BatchLimit, SourceError, SourceOutput, SourceReader};
use crate::kafka::{
    DetachedConsumer, METADATA_TIMEOUT, client_config, matching_topics, partitions,
};
use crate::spec::{
    CONSUMER_BUFFER_KIB, KafkaSourceSpec, StartingOffsets, StoppingOffsets, topic_regex,
};

/// Checkpoints whose offsets wait for their completion, at most.
const MAX_UNCOMMITTED: usize = 16;

/// How long a call waits for the first record of a batch.
const POLL: Duration = Duration::from_millis(20);

/// One subtask's reader of a Kafka source.
pub struct KafkaSource {
    consumer: DetachedConsumer<ConsumerStats>,
    /// The consumer's figures, from its statistics.
    stats: ConsumerStats,
    config: ClientConfig,
    spec: KafkaSourceSpec,
    subtask: u32,
    parallelism: u32,
    /// Owned partitions, by topic and partition.
    parts: BTreeMap<String, BTreeMap<i32, Partition>>,
    idle_timeout: Option<Duration>,
    /// The offsets of the checkpoints taken and not yet complete, oldest
    /// first: committed to the group when their checkpoint completes.
    taken: std::collections::VecDeque<(u64, TopicPartitionList)>,
    /// When to look for new partitions next (unbounded sources only).
    next_discovery: Option<Instant>,
    discovery_interval: Duration,
    /// The envelope of the record being read (`headers: true`), reused.
    envelope: Vec<u8>,
}

impl std::fmt::Debug for KafkaSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSource")
            .field("topics", &self.spec.topics())
            .field("subtask", &self.subtask)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> SourceError {
    SourceError(format!("kafka source: {e}"))
}

/// Writes the record envelope of `message` (its headers and value) into
/// `out`, cleared first. rdkafka panics on a header name that is not
/// UTF-8 (Kafka requires UTF-8): such a record fails the source, naming
/// it, rather than the thread.
fn envelope_of(message: &BorrowedMessage<'_>, out: &mut Vec<u8>) -> Result<(), SourceError> {
    out.clear();
    let write = std::panic::AssertUnwindSafe(|| {
        let headers = message.headers().into_iter().flat_map(|h| h.iter());
        let headers = headers.map(|h| HeaderRef {
            name: h.key,
            value: h.value,
        });
        write_envelope(out, headers, message.payload());
    });
    std::panic::catch_unwind(write).map_err(|_| {
        err(format!(
            "the record at offset {} of {}-{} has a header whose name is not UTF-8",
            message.offset(),
            message.topic(),
            message.partition()
        ))
    })
}

/// Checks that every topic source `spec` reads exists. A broker that does
/// not answer is no error here: the readers then fail and the job
/// restarts.
pub fn check_topics(spec: &KafkaSourceSpec) -> Result<(), SourceError> {
    let config = client_config(&spec.bootstrap_servers, &spec.properties, &[]);
    // A pattern may match nothing yet: its topics are looked for again.
    for topic in spec.topics() {
        let found = partitions(&config, &topic).unwrap_or_else(|e| {
            tracing::warn!("kafka source: {e}");
            Some(Vec::new())
        });
        if found.is_none() {
            return Err(SourceError(format!(
                "topic `{topic}` does not exist on {}",
                spec.bootstrap_servers
            )));
        }
    }
    Ok(())
}

impl KafkaSource {
    /// Subtask `subtask` of `parallelism` of source `spec`, continuing
    /// from the offsets in `restored` (every old subtask's), if any;
    /// `idle_timeout` is the source's `idle-timeout`.
    pub fn open(
        spec: &KafkaSourceSpec,
        (subtask, parallelism): (u32, u32),
        idle_timeout: Option<Duration>,
        restored: Option<&[Vec<Vec<u8>>]>,
    ) -> Result<Self, SourceError> {
        let level = spec
            .isolation_level
            .as_deref()
            .unwrap_or("read_uncommitted");
        let buffer = CONSUMER_BUFFER_KIB.to_string();
        let mut extra = vec![
            ("queued.max.messages.kbytes", buffer.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("isolation.level", level),
            ("statistics.interval.ms", "1000"),
        ];
        // librdkafka's consumer needs a group even for assigned
        // partitions; without `group-id` it joins none and commits nothing.
        extra.push(("group.id", spec.group_id.as_deref().unwrap_or("weir")));
        let config = client_config(&spec.bootstrap_servers, &spec.properties, &extra);
        let stats = ConsumerStats::default();
        // Detached at once: an error below drops it without waiting.
        let consumer = DetachedConsumer::new(
            config
                .create_with_context::<_, BaseConsumer<ConsumerStats>>(stats.clone())
                .map_err(err)?,
        );
        // A checkpoint without this source's state (a source added since)
        // is no restore for it: `starting-offsets` applies.
        let restored = restored
            .map(parse_offsets)
            .transpose()?
            .filter(|r| !r.is_empty());
        let mut source = KafkaSource {
            consumer,
            stats,
            config,
            spec: spec.clone(),
            subtask,
            parallelism,
            parts: BTreeMap::new(),
            idle_timeout,
            taken: std::collections::VecDeque::new(),
            next_discovery: None,
            discovery_interval: Duration::from_millis(
                spec.partition_discovery_interval_ms.unwrap_or(300_000),
            ),
            envelope: Vec::new(),
        };
        let mut tpl = TopicPartitionList::new();
        for topic in source.topics()? {
            source.assign_topic(&topic, restored.as_deref(), &mut tpl)?;
        }
        source.consumer.assign(&tpl).map_err(err)?;
        if spec.stopping_offsets.is_none() && source.discovery_interval > Duration::ZERO {
            source.next_discovery = Some(Instant::now() + source.discovery_interval);
        }
        Ok(source)
    }

    /// Adds the partitions of `topic` this subtask owns to `tpl`, each at
    /// its offset in `restored` (a restored checkpoint's), else at its
    /// earliest (a partition the checkpoint does not know is new, as in
    /// Flink), else (no checkpoint) where `starting-offsets` says.
    fn assign_topic(
        &mut self,
        topic: &str,
        restored: Option<&[PartitionOffset]>,
        tpl: &mut TopicPartitionList,
    ) -> Result<(), SourceError> {
        let ids = partitions(&self.config, topic)
            .map_err(err)?
            .ok_or_else(|| {
                err(format!(
                    "topic `{topic}` does not exist on {}",
                    self.spec.bootstrap_servers
                ))
            })?;
        let owned: Vec<i32> = ids.into_iter().filter(|id| self.owns(topic, *id)).collect();
        for id in owned {
            let kept =
                restored.and_then(|r| r.iter().find(|o| o.topic == topic && o.partition == id));
            // A restored stop counts only while the source is bounded.
            let bounded = self.bounded();
            let (next, stop) = match (kept, restored) {
                (Some(o), _) => (o.next, o.stop.filter(|_| bounded)),
                (None, Some(_)) => (None, None),
                (None, None) => (self.starting_offset(topic, id)?, None),
            };
            let stop = match (stop, self.spec.stopping_offsets) {
                (None, Some(StoppingOffsets::Timestamp(t))) => {
                    self.offset_for_time(topic, id, t)?
                }
                (stop, _) => stop,
            };
            let at = next.map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(topic, id, at).map_err(err)?;
            self.parts
                .entry(topic.to_owned())
                .or_default()
                .insert(id, Partition::new(next, stop));
        }
        Ok(())
    }

    fn owns(&self, topic: &str, partition: i32) -> bool {
        owner(topic, partition, self.parallelism) == self.subtask
    }

    /// Where a partition starts that no checkpoint knows: `None` for its
    /// earliest offset, else the offset the starting rule names.
    fn starting_offset(&self, topic: &str, id: i32) -> Result<Option<i64>, SourceError> {
        Ok(match self.spec.starting_offsets {
            StartingOffsets::Earliest => None,
            StartingOffsets::Latest => {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(topic, id, METADATA_TIMEOUT)
                    .map_err(err)?;
                Some(high)
            }
            StartingOffsets::Committed => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(topic, id);
                let committed = self
                    .consumer
                    .committed_offsets(tpl, METADATA_TIMEOUT)
                    .map_err(err)?;
                committed
                    .find_partition(topic, id)
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0)
            }
            StartingOffsets::Timestamp(t) => self.offset_for_time(topic, id, t)?,
        })
    }

    /// The first offset of a record with a timestamp of at least `t` ms;
    /// the end of the partition if there is none (yet), as in Flink.
    fn offset_for_time(&self, topic: &str, id: i32, t: i64) -> Result<Option<i64>, SourceError> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, id, Offset::Offset(t))
            .map_err(err)?;
        let found = self
            .consumer
            .offsets_for_times(tpl, METADATA_TIMEOUT)
            .map_err(err)?;
        let at = found
            .find_partition(topic, id)
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0);
        match at {
            Some(o) => Ok(Some(o)),
            None => {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(topic, id, METADATA_TIMEOUT)
                    .map_err(err)?;
                Ok(Some(high))
            }
        }
    }

    /// The topics read: those named, or those `topic-pattern` matches now.
    fn topics(&self) -> Result<Vec<String>, SourceError> {
        match &self.spec.topic_pattern {
            None => Ok(self.spec.topics()),
            Some(p) => {
                let pattern = topic_regex(p).map_err(err)?;
                matching_topics(&self.config, &pattern).map_err(err)
            }
        }
    }

    /// Looks for partitions added to the topics since the last look, and
    /// reads those this subtask owns from their earliest offset.
    fn discover(&mut self) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for topic in self.topics()? {
            let ids = partitions(&self.config, &topic)
                .map_err(err)?
                .unwrap_or_default();
            for id in ids {
                let known = self.parts.get(&topic).is_some_and(|p| p.contains_key(&id));
                if !known && self.owns(&topic, id) {
                    tracing::info!("kafka source: reading new partition {topic}-{id}");
                    tpl.add_partition_offset(&topic, id, Offset::Beginning)
                        .map_err(err)?;
                    self.parts
                        .entry(topic.clone())
                        .or_default()
                        .insert(id, Partition::new(None, None));
                }
            }
        }
        if tpl.count() > 0 {
            self.consumer.incremental_assign(&tpl).map_err(err)?;
        }
        Ok(())
    }

    /// Learns each partition's first offset and, for `stopping-offsets:
    /// latest`, its end, from what the fetches reported.
    fn learn_bounds(&mut self) {
        let latest = self.spec.stopping_offsets == Some(StoppingOffsets::Latest);
        for (topic, parts) in &mut self.parts {
            for (id, p) in parts.iter_mut() {
                if p.low.is_some() && (p.stop.is_some() || !latest) {
                    continue;
                }
                if let Some((low, high)) = cached_watermarks(&self.consumer, topic, *id) {
                    p.low = Some(low);
                    if latest && p.stop.is_none() {
                        tracing::info!(
                            "kafka source: {topic}-{id} is read up to offset {high} (its end now; offsets {low}..)"
                        );
                        p.stop = Some(high);
                    }
                }
            }
        }
    }

    /// The smallest of the partitions' largest timestamps, leaving out
    /// partitions that are done or idle; `None` while one that counts has
    /// no timestamp yet.
    fn watermark_timestamp(&self) -> Option<i64> {
        let now = Instant::now();
        let mut least: Option<i64> = None;
        for (topic, parts) in &self.parts {
            for (id, p) in parts {
                // Idle only once it has nothing more to give: a partition
                // whose records wait (backpressure, a rate) is not idle.
                let caught_up = || {
                    cached_watermarks(&self.consumer, topic, *id)
                        .is_none_or(|(low, high)| p.next.unwrap_or(low) >= high)
                };
                let idle = self
                    .idle_timeout
                    .is_some_and(|t| now.duration_since(p.last_record) >= t)
                    && caught_up();
                if p.done() || idle {
                    continue;
                }
                let ts = p.max_timestamp?;
                least = Some(least.map_or(ts, |l| l.min(ts)));
            }
        }
        least
    }

    /// Moves each partition's next offset up to the consumer's position
    /// (within its stop): past offsets that hold no record to deliver
    /// (transaction markers, compacted or aborted records), which would
    /// otherwise keep a bounded source from reaching its stop.
    fn advance_to_positions(&mut self) {
        let Ok(positions) = self.consumer.position() else {
            return;
        };
        for e in positions.elements() {
            let Some(pos) = e.offset().to_raw().filter(|o| *o >= 0) else {
                continue;
            };
            if let Some(p) = self
                .parts
                .get_mut(e.topic())
                .and_then(|t| t.get_mut(&e.partition()))
                && let Some(stop) = p.stop
            {
                let reached = pos.min(stop);
                p.next = Some(p.next.map_or(reached, |n| n.max(reached)));
            }
        }
    }

    /// Stops fetching from the partitions that are done.
    fn pause_done(&mut self) -> Result<(), SourceError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, parts) in &mut self.parts {
            for (id, p) in parts.iter_mut() {
                if !p.paused && p.done() {
                    tpl.add_partition(topic, *id);
                    p.paused = true;
                }
            }
        }
        if tpl.count() > 0 {
            self.consumer.pause(&tpl).map_err(err)?;
        }
        Ok(())
    }

    fn bounded(&self) -> bool {
        self.spec.stopping_offsets.is_some()
    }

    fn all_done(&self) -> bool {
        self.parts
            .values()
            .flat_map(BTreeMap::values)
            .all(Partition::done)
    }
}

impl SourceReader for KafkaSource {
    fn metrics(&self) -> crate::metrics::NamedMetrics {
        self.stats.figures().metrics()
    }

    fn next_batch(
        &mut self,
        out: &mut dyn SourceOutput,
        limit: BatchLimit,
    ) -> Result<BatchInfo, SourceError> {
        if self.next_discovery.is_some_and(|t| Instant::now() >= t) {
            // A failed look is tried again at the next interval.
            if let Err(e) = self.discover() {
                tracing::warn!("{e}");
            }
            self.next_discovery = Some(Instant::now() + self.discovery_interval);
        }
        if self.bounded() && self.all_done() {
            return Ok(BatchInfo {
                more: false,
                max_timestamp: None,
            });
        }
        let mut n = 0;
        while n < limit.records && out.byte_len() < limit.bytes {
            let wait = if n == 0 { POLL } else { Duration::ZERO };
            let message = match self.consumer.poll(wait) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(_))) => continue,
                // A broker that went away is the client's to reconnect
                // to; only what it gives up on fails the source.
                Some(Err(KafkaError::MessageConsumption(e))) => {
                    tracing::warn!("kafka source: {e}");
                    break;
                }
                Some(Err(e)) => return Err(err(e)),
                Some(Ok(m)) => m,
            };
            let Some(p) = self
                .parts
                .get_mut(message.topic())
                .and_then(|t| t.get_mut(&message.partition()))
            else {
                continue;
            };
            let offset = message.offset();
            if let Some(stop) = p.stop.filter(|stop| offset >= *stop) {
                p.next = Some(p.next.map_or(stop, |n| n.max(stop)));
                continue;
            }
            let timestamp = message.timestamp().to_millis();
            if self.spec.headers {
                envelope_of(&message, &mut self.envelope)?;
                out.push(message.key(), &self.envelope, timestamp);
            } else {
                out.push(
                    message.key(),
                    message.payload().unwrap_or_default(),
                    timestamp,
                );
            }
            p.next = Some(offset + 1);
            p.last_record = Instant::now();
            if let Some(ts) = timestamp {
                p.max_timestamp = Some(p.max_timestamp.map_or(ts, |m| m.max(ts)));
            }
            n += 1;
        }
        if self.bounded() {
            self.learn_bounds();
            self.advance_to_positions();
            self.pause_done()?;
        }
        if self.parts.is_empty() && !self.bounded() {
            // Nothing to read here (more subtasks than partitions): idle.
            std::thread::sleep(POLL);
        }
        Ok(BatchInfo {
            more: !(self.bounded() && self.all_done()),
            max_timestamp: self.watermark_timestamp(),
        })
    }

    fn snapshot_position(&self) -> Vec<Vec<u8>> {
        self.parts
            .iter()
            .flat_map(|(topic, parts)| {
                parts.iter().map(move |(id, p)| PartitionOffset {
                    v: OFFSET_STATE_VERSION,
                    topic: topic.clone(),
                    partition: *id,
                    next: p.next,
                    stop: p.stop,
                })
            })
            .filter_map(|o| serde_json::to_vec(&o).ok())
            .collect()
    }

    fn snapshot_taken(&mut self, id: u64) {
        if self.spec.group_id.is_none() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, parts) in &self.parts {
            for (partition, p) in parts {
                if let Some(next) = p.next {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(next));
                }
            }
        }
        self.taken.push_back((id, tpl));
        // Checkpoints that never complete leave nothing behind for long.
        while self.taken.len() > MAX_UNCOMMITTED {
            self.taken.pop_front();
        }
    }

    /// Commits the offsets of checkpoint `id` (the newest taken up to it)
    /// to the group, for monitoring only, as Flink does: a restore reads
    /// its offsets from the checkpoint, and a failed commit changes
    /// nothing but what the group shows.
    fn notify_checkpoint_complete(&mut self, id: u64) {
        let mut newest = None;
        while self.taken.front().is_some_and(|(t, _)| *t <= id) {
            newest = self.taken.pop_front();
        }
        if let Some((_, tpl)) = newest
            && tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!("kafka source: cannot commit the offsets of checkpoint {id}: {e}");
        }
    }
}
