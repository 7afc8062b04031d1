// The guest side of the batch protocol, as the Rust SDK's runtime.rs: the
// operator instance, the prefetched value state of the current batch
// (decoded lazily, written back as one updates buffer), and the output
// buffer (one `emit-batch` per call, flushed early past 256 KiB).
//
// A component is single-threaded, so this lives in module state and the
// state handles reach it without a context argument.

import { CodecError, Reader, TAG_U64, Writer, isImmutable } from './codec.js';
import { host } from './host.js';
import { BatchBuilder, Element, HAS_KEY, HAS_TS, WireError, putBytes } from './wire.js';

/** Output is handed to the host when the buffer grows past this. */
export const OUTPUT_FLUSH_BYTES = 256 * 1024;

const EMPTY = new Uint8Array(0);

// Where the operator is in its life cycle.
const IDLE = 0; // outside any call
export const BATCH = 1; // in process, on the element of slot `rt.slot` (-1: non-keyed)
const HOST = 2; // in on-timer (the host set the timer's key) or close

// What a prefetched cell holds.
export const ABSENT = 0;
const IN_BUFFER = 1; // bytes at start/len of the prefetched buffer
const ENCODED = 2; // encoded bytes written in this batch (vals[i])
export const DECODED = 3; // an immutable decoded value (vals[i]), written if dirty

// The engine (SpiderMonkey's interpreter inside the component) has no JIT:
// every call and property access costs tens to hundreds of nanoseconds, so
// the per-element paths below (the batch loop, prefetched value state,
// emit) are written out inline rather than as small helpers.

/** The runtime's state (internal: the state handles and Context read it inline). */
export const rt = {
  scope: IDLE,
  slot: -1,
  hostSlot: -1,
  // Prefetched states in id order (the order of the prefetched buffer).
  prefIds: [],
  prefStates: [],
  nPref: 0,
  // Bumped whenever prefIds changes, so handles can cache their index.
  gen: 0,
  buffer: EMPTY,
  nCells: 0,
  kind: new Uint8Array(256),
  start: new Int32Array(256),
  len: new Int32Array(256),
  vals: [],
  dirty: new Uint8Array(256),
  dirtyList: [],
  // Output in the batch encoding (emit writes into it inline).
  out: new Writer(64 * 1024),
  updates: new Writer(4096),
  reader: new Reader(),
  scratch: new Writer(256),
  instance: null,
  context: null,
  // Per batch: the key of each slot, made once (a view into the batch).
  keys: [],
};

/** The message of an error or thrown value. */
export function messageOf(e) {
  if (e instanceof Error) return e.message;
  return String(e);
}

/** An error naming state `name` for a value that did not decode. */
export function stateDecodeError(name, codec, e) {
  if (e instanceof CodecError) {
    return new Error(`weir-sdk: state \`${name}\`: cannot decode its value as ${codec.name}: ${e.message}`);
  }
  return e;
}

/** An error naming state `name` for a value that did not encode. */
export function stateEncodeError(name, codec, e) {
  return new TypeError(`weir-sdk: state \`${name}\`: cannot encode a value as ${codec.name}: ${messageOf(e)}`);
}

/** Decodes `buf[start..end)` with `codec` for state `name`. */
export function decodeRange(name, codec, buf, start, end) {
  const r = rt.reader;
  r.reset(buf, start, end);
  let v;
  try {
    v = codec.read(r);
    if (r.pos !== end) throw new CodecError(`${end - r.pos} bytes left over after the value`);
  } catch (e) {
    throw stateDecodeError(name, codec, e);
  }
  return v;
}

/** Decodes a whole byte array with `codec` for state `name`. */
export function decodeBytes(name, codec, bytes) {
  return decodeRange(name, codec, bytes, 0, bytes.length);
}

/** Encodes `value` with `codec` for state `name` (a fresh Uint8Array). */
export function encodeValue(name, codec, value) {
  const w = rt.scratch;
  w.reset();
  try {
    codec.write(w, value);
  } catch (e) {
    throw stateEncodeError(name, codec, e);
  }
  return w.copy();
}

/** Registers a prefetched state (from `OpenContext`). */
export function notePrefetched(id, name, codec) {
  if (rt.prefIds.includes(id)) return;
  let at = rt.prefIds.length;
  while (at > 0 && rt.prefIds[at - 1] > id) at--;
  rt.prefIds.splice(at, 0, id);
  rt.prefStates.splice(at, 0, { name, codec });
  rt.nPref = rt.prefIds.length;
  rt.gen += 1;
}

// The cell of the current key for prefetched state index `idx`, or -1
// when it is not prefetched here (outside process, or a non-keyed input).
function cellIndex(idx) {
  if (rt.scope !== BATCH || rt.slot < 0 || idx < 0) return -1;
  const i = rt.slot * rt.nPref + idx;
  return i < rt.nCells ? i : -1;
}

/** Decodes prefetched cell `i` (in the buffer or encoded) and caches an immutable value. */
export function decodeCell(i, name, codec) {
  // The common case without a reader: a u64 below 128 is its one byte.
  if (codec.tag === TAG_U64 && rt.kind[i] === IN_BUFFER && rt.len[i] === 1) {
    const b = rt.buffer[rt.start[i]];
    if (b < 0x80) {
      rt.kind[i] = DECODED;
      rt.vals[i] = b;
      return b;
    }
  }
  let v;
  if (rt.kind[i] === IN_BUFFER) {
    const start = rt.start[i];
    v = decodeRange(name, codec, rt.buffer, start, start + rt.len[i]);
  } else {
    const bytes = rt.vals[i];
    v = decodeRange(name, codec, bytes, 0, bytes.length);
  }
  if (isImmutable(v)) {
    rt.kind[i] = DECODED;
    rt.vals[i] = v;
  }
  return v;
}

/** Writes prefetched cell `i` (general path: any value, checked by encoding it). */
export function setCell(i, name, codec, value) {
  if (isImmutable(value)) {
    // Encoded now anyway, to throw at the call that gave a bad value.
    const w = rt.scratch;
    w.reset();
    try {
      codec.write(w, value);
    } catch (e) {
      throw stateEncodeError(name, codec, e);
    }
    rt.kind[i] = DECODED;
    rt.vals[i] = value;
  } else {
    rt.vals[i] = encodeValue(name, codec, value);
    rt.kind[i] = ENCODED;
  }
  if (rt.dirty[i] === 0) {
    rt.dirty[i] = 1;
    rt.dirtyList.push(i);
  }
}

function markDirty(i) {
  if (rt.dirty[i] === 0) {
    rt.dirty[i] = 1;
    rt.dirtyList.push(i);
  }
}

/** Clears the current key's prefetched value; false when not prefetched here. */
export function cachedClear(idx) {
  const i = cellIndex(idx);
  if (i < 0) return false;
  rt.kind[i] = ABSENT;
  rt.vals[i] = undefined;
  markDirty(i);
  return true;
}

/** Tells the host which key the next state or timer call is for. */
export function selectCurrentKey() {
  if (rt.scope === BATCH && rt.slot >= 0 && rt.hostSlot !== rt.slot) {
    host.state.selectKey(rt.slot);
    rt.hostSlot = rt.slot;
  }
}

/** Hands the buffered output to the host. */
export function flushOutput() {
  const out = rt.out;
  if (out.pos > 0) {
    host.output.emitBatch(out.view());
    out.reset();
  }
}

/** Buffers one output element (general path; Context.emit has the fast one). */
export function emit(key, value, timestamp) {
  const out = rt.out;
  const hasKey = key !== null && key !== undefined;
  const hasTs = timestamp !== null && timestamp !== undefined;
  const start = out.pos;
  try {
    out.u8((hasKey ? HAS_KEY : 0) | (hasTs ? HAS_TS : 0));
    if (hasTs) out.i64le(timestamp);
    if (hasKey) putBytes(out, key, 'key');
    putBytes(out, value, 'value');
  } catch (e) {
    out.pos = start;
    throw e;
  }
  if (out.pos >= OUTPUT_FLUSH_BYTES) flushOutput();
}

/**
 * Sends one element to side output `tag` at once (main output buffered so
 * far goes first, so a downstream sees the same order whichever edges it
 * reads).
 */
export function emitSide(tag, key, value, timestamp) {
  flushOutput();
  const one = new BatchBuilder(64);
  one.push(key, value, timestamp);
  host.output.emitSide(tag, one.view());
}

/** Logs an uncaught error so that the host reports it with the trap. */
export function logPanic(e) {
  logError(e, 'panic: ');
}

/** Logs an error with where it was thrown, at error level. */
export function logError(e, prefix = '') {
  let text;
  if (e instanceof Error) {
    text = `${e.name}: ${e.message}`;
    const all = typeof e.stack === 'string' ? e.stack.split('\n').filter((l) => l.trim() !== '') : [];
    // The operator's frames; the SDK's and the bindings' only if there are none.
    const own = all.filter((l) => !l.includes('weir-sdk/') && !l.includes('initializer.js'));
    const frames = own.length > 0 ? own : all;
    if (frames.length > 0) text += ` (at ${frames.slice(0, 4).join(' <- ')})`;
  } else {
    text = `uncaught ${String(e)}`;
  }
  try {
    host.log.log('error', `${prefix}${text}`);
  } catch {
    // Nothing more can be done: the trap follows.
  }
}

function begin(prefetched) {
  rt.hostSlot = -1;
  const nPref = rt.prefIds.length;
  let n = 0;
  if (nPref > 0 && prefetched.length > 0) {
    const buf = prefetched;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const end = buf.length;
    let p = 0;
    while (p < end) {
      if (n >= rt.kind.length) growCells(n + 1);
      const present = buf[p];
      if (present === 0) {
        rt.kind[n] = ABSENT;
        p += 1;
      } else if (present === 1 && p + 5 <= end) {
        const len = dv.getUint32(p + 1, true);
        if (p + 5 + len > end) {
          throw new Error(`weir-sdk: the host sent malformed prefetched state at ${p}: ${new WireError('prefetched value', p + 1).message}`);
        }
        rt.kind[n] = IN_BUFFER;
        rt.start[n] = p + 5;
        rt.len[n] = len;
        p += 5 + len;
      } else {
        throw new Error(`weir-sdk: the host sent malformed prefetched state at ${p}: ${new WireError('prefetched presence', p).message}`);
      }
      n++;
    }
  }
  rt.buffer = prefetched;
  rt.nCells = n;
  rt.dirty.fill(0, 0, Math.max(n, 0));
  rt.dirtyList.length = 0;
}

function growCells(need) {
  let cap = rt.kind.length * 2;
  while (cap < need) cap *= 2;
  const grow = (Type, old) => {
    const a = new Type(cap);
    a.set(old);
    return a;
  };
  rt.kind = grow(Uint8Array, rt.kind);
  rt.start = grow(Int32Array, rt.start);
  rt.len = grow(Int32Array, rt.len);
  rt.dirty = new Uint8Array(cap);
}

function end_() {
  flushOutput();
  rt.scope = IDLE;
  const nPref = rt.prefIds.length || 1;
  const w = rt.updates;
  w.reset();
  const list = rt.dirtyList;
  for (let k = 0; k < list.length; k++) {
    const i = list[k];
    const slot = nPref === 1 ? i : Math.floor(i / nPref);
    const idx = nPref === 1 ? 0 : i % nPref;
    // The head (slot, state id, presence) written in place: a call each
    // costs in the engine's interpreter.
    w.reserve(14);
    const dv = w.dv;
    let p = w.pos;
    dv.setUint32(p, slot, true);
    dv.setUint32(p + 4, rt.prefIds[idx], true);
    const kind = rt.kind[i];
    if (kind === ABSENT) {
      w.buf[p + 8] = 0;
      w.pos = p + 9;
      continue;
    }
    w.buf[p + 8] = 1;
    p += 9;
    switch (kind) {
      case IN_BUFFER: {
        const s = rt.start[i];
        const n = rt.len[i];
        dv.setUint32(p, n, true);
        w.pos = p + 4;
        w.bytes(rt.buffer.subarray(s, s + n));
        break;
      }
      case ENCODED:
        dv.setUint32(p, rt.vals[i].length, true);
        w.pos = p + 4;
        w.bytes(rt.vals[i]);
        break;
      default: {
        // DECODED: a u64 below 128 is one byte; else encoded straight
        // into the updates, then its length.
        const v = rt.vals[i];
        const st = rt.prefStates[idx];
        if (st.codec.tag === TAG_U64 && typeof v === 'number' && v >= 0 && v < 0x80 && v % 1 === 0) {
          dv.setUint32(p, 1, true);
          w.buf[p + 4] = v;
          w.pos = p + 5;
          break;
        }
        const at = p;
        w.pos = p + 4;
        try {
          st.codec.write(w, v);
        } catch (e) {
          throw stateEncodeError(st.name, st.codec, e);
        }
        w.dv.setUint32(at, w.pos - at - 4, true);
      }
    }
  }
  list.length = 0;
  // Let the next batch's buffer replace this one (and free the values).
  rt.buffer = EMPTY;
  rt.vals.length = 0;
  rt.nCells = 0;
  return w.view();
}

function instanceOrThrow() {
  const op = rt.instance;
  if (op === null) throw new Error('weir-sdk: operator called before a successful open');
  return op;
}

const ELEMENT = Element.prototype;
const TWO_32 = 4294967296;
// Module-level copies of wire.js's flags (an imported binding costs a
// lookup per use in the component's interpreter).
const F_KEY = 1; // HAS_KEY
const F_TS = 2; // HAS_TS

function malformed(what, at) {
  return new Error(`weir-sdk: the host sent a malformed batch: ${new WireError(what, at).message}`);
}

/**
 * Runs the operator on each element of a batch: method `process` (which
 * 0), `processFirst` (1) or `processSecond` (2). Decodes the batch in
 * place: keys and values are views into its buffer, and the elements of a
 * slot share one key view.
 */
export function runBatch(batch, which) {
  try {
    const op = instanceOrThrow();
    const name = which === 0 ? 'process' : which === 1 ? 'processFirst' : 'processSecond';
    if (typeof op[name] !== 'function') throw new TypeError(`weir-sdk: the operator has no \`${name}\` method`);
    begin(batch.prefetched);
    const buf = batch.elements;
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const end = buf.length;
    const slots = batch.keySlots;
    const nSlots = slots.length;
    const keys = rt.keys;
    keys.length = 0;
    const ctx = rt.context;
    rt.scope = BATCH;
    let p = 0;
    let i = 0;
    while (p < end) {
      const flags = buf[p];
      if (flags > 3) throw malformed('element flags', p);
      p += 1;
      let timestamp = null;
      if (flags & F_TS) {
        if (p + 8 > end) throw malformed('element timestamp', p);
        const hi = dv.getInt32(p + 4, true);
        timestamp = hi >= -0x200000 && hi < 0x200000 ? hi * TWO_32 + dv.getUint32(p, true) : dv.getBigInt64(p, true);
        p += 8;
      }
      const slot = i < nSlots ? slots[i] : -1;
      let key = null;
      if (flags & F_KEY) {
        if (p + 4 > end) throw malformed('element key', p);
        const n = dv.getUint32(p, true);
        if (p + 4 + n > end) throw malformed('element key', p);
        if (slot >= 0) {
          key = keys[slot];
          if (key === undefined) {
            key = buf.subarray(p + 4, p + 4 + n);
            keys[slot] = key;
          }
        } else {
          key = buf.subarray(p + 4, p + 4 + n);
        }
        p += 4 + n;
      }
      if (p + 4 > end) throw malformed('element value', p);
      const n = dv.getUint32(p, true);
      if (p + 4 + n > end) throw malformed('element value', p);
      const value = buf.subarray(p + 4, p + 4 + n);
      p += 4 + n;
      rt.slot = slot;
      const e = { __proto__: ELEMENT, key, value, timestamp };
      if (which === 0) op.process(e, ctx);
      else if (which === 1) op.processFirst(e, ctx);
      else op.processSecond(e, ctx);
      i++;
    }
    keys.length = 0;
    return end_();
  } catch (e) {
    rt.scope = IDLE;
    logPanic(e);
    throw e;
  }
}

/** Runs `f(op)` in the host scope (on-timer, close), then flushes output. */
export function runInHost(f) {
  try {
    const op = instanceOrThrow();
    rt.scope = HOST;
    rt.slot = -1;
    f(op, rt.context);
    flushOutput();
    rt.scope = IDLE;
  } catch (e) {
    rt.scope = IDLE;
    logPanic(e);
    throw e;
  }
}

/** Sets the Context object handed to the operator's methods. */
export function setContext(ctx) {
  rt.context = ctx;
}

/** Stores the operator instance built by `open`. */
export function setInstance(op) {
  rt.instance = op;
}

/** Forgets everything (tests only: a fresh component per test). */
export function resetForTests() {
  rt.scope = IDLE;
  rt.slot = -1;
  rt.hostSlot = -1;
  rt.prefIds = [];
  rt.prefStates = [];
  rt.nPref = 0;
  rt.gen += 1;
  rt.buffer = EMPTY;
  rt.nCells = 0;
  rt.vals = [];
  rt.dirtyList = [];
  rt.out.reset();
  rt.instance = null;
  rt.keys = [];
}
