// The batch encoding, prefetched slot values and updates, against bytes
// laid out by hand from wire/src/.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  BatchBuilder,
  BatchCursor,
  WireError,
  readBatch,
  readSlotValues,
  readUpdates,
  writeSlotValues,
  writeUpdates,
} from '../wire.js';

const hex = (b) => Buffer.from(b).toString('hex');
const bytes = (h) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const text = (b) => (b === null ? null : new TextDecoder().decode(b));

test('batch encoding: layout of wire/src/batch.rs', () => {
  const b = new BatchBuilder(4);
  b.push('k', 'v1', -5);
  b.push(null, new Uint8Array(0), null);
  b.push(new Uint8Array(0), 'x', undefined);
  assert.equal(b.length, 3);
  assert.equal(
    hex(b.view()),
    // flags 3, ts -5, key "k", value "v1"
    '03' + 'fbffffffffffffff' + '01000000' + '6b' + '02000000' + '7631' +
      // flags 0, empty value
      '00' + '00000000' +
      // flags 1, empty key, value "x"
      '01' + '00000000' + '01000000' + '78',
  );
});

test('batch round trips, with timestamps near and past 2^53', () => {
  const items = [
    ['a', 'hello', 0],
    ['', 'é', 1700000000123],
    [null, 'v', -1],
    ['k', '', Number.MAX_SAFE_INTEGER],
    ['k', 'x', Number.MIN_SAFE_INTEGER],
    ['k', 'x', 2n ** 62n],
    ['k', 'x', -(2n ** 63n)],
    ['k', 'x', null],
    [Uint8Array.of(0, 255), Uint8Array.of(1, 2, 3), 42],
  ];
  const b = new BatchBuilder(8);
  for (const [k, v, t] of items) b.push(k, v, t);
  const got = readBatch(Uint8Array.from(b.view()));
  assert.equal(got.length, items.length);
  items.forEach(([k, v, t], i) => {
    const e = got[i];
    if (k instanceof Uint8Array) assert.deepEqual(e.key, k);
    else assert.equal(text(e.key), k);
    if (v instanceof Uint8Array) assert.deepEqual(e.value, v);
    else assert.equal(e.valueStr(), v);
    assert.equal(e.timestamp, t, `timestamp ${i}`);
  });
  assert.equal(got[1].keyStr(), '');
  assert.equal(got[2].keyStr(), null);
  assert.equal(got[8].keyStr(), null, 'not UTF-8');
  assert.equal(typeof got[3].timestamp, 'number');
  assert.equal(typeof got[5].timestamp, 'bigint');
});

test('a truncated or bad batch is a WireError', () => {
  const b = new BatchBuilder();
  b.push('key', 'value', 1);
  const buf = Uint8Array.from(b.view());
  for (let cut = 1; cut < buf.length; cut++) {
    assert.throws(() => readBatch(buf.subarray(0, cut)), WireError, `cut at ${cut}`);
  }
  assert.throws(() => new BatchCursor(bytes('ff')).next(), /element flags/);
  assert.throws(() => b.push('k', null, 1), TypeError);
  assert.throws(() => b.push('k', 'v', 1.5), TypeError);
});

test('a big output batch grows its buffer', () => {
  const b = new BatchBuilder(16);
  const v = 'x'.repeat(1000);
  for (let i = 0; i < 1000; i++) b.push(`k${i}`, v, i);
  const got = readBatch(Uint8Array.from(b.view()));
  assert.equal(got.length, 1000);
  assert.equal(got[999].keyStr(), 'k999');
  assert.equal(got[999].timestamp, 999);
});

test('prefetched slot values: layout of wire/src/slots.rs', () => {
  const buf = writeSlotValues([Uint8Array.of(0x61, 0x62, 0x63), null, new Uint8Array(0)]);
  assert.equal(hex(buf), '01' + '03000000' + '616263' + '00' + '01' + '00000000');
  const back = readSlotValues(buf);
  assert.deepEqual(back.map((v) => (v === null ? null : hex(v))), ['616263', null, '']);
  assert.throws(() => readSlotValues(bytes('02')), /prefetched presence/);
  assert.throws(() => readSlotValues(bytes('0105000000')), /prefetched value/);
});

test('updates: layout of wire/src/updates.rs', () => {
  const buf = writeUpdates([
    { slot: 3, id: 0, value: Uint8Array.of(0x37) },
    { slot: 1, id: 2, value: null },
  ]);
  assert.equal(hex(buf), '03000000' + '00000000' + '01' + '01000000' + '37' + '01000000' + '02000000' + '00');
  const back = readUpdates(buf);
  assert.deepEqual(back.map((u) => [u.slot, u.id, u.value === null ? null : hex(u.value)]), [
    [3, 0, '37'],
    [1, 2, null],
  ]);
  assert.throws(() => readUpdates(buf.subarray(0, 5)), WireError);
  assert.throws(() => readUpdates(bytes('000000000000000002')), /update op/);
});
