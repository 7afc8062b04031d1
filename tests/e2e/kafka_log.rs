//! A topic's log read straight off the Kafka wire protocol, with the
//! transaction markers applied here rather than by the broker.
//!
//! The test broker (tansu) writes COMMIT and ABORT control records, but a
//! `read_committed` consumer is not told which transactions were aborted (so
//! librdkafka hands out aborted records), and ListOffsets answers wrong latest
//! and last-stable offsets. The exactly-once tests therefore fetch every
//! partition `read_uncommitted` from offset 0 (Metadata v1, Fetch v4, record
//! batches v2 without compression) and sort records into committed, aborted
//! and still-open transactions themselves.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one socket read or write may block.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The client id sent in every request header.
const CLIENT_ID: &str = "weir-e2e-log";
/// The largest response accepted, against a garbled size prefix.
const MAX_RESPONSE: usize = 256 << 20;

/// One record of a topic's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogRecord {
    /// The partition the record is in.
    pub(crate) partition: i32,
    /// The record's offset in its partition.
    pub(crate) offset: i64,
    /// The record's key, `None` when null.
    pub(crate) key: Option<Vec<u8>>,
    /// The record's value, `None` when null.
    pub(crate) value: Option<Vec<u8>>,
    /// The record's timestamp, in milliseconds since the epoch.
    pub(crate) timestamp: i64,
    /// The producer id and epoch of its batch (-1 without a producer id).
    pub(crate) producer: (i64, i16),
}

/// A topic's data records sorted by the fate of their transaction, each list
/// ordered by (partition, offset).
#[derive(Debug, Default)]
pub(crate) struct TopicView {
    /// Non-transactional records and records of committed transactions.
    pub(crate) committed: Vec<LogRecord>,
    /// Records of transactions that ended with an ABORT marker.
    pub(crate) aborted: Vec<LogRecord>,
    /// Records of transactions with no marker yet.
    pub(crate) open: Vec<LogRecord>,
}

/// The topic's records as a `read_committed` consumer should see them:
/// non-transactional records and those of committed transactions, ordered
/// by (partition, offset).
pub(crate) fn committed_records(bootstrap: &str, topic: &str) -> Result<Vec<LogRecord>, String> {
    Ok(transactional_view(bootstrap, topic)?.committed)
}

/// Reads every partition of `topic` from the single broker at `bootstrap`
/// (`host:port`) and splits its records into committed, aborted and open.
pub(crate) fn transactional_view(bootstrap: &str, topic: &str) -> Result<TopicView, String> {
    let mut conn = Connection::open(bootstrap)?;
    let mut view = TopicView::default();
    for partition in conn.partitions(topic)? {
        // Data of transactions not yet ended, by producer id and epoch.
        let mut pending: HashMap<(i64, i16), Vec<LogRecord>> = HashMap::new();
        for batch in conn.read_partition(topic, partition)? {
            if batch.control {
                let at = format!(
                    "{topic}/{partition}: control batch at {}",
                    batch.base_offset
                );
                // The key is a version (i16) and a type (i16): 0 abort, 1 commit.
                let marker = match batch.records.first().and_then(|r| r.key.as_deref()) {
                    Some([_, _, hi, lo, ..]) => i16::from_be_bytes([*hi, *lo]),
                    _ => return Err(format!("{at} has no valid key")),
                };
                let records = pending.remove(&batch.producer).unwrap_or_default();
                match marker {
                    0 => view.aborted.extend(records),
                    1 => view.committed.extend(records),
                    other => return Err(format!("{at} has unknown type {other}")),
                }
            } else if batch.transactional {
                pending
                    .entry(batch.producer)
                    .or_default()
                    .extend(batch.records);
            } else {
                view.committed.extend(batch.records);
            }
        }
        view.open.extend(pending.into_values().flatten());
    }
    for records in [&mut view.committed, &mut view.aborted, &mut view.open] {
        records.sort_by_key(|r| (r.partition, r.offset));
    }
    Ok(view)
}

/// A decoded record batch (v2): its offsets, flags, producer and records.
struct Batch {
    base_offset: i64,
    last_offset: i64,
    transactional: bool,
    /// A transaction marker rather than data.
    control: bool,
    /// Its producer id and epoch: a transaction's data and its marker
    /// share both. (A broker that takes data from a fenced epoch, as
    /// tansu does when a request of a killed producer arrives late, must
    /// not have it counted in the next epoch's transaction.)
    producer: (i64, i16),
    records: Vec<LogRecord>,
}

/// A connection to the broker and the correlation id of its last request.
struct Connection {
    stream: TcpStream,
    correlation: i32,
}

impl Connection {
    /// Connects to `bootstrap` with read and write timeouts.
    fn open(bootstrap: &str) -> Result<Self, String> {
        let stream =
            TcpStream::connect(bootstrap).map_err(|e| format!("connecting to {bootstrap}: {e}"))?;
        for set_timeout in [TcpStream::set_read_timeout, TcpStream::set_write_timeout] {
            set_timeout(&stream, Some(TIMEOUT)).map_err(|e| format!("socket timeout: {e}"))?;
        }
        Ok(Self {
            stream,
            correlation: 0,
        })
    }

    /// Sends one request and returns its response body after the correlation id.
    fn call(&mut self, api_key: i16, version: i16, body: &[u8]) -> Result<Vec<u8>, String> {
        self.correlation += 1;
        // The size (filled in below), then header v1: api key, version,
        // correlation id, client id.
        let mut message: Vec<u8> = vec![0; 4];
        message.extend(api_key.to_be_bytes());
        message.extend(version.to_be_bytes());
        message.extend(self.correlation.to_be_bytes());
        put_str(&mut message, CLIENT_ID)?;
        message.extend_from_slice(body);
        let size = i32::try_from(message.len() - 4).map_err(|_| "request too large")?;
        message[..4].copy_from_slice(&size.to_be_bytes());
        let context = |e: std::io::Error| format!("api {api_key} v{version}: {e}");
        self.stream.write_all(&message).map_err(context)?;
        let mut size = [0; 4];
        self.stream.read_exact(&mut size).map_err(context)?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .ok()
            .filter(|&n| (4..=MAX_RESPONSE).contains(&n))
            .ok_or_else(|| format!("api {api_key} v{version}: bad response size"))?;
        let mut response = vec![0; size];
        self.stream.read_exact(&mut response).map_err(context)?;
        let body = response.split_off(4);
        if response != self.correlation.to_be_bytes() {
            return Err(format!("api {api_key} v{version}: wrong correlation id"));
        }
        Ok(body)
    }

    /// The partition ids of `topic`, from Metadata v1, in ascending order.
    fn partitions(&mut self, topic: &str) -> Result<Vec<i32>, String> {
        let mut body = 1_i32.to_be_bytes().to_vec();
        put_str(&mut body, topic)?;
        let response = self.call(3, 1, &body)?;
        let mut r = Reader::new(&response, "metadata response".to_string());
        for _ in 0..r.count()? {
            r.i32()?; // node id
            r.bytes16()?; // host
            r.i32()?; // port
            r.bytes16()?; // rack
        }
        r.i32()?; // controller id
        let mut found = None;
        for _ in 0..r.count()? {
            let (error, name) = (r.i16()?, r.bytes16()?);
            r.take(1)?; // is internal
            let mut partitions = Vec::new();
            for _ in 0..r.count()? {
                let (_error, index, _leader) = (r.i16()?, r.i32()?, r.i32()?);
                r.skip_array(4)?; // replica ids
                r.skip_array(4)?; // in-sync replica ids
                partitions.push(index);
            }
            if name == Some(topic.as_bytes()) {
                if error != 0 {
                    return Err(format!("metadata for {topic}: error code {error}"));
                }
                partitions.sort_unstable();
                found = Some(partitions);
            }
        }
        found
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("metadata: topic {topic} has no partitions"))
    }

    /// All batches of one partition from offset 0, fetched until two fetches
    /// in a row return nothing (tansu's high watermark is not trusted).
    fn read_partition(&mut self, topic: &str, partition: i32) -> Result<Vec<Batch>, String> {
        let (mut batches, mut offset, mut empty_fetches) = (Vec::new(), 0, 0);
        while empty_fetches < 2 {
            let mut fetched = self.fetch(topic, partition, offset)?;
            fetched.retain(|b| b.last_offset >= offset);
            if let Some(next) = fetched.last().map(|b| b.last_offset + 1) {
                (offset, empty_fetches) = (next, 0);
                batches.append(&mut fetched);
            } else {
                empty_fetches += 1;
            }
        }
        Ok(batches)
    }

    /// One Fetch v4 (`read_uncommitted`) of a partition from `offset`.
    fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> Result<Vec<Batch>, String> {
        // Replica id, max wait ms, min bytes, max bytes, isolation level,
        // then one topic with one partition: index, offset, max bytes.
        let mut body = [-1_i32, 100, 0, 8 << 20].map(i32::to_be_bytes).concat();
        body.push(0);
        body.extend(1_i32.to_be_bytes());
        put_str(&mut body, topic)?;
        body.extend([1, partition].map(i32::to_be_bytes).concat());
        body.extend(offset.to_be_bytes());
        body.extend((4_i32 << 20).to_be_bytes());
        let response = self.call(1, 4, &body)?;
        let context = format!("fetch response for {topic}/{partition} at offset {offset}");
        let mut r = Reader::new(&response, context.clone());
        r.i32()?; // throttle time
        let mut batches = Vec::new();
        for _ in 0..r.count()? {
            r.bytes16()?; // topic name
            for _ in 0..r.count()? {
                let (index, error, _high_watermark, _last_stable) =
                    (r.i32()?, r.i16()?, r.i64()?, r.i64()?);
                r.skip_array(16)?; // aborted transactions (tansu sends none)
                let records = r.bytes32()?.unwrap_or_default();
                if index == partition {
                    if error != 0 {
                        return Err(format!("{context}: error code {error}"));
                    }
                    batches = decode_batches(records, partition)
                        .map_err(|e| format!("{context}: {e}"))?;
                }
            }
        }
        Ok(batches)
    }
}

/// Appends `s` as a Kafka string (i16 length, then UTF-8 bytes).
fn put_str(buf: &mut Vec<u8>, s: &str) -> Result<(), String> {
    let len = i16::try_from(s.len()).map_err(|_| format!("string too long: {s}"))?;
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Decodes the record batches of a fetch, ignoring a truncated last batch.
fn decode_batches(data: &[u8], partition: i32) -> Result<Vec<Batch>, String> {
    let mut r = Reader::new(data, "record batches".to_string());
    let mut batches = Vec::new();
    while r.remaining() >= 12 {
        let base_offset = r.i64()?;
        let length = usize::try_from(r.i32()?).map_err(|_| r.error("negative batch length"))?;
        if r.remaining() < length {
            break;
        }
        batches.push(decode_batch(r.take(length)?, base_offset, partition)?);
    }
    if batches.is_empty() && !data.is_empty() {
        return Err("the first record batch is larger than the fetch size".to_string());
    }
    Ok(batches)
}

/// Decodes one record batch v2 from what follows its base offset and length.
fn decode_batch(data: &[u8], base_offset: i64, partition: i32) -> Result<Batch, String> {
    let mut b = Reader::new(data, format!("record batch at offset {base_offset}"));
    b.i32()?; // partition leader epoch
    let [magic] = b.array::<1>()?;
    if magic != 2 {
        return Err(b.error(&format!("magic {magic}, only 2 is supported")));
    }
    b.take(4)?; // crc
    let attributes = b.i16()?;
    if attributes & 0x07 != 0 {
        return Err(b.error(&format!(
            "compression {}, only none is supported",
            attributes & 0x07
        )));
    }
    let last_offset_delta = b.i32()?;
    let base_timestamp = b.i64()?;
    b.i64()?; // max timestamp
    let producer_id = b.i64()?;
    let producer_epoch = b.i16()?;
    b.take(4)?; // base sequence
    let mut records = Vec::new();
    for _ in 0..b.i32()? {
        let length = usize::try_from(b.varint()?).map_err(|_| b.error("negative record length"))?;
        let mut r = Reader::new(
            b.take(length)?,
            format!("record in batch at offset {base_offset}"),
        );
        r.take(1)?; // attributes
        let (timestamp_delta, offset_delta) = (r.varint()?, r.varint()?);
        let key = r.varbytes()?.map(<[u8]>::to_vec);
        let value = r.varbytes()?.map(<[u8]>::to_vec);
        for _ in 0..r.varint()? {
            r.varbytes()?; // header key
            r.varbytes()?; // header value
        }
        let (offset, timestamp) = (base_offset + offset_delta, base_timestamp + timestamp_delta);
        records.push(LogRecord {
            partition,
            offset,
            key,
            value,
            timestamp,
            producer: (producer_id, producer_epoch),
        });
    }
    Ok(Batch {
        base_offset,
        last_offset: base_offset + i64::from(last_offset_delta),
        transactional: attributes & 0x10 != 0,
        control: attributes & 0x20 != 0,
        producer: (producer_id, producer_epoch),
        records,
    })
}

/// A cursor over big-endian protocol data that errs, with context, when short.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What the data is, for error messages.
    what: String,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`, described as `what` in errors.
    fn new(buf: &'a [u8], what: String) -> Self {
        Self { buf, pos: 0, what }
    }

    /// An error message naming the data and the position reached.
    fn error(&self, message: &str) -> String {
        format!("{}: {message} at byte {}", self.what, self.pos)
    }

    /// How many bytes are left.
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.remaining() {
            return Err(self.error(&format!(
                "truncated (need {n} bytes, have {})",
                self.remaining()
            )));
        }
        self.pos += n;
        Ok(&self.buf[self.pos - n..self.pos])
    }

    /// The next `N` bytes as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The next i16.
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    /// The next i32.
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// The next i64.
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// An array's element count (i32; a null array counts as empty).
    fn count(&mut self) -> Result<usize, String> {
        Ok(usize::try_from(self.i32()?).unwrap_or(0))
    }

    /// Skips an array of elements `width` bytes wide.
    fn skip_array(&mut self, width: usize) -> Result<(), String> {
        let count = self.count()?;
        self.take(count.saturating_mul(width))?;
        Ok(())
    }

    /// Bytes prefixed by `len`; `None` when `len` is negative (null).
    fn sized(&mut self, len: i64) -> Result<Option<&'a [u8]>, String> {
        usize::try_from(len).ok().map(|n| self.take(n)).transpose()
    }

    /// A nullable string or byte string with an i16 length.
    fn bytes16(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = self.i16()?;
        self.sized(len.into())
    }

    /// Nullable bytes with an i32 length.
    fn bytes32(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = self.i32()?;
        self.sized(len.into())
    }

    /// Nullable bytes with a zigzag varint length.
    fn varbytes(&mut self) -> Result<Option<&'a [u8]>, String> {
        let len = self.varint()?;
        self.sized(len)
    }

    /// A zigzag-encoded varint or varlong.
    fn varint(&mut self) -> Result<i64, String> {
        let mut raw = 0_u64;
        for shift in (0..64).step_by(7) {
            let [byte] = self.array::<1>()?;
            raw |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) ^ (raw & 1).wrapping_neg()) as i64);
            }
        }
        Err(self.error("varint longer than 10 bytes"))
    }
}
