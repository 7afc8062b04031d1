//! The operator state of one exactly-once Kafka sink subtask in a
//! checkpoint: how many producer slots it opened and, for each
//! transaction it pre-committed and does not know committed, the
//! transaction's slot, its token (what the transaction's commit marker
//! holds) and its records, so that a restored job can write again what the
//! broker lost when the transaction was aborted.
//!
//! Layout (integers little-endian), version [`STATE_VERSION`]:
//!
//! ```text
//! "WKTX" version:u8 prefix_len:u16 prefix topic_len:u16 topic
//!   subtask:u32 slots:u32 count:u32
//!   count × (checkpoint:u64 slot:u32 token:i64 elements:u64 len:u64 records[len])
//! ```
//!
//! `prefix` and `topic` (UTF-8) are the sink's transactional-id prefix and
//! topic when the state was written: the transactional ids and markers
//! the state names are theirs.
//!
//! `records` are the transaction's elements in Weir's batch encoding.

use weir_wire::count_elements;

/// The version of the layout this build writes and reads.
pub const STATE_VERSION: u8 = 1;

const MAGIC: &[u8; 4] = b"WKTX";

/// The most producer slots a state may name: far more than a subtask opens
/// (one per checkpoint in flight or failed in a row), and few enough that
/// a damaged or hostile state cannot make recovery open millions.
pub const MAX_SLOTS: u32 = 1024;

/// One pre-committed transaction of a subtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTxn {
    /// The checkpoint whose barrier pre-committed it.
    pub checkpoint: u64,
    /// The slot of its producer (part of its transactional id).
    pub slot: u32,
    /// The value its commit marker holds once it is committed.
    pub token: i64,
    /// Its elements.
    pub elements: u64,
    /// Its elements, in Weir's batch encoding.
    pub records: Vec<u8>,
}

/// The state of one subtask.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnSinkState {
    /// The sink's transactional-id prefix.
    pub prefix: String,
    /// The sink's topic.
    pub topic: String,
    /// The subtask.
    pub subtask: u32,
    /// The producer slots it opened (`0..slots`).
    pub slots: u32,
    /// Its pre-committed transactions not known to be committed, oldest
    /// first.
    pub pending: Vec<PendingTxn>,
}

impl TxnSinkState {
    /// The encoded state.
    pub fn encode(&self) -> Vec<u8> {
        let size: usize = self.pending.iter().map(|p| 36 + p.records.len()).sum();
        let mut out = Vec::with_capacity(17 + size);
        out.extend_from_slice(MAGIC);
        out.push(STATE_VERSION);
        for text in [&self.prefix, &self.topic] {
            let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&text.as_bytes()[..len as usize]);
        }
        out.extend_from_slice(&self.subtask.to_le_bytes());
        out.extend_from_slice(&self.slots.to_le_bytes());
        let count = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for p in self.pending.iter().take(count as usize) {
            out.extend_from_slice(&p.checkpoint.to_le_bytes());
            out.extend_from_slice(&p.slot.to_le_bytes());
            out.extend_from_slice(&p.token.to_le_bytes());
            out.extend_from_slice(&p.elements.to_le_bytes());
            out.extend_from_slice(&(p.records.len() as u64).to_le_bytes());
            out.extend_from_slice(&p.records);
        }
        out
    }

    /// Decodes a state, refusing one that is damaged, of another version,
    /// or whose records do not hold the elements it says.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(4)? != MAGIC {
            return Err("not an exactly-once Kafka sink state".into());
        }
        let version = r.take(1)?[0];
        if version != STATE_VERSION {
            return Err(format!(
                "Kafka sink state version {version}; this weir reads version {STATE_VERSION}"
            ));
        }
        let prefix = r.text()?;
        let topic = r.text()?;
        let subtask = u32::from_le_bytes(r.array()?);
        let slots = u32::from_le_bytes(r.array()?);
        if slots > MAX_SLOTS {
            return Err(format!(
                "Kafka sink state of subtask {subtask} names {slots} producer slots, more than {MAX_SLOTS}"
            ));
        }
        let count = u32::from_le_bytes(r.array()?);
        let mut pending = Vec::new();
        for _ in 0..count {
            let checkpoint = r.u64()?;
            let slot = u32::from_le_bytes(r.array()?);
            let token = i64::from_le_bytes(r.array()?);
            if slot >= slots || token <= 0 {
                return Err(format!(
                    "Kafka sink state of subtask {subtask} names slot {slot} of {slots} with token {token}"
                ));
            }
            let elements = r.u64()?;
            let len = usize::try_from(r.u64()?).map_err(|_| "record length too large")?;
            let records = r.take(len)?.to_vec();
            let found = count_elements(&records).map_err(|e| e.to_string())?;
            if found as u64 != elements {
                return Err(format!(
                    "the transaction of checkpoint {checkpoint} says {elements} records but holds {found}"
                ));
            }
            pending.push(PendingTxn {
                checkpoint,
                slot,
                token,
                elements,
                records,
            });
        }
        if r.at != bytes.len() {
            return Err("Kafka sink state has trailing bytes".into());
        }
        Ok(TxnSinkState {
            prefix,
            topic,
            subtask,
            slots,
            pending,
        })
    }
}

/// Reads a state's fields in order, refusing to read past its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("Kafka sink state is truncated")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let s = self.take(N)?;
        let mut a = [0; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn text(&mut self) -> Result<String, String> {
        let len = u16::from_le_bytes(self.array()?);
        String::from_utf8(self.take(len as usize)?.to_vec())
            .map_err(|_| "Kafka sink state holds a name that is not UTF-8".to_owned())
    }
}

/// Decodes the states of every subtask (a snapshot's chunks of the sink),
/// refusing two of one subtask.
pub fn decode_all(states: &[Vec<u8>]) -> Result<Vec<TxnSinkState>, String> {
    let decoded: Vec<TxnSinkState> = states
        .iter()
        .map(|s| TxnSinkState::decode(s))
        .collect::<Result<_, _>>()?;
    let mut subtasks: Vec<u32> = decoded.iter().map(|s| s.subtask).collect();
    subtasks.sort_unstable();
    if let Some(w) = subtasks.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("Kafka sink state holds subtask {} twice", w[0]));
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_wire::BatchBuilder;

    fn sample() -> TxnSinkState {
        let mut b = BatchBuilder::with_capacity(64);
        b.push(Some(b"k1"), b"1", Some(1000));
        b.push(None, b"two", None);
        TxnSinkState {
            prefix: "weir-counts".into(),
            topic: "counts".into(),
            subtask: 1,
            slots: 3,
            pending: vec![PendingTxn {
                checkpoint: 5,
                slot: 2,
                token: 0x1234_5678_9abc,
                elements: 2,
                records: b.as_bytes().to_vec(),
            }],
        }
    }

    #[test]
    fn a_state_round_trips_and_damage_is_refused() {
        let s = sample();
        let bytes = s.encode();
        assert_eq!(TxnSinkState::decode(&bytes), Ok(s));
        for cut in [0, 3, 5, 16, 20, bytes.len() - 1] {
            assert!(TxnSinkState::decode(&bytes[..cut]).is_err(), "{cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(TxnSinkState::decode(&longer).is_err());
        let mut newer = bytes;
        newer[4] = STATE_VERSION + 1;
        let e = TxnSinkState::decode(&newer).expect_err("newer");
        assert!(e.contains("version 2"), "{e}");
    }

    #[test]
    fn hostile_states_are_refused() {
        let mut many = sample();
        many.slots = u32::MAX;
        assert!(TxnSinkState::decode(&many.encode()).is_err());
        let mut outside = sample();
        outside.pending[0].slot = 3;
        assert!(TxnSinkState::decode(&outside.encode()).is_err());
        let mut zero = sample();
        zero.pending[0].token = 0;
        assert!(TxnSinkState::decode(&zero.encode()).is_err());
        let twice = decode_all(&[sample().encode(), sample().encode()]).expect_err("twice");
        assert!(twice.contains("subtask 1 twice"), "{twice}");
    }

    /// A checked-in state of version 1: a change of the layout that
    /// breaks the checkpoints already written fails here.
    #[test]
    fn the_version_1_fixture_still_decodes() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/kafka-sink-state-v1.bin"
        );
        let bytes = std::fs::read(path).expect("fixture");
        assert_eq!(TxnSinkState::decode(&bytes), Ok(sample()));
    }
}
