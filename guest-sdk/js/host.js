// The WIT imports the SDK calls, gathered in one object so that the SDK
// can run against a fake host in tests (`installHost`). In a component,
// `index.js` installs the real imports of the `weir:operator/operator`
// world when the module is first evaluated (at build time: componentize-js
// pre-initializes the module).

/** The imports: `{ state, operatorState, timers, output, log, metrics }`. */
export const host = {
  state: null,
  operatorState: null,
  timers: null,
  output: null,
  log: null,
  metrics: null,
};

/** Replaces the imports the SDK calls (the real ones, or a test's fakes). */
export function installHost(imports) {
  for (const name of Object.keys(host)) {
    if (!imports[name]) throw new TypeError(`weir-sdk: installHost needs the \`${name}\` interface`);
    host[name] = imports[name];
  }
}
