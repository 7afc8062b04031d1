//! `_metadata`: what a completed checkpoint or savepoint holds, format
//! version 4 (versions 1, without incremental handles, 2, without
//! savepoint formats and operator identities, and 3, without channel
//! state, are still read).
//!
//! The file is text, so a person can read it:
//!
//! ```text
//! WEIR-CHECKPOINT-METADATA 1
//! { ...JSON: job, checkpoint id, operators by uid, state handles... }
//! xxh3 0123456789abcdef
//! ```
//!
//! The first line names the format and its version; the last line is the
//! xxh3-64 checksum of everything before it. It is written atomically
//! (temporary file, fsync, rename, fsync of the folder), so a reader sees a
//! whole `_metadata` or none. Operators are named by `uid`; each subtask's
//! keyed state is a [`KeyedStateHandle`] (a file in the checkpoint folder,
//! its checksum and its key-group blocks) and its operator state a list of
//! byte strings (hex in the JSON). An incremental checkpoint of the
//! RocksDB backend adds an [`IncrementalHandle`] per subtask (its files in
//! `shared/` and in the checkpoint folder) and keeps only the timers in the
//! keyed file. Version 2 added those handles and `checkpointed_size`;
//! version 3 the savepoint format and, per WebAssembly operator, the
//! identity of its component ([`ComponentIdentity`]: sha256, WIT world,
//! declared states) that a restore checks a new component against.
//! Version 4 added, per subtask, the channel state of an unaligned
//! checkpoint ([`ChannelStateHandle`]: a `.channel` file of the in-flight
//! records its barrier overtook), whether the subtask's checkpoint went
//! unaligned, and its processed and persisted in-flight bytes.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::channel_state::ChannelStateHandle;
use crate::state::DeclaredState;
use crate::state::incremental::IncrementalHandle;
use crate::state::snapshot::{KeyedStateHandle, checksum};

/// The version this build writes.
pub const METADATA_VERSION: u32 = 4;
/// The oldest version this build reads.
pub const OLDEST_METADATA_VERSION: u32 = 1;
const HEADER: &str = "WEIR-CHECKPOINT-METADATA";

/// A `_metadata` that cannot be used.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// Not a Weir `_metadata` file.
    #[error("not a Weir checkpoint _metadata file (bad first line)")]
    Header,
    /// Written by another format version.
    #[error(
        "_metadata format version {found}, but this build reads versions {OLDEST_METADATA_VERSION} to {METADATA_VERSION}"
    )]
    Version {
        /// The version in the file.
        found: u32,
    },
    /// The file ends early (no checksum line).
    #[error("_metadata is truncated (no checksum line)")]
    Truncated,
    /// The checksum does not match.
    #[error("_metadata checksum mismatch (the file is damaged or was changed)")]
    Checksum,
    /// The body is not what this version writes.
    #[error("_metadata body is malformed: {0}")]
    Body(String),
    /// It names a file outside the checkpoint folder.
    #[error("_metadata names a file outside the checkpoint folder: {0:?}")]
    UnsafeName(String),
}

/// The state of one subtask in a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubtaskState {
    /// The subtask index.
    pub subtask: u32,
    /// Its keyed state, if the operator is keyed (with an incremental
    /// handle: its timers only).
    pub keyed: Option<KeyedStateHandle>,
    /// Its keyed state as RocksDB files, in an incremental checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental: Option<IncrementalHandle>,
    /// Its operator (non-keyed) list state, each item in hex.
    #[serde(with = "hex_list")]
    pub operator_state: Vec<Vec<u8>>,
    /// Synchronous part of its snapshot (ms).
    pub sync_ms: f64,
    /// Asynchronous part: writing its files (ms).
    pub async_ms: f64,
    /// Time it spent aligning barriers (ms).
    pub alignment_ms: f64,
    /// From the trigger to the first barrier reaching it (ms; 0 in
    /// snapshots written before it was recorded).
    #[serde(default)]
    pub start_delay_ms: f64,
    /// Its event-time watermark at the snapshot (absent in older
    /// snapshots, and for tasks without one): where it starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    /// The in-flight records its unaligned checkpoint overtook (v4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelStateHandle>,
    /// Its checkpoint went unaligned (v4).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unaligned: bool,
    /// Bytes it processed between its first barrier and its last (v4).
    #[serde(default)]
    pub processed_bytes: u64,
    /// Bytes of in-flight records it persisted: its channel state (v4).
    #[serde(default)]
    pub persisted_bytes: u64,
}

impl SubtaskState {
    /// Subtask `subtask` with no state and no figures.
    pub fn empty(subtask: u32) -> Self {
        SubtaskState {
            subtask,
            keyed: None,
            incremental: None,
            operator_state: Vec::new(),
            sync_ms: 0.0,
            async_ms: 0.0,
            alignment_ms: 0.0,
            start_delay_ms: 0.0,
            watermark: None,
            channel: None,
            unaligned: false,
            processed_bytes: 0,
            persisted_bytes: 0,
        }
    }
}

/// The state of one operator (any node: source, operator or sink).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// The node's `uid`: what a restore matches on.
    pub uid: String,
    /// The node's id in the spec, for people.
    pub node: String,
    /// Its parallelism when the checkpoint was taken.
    pub parallelism: u32,
    /// One entry per subtask, by subtask index.
    pub subtasks: Vec<SubtaskState>,
    /// The component that wrote the state (WebAssembly operators).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<ComponentIdentity>,
}

/// What identifies the WebAssembly component an operator ran and the
/// state it declared: what a restore checks a new component against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentIdentity {
    /// SHA-256 of the `.wasm` bytes, in hex.
    pub sha256: String,
    /// The WIT interface it was built against (`weir:operator/handler@0.2.0`).
    pub world: String,
    /// The keyed states it declared, in order.
    pub states: Vec<DeclaredState>,
}

/// A completed checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// The job that took it.
    pub job_id: String,
    /// The job's name.
    pub job_name: String,
    /// Checkpoint id; ids continue across restores.
    pub checkpoint_id: u64,
    /// `checkpoint` or `savepoint`.
    pub kind: String,
    /// A savepoint's format: `CANONICAL` or `NATIVE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub savepoint_format: Option<String>,
    /// When it was triggered (ms since the epoch).
    pub trigger_timestamp: i64,
    /// When `_metadata` was written (ms since the epoch).
    pub completed_timestamp: i64,
    /// Trigger to completion (ms).
    pub duration_ms: f64,
    /// Bytes of state files: the full size of the state.
    pub state_size: u64,
    /// Bytes this checkpoint wrote (for an incremental one, less than
    /// `state_size`: files already in `shared/` are referenced).
    #[serde(default)]
    pub checkpointed_size: u64,
    /// `pipeline.max-parallelism` of the job: a restore must match it.
    pub max_parallelism: u32,
    /// `EXACTLY_ONCE` or `AT_LEAST_ONCE`.
    pub mode: String,
    /// The state backend that wrote the keyed state.
    pub backend: String,
    /// Whether this is the final checkpoint of a job whose input ended.
    pub is_final: bool,
    /// Every operator's state.
    pub operators: Vec<OperatorSnapshot>,
}

impl CheckpointMetadata {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, MetadataError> {
        let body =
            serde_json::to_string_pretty(self).map_err(|e| MetadataError::Body(e.to_string()))?;
        let mut text = format!("{HEADER} {METADATA_VERSION}\n{body}\n");
        let sum = checksum(text.as_bytes());
        text.push_str(&format!("xxh3 {sum}\n"));
        Ok(text.into_bytes())
    }

    /// Reads a file's bytes, checking its version and checksum.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        let first_nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(MetadataError::Header)?;
        let header = std::str::from_utf8(&bytes[..first_nl]).map_err(|_| MetadataError::Header)?;
        let version = header
            .strip_prefix(HEADER)
            .map(str::trim)
            .ok_or(MetadataError::Header)?;
        let found: u32 = version.parse().map_err(|_| MetadataError::Header)?;
        if !(OLDEST_METADATA_VERSION..=METADATA_VERSION).contains(&found) {
            return Err(MetadataError::Version { found });
        }
        // The checksum line is the last line.
        let trimmed = bytes.strip_suffix(b"\n").ok_or(MetadataError::Truncated)?;
        let last_nl = trimmed
            .iter()
            .rposition(|&b| b == b'\n')
            .ok_or(MetadataError::Truncated)?;
        let (content, sum_line) = (&bytes[..=last_nl], &trimmed[last_nl + 1..]);
        let sum = std::str::from_utf8(sum_line)
            .ok()
            .and_then(|l| l.strip_prefix("xxh3 "))
            .ok_or(MetadataError::Truncated)?;
        if checksum(content) != sum {
            return Err(MetadataError::Checksum);
        }
        let metadata: Self = serde_json::from_slice(&content[first_nl + 1..])
            .map_err(|e| MetadataError::Body(e.to_string()))?;
        metadata.check_names()?;
        Ok(metadata)
    }

    /// Refuses a `_metadata` that names a state file outside its folder
    /// (an absolute path, `..`, a sub-folder): every name it holds must be
    /// a plain file name of the checkpoint (or, for incremental handles,
    /// of `shared/`).
    fn check_names(&self) -> Result<(), MetadataError> {
        use crate::state::incremental::is_plain_name;
        for s in self.operators.iter().flat_map(|o| &o.subtasks) {
            let keyed = s.keyed.as_ref().map(|h| h.file.as_str());
            let channel = s.channel.as_ref().map(|h| h.file.as_str());
            if let Some(bad) = keyed.into_iter().chain(channel).find(|f| !is_plain_name(f)) {
                return Err(MetadataError::UnsafeName(bad.to_owned()));
            }
            if let Some(h) = &s.incremental {
                for f in h.files() {
                    f.check_names().map_err(MetadataError::UnsafeName)?;
                }
            }
        }
        Ok(())
    }

    /// Whether this is a savepoint.
    pub fn is_savepoint(&self) -> bool {
        self.kind == "savepoint"
    }

    /// Whether this is a savepoint whose keyed state is in Weir's own
    /// format, which any backend restores: a canonical one, or a native
    /// one of a backend without files of its own (the hashmap).
    pub fn is_canonical(&self) -> bool {
        let own_files = self
            .operators
            .iter()
            .any(|o| o.subtasks.iter().any(|s| s.incremental.is_some()));
        self.is_savepoint() && (self.savepoint_format.as_deref() != Some("NATIVE") || !own_files)
    }

    /// The operator with `uid`.
    pub fn operator(&self, uid: &str) -> Option<&OperatorSnapshot> {
        self.operators.iter().find(|o| o.uid == uid)
    }
}

mod hex_list {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        items
            .iter()
            .map(|t| hex::decode(t).map_err(|e| serde::de::Error::custom(format!("bad hex: {e}"))))
            .collect()
    }
}

#[cfg(test)]
impl CheckpointMetadata {
    /// A completed checkpoint `id` of one operator `uid` with one subtask
    /// holding `keyed` or `incremental` state, for tests.
    pub(crate) fn one_subtask(
        id: u64,
        backend: &str,
        uid: &str,
        keyed: Option<KeyedStateHandle>,
        incremental: Option<IncrementalHandle>,
    ) -> Self {
        CheckpointMetadata {
            job_id: "job".into(),
            job_name: "job".into(),
            checkpoint_id: id,
            kind: "checkpoint".into(),
            savepoint_format: None,
            trigger_timestamp: 0,
            completed_timestamp: 0,
            duration_ms: 0.0,
            state_size: 0,
            checkpointed_size: 0,
            max_parallelism: 128,
            mode: "EXACTLY_ONCE".into(),
            backend: backend.into(),
            is_final: false,
            operators: vec![OperatorSnapshot {
                uid: uid.into(),
                node: uid.into(),
                parallelism: 1,
                subtasks: vec![SubtaskState {
                    keyed,
                    incremental,
                    ..SubtaskState::empty(0)
                }],
                component: None,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CheckpointMetadata {
        CheckpointMetadata {
            job_id: "ab".repeat(16),
            job_name: "j".into(),
            checkpoint_id: 7,
            kind: "checkpoint".into(),
            savepoint_format: None,
            trigger_timestamp: 1,
            completed_timestamp: 2,
            duration_ms: 1.5,
            state_size: 10,
            checkpointed_size: 10,
            max_parallelism: 128,
            mode: "EXACTLY_ONCE".into(),
            backend: "hashmap".into(),
            is_final: false,
            operators: vec![OperatorSnapshot {
                uid: "src".into(),
                node: "src".into(),
                parallelism: 1,
                subtasks: vec![SubtaskState {
                    operator_state: vec![vec![0, 1, 254]],
                    ..SubtaskState::empty(0)
                }],
                component: None,
            }],
        }
    }

    #[test]
    fn round_trips_and_detects_damage() {
        let m = sample();
        let bytes = m.encode().expect("encode");
        assert_eq!(CheckpointMetadata::decode(&bytes), Ok(m));
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        let damaged = text.replacen("\"checkpoint_id\": 7", "\"checkpoint_id\": 8", 1);
        assert_eq!(
            CheckpointMetadata::decode(damaged.as_bytes()),
            Err(MetadataError::Checksum)
        );
        assert_eq!(
            CheckpointMetadata::decode(&bytes[..bytes.len() / 2]),
            Err(MetadataError::Truncated)
        );
        let newer = text.replacen("METADATA 4", "METADATA 5", 1);
        assert_eq!(
            CheckpointMetadata::decode(newer.as_bytes()),
            Err(MetadataError::Version { found: 5 })
        );
        assert_eq!(
            CheckpointMetadata::decode(b"garbage"),
            Err(MetadataError::Header)
        );
    }
}
