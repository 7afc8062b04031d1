// Everything of the SDK but the WIT imports: what `index.js` re-exports,
// and what tests import after installing a fake host.

export * as codec from './codec.js';
export { CodecError } from './codec.js';
export { Context, Counter, Gauge, Level, MIN_WATERMARK, OpenContext, TimeDomain, TtlStates, log } from './context.js';
export { installHost } from './host.js';
export { exportOperator, exportTwoInputOperator } from './operator.js';
export { OUTPUT_FLUSH_BYTES } from './runtime.js';
export {
  AggregatingState,
  ListState,
  MapState,
  OperatorListState,
  ReducingState,
  ValueState,
} from './state.js';
export { Element } from './wire.js';
