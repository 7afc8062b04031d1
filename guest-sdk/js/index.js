// weir-sdk: write Weir stream operators in JavaScript (see README.md).
//
//   import { codec, exportOperator } from 'weir-sdk';
//
//   class Count {
//     constructor(ctx) { this.count = ctx.valueState('count', codec.u64); }
//     process(e, ctx) {
//       const n = this.count.update((n) => (n ?? 0) + 1);
//       ctx.emit(e.key, String(n), e.timestamp);
//     }
//   }
//   export const handler = exportOperator(Count);
//
// This module imports the `weir:operator/operator@0.2.0` world's
// interfaces, which exist only inside a component built by componentize-js
// (scripts/componentize-js); tests import `sdk.js` and install a fake host.

import * as log from 'weir:operator/log@0.2.0';
import * as metrics from 'weir:operator/metrics@0.2.0';
import * as operatorState from 'weir:operator/operator-state@0.2.0';
import * as output from 'weir:operator/output@0.2.0';
import * as state from 'weir:operator/state@0.2.0';
import * as timers from 'weir:operator/timers@0.2.0';
import { installHost } from './host.js';

installHost({ state, operatorState, timers, output, log, metrics });

// The sandbox gives an operator no network: the engine's own fetch would
// trap without a word, so it is replaced by one that throws an error the
// operator can catch (and that names the cause when it does not).
globalThis.fetch = function fetch() {
  throw new TypeError('weir-sdk: fetch is not available: an operator has no network');
};

export * from './sdk.js';
