// A JavaScript operator that misbehaves on purpose, chosen by config
// `mode`: `loop` (never returns), `bomb` (allocates until memory runs out),
// `throw` (an uncaught error), `wait` (waits a minute for the clock, which
// a JavaScript operator can only do by spinning), `fetch` (calls fetch,
// which the sandbox does not provide: it throws), `fetch-caught` (the same,
// caught: it forwards the error's message as the value). Otherwise it
// forwards each element.

import { exportOperator } from 'weir-sdk';

class Hostile {
  static open(ctx) {
    return new Hostile(ctx.get('mode') ?? 'ok');
  }

  constructor(mode) {
    this.mode = mode;
  }

  process(element, ctx) {
    if (this.mode === 'loop') {
      let n = 0;
      for (;;) n++;
    } else if (this.mode === 'bomb') {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
    } else if (this.mode === 'throw') {
      throw new Error('hostile javascript: no such key');
    } else if (this.mode === 'wait') {
      const until = Date.now() + 60000;
      while (Date.now() < until) {
        // spin
      }
    } else if (this.mode === 'fetch') {
      fetch('http://127.0.0.1:9/');
    } else if (this.mode === 'fetch-caught') {
      try {
        fetch('http://127.0.0.1:9/');
      } catch (e) {
        ctx.emit(element.key, `error: ${e.message}`, element.timestamp);
        return;
      }
    }
    ctx.emit(element.key, element.value, element.timestamp);
  }
}

export const handler = exportOperator(Hostile);
