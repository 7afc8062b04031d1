//! End-to-end tests: real guest components (built by `tests/guests`),
//! the `weir` binary and the runtime library, on real files.
//!
//! One test binary with a module per area, as wasmtime does.

mod api;
mod cancel;
mod chaining;
mod checkpoints;
mod common;
mod dead_letter;
mod docs;
mod failover;
mod flink_config;
mod hostile;
mod incremental;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kafka")]
mod kafka_exactly_once;
#[cfg(feature = "kafka")]
mod kafka_log;
mod latency;
mod layers;
mod nothing_lost;
mod operators;
mod polyglot;
mod proxy;
mod reporters;
mod s3;
mod savepoints;
mod server;
mod server_limits;
mod server_s3;
mod spec_errors;
mod state_kinds;
mod two_inputs;
mod unaligned;
mod unrecoverable;
mod untrusted_files;
mod wasi;
mod windows;
mod wordcount;
