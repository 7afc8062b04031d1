//! Weir's runtime: runs jobs of WebAssembly operators.
//!
//! Its modules are private and form layers that only point down (the
//! module map is in `docs/architecture.md`; `tests/e2e/layers.rs` keeps
//! it so). From the bottom up:
//! - `clock`, `confined` (folder handles), `keygroup`, `machine`, `metrics`, `timers`,
//!   `watermark`, and `config`
//!   (every key in one table, plain settings);
//! - `spec` (the job spec and its validation into the job graph) and
//!   `channel`;
//! - `state` (the `KeyedStateBackend` trait and its backends);
//! - `kafka` (the Kafka client configuration, topics), `objectstore`
//!   (the S3 client of `s3://` locations);
//! - `sandbox` (wasmtime), `source`, `sink` (`TransactionalSink`);
//! - `checkpoint` (hub, pure pending and retention decisions, layout,
//!   storage, restore, the coordinator);
//! - `runtime` (the restart loop, attempts, tasks);
//! - `session` (jobs, records, bundles and roots of `weir serve`);
//! - `server` (HTTP only), `client` (the CLI's HTTP client), `bench`.
//!
//! What the `weir` binary (`src/main.rs`), the benchmarks and the tests use
//! is re-exported below; start at [`run_job`].

mod bench;
mod channel;
mod checkpoint;
mod client;
mod clock;
mod config;
mod confined;
mod fuzz;
#[cfg(feature = "kafka")]
mod kafka;
mod keygroup;
mod machine;
mod metrics;
mod objectstore;
mod reporting;
mod runtime;
mod sandbox;
mod server;
mod session;
mod sink;
mod source;
mod spec;
mod state;
mod timers;
mod watermark;

pub use bench::{BenchArgs, run as run_bench};
pub use checkpoint::listing::list as list_checkpoints;
pub use checkpoint::metadata::CheckpointMetadata;
pub use checkpoint::recovery::completed_in;
pub use checkpoint::restore::{RestoreError, RestorePoint};
pub use checkpoint::savepoint::{SavepointDone, StopMode, dispose_in as dispose_savepoint};
pub use checkpoint::storage::new_job_id;
pub use client::{
    Client, SavepointOptions, SubmitOptions, checkpoints_table, dead_letters_table, jobs_table,
    savepoints_table,
};
pub use config::{
    ALIASES, ClaimMode, Config, ConfigError, KEYS, Key, LocationError, ObjectUri, S3Config,
    SavepointFormat, Secret, parse_location, resolve_location,
};
pub use keygroup::KEY_GROUP_HASH_VERSION;
pub use objectstore::{Bucket, Listed, ObjectError, open_bucket};
pub use runtime::restart::RestartStrategy;
pub use runtime::{
    JobControl, JobError, JobSummary, RunOptions, SavepointRefused, TaskFailure, dry_run,
    load_components, run_job,
};
pub use sandbox::{CompileReport, GuestFailureKind, Sandbox, SandboxError};
pub use server::local::LocalApi;
pub use server::reporters::start as start_reporters;
pub use server::{
    AppState, keep_files_private, load_or_create_token, router, runtime as server_runtime, serve,
};
pub use session::JobState;
pub use spec::graph::JobGraph;
pub use spec::{JobSpec, SpecError, SpecErrors, SpecFormat, load as load_spec, validate};
