// `count`: emits the running count of each key, as decimal text; the
// JavaScript twin of operators/count (Rust), with the same state: a value
// state named `count` holding a u64 (varint), so a checkpoint of either
// restores into the other.
//
// Input: a keyed stream (`partition: hash`). Output: for every element, its
// key with the number of elements seen so far for that key, at the
// element's timestamp.
//
// Config: `ttl-ms` (optional) forgets a key's count that many milliseconds
// after its last element (state time-to-live), so it counts again from 1.
// `per-record: true` reads and writes the count through a host call for
// every element instead of with the batch (the slow path, for
// `weir bench languages`).
//
// Build: scripts/componentize-js operators/count-js count-js.wasm

import { codec, exportOperator } from 'weir-sdk';

class Count {
  static open(ctx) {
    const ttlMs = ctx.parseUint('ttl-ms');
    const options = { prefetch: ctx.get('per-record') !== 'true' };
    const count =
      ttlMs === undefined
        ? ctx.valueState('count', codec.u64, options)
        : ctx.withTtl(ttlMs).valueState('count', codec.u64, options);
    return new Count(count);
  }

  constructor(count) {
    this.count = count;
  }

  process(element, ctx) {
    const n = this.count.update(increment);
    ctx.emit(element.key, String(n), element.timestamp);
  }
}

// A u64 count plus one: a number while it is a safe integer, then a bigint.
function increment(n) {
  if (n === undefined) return 1;
  return n < Number.MAX_SAFE_INTEGER ? n + 1 : BigInt(n) + 1n;
}

export const handler = exportOperator(Count);
