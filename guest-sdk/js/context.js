// What an operator sees of the host: config and declarations in `open`
// (OpenContext), emit, time, timers and log in the other calls (Context).

import { host } from './host.js';
import { emit, emitSide, flushOutput, notePrefetched, rt, selectCurrentKey } from './runtime.js';
import {
  AggregatingState,
  ListState,
  MapState,
  OperatorListState,
  ReducingState,
  ValueState,
  namespaceBytes,
} from './state.js';

/** The clock a timer follows (the WIT enum's cases). */
export const TimeDomain = Object.freeze({
  EventTime: 'event-time',
  ProcessingTime: 'processing-time',
});

/** Severity of a log line (the WIT enum's cases). */
export const Level = Object.freeze({
  Trace: 'trace',
  Debug: 'debug',
  Info: 'info',
  Warn: 'warn',
  Error: 'error',
});

// Module-level copies (an imported binding costs a lookup per use in the
// component's interpreter).
const OUTPUT_FLUSH_BYTES = 256 * 1024; // runtime.js OUTPUT_FLUSH_BYTES
const U8 = Uint8Array;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const TWO_32 = 4294967296;
const TEXT_ENCODER = new TextEncoder();

/** The watermark before the first one: the minimum s64 (exact as a number). */
export const MIN_WATERMARK = -(2 ** 63);

/** Writes a line to the host's log, tagged with the operator and subtask. */
export function log(level, message) {
  host.log.log(level, String(message));
}

function checkCodec(c, what, name) {
  if (c === null || typeof c !== 'object' || typeof c.write !== 'function' || typeof c.read !== 'function') {
    throw new TypeError(`weir-sdk: state \`${name}\` needs a ${what} (from weir-sdk's codec module)`);
  }
  return c;
}

function checkName(name) {
  if (typeof name !== 'string' || name === '') throw new TypeError('weir-sdk: a state needs a name (a non-empty string)');
  return name;
}

function ttlOf(ms) {
  if (typeof ms === 'bigint') return ms < 1n ? 1n : ms;
  if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
    throw new TypeError(`weir-sdk: a time-to-live is a number of milliseconds, got ${ms}`);
  }
  return BigInt(Math.max(1, Math.floor(ms)));
}

// Declares a keyed state: `ttl` a bigint of milliseconds, or undefined.
function declare(name, kind, prefetch, ttl) {
  return ttl === undefined
    ? host.state.declare(name, kind, prefetch)
    : host.state.declareWithTtl(name, kind, prefetch, ttl);
}

/**
 * Declarations of keyed states. `ttlMs` (optional) makes entries expire
 * that many ms of processing time after they were created or last written
 * (Flink's StateTtlConfig): an expired entry reads as absent and the host
 * removes it in its own time.
 */
class Declarations {
  constructor(ttlMs) {
    this._ttl = ttlMs === undefined ? undefined : ttlOf(ttlMs);
  }

  _ttlOf(options) {
    return options?.ttlMs === undefined ? this._ttl : ttlOf(options.ttlMs);
  }

  /**
   * A keyed value state. Prefetched (the default) unless
   * `options.prefetch` is false: use that for state used mostly in
   * namespaces (windows), where prefetching the default namespace is
   * wasted work. `options.ttlMs` sets a time-to-live.
   */
  valueState(name, codec, options = {}) {
    checkName(name);
    checkCodec(codec, 'codec', name);
    const prefetch = options.prefetch !== false;
    const id = declare(name, 'value', prefetch, this._ttlOf(options));
    if (prefetch) notePrefetched(id, name, codec);
    return new ValueState(id, name, codec, prefetch);
  }

  /** A keyed value state read through the host on each access. */
  valueStateUnprefetched(name, codec, options = {}) {
    return this.valueState(name, codec, { ...options, prefetch: false });
  }

  /** A keyed list state; with a TTL each element expires on its own. */
  listState(name, codec, options = {}) {
    checkName(name);
    checkCodec(codec, 'codec', name);
    return new ListState(declare(name, 'list', false, this._ttlOf(options)), name, codec);
  }

  /** A keyed map state; with a TTL each entry expires on its own. */
  mapState(name, keyCodec, valueCodec, options = {}) {
    checkName(name);
    checkCodec(keyCodec, 'key codec', name);
    checkCodec(valueCodec, 'value codec', name);
    return new MapState(declare(name, 'map', false, this._ttlOf(options)), name, keyCodec, valueCodec);
  }

  /**
   * A keyed reducing state: values folded with `reduce(a, b)`, stored as
   * one value with `codec` (a prefetched value state unless
   * `options.prefetch` is false).
   */
  reducingState(name, codec, reduce, options = {}) {
    return new ReducingState(this.valueState(name, codec, options), reduce);
  }

  /**
   * A keyed aggregating state: `aggregate` is `{ createAccumulator(),
   * add(v, acc), getResult(acc) }` and `accCodec` the accumulator's codec
   * (stored as one value, a prefetched value state unless
   * `options.prefetch` is false).
   */
  aggregatingState(name, accCodec, aggregate, options = {}) {
    const value = this.valueState(name, accCodec, options);
    return new AggregatingState(value, aggregate);
  }
}

/** Declares keyed states with a time-to-live; from `OpenContext.withTtl`. */
export class TtlStates extends Declarations {}

/**
 * Handed to the operator's `open`: the operator's config (from the job
 * spec) and the place to declare state and metrics.
 */
export class OpenContext extends Declarations {
  constructor(config) {
    super(undefined);
    this.config = config;
  }

  /** A config value by name, `undefined` if absent. */
  get(name) {
    for (const [k, v] of this.config) if (k === name) return v;
    return undefined;
  }

  /** A config value that must be present (throws: open fails with the message). */
  require(name) {
    const v = this.get(name);
    if (v === undefined) throw new Error(`missing config key \`${name}\``);
    return v;
  }

  /**
   * A config value parsed with `parser(raw)` (which throws or returns
   * undefined/NaN for a bad value), `undefined` if absent.
   */
  parse(name, parser) {
    const raw = this.get(name);
    if (raw === undefined) return undefined;
    let v;
    let why = 'invalid value';
    try {
      v = parser(raw);
    } catch (e) {
      why = e instanceof Error ? e.message : String(e);
      v = undefined;
    }
    if (v === undefined || (typeof v === 'number' && Number.isNaN(v))) {
      throw new Error(`config key \`${name}\`: cannot parse ${JSON.stringify(raw)}: ${why}`);
    }
    return v;
  }

  /** A config value as an integer (decimal, optional sign), `undefined` if absent. */
  parseInt(name) {
    return this.parse(name, (raw) => {
      if (!/^[+-]?\d+$/.test(raw)) throw new Error('invalid digit found in string');
      const v = Number(raw);
      if (!Number.isSafeInteger(v)) throw new Error('number too large to fit in target type');
      return v;
    });
  }

  /** A config value as a non-negative integer (like Rust's `u64`), `undefined` if absent. */
  parseUint(name) {
    return this.parse(name, (raw) => {
      if (!/^\+?\d+$/.test(raw)) throw new Error('invalid digit found in string');
      const v = Number(raw);
      if (!Number.isSafeInteger(v)) throw new Error('number too large to fit in target type');
      return v;
    });
  }

  /** A config value as a number, `undefined` if absent. */
  parseNumber(name) {
    return this.parse(name, (raw) => {
      if (raw.trim() === '') throw new Error('cannot parse float from empty string');
      const v = Number(raw);
      if (Number.isNaN(v) && raw !== 'NaN') throw new Error('invalid float literal');
      return v;
    });
  }

  /** A config value as a boolean (`true` or `false`), `undefined` if absent. */
  parseBool(name) {
    return this.parse(name, (raw) => {
      if (raw === 'true') return true;
      if (raw === 'false') return false;
      throw new Error('provided string was not `true` or `false`');
    });
  }

  /** Every config entry, as `[name, value]` pairs in the order of the job spec. */
  entries() {
    return this.config;
  }

  /**
   * Declarations of keyed states whose entries expire `ms` (processing
   * time, at least 1 ms) after they were created or last written:
   * `ctx.withTtl(3600_000).valueState('seen', codec.u64)`.
   */
  withTtl(ms) {
    return new TtlStates(ms);
  }

  /** The operator (non-keyed) list state `name` of this subtask. */
  operatorListState(name, codec) {
    checkName(name);
    checkCodec(codec, 'codec', name);
    return new OperatorListState(name, codec);
  }

  /** Declares a counter metric. */
  counter(name) {
    return new Counter(host.metrics.counter(name));
  }

  /** Declares a gauge metric. */
  gauge(name) {
    return new Gauge(host.metrics.gauge(name));
  }

  /** Writes a line to the host's log. */
  log(level, message) {
    log(level, message);
  }
}

/** A counter metric declared in `open`. */
export class Counter {
  constructor(id) {
    this.id = id;
  }

  /** Adds `delta` (a non-negative integer, default 1). */
  add(delta = 1) {
    host.metrics.counterAdd(this.id, BigInt(delta));
  }
}

/** A gauge metric declared in `open`. */
export class Gauge {
  constructor(id) {
    this.id = id;
  }

  /** Sets the current value. */
  set(value) {
    host.metrics.gaugeSet(this.id, Number(value));
  }
}

function timeArg(t) {
  if (typeof t === 'bigint') return t;
  if (typeof t !== 'number' || !Number.isInteger(t)) throw new TypeError(`weir-sdk: a timer time is an integer (ms), got ${t}`);
  return BigInt(t);
}

/**
 * Handed to `process`, `onTimer` and `close`: emit elements, read time,
 * register timers for the current key, log.
 */
export class Context {
  /**
   * Emits an element downstream. `key` and `value` are Uint8Arrays or
   * strings (UTF-8); `key` null/undefined for none; `timestamp` a number
   * (integer ms) or bigint, null/undefined for none. Output is buffered in
   * the guest and handed to the host in bulk.
   */
  emit(key, value, timestamp) {
    // The common shapes (bytes or no key; a short string or bytes value; an
    // integer or no timestamp) are encoded here, inline; the rest by
    // the general path.
    const kb = key instanceof U8;
    const noTs = timestamp === null || timestamp === undefined;
    const vs = typeof value === 'string';
    if (
      !(kb || key === null || key === undefined) ||
      !(noTs || (typeof timestamp === 'number' && timestamp % 1 === 0 && timestamp <= MAX_SAFE && timestamp >= -MAX_SAFE)) ||
      !(vs ? value.length <= 256 : value instanceof U8)
    ) {
      emit(key, value, timestamp);
      return;
    }
    const out = rt.out;
    const klen = kb ? key.length : 0;
    const need = 17 + klen + (vs ? value.length * 3 : value.length);
    if (out.pos + need > out.buf.length) out.reserve(need);
    const buf = out.buf;
    const dv = out.dv;
    let p = out.pos;
    buf[p++] = (kb ? 1 : 0) | (noTs ? 0 : 2);
    if (!noTs) {
      let hi = (timestamp / TWO_32) | 0;
      let lo = timestamp - hi * TWO_32;
      if (lo < 0) {
        hi -= 1;
        lo += TWO_32;
      }
      dv.setUint32(p, lo, true);
      dv.setInt32(p + 4, hi, true);
      p += 8;
    }
    if (kb) {
      dv.setUint32(p, klen, true);
      buf.set(key, p + 4);
      p += 4 + klen;
    }
    const at = p;
    p += 4;
    if (vs) {
      const n = value.length;
      for (let j = 0; j < n; j++) {
        const c = value.charCodeAt(j);
        if (c >= 0x80) {
          p = at + 4 + TEXT_ENCODER.encodeInto(value, buf.subarray(at + 4)).written;
          break;
        }
        buf[p++] = c;
      }
    } else {
      buf.set(value, p);
      p += value.length;
    }
    dv.setUint32(at, p - at - 4, true);
    out.pos = p;
    if (p >= OUTPUT_FLUSH_BYTES) flushOutput();
  }

  /**
   * Emits an element to side output `tag` (Flink's OutputTag, at most 128
   * bytes): only edges marked `side-output: <tag>` receive it. Each call
   * crosses to the host: meant for the exceptional (late records, rejects).
   */
  emitSide(tag, key, value, timestamp) {
    emitSide(tag, key, value, timestamp);
  }

  /**
   * The current event-time watermark, a number: `MIN_WATERMARK` (-2^63,
   * exact) before the first; the final watermark (2^63 - 1) reads as 2^63.
   */
  watermark() {
    return Number(host.timers.currentWatermark());
  }

  /** The wall clock in ms since the Unix epoch, a number. */
  processingTime() {
    return Number(host.timers.currentProcessingTime());
  }

  /** Registers an event-time timer for the current key. */
  registerEventTimer(time) {
    this.registerTimerIn(TimeDomain.EventTime, undefined, time);
  }

  /** Registers a processing-time timer for the current key. */
  registerProcessingTimer(time) {
    this.registerTimerIn(TimeDomain.ProcessingTime, undefined, time);
  }

  /** Deletes an event-time timer of the current key. */
  deleteEventTimer(time) {
    this.deleteTimerIn(TimeDomain.EventTime, undefined, time);
  }

  /** Deletes a processing-time timer of the current key. */
  deleteProcessingTimer(time) {
    this.deleteTimerIn(TimeDomain.ProcessingTime, undefined, time);
  }

  /** Registers a timer for the current key in a namespace (Uint8Array or string). */
  registerTimerIn(domain, namespace, time) {
    const t = timeArg(time);
    const ns = namespaceBytes(namespace);
    selectCurrentKey();
    host.timers.register(domain, ns, t);
  }

  /** Deletes a timer of the current key in a namespace, if registered. */
  deleteTimerIn(domain, namespace, time) {
    const t = timeArg(time);
    const ns = namespaceBytes(namespace);
    selectCurrentKey();
    host.timers.delete(domain, ns, t);
  }

  /** Writes a line to the host's log. */
  log(level, message) {
    log(level, message);
  }
}
