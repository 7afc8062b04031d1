// The flat byte encodings that cross the host/guest boundary, as the Rust
// crate `weir-wire` writes and reads them (wire/src/). All integers are
// little-endian; lengths are u32.
//
// * batch encoding (elements): `flags: u8` (bit 0 key present, bit 1
//   timestamp present), `timestamp: s64` if present, `key` (u32 length and
//   bytes) if present, `value` (u32 length and bytes);
// * prefetched slot values: for each slot, for each prefetched state:
//   `present: u8` and, if 1, the value (u32 length and bytes);
// * updates returned by `process`: `slot: u32`, `id: u32`, `op: u8` (0
//   clear, 1 set) and, for set, the value (u32 length and bytes).

import { Writer } from './codec.js';

export const HAS_KEY = 1;
export const HAS_TS = 2;

const TWO_32 = 4294967296;
const TEXT_DECODER = new TextDecoder('utf-8', { fatal: true });

/** A buffer that does not follow the encoding it was read as. */
export class WireError extends Error {
  constructor(what, offset) {
    super(`malformed buffer: bad ${what} at byte ${offset}`);
    this.name = 'WireError';
    this.what = what;
    this.offset = offset;
  }
}

/** UTF-8 bytes as text, or null if they are not valid UTF-8. */
export function utf8OrNull(bytes) {
  if (bytes === null || bytes === undefined) return null;
  try {
    return TEXT_DECODER.decode(bytes);
  } catch {
    return null;
  }
}

/**
 * One stream element. `key` and `value` are Uint8Arrays (views into the
 * batch, valid for as long as you hold them); `key` is null when absent;
 * `timestamp` is event time in ms (a number; a bigint only beyond
 * +-2^53), null when absent.
 */
export class Element {
  constructor(key, value, timestamp) {
    this.key = key;
    this.value = value;
    this.timestamp = timestamp;
  }

  /** The value as UTF-8 text, null if it is not valid UTF-8. */
  valueStr() {
    return utf8OrNull(this.value);
  }

  /** The key as UTF-8 text, null if absent or not valid UTF-8. */
  keyStr() {
    return utf8OrNull(this.key);
  }
}

/** Reads the elements of a batch buffer in order, without copying. */
export class BatchCursor {
  constructor(buf) {
    this.reset(buf);
  }

  reset(buf) {
    this.buf = buf;
    this.dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = 0;
  }

  atEnd() {
    return this.pos >= this.buf.length;
  }

  /** The next element, null at the end; throws a WireError if malformed. */
  next() {
    const buf = this.buf;
    const dv = this.dv;
    const end = buf.length;
    let p = this.pos;
    if (p >= end) return null;
    const flags = buf[p];
    if (flags > 3) throw new WireError('element flags', p);
    p += 1;
    let timestamp = null;
    if (flags & HAS_TS) {
      if (p + 8 > end) throw new WireError('element timestamp', p);
      const hi = dv.getInt32(p + 4, true);
      timestamp = hi >= -0x200000 && hi < 0x200000 ? hi * TWO_32 + dv.getUint32(p, true) : dv.getBigInt64(p, true);
      p += 8;
    }
    let key = null;
    if (flags & HAS_KEY) {
      if (p + 4 > end) throw new WireError('element key', p);
      const n = dv.getUint32(p, true);
      if (p + 4 + n > end) throw new WireError('element key', p);
      key = buf.subarray(p + 4, p + 4 + n);
      p += 4 + n;
    }
    if (p + 4 > end) throw new WireError('element value', p);
    const n = dv.getUint32(p, true);
    if (p + 4 + n > end) throw new WireError('element value', p);
    const value = buf.subarray(p + 4, p + 4 + n);
    this.pos = p + 4 + n;
    return new Element(key, value, timestamp);
  }
}

/** All elements of a batch buffer. */
export function readBatch(buf) {
  const c = new BatchCursor(buf);
  const out = [];
  for (let e = c.next(); e !== null; e = c.next()) out.push(e);
  return out;
}

/** Appends elements in the batch encoding. */
export class BatchBuilder {
  constructor(capacity = 64 * 1024) {
    this.w = new Writer(capacity);
    this.length = 0;
  }

  /**
   * Appends one element. `key` and `value` are Uint8Arrays or strings
   * (written as UTF-8); `key` null or undefined for none; `timestamp` a
   * number (an integer), a bigint, or null or undefined for none.
   */
  push(key, value, timestamp) {
    const w = this.w;
    const hasKey = key !== null && key !== undefined;
    const hasTs = timestamp !== null && timestamp !== undefined;
    w.u8((hasKey ? HAS_KEY : 0) | (hasTs ? HAS_TS : 0));
    if (hasTs) w.i64le(timestamp);
    if (hasKey) putBytes(w, key, 'key');
    putBytes(w, value, 'value');
    this.length += 1;
  }

  get byteLength() {
    return this.w.pos;
  }

  isEmpty() {
    return this.length === 0;
  }

  /** The encoded bytes so far (a view, valid until the next push or clear). */
  view() {
    return this.w.view();
  }

  clear() {
    this.w.reset();
    this.length = 0;
  }
}

/** Writes `b` (Uint8Array or string) as u32 length and bytes. */
export function putBytes(w, b, what = 'bytes') {
  if (typeof b === 'string') {
    w.reserve(4);
    const at = w.pos;
    w.pos += 4;
    const n = w.utf8(b);
    w.dv.setUint32(at, n, true);
  } else if (b instanceof Uint8Array) {
    w.u32le(b.length);
    w.bytes(b);
  } else if (ArrayBuffer.isView(b) || b instanceof ArrayBuffer) {
    const u = b instanceof ArrayBuffer ? new Uint8Array(b) : new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    w.u32le(u.length);
    w.bytes(u);
  } else {
    throw new TypeError(`${what}: expected a Uint8Array or a string, got ${b === null ? 'null' : typeof b}`);
  }
}

/** Encodes prefetched values (null for absent), slot-major. */
export function writeSlotValues(values) {
  const w = new Writer(64);
  for (const v of values) {
    if (v === null || v === undefined) {
      w.u8(0);
    } else {
      w.u8(1);
      putBytes(w, v);
    }
  }
  return w.copy();
}

/** Decodes prefetched values: an array of Uint8Array views or null. */
export function readSlotValues(buf) {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = [];
  let p = 0;
  while (p < buf.length) {
    const present = buf[p];
    if (present === 0) {
      out.push(null);
      p += 1;
    } else if (present === 1) {
      if (p + 5 > buf.length) throw new WireError('prefetched value', p + 1);
      const n = dv.getUint32(p + 1, true);
      if (p + 5 + n > buf.length) throw new WireError('prefetched value', p + 1);
      out.push(buf.subarray(p + 5, p + 5 + n));
      p += 5 + n;
    } else {
      throw new WireError('prefetched presence', p);
    }
  }
  return out;
}

/** Encodes updates `{ slot, id, value }` (value null to clear). */
export function writeUpdates(updates) {
  const w = new Writer(64);
  for (const u of updates) {
    w.u32le(u.slot);
    w.u32le(u.id);
    if (u.value === null || u.value === undefined) {
      w.u8(0);
    } else {
      w.u8(1);
      putBytes(w, u.value);
    }
  }
  return w.copy();
}

/** Decodes updates into `{ slot, id, value }` (value a view, or null for clear). */
export function readUpdates(buf) {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out = [];
  let p = 0;
  while (p < buf.length) {
    if (p + 9 > buf.length) throw new WireError('update', p);
    const slot = dv.getUint32(p, true);
    const id = dv.getUint32(p + 4, true);
    const op = buf[p + 8];
    p += 9;
    if (op === 0) {
      out.push({ slot, id, value: null });
    } else if (op === 1) {
      if (p + 4 > buf.length) throw new WireError('update value', p);
      const n = dv.getUint32(p, true);
      if (p + 4 + n > buf.length) throw new WireError('update value', p);
      out.push({ slot, id, value: buf.subarray(p + 4, p + 4 + n) });
      p += 4 + n;
    } else {
      throw new WireError('update op', p - 1);
    }
  }
  return out;
}
