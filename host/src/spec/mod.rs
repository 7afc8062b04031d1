//! The job spec: what a user writes (YAML or JSON) to describe a job.
//!
//! A spec names its sources, operators (WebAssembly components) and sinks,
//! the edges between them with their partitioning, and may override
//! configuration keys. [`JobSpec::parse`] reads one; [`validate`] checks it
//! and lists every problem with the field it is in. See
//! `examples/wordcount.yaml` for a complete spec.

mod error;
pub mod graph;
mod kafka;
mod model;
mod sinks;
mod sources;
mod validate;
mod value;

pub use error::{SpecError, SpecErrors};
#[cfg_attr(
    not(feature = "kafka"),
    expect(unused_imports, reason = "only the Kafka source and sink use them")
)]
pub use kafka::{
    CONSUMER_BUFFER_KIB, CreateTopic, DeliveryGuarantee, KafkaSinkSpec, KafkaSourceSpec,
    PRODUCER_BUFFER_KIB, StartingOffsets, StoppingOffsets, topic_regex,
};
pub use model::{
    FileFormat, JobSpec, Partitioning, SinkSpec, SinkType, SourceSpec, SourceType, SpecFormat,
};
pub use validate::{load, validate};
#[cfg_attr(
    not(feature = "kafka"),
    expect(unused_imports, reason = "only the Kafka clients use it")
)]
pub use value::ConfigValue;
