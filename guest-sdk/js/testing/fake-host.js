// An in-memory stand-in for Weir's host: the imports of the
// `weir:operator/operator` world with the types componentize-js's bindings
// use (Uint8Array lists, bigint s64/u64, string enums, undefined for none),
// and a driver that calls a `handler` the way the host does (batches with
// key slots and prefetched value state, updates applied after the call).

import { BatchBuilder, readBatch, readUpdates, writeSlotValues } from '../wire.js';

const hex = (b) => (b === null || b === undefined ? '-' : Buffer.from(b).toString('hex'));
const copy = (b) => Uint8Array.from(b);

export class FakeHost {
  constructor() {
    this.states = []; // { name, kind, prefetch, ttl }
    this.values = new Map(); // `${id}|${key}|${ns}` -> Uint8Array
    this.lists = new Map(); // -> Uint8Array[]
    this.maps = new Map(); // -> Map(hex(mapKey) -> [mapKey, value])
    this.currentKey = undefined; // Uint8Array | null once set; undefined: none
    this.batchKeys = [];
    this.inOpen = false;
    this.output = []; // emitted elements { key, value, timestamp }
    this.emitBatchCalls = 0;
    this.side = []; // { tag, elements }
    this.logs = []; // [level, message]
    this.calls = { selectKey: 0, valueGet: 0, valueSet: 0 };
    this.timers = new Map(); // `${domain}|${key}|${ns}|${time}` -> timer
    this.watermark = -(2n ** 63n);
    this.now = 1000n;
    this.operatorLists = new Map();
    this.counters = [];
    this.gauges = [];
  }

  slot(id, ns) {
    if (this.currentKey === undefined) throw new Error('trap: keyed state without a current key');
    return `${id}|${hex(this.currentKey)}|${hex(ns)}`;
  }

  checkId(id, kind) {
    const s = this.states[id];
    if (!s) throw new Error(`trap: no state ${id}`);
    if (kind && s.kind !== kind) throw new Error(`trap: state ${id} is a ${s.kind}`);
  }

  imports() {
    const h = this;
    const declare = (name, kind, prefetch, ttl) => {
      if (!h.inOpen) throw new Error('trap: declare outside open');
      if (!['value', 'list', 'map'].includes(kind)) throw new Error(`trap: bad kind ${kind}`);
      const at = h.states.findIndex((s) => s.name === name);
      if (at >= 0) return at;
      h.states.push({ name, kind, prefetch: prefetch && kind === 'value', ttl });
      return h.states.length - 1;
    };
    return {
      state: {
        declare: (name, kind, prefetch) => declare(name, kind, prefetch, undefined),
        declareWithTtl: (name, kind, prefetch, ttl) => {
          if (typeof ttl !== 'bigint') throw new TypeError('ttl must be a bigint (u64)');
          return declare(name, kind, prefetch, ttl);
        },
        selectKey(slot) {
          h.calls.selectKey += 1;
          if (slot >= h.batchKeys.length) throw new Error(`trap: slot ${slot} out of range`);
          h.currentKey = h.batchKeys[slot];
        },
        valueGet(id, ns) {
          h.checkId(id, 'value');
          h.calls.valueGet += 1;
          const v = h.values.get(h.slot(id, ns));
          return v === undefined ? undefined : copy(v);
        },
        valueSet(id, ns, v) {
          h.checkId(id, 'value');
          h.calls.valueSet += 1;
          h.values.set(h.slot(id, ns), copy(v));
        },
        listGet(id, ns) {
          h.checkId(id, 'list');
          return (h.lists.get(h.slot(id, ns)) ?? []).map(copy);
        },
        listAdd(id, ns, v) {
          h.checkId(id, 'list');
          const k = h.slot(id, ns);
          h.lists.set(k, [...(h.lists.get(k) ?? []), copy(v)]);
        },
        listSet(id, ns, vs) {
          h.checkId(id, 'list');
          h.lists.set(h.slot(id, ns), vs.map(copy));
        },
        mapGet(id, ns, mk) {
          h.checkId(id, 'map');
          const e = h.maps.get(h.slot(id, ns))?.get(hex(mk));
          return e === undefined ? undefined : copy(e[1]);
        },
        mapPut(id, ns, mk, v) {
          h.checkId(id, 'map');
          const k = h.slot(id, ns);
          if (!h.maps.has(k)) h.maps.set(k, new Map());
          h.maps.get(k).set(hex(mk), [copy(mk), copy(v)]);
        },
        mapRemove(id, ns, mk) {
          h.checkId(id, 'map');
          h.maps.get(h.slot(id, ns))?.delete(hex(mk));
        },
        mapEntries(id, ns) {
          h.checkId(id, 'map');
          const m = h.maps.get(h.slot(id, ns));
          if (!m) return [];
          return [...m.entries()].sort((a, b) => Buffer.compare(Buffer.from(a[1][0]), Buffer.from(b[1][0]))).map((e) => [copy(e[1][0]), copy(e[1][1])]);
        },
        clear(id, ns) {
          h.checkId(id);
          const k = h.slot(id, ns);
          h.values.delete(k);
          h.lists.delete(k);
          h.maps.delete(k);
        },
      },
      operatorState: {
        get: (name) => (h.operatorLists.get(name) ?? []).map(copy),
        update: (name, items) => h.operatorLists.set(name, items.map(copy)),
        add: (name, item) => h.operatorLists.set(name, [...(h.operatorLists.get(name) ?? []), copy(item)]),
      },
      timers: {
        currentWatermark: () => h.watermark,
        currentProcessingTime: () => h.now,
        register(domain, ns, time) {
          if (typeof time !== 'bigint') throw new TypeError('time must be a bigint (s64)');
          if (h.currentKey === undefined) throw new Error('trap: timer without a current key');
          h.timers.set(`${domain}|${hex(h.currentKey)}|${hex(ns)}|${time}`, {
            key: h.currentKey,
            namespace: copy(ns),
            time,
            domain,
          });
        },
        delete(domain, ns, time) {
          if (h.currentKey === undefined) throw new Error('trap: timer without a current key');
          h.timers.delete(`${domain}|${hex(h.currentKey)}|${hex(ns)}|${time}`);
        },
      },
      output: {
        emit(e) {
          h.output.push({ key: e.key ?? null, value: copy(e.value), timestamp: e.timestamp ?? null });
        },
        emitBatch(bytes) {
          h.emitBatchCalls += 1;
          for (const e of readBatch(copy(bytes))) h.output.push(e);
        },
        emitSide(tag, bytes) {
          h.side.push({ tag, elements: readBatch(copy(bytes)) });
        },
      },
      log: {
        log(level, message) {
          if (typeof message !== 'string') throw new TypeError('log message must be a string');
          h.logs.push([level, message]);
        },
      },
      metrics: {
        counter(name) {
          h.counters.push({ name, value: 0n });
          return h.counters.length - 1;
        },
        counterAdd(id, delta) {
          h.counters[id].value += BigInt(delta);
        },
        gauge(name) {
          h.gauges.push({ name, value: 0 });
          return h.gauges.length - 1;
        },
        gaugeSet(id, v) {
          h.gauges[id].value = v;
        },
      },
    };
  }

  /** Calls `handler.open` with config entries ([name, value] pairs). */
  open(handler, config = []) {
    this.inOpen = true;
    try {
      return handler.open(config);
    } finally {
      this.inOpen = false;
    }
  }

  /**
   * Sends one batch of `elements` ({ key, value, timestamp }, keys and
   * values Uint8Array or string) as the host does; returns the updates
   * the guest returned (decoded), after applying them.
   */
  process(handler, elements, { keyed = true, second = false } = {}) {
    const enc = (x) => (typeof x === 'string' ? new TextEncoder().encode(x) : x);
    const b = new BatchBuilder(256);
    const keys = [];
    const index = new Map();
    const slots = [];
    for (const e of elements) {
      const key = e.key === undefined || e.key === null ? null : enc(e.key);
      b.push(key, enc(e.value), e.timestamp);
      if (keyed) {
        const hk = hex(key);
        if (!index.has(hk)) {
          index.set(hk, keys.length);
          keys.push(key);
        }
        slots.push(index.get(hk));
      }
    }
    const prefetchedIds = this.states.map((s, id) => (s.prefetch ? id : -1)).filter((id) => id >= 0);
    const values = [];
    for (const key of keys) {
      for (const id of prefetchedIds) values.push(this.values.get(`${id}|${hex(key)}|`) ?? null);
    }
    this.batchKeys = keys;
    this.currentKey = undefined;
    const batch = {
      elements: Uint8Array.from(b.view()),
      keySlots: Uint32Array.from(slots),
      prefetched: writeSlotValues(values),
    };
    const raw = copy(second ? handler.processSecond(batch) : handler.process(batch));
    const updates = readUpdates(raw);
    for (const u of updates) {
      const k = `${u.id}|${hex(keys[u.slot])}|`;
      if (u.value === null) this.values.delete(k);
      else this.values.set(k, copy(u.value));
    }
    this.currentKey = undefined;
    return { raw, updates };
  }

  /** Fires a timer ({ key, namespace, time, domain }) with its key current. */
  fire(handler, timer) {
    this.currentKey = timer.key ?? null;
    try {
      handler.onTimer({
        key: timer.key ?? undefined,
        namespace: timer.namespace ?? new Uint8Array(0),
        time: BigInt(timer.time),
        domain: timer.domain ?? 'event-time',
      });
    } finally {
      this.currentKey = undefined;
    }
  }

  /** Calls `handler.close`. */
  close(handler) {
    this.currentKey = undefined;
    handler.close();
  }

  /** The stored default-namespace value of `key` for state `name`. */
  value(name, key) {
    const id = this.states.findIndex((s) => s.name === name);
    const k = typeof key === 'string' ? new TextEncoder().encode(key) : key;
    return this.values.get(`${id}|${hex(k)}|`);
  }

  /** Output values as text, in order. */
  outputText() {
    const d = new TextDecoder();
    return this.output.map((e) => `${e.key === null ? '' : d.decode(e.key)}\t${d.decode(e.value)}`);
  }
}
