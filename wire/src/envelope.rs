//! The record envelope: a Kafka record's headers and value in one element
//! value, which Kafka sources with `headers: true` emit and Kafka sinks
//! with `headers: true` take apart again.
//!
//! `version: u8` ([`ENVELOPE_VERSION`]), `count: u32`, then each header:
//! its name (`u32` length and UTF-8 bytes), `flags: u8` (bit 0: value
//! present) and, if present, its value (`u32` length and bytes); then the
//! record's value the same way, `flags: u8` and, if present, `u32` length
//! and bytes, which end the buffer. A null value (a tombstone of a
//! compacted topic) stays null.

use crate::{Cursor, WireError, put_bytes};

/// The version of the envelope encoding this crate writes and reads.
pub const ENVELOPE_VERSION: u8 = 1;

const HAS_VALUE: u8 = 1;

/// One header of a record: Kafka headers are named and may be null.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The header's name (Kafka's header key).
    pub name: &'a str,
    /// Its value; `None` for a null header.
    pub value: Option<&'a [u8]>,
}

/// A record's headers, in the order they were written, and its value,
/// borrowed from an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeRef<'a> {
    /// The headers; a name may occur more than once, as in Kafka.
    pub headers: Vec<HeaderRef<'a>>,
    /// The record's value; `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
}

impl<'a> EnvelopeRef<'a> {
    /// Reads an envelope; an error if `buf` is not one of this version.
    pub fn read(buf: &'a [u8]) -> Result<Self, WireError> {
        let mut c = Cursor::new(buf);
        let version = c.u8("envelope version")?;
        if version != ENVELOPE_VERSION {
            return Err(WireError {
                what: "envelope version",
                offset: 0,
            });
        }
        let count = c.u32("header count")? as usize;
        // Each header takes at least five bytes: no count can claim more.
        let mut headers = Vec::with_capacity(count.min(buf.len() / 5));
        for _ in 0..count {
            let at = c.pos;
            let name = std::str::from_utf8(c.bytes("header name")?).map_err(|_| WireError {
                what: "header name (not UTF-8)",
                offset: at,
            })?;
            let value = optional(&mut c, "header value")?;
            headers.push(HeaderRef { name, value });
        }
        let value = optional(&mut c, "record value")?;
        if !c.at_end() {
            return Err(WireError {
                what: "envelope end (bytes after the value)",
                offset: c.pos,
            });
        }
        Ok(EnvelopeRef { headers, value })
    }

    /// The value of the last header named `name` (Java's `lastHeader`),
    /// `None` if there is none or it is null.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .rev()
            .find(|h| h.name == name)
            .and_then(|h| h.value)
    }
}

/// Reads a flag byte and, if it says present, bytes (`u32` length first).
fn optional<'a>(c: &mut Cursor<'a>, what: &'static str) -> Result<Option<&'a [u8]>, WireError> {
    match c.u8(what)? {
        0 => Ok(None),
        HAS_VALUE => Ok(Some(c.bytes(what)?)),
        _ => Err(WireError {
            what,
            offset: c.pos - 1,
        }),
    }
}

/// Writes `bytes` as [`optional`] reads them.
fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(v) => {
            out.push(HAS_VALUE);
            put_bytes(out, v);
        }
        None => out.push(0),
    }
}

/// Appends the envelope of `headers` and `value` (`None`: null) to `out`.
pub fn write_envelope<'h>(
    out: &mut Vec<u8>,
    headers: impl IntoIterator<Item = HeaderRef<'h>>,
    value: Option<&[u8]>,
) {
    out.push(ENVELOPE_VERSION);
    let count_at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut count: u32 = 0;
    for h in headers {
        put_bytes(out, h.name.as_bytes());
        put_optional(out, h.value);
        count = count.saturating_add(1);
    }
    out[count_at..count_at + 4].copy_from_slice(&count.to_le_bytes());
    put_optional(out, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version 1 as written: a change of the encoding must fail here (old
    /// checkpoints keep envelopes in operator state and sink copies).
    const V1: &[u8] = &[
        1, // version
        2, 0, 0, 0, // two headers
        4, 0, 0, 0, b't', b'y', b'p', b'e', 1, 3, 0, 0, 0, b'a', b'd', b'd', // type=add
        2, 0, 0, 0, b'i', b'd', 0, // id=null
        1, 2, 0, 0, 0, 0xff, 0x00, // value
    ];

    #[test]
    fn version_1_reads_and_writes_as_fixed() {
        let e = EnvelopeRef::read(V1).expect("reads");
        assert_eq!(
            e.headers,
            [
                HeaderRef {
                    name: "type",
                    value: Some(b"add")
                },
                HeaderRef {
                    name: "id",
                    value: None
                }
            ]
        );
        assert_eq!(e.value, Some(&[0xff, 0x00][..]));
        let mut out = Vec::new();
        write_envelope(&mut out, e.headers.iter().copied(), e.value);
        assert_eq!(out, V1);
    }

    #[test]
    fn the_last_header_of_a_name_wins_and_null_reads_as_none() {
        let mut buf = Vec::new();
        let headers = [("k", Some(&b"1"[..])), ("k", Some(b"2")), ("n", None)]
            .map(|(name, value)| HeaderRef { name, value });
        write_envelope(&mut buf, headers, Some(b""));
        let e = EnvelopeRef::read(&buf).expect("reads");
        assert_eq!(e.header("k"), Some(&b"2"[..]));
        assert_eq!(e.header("n"), None);
        assert_eq!(e.header("missing"), None);
        assert_eq!(e.value, Some(&b""[..]));
        // A null value (a tombstone) stays null, apart from an empty one.
        let mut null = Vec::new();
        write_envelope(&mut null, [], None);
        assert_eq!(EnvelopeRef::read(&null).expect("reads").value, None);
        assert_ne!(null, {
            let mut empty = Vec::new();
            write_envelope(&mut empty, [], Some(b""));
            empty
        });
    }

    #[test]
    fn malformed_envelopes_are_errors_not_panics() {
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![2, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![1, 0xff, 0xff, 0xff, 0xff],
            b"plain text value".to_vec(),
        ];
        let mut bad_name = V1.to_vec();
        bad_name[9] = 0xff;
        let mut bad_flags = V1.to_vec();
        bad_flags[13] = 7;
        let mut trailing = V1.to_vec();
        trailing.push(0);
        cases.extend([bad_name, bad_flags, trailing]);
        for cut in 0..V1.len() {
            cases.push(V1[..cut].to_vec());
        }
        for case in cases {
            assert!(EnvelopeRef::read(&case).is_err(), "{case:?}");
        }
    }
}
