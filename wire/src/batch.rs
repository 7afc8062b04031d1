//! The batch encoding: elements one after the other.
//!
//! `flags: u8` (bit 0 key present, bit 1 timestamp present), then
//! `timestamp: i64` if present, then `key` (`u32` length and bytes) if
//! present, then `value` (`u32` length and bytes).

use crate::{Cursor, WireError, put_bytes};

const HAS_KEY: u8 = 1;
const HAS_TS: u8 = 2;

/// A borrowed view of one element in a batch buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementRef<'a> {
    /// The key, if the element has one.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub value: &'a [u8],
    /// Event time in milliseconds, if the element has one.
    pub timestamp: Option<i64>,
}

/// Appends elements to a batch buffer.
#[derive(Debug, Default, Clone)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    len: usize,
}

impl BatchBuilder {
    /// An empty builder with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> Self {
        BatchBuilder {
            buf: Vec::with_capacity(bytes),
            len: 0,
        }
    }

    /// Appends one element.
    pub fn push(&mut self, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
        let mut flags = 0;
        if key.is_some() {
            flags |= HAS_KEY;
        }
        if timestamp.is_some() {
            flags |= HAS_TS;
        }
        self.buf.push(flags);
        if let Some(ts) = timestamp {
            self.buf.extend_from_slice(&ts.to_le_bytes());
        }
        if let Some(k) = key {
            put_bytes(&mut self.buf, k);
        }
        put_bytes(&mut self.buf, value);
        self.len += 1;
    }

    /// Appends an element read from another batch.
    pub fn push_ref(&mut self, e: ElementRef<'_>) {
        self.push(e.key, e.value, e.timestamp);
    }

    /// Appends `count` elements that are already in the batch encoding
    /// (check them with [`count_elements`] first if they come from a guest).
    pub fn extend_encoded(&mut self, encoded: &[u8], count: usize) {
        self.buf.extend_from_slice(encoded);
        self.len += count;
    }

    /// Number of elements so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no element was pushed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Encoded size so far.
    pub fn byte_len(&self) -> usize {
        self.buf.len()
    }

    /// The encoded buffer so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Takes the encoded buffer and element count, leaving the builder empty
    /// with the same capacity reserved.
    pub fn take(&mut self) -> (Vec<u8>, usize) {
        let cap = self.buf.capacity();
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(cap));
        let len = std::mem::take(&mut self.len);
        (buf, len)
    }

    /// Empties the builder, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.len = 0;
    }
}

/// Checks that `buf` is a valid batch and counts its elements.
pub fn count_elements(buf: &[u8]) -> Result<usize, WireError> {
    let mut r = BatchReader::new(buf);
    let mut n = 0;
    while r.next_element()?.is_some() {
        n += 1;
    }
    Ok(n)
}

/// Reads the elements of a batch buffer in order.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    cur: Cursor<'a>,
}

impl<'a> BatchReader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        BatchReader {
            cur: Cursor::new(buf),
        }
    }

    /// The offset in the buffer of the next element: after an element is
    /// read, where its encoding ends, so a reader can copy whole elements
    /// as they are encoded.
    pub fn position(&self) -> usize {
        self.cur.pos
    }

    /// The next element, `Ok(None)` at the end.
    pub fn next_element(&mut self) -> Result<Option<ElementRef<'a>>, WireError> {
        if self.cur.at_end() {
            return Ok(None);
        }
        let flags = self.cur.u8("element flags")?;
        if flags & !(HAS_KEY | HAS_TS) != 0 {
            return Err(WireError {
                what: "element flags",
                offset: self.cur.pos - 1,
            });
        }
        let timestamp = if flags & HAS_TS != 0 {
            Some(self.cur.i64("element timestamp")?)
        } else {
            None
        };
        let key = if flags & HAS_KEY != 0 {
            Some(self.cur.bytes("element key")?)
        } else {
            None
        };
        let value = self.cur.bytes("element value")?;
        Ok(Some(ElementRef {
            key,
            value,
            timestamp,
        }))
    }
}

impl<'a> Iterator for BatchReader<'a> {
    type Item = Result<ElementRef<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_element().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = BatchBuilder::default();
        b.push(Some(b"k"), b"v1", Some(-5));
        b.push(None, b"", None);
        b.push(Some(b""), b"x", None);
        let (buf, n) = b.take();
        assert_eq!(n, 3);
        let got: Vec<_> = BatchReader::new(&buf)
            .collect::<Result<_, _>>()
            .expect("valid");
        assert_eq!(
            got,
            vec![
                ElementRef {
                    key: Some(b"k"),
                    value: b"v1",
                    timestamp: Some(-5)
                },
                ElementRef {
                    key: None,
                    value: b"",
                    timestamp: None
                },
                ElementRef {
                    key: Some(b""),
                    value: b"x",
                    timestamp: None
                },
            ]
        );
    }

    #[test]
    fn truncated_buffer_is_an_error() {
        let mut b = BatchBuilder::default();
        b.push(Some(b"key"), b"value", Some(1));
        let (buf, _) = b.take();
        for cut in 1..buf.len() {
            let r: Result<Vec<_>, _> = BatchReader::new(&buf[..cut]).collect();
            assert!(r.is_err(), "cut at {cut} must fail");
        }
        let bad = [0xffu8];
        assert!(BatchReader::new(&bad).next_element().is_err());
    }
}
