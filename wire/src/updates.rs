//! Changed prefetched values returned by `process`: `slot: u32`, `id: u32`,
//! `op: u8` (0 clear, 1 set) and, for set, the value (`u32` length and
//! bytes), repeated.

use crate::{Cursor, WireError, put_bytes};

/// One change to a prefetched value state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    /// The key slot in the batch.
    pub slot: u32,
    /// The state id from `declare`.
    pub state: u32,
    /// The new value, `None` to clear.
    pub value: Option<&'a [u8]>,
}

/// Writes state updates.
#[derive(Debug, Default, Clone)]
pub struct UpdatesBuilder {
    buf: Vec<u8>,
}

impl UpdatesBuilder {
    /// Appends one update.
    pub fn push(&mut self, slot: u32, state: u32, value: Option<&[u8]>) {
        self.buf.extend_from_slice(&slot.to_le_bytes());
        self.buf.extend_from_slice(&state.to_le_bytes());
        match value {
            Some(v) => {
                self.buf.push(1);
                put_bytes(&mut self.buf, v);
            }
            None => self.buf.push(0),
        }
    }

    /// Takes the encoded buffer, leaving the builder empty.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Reads state updates in order.
#[derive(Debug, Clone)]
pub struct UpdatesReader<'a> {
    cur: Cursor<'a>,
}

impl<'a> UpdatesReader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        UpdatesReader {
            cur: Cursor::new(buf),
        }
    }

    /// The next update, `Ok(None)` at the end.
    pub fn next_update(&mut self) -> Result<Option<Update<'a>>, WireError> {
        if self.cur.at_end() {
            return Ok(None);
        }
        let slot = self.cur.u32("update slot")?;
        let state = self.cur.u32("update state id")?;
        let value = match self.cur.u8("update op")? {
            0 => None,
            1 => Some(self.cur.bytes("update value")?),
            _ => {
                return Err(WireError {
                    what: "update op",
                    offset: self.cur.pos - 1,
                });
            }
        };
        Ok(Some(Update { slot, state, value }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = UpdatesBuilder::default();
        b.push(3, 0, Some(b"7"));
        b.push(1, 2, None);
        let buf = b.take();
        let mut r = UpdatesReader::new(&buf);
        assert_eq!(
            r.next_update(),
            Ok(Some(Update {
                slot: 3,
                state: 0,
                value: Some(&b"7"[..])
            }))
        );
        assert_eq!(
            r.next_update(),
            Ok(Some(Update {
                slot: 1,
                state: 2,
                value: None
            }))
        );
        assert_eq!(r.next_update(), Ok(None));
        assert!(UpdatesReader::new(&buf[..5]).next_update().is_err());
    }
}
