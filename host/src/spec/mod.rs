//! The job spec: what a user writes (YAML or JSON) to describe a job.
//!
//! A spec names its sources, operators (WebAssembly components) and sinks,
//! the edges between them with their partitioning, and may override
//! configuration keys. [`JobSpec::parse`] reads one; [`validate`] checks it
//! and lists every problem with the field it is in. See
//! `examples/wordcount.yaml` for a complete spec.

mod error;
pub mod graph;
mod model;
mod sources;
mod validate;

pub use error::{SpecError, SpecErrors};
pub use model::{
    FileFormat, JobSpec, Partitioning, SinkSpec, SinkType, SourceSpec, SourceType, SpecFormat,
};
pub use validate::{load, validate};
