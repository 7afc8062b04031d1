// The codec against every example of docs/state-codec.md, and round trips.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import * as codec from '../codec.js';

const hex = (b) => Buffer.from(b).toString('hex');
const bytes = (h) => Uint8Array.from(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

// The table of docs/state-codec.md, by value and type as written there.
const EXAMPLES = {
  '`0`|unsigned': [codec.u64, 0],
  '`300`|unsigned': [codec.u64, 300],
  '`-1`|signed': [codec.i64, -1],
  '`200`|byte': [codec.u8, 200],
  '`-2`|signed byte': [codec.i8, -2],
  '`1.5`|float': [codec.f64, 1.5],
  '`"hé"`|text': [codec.str, 'hé'],
  '`Some(7)`|optional unsigned': [codec.option(codec.u64), 7],
  '`[1, 2]`|sequence of unsigned': [codec.list(codec.u64), [1, 2]],
  '`(5, -3)`|tuple of unsigned, signed': [codec.tuple(codec.u64, codec.i64), [5, -3]],
};

test('every example of docs/state-codec.md', () => {
  const doc = readFileSync(new URL('../../../docs/state-codec.md', import.meta.url), 'utf8');
  const rows = doc
    .slice(doc.indexOf('Examples (hexadecimal)'))
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .map((l) => l.split('|').map((c) => c.trim()));
  assert.ok(rows.length >= 10, `found ${rows.length} example rows`);
  for (const [, value, type, want] of rows) {
    const example = EXAMPLES[`${value}|${type}`];
    assert.ok(example, `no JS value for the example ${value} (${type}): add it to EXAMPLES`);
    const [c, v] = example;
    const h = want.replace(/[`\s]/g, '');
    assert.equal(hex(c.encode(v)), h, `${value} as ${type}`);
    assert.deepEqual(c.decode(bytes(h)), v, `${h} as ${type}`);
  }
});

test('u64: varints, numbers while safe, bigints past 2^53 - 1', () => {
  const cases = [
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [2 ** 31, '8080808008'],
    [2 ** 32 - 1, 'ffffffff0f'],
    [Number.MAX_SAFE_INTEGER, 'ffffffffffffff0f'],
    [2n ** 53n, '8080808080808010'],
    [2n ** 64n - 1n, 'ffffffffffffffffff01'],
  ];
  for (const [v, h] of cases) {
    assert.equal(hex(codec.u64.encode(v)), h, `encode ${v}`);
    assert.deepEqual(codec.u64.decode(bytes(h)), v, `decode ${h}`);
  }
  assert.equal(hex(codec.u64.encode(300n)), 'ac02', 'a small bigint encodes the same');
  assert.equal(codec.u64.decode(bytes('ac02')), 300, 'and decodes to a number');
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, -1n, 2n ** 64n, '1', null, undefined]) {
    assert.throws(() => codec.u64.encode(bad), TypeError, `u64 refuses ${String(bad)}`);
  }
  // Postcard refuses a 10th byte above 1 and an 11th byte.
  assert.throws(() => codec.u64.decode(bytes('ffffffffffffffffff02')), codec.CodecError);
  assert.throws(() => codec.u64.decode(bytes('ffffffffffffffffff8001')), codec.CodecError);
  assert.throws(() => codec.u64.decode(bytes('80')), /ends early/);
  assert.throws(() => codec.u64.decode(bytes('0100')), /left over/);
  // Non-minimal varints decode, as with postcard.
  assert.equal(codec.u64.decode(bytes('8100')), 1);
});

test('i64: zigzag', () => {
  const cases = [
    [0, '00'],
    [-1, '01'],
    [1, '02'],
    [-2, '03'],
    [-3, '05'],
    [63, '7e'],
    [-64, '7f'],
    [64, '8001'],
    [2 ** 51, '8080808080808008'],
    [Number.MAX_SAFE_INTEGER, 'feffffffffffff1f'],
    [Number.MIN_SAFE_INTEGER, 'fdffffffffffff1f'],
    [2n ** 63n - 1n, 'feffffffffffffffff01'],
    [-(2n ** 63n), 'ffffffffffffffffff01'],
  ];
  for (const [v, h] of cases) {
    assert.equal(hex(codec.i64.encode(v)), h, `encode ${v}`);
    assert.deepEqual(codec.i64.decode(bytes(h)), v, `decode ${h}`);
  }
  assert.throws(() => codec.i64.encode(2n ** 63n), TypeError);
  assert.throws(() => codec.i64.encode(0.5), TypeError);
});

test('f64, bool, str, bytes', () => {
  assert.equal(hex(codec.f64.encode(-0.25)), '000000000000d0bf');
  assert.equal(codec.f64.decode(codec.f64.encode(Math.PI)), Math.PI);
  assert.ok(Number.isNaN(codec.f64.decode(codec.f64.encode(NaN))));
  assert.throws(() => codec.f64.decode(bytes('0000')), /ends early/);
  assert.equal(hex(codec.bool.encode(true)), '01');
  assert.equal(hex(codec.bool.encode(false)), '00');
  assert.equal(codec.bool.decode(bytes('01')), true);
  assert.throws(() => codec.bool.decode(bytes('02')), /not 0 or 1/);
  assert.throws(() => codec.bool.encode(1), TypeError);
  assert.equal(hex(codec.str.encode('')), '00');
  assert.equal(hex(codec.str.encode('abc')), '03616263');
  assert.equal(codec.str.decode(codec.str.encode('日本語 ✓ 😀')), '日本語 ✓ 😀');
  assert.throws(() => codec.str.decode(bytes('02c328')), /UTF-8/);
  assert.throws(() => codec.str.decode(bytes('05616263')), /longer than the value/);
  assert.equal(hex(codec.bytes.encode(Uint8Array.of(1, 2, 255))), '030102ff');
  assert.deepEqual(codec.bytes.decode(bytes('030102ff')), Uint8Array.of(1, 2, 255));
  assert.equal(hex(codec.bytes.encode([9])), '0109');
});

test('option, list, tuple, struct', () => {
  const opt = codec.option(codec.str);
  assert.equal(hex(opt.encode(null)), '00');
  assert.equal(hex(opt.encode(undefined)), '00');
  assert.equal(opt.decode(bytes('00')), null);
  assert.equal(opt.decode(opt.encode('x')), 'x');
  assert.throws(() => opt.decode(bytes('02')), /option tag/);
  const l = codec.list(codec.tuple(codec.str, codec.u64));
  const v = [['a', 1], ['bé', 300]];
  assert.equal(hex(l.encode(v)), '020161010362c3a9ac02');
  assert.deepEqual(l.decode(l.encode(v)), v);
  assert.deepEqual(codec.list(codec.u64).decode(bytes('00')), []);
  assert.throws(() => codec.list(codec.u64).decode(bytes('0501')), codec.CodecError);
  // A struct is its fields in order: Rust's `struct Avg { sum: i64, count: u64 }`.
  const avg = codec.struct({ sum: codec.i64, count: codec.u64 });
  assert.equal(hex(avg.encode({ sum: -3, count: 5 })), '0505');
  assert.deepEqual(avg.decode(bytes('0505')), { sum: -3, count: 5 });
  assert.equal(hex(codec.tuple(codec.i64, codec.u64).encode([-3, 5])), '0505');
  assert.throws(() => codec.tuple(codec.u64, codec.u64).encode([1]), TypeError);
  assert.throws(() => codec.option({}), TypeError);
});

test('decode errors are CodecErrors that name the type', () => {
  assert.throws(
    () => codec.tuple(codec.u64, codec.str).decode(bytes('01')),
    (e) => e instanceof codec.CodecError && /cannot decode tuple\(u64, str\)/.test(e.message),
  );
});

test('u8 and i8: one raw byte, range-checked', () => {
  for (const v of [0, 127, 128, 255]) assert.equal(codec.u8.decode(codec.u8.encode(v)), v);
  for (const v of [-128, -1, 0, 127]) assert.equal(codec.i8.decode(codec.i8.encode(v)), v);
  assert.equal(hex(codec.u8.encode(255)), 'ff');
  assert.equal(hex(codec.i8.encode(-128)), '80');
  for (const bad of [256, -1, 1.5, '1', 1n]) assert.throws(() => codec.u8.encode(bad), TypeError);
  for (const bad of [128, -129]) assert.throws(() => codec.i8.encode(bad), TypeError);
  assert.throws(() => codec.u8.decode(Uint8Array.of(1, 2)), codec.CodecError);
  assert.throws(() => codec.i8.decode(new Uint8Array(0)), codec.CodecError);
});
