// State value codecs: the postcard subset every Weir SDK shares
// (docs/state-codec.md), so that state written by an operator in one
// language restores into the same operator written in another.
//
// A codec is `{ name, encode(value) -> Uint8Array, decode(Uint8Array) ->
// value }`; the SDK also uses its streaming halves `write(writer, value)`
// and `read(reader)`, which encode into and decode from a shared buffer
// without allocating.
//
// Integers: `u64` and `i64` accept a number (a safe integer) or a bigint;
// they decode to a number when the value is a safe integer
// (|n| <= 2^53 - 1) and to a bigint otherwise, so a counter reads as a
// plain number until it passes 2^53 - 1.
//
// Decoding is strict: bytes left over after the value are an error (the
// Rust SDK's postcard ignores them), so a state read with the wrong type is
// noticed. A decode error is a `CodecError`; state handles wrap it in an
// error that names the state.

/** A value that does not decode as its codec's type. */
export class CodecError extends Error {
  constructor(message) {
    super(message);
    this.name = 'CodecError';
  }
}

const TEXT_ENCODER = new TextEncoder();
const TEXT_DECODER = new TextDecoder('utf-8', { fatal: true });
const TWO_32 = 4294967296;
const U64_MAX = 0xffffffffffffffffn;
const I64_MIN = -0x8000000000000000n;
const I64_MAX = 0x7fffffffffffffffn;

/** A growable byte buffer written front to back. */
export class Writer {
  constructor(capacity = 256) {
    this.buf = new Uint8Array(capacity);
    this.dv = new DataView(this.buf.buffer);
    this.pos = 0;
  }

  /** Makes room for `n` more bytes. */
  reserve(n) {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }

  reset() {
    this.pos = 0;
  }

  /** The bytes written so far, as a view (valid until the next write). */
  view() {
    return this.buf.subarray(0, this.pos);
  }

  /** The bytes written so far, as a copy. */
  copy() {
    return this.buf.slice(0, this.pos);
  }

  u8(b) {
    if (this.pos >= this.buf.length) this.reserve(1);
    this.buf[this.pos++] = b;
  }

  u32le(v) {
    this.reserve(4);
    this.dv.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  /** An s64 little-endian from a number (integer) or a bigint. */
  i64le(v) {
    this.reserve(8);
    if (typeof v === 'number' && v <= Number.MAX_SAFE_INTEGER && v >= -Number.MAX_SAFE_INTEGER) {
      if (!Number.isInteger(v)) throw new TypeError(`expected an integer timestamp, got ${v}`);
      const hi = Math.floor(v / TWO_32);
      this.dv.setUint32(this.pos, v - hi * TWO_32, true);
      this.dv.setInt32(this.pos + 4, hi, true);
    } else {
      const b = BigInt(v);
      if (b < I64_MIN || b > I64_MAX) throw new RangeError(`${v} does not fit in an s64`);
      this.dv.setBigInt64(this.pos, b, true);
    }
    this.pos += 8;
  }

  f64le(v) {
    this.reserve(8);
    this.dv.setFloat64(this.pos, v, true);
    this.pos += 8;
  }

  bytes(b) {
    const n = b.length;
    this.reserve(n);
    if (n <= 16) {
      const buf = this.buf;
      let p = this.pos;
      for (let i = 0; i < n; i++) buf[p++] = b[i];
    } else {
      this.buf.set(b, this.pos);
    }
    this.pos += n;
  }

  /** `s` as UTF-8; returns the number of bytes written. */
  utf8(s) {
    const n = s.length;
    this.reserve(n);
    const buf = this.buf;
    const start = this.pos;
    let p = start;
    // ASCII fast path: no call into the engine per string.
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        this.pos = p;
        this.reserve((n - i) * 3);
        const { written } = TEXT_ENCODER.encodeInto(s.slice(i), this.buf.subarray(this.pos));
        this.pos += written;
        return this.pos - start;
      }
      buf[p++] = c;
    }
    this.pos = p;
    return n;
  }

  /** An unsigned LEB128 varint from a non-negative number. */
  varint(v) {
    this.reserve(10);
    const buf = this.buf;
    let p = this.pos;
    if (v < 0x80000000) {
      while (v >= 0x80) {
        buf[p++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
    } else {
      while (v >= 0x80) {
        buf[p++] = (v % 128) | 0x80;
        v = Math.floor(v / 128);
      }
    }
    buf[p++] = v;
    this.pos = p;
  }

  /** An unsigned LEB128 varint from a bigint in u64 range. */
  varintBig(v) {
    this.reserve(10);
    while (v >= 0x80n) {
      this.buf[this.pos++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.pos++] = Number(v);
  }
}

/** Reads a byte range front to back; errors are `CodecError`s. */
export class Reader {
  constructor(buf = new Uint8Array(0), start = 0, end = buf.length) {
    this.reset(buf, start, end);
  }

  reset(buf, start = 0, end = buf.length) {
    this.buf = buf;
    this.pos = start;
    this.start = start;
    this.end = end;
    this._dv = null;
  }

  get dv() {
    if (this._dv === null || this._dv.buffer !== this.buf.buffer) {
      this._dv = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    }
    return this._dv;
  }

  fail(what) {
    throw new CodecError(`bad ${what} at byte ${this.pos - this.start}`);
  }

  need(n, what) {
    if (this.pos + n > this.end) this.fail(`${what} (the value ends early)`);
  }

  u8(what) {
    if (this.pos >= this.end) this.fail(`${what} (the value ends early)`);
    return this.buf[this.pos++];
  }

  /** A u64 varint, as a number if safe, else a bigint (postcard's rules). */
  varint(what) {
    const buf = this.buf;
    let p = this.pos;
    const end = this.end;
    // Up to 7 bytes (49 bits) are exact in a number.
    let out = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (p >= end) {
        this.pos = p;
        this.fail(`${what} (the value ends early)`);
      }
      const b = buf[p++];
      out += (b & 0x7f) * mul;
      if (b < 0x80) {
        this.pos = p;
        return out;
      }
      mul *= 128;
    }
    let big = BigInt(out);
    for (let i = 7; i < 10; i++) {
      if (p >= end) {
        this.pos = p;
        this.fail(`${what} (the value ends early)`);
      }
      const b = buf[p++];
      big |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) {
        this.pos = p;
        if (i === 9 && b > 1) this.fail(`${what} (varint overflows 64 bits)`);
        return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
      }
    }
    this.pos = p;
    this.fail(`${what} (varint longer than 10 bytes)`);
  }

  /** A varint length that must fit in what is left. */
  length(what) {
    const n = this.varint(what);
    if (typeof n !== 'number' || this.pos + n > this.end) this.fail(`${what} (longer than the value)`);
    return n;
  }
}

function isPlainInteger(v) {
  return typeof v === 'number' && Number.isSafeInteger(v);
}

function describe(v) {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null || typeof v !== 'object') return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `a ${v.constructor?.name ?? 'object'}`;
}

/**
 * Wraps streaming halves into a codec with `encode` and `decode`.
 * `write(w, value)` must throw a TypeError or RangeError for a value it
 * cannot encode; `read(r)` throws `CodecError`s through the reader. `tag`
 * (internal) marks the number codecs whose values the runtime checks
 * inline: TAG_U64, TAG_I64, TAG_F64.
 */
export function makeCodec(name, write, read, tag = 0) {
  const scratch = new Writer(64);
  return {
    name,
    tag,
    write,
    read,
    encode(value) {
      scratch.reset();
      write(scratch, value);
      return scratch.copy();
    },
    decode(bytes) {
      if (!(bytes instanceof Uint8Array)) throw new TypeError(`${name}: decode expects a Uint8Array`);
      const reader = new Reader(bytes);
      try {
        const v = read(reader);
        if (reader.pos !== reader.end) {
          throw new CodecError(`${reader.end - reader.pos} bytes left over after the value`);
        }
        return v;
      } catch (e) {
        if (e instanceof CodecError) throw new CodecError(`cannot decode ${name}: ${e.message}`);
        throw e;
      }
    },
  };
}

export const TAG_U64 = 1;
export const TAG_I64 = 2;
export const TAG_F64 = 3;

/** A byte (Rust `u8`): one raw byte, not a varint (postcard's rule). */
export const u8 = makeCodec(
  'u8',
  (w, v) => {
    if (!(isPlainInteger(v) && v >= 0 && v <= 255)) {
      throw new TypeError(`u8: expected an integer in 0..255, got ${describe(v)}`);
    }
    w.u8(v);
  },
  (r) => r.u8('u8'),
);

/** A signed byte (Rust `i8`): one raw byte, two's complement. */
export const i8 = makeCodec(
  'i8',
  (w, v) => {
    if (!(isPlainInteger(v) && v >= -128 && v <= 127)) {
      throw new TypeError(`i8: expected an integer in -128..127, got ${describe(v)}`);
    }
    w.u8(v & 0xff);
  },
  (r) => {
    const b = r.u8('i8');
    return b > 127 ? b - 256 : b;
  },
);

/** Unsigned integer (Rust `u16`…`u64`; `u8` is [`u8`]): LEB128 varint. */
export const u64 = makeCodec(
  'u64',
  (w, v) => {
    if (isPlainInteger(v) && v >= 0) {
      w.varint(v);
    } else if (typeof v === 'bigint' && v >= 0n && v <= U64_MAX) {
      w.varintBig(v);
    } else {
      throw new TypeError(`u64: expected an integer in 0..2^64-1 (number or bigint), got ${describe(v)}`);
    }
  },
  (r) => r.varint('u64'),
  TAG_U64,
);

/** Signed integer (Rust `i16`…`i64`): zigzag, then varint. */
export const i64 = makeCodec(
  'i64',
  (w, v) => {
    if (isPlainInteger(v) && v < 2 ** 51 && v > -(2 ** 51)) {
      // 2|v| and 2|v|-1 are below 2^52: exact in a double.
      w.varint(v >= 0 ? v * 2 : -v * 2 - 1);
    } else if ((isPlainInteger(v) || typeof v === 'bigint') && BigInt(v) >= I64_MIN && BigInt(v) <= I64_MAX) {
      const b = BigInt(v);
      w.varintBig(b >= 0n ? b << 1n : ((-b) << 1n) - 1n);
    } else {
      throw new TypeError(`i64: expected an integer in -2^63..2^63-1 (number or bigint), got ${describe(v)}`);
    }
  },
  (r) => {
    const z = r.varint('i64');
    if (typeof z === 'number') {
      // z <= 2^53 - 1 here, so both halves are exact.
      return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
    }
    const n = z & 1n ? -((z + 1n) >> 1n) : z >> 1n;
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  },
  TAG_I64,
);

/** 64-bit float: 8 bytes IEEE 754 little-endian. */
export const f64 = makeCodec(
  'f64',
  (w, v) => {
    if (typeof v !== 'number') throw new TypeError(`f64: expected a number, got ${describe(v)}`);
    w.f64le(v);
  },
  (r) => {
    r.need(8, 'f64');
    const v = r.dv.getFloat64(r.pos, true);
    r.pos += 8;
    return v;
  },
  TAG_F64,
);

/** Boolean: one byte, 0 or 1. */
export const bool = makeCodec(
  'bool',
  (w, v) => {
    if (typeof v !== 'boolean') throw new TypeError(`bool: expected a boolean, got ${describe(v)}`);
    w.u8(v ? 1 : 0);
  },
  (r) => {
    const b = r.u8('bool');
    if (b > 1) {
      r.pos -= 1;
      r.fail('bool (not 0 or 1)');
    }
    return b === 1;
  },
);

/** Text: varint length in bytes, then UTF-8. */
export const str = makeCodec(
  'str',
  (w, v) => {
    if (typeof v !== 'string') throw new TypeError(`str: expected a string, got ${describe(v)}`);
    let ascii = true;
    for (let i = 0; i < v.length; i++) {
      if (v.charCodeAt(i) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) {
      w.varint(v.length);
      w.utf8(v);
    } else {
      const bytes = TEXT_ENCODER.encode(v);
      w.varint(bytes.length);
      w.bytes(bytes);
    }
  },
  (r) => {
    const n = r.length('str length');
    const start = r.pos;
    r.pos += n;
    try {
      return TEXT_DECODER.decode(r.buf.subarray(start, start + n));
    } catch {
      r.pos = start;
      return r.fail('str (not valid UTF-8)');
    }
  },
);

function asBytes(v) {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return Uint8Array.from(v);
  return null;
}

/** Bytes (Rust `Vec<u8>`): varint length, then the bytes. Decodes to a Uint8Array. */
export const bytes = makeCodec(
  'bytes',
  (w, v) => {
    const b = asBytes(v);
    if (b === null) throw new TypeError(`bytes: expected a Uint8Array, got ${describe(v)}`);
    w.varint(b.length);
    w.bytes(b);
  },
  (r) => {
    const n = r.length('bytes length');
    const out = r.buf.slice(r.pos, r.pos + n);
    r.pos += n;
    return out;
  },
);

function checkCodec(c, where) {
  if (c === null || typeof c !== 'object' || typeof c.write !== 'function' || typeof c.read !== 'function') {
    throw new TypeError(`${where}: expected a codec (from weir-sdk's codec module), got ${describe(c)}`);
  }
  return c;
}

/** Optional (Rust `Option<T>`): 0 for none (null or undefined); 1, then the value. Decodes none to null. */
export function option(inner) {
  checkCodec(inner, 'option');
  return makeCodec(
    `option(${inner.name})`,
    (w, v) => {
      if (v === null || v === undefined) {
        w.u8(0);
      } else {
        w.u8(1);
        inner.write(w, v);
      }
    },
    (r) => {
      const tag = r.u8('option tag');
      if (tag === 0) return null;
      if (tag !== 1) {
        r.pos -= 1;
        r.fail('option tag (not 0 or 1)');
      }
      return inner.read(r);
    },
  );
}

/** Sequence (Rust `Vec<T>`): varint count, then each value. An array. */
export function list(inner) {
  checkCodec(inner, 'list');
  return makeCodec(
    `list(${inner.name})`,
    (w, v) => {
      if (!Array.isArray(v)) throw new TypeError(`list: expected an array, got ${describe(v)}`);
      w.varint(v.length);
      for (const x of v) inner.write(w, x);
    },
    (r) => {
      const n = r.varint('list count');
      // Each item takes at least one byte... except zero-sized ones, which
      // this subset does not have.
      if (typeof n !== 'number' || n > r.end - r.pos) r.fail('list count (more items than bytes)');
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = inner.read(r);
      return out;
    },
  );
}

/** Tuple (Rust `(A, B, ...)`): each field in order, nothing between. An array. */
export function tuple(...fields) {
  fields.forEach((c, i) => checkCodec(c, `tuple field ${i}`));
  return makeCodec(
    `tuple(${fields.map((c) => c.name).join(', ')})`,
    (w, v) => {
      if (!Array.isArray(v) || v.length !== fields.length) {
        throw new TypeError(`tuple: expected an array of ${fields.length}, got ${describe(v)}`);
      }
      for (let i = 0; i < fields.length; i++) fields[i].write(w, v[i]);
    },
    (r) => {
      const out = new Array(fields.length);
      for (let i = 0; i < fields.length; i++) out[i] = fields[i].read(r);
      return out;
    },
  );
}

/**
 * Struct (Rust `struct { a, b }`): the fields in the order of `fields`
 * (an object `{ name: codec, ... }`), no names, nothing between: the same
 * bytes as a tuple. Encodes and decodes plain objects.
 */
export function struct(fields) {
  const names = Object.keys(fields);
  const codecs = names.map((n) => checkCodec(fields[n], `struct field ${n}`));
  return makeCodec(
    `struct {${names.map((n, i) => `${n}: ${codecs[i].name}`).join(', ')}}`,
    (w, v) => {
      if (v === null || typeof v !== 'object') throw new TypeError(`struct: expected an object, got ${describe(v)}`);
      for (let i = 0; i < names.length; i++) codecs[i].write(w, v[names[i]]);
    },
    (r) => {
      const out = {};
      for (let i = 0; i < names.length; i++) out[names[i]] = codecs[i].read(r);
      return out;
    },
  );
}

/** Whether a decoded value can be shared without copying (not an object). */
export function isImmutable(v) {
  return v === null || typeof v !== 'object';
}
