//! A session cluster's state, without HTTP: the jobs it runs (the
//! [`JobManager`], each job's [`JobEntry`]), their crash-safe records
//! ([`JobStore`]), the uploaded operator bundles ([`BundleStore`]) and the
//! folders request paths must stay under ([`Roots`]).
//!
//! `weir serve` puts the REST API ([`crate::server`]) in front of it;
//! every operation here answers a [`SessionError`] that says whose fault a
//! refusal is, and the server maps it to a status code. Start at
//! [`JobManager::submit`]. Savepoints: [`JobManager::trigger_savepoint`]
//! and the index of those the server wrote (`savepoints.rs`).

mod admission;
mod budget;
mod bundles;
mod compiles;
mod entry;
mod error;
mod job_end;
mod launcher;
mod manager;
mod model;
mod resume;
mod roots;
mod savepoint_ops;
mod savepoints;
mod store;

pub use bundles::{Bundle, BundleStore};
pub use compiles::{CompileState, CompileStatus};
pub use entry::JobEntry;
pub use error::SessionError;
pub use manager::{JobManager, node_kind};
pub use model::{JobState, SubmitRequest};
pub use roots::Roots;
pub use savepoint_ops::{DISPOSAL, SavepointTrigger};
pub use savepoints::Operation;
pub use store::JobStore;
