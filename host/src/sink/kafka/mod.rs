//! The Kafka sink: each element becomes a record of the topic (its key,
//! its value, its event time as the record's timestamp), partitioned by
//! key as Kafka's Java client does (murmur2).
//!
//! `none` and `at-least-once` write through one idempotent producer per
//! subtask ([`plain`]); `exactly-once` writes one transaction per subtask
//! per checkpoint, committed when the checkpoint completes
//! ([`transactions`], [`committer`]).
//!
//! A topic that does not exist fails the sink at start, naming it, unless
//! `create-topic` asks for it to be created.

mod committer;
mod markers;
mod plain;
mod producer;
mod state;
mod transactions;

use std::time::Duration;

pub use committer::KafkaTxnSink;
pub use plain::KafkaSink;
pub use producer::prepare_topic;
use state::decode_all;

use crate::config::CheckpointConfig;
use crate::spec::{ConfigValue, KafkaSinkSpec};
use transactions::DEFAULT_TRANSACTION_TIMEOUT_MS;

/// Checks that an exactly-once sink of `spec` can work under `checkpoint`:
/// checkpoints are on, and a transaction outlives the longest a checkpoint
/// can take to complete after it was opened (`transaction.timeout.ms` at
/// least the checkpoint interval plus the checkpoint timeout), since the
/// broker aborts a transaction older than its timeout.
pub fn check_exactly_once(
    spec: &KafkaSinkSpec,
    checkpoint: &CheckpointConfig,
) -> Result<(), String> {
    let Some(interval) = checkpoint.interval else {
        return Err(
            "delivery-guarantee: exactly-once commits with checkpoints: set execution.checkpointing.interval".into(),
        );
    };
    let timeout_ms = match spec.properties.get("transaction.timeout.ms") {
        None => DEFAULT_TRANSACTION_TIMEOUT_MS,
        Some(v) => parse_ms(v).ok_or_else(|| {
            format!("properties.transaction.timeout.ms: `{v}` is not a number of milliseconds")
        })?,
    };
    let needed = interval + checkpoint.timeout;
    if Duration::from_millis(timeout_ms) < needed {
        return Err(format!(
            "properties.transaction.timeout.ms is {timeout_ms} ms, shorter than the checkpoint interval plus the checkpoint timeout ({} ms + {} ms): the broker would abort transactions before their checkpoint completes",
            interval.as_millis(),
            checkpoint.timeout.as_millis()
        ));
    }
    Ok(())
}

/// Checks the states an exactly-once sink of `spec` left in a snapshot
/// before a job restores them: readable, and written with the same
/// transactional-id prefix and topic (their transactions and markers are
/// found by those).
pub fn check_states(spec: &KafkaSinkSpec, states: &[Vec<u8>]) -> Result<(), String> {
    for state in decode_all(states)? {
        let prefix = spec.transactional_id_prefix.as_deref().unwrap_or_default();
        if state.prefix != prefix || state.topic != spec.topic {
            return Err(format!(
                "the snapshot's Kafka sink wrote topic `{}` with transactional-id-prefix `{}`, and this sink writes `{}` with `{prefix}`: its uncommitted transactions could not be found (restore with the same topic and prefix)",
                state.topic, state.prefix, spec.topic
            ));
        }
    }
    Ok(())
}

fn parse_ms(v: &ConfigValue) -> Option<u64> {
    v.to_string().trim().parse().ok()
}

/// `max.block.ms` when the sink's properties do not set it: the Java
/// client's default.
const DEFAULT_MAX_BLOCK_MS: u64 = 60_000;

/// How long one of sink `spec`'s calls to the broker may wait (a flush, a
/// transaction's commit or abort, a full send queue): `max.block.ms` of
/// its properties, as the Java client's producer takes it (librdkafka
/// does not know the key, so Weir reads it and does not pass it on).
/// Flink's Kafka sink waits as long on a broker that is gone, then fails.
pub fn max_block(spec: &KafkaSinkSpec) -> Result<Duration, String> {
    match spec.properties.get(MAX_BLOCK_MS) {
        None => Ok(Duration::from_millis(DEFAULT_MAX_BLOCK_MS)),
        Some(v) => parse_ms(v)
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .ok_or_else(|| {
                format!("properties.{MAX_BLOCK_MS}: `{v}` is not a positive number of milliseconds")
            }),
    }
}

/// The producer property Weir reads itself: [`max_block`].
const MAX_BLOCK_MS: &str = "max.block.ms";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_block_ms_is_read_from_the_properties_and_checked() {
        assert_eq!(max_block(&spec("{}")), Ok(Duration::from_secs(60)));
        assert_eq!(
            max_block(&spec("{max.block.ms: 5000}")),
            Ok(Duration::from_secs(5))
        );
        for bad in ["{max.block.ms: 0}", "{max.block.ms: soon}"] {
            let e = max_block(&spec(bad)).expect_err(bad);
            assert!(e.contains("properties.max.block.ms"), "{e}");
        }
    }

    fn spec(properties: &str) -> KafkaSinkSpec {
        serde_yaml_ng::from_str(&format!(
            "{{bootstrap-servers: b:9092, topic: t, delivery-guarantee: exactly-once, transactional-id-prefix: p, properties: {properties}}}"
        ))
        .expect("yaml")
    }

    #[test]
    fn a_transaction_timeout_shorter_than_a_checkpoint_can_take_is_refused_naming_both() {
        let mut checkpoint = CheckpointConfig::default();
        let off = check_exactly_once(&spec("{}"), &checkpoint).expect_err("no checkpoints");
        assert!(off.contains("execution.checkpointing.interval"), "{off}");
        checkpoint.interval = Some(Duration::from_secs(60));
        checkpoint.timeout = Duration::from_secs(600);
        assert_eq!(check_exactly_once(&spec("{}"), &checkpoint), Ok(()));
        let short = spec("{transaction.timeout.ms: 60000}");
        let e = check_exactly_once(&short, &checkpoint).expect_err("too short");
        for part in ["transaction.timeout.ms is 60000 ms", "60000 ms + 600000 ms"] {
            assert!(e.contains(part), "{e}");
        }
        let text = spec("{transaction.timeout.ms: 'soon'}");
        assert!(check_exactly_once(&text, &checkpoint).is_err());
    }
}
