//! Configuration: `weir.yaml` and per-job overrides, with Flink's key names
//! where the concept is Flink's.
//!
//! The lowest layer of the host: it imports nothing above
//! [`crate::keygroup`]. Each key is one row of [`KEYS`] (name, default,
//! meaning, parser); the typed settings a row fills are in [`Config`]
//! and its parts; [`units`] parses durations and memory sizes as Flink
//! writes them; [`Config::load_file`] reads `weir.yaml`. What acts on the
//! settings (the restart policy, the state backend, the checkpoint
//! coordinator) lives above, in the runtime.

mod backend_names;
mod checkpoint;
mod dead_letter;
mod error;
mod file;
mod keys;
mod legacy;
pub mod limits;
mod location;
mod metric_filter;
mod reporters;
mod s3;
mod settings;
pub mod units;
mod values;

pub use checkpoint::{
    CheckpointConfig, CheckpointingMode, ClaimMode, Retention, SavepointFormat, StorageKind,
    UnalignedConfig,
};
pub use dead_letter::DeadLetterConfig;
pub use error::ConfigError;
pub use keys::{ALIASES, KEYS, Key, canonical_key};
pub use location::{LocationError, ObjectUri, parse_location, resolve_location};
pub use metric_filter::MetricKind;
pub use reporters::{InfluxSettings, ReporterConfig, ReporterKind};
pub use s3::{S3Config, Secret};
pub use settings::{BackendKind, Config, FailoverStrategy};
pub use units::parse_duration;
