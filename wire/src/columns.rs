//! The column layout of a batch: the same elements as the batch encoding,
//! field by field instead of element by element, for guests whose language
//! slices a column in one native call but pays for every interpreted step
//! (Python: `struct.unpack_from` of a whole column, then `map` over it).
//! A guest asks for it in `open` (`batch-layout.use-columns`).
//!
//! Header: `count: u32`, `keyed: u32` (1 on a keyed input, 0 on a
//! non-keyed one and on an empty batch). Then,
//! each with `count` entries: `timestamp: i64` (0 where absent), `slot: u32`
//! (only when keyed: the element's key slot, so `key-slots` is not needed),
//! `key-end: u32` and `value-end: u32` (where the element's key and value
//! end in the key and value bytes; an absent key ends where the one before
//! it did), `flags: u8` (as in the batch encoding). Then the key bytes and
//! the value bytes, each concatenated. The fixed-width columns come first,
//! widest first, so each is aligned to its width relative to the start of
//! the buffer.

use crate::{BatchReader, Cursor, WireError};

const HAS_KEY: u8 = 1;
const HAS_TS: u8 = 2;

/// Writes the elements of `rows` (the batch encoding) into `out` in the
/// column layout; `slots` holds each element's key slot on a keyed input
/// and is empty on a non-keyed one.
pub fn write_columns(rows: &[u8], slots: &[u32], out: &mut Vec<u8>) -> Result<(), WireError> {
    let mut timestamps = Vec::new();
    let mut key_ends = Vec::new();
    let mut value_ends = Vec::new();
    let mut flags = Vec::new();
    let (mut key_len, mut value_len) = (0u32, 0u32);
    for e in BatchReader::new(rows) {
        let e = e?;
        timestamps.push(e.timestamp.unwrap_or(0));
        key_len = add32(key_len, e.key.unwrap_or_default())?;
        value_len = add32(value_len, e.value)?;
        key_ends.push(key_len);
        value_ends.push(value_len);
        flags.push(
            (u8::from(e.key.is_some()) * HAS_KEY) | (u8::from(e.timestamp.is_some()) * HAS_TS),
        );
    }
    let count = flags.len();
    let keyed = !slots.is_empty();
    if keyed && slots.len() != count {
        return Err(WireError {
            what: "key slots (one per element)",
            offset: slots.len(),
        });
    }
    out.clear();
    let per_element = if keyed { 21 } else { 17 };
    out.reserve(8 + count * per_element + rows.len());
    out.extend_from_slice(&len32_of(count)?.to_le_bytes());
    out.extend_from_slice(&u32::from(keyed).to_le_bytes());
    put_all(out, &timestamps, i64::to_le_bytes);
    put_all(out, slots, u32::to_le_bytes);
    put_all(out, &key_ends, u32::to_le_bytes);
    put_all(out, &value_ends, u32::to_le_bytes);
    out.extend_from_slice(&flags);
    for e in BatchReader::new(rows).flatten() {
        out.extend_from_slice(e.key.unwrap_or_default());
    }
    for e in BatchReader::new(rows).flatten() {
        out.extend_from_slice(e.value);
    }
    Ok(())
}

/// Appends one fixed-width column, each item as `bytes` writes it.
fn put_all<T: Copy, const N: usize>(out: &mut Vec<u8>, items: &[T], bytes: fn(T) -> [u8; N]) {
    items.iter().for_each(|&i| out.extend_from_slice(&bytes(i)));
}

/// `total` plus the length of `b`, as the u32 the layout holds.
fn add32(total: u32, b: &[u8]) -> Result<u32, WireError> {
    total.checked_add(len32_of(b.len())?).ok_or(WireError {
        what: "column bytes (over 4 GiB)",
        offset: 0,
    })
}

fn len32_of(n: usize) -> Result<u32, WireError> {
    u32::try_from(n).map_err(|_| WireError {
        what: "length (over 4 GiB)",
        offset: 0,
    })
}

/// One element read back from the column layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnElement<'a> {
    /// The element's key slot (None on a non-keyed input).
    pub slot: Option<u32>,
    /// The key, if the element has one.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub value: &'a [u8],
    /// Event time in milliseconds, if the element has one.
    pub timestamp: Option<i64>,
}

/// Reads a buffer in the column layout back into its elements (what a
/// guest does; the host writes it, and its tests read it here).
pub fn read_columns(buf: &[u8]) -> Result<Vec<ColumnElement<'_>>, WireError> {
    let mut cur = Cursor::new(buf);
    let count = cur.u32("column count")? as usize;
    let keyed = cur.u32("column keyed")? != 0;
    let mut column = |width: usize, what: &'static str| -> Result<&[u8], WireError> {
        let bytes = count
            .checked_mul(width)
            .ok_or(WireError { what, offset: 0 })?;
        cur.take(bytes, what)
    };
    let timestamps = column(8, "timestamps")?;
    let slots = if keyed {
        Some(column(4, "slots")?)
    } else {
        None
    };
    let key_ends = column(4, "key ends")?;
    let value_ends = column(4, "value ends")?;
    let flags = column(1, "flags")?;
    let u32_at = |col: &[u8], i: usize| {
        u32::from_le_bytes([col[4 * i], col[4 * i + 1], col[4 * i + 2], col[4 * i + 3]]) as usize
    };
    let key_total = if count == 0 {
        0
    } else {
        u32_at(key_ends, count - 1)
    };
    let keys = cur.take(key_total, "key bytes")?;
    let value_total = if count == 0 {
        0
    } else {
        u32_at(value_ends, count - 1)
    };
    let values = cur.take(value_total, "value bytes")?;
    if !cur.at_end() {
        return Err(WireError {
            what: "bytes after the value bytes",
            offset: cur.pos,
        });
    }
    let mut out = Vec::with_capacity(count);
    let (mut key_start, mut value_start) = (0, 0);
    for (i, &f) in flags.iter().enumerate() {
        let (key_end, value_end) = (u32_at(key_ends, i), u32_at(value_ends, i));
        let bad = |what| WireError { what, offset: i };
        let key = keys.get(key_start..key_end).ok_or(bad("key end"))?;
        let value = values.get(value_start..value_end).ok_or(bad("value end"))?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&timestamps[8 * i..8 * i + 8]);
        out.push(ColumnElement {
            slot: slots.map(|s| u32_at(s, i) as u32),
            key: (f & HAS_KEY != 0).then_some(key),
            value,
            timestamp: (f & HAS_TS != 0).then_some(i64::from_le_bytes(ts)),
        });
        (key_start, value_start) = (key_end, value_end);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BatchBuilder;

    #[test]
    fn columns_hold_the_rows_elements_and_slots_in_order() {
        let mut b = BatchBuilder::default();
        b.push(Some(b"ab"), b"v1", Some(-5));
        b.push(None, b"", None);
        b.push(Some(b""), b"xyz", None);
        b.push(Some(b"ab"), b"v4", Some(i64::MAX));
        let (rows, _) = b.take();
        let mut out = Vec::new();
        write_columns(&rows, &[0, 1, 2, 0], &mut out).expect("valid rows");
        let got = read_columns(&out).expect("valid columns");
        let want = [
            (Some(0), Some(&b"ab"[..]), &b"v1"[..], Some(-5)),
            (Some(1), None, &b""[..], None),
            (Some(2), Some(&b""[..]), &b"xyz"[..], None),
            (Some(0), Some(&b"ab"[..]), &b"v4"[..], Some(i64::MAX)),
        ];
        assert_eq!(got.len(), want.len());
        for (g, (slot, key, value, timestamp)) in got.iter().zip(want) {
            assert_eq!(
                (g.slot, g.key, g.value, g.timestamp),
                (slot, key, value, timestamp)
            );
        }
    }

    #[test]
    fn the_layout_is_as_documented() {
        let mut b = BatchBuilder::default();
        b.push(Some(b"k"), b"vv", None);
        let (rows, _) = b.take();
        let mut out = Vec::new();
        write_columns(&rows, &[7], &mut out).expect("valid rows");
        let mut want = Vec::new();
        want.extend_from_slice(&1u32.to_le_bytes()); // count
        want.extend_from_slice(&1u32.to_le_bytes()); // keyed
        want.extend_from_slice(&0i64.to_le_bytes()); // timestamp
        want.extend_from_slice(&7u32.to_le_bytes()); // slot
        want.extend_from_slice(&1u32.to_le_bytes()); // key end
        want.extend_from_slice(&2u32.to_le_bytes()); // value end
        want.push(1); // flags: key
        want.extend_from_slice(b"kvv");
        assert_eq!(out, want);
    }

    #[test]
    fn a_non_keyed_batch_has_no_slots_and_an_empty_one_only_a_header() {
        let mut b = BatchBuilder::default();
        b.push(None, b"v", Some(3));
        let (rows, _) = b.take();
        let mut out = Vec::new();
        write_columns(&rows, &[], &mut out).expect("valid rows");
        let got = read_columns(&out).expect("valid columns");
        assert_eq!(got[0].slot, None);
        assert_eq!(got[0].timestamp, Some(3));
        write_columns(&[], &[], &mut out).expect("empty");
        assert_eq!(out, [0u8; 8]);
    }

    #[test]
    fn slots_that_do_not_match_the_elements_and_bad_buffers_are_errors() {
        let mut b = BatchBuilder::default();
        b.push(Some(b"k"), b"v", None);
        let (rows, _) = b.take();
        let mut out = Vec::new();
        assert!(write_columns(&rows, &[0, 1], &mut out).is_err());
        assert!(write_columns(&rows[..3], &[], &mut out).is_err());
        write_columns(&rows, &[0], &mut out).expect("valid");
        assert!(read_columns(&out[..out.len() - 1]).is_err());
        let mut longer = out.clone();
        longer.push(0);
        assert!(read_columns(&longer).is_err());
    }
}
