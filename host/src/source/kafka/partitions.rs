//! The partitions of a Kafka source: which subtask owns each, what a
//! checkpoint keeps of each (a versioned operator-state item), and what a
//! subtask tracks of each while it reads.

use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use serde::{Deserialize, Serialize};

use crate::source::SourceError;

/// An error of the checkpointed offsets.
fn offsets_error(e: impl std::fmt::Display) -> SourceError {
    SourceError(format!("kafka source: {e}"))
}

/// The version of a partition's offset in a checkpoint.
pub const OFFSET_STATE_VERSION: u32 = 1;

/// What a checkpoint keeps of one partition: one operator-state item each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffset {
    /// [`OFFSET_STATE_VERSION`].
    pub v: u32,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The next offset to read; `None` when nothing was read yet (the
    /// partition starts at its earliest offset).
    pub next: Option<i64>,
    /// Where a bounded source stops in it (exclusive), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<i64>,
}

/// The subtask of `parallelism` that reads `partition` of `topic`: the
/// partitions of a topic go round robin over the subtasks, from a subtask
/// that depends on the topic's name (as Flink's enumerator does), so a
/// rescale re-assigns them without coordination.
pub fn owner(topic: &str, partition: i32, parallelism: u32) -> u32 {
    let p = u64::from(parallelism.max(1));
    let start = xxhash_rust::xxh3::xxh3_64(topic.as_bytes()) % p;
    ((start + u64::from(partition.unsigned_abs())) % p) as u32
}

/// The first offset and the end (high watermark) of a partition as the
/// last fetch reported them, without asking the broker (`None` before the
/// first fetch). A ListOffsets request would be another round trip, and
/// some brokers answer it wrongly for the end; the fetch's high watermark
/// is what the consumer reads to.
#[expect(
    unsafe_code,
    reason = "rdkafka has no safe wrapper for rd_kafka_get_watermark_offsets"
)]
pub(super) fn cached_watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: rdkafka has no safe wrapper for
    // rd_kafka_get_watermark_offsets. The client pointer is valid while
    // `consumer` lives (borrowed here), `topic` is a NUL-terminated string
    // that outlives the call, and `low`/`high` are valid for writes; the
    // function only reads the client's cached values.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        && low >= 0
        && high >= 0)
        .then_some((low, high))
}

/// One owned partition while the source reads it.
#[derive(Debug)]
pub(super) struct Partition {
    /// The next offset to read (`None`: its earliest).
    pub(super) next: Option<i64>,
    /// Where it stops (exclusive), once known.
    pub(super) stop: Option<i64>,
    /// The first offset it holds, as the last fetch reported.
    pub(super) low: Option<i64>,
    /// The largest timestamp read from it.
    pub(super) max_timestamp: Option<i64>,
    /// When it last gave a record (or was assigned).
    pub(super) last_record: Instant,
    /// Fetching from it was paused (it is done).
    pub(super) paused: bool,
}

impl Partition {
    pub(super) fn new(next: Option<i64>, stop: Option<i64>) -> Self {
        Partition {
            next,
            stop,
            low: None,
            max_timestamp: None,
            last_record: Instant::now(),
            paused: false,
        }
    }

    /// Whether it reached its stopping offset.
    pub(super) fn done(&self) -> bool {
        let Some(stop) = self.stop else {
            return false;
        };
        // Offsets below the first one the partition holds are gone.
        let reached = match (self.next, self.low) {
            (Some(next), Some(low)) => next.max(low),
            (Some(next), None) => next,
            (None, Some(low)) => low,
            (None, None) => 0,
        };
        reached >= stop
    }
}

/// Parses the offsets a checkpoint kept (every old subtask's items).
pub fn parse_offsets(states: &[Vec<Vec<u8>>]) -> Result<Vec<PartitionOffset>, SourceError> {
    let mut out = Vec::new();
    for item in states.iter().flatten() {
        let o: PartitionOffset = serde_json::from_slice(item)
            .map_err(|e| offsets_error(format!("unreadable checkpointed offset: {e}")))?;
        if o.v != OFFSET_STATE_VERSION {
            return Err(offsets_error(format!(
                "checkpointed offset format {} is not one this weir reads (it reads {OFFSET_STATE_VERSION})",
                o.v
            )));
        }
        out.push(o);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_go_round_robin_from_a_start_of_the_topics() {
        for p in [1u32, 2, 3, 7] {
            let owners: Vec<u32> = (0..8).map(|i| owner("orders", i, p)).collect();
            for w in owners.windows(2) {
                assert_eq!(w[1], (w[0] + 1) % p, "{owners:?}");
            }
        }
    }

    #[test]
    fn reads_the_checked_in_offset_format() {
        let fixture = include_str!("../../../tests/fixtures/kafka-offsets-v1.json");
        let items: Vec<serde_json::Value> = serde_json::from_str(fixture).expect("json");
        let states = vec![
            items
                .iter()
                .map(|i| serde_json::to_vec(i).expect("item"))
                .collect::<Vec<_>>(),
        ];
        let offsets = parse_offsets(&states).expect("v1");
        assert_eq!(
            offsets,
            vec![
                PartitionOffset {
                    v: 1,
                    topic: "orders".into(),
                    partition: 0,
                    next: Some(1234),
                    stop: Some(5000),
                },
                PartitionOffset {
                    v: 1,
                    topic: "orders".into(),
                    partition: 3,
                    next: None,
                    stop: None,
                },
            ]
        );
        let newer = vec![vec![
            br#"{"v":2,"topic":"t","partition":0,"next":1}"#.to_vec(),
        ]];
        let e = parse_offsets(&newer).expect_err("v2");
        assert!(e.0.contains("format 2"), "{e}");
    }

    #[test]
    fn a_partition_is_done_at_its_stopping_offset() {
        let mut p = Partition::new(Some(10), Some(10));
        assert!(p.done());
        p.next = Some(9);
        assert!(!p.done());
        let mut empty = Partition::new(None, Some(0));
        assert!(empty.done());
        empty.stop = Some(5);
        empty.low = Some(5);
        assert!(empty.done(), "every record before the stop was deleted");
        assert!(!Partition::new(None, None).done(), "no stop: never done");
        let mut behind = Partition::new(Some(3), Some(10));
        behind.low = Some(10);
        assert!(behind.done(), "restored behind records retention deleted");
    }
}
