//! Prefetched value state: for each key slot, for each prefetched state,
//! `present: u8` and, if 1, the value (`u32` length and bytes).

use crate::{Cursor, WireError, put_bytes};

/// Writes the prefetched values of a batch, slot by slot.
#[derive(Debug, Default, Clone)]
pub struct SlotValuesBuilder {
    buf: Vec<u8>,
}

impl SlotValuesBuilder {
    /// A builder that writes into `buf` (cleared first), to reuse its
    /// allocation.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        SlotValuesBuilder { buf }
    }

    /// The encoded buffer.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// Appends the next value (slot-major, then state order).
    pub fn push(&mut self, value: Option<&[u8]>) {
        match value {
            Some(v) => {
                self.buf.push(1);
                put_bytes(&mut self.buf, v);
            }
            None => self.buf.push(0),
        }
    }

    /// The encoded buffer.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the builder, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Reads prefetched values in the order they were written.
#[derive(Debug, Clone)]
pub struct SlotValuesReader<'a> {
    cur: Cursor<'a>,
}

impl<'a> SlotValuesReader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        SlotValuesReader {
            cur: Cursor::new(buf),
        }
    }

    /// Whether every value was read.
    pub fn at_end(&self) -> bool {
        self.cur.at_end()
    }

    /// Byte offset of the next value.
    pub fn position(&self) -> usize {
        self.cur.pos
    }

    /// The next value; an error if the buffer ends or is malformed.
    pub fn next_value(&mut self) -> Result<Option<&'a [u8]>, WireError> {
        match self.cur.u8("prefetched presence")? {
            0 => Ok(None),
            1 => Ok(Some(self.cur.bytes("prefetched value")?)),
            _ => Err(WireError {
                what: "prefetched presence",
                offset: self.cur.pos - 1,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = SlotValuesBuilder::default();
        b.push(Some(b"abc"));
        b.push(None);
        let mut r = SlotValuesReader::new(b.as_bytes());
        assert_eq!(r.next_value(), Ok(Some(&b"abc"[..])));
        assert_eq!(r.next_value(), Ok(None));
        assert!(r.next_value().is_err());
    }
}
