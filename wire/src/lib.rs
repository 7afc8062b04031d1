//! The flat byte encodings that cross Weir's host/guest boundary.
//!
//! The WIT world (`wit/operator.wit`) passes batches as `list<u8>` buffers,
//! because one buffer per batch costs one copy where a list of records costs
//! an allocation per record. This crate is the one place that writes and
//! reads those buffers; the host and the guest SDK both use it, and the host
//! also uses the batch encoding on its channels, so a batch reaches a guest
//! without being re-encoded.
//!
//! * [`BatchBuilder`] / [`BatchReader`]: elements (the *batch encoding*).
//! * [`write_columns`] / [`read_columns`]: the same elements in the *column
//!   layout*, for guests that ask for it.
//! * [`SlotValuesBuilder`] / [`SlotValuesReader`]: prefetched value state.
//! * [`UpdatesBuilder`] / [`UpdatesReader`]: changed prefetched values.
//! * [`write_envelope`] / [`EnvelopeRef`]: a Kafka record's headers and
//!   value in one element value (`headers: true` sources and sinks).
//!
//! All integers are little endian; lengths are `u32`. Readers never panic on
//! malformed input: they return [`WireError`].

mod batch;
mod columns;
mod envelope;
mod slots;
mod updates;

pub use batch::{BatchBuilder, BatchReader, ElementRef, count_elements};
pub use columns::{ColumnElement, read_columns, write_columns};
pub use envelope::{ENVELOPE_VERSION, EnvelopeRef, HeaderRef, write_envelope};
pub use slots::{SlotValuesBuilder, SlotValuesReader};
pub use updates::{Update, UpdatesBuilder, UpdatesReader};

/// A buffer that does not follow the encoding it was read as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// What was being read when the buffer ended or held a bad value.
    pub what: &'static str,
    /// Byte offset in the buffer.
    pub offset: usize,
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "malformed buffer: bad {} at byte {}",
            self.what, self.offset
        )
    }
}

impl std::error::Error for WireError {}

/// A cursor over a byte buffer that reads little-endian fields.
#[derive(Debug, Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(WireError {
                what,
                offset: self.pos,
            }),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&bytes[..len as usize]);
}
