// Builds the dashboard: bundles src/main.js (and the CSS it imports) with
// esbuild into <out>/assets/main-<hash>.js and .css, and writes
// <out>/index.html from index.html, pointing at them.
//
// <out> is $WEIR_WEB_OUT (host/build.rs sets it to the folder the binary
// embeds) or web/dist.

import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.env.WEIR_WEB_OUT || path.join(here, 'dist'));
const assets = path.join(out, 'assets');

await rm(assets, { recursive: true, force: true });
await rm(path.join(out, 'index.html'), { force: true });
await mkdir(assets, { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { main: 'src/main.js' },
  bundle: true,
  format: 'esm',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  outdir: assets,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
});

// The outputs of the entry point: its script and its style sheet.
const entry = Object.entries(result.metafile.outputs)
  .find(([, o]) => o.entryPoint === 'src/main.js');
if (!entry) throw new Error('esbuild produced no output for src/main.js');
const [jsFile, jsMeta] = entry;
const cssFile = jsMeta.cssBundle;
if (!cssFile) throw new Error('esbuild produced no style sheet');

const url = (file) => `/assets/${path.basename(file)}`;
const template = await readFile(path.join(here, 'index.html'), 'utf8');
const html = template.replace('{{js}}', url(jsFile)).replace('{{css}}', url(cssFile));
await writeFile(path.join(out, 'index.html'), html);

const size = (file) => `${(result.metafile.outputs[file].bytes / 1024).toFixed(1)} KiB`;
console.log(`built ${path.relative(process.cwd(), out) || '.'}: ${url(jsFile)} (${size(jsFile)}), ${url(cssFile)} (${size(cssFile)})`);
