// Typed handles over the host's state, encoded with a codec from
// `codec.js`. Declare them in `open` through the OpenContext.
//
// Every keyed handle reads and writes the state of the current key: in
// `process` the key of the element, in `onTimer` the key of the timer.
// Absent values read as `undefined`.

import { host } from './host.js';
import {
  cachedClear,
  decodeBytes,
  decodeCell,
  encodeValue,
  rt,
  selectCurrentKey,
  setCell,
} from './runtime.js';

// Copies of runtime.js's and codec.js's constants: in the component's
// interpreter an imported binding costs a lookup on every use, a
// module-level const does not.
const BATCH = 1; // runtime.js BATCH
const ABSENT = 0; // runtime.js ABSENT
const DECODED = 3; // runtime.js DECODED
const TAG_U64 = 1; // codec.js TAG_U64
const TAG_I64 = 2; // codec.js TAG_I64
const TAG_F64 = 3; // codec.js TAG_F64
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const EMPTY = new Uint8Array(0);
const TEXT_ENCODER = new TextEncoder();

/** A namespace as bytes: a Uint8Array as is, a string as UTF-8, none as empty. */
export function namespaceBytes(ns) {
  if (ns === undefined || ns === null) return EMPTY;
  if (ns instanceof Uint8Array) return ns;
  if (typeof ns === 'string') return TEXT_ENCODER.encode(ns);
  throw new TypeError(`weir-sdk: a namespace is a Uint8Array or a string, got ${typeof ns}`);
}

/**
 * A single value per key (and namespace). Prefetched by default: the
 * default-namespace value of every key of a batch comes with the batch and
 * changes go back with its result, so `get`/`set`/`update` in `process`
 * cost no host call. Namespaced access (`getIn`...) always calls the host.
 */
export class ValueState {
  constructor(id, name, codec, prefetched) {
    this.id = id;
    this.name = name;
    this.codec = codec;
    this.prefetched = prefetched;
    this._gen = -1;
    this._idx = -1;
  }

  _index() {
    if (this._gen !== rt.gen) {
      this._idx = rt.prefIds.indexOf(this.id);
      this._gen = rt.gen;
    }
    return this._idx;
  }

  /** The current key's value, `undefined` if absent. */
  get() {
    const r = rt;
    if (this.prefetched && r.scope === BATCH && r.slot >= 0) {
      if (this._gen !== r.gen) this._index();
      const i = r.slot * r.nPref + this._idx;
      if (this._idx >= 0 && i < r.nCells) {
        const k = r.kind[i];
        if (k === DECODED) return r.vals[i];
        if (k === ABSENT) return undefined;
        return decodeCell(i, this.name, this.codec);
      }
    }
    return this.getIn(EMPTY);
  }

  /** Sets the current key's value. */
  set(value) {
    const r = rt;
    if (this.prefetched && r.scope === BATCH && r.slot >= 0) {
      if (this._gen !== r.gen) this._index();
      const i = r.slot * r.nPref + this._idx;
      if (this._idx >= 0 && i < r.nCells) {
        const tag = this.codec.tag;
        // A number for a number codec is checked here, without encoding.
        if (
          typeof value === 'number' &&
          ((tag === TAG_U64 && value >= 0 && value <= MAX_SAFE && value % 1 === 0) ||
            (tag === TAG_I64 && value >= -MAX_SAFE && value <= MAX_SAFE && value % 1 === 0) ||
            tag === TAG_F64)
        ) {
          r.kind[i] = DECODED;
          r.vals[i] = value;
          if (r.dirty[i] === 0) {
            r.dirty[i] = 1;
            r.dirtyList.push(i);
          }
        } else {
          setCell(i, this.name, this.codec, value);
        }
        return;
      }
    }
    this.setIn(EMPTY, value);
  }

  /** Stores and returns `f(current value or undefined)`. */
  update(f) {
    const r = rt;
    if (this.prefetched && r.scope === BATCH && r.slot >= 0) {
      if (this._gen !== r.gen) this._index();
      const i = r.slot * r.nPref + this._idx;
      if (this._idx >= 0 && i < r.nCells) {
        const k = r.kind[i];
        const tag = this.codec.tag;
        const next = f(k === DECODED ? r.vals[i] : k === ABSENT ? undefined : decodeCell(i, this.name, this.codec));
        // A number for a number codec is checked here, without encoding.
        if (
          typeof next === 'number' &&
          ((tag === TAG_U64 && next >= 0 && next <= MAX_SAFE && next % 1 === 0) ||
            (tag === TAG_I64 && next >= -MAX_SAFE && next <= MAX_SAFE && next % 1 === 0) ||
            tag === TAG_F64)
        ) {
          r.kind[i] = DECODED;
          r.vals[i] = next;
          if (r.dirty[i] === 0) {
            r.dirty[i] = 1;
            r.dirtyList.push(i);
          }
        } else {
          setCell(i, this.name, this.codec, next);
        }
        return next;
      }
    }
    const next = f(this.get());
    this.set(next);
    return next;
  }

  /** Removes the current key's value. */
  clear() {
    if (this.prefetched && cachedClear(this._index())) return;
    this.clearIn(EMPTY);
  }

  /** The current key's value in a namespace (Uint8Array or string). */
  getIn(namespace) {
    selectCurrentKey();
    const b = host.state.valueGet(this.id, namespaceBytes(namespace));
    return b === undefined || b === null ? undefined : decodeBytes(this.name, this.codec, b);
  }

  /** Sets the current key's value in a namespace. */
  setIn(namespace, value) {
    const bytes = encodeValue(this.name, this.codec, value);
    selectCurrentKey();
    host.state.valueSet(this.id, namespaceBytes(namespace), bytes);
  }

  /** Removes the current key's value in a namespace. */
  clearIn(namespace) {
    selectCurrentKey();
    host.state.clear(this.id, namespaceBytes(namespace));
  }

  /** Stores and returns `f(current value in the namespace or undefined)`. */
  updateIn(namespace, f) {
    const ns = namespaceBytes(namespace);
    const next = f(this.getIn(ns));
    this.setIn(ns, next);
    return next;
  }
}

/** A list of values per key. Each call is one host call. */
export class ListState {
  constructor(id, name, codec) {
    this.id = id;
    this.name = name;
    this.codec = codec;
  }

  /** Every entry of the current key's list (an array, empty if none). */
  get() {
    selectCurrentKey();
    const items = host.state.listGet(this.id, EMPTY);
    const out = new Array(items.length);
    for (let i = 0; i < items.length; i++) out[i] = decodeBytes(this.name, this.codec, items[i]);
    return out;
  }

  /** Appends to the current key's list. */
  add(value) {
    const bytes = encodeValue(this.name, this.codec, value);
    selectCurrentKey();
    host.state.listAdd(this.id, EMPTY, bytes);
  }

  /** Replaces the current key's list. */
  set(values) {
    const encoded = Array.from(values, (v) => encodeValue(this.name, this.codec, v));
    selectCurrentKey();
    host.state.listSet(this.id, EMPTY, encoded);
  }

  /** Empties the current key's list. */
  clear() {
    selectCurrentKey();
    host.state.clear(this.id, EMPTY);
  }
}

/** A map per key. Entries come back ordered by the encoded map key. */
export class MapState {
  constructor(id, name, keyCodec, valueCodec) {
    this.id = id;
    this.name = name;
    this.keyCodec = keyCodec;
    this.valueCodec = valueCodec;
  }

  /** One entry of the current key's map, `undefined` if absent. */
  get(key) {
    const k = encodeValue(this.name, this.keyCodec, key);
    selectCurrentKey();
    const b = host.state.mapGet(this.id, EMPTY, k);
    return b === undefined || b === null ? undefined : decodeBytes(this.name, this.valueCodec, b);
  }

  /** Whether the current key's map has an entry for `key`. */
  has(key) {
    const k = encodeValue(this.name, this.keyCodec, key);
    selectCurrentKey();
    const b = host.state.mapGet(this.id, EMPTY, k);
    return b !== undefined && b !== null;
  }

  /** Writes one entry of the current key's map. */
  put(key, value) {
    const k = encodeValue(this.name, this.keyCodec, key);
    const v = encodeValue(this.name, this.valueCodec, value);
    selectCurrentKey();
    host.state.mapPut(this.id, EMPTY, k, v);
  }

  /** Removes one entry of the current key's map. */
  remove(key) {
    const k = encodeValue(this.name, this.keyCodec, key);
    selectCurrentKey();
    host.state.mapRemove(this.id, EMPTY, k);
  }

  /** Every entry of the current key's map, as `[key, value]` pairs. */
  entries() {
    selectCurrentKey();
    const raw = host.state.mapEntries(this.id, EMPTY);
    const out = new Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const [k, v] = raw[i];
      out[i] = [decodeBytes(this.name, this.keyCodec, k), decodeBytes(this.name, this.valueCodec, v)];
    }
    return out;
  }

  /** Every map key of the current key's map. */
  keys() {
    return this.entries().map((e) => e[0]);
  }

  /** Every value of the current key's map. */
  values() {
    return this.entries().map((e) => e[1]);
  }

  /** Empties the current key's map. */
  clear() {
    selectCurrentKey();
    host.state.clear(this.id, EMPTY);
  }
}

/**
 * A value per key folded with a reduce function (Flink's ReducingState),
 * stored in a value state (prefetched unless declared otherwise): `add(v)`
 * stores `v` if the state is empty, else `reduce(current, v)`.
 */
export class ReducingState {
  constructor(valueState, reduce) {
    if (typeof reduce !== 'function') throw new TypeError('weir-sdk: a reducing state needs a reduce function');
    this.value = valueState;
    this.reduce = reduce;
  }

  /** The reduced value, `undefined` if nothing was added. */
  get() {
    return this.value.get();
  }

  /** Folds `v` into the value. */
  add(v) {
    const cur = this.value.get();
    this.value.set(cur === undefined ? v : this.reduce(cur, v));
  }

  /** Empties the state. */
  clear() {
    this.value.clear();
  }
}

/**
 * A value per key aggregated with an accumulator (Flink's
 * AggregatingState), stored in a value state with the accumulator's codec:
 * `add(v)` sets the accumulator to `aggregate.add(v, acc)` (Flink's and
 * the other SDKs' argument order; acc is
 * `aggregate.createAccumulator()` when empty; `add` may update acc in
 * place and return nothing), `get()` is `aggregate.getResult(acc)`.
 */
export class AggregatingState {
  constructor(valueState, aggregate) {
    for (const f of ['createAccumulator', 'add', 'getResult']) {
      if (typeof aggregate?.[f] !== 'function') {
        throw new TypeError(`weir-sdk: an aggregating state needs an aggregate with \`${f}\``);
      }
    }
    this.value = valueState;
    this.aggregate = aggregate;
  }

  /** The result over what was added, `undefined` if nothing was. */
  get() {
    const acc = this.value.get();
    return acc === undefined ? undefined : this.aggregate.getResult(acc);
  }

  /** The stored accumulator, `undefined` if nothing was added. */
  accumulator() {
    return this.value.get();
  }

  /** Adds `v` to the accumulator. */
  add(v) {
    let acc = this.value.get();
    if (acc === undefined) acc = this.aggregate.createAccumulator();
    const next = this.aggregate.add(v, acc);
    this.value.set(next === undefined ? acc : next);
  }

  /** Empties the state. */
  clear() {
    this.value.clear();
  }
}

/**
 * A list that belongs to the subtask rather than to a key (operator
 * state): buffers, positions, per-subtask counters. The host snapshots it
 * with checkpoints; on a restore at another parallelism its items are
 * dealt round-robin over the new subtasks. Keep it small.
 */
export class OperatorListState {
  constructor(name, codec) {
    this.name = name;
    this.codec = codec;
  }

  /** Every item of this subtask's list. */
  get() {
    const items = host.operatorState.get(this.name);
    const out = new Array(items.length);
    for (let i = 0; i < items.length; i++) out[i] = decodeBytes(this.name, this.codec, items[i]);
    return out;
  }

  /** Replaces the list. */
  update(items) {
    host.operatorState.update(
      this.name,
      Array.from(items, (v) => encodeValue(this.name, this.codec, v)),
    );
  }

  /** Appends one item. */
  add(item) {
    host.operatorState.add(this.name, encodeValue(this.name, this.codec, item));
  }
}
