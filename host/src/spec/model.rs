//! The types of a job spec as a user writes it, and their parser.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::kafka::{KafkaSinkSpec, KafkaSourceSpec};
pub use super::value::ConfigValue;

/// A whole job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JobSpec {
    /// A human-readable job name.
    pub name: String,
    /// Number of key groups (`pipeline.max-parallelism` overrides are the
    /// same thing; this field wins).
    #[serde(default)]
    pub max_parallelism: Option<u32>,
    /// Overrides of `weir.yaml` keys for this job.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    /// Where records come from.
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    /// The WebAssembly operators.
    #[serde(default)]
    pub operators: Vec<OperatorSpec>,
    /// Where records go.
    #[serde(default)]
    pub sinks: Vec<SinkSpec>,
    /// Connections between nodes.
    #[serde(default)]
    pub edges: Vec<EdgeSpec>,
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceType {
    /// Deterministic generated records.
    Datagen,
    /// Lines of files.
    File,
    /// Records of Kafka topics (the `kafka` block).
    Kafka,
}

/// How a `file` source turns lines into elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    /// Each line is an element's value, without key or timestamp.
    #[default]
    Lines,
    /// Each line is `timestamp,key,value` (timestamp in ms; the value is the
    /// rest of the line and may hold commas).
    Csv,
}

/// A source.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceSpec {
    /// Name used by edges.
    pub id: String,
    /// Stable identity for state (defaults to `id`).
    #[serde(default)]
    pub uid: Option<String>,
    /// The kind of source.
    #[serde(rename = "type")]
    pub source_type: SourceType,
    /// Number of subtasks (default `parallelism.default`).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Bounded out-of-orderness of event time, in ms: the source emits the
    /// watermark `max timestamp - out-of-orderness - 1`. Without it the
    /// source emits no watermark until its end.
    #[serde(default)]
    pub out_of_orderness_ms: Option<u64>,
    /// Flink's `withIdleness`: a source subtask that emits no element for
    /// this long (ms) is idle, and does not hold the downstream watermark
    /// back until it emits again.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// datagen: number of records (required).
    #[serde(default)]
    pub count: Option<u64>,
    /// datagen: number of distinct keys (default 1000).
    #[serde(default)]
    pub keys: Option<u64>,
    /// datagen: key `n` of record `i` is `i mod keys` instead of a
    /// spread-out hash (default false), so `count >= keys` covers every key.
    #[serde(default)]
    pub sequential_keys: Option<bool>,
    /// datagen: before its `count` records, one record for each of the
    /// `keys` keys, unstamped and not held to `rate` (default false), so
    /// that what follows runs against a full state (`weir bench latency`).
    #[serde(default)]
    pub fill_keys: Option<bool>,
    /// Records per second over all subtasks (default unlimited), for any
    /// source.
    #[serde(default)]
    pub rate: Option<u64>,
    /// datagen: event time step per record in ms (default: no timestamps).
    #[serde(default)]
    pub timestamp_step_ms: Option<u64>,
    /// datagen: each record's timestamp is the wall-clock time of its
    /// generation in *microseconds* since the Unix epoch, for a sink with
    /// `measure-latency` (`weir bench latency`); not event time in ms.
    #[serde(default)]
    pub latency_stamps: Option<bool>,
    /// file: one file.
    #[serde(default)]
    pub path: Option<String>,
    /// file: several files, split over the subtasks.
    #[serde(default)]
    pub paths: Option<Vec<String>>,
    /// file: how lines become elements.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// kafka: the broker, topics and offsets (boxed: it is large).
    #[serde(default)]
    pub kafka: Option<Box<KafkaSourceSpec>>,
    /// `false`: never run in one thread with a neighbour, even behind a
    /// forward edge (Flink's `disableChaining()`); default `true`.
    #[serde(default)]
    pub chaining: Option<bool>,
}

/// A WebAssembly operator.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct OperatorSpec {
    /// Name used by edges.
    pub id: String,
    /// Stable identity for state; required, unique in the job.
    #[serde(default)]
    pub uid: Option<String>,
    /// Path of the `.wasm` component (relative paths against the operators
    /// directory, by default the spec's folder).
    pub wasm: String,
    /// Number of subtasks (default `parallelism.default`).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// Key/value config handed to the operator's `open`.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    /// `false`: never run in one thread with a neighbour, even behind a
    /// forward edge (Flink's `disableChaining()`); default `true`.
    #[serde(default)]
    pub chaining: Option<bool>,
}

/// The kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SinkType {
    /// Lines on standard output.
    Stdout,
    /// Lines in files, one file per subtask.
    File,
    /// Drops everything (benchmarks).
    Discard,
    /// Records to a Kafka topic (the `kafka` block).
    Kafka,
}

/// A sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SinkSpec {
    /// Name used by edges.
    pub id: String,
    /// Stable identity for state (defaults to `id`).
    #[serde(default)]
    pub uid: Option<String>,
    /// The kind of sink.
    #[serde(rename = "type")]
    pub sink_type: SinkType,
    /// Number of subtasks (default `parallelism.default`).
    #[serde(default)]
    pub parallelism: Option<u32>,
    /// file: the output folder; subtask `i` writes `part-<i>`.
    #[serde(default)]
    pub path: Option<String>,
    /// kafka: the broker, topic and delivery guarantee.
    #[serde(default)]
    pub kafka: Option<KafkaSinkSpec>,
    /// Any sink: record each element's arrival minus its timestamp, read
    /// as wall-clock microseconds (a datagen source's `latency-stamps`),
    /// in a histogram that the job's summary reports.
    #[serde(default)]
    pub measure_latency: Option<bool>,
    /// `false`: never run in one thread with a neighbour, even behind a
    /// forward edge (Flink's `disableChaining()`); default `true`.
    #[serde(default)]
    pub chaining: Option<bool>,
}

/// How an edge spreads records over the downstream subtasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partitioning {
    /// Subtask `i` to subtask `i`; both sides need the same parallelism.
    Forward,
    /// Round robin over the downstream subtasks.
    Rebalance,
    /// By key group of the element's key: the downstream operator is keyed.
    Hash,
}

impl fmt::Display for Partitioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Partitioning::Forward => "forward",
            Partitioning::Rebalance => "rebalance",
            Partitioning::Hash => "hash",
        })
    }
}

/// An edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EdgeSpec {
    /// Upstream node id.
    pub from: String,
    /// Downstream node id.
    pub to: String,
    /// Partitioning (default: forward between equal parallelism, else
    /// rebalance, as in Flink).
    #[serde(default)]
    pub partition: Option<Partitioning>,
    /// Which input of the downstream operator the edge feeds: 1 (default)
    /// or 2, the second input of a two-input operator (a join).
    #[serde(default)]
    pub input: Option<u8>,
    /// The side output of the upstream operator the edge carries (Flink's
    /// `getSideOutput(tag)`) instead of its main output.
    #[serde(default)]
    pub side_output: Option<String>,
}

/// The syntax of a spec document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFormat {
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

impl SpecFormat {
    /// The format a file name suggests (`.json` is JSON, anything else YAML,
    /// which also reads JSON).
    pub fn from_path(path: &std::path::Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => SpecFormat::Json,
            _ => SpecFormat::Yaml,
        }
    }
}

impl JobSpec {
    /// Parses a spec; errors name the field path (`operators[1].parallelism`).
    pub fn parse(text: &str, format: SpecFormat) -> Result<JobSpec, SpecError> {
        let result = match format {
            SpecFormat::Json => {
                let de = &mut serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de)
                    .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
            }
            SpecFormat::Yaml => {
                let de = serde_yaml_ng::Deserializer::from_str(text);
                serde_path_to_error::deserialize(de)
                    .map_err(|e| (e.path().to_string(), e.into_inner().to_string()))
            }
        };
        result.map_err(|(path, message)| SpecError::Parse {
            field: if path == "." { String::new() } else { path },
            message,
        })
    }
}
