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

pub mod bench;
pub mod channel;
pub mod checkpoint;
pub mod client;
pub mod clock;
pub mod config;
pub mod keygroup;
pub mod metrics;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod session;
pub mod sink;
pub mod source;
pub mod spec;
pub mod state;
pub mod timers;
pub mod watermark;
