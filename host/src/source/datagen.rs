//! `datagen`: deterministic generated records, for examples and benchmarks.
//!
//! Record `i` (0-based, `i < count`) has the key `key-<n>` where
//! `n = splitmix64(i) mod keys` (or `i mod keys` with `sequential-keys`), the value `i` as decimal text, and, if
//! `timestamp-step-ms` is set, the timestamp `i * step` (with
//! `latency-stamps`, the wall-clock microseconds of the read that made it). Subtask `s` of `p`
//! generates the records with `i mod p == s`. An optional `rate` (any source's, see [`super::rate`]) caps the
//! records per second over all subtasks.
//!
//! With `fill-keys`, each subtask first emits one record for each key
//! `n < keys` with `n mod p == s`, in order: key `key-<n>`, value `n`, no
//! timestamp, not held to `rate`. A job then measures its records against
//! the state it has with all keys present (`weir bench latency`).

use super::{BatchInfo, BatchLimit, SourceError, SourceOutput, SourceReader};

/// The generator of one subtask.
#[derive(Debug)]
pub struct Datagen {
    /// The first index of this subtask (its subtask index).
    first: u64,
    next: u64,
    count: u64,
    keys: u64,
    sequential: bool,
    step: u64,
    timestamp_step: Option<u64>,
    latency_stamps: bool,
    /// The next key of the `fill-keys` records (`keys` or more: none left).
    fill_next: u64,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

/// SplitMix64: spreads consecutive indices over the key space.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key number `n` of record `i` (its key is `key-<n>`): `i` spread
/// by splitmix64, or `i` itself with `sequential-keys`, modulo `keys`.
#[inline]
pub fn key_number(i: u64, keys: u64, sequential: bool) -> u64 {
    let k = if sequential { i } else { splitmix64(i) };
    k % keys.max(1)
}

/// Appends `n` in decimal.
fn push_decimal(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

impl Datagen {
    /// The generator for subtask `subtask` of `parallelism`.
    pub fn new(
        count: u64,
        keys: u64,
        timestamp_step: Option<u64>,
        subtask: u32,
        parallelism: u32,
    ) -> Self {
        Datagen {
            first: u64::from(subtask),
            next: u64::from(subtask),
            count,
            keys: keys.max(1),
            sequential: false,
            step: u64::from(parallelism.max(1)),
            timestamp_step,
            latency_stamps: false,
            fill_next: u64::MAX,
            key_buf: Vec::with_capacity(32),
            value_buf: Vec::with_capacity(32),
        }
    }

    /// Keys in order (`i mod keys`) instead of spread out.
    pub fn sequential_keys(mut self, on: bool) -> Self {
        self.sequential = on;
        self
    }

    /// Stamps each record with the wall-clock microseconds of the read
    /// that generates it (one clock reading per batch: a batch's records
    /// are made within microseconds), for latency measurement.
    pub fn latency_stamps(mut self, on: bool) -> Self {
        self.latency_stamps = on;
        self
    }

    /// First one record for each of this subtask's keys (see the module).
    pub fn fill_keys(mut self, on: bool) -> Self {
        self.fill_next = if on { self.first } else { u64::MAX };
        self
    }

    /// Whether `fill-keys` records are left to send.
    fn filling(&self) -> bool {
        self.fill_next < self.keys
    }

    /// Appends `fill-keys` records until `limit`.
    fn fill(&mut self, out: &mut dyn SourceOutput, limit: BatchLimit) {
        let mut n = 0;
        while n < limit.records && self.filling() && out.byte_len() < limit.bytes {
            self.key_buf.clear();
            self.key_buf.extend_from_slice(b"key-");
            push_decimal(&mut self.key_buf, self.fill_next);
            // The value is the key's number: the digits after `key-`.
            out.push(Some(&self.key_buf), &self.key_buf[4..], None);
            self.fill_next = self.fill_next.saturating_add(self.step);
            n += 1;
        }
    }

    /// The key of record `i`.
    #[cfg(test)]
    pub fn key_of(i: u64, keys: u64) -> String {
        format!("key-{}", key_number(i, keys, false))
    }
}

/// The checkpointed position of one datagen subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct DatagenPosition {
    /// The next record index.
    next: u64,
    /// The subtask's index and the source's parallelism.
    subtask: u64,
    parallelism: u64,
    /// The next `fill-keys` key, while some are left (absent: none, as
    /// in checkpoints from before `fill-keys`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fill_next: Option<u64>,
}

impl Datagen {
    /// Continues from the position of the same subtask in `states` (one
    /// list per old subtask). Datagen splits records by index modulo the
    /// parallelism, so it cannot be restored at another parallelism.
    pub fn restore(&mut self, states: &[Vec<Vec<u8>>]) -> Result<(), SourceError> {
        let positions: Vec<DatagenPosition> = states
            .iter()
            .flatten()
            .map(|b| serde_json::from_slice(b))
            .collect::<Result<_, _>>()
            .map_err(|e| SourceError(format!("datagen: unreadable checkpoint position: {e}")))?;
        let subtask = self.first % self.step;
        if let Some(p) = positions.iter().find(|p| p.parallelism != self.step) {
            return Err(SourceError(format!(
                "datagen was checkpointed at parallelism {}, and cannot be restored at parallelism {} (records are split by index modulo the parallelism)",
                p.parallelism, self.step
            )));
        }
        if let Some(p) = positions.iter().find(|p| p.subtask == subtask) {
            self.next = p.next;
            // A fill the job no longer asks for is not resumed.
            if self.fill_next != u64::MAX {
                self.fill_next = p.fill_next.unwrap_or(u64::MAX);
            }
        }
        Ok(())
    }
}

impl SourceReader for Datagen {
    fn before_rate(&self) -> bool {
        self.filling()
    }

    fn snapshot_position(&self) -> Vec<Vec<u8>> {
        let p = DatagenPosition {
            next: self.next,
            subtask: self.first % self.step,
            parallelism: self.step,
            fill_next: self.filling().then_some(self.fill_next),
        };
        serde_json::to_vec(&p).map(|b| vec![b]).unwrap_or_default()
    }

    fn next_batch(
        &mut self,
        out: &mut dyn SourceOutput,
        limit: BatchLimit,
    ) -> Result<BatchInfo, SourceError> {
        if self.filling() {
            self.fill(out, limit);
            return Ok(BatchInfo {
                more: true,
                max_timestamp: None,
            });
        }
        let max = limit.records as u64;
        let mut max_timestamp = None;
        let mut n = 0;
        let stamp = self.latency_stamps.then(crate::clock::epoch_micros);
        while n < max && self.next < self.count && out.byte_len() < limit.bytes {
            let i = self.next;
            self.key_buf.clear();
            self.key_buf.extend_from_slice(b"key-");
            push_decimal(&mut self.key_buf, key_number(i, self.keys, self.sequential));
            self.value_buf.clear();
            push_decimal(&mut self.value_buf, i);
            let ts = stamp.or_else(|| self.timestamp_step.map(|s| i.saturating_mul(s) as i64));
            if ts.is_some() && stamp.is_none() {
                max_timestamp = ts;
            }
            out.push(Some(&self.key_buf), &self.value_buf, ts);
            self.next += self.step;
            n += 1;
        }
        Ok(BatchInfo {
            more: self.next < self.count,
            max_timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_wire::BatchBuilder;
    use weir_wire::BatchReader;

    #[test]
    fn subtasks_split_the_records_deterministically() {
        let mut all = Vec::new();
        for s in 0..2 {
            let mut g = Datagen::new(5, 3, Some(10), s, 2);
            for (key, value, ts) in read_all(&mut g) {
                let i: u64 = value.parse().expect("number");
                assert_eq!(key, Datagen::key_of(i, 3));
                assert_eq!(ts, Some(i as i64 * 10));
                all.push(i);
            }
        }
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn latency_stamps_are_the_wall_clock_microseconds_of_the_read() {
        let mut g = Datagen::new(3, 2, None, 0, 1).latency_stamps(true);
        let mut b = BatchBuilder::default();
        let before = crate::clock::epoch_micros();
        let info = g
            .next_batch(
                &mut b,
                BatchLimit {
                    records: 10,
                    bytes: 1 << 20,
                },
            )
            .expect("datagen");
        let after = crate::clock::epoch_micros();
        // Stamps are not event time: they move no watermark.
        assert_eq!(info.max_timestamp, None);
        let (buf, n) = b.take();
        assert_eq!(n, 3);
        for e in BatchReader::new(&buf) {
            let ts = e.expect("valid").timestamp.expect("stamped");
            assert!(
                (before..=after).contains(&ts),
                "{before} <= {ts} <= {after}"
            );
        }
    }

    fn read_all(g: &mut Datagen) -> Vec<(String, String, Option<i64>)> {
        let mut out = Vec::new();
        loop {
            let mut b = BatchBuilder::default();
            let limit = BatchLimit {
                records: 3,
                bytes: 1 << 20,
            };
            let more = g.next_batch(&mut b, limit).expect("datagen").more;
            let (buf, _) = b.take();
            for e in BatchReader::new(&buf) {
                let e = e.expect("valid");
                let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf8");
                out.push((text(e.key.unwrap_or_default()), text(e.value), e.timestamp));
            }
            if !more {
                return out;
            }
        }
    }

    #[test]
    fn fill_keys_sends_every_key_once_unstamped_before_the_records() {
        let mut keys = Vec::new();
        for s in 0..2 {
            let mut g = Datagen::new(4, 5, None, s, 2)
                .latency_stamps(true)
                .fill_keys(true);
            let all = read_all(&mut g);
            // Subtask s: its keys n = s, s+2, ... < 5 first, then its
            // records i = s, s+2 < 4, stamped.
            let fill = if s == 0 { 3 } else { 2 };
            assert_eq!(all.len(), fill + 2, "{all:?}");
            for (key, value, ts) in &all[..fill] {
                assert_eq!(key, &format!("key-{value}"));
                assert_eq!(*ts, None);
                keys.push(value.parse::<u64>().expect("number"));
            }
            assert!(all[fill..].iter().all(|(_, _, ts)| ts.is_some()));
        }
        keys.sort_unstable();
        assert_eq!(keys, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_restore_in_the_middle_of_the_fill_goes_on_where_it_stopped() {
        let mut g = Datagen::new(2, 6, None, 0, 1).fill_keys(true);
        let mut b = BatchBuilder::default();
        let limit = BatchLimit {
            records: 4,
            bytes: 1 << 20,
        };
        g.next_batch(&mut b, limit).expect("datagen");
        assert!(g.before_rate());
        let position = g.snapshot_position();
        // A job restored without `fill-keys` does not go on with it.
        let mut plain = Datagen::new(2, 6, None, 0, 1);
        plain
            .restore(std::slice::from_ref(&position))
            .expect("restore");
        assert!(!plain.before_rate());
        let mut again = Datagen::new(2, 6, None, 0, 1)
            .sequential_keys(true)
            .fill_keys(true);
        again.restore(&[position]).expect("restore");
        let rest: Vec<String> = read_all(&mut again).into_iter().map(|r| r.0).collect();
        assert_eq!(rest, ["key-4", "key-5", "key-0", "key-1"]);
        // Once the fill is done, the position is as before `fill-keys`.
        assert!(!again.before_rate());
        let done = String::from_utf8(again.snapshot_position().concat()).expect("utf8");
        assert!(!done.contains("fill"), "{done}");
    }
}
