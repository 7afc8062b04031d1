// The runtime against a fake host: the batch protocol (prefetched value
// state, updates, select-key only on a slot change, one emit-batch per
// call), the state kinds, timers, open's failure modes.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { codec, exportOperator, exportTwoInputOperator, installHost, MIN_WATERMARK, TimeDomain } from '../sdk.js';
import { resetForTests } from '../runtime.js';
import { FakeHost } from '../testing/fake-host.js';

const hex = (b) => Buffer.from(b).toString('hex');
let host;

beforeEach(() => {
  resetForTests();
  host = new FakeHost();
  installHost(host.imports());
});

class Count {
  constructor(ctx) {
    this.count = ctx.valueState('count', codec.u64);
  }

  process(e, ctx) {
    const n = this.count.update((n) => (n ?? 0) + 1);
    ctx.emit(e.key, String(n), e.timestamp);
  }
}

test('a keyed count: prefetched state, updates, no state host calls', () => {
  const h = exportOperator(Count);
  assert.deepEqual(host.open(h), { tag: 'ok', val: undefined });
  assert.equal(host.states[0].prefetch, true);
  const first = host.process(h, [
    { key: 'a', value: '', timestamp: 10 },
    { key: 'b', value: '', timestamp: 11 },
    { key: 'a', value: '', timestamp: 12 },
  ]);
  // slot 0 ("a") -> 2, slot 1 ("b") -> 1: varints, in the order first written.
  assert.equal(hex(first.raw), '00000000' + '00000000' + '01' + '01000000' + '02' + '01000000' + '00000000' + '01' + '01000000' + '01');
  host.process(h, [
    { key: 'b', value: '', timestamp: 13 },
    { key: 'c', value: '' },
  ]);
  assert.deepEqual(host.outputText(), ['a\t1', 'b\t1', 'a\t2', 'b\t2', 'c\t1']);
  assert.deepEqual(host.output.map((e) => e.timestamp), [10, 11, 12, 13, null]);
  assert.equal(hex(host.value('count', 'a')), '02');
  assert.equal(hex(host.value('count', 'b')), '02');
  assert.deepEqual(host.calls, { selectKey: 0, valueGet: 0, valueSet: 0 });
  assert.equal(host.emitBatchCalls, 2, 'one emit-batch per call');
});

test('the state of a key survives batches, and a value the Rust SDK wrote is read', () => {
  const h = exportOperator(Count);
  host.open(h);
  // The Rust count wrote 299 for "k" (postcard varint ab 02).
  host.values.set('0|6b|', Uint8Array.of(0xab, 0x02));
  host.process(h, [{ key: 'k', value: 'x' }]);
  assert.deepEqual(host.outputText(), ['k\t300']);
  assert.equal(hex(host.value('count', 'k')), 'ac02');
});

test('a value that does not decode fails with an error naming the state', () => {
  const h = exportOperator(Count);
  host.open(h);
  host.values.set('0|6b|', Uint8Array.of(0xff));
  assert.throws(() => host.process(h, [{ key: 'k', value: 'x' }]), /state `count`: cannot decode its value as u64/);
  assert.match(host.logs.at(-1)[1], /^panic: Error: weir-sdk: state `count`/);
});

test('clear and set of objects: updates carry op 0 and the encoded bytes', () => {
  class Op {
    constructor(ctx) {
      this.last = ctx.valueState('last', codec.tuple(codec.str, codec.i64));
      this.n = ctx.valueState('n', codec.u64);
    }

    process(e) {
      if (e.valueStr() === 'clear') {
        this.last.clear();
        this.n.clear();
      } else {
        const pair = [e.valueStr(), -e.timestamp];
        this.last.set(pair);
        pair[0] = 'changed after set';
        this.n.set(7);
        assert.deepEqual(this.last.get(), [e.valueStr(), -e.timestamp], 'set copies an object');
      }
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  const r = host.process(h, [{ key: 'k', value: 'ab', timestamp: 3 }]);
  assert.deepEqual(r.updates.map((u) => [u.slot, u.id, hex(u.value)]), [
    [0, 0, '02616205'],
    [0, 1, '07'],
  ]);
  const c = host.process(h, [{ key: 'k', value: 'clear', timestamp: 3 }]);
  assert.deepEqual(c.updates.map((u) => [u.slot, u.id, u.value]), [
    [0, 0, null],
    [0, 1, null],
  ]);
  assert.equal(host.value('last', 'k'), undefined);
});

test('a bad value for a state throws at the set, naming the state', () => {
  class Op {
    constructor(ctx) {
      this.n = ctx.valueState('n', codec.u64);
    }

    process() {
      this.n.set(-1);
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  assert.throws(() => host.process(h, [{ key: 'k', value: '' }]), /state `n`: cannot encode a value as u64/);
});

test('unprefetched and namespaced value state go through the host, select-key once per slot change', () => {
  class Op {
    constructor(ctx) {
      this.v = ctx.valueState('v', codec.str, { prefetch: false });
      this.w = ctx.valueState('w', codec.u64);
    }

    process(e) {
      this.v.set(e.valueStr());
      this.w.setIn('ns', (this.w.getIn('ns') ?? 0) + 1);
      this.w.update((n) => (n ?? 0) + 10);
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  assert.deepEqual(host.states.map((s) => s.prefetch), [false, true]);
  host.process(h, [
    { key: 'a', value: 'x' },
    { key: 'a', value: 'y' },
    { key: 'b', value: 'z' },
    { key: 'a', value: 'w' },
  ]);
  assert.equal(host.calls.selectKey, 3, 'a, b, a');
  assert.equal(host.values.get('0|61|') && new TextDecoder().decode(host.values.get('0|61|').subarray(1)), 'w');
  assert.equal(hex(host.values.get('1|61|6e73')), '03');
  assert.equal(hex(host.value('w', 'a')), '1e');
});

test('list, map and operator list state', () => {
  class Op {
    constructor(ctx) {
      this.list = ctx.listState('list', codec.str);
      this.map = ctx.mapState('map', codec.str, codec.u64);
      this.ops = ctx.operatorListState('ops', codec.u64);
    }

    process(e, ctx) {
      const v = e.valueStr();
      this.list.add(v);
      this.map.put(v, (this.map.get(v) ?? 0) + 1);
      this.ops.add(v.length);
      if (v === 'end') {
        ctx.emit(e.key, JSON.stringify([this.list.get(), this.map.entries(), this.map.has('b'), this.ops.get()]));
        this.map.remove('b');
        this.list.set(['only']);
        this.ops.update([1, 2]);
        ctx.emit(e.key, JSON.stringify([this.list.get(), this.map.keys(), this.ops.get()]));
        this.list.clear();
        this.map.clear();
        ctx.emit(e.key, JSON.stringify([this.list.get(), this.map.entries()]));
      }
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  host.process(h, ['b', 'a', 'b', 'end'].map((value) => ({ key: 'k', value })));
  assert.deepEqual(host.outputText(), [
    'k\t[["b","a","b","end"],[["a",1],["b",2],["end",1]],true,[1,1,1,3]]',
    'k\t[["only"],["a","end"],[1,2]]',
    'k\t[[],[]]',
  ]);
});

test('reducing state folds with the reduce function', () => {
  class Op {
    constructor(ctx) {
      this.max = ctx.reducingState('max', codec.i64, (a, b) => Math.max(a, b));
      this.sum = ctx.reducingState('sum', codec.f64, (a, b) => a + b, { prefetch: false });
    }

    process(e, ctx) {
      if (e.valueStr() === 'clear') {
        this.max.clear();
        ctx.emit(e.key, String(this.max.get()));
        return;
      }
      const v = Number(e.valueStr());
      assert.equal(this.max.get() === undefined, this.sum.get() === undefined);
      this.max.add(v);
      this.sum.add(v);
      ctx.emit(e.key, `${this.max.get()} ${this.sum.get()}`);
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  host.process(h, ['3', '-7', '10', '2'].map((value) => ({ key: 'k', value })));
  host.process(h, [{ key: 'k', value: '4' }, { key: 'j', value: '-1' }, { key: 'k', value: 'clear' }]);
  assert.deepEqual(host.outputText(), ['k\t3 3', 'k\t3 -4', 'k\t10 6', 'k\t10 8', 'k\t10 12', 'j\t-1 -1', 'k\tundefined']);
  assert.equal(hex(host.value('max', 'j')), '01');
});

test('aggregating state: accumulator stored with its codec, result from getResult', () => {
  const average = {
    createAccumulator: () => ({ sum: 0, count: 0 }),
    add: (v, acc) => {
      acc.sum += v;
      acc.count += 1;
    },
    getResult: (acc) => acc.sum / acc.count,
  };
  class Op {
    constructor(ctx) {
      this.avg = ctx.aggregatingState('avg', codec.struct({ sum: codec.i64, count: codec.u64 }), average);
      this.total = ctx.aggregatingState('total', codec.u64, {
        createAccumulator: () => 0,
        add: (v, acc) => acc + v,
        getResult: (acc) => `total ${acc}`,
      });
    }

    process(e, ctx) {
      assert.equal(this.avg.get() === undefined, this.avg.accumulator() === undefined);
      this.avg.add(Number(e.valueStr()));
      this.total.add(Number(e.valueStr()));
      ctx.emit(e.key, `${this.avg.get()} ${this.total.get()}`);
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  host.process(h, ['2', '4'].map((value) => ({ key: 'k', value })));
  host.process(h, [{ key: 'k', value: '9' }]);
  assert.deepEqual(host.outputText(), ['k\t2 total 2', 'k\t3 total 6', 'k\t5 total 15']);
  // The accumulator as a Rust `struct { sum: i64, count: u64 }` would be written.
  assert.equal(hex(host.value('avg', 'k')), '1e03');
  assert.equal(hex(host.value('total', 'k')), '0f');
});

test('TTL for every kind: declare-with-ttl with the milliseconds', () => {
  class Op {
    constructor(ctx) {
      const ttl = ctx.withTtl(1500);
      ttl.valueState('v', codec.u64);
      ttl.listState('l', codec.u64);
      ttl.mapState('m', codec.str, codec.u64);
      ttl.reducingState('r', codec.u64, (a, b) => a + b);
      ttl.aggregatingState('a', codec.u64, { createAccumulator: () => 0, add: (v, a) => a + v, getResult: (a) => a });
      ctx.valueState('o', codec.u64, { ttlMs: 0 });
      ctx.valueState('plain', codec.u64);
    }

    process() {}
  }
  host.open(exportOperator(Op));
  assert.deepEqual(host.states.map((s) => [s.name, s.kind, s.ttl]), [
    ['v', 'value', 1500n],
    ['l', 'list', 1500n],
    ['m', 'map', 1500n],
    ['r', 'value', 1500n],
    ['a', 'value', 1500n],
    ['o', 'value', 1n],
    ['plain', 'value', undefined],
  ]);
});

test('timers, watermark, processing time; on-timer sees the key state through the host', () => {
  class Op {
    constructor(ctx) {
      this.count = ctx.valueState('count', codec.u64);
    }

    process(e, ctx) {
      this.count.update((n) => (n ?? 0) + 1);
      ctx.registerEventTimer(e.timestamp + 100);
      ctx.registerProcessingTimer(ctx.processingTime() + 5);
      ctx.registerTimerIn(TimeDomain.EventTime, 'win', 7);
      ctx.deleteProcessingTimer(ctx.processingTime() + 5);
      assert.equal(ctx.watermark(), MIN_WATERMARK);
    }

    onTimer(t, ctx) {
      ctx.emit(t.key, `${t.domain} ${t.time} ${new TextDecoder().decode(t.namespace)} ${this.count.get()}`, t.time);
      this.count.set(100);
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  host.process(h, [{ key: 'a', value: '', timestamp: 1 }, { key: 'a', value: '', timestamp: 2 }]);
  assert.deepEqual([...host.timers.values()].map((t) => [t.domain, Number(t.time), new TextDecoder().decode(t.namespace)]), [
    ['event-time', 101, ''],
    ['event-time', 7, 'win'],
    ['event-time', 102, ''],
  ]);
  host.watermark = 200n;
  host.fire(h, { key: Uint8Array.of(0x61), time: 101, domain: 'event-time' });
  assert.deepEqual(host.outputText(), ['a\tevent-time 101  2']);
  assert.equal(host.output[0].timestamp, 101);
  assert.equal(hex(host.value('count', 'a')), '64', 'written through value-set in on-timer');
  assert.equal(host.calls.valueSet, 1);
});

test('emitSide flushes main output first; output past 256 KiB is flushed early', () => {
  class Op {
    process(e, ctx) {
      if (e.valueStr() === 'late') {
        ctx.emitSide('late', e.key, e.value, e.timestamp);
      } else {
        ctx.emit(e.key, 'x'.repeat(100 * 1024));
      }
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  host.process(h, [{ key: 'k', value: 'a' }, { key: 'k', value: 'late', timestamp: 5 }], { keyed: false });
  assert.equal(host.emitBatchCalls, 1, 'flushed before the side output');
  assert.equal(host.side.length, 1);
  assert.equal(host.side[0].tag, 'late');
  assert.equal(host.side[0].elements[0].timestamp, 5);
  host.emitBatchCalls = 0;
  host.process(h, Array.from({ length: 5 }, () => ({ key: 'k', value: 'a' })), { keyed: false });
  assert.equal(host.emitBatchCalls, 2, '3 x 100 KiB pass 256 KiB, then the rest at the end');
  assert.equal(host.output.length, 6);
});

test('open: static open, returned error string, thrown error, missing config', () => {
  class Static {
    static open(ctx) {
      if (ctx.get('fail') === 'string') return 'refused: bad `fail`';
      if (ctx.get('fail') === 'throw') throw new Error('thrown in open');
      const s = new Static();
      s.threshold = ctx.parseInt('threshold') ?? 1;
      s.name = ctx.require('name');
      return s;
    }

    process() {}
  }
  assert.deepEqual(host.open(exportOperator(Static), [['fail', 'string']]), { tag: 'err', val: 'refused: bad `fail`' });
  assert.deepEqual(host.open(exportOperator(Static), [['fail', 'throw']]), { tag: 'err', val: 'thrown in open' });
  assert.deepEqual(host.open(exportOperator(Static), []), { tag: 'err', val: 'missing config key `name`' });
  assert.deepEqual(host.open(exportOperator(Static), [['name', 'n'], ['threshold', 'x1']]), {
    tag: 'err',
    val: 'config key `threshold`: cannot parse "x1": invalid digit found in string',
  });
  assert.deepEqual(host.open(exportOperator(Static), [['name', 'n'], ['threshold', '12']]), { tag: 'ok', val: undefined });

  class Instance {
    open(ctx) {
      if (ctx.parseBool('ok') !== true) return 'not ok';
      this.opened = true;
      return undefined;
    }

    process(e, ctx) {
      ctx.emit(null, String(this.opened));
    }
  }
  assert.deepEqual(host.open(exportOperator(Instance), [['ok', 'false']]), { tag: 'err', val: 'not ok' });
  const h = exportOperator(Instance);
  assert.deepEqual(host.open(h, [['ok', 'true']]), { tag: 'ok', val: undefined });
  host.process(h, [{ key: null, value: '' }], { keyed: false });
  assert.deepEqual(host.outputText(), ['\ttrue']);
});

test('a process before a successful open, and an error in process, fail the call with a panic log', () => {
  const h = exportOperator(Count);
  assert.throws(() => host.process(h, [{ key: 'k', value: '' }]), /before a successful open/);
  class Boom {
    process() {
      throw new RangeError('boom');
    }
  }
  const b = exportOperator(Boom);
  host.open(b);
  assert.throws(() => host.process(b, [{ key: 'k', value: '' }]), /boom/);
  assert.match(host.logs.at(-1)[1], /^panic: RangeError: boom/);
  assert.throws(() => host.process(b, [{ key: 'k', value: '' }], { second: true }), /one input/);
});

test('two-input operators: both inputs share the key state', () => {
  class Join {
    constructor(ctx) {
      this.side = ctx.valueState('side', codec.str);
    }

    processFirst(e, ctx) {
      ctx.emit(e.key, `${e.valueStr()}+${this.side.get() ?? '?'}`);
    }

    processSecond(e) {
      this.side.set(e.valueStr());
    }
  }
  const h = exportTwoInputOperator(Join);
  host.open(h);
  host.process(h, [{ key: 'k', value: 'a' }]);
  host.process(h, [{ key: 'k', value: 'S' }], { second: true });
  host.process(h, [{ key: 'k', value: 'b' }, { key: 'j', value: 'c' }]);
  assert.deepEqual(host.outputText(), ['k\ta+?', 'k\tb+S', 'j\tc+?']);
  const auto = exportOperator(Join);
  assert.equal(typeof auto.processSecond, 'function', 'exportOperator detects processFirst');
});

test('metrics, log and close', () => {
  class Op {
    constructor(ctx) {
      this.seen = ctx.counter('seen');
      this.last = ctx.gauge('last');
    }

    process(e, ctx) {
      this.seen.add();
      this.seen.add(2);
      this.last.set(Number(e.valueStr()));
      ctx.log('info', `got ${e.valueStr()}`);
    }

    close(ctx) {
      ctx.emit(null, 'closed');
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  host.process(h, [{ key: 'k', value: '2.5' }]);
  host.close(h);
  assert.deepEqual(host.counters, [{ name: 'seen', value: 3n }]);
  assert.deepEqual(host.gauges, [{ name: 'last', value: 2.5 }]);
  assert.deepEqual(host.logs, [['info', 'got 2.5']]);
  assert.deepEqual(host.outputText(), ['\tclosed']);
});

test('emit: every shape of key, value and timestamp, fast and general paths', () => {
  class Op {
    process(e, ctx) {
      ctx.emit(e.key, 'ascii', 1700000000123);
      ctx.emit(e.key, 'é ✓ 😀', -1);
      ctx.emit(null, Uint8Array.of(0, 255), null);
      ctx.emit('text key', 'x'.repeat(300), Number.MIN_SAFE_INTEGER);
      ctx.emit(e.key, 'big', 2n ** 62n);
      ctx.emit(e.key, 'min', -(2n ** 63n));
      ctx.emit(undefined, new Uint16Array([1]), undefined);
      assert.throws(() => ctx.emit(e.key, null, 1), TypeError);
      assert.throws(() => ctx.emit(e.key, 'v', 0.5), TypeError);
      assert.throws(() => ctx.emit(5, 'v', 1), TypeError);
    }
  }
  const h = exportOperator(Op);
  host.open(h);
  host.process(h, [{ key: 'k', value: '' }]);
  const d = new TextDecoder();
  assert.deepEqual(
    host.output.map((e) => [e.key === null ? null : d.decode(e.key), hex(e.value), e.timestamp]),
    [
      ['k', hex(Buffer.from('ascii')), 1700000000123],
      ['k', hex(Buffer.from('é ✓ 😀')), -1],
      [null, '00ff', null],
      ['text key', hex(Buffer.from('x'.repeat(300))), Number.MIN_SAFE_INTEGER],
      ['k', hex(Buffer.from('big')), 2n ** 62n],
      ['k', hex(Buffer.from('min')), -(2n ** 63n)],
      [null, '0100', null],
    ],
  );
});
