//! The `kafka:` block of a source or a sink: the broker, the topics, where
//! a source starts and stops, and what a sink guarantees. Flink's
//! `KafkaSource` and `KafkaSink` settings, under the names their builders
//! use.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::value::ConfigValue;

/// Where a Kafka source starts reading a partition for which it has no
/// offset from a checkpoint (Flink's `OffsetsInitializer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StartingOffsets {
    /// The first offset the partition still holds (the default).
    #[default]
    Earliest,
    /// The end of the partition when the job starts.
    Latest,
    /// The group's committed offset (earliest where it has none).
    Committed,
    /// The first record whose timestamp is at least this (ms).
    Timestamp(i64),
}

/// Where a bounded Kafka source stops (Flink's `setBounded`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoppingOffsets {
    /// The end of each partition when the source first reads it.
    Latest,
    /// Before the first record whose timestamp is at least this (ms).
    Timestamp(i64),
}

/// What a Kafka sink guarantees (Flink's `DeliveryGuarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryGuarantee {
    /// Records are sent as they come; a failure may lose or repeat some.
    #[default]
    None,
    /// Every record is acknowledged before a checkpoint completes; a
    /// restart may repeat some.
    AtLeastOnce,
    /// One transaction per checkpoint, committed when it completes.
    ExactlyOnce,
}

/// What a Kafka source subtask's client buffers of fetched records at
/// most, in KiB (`queued.max.messages.kbytes`), unless its `properties`
/// say otherwise; librdkafka's own default, 64 MiB, is more than a
/// subtask needs.
pub const CONSUMER_BUFFER_KIB: u64 = 16 * 1024;

/// What a Kafka sink subtask's client buffers of records not yet
/// acknowledged at most, in KiB (`queue.buffering.max.kbytes`), unless its
/// `properties` say otherwise; librdkafka's own default is 1 GiB.
pub const PRODUCER_BUFFER_KIB: u64 = 16 * 1024;

/// Property `key` of `properties`, a number of KiB, in bytes; `default`
/// KiB if it is not set or not a number.
fn kib_property(properties: &BTreeMap<String, ConfigValue>, key: &str, default: u64) -> u64 {
    let kib = properties
        .get(key)
        .and_then(|v| v.to_string().trim().parse::<u64>().ok())
        .unwrap_or(default);
    kib.saturating_mul(1024)
}

/// `timestamp:<ms>`, or `None` for another word.
fn timestamp_of(s: &str) -> Option<Result<i64, String>> {
    let ms = s.strip_prefix("timestamp:")?;
    Some(
        ms.trim()
            .parse()
            .map_err(|_| format!("{ms:?} is not a timestamp in ms since the epoch")),
    )
}

impl TryFrom<String> for StartingOffsets {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "earliest" => Ok(StartingOffsets::Earliest),
            "latest" => Ok(StartingOffsets::Latest),
            "committed" => Ok(StartingOffsets::Committed),
            other => match timestamp_of(other) {
                Some(t) => t.map(StartingOffsets::Timestamp),
                None => Err(format!(
                    "{other:?}: use earliest, latest, committed or timestamp:<ms>"
                )),
            },
        }
    }
}

impl From<StartingOffsets> for String {
    fn from(s: StartingOffsets) -> String {
        s.to_string()
    }
}

impl fmt::Display for StartingOffsets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartingOffsets::Earliest => f.write_str("earliest"),
            StartingOffsets::Latest => f.write_str("latest"),
            StartingOffsets::Committed => f.write_str("committed"),
            StartingOffsets::Timestamp(t) => write!(f, "timestamp:{t}"),
        }
    }
}

impl TryFrom<String> for StoppingOffsets {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "latest" => Ok(StoppingOffsets::Latest),
            other => match timestamp_of(other) {
                Some(t) => t.map(StoppingOffsets::Timestamp),
                None => Err(format!("{other:?}: use latest or timestamp:<ms>")),
            },
        }
    }
}

impl From<StoppingOffsets> for String {
    fn from(s: StoppingOffsets) -> String {
        match s {
            StoppingOffsets::Latest => "latest".into(),
            StoppingOffsets::Timestamp(t) => format!("timestamp:{t}"),
        }
    }
}

/// The `kafka:` block of a source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaSourceSpec {
    /// `host:port[,host:port…]` of the brokers.
    pub bootstrap_servers: String,
    /// One topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// Several topics.
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// Every topic whose whole name matches this regular expression
    /// (Flink's `setTopicPattern`), looked for again at each partition
    /// discovery; topics whose name starts with `__` are left out.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// The consumer group: offsets are committed to it for monitoring and
    /// read by `starting-offsets: committed`.
    #[serde(default)]
    pub group_id: Option<String>,
    /// Where a partition without a checkpointed offset starts.
    #[serde(default)]
    pub starting_offsets: StartingOffsets,
    /// Where the source stops; without it, it never ends.
    #[serde(default)]
    pub stopping_offsets: Option<StoppingOffsets>,
    /// `read_committed` or `read_uncommitted` (Kafka's default).
    #[serde(default)]
    pub isolation_level: Option<String>,
    /// How often new partitions are looked for, in ms (default 300000, as
    /// Flink's `partition.discovery.interval.ms`; 0 turns it off). A
    /// bounded source never looks.
    #[serde(default)]
    pub partition_discovery_interval_ms: Option<u64>,
    /// With `true`, each element's value is the record envelope of the
    /// record's headers and value (`weir_wire::EnvelopeRef`), not the bare
    /// value.
    #[serde(default)]
    pub headers: bool,
    /// Passed to the Kafka client as they are.
    #[serde(default)]
    pub properties: BTreeMap<String, ConfigValue>,
}

impl KafkaSourceSpec {
    /// The most a subtask's client buffers, in bytes.
    pub fn buffer_bytes(&self) -> u64 {
        kib_property(
            &self.properties,
            "queued.max.messages.kbytes",
            CONSUMER_BUFFER_KIB,
        )
    }

    /// The topics named, in the order given (none with `topic-pattern`).
    pub fn topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.topic.iter().cloned().collect();
        t.extend(self.topics.iter().flatten().cloned());
        t
    }
}

/// The regular expression of a `topic-pattern`, matching whole names.
pub fn topic_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

/// `create-topic` of a Kafka sink: create the topic if it is missing.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CreateTopic {
    /// Its partitions.
    pub partitions: u32,
    /// Its replication factor (default 1).
    #[serde(default)]
    pub replication_factor: Option<u32>,
}

/// The `kafka:` block of a sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaSinkSpec {
    /// `host:port[,host:port…]` of the brokers.
    pub bootstrap_servers: String,
    /// The topic written.
    pub topic: String,
    /// What the sink guarantees.
    #[serde(default)]
    pub delivery_guarantee: DeliveryGuarantee,
    /// The prefix of the transactional ids (`exactly-once`).
    #[serde(default)]
    pub transactional_id_prefix: Option<String>,
    /// Create the topic if it is missing; without it, a missing topic
    /// fails the job at start.
    #[serde(default)]
    pub create_topic: Option<CreateTopic>,
    /// With `true`, each element's value must be a record envelope
    /// (`weir_wire::EnvelopeRef`): its headers become the record's headers
    /// and its value the record's value.
    #[serde(default)]
    pub headers: bool,
    /// Passed to the Kafka client as they are.
    #[serde(default)]
    pub properties: BTreeMap<String, ConfigValue>,
}

impl KafkaSinkSpec {
    /// Whether the sink writes transactions (`delivery-guarantee:
    /// exactly-once`).
    pub fn is_exactly_once(&self) -> bool {
        self.delivery_guarantee == DeliveryGuarantee::ExactlyOnce
    }

    /// The most a subtask's client buffers, in bytes.
    pub fn buffer_bytes(&self) -> u64 {
        kib_property(
            &self.properties,
            "queue.buffering.max.kbytes",
            PRODUCER_BUFFER_KIB,
        )
    }
}

/// Adds a problem for each thing wrong with the `kafka` block of a source
/// at `field`.
pub(super) fn check_source(field: &str, k: &KafkaSourceSpec, errors: &mut Vec<SpecError>) {
    let mut bad = |name: &str, message: &str| {
        errors.push(SpecError::Invalid {
            field: format!("{field}.kafka.{name}"),
            message: message.to_owned(),
        });
    };
    if k.bootstrap_servers.trim().is_empty() {
        bad("bootstrap-servers", "names no broker");
    }
    let topics = k.topics();
    match (&k.topic_pattern, topics.is_empty()) {
        (None, true) => bad(
            "topic",
            "a kafka source needs `topic`, `topics` or `topic-pattern`",
        ),
        (Some(_), false) => bad(
            "topic-pattern",
            "give `topic-pattern` or `topic`/`topics`, not both",
        ),
        (Some(p), true) => {
            if let Err(e) = topic_regex(p) {
                bad("topic-pattern", &format!("not a regular expression: {e}"));
            }
        }
        (None, false) => {}
    }
    if topics.iter().any(|t| t.trim().is_empty()) {
        bad("topics", "a topic name is empty");
    }
    if k.starting_offsets == StartingOffsets::Committed && k.group_id.is_none() {
        bad(
            "starting-offsets",
            "`committed` needs `group-id`, the group whose offsets are read",
        );
    }
    if let Some(level) = &k.isolation_level
        && !matches!(level.as_str(), "read_committed" | "read_uncommitted")
    {
        bad("isolation-level", "use read_committed or read_uncommitted");
    }
}

/// Adds a problem for each thing wrong with the `kafka` block of a sink at
/// `field`.
pub(super) fn check_sink(field: &str, k: &KafkaSinkSpec, errors: &mut Vec<SpecError>) {
    let mut bad = |name: &str, message: &str| {
        errors.push(SpecError::Invalid {
            field: format!("{field}.kafka.{name}"),
            message: message.to_owned(),
        });
    };
    if k.bootstrap_servers.trim().is_empty() {
        bad("bootstrap-servers", "names no broker");
    }
    if k.topic.trim().is_empty() {
        bad("topic", "is empty");
    }
    if k.create_topic.as_ref().is_some_and(|c| c.partitions == 0) {
        bad("create-topic.partitions", "must be at least 1");
    }
    if k.is_exactly_once() {
        match k.transactional_id_prefix.as_deref() {
            None | Some("") => bad(
                "transactional-id-prefix",
                "exactly-once needs a transactional-id-prefix, unique to this job among the jobs writing to the cluster",
            ),
            Some(p)
                if !p
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
            {
                bad(
                    "transactional-id-prefix",
                    "use letters, digits, `.`, `_` and `-`",
                )
            }
            Some(_) => {}
        }
    }
    // Weir sets these itself: a sink's producers are idempotent, those of
    // an exactly-once sink transactional with ids and commit-marker groups
    // of their own.
    let own: &[&str] = match k.delivery_guarantee {
        DeliveryGuarantee::ExactlyOnce => &["transactional.id", "group.id", "enable.idempotence"],
        _ => &["transactional.id"],
    };
    for key in own.iter().filter(|key| k.properties.contains_key(**key)) {
        bad(
            &format!("properties.{key}"),
            "is set by Weir for this sink and may not be given",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink_problems(yaml: &str) -> Vec<String> {
        let k: KafkaSinkSpec = serde_yaml_ng::from_str(yaml).expect("yaml");
        let mut errors = Vec::new();
        check_sink("sinks[0]", &k, &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_topic_pattern_is_a_whole_name_regex_and_excludes_named_topics() {
        let problems = |yaml: &str| {
            let k: KafkaSourceSpec = serde_yaml_ng::from_str(yaml).expect("yaml");
            let mut errors = Vec::new();
            check_source("sources[0]", &k, &mut errors);
            errors.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let base = "{bootstrap-servers: b:9092";
        assert!(problems(&format!("{base}, topic-pattern: 'ev-.*'}}")).is_empty());
        let both = problems(&format!("{base}, topic: t, topic-pattern: 'ev-.*'}}"));
        assert!(both.len() == 1 && both[0].contains("not both"), "{both:?}");
        let bad = problems(&format!("{base}, topic-pattern: 'ev-('}}"));
        assert!(
            bad.len() == 1 && bad[0].contains("regular expression"),
            "{bad:?}"
        );
        let re = topic_regex("ev-.*").expect("regex");
        assert!(re.is_match("ev-1") && !re.is_match("my-ev-1"));
    }

    #[test]
    fn an_exactly_once_sink_needs_a_plain_transactional_id_prefix() {
        let base = "{bootstrap-servers: b:9092, topic: t, delivery-guarantee: exactly-once";
        let missing = sink_problems(&format!("{base}}}"));
        assert!(
            missing.len() == 1 && missing[0].contains("sinks[0].kafka.transactional-id-prefix"),
            "{missing:?}"
        );
        let odd = sink_problems(&format!("{base}, transactional-id-prefix: 'a b'}}"));
        assert!(odd.len() == 1 && odd[0].contains("letters"), "{odd:?}");
        assert!(sink_problems(&format!("{base}, transactional-id-prefix: job-1.out}}")).is_empty());
        let own = sink_problems(&format!(
            "{base}, transactional-id-prefix: p, properties: {{group.id: g}}}}"
        ));
        assert!(
            own.len() == 1 && own[0].contains("properties.group.id"),
            "{own:?}"
        );
    }

    #[test]
    fn offsets_parse_and_print_back() {
        for s in ["earliest", "latest", "committed", "timestamp:1700000000000"] {
            let o = StartingOffsets::try_from(s.to_owned()).expect(s);
            assert_eq!(String::from(o), s);
        }
        assert!(StartingOffsets::try_from("newest".to_owned()).is_err());
        assert!(StartingOffsets::try_from("timestamp:soon".to_owned()).is_err());
        assert_eq!(
            StoppingOffsets::try_from("timestamp:5".to_owned()),
            Ok(StoppingOffsets::Timestamp(5))
        );
        assert!(StoppingOffsets::try_from("committed".to_owned()).is_err());
    }
}
