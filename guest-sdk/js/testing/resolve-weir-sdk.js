// A module resolve hook for tests: `import ... from 'weir-sdk'` (as an
// operator written for componentize-js does) loads the SDK without its
// WIT imports (sdk.js); the test installs a fake host.

const SDK = new URL('../sdk.js', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === 'weir-sdk') return { url: SDK, shortCircuit: true };
  return next(specifier, context);
}
