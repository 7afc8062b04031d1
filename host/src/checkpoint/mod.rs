//! Checkpoints: barriers, alignment, snapshots, `_metadata`, storage and
//! retention, as in Flink (see `docs/architecture.md`, Checkpoints).
//!
//! - [`alignment`]: which inputs a task holds while it waits for a barrier,
//!   and when a checkpoint goes unaligned; [`channel_state`]: the
//!   in-flight records an unaligned checkpoint keeps;
//! - [`metadata`]: the versioned, checksummed `_metadata` file;
//! - [`storage`]: where checkpoint files go (`filesystem` or `jobmanager`)
//!   and how old ones are deleted; [`recovery`]: what a starting job
//!   removes from its folder and which checkpoints it finds retained;
//! - [`object`]: the same in S3-compatible object storage (`s3://`);
//! - [`reader`]: reading a checkpoint's files (on disk, or any storage);
//! - [`layout`]: every path of a job's checkpoint folder; [`fs`]: durable
//!   writes; [`hub`]: what tasks and the coordinator exchange;
//!   [`pending`]: checkpoints in progress (pure decisions); [`stats`]: the
//!   figures the API shows;
//! - [`coordinator`]: triggers checkpoints, collects the tasks'
//!   acknowledgements, completes checkpoints and notifies the tasks;
//! - [`compatibility`]: whether a snapshot's operators and states fit a
//!   job's components (matched, changed, dropped, new, refused);
//! - [`restore`]: reads a checkpoint back and hands each subtask its part;
//! - [`retention`]: which checkpoints a job keeps and which one it
//!   restores from (pure decisions);
//! - [`savepoint`]: savepoint folders (written atomically, relocatable),
//!   their disposal, and what a crash midway leaves;
//! - [`shared`]: the reference-counted files of incremental checkpoints;
//! - [`pin`]: a job's own copy of a restore source in another job's folder;
//! - [`listing`]: `weir checkpoints DIR`.

pub mod alignment;
pub mod channel_state;
pub mod compatibility;
pub mod coordinator;
pub mod fs;
pub mod hub;
pub mod layout;
pub mod listing;
pub mod metadata;
pub mod object;
pub mod pending;
pub mod pin;
pub mod reader;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod savepoint;
pub mod shared;
pub mod stats;
pub mod storage;
