//! Channel state: the in-flight records an unaligned checkpoint's barrier
//! overtook on a task's inputs, kept in the checkpoint and replayed before
//! new input on restore (Flink's `InputChannelStateHandle`).
//!
//! One file per subtask, `<node>-<uid>-<subtask>.channel`, format version
//! 1 (little endian):
//!
//! ```text
//! "WEIRCHAN"  u32 version  u32 inputs
//! per input:  u8 side  u8 partitioning  u64 elements  u64 bytes  <bytes>
//! ```
//!
//! `side` is the operator input (0 or 1) the records go to, the
//! partitioning that of the edge they came over (0 forward, 1 rebalance,
//! 2 hash), and the bytes are elements in the batch encoding, in the order
//! they travelled. `_metadata` names the file with its size and xxh3
//! checksum ([`ChannelStateHandle`]). On restore at another parallelism,
//! records that came over a hash edge go to the subtask owning their key
//! group, those of a rebalance edge to subtask `old % new`; a forward
//! edge's cannot be re-split.

use serde::{Deserialize, Serialize};
use weir_wire::{BatchBuilder, BatchReader, count_elements};

use crate::channel::Batch;
use crate::keygroup::{KeyGroupRange, key_group};
use crate::spec::Partitioning;

/// The format version this build writes and reads.
pub const CHANNEL_STATE_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"WEIRCHAN";

/// The records overtaken on one input channel of a subtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputChannelState {
    /// The operator input they go to (0, or 1 for a second input).
    pub side: u8,
    /// The partitioning of the edge they came over.
    pub partition: Partitioning,
    /// The elements, in the batch encoding.
    pub data: Vec<u8>,
    /// How many elements `data` holds.
    pub elements: u64,
}

/// A subtask's channel state: one entry per input channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChannelState {
    /// Per input channel, in the task's input order.
    pub inputs: Vec<InputChannelState>,
}

/// A channel-state file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelStateError {
    /// Not a channel-state file, or cut short.
    #[error("not a Weir channel-state file, or truncated")]
    Malformed,
    /// Written by another format version.
    #[error(
        "channel-state format version {0}, but this build reads version {CHANNEL_STATE_VERSION}"
    )]
    Version(u32),
    /// Records that came over a forward edge cannot go to another
    /// parallelism.
    #[error(
        "the checkpoint holds in-flight records of a forward edge (unaligned.forced), which restore only at the parallelism they were taken at"
    )]
    ForwardRescale,
}

/// Where a subtask's channel state is, as `_metadata` names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelStateHandle {
    /// The file, in the checkpoint folder.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its xxh3-64 checksum, in hex.
    pub checksum: String,
    /// Elements it holds, over all inputs.
    pub elements: u64,
    /// Some of them came over a forward edge (`unaligned.forced`): the
    /// checkpoint restores only at the parallelism it was taken at.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forward: bool,
}

fn partition_code(p: Partitioning) -> u8 {
    match p {
        Partitioning::Forward => 0,
        Partitioning::Rebalance => 1,
        Partitioning::Hash => 2,
    }
}

fn partition_of(code: u8) -> Option<Partitioning> {
    match code {
        0 => Some(Partitioning::Forward),
        1 => Some(Partitioning::Rebalance),
        2 => Some(Partitioning::Hash),
        _ => None,
    }
}

impl ChannelState {
    /// Empty channel state for inputs of these (side, partitioning).
    pub fn for_inputs(inputs: impl Iterator<Item = (u8, Partitioning)>) -> Self {
        ChannelState {
            inputs: inputs
                .map(|(side, partition)| InputChannelState {
                    side,
                    partition,
                    data: Vec::new(),
                    elements: 0,
                })
                .collect(),
        }
    }

    /// Adds a batch taken from input `input`.
    pub fn record(&mut self, input: usize, batch: &Batch) {
        if let Some(s) = self.inputs.get_mut(input) {
            s.data.extend_from_slice(&batch.data);
            s.elements += batch.len as u64;
        }
    }

    /// Bytes of records held (Flink's "persisted in-flight data").
    pub fn bytes(&self) -> u64 {
        self.inputs.iter().map(|s| s.data.len() as u64).sum()
    }

    /// Whether records that came over a forward edge are held.
    pub fn has_forward(&self) -> bool {
        self.inputs
            .iter()
            .any(|s| s.elements > 0 && s.partition == Partitioning::Forward)
    }

    /// Elements held.
    pub fn elements(&self) -> u64 {
        self.inputs.iter().map(|s| s.elements).sum()
    }

    /// The file's bytes (inputs without records are left out).
    pub fn encode(&self) -> Vec<u8> {
        let kept: Vec<&InputChannelState> = self.inputs.iter().filter(|s| s.elements > 0).collect();
        let mut out = Vec::with_capacity(16 + self.bytes() as usize + 18 * kept.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CHANNEL_STATE_VERSION.to_le_bytes());
        out.extend_from_slice(&(kept.len() as u32).to_le_bytes());
        for s in kept {
            out.push(s.side);
            out.push(partition_code(s.partition));
            out.extend_from_slice(&s.elements.to_le_bytes());
            out.extend_from_slice(&(s.data.len() as u64).to_le_bytes());
            out.extend_from_slice(&s.data);
        }
        out
    }

    /// Reads a file's bytes, checking every element.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChannelStateError> {
        let mut r = Cursor(bytes);
        if r.take(8)? != MAGIC {
            return Err(ChannelStateError::Malformed);
        }
        let version = u32::from_le_bytes(r.array()?);
        if version != CHANNEL_STATE_VERSION {
            return Err(ChannelStateError::Version(version));
        }
        let count = u32::from_le_bytes(r.array()?);
        let mut inputs = Vec::new();
        for _ in 0..count {
            let [side, code] = r.array()?;
            let partition = partition_of(code).ok_or(ChannelStateError::Malformed)?;
            if side > 1 {
                return Err(ChannelStateError::Malformed);
            }
            let elements = u64::from_le_bytes(r.array()?);
            let len = usize::try_from(u64::from_le_bytes(r.array()?))
                .map_err(|_| ChannelStateError::Malformed)?;
            let data = r.take(len)?.to_vec();
            if count_elements(&data).ok() != usize::try_from(elements).ok() {
                return Err(ChannelStateError::Malformed);
            }
            inputs.push(InputChannelState {
                side,
                partition,
                data,
                elements,
            });
        }
        if !r.0.is_empty() {
            return Err(ChannelStateError::Malformed);
        }
        Ok(ChannelState { inputs })
    }
}

/// A reader over a file's bytes.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ChannelStateError> {
        if self.0.len() < n {
            return Err(ChannelStateError::Malformed);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ChannelStateError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}

/// The records a new subtask replays: from the channel states of the old
/// subtasks (`(old subtask index, state)`, taken at `old_parallelism`),
/// those that belong to new subtask `subtask` of `parallelism`, owning
/// key groups `range`. In batches of at most `batch_size`, with the
/// operator input each goes to.
pub fn replay_for(
    old: &[(u32, ChannelState)],
    old_parallelism: u32,
    (subtask, parallelism, range): (u32, u32, KeyGroupRange),
    max_parallelism: u32,
    batch_size: usize,
) -> Result<Vec<(u8, Batch)>, ChannelStateError> {
    let same = old_parallelism == parallelism;
    let mut out = Vec::new();
    for (old_subtask, state) in old {
        for input in &state.inputs {
            let mut builder = BatchBuilder::default();
            let whole = match input.partition {
                _ if same => *old_subtask == subtask,
                Partitioning::Forward => return Err(ChannelStateError::ForwardRescale),
                Partitioning::Rebalance => old_subtask % parallelism == subtask,
                Partitioning::Hash => false,
            };
            let keyed = !same && input.partition == Partitioning::Hash;
            if !whole && !keyed {
                continue;
            }
            for e in BatchReader::new(&input.data) {
                let e = e.map_err(|_| ChannelStateError::Malformed)?;
                if keyed && !range.contains(key_group(e.key.unwrap_or_default(), max_parallelism)) {
                    continue;
                }
                builder.push_ref(e);
                if builder.len() >= batch_size {
                    let (data, len) = builder.take();
                    out.push((input.side, Batch { data, len }));
                }
            }
            if !builder.is_empty() {
                let (data, len) = builder.take();
                out.push((input.side, Batch { data, len }));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygroup::subtask_for_key_group;

    fn state(partition: Partitioning, keys: &[&str]) -> ChannelState {
        let mut s = ChannelState::for_inputs([(0, partition)].into_iter());
        let mut b = BatchBuilder::default();
        for k in keys {
            b.push(Some(k.as_bytes()), b"v", Some(1));
        }
        let (data, len) = b.take();
        s.record(0, &Batch { data, len });
        s
    }

    fn keys_of(batches: &[(u8, Batch)]) -> Vec<String> {
        let mut keys = Vec::new();
        for (_, b) in batches {
            for e in BatchReader::new(&b.data) {
                let e = e.expect("element");
                keys.push(String::from_utf8_lossy(e.key.unwrap_or_default()).into_owned());
            }
        }
        keys
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let s = state(Partitioning::Hash, &["a", "b", "c"]);
        let bytes = s.encode();
        assert_eq!(ChannelState::decode(&bytes), Ok(s.clone()));
        assert_eq!(s.elements(), 3);
        assert_eq!(
            ChannelState::decode(&bytes[..bytes.len() - 1]),
            Err(ChannelStateError::Malformed)
        );
        let mut newer = bytes.clone();
        newer[8] = 2;
        assert_eq!(
            ChannelState::decode(&newer),
            Err(ChannelStateError::Version(2))
        );
        assert_eq!(
            ChannelState::decode(b"garbage"),
            Err(ChannelStateError::Malformed)
        );
    }

    #[test]
    fn hash_records_are_re_split_by_key_group_and_each_replayed_once() {
        let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let old = vec![
            (0, state(Partitioning::Hash, &refs[..100])),
            (1, state(Partitioning::Hash, &refs[100..])),
        ];
        let mut all = Vec::new();
        for sub in 0..3 {
            let range = KeyGroupRange::for_subtask(128, 3, sub);
            let got = replay_for(&old, 2, (sub, 3, range), 128, 7).expect("replay");
            assert!(got.iter().all(|(_, b)| b.len <= 7));
            for k in keys_of(&got) {
                let kg = key_group(k.as_bytes(), 128);
                assert_eq!(subtask_for_key_group(kg, 128, 3), sub, "{k}");
                all.push(k);
            }
        }
        all.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(all, want);
    }

    #[test]
    fn rebalance_records_go_whole_and_forward_ones_only_at_the_same_parallelism() {
        let old = vec![
            (0, state(Partitioning::Rebalance, &["a"])),
            (1, state(Partitioning::Rebalance, &["b"])),
            (2, state(Partitioning::Rebalance, &["c"])),
        ];
        let range = KeyGroupRange::for_subtask(128, 2, 0);
        let got = replay_for(&old, 3, (0, 2, range), 128, 10).expect("replay");
        assert_eq!(keys_of(&got), vec!["a", "c"]);
        let fwd = vec![(0, state(Partitioning::Forward, &["a"]))];
        let same = KeyGroupRange::for_subtask(128, 1, 0);
        assert_eq!(
            keys_of(&replay_for(&fwd, 1, (0, 1, same), 128, 10).expect("same")),
            vec!["a"]
        );
        assert_eq!(
            replay_for(&fwd, 1, (0, 2, range), 128, 10),
            Err(ChannelStateError::ForwardRescale)
        );
    }
}
