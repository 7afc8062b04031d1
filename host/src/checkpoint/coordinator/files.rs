//! The coordinator's writing side: a task's state files (the asynchronous
//! part of a snapshot), into the job's checkpoint storage or a savepoint
//! folder, and the `_metadata` of a completed snapshot.

use std::time::Instant;

use super::Coordinator;
use super::target::{Target, Written};
use crate::checkpoint::channel_state::ChannelStateHandle;
use crate::checkpoint::fs::StorageError;
use crate::checkpoint::hub::TaskAck;
use crate::checkpoint::layout::{channel_file_name, keyed_file_name};
use crate::checkpoint::metadata::{
    CheckpointMetadata, ComponentIdentity, OperatorSnapshot, SubtaskState,
};
use crate::checkpoint::pending::Pending;
use crate::checkpoint::stats::ms;
use crate::clock::epoch_ms;
use crate::config::{CheckpointingMode, SavepointFormat};
use crate::state::snapshot::checksum;

impl Coordinator<'_> {
    /// Remembers the states the operator of `ack` declared, for the
    /// identities in `_metadata`.
    pub(super) fn remember_declared(&mut self, ack: &TaskAck) {
        if !ack.state.declared.is_empty() {
            self.declared.insert(ack.node, ack.state.declared.clone());
        }
    }

    /// Writes a task's keyed state files (the asynchronous part) to
    /// `target`.
    pub(super) fn write_state(
        &self,
        target: Target<'_>,
        ack: &TaskAck,
    ) -> Result<Written, StorageError> {
        let started = Instant::now();
        let mut size = 0;
        let mut written = 0;
        let node = &self.graph.nodes[ack.node];
        let name = keyed_file_name(ack.node, &node.uid, ack.subtask);
        let keyed = match &ack.state.keyed {
            Some(snap) => {
                self.write_file(target, &name, &snap.bytes)?;
                size += snap.bytes.len() as u64;
                written += snap.bytes.len() as u64;
                Some(snap.handle(name.clone()))
            }
            None => None,
        };
        let incremental = match &ack.state.native {
            Some(native) => {
                let stem = name.strip_suffix(".keyed").unwrap_or(&name);
                let (handle, bytes) = match target {
                    Target::Checkpoint(id) => self.storage.write_incremental(id, stem, native)?,
                    Target::Savepoint(folder) => folder.write_native(stem, native)?,
                };
                size += handle.size();
                written += bytes;
                Some(handle)
            }
            None => None,
        };
        let channel = self.write_channel(target, ack)?;
        if let Some(h) = &channel {
            size += h.size;
            written += h.size;
        }
        let operator_bytes = ack
            .state
            .operator_state
            .iter()
            .map(|s| s.len() as u64)
            .sum::<u64>();
        Ok((
            SubtaskState {
                subtask: ack.subtask,
                keyed,
                incremental,
                operator_state: ack.state.operator_state.clone(),
                sync_ms: ms(ack.sync),
                async_ms: ms(started.elapsed()),
                alignment_ms: ms(ack.alignment),
                start_delay_ms: ms(ack.start_delay),
                watermark: ack.state.watermark,
                unaligned: ack.state.channel.is_some(),
                persisted_bytes: ack.state.channel.as_ref().map_or(0, |c| c.bytes()),
                processed_bytes: ack.state.processed_bytes,
                channel,
            },
            size + operator_bytes,
            written + operator_bytes,
        ))
    }

    /// Writes file `name` of a snapshot to `target`.
    fn write_file(&self, target: Target<'_>, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match target {
            Target::Checkpoint(id) => self.storage.write(id, name, bytes),
            Target::Savepoint(folder) => folder.write(name, bytes),
        }
    }

    /// Writes a task's channel state (an unaligned checkpoint's in-flight
    /// records), if it holds any, and returns its handle.
    fn write_channel(
        &self,
        target: Target<'_>,
        ack: &TaskAck,
    ) -> Result<Option<ChannelStateHandle>, StorageError> {
        let Some(state) = ack.state.channel.as_ref().filter(|c| c.elements() > 0) else {
            return Ok(None);
        };
        let node = &self.graph.nodes[ack.node];
        let file = channel_file_name(ack.node, &node.uid, ack.subtask);
        let bytes = state.encode();
        self.write_file(target, &file, &bytes)?;
        Ok(Some(ChannelStateHandle {
            file,
            size: bytes.len() as u64,
            checksum: checksum(&bytes),
            elements: state.elements(),
            forward: state.has_forward(),
        }))
    }

    /// The `_metadata` of checkpoint `id` from its acknowledged states;
    /// with `savepoint`, of a savepoint in that format.
    pub(super) fn metadata(
        &self,
        id: u64,
        p: Pending,
        is_final: bool,
        savepoint: Option<SavepointFormat>,
    ) -> CheckpointMetadata {
        let graph = self.graph;
        let mut operators = Vec::with_capacity(graph.nodes.len());
        for (n, node) in graph.nodes.iter().enumerate() {
            let mut subtasks: Vec<SubtaskState> = p
                .states
                .iter()
                .filter(|((node, _), _)| *node == n)
                .map(|(_, s)| s.clone())
                .collect();
            subtasks.sort_by_key(|s| s.subtask);
            let component = self
                .components
                .get(n)
                .and_then(Option::as_ref)
                .map(|sha256| ComponentIdentity {
                    sha256: sha256.clone(),
                    world: self.world.to_owned(),
                    states: self.declared.get(&n).cloned().unwrap_or_default(),
                });
            operators.push(OperatorSnapshot {
                uid: node.uid.clone(),
                node: node.id.clone(),
                parallelism: node.parallelism,
                subtasks,
                component,
            });
        }
        CheckpointMetadata {
            job_id: self.job_id.to_owned(),
            job_name: graph.name.clone(),
            checkpoint_id: id,
            kind: if savepoint.is_some() {
                "savepoint"
            } else {
                "checkpoint"
            }
            .into(),
            savepoint_format: savepoint.map(|f| f.name().to_owned()),
            trigger_timestamp: p.trigger_ts,
            completed_timestamp: epoch_ms(),
            duration_ms: ms(p.trigger_time.elapsed()),
            state_size: p.size,
            checkpointed_size: p.written,
            max_parallelism: graph.max_parallelism,
            mode: match self.config.mode {
                CheckpointingMode::ExactlyOnce => "EXACTLY_ONCE".into(),
                CheckpointingMode::AtLeastOnce => "AT_LEAST_ONCE".into(),
            },
            backend: graph.config.backend.kind.name().into(),
            is_final,
            operators,
        }
    }
}
