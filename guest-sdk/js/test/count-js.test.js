// operators/count-js/count.js, the JS twin of the Rust count: same state
// name and bytes, same output, `ttl-ms` declares with a time-to-live.

import assert from 'node:assert/strict';
import { register } from 'node:module';
import { beforeEach, test } from 'node:test';

import { installHost } from '../sdk.js';
import { resetForTests } from '../runtime.js';
import { FakeHost } from '../testing/fake-host.js';

register('../testing/resolve-weir-sdk.js', import.meta.url);
const { handler } = await import('../../../operators/count-js/count.js');

const hex = (b) => Buffer.from(b).toString('hex');
let host;

beforeEach(() => {
  resetForTests();
  host = new FakeHost();
  installHost(host.imports());
});

test('counts per key as decimal text, at the element timestamp, state `count` as a u64 varint', () => {
  assert.deepEqual(host.open(handler), { tag: 'ok', val: undefined });
  assert.deepEqual(host.states, [{ name: 'count', kind: 'value', prefetch: true, ttl: undefined }]);
  const keys = [];
  for (let i = 0; i < 300; i++) keys.push({ key: `k${i % 3}`, value: 'v', timestamp: 1000 + i });
  host.process(handler, keys.slice(0, 100));
  host.process(handler, keys.slice(100));
  const lines = host.outputText();
  assert.equal(lines.length, 300);
  assert.equal(lines[0], 'k0\t1');
  assert.equal(lines[299], 'k2\t100');
  assert.equal(host.output[299].timestamp, 1299);
  assert.equal(hex(host.value('count', 'k0')), '64');
  // 128 and more take two varint bytes, as postcard writes them.
  host.values.set('0|6b30|', Uint8Array.of(0xff, 0x00));
  host.process(handler, [{ key: 'k0', value: 'v' }]);
  assert.equal(host.outputText().at(-1), 'k0\t128');
  assert.equal(hex(host.value('count', 'k0')), '8001');
});

test('continues past 2^53 - 1 with bigints', () => {
  host.open(handler);
  host.values.set('0|6b|', Uint8Array.of(0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f));
  host.process(handler, [{ key: 'k', value: '' }, { key: 'k', value: '' }, { key: 'k', value: '' }]);
  assert.deepEqual(host.outputText(), ['k\t9007199254740991', 'k\t9007199254740992', 'k\t9007199254740993']);
  assert.equal(hex(host.value('count', 'k')), '8180808080808010');
});

test('ttl-ms declares the state with a time-to-live; a bad value fails open', () => {
  assert.deepEqual(host.open(handler, [['ttl-ms', '60000']]), { tag: 'ok', val: undefined });
  assert.deepEqual(host.states, [{ name: 'count', kind: 'value', prefetch: true, ttl: 60000n }]);
  resetForTests();
  host = new FakeHost();
  installHost(host.imports());
  assert.deepEqual(host.open(handler, [['ttl-ms', '-5']]), {
    tag: 'err',
    val: 'config key `ttl-ms`: cannot parse "-5": invalid digit found in string',
  });
});
