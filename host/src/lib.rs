//! Weir's runtime: runs jobs of WebAssembly operators.
//!
//! What is here, from the outside in:
//! - [`spec`]: the job spec a user writes, and its validation into a
//!   [`spec::graph::JobGraph`];
//! - [`runtime`]: runs a graph: one thread per subtask, bounded
//!   [`channel`]s between them, [`watermark`]s and [`timers`];
//! - [`sandbox`]: wasmtime with the component model, where operator
//!   components run under limits;
//! - [`state`]: keyed state per [`keygroup`], behind the
//!   [`state::KeyedStateBackend`] trait;
//! - [`source`] and [`sink`]: where records come from and go to;
//! - [`checkpoint`]: barriers, snapshots, `_metadata`, restore;
//! - [`server`]: `weir serve`, the REST API;
//! - [`config`]: `weir.yaml` keys; [`bench`]: `weir bench`.
//!
//! The `weir` binary (`src/main.rs`) is a thin CLI over [`runtime::run_job`].

mod bench;
mod channel;
mod checkpoint;
mod client;
mod clock;
mod config;
mod keygroup;
mod metrics;
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
pub use checkpoint::restore::RestorePoint;
pub use checkpoint::storage::new_job_id;
pub use client::{Client, SubmitOptions, checkpoints_table, jobs_table};
pub use config::{ALIASES, Config, ConfigError, KEYS, Key};
pub use keygroup::KEY_GROUP_HASH_VERSION;
pub use runtime::{
    JobControl, JobError, JobSummary, RunOptions, TaskFailure, load_components, run_job,
};
pub use sandbox::{CacheOutcome, GuestFailureKind, Sandbox, SandboxError};
pub use server::local::LocalApi;
pub use server::{AppState, load_or_create_token, router, runtime as server_runtime, serve};
pub use session::JobState;
pub use spec::graph::JobGraph;
pub use spec::{JobSpec, SpecError, SpecErrors, SpecFormat, load as load_spec, validate};
