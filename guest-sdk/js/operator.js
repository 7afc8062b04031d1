// Turns an operator class into the `handler` export of the
// `weir:operator/operator` world, as the Rust SDK's `export_operator!`.
//
//   export const handler = exportOperator(Count);
//
// componentize-js binds the world's exported `handler` interface to the
// module's export named `handler`.

import { Context, OpenContext } from './context.js';
import { logError, logPanic, messageOf, runBatch, runInHost, setContext, setInstance } from './runtime.js';

// Builds the operator: `Class.open(ctx)` if the class has a static open
// (it returns the instance), else `new Class(ctx)` and then the instance's
// `open(ctx)` if it has one. A thrown error or a returned string fails
// open with that message.
function build(Class, ctx) {
  if (typeof Class?.open === 'function') {
    const op = Class.open(ctx);
    if (typeof op === 'string') throw new OpenFailure(op);
    if (op === null || typeof op !== 'object') {
      throw new OpenFailure('weir-sdk: a static `open(ctx)` must return the operator instance (or an error string)');
    }
    return op;
  }
  if (typeof Class !== 'function') {
    throw new OpenFailure('weir-sdk: exportOperator takes a class (with a static or an instance `open`)');
  }
  const op = new Class(ctx);
  if (typeof op.open === 'function') {
    const r = op.open(ctx);
    if (typeof r === 'string') throw new OpenFailure(r);
  }
  return op;
}

class OpenFailure extends Error {}

function timerOf(t) {
  const time = t.time;
  return {
    key: t.key === undefined ? null : t.key,
    namespace: t.namespace,
    time:
      typeof time === 'bigint' && time >= -9007199254740991n && time <= 9007199254740991n ? Number(time) : time,
    domain: t.domain,
  };
}

function makeHandler(Class, first, second) {
  const ctx = new Context();
  return {
    open(config) {
      setContext(ctx);
      try {
        setInstance(build(Class, new OpenContext(config)));
      } catch (e) {
        // A bug rather than a refusal: log where it happened too.
        if (e instanceof TypeError || e instanceof ReferenceError || e instanceof RangeError) logError(e);
        return { tag: 'err', val: messageOf(e) };
      }
      return { tag: 'ok', val: undefined };
    },
    process(batch) {
      return runBatch(batch, first);
    },
    processSecond(batch) {
      if (second === null) {
        const e = new Error('weir-sdk: this operator has one input; an edge names `input: 2`');
        logPanic(e);
        throw e;
      }
      return runBatch(batch, second);
    },
    onTimer(timer) {
      runInHost((op, c) => {
        if (typeof op.onTimer === 'function') op.onTimer(timerOf(timer), c);
      });
    },
    close() {
      runInHost((op, c) => {
        if (typeof op.close === 'function') op.close(c);
      });
    },
  };
}

/**
 * The `handler` export for a one-input operator class: `process(element,
 * ctx)`, optional `onTimer(timer, ctx)` and `close(ctx)`. A class with
 * `processFirst` and no `process` is exported as a two-input operator.
 */
export function exportOperator(Class) {
  const proto = Class?.prototype;
  if (proto && typeof proto.process !== 'function' && typeof proto.processFirst === 'function') {
    return exportTwoInputOperator(Class);
  }
  return makeHandler(Class, 0, null);
}

/**
 * The `handler` export for a two-input operator class (a keyed join, an
 * enrichment: edges into it name `input: 1` or `input: 2`):
 * `processFirst(element, ctx)` and `processSecond(element, ctx)` share the
 * key's state and timers.
 */
export function exportTwoInputOperator(Class) {
  return makeHandler(Class, 1, 2);
}
