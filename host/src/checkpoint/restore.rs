//! Restoring a job from a checkpoint: reading `_metadata`, matching its
//! operators to the job's nodes by `uid`, and handing each new subtask its
//! part (keyed state by key-group range, operator state by list
//! redistribution).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use super::channel_state::{ChannelState, ChannelStateHandle, replay_for};
use super::compatibility::has_state;
use super::fs::{StorageError, object_err};
use super::layout::{METADATA_FILE, metadata_in};
use super::metadata::{CheckpointMetadata, MetadataError, SubtaskState};
use super::object::ObjectCheckpoint;
use super::storage::{CheckpointDir, ReadCheckpoint};
use crate::config::{ObjectUri, S3Config};
use crate::keygroup::KeyGroupRange;
use crate::objectstore::open_bucket;
use crate::spec::graph::JobGraph;
use crate::state::KeyedStateBackend;
use crate::state::incremental::LocatedHandle;
use crate::state::snapshot::{self, KeyedStateHandle, SnapshotError};
use crate::timers::TimerService;

/// A checkpoint that cannot be restored.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// The path is neither a checkpoint folder nor its `_metadata`.
    #[error("{path}: no checkpoint there (expected a chk-<n> folder or its _metadata file)")]
    NotFound {
        /// The path given.
        path: String,
    },
    /// `_metadata` cannot be read.
    #[error("{path}: {error}")]
    Metadata {
        /// The file.
        path: String,
        /// Why.
        error: MetadataError,
    },
    /// A file of the checkpoint cannot be read.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A state file is damaged or of another version.
    #[error("{path}: {error}")]
    StateFile {
        /// The file.
        path: String,
        /// Why.
        error: SnapshotError,
    },
    /// The job's max parallelism differs from the checkpoint's.
    #[error(
        "the checkpoint was taken with pipeline.max-parallelism {checkpoint}, but the job has {job}; keyed state cannot be split into a different number of key groups"
    )]
    MaxParallelism {
        /// The checkpoint's.
        checkpoint: u32,
        /// The job's.
        job: u32,
    },
    /// The checkpoint was taken with another state backend.
    #[error(
        "the snapshot was taken with state.backend.type {checkpoint}, but the job uses {job}; a checkpoint or native savepoint restores only into its own backend (switch backends through a canonical savepoint: weir savepoint JOB_ID --type canonical)"
    )]
    Backend {
        /// The checkpoint's.
        checkpoint: String,
        /// The job's.
        job: String,
    },
    /// State whose uid is not in the job, without `--allow-non-restored-state`.
    #[error(
        "the checkpoint has state for uid(s) {} that the job does not have; pass -n (--allow-non-restored-state) to skip it",
        uids.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
    )]
    NonRestoredState {
        /// The uids.
        uids: Vec<String>,
    },
    /// The job's operators do not fit the snapshot's state.
    #[error(
        "the snapshot's state does not fit the job's operators:\n  {}",
        problems.join("\n  ")
    )]
    Incompatible {
        /// One line per problem, naming the uid and the state.
        problems: Vec<String>,
    },
    /// A node's state cannot be split over a new parallelism.
    #[error("`{uid}`: {message}")]
    Redistribution {
        /// The node uid.
        uid: String,
        /// Why.
        message: String,
    },
    /// A file sink now writes to another folder, which lacks the files the
    /// snapshot pre-committed.
    #[error(
        "sink `{uid}`: the snapshot's files were committed to {from}, but the job writes to {to}, which does not hold them; restore with the sink in {from}, copy its part files to {to}, or set weir.sink.file.allow-new-folder: true to start {to} afresh"
    )]
    SinkFolder {
        /// The sink's uid.
        uid: String,
        /// The snapshot's folder.
        from: String,
        /// The job's.
        to: String,
    },
}

/// A checkpoint opened for restore.
#[derive(Debug, Clone)]
pub struct RestorePoint {
    /// Its metadata.
    pub metadata: CheckpointMetadata,
    /// Reads its files.
    pub reader: Arc<dyn ReadCheckpoint>,
    /// Where it is, for messages.
    pub path: String,
    /// Per uid, the states the job drops (`-n` with a new component that
    /// no longer declares them).
    pub dropped: BTreeMap<String, BTreeSet<String>>,
    /// Checked against the job, verified and its compatibility decided
    /// (by `prepare_restore`): a job given it does not do that again.
    pub(crate) prepared: bool,
}

impl RestorePoint {
    /// Opens `path`: a `chk-<n>` folder (or savepoint folder) or its
    /// `_metadata` file, on disk or in object storage (reached with the
    /// AWS environment; see [`RestorePoint::open_in`]).
    pub fn open(path: &Path) -> Result<Self, RestoreError> {
        Self::open_in(path, &S3Config::default())
    }

    /// Opens `path` as [`RestorePoint::open`] does, an `s3://` one with
    /// the settings `s3`.
    pub fn open_in(path: &Path, s3: &S3Config) -> Result<Self, RestoreError> {
        if let Some(uri) = ObjectUri::of(path) {
            return Self::open_object(uri, s3);
        }
        let (dir, meta): (PathBuf, PathBuf) = if path.is_dir() {
            (path.to_path_buf(), metadata_in(path))
        } else if path.file_name().is_some_and(|n| n == METADATA_FILE) && path.is_file() {
            let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
            (dir, path.to_path_buf())
        } else {
            return Err(RestoreError::NotFound {
                path: path.display().to_string(),
            });
        };
        if !meta.is_file() {
            return Err(RestoreError::NotFound {
                path: path.display().to_string(),
            });
        }
        let bytes = super::fs::read_metadata_file(&meta).map_err(|e| StorageError {
            path: meta.display().to_string(),
            message: e.to_string(),
        })?;
        let metadata =
            CheckpointMetadata::decode(&bytes).map_err(|error| RestoreError::Metadata {
                path: meta.display().to_string(),
                error,
            })?;
        Ok(RestorePoint {
            metadata,
            reader: Arc::new(CheckpointDir(dir.clone())),
            path: dir.display().to_string(),
            dropped: BTreeMap::new(),
            prepared: false,
        })
    }

    /// Opens a checkpoint or savepoint folder (or its `_metadata`) in a
    /// bucket; its files are downloaded when a backend first needs them.
    fn open_object(uri: ObjectUri, s3: &S3Config) -> Result<Self, RestoreError> {
        let folder = match uri.split_last() {
            (parent, METADATA_FILE) => parent,
            _ => uri,
        };
        let bucket = open_bucket(&folder, s3).map_err(object_err)?;
        let point = ObjectCheckpoint::new(bucket, folder.key.clone());
        let metadata = point.metadata()?.ok_or_else(|| RestoreError::NotFound {
            path: folder.to_string(),
        })?;
        Ok(RestorePoint {
            metadata,
            reader: Arc::new(point),
            path: folder.to_string(),
            dropped: BTreeMap::new(),
            prepared: false,
        })
    }

    /// Checks that `graph` can restore this checkpoint: the same state
    /// backend (for a checkpoint), the same max parallelism, and every uid
    /// present unless `allow_non_restored`.
    pub fn check(&self, graph: &JobGraph, allow_non_restored: bool) -> Result<(), RestoreError> {
        let backend = graph.config.backend.kind.name();
        if !self.metadata.is_canonical() && self.metadata.backend != backend {
            return Err(RestoreError::Backend {
                checkpoint: self.metadata.backend.clone(),
                job: backend.to_owned(),
            });
        }
        if self.metadata.max_parallelism != graph.max_parallelism {
            return Err(RestoreError::MaxParallelism {
                checkpoint: self.metadata.max_parallelism,
                job: graph.max_parallelism,
            });
        }
        let missing: Vec<String> = self
            .metadata
            .operators
            .iter()
            .filter(|o| has_state(o))
            .filter(|o| !graph.nodes.iter().any(|n| n.uid == o.uid))
            .map(|o| o.uid.clone())
            .collect();
        if !missing.is_empty() && !allow_non_restored {
            return Err(RestoreError::NonRestoredState { uids: missing });
        }
        for node in &graph.nodes {
            let Some(op) = self.metadata.operator(&node.uid) else {
                continue;
            };
            let forward = op
                .subtasks
                .iter()
                .any(|s| s.channel.as_ref().is_some_and(|c| c.forward));
            if forward && op.parallelism != node.parallelism {
                return Err(RestoreError::Redistribution {
                    uid: node.uid.clone(),
                    message: format!(
                        "at parallelism {}: {}",
                        node.parallelism,
                        super::channel_state::ChannelStateError::ForwardRescale
                    ),
                });
            }
        }
        Ok(())
    }

    /// Reads and verifies every keyed state file of this checkpoint (and
    /// checks that the files of incremental handles are there, with their
    /// sizes; their checksums are checked as a restore copies them), so a
    /// damaged checkpoint is found before the job starts.
    pub fn verify(&self) -> Result<(), RestoreError> {
        for op in &self.metadata.operators {
            for s in &op.subtasks {
                if let Some(h) = &s.keyed {
                    self.read_keyed(h)?;
                }
                if let Some(h) = &s.channel {
                    self.read_channel(h)?;
                }
                if let Some(h) = &s.incremental {
                    let base = self.incremental_base()?;
                    for f in h.files() {
                        f.check_names().map_err(|message| {
                            RestoreError::Storage(StorageError {
                                path: self.path.clone(),
                                message,
                            })
                        })?;
                        let p = base.join(&f.file);
                        let size = std::fs::metadata(&p).map(|m| m.len());
                        if size.as_ref().ok() != Some(&f.size) {
                            return Err(RestoreError::Storage(StorageError {
                                path: p.display().to_string(),
                                message: match size {
                                    Ok(n) => format!(
                                        "{n} bytes, but _metadata says {} (the file is damaged)",
                                        f.size
                                    ),
                                    Err(e) => e.to_string(),
                                },
                            }));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The folder incremental handles name their files from.
    fn incremental_base(&self) -> Result<PathBuf, RestoreError> {
        self.reader.folder()?.ok_or_else(|| {
            RestoreError::Storage(StorageError {
                path: self.reader.location(),
                message: "an incremental checkpoint must be in files (filesystem or s3:// storage)"
                    .into(),
            })
        })
    }

    /// The incremental handles of node `uid` that overlap `range`, with
    /// the folder their paths start from.
    pub fn incremental_handles(
        &self,
        uid: &str,
        range: KeyGroupRange,
    ) -> Result<Vec<LocatedHandle>, RestoreError> {
        let mut out = Vec::new();
        for s in self.subtasks_of(uid) {
            if let Some(h) = s.incremental.as_ref().filter(|h| h.overlaps(range)) {
                out.push(LocatedHandle {
                    handle: h.clone(),
                    base: self.incremental_base()?,
                });
            }
        }
        Ok(out)
    }

    fn read_keyed(&self, h: &KeyedStateHandle) -> Result<Vec<u8>, RestoreError> {
        let bytes = self.reader.read_sized(&h.file, h.size)?;
        snapshot::verify(&bytes, h).map_err(|error| RestoreError::StateFile {
            path: format!("{}/{}", self.reader.location(), h.file),
            error,
        })?;
        Ok(bytes)
    }

    /// The subtask states of node `uid` in the checkpoint.
    pub fn subtasks_of(&self, uid: &str) -> &[SubtaskState] {
        self.metadata
            .operator(uid)
            .map_or(&[], |o| o.subtasks.as_slice())
    }

    /// The states of node `uid` that were declared with a time-to-live.
    pub fn ttl_states(&self, uid: &str) -> std::collections::BTreeSet<String> {
        self.subtasks_of(uid)
            .iter()
            .filter_map(|s| s.keyed.as_ref())
            .flat_map(|h| h.ttl_states.iter().cloned())
            .collect()
    }

    /// The watermark node `uid` starts from: the lowest its subtasks
    /// recorded (`None` if any recorded none), so that no element counts
    /// as later than it would have without the restore.
    pub fn watermark(&self, uid: &str) -> Option<i64> {
        let subtasks = self.subtasks_of(uid);
        let marks: Option<Vec<i64>> = subtasks.iter().map(|s| s.watermark).collect();
        marks?.into_iter().min()
    }

    /// The in-flight records of node `uid`'s unaligned checkpoint that new
    /// subtask `subtask` of `parallelism` (owning key groups `range`)
    /// replays, in batches of at most `batch_size`, with the operator
    /// input each goes to.
    pub fn channel_state_for(
        &self,
        uid: &str,
        (subtask, parallelism, range): (u32, u32, KeyGroupRange),
        batch_size: usize,
    ) -> Result<Vec<(u8, crate::channel::Batch)>, RestoreError> {
        let Some(op) = self.metadata.operator(uid) else {
            return Ok(Vec::new());
        };
        let mut old = Vec::new();
        let same = op.parallelism == parallelism;
        for s in op.subtasks.iter().filter(|s| !same || s.subtask == subtask) {
            if let Some(h) = &s.channel {
                old.push((s.subtask, self.read_channel(h)?));
            }
        }
        if old.is_empty() {
            return Ok(Vec::new());
        }
        let new = (subtask, parallelism, range);
        replay_for(
            &old,
            op.parallelism,
            new,
            self.metadata.max_parallelism,
            batch_size,
        )
        .map_err(|e| RestoreError::Redistribution {
            uid: uid.to_owned(),
            message: e.to_string(),
        })
    }

    /// Reads and checks one channel-state file.
    fn read_channel(&self, h: &ChannelStateHandle) -> Result<ChannelState, RestoreError> {
        let path = format!("{}/{}", self.reader.location(), h.file);
        let damaged = |message: String| {
            RestoreError::Storage(StorageError {
                path: path.clone(),
                message,
            })
        };
        let bytes = self.reader.read_sized(&h.file, h.size)?;
        if snapshot::checksum(&bytes) != h.checksum {
            return Err(damaged(format!(
                "{} bytes with checksum {}, but _metadata says {} bytes with checksum {} (the file is damaged)",
                bytes.len(),
                snapshot::checksum(&bytes),
                h.size,
                h.checksum
            )));
        }
        ChannelState::decode(&bytes).map_err(|e| damaged(e.to_string()))
    }

    /// The operator state of node `uid`, one list per old subtask.
    pub fn operator_states(&self, uid: &str) -> Vec<Vec<Vec<u8>>> {
        self.subtasks_of(uid)
            .iter()
            .map(|s| s.operator_state.clone())
            .collect()
    }

    /// Loads the keyed state of key groups `range` of operator `uid` into
    /// `backend` and `timers`; returns the entries loaded.
    pub fn restore_keyed(
        &self,
        uid: &str,
        backend: &mut dyn KeyedStateBackend,
        timers: &mut TimerService,
    ) -> Result<usize, RestoreError> {
        let range: KeyGroupRange = backend.key_groups();
        let mut loaded = 0;
        for s in self.subtasks_of(uid) {
            let Some(h) = &s.keyed else { continue };
            if !h.overlaps(range) {
                continue;
            }
            let bytes = self.read_keyed(h)?;
            let dropped = self.dropped.get(uid);
            let drop = |state: &str| dropped.is_some_and(|d| d.contains(state));
            loaded +=
                snapshot::restore_without(&bytes, h, backend, timers, &drop).map_err(|error| {
                    RestoreError::StateFile {
                        path: format!("{}/{}", self.reader.location(), h.file),
                        error,
                    }
                })?;
        }
        Ok(loaded)
    }
}
