// Browser tests of the dashboard against a real `weir serve`.
//
//   WEIR_BIN=/path/to/weir WEIR_COUNT_WASM=/path/to/count.wasm \
//   WEIR_HOSTILE_WASM=/path/to/hostile.wasm npm test
//
// WEIR_BIN           the weir binary (required)
// WEIR_COUNT_WASM    the keyed count operator component (required)
// WEIR_HOSTILE_WASM  the hostile test guest, which traps on a chosen record
//                    (required)
// WEIR_WEB_DIR       serve the dashboard from this folder (e.g. dist, after
//                    `npm run build`) instead of the copy built into the binary
// CHROMIUM           the browser (default /usr/bin/chromium)
//
// Each test prints one line and saves a screenshot to
// test-results/<name>.png; the run exits non-zero if any test fails. A test
// fails on any console error or uncaught exception in the page, except
// Chromium's own "Failed to load resource" lines for API answers the test
// provokes on purpose (a refused upload or spec, a wrong token, a killed
// server): the browser logs those itself, whatever the page does with them.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(here, '..', 'test-results');
const TOKEN = 'weir-web-test-token-0123456789';
const STEP_TIMEOUT = 20000;
const TEST_TIMEOUT = 60000;

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set (see the head of tests/run.mjs)`);
    process.exit(2);
  }
  return v;
}

const weirBin = need('WEIR_BIN');
const countWasm = need('WEIR_COUNT_WASM');
const hostileWasm = need('WEIR_HOSTILE_WASM');
const webDir = process.env.WEIR_WEB_DIR ? path.resolve(process.env.WEIR_WEB_DIR) : null;
if (webDir && !fs.existsSync(path.join(webDir, 'index.html'))) {
  console.error(`${webDir}/index.html is missing: run \`npm run build\` first`);
  process.exit(2);
}

// ---- The server ----

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'weir-web-test-'));
const configFile = path.join(tmp, 'weir.yaml');
fs.writeFileSync(configFile, [
  'rest.port: 0',
  `weir.server.token: ${TOKEN}`,
  `weir.server.data-dir: ${JSON.stringify(path.join(tmp, 'data'))}`,
  `weir.sandbox.cache-dir: ${JSON.stringify(path.join(tmp, 'cache'))}`,
  '',
].join('\n'));

const serverLog = [];
let server = null;

async function startServer() {
  const env = { ...process.env };
  if (webDir) env.WEIR_WEB_DIR = webDir;
  else delete env.WEIR_WEB_DIR;
  server = spawn(weirBin, ['serve', '--config', configFile], { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (line) => {
    serverLog.push(line);
    if (serverLog.length > 200) serverLog.shift();
  };
  readline.createInterface({ input: server.stdout }).on('line', keep);
  const lines = readline.createInterface({ input: server.stderr });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('weir serve printed no address within 30 s')), 30000);
    server.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`weir serve exited (${code ?? signal}) before serving:\n${serverLog.join('\n')}`));
    });
    lines.on('line', (line) => {
      keep(line);
      // eslint-disable-next-line no-control-regex
      const m = line.replace(/\x1b\[[0-9;]*m/g, '').match(/serving the REST API on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
}

async function killServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = once(server, 'exit');
  server.kill('SIGKILL');
  await exited;
}

// ---- Helpers ----

async function until(what, fn, timeout = STEP_TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}${last ? ` (${last.message.split('\n')[0]})` : ''}`);
    }
    await new Promise((r) => { setTimeout(r, 150); });
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function apiCall(base, method, p, body, headers = {}) {
  const res = await fetch(`${base}/api/v1${p}`, {
    method, body, headers: { Authorization: `Bearer ${TOKEN}`, ...headers },
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

// Console errors and page errors of a page; `allow` lists the patterns of
// Chromium's "Failed to load resource" lines the current test expects.
function watch(page, state) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    const url = (m.location() && m.location().url) || '';
    if (text.startsWith('Failed to load resource') && url.includes('/api/v1/')
      && state.allow.some((re) => re.test(text))) {
      return;
    }
    state.errors.push(`console error: ${text}${url ? ` (${url})` : ''}`);
  });
  page.on('pageerror', (e) => state.errors.push(`page error: ${e.message}`));
}

// ---- The tests ----

const job = (wasm) => JSON.stringify({
  name: 'keyed-count',
  config: { 'execution.checkpointing.interval': '200ms' },
  sources: [{ id: 'gen', type: 'datagen', count: 100000000, keys: 50, rate: 2000 }],
  operators: [{ id: 'count', uid: 'count', wasm }],
  sinks: [{ id: 'out', type: 'discard' }],
  edges: [{ from: 'gen', to: 'count', partition: 'hash' }, { from: 'count', to: 'out' }],
}, null, 2);

// A job that ends on its own (6000 records at 1000 a second) and writes its
// counts to files, keeping its checkpoints when cancelled.
const recoverJob = {
  name: 'recoverable-count',
  config: {
    'execution.checkpointing.interval': '200ms',
    'execution.checkpointing.externalized-checkpoint-retention': 'RETAIN_ON_CANCELLATION',
  },
  sources: [{ id: 'gen', type: 'datagen', count: 6000, keys: 20, rate: 1000 }],
  operators: [{ id: 'count', uid: 'count', wasm: 'count' }],
  sinks: [{ id: 'out', type: 'file', path: 'out' }],
  edges: [{ from: 'gen', to: 'count', partition: 'hash' }, { from: 'count', to: 'out' }],
};

// A job whose operator traps for good on datagen's record 3000, which the
// dead-letter quarantine takes out: the job finishes without it.
const poisonedJob = {
  name: 'poisoned',
  config: { 'execution.checkpointing.interval': '100ms', 'weir.dead-letter.enabled': true },
  sources: [{ id: 'gen', type: 'datagen', count: 10000, keys: 10, rate: 20000 }],
  operators: [{
    id: 'bad', uid: 'bad', wasm: 'hostile',
    config: { mode: 'trap-at', value: '3000', 'before-ms': '9223372036854775807' },
  }],
  sinks: [{ id: 'out', type: 'file', path: 'poisoned-out' }],
  edges: [{ from: 'gen', to: 'bad' }, { from: 'bad', to: 'out' }],
};

const ctx = {};

const tests = [
  ['1-token-and-upload', [/status of 400/], async ({ page, base }) => {
    await page.goto(`${base}/#token=${TOKEN}`);
    await page.getByTestId('overview').waitFor();
    assert(!page.url().includes('token'), `the token stays in the address: ${page.url()}`);
    const stored = await page.evaluate(() => sessionStorage.getItem('weir.token'));
    assert(stored === TOKEN, 'the token is not in sessionStorage');

    // The good bundle, with the file picker.
    await page.getByTestId('upload-input').setInputFiles({
      name: 'count.wasm', mimeType: 'application/wasm', buffer: fs.readFileSync(countWasm),
    });
    await until('the bundle `count` in the list', async () => (await page.getByTestId('bundle-row')
      .filter({ hasText: 'count' }).count()) === 1);
    assert(await page.getByTestId('upload-error').isHidden(), 'an upload error shows after a good upload');
    // It compiles in the background; the row says when it is ready, and
    // what the compile cost (or that it came from the cache).
    const compile = page.getByTestId('bundle-row').filter({ hasText: 'count' }).getByTestId('bundle-compile');
    await until('the bundle `count` compiled', async () => (await compile.getAttribute('data-state')) === 'ready');
    const compiled = await compile.textContent();
    assert(/^ready( · [0-9.]+ s, [0-9]+ MiB| \(cached\))$/.test(compiled), `the compile cell says ${compiled}`);

    // A bad one, dropped on the drop zone: the server's reason, verbatim.
    const bad = 'this is not a WebAssembly component';
    const expected = await apiCall(base, 'POST', '/bundles?name=bad.wasm', bad);
    assert(expected.status === 400, `the server took a bad bundle: ${expected.status}`);
    await page.getByTestId('upload-drop').evaluate((zone, content) => {
      const dt = new DataTransfer();
      dt.items.add(new File([content], 'bad.wasm', { type: 'application/wasm' }));
      zone.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, bad);
    const shown = await until('the upload error', async () => {
      const el = page.getByTestId('upload-error');
      return (await el.isVisible()) && (await el.textContent());
    });
    assert(shown === expected.json.errors.join('\n'), `upload-error shows ${JSON.stringify(shown)}, the server said ${JSON.stringify(expected.json.errors)}`);
    assert((await page.getByTestId('bundle-row').count()) === 1, 'the bad bundle is listed');
  }],

  ['2-submit', [/status of 400/], async ({ page, base }) => {
    await page.goto(`${base}/#/submit`);
    const editor = page.getByTestId('spec-editor');
    await editor.fill(job('no-such-bundle'));
    await page.getByTestId('submit-job').click();
    const error = page.getByTestId('spec-error').first();
    await error.waitFor();
    const field = await error.locator('code').textContent();
    assert(field === 'operators[0].wasm', `the error names ${JSON.stringify(field)}, not operators[0].wasm`);
    assert((await error.textContent()).includes('no-such-bundle'), 'the error does not name the bundle');

    await editor.fill(job('count.wasm'));
    await page.getByTestId('submit-job').click();
    await until('the job page', () => /#\/jobs\/[0-9a-f]+$/.test(page.url()));
    ctx.jobId = decodeURIComponent(page.url().split('#/jobs/')[1]);
    await until('RUNNING', async () => (await page.getByTestId('job-state').textContent()) === 'RUNNING');
    await until('3 graph nodes', async () => (await page.getByTestId('graph-node').count()) === 3);
    const nodes = await page.getByTestId('graph-node').allTextContents();
    for (const id of ['gen', 'count', 'out']) {
      assert(nodes.some((t) => t.includes(id) && t.includes('x1')), `no node ${id} x1 in ${JSON.stringify(nodes)}`);
    }
    assert((await page.getByTestId('graph-edge').count()) === 2, 'the graph does not have 2 edges');
    // count -> out is a forward edge into a sink: chained, and labelled so.
    const chainedEdge = page.locator('[data-testid="graph-edge"][data-from="count"][data-to="out"]');
    const chainedLabel = await chainedEdge.locator('.edge-label').textContent();
    assert(chainedLabel === 'forward · chained', `the count -> out edge's label is ${JSON.stringify(chainedLabel)}`);
    await until('busy figures in the node tooltips', async () => (await page.getByTestId('graph-node')
      .filter({ hasText: 'count' }).locator('title').textContent()).includes('busy: max'));
  }],

  ['3-checkpoints', [], async ({ page }) => {
    await page.getByTestId('tab-checkpoints').click();
    await until('the checkpoints tab', () => page.url().endsWith('/checkpoints'));
    const rows = page.getByTestId('checkpoint-row');
    await until('a checkpoint in the history', async () => (await rows.count()) > 0);
    const completed = await page.locator('[data-count="completed"] .value').textContent();
    assert(Number(completed.replace(/,/g, '')) > 0, `completed count is ${completed}`);
    const counts = await page.getByTestId('checkpoint-counts').locator('.stat').evaluateAll((els) => els.map((el) => [
      el.querySelector('.label').textContent, el.querySelector('.value').textContent]));
    const count = (label) => (counts.find(([l]) => l === label) || [])[1];
    assert(/^\d+$/.test(count('In progress') || ''), `the counts show no "In progress": ${JSON.stringify(counts)}`);
    const triggered = Number((count('Triggered') || '').replace(/,/g, ''));
    assert(triggered >= Number(completed.replace(/,/g, '')), `the counts: ${JSON.stringify(counts)}`);
    const row = rows.filter({ hasText: 'COMPLETED' }).first();
    const id = await row.getAttribute('data-id');
    await row.click();
    await until('subtask rows', async () => (await page.getByTestId('subtask-row').count()) >= 3);
    const subtasks = await page.locator(`tbody:has(> tr[data-id="${id}"]) [data-testid="subtask-row"]`).allTextContents();
    assert(subtasks.length === 3, `checkpoint ${id} shows ${subtasks.length} subtask rows, not 3`);
    assert(['gen', 'count', 'out'].every((v) => subtasks.some((t) => t.startsWith(v))), `subtask rows: ${subtasks}`);
    const delays = await page.locator(`tbody:has(> tr[data-id="${id}"]) [data-testid="subtask-row"]`)
      .evaluateAll((trs) => trs.map((tr) => {
        const cell = tr.querySelector('[data-testid="subtask-start-delay"]');
        return cell ? cell.textContent : null;
      }));
    assert(delays.every((t) => /^\d+(\.\d+)? (ms|s)$/.test(t || '')), `start delay cells: ${JSON.stringify(delays)}`);
    const acked = await row.locator('td').last().textContent();
    assert(acked === '3/3', `checkpoint ${id} shows ${acked} acknowledged, not 3/3`);
    // Unaligned-checkpoint figures: these jobs align, so nothing persisted.
    const headers = await page.locator('[data-testid="checkpoint-history"] > thead th').allTextContents();
    assert(['Processed in-flight', 'Persisted in-flight'].every((t) => headers.includes(t)),
      `the history headers: ${JSON.stringify(headers)}`);
    const persisted = await row.getByTestId('checkpoint-persisted').textContent();
    assert(persisted === '0 B', `checkpoint ${id} shows ${persisted} persisted in-flight, not 0 B`);
    const processed = await row.getByTestId('checkpoint-processed').textContent();
    assert(/^\d+(\.\d+)? (B|KiB|MiB)$/.test(processed), `checkpoint ${id} shows ${processed} processed in-flight`);
    assert(await row.getByTestId('unaligned-marker').count() === 0, `checkpoint ${id} is marked unaligned`);
    const detail = page.locator(`tbody:has(> tr[data-id="${id}"]) table.subtasks`);
    const subHeaders = await detail.locator('thead th').allTextContents();
    assert(['Processed in-flight', 'Persisted in-flight', 'Unaligned'].every((t) => subHeaders.includes(t)),
      `the subtask headers: ${JSON.stringify(subHeaders)}`);
    const cells = (testid) => detail.locator(`[data-testid="${testid}"]`).allTextContents();
    const unaligned = await cells('subtask-unaligned');
    assert(unaligned.length === 3 && unaligned.every((t) => t === 'no'), `unaligned cells: ${JSON.stringify(unaligned)}`);
    const subPersisted = await cells('subtask-persisted');
    assert(subPersisted.length === 3 && subPersisted.every((t) => t === '0 B'),
      `persisted cells: ${JSON.stringify(subPersisted)}`);
    assert(await page.locator('[data-testid="checkpoint-summary"] tr[data-row="Persisted in-flight data"]').count() === 1,
      'no persisted in-flight row in the summary');
    assert(await page.locator('[data-testid="checkpoint-summary"] tr[data-row^="Start delay"]').count() === 1,
      'no start delay row in the summary');
    const interval = await page.locator('[data-testid="checkpoint-config"] tr[data-key="Interval"] td').textContent();
    assert(interval === '200 ms', `the configuration shows interval ${interval}`);
    await until('the latest completed path', async () => (await page.getByTestId('latest-completed')
      .getByTestId('external-path').textContent()).includes('chk-'));

    // A checkpoint on request.
    await page.getByTestId('action-checkpoint').click();
    const result = page.getByTestId('action-result').first();
    await until('the requested checkpoint', async () => (await result.getAttribute('data-status')) === 'completed');
    assert(/Checkpoint\s*\d+ completed/.test(await result.textContent()), `checkpoint result: ${await result.textContent()}`);
  }],

  ['4-savepoints', [], async ({ page }) => {
    const newest = page.getByTestId('action-result').first();
    const finish = async (what) => {
      await until(`the ${what} to complete`, async () => (await newest.getAttribute('data-status')) !== 'in-progress', 30000);
      const status = await newest.getAttribute('data-status');
      assert(status === 'completed', `the ${what} failed: ${await newest.textContent()}`);
      return newest.getByTestId('savepoint-location').textContent();
    };
    await page.getByTestId('savepoint-target').fill('');
    await page.getByTestId('action-savepoint').click();
    const first = await finish('savepoint');
    assert(first.includes('savepoint'), `savepoint location ${first}`);

    await page.getByTestId('action-stop').click();
    const second = await finish('stop with savepoint');
    assert(second !== first, 'the stop reported the first savepoint');
    await until('FINISHED', async () => (await page.getByTestId('job-state').textContent()) === 'FINISHED');

    const listed = page.getByTestId('job-savepoint').getByTestId('savepoint-path');
    await until('both savepoints in the list', async () => {
      const paths = await listed.allTextContents();
      return paths.includes(first) && paths.includes(second);
    });
    // The overview's "latest savepoint" comes from its own poll, which may
    // come after the list's: wait for it, then say what it showed.
    const latestPath = page.getByTestId('latest-savepoint').getByTestId('external-path');
    let latest = '';
    try {
      await until('the stop\'s savepoint as the latest', async () => {
        latest = await latestPath.textContent();
        return path.basename(latest) === path.basename(second);
      });
    } catch (e) {
      assert(false, `latest savepoint ${latest}, not ${second}`);
    }
    await until('savepoint markers in the history', async () => (await page.getByTestId('savepoint-marker').count()) >= 2);
    ctx.savepoint = second;
  }],

  ['5-restore-and-cancel', [], async ({ page, base }) => {
    await page.goto(`${base}/#/submit`);
    await page.getByTestId('spec-editor').fill(job('count.wasm'));
    const select = page.getByTestId('restore-select');
    await until('the savepoints to restore from', async () => (await select.locator('option').count()) >= 3);
    await select.selectOption(ctx.savepoint);
    assert((await page.getByTestId('restore-path').inputValue()) === ctx.savepoint, 'the select does not fill the path');
    // Submitting a restore first shows the check's report and starts nothing.
    await page.getByTestId('submit-job').click();
    await page.getByTestId('dry-run').waitFor();
    assert(page.url().endsWith('#/submit'), 'a restore was submitted before its check was shown');
    await page.getByTestId('check-restore').click();
    await page.getByTestId('dry-run').waitFor();
    const verdict = await page.locator('[data-testid="verdict-row"]', { hasText: 'count' }).first().getAttribute('data-verdict');
    assert(verdict === 'matched', `the verdict of count is ${verdict}`);
    assert((await page.getByTestId('restorable').textContent()).includes('can restore'), 'the check does not say it can restore');

    await page.getByTestId('submit-job').click();
    await until('the restored job page', () => /#\/jobs\/[0-9a-f]+$/.test(page.url()) && !page.url().includes(ctx.jobId));
    await until('RUNNING', async () => (await page.getByTestId('job-state').textContent()) === 'RUNNING');
    await page.getByTestId('tab-checkpoints').click();
    await until('the restore in the latest', async () => (await page.getByTestId('latest-restored')
      .locator('td').first().textContent()) !== '—');

    await page.getByTestId('action-cancel').click();
    await page.getByTestId('confirm-dialog').waitFor();
    await page.getByTestId('confirm-yes').click();
    await until('CANCELED', async () => (await page.getByTestId('job-state').textContent()) === 'CANCELED');

    // The Exceptions tab: no restart, then two made up in the detail's
    // answer (a trap needs another guest): newest first, what each restarted
    // (a region's subtasks, or the whole job) and restored. The same answer
    // makes count -> out carry a side output, which its graph label names.
    await page.getByTestId('tab-exceptions').click();
    await page.getByTestId('restarts-empty').waitFor();
    const jobUrl = page.url();
    const jobId = decodeURIComponent(jobUrl.split('#/jobs/')[1].split('/')[0]);
    const chk = '/srv/weir/checkpoints/x/chk-7';
    const detailUrl = (u) => new URL(u).pathname === `/api/v1/jobs/${jobId}`;
    // The server's own answer: every edge carries the main output.
    const real = await apiCall(base, 'GET', `/jobs/${jobId}`);
    const edges = (real.json && real.json.plan && real.json.plan.edges) || [];
    assert(edges.length === 2 && edges.every((e) => e['side-output'] === null),
      `the edges' side-output is not null: ${JSON.stringify(edges)}`);
    const sidePartition = edges.find((e) => e.from === 'count' && e.to === 'out').partition;
    await page.route(detailUrl, async (route) => {
      const res = await route.fetch();
      const d = await res.json();
      d.restarts = 2;
      d['restart-history'] = [
        { timestamp: d['start-time'] + 1000, cause: 'first failure', restored: null, subtasks: null },
        {
          timestamp: d['start-time'] + 2000, cause: 'second failure\n  at somewhere',
          restored: { id: 7, external_path: chk, restore_timestamp: d['start-time'] + 2100, kind: 'checkpoint' },
          subtasks: ['gen[0]', 'count[0]', 'out[0]'],
        },
      ];
      for (const e of d.plan.edges) {
        // A side-output edge is never chained.
        if (e.from === 'count' && e.to === 'out') Object.assign(e, { 'side-output': 'late', chained: false });
      }
      await route.fulfill({ status: res.status(), contentType: 'application/json', body: JSON.stringify(d) });
    });
    try {
      await page.reload();
      const restarts = page.getByTestId('restart');
      await until('2 restarts', async () => (await restarts.count()) === 2);
      const newest = restarts.first();
      const restored = await newest.getByTestId('restart-restored').textContent();
      assert(restored === 'restored checkpoint 7', `the newest restart shows ${JSON.stringify(restored)}`);
      assert((await newest.getByTestId('restart-path').textContent()) === chk, 'the restored path is not shown');
      assert(await newest.locator('button.copy').count() === 1, 'no copy button beside the path');
      assert((await newest.getByTestId('restart-cause').textContent()) === 'second failure', 'the newest cause');
      const oldest = restarts.last();
      assert((await oldest.getByTestId('restart-restored').textContent()) === 'from the beginning', 'the oldest restart');
      const region = await newest.getByTestId('restart-scope').textContent();
      assert(region === 'region: gen[0], count[0], out[0]', `the newest restart's scope is ${JSON.stringify(region)}`);
      const whole = await oldest.getByTestId('restart-scope').textContent();
      assert(whole === 'whole job', `the oldest restart's scope is ${JSON.stringify(whole)}`);
      // The graph, drawn from the same answer on the (hidden) Overview tab.
      const side = page.locator('[data-testid="graph-edge"][data-from="count"][data-to="out"]');
      await until('the side output in the edge label', async () => (await side.getAttribute('data-side-output')) === 'late');
      const label = await side.locator('.edge-label').textContent();
      assert(label === `${sidePartition} · side output late`, `the side output edge's label is ${JSON.stringify(label)}`);
      assert((await side.getAttribute('class')).split(' ').includes('side-output'), 'the side output edge is not dashed');
      const main = page.locator('[data-testid="graph-edge"][data-from="gen"][data-to="count"]');
      assert((await main.locator('.edge-label').textContent()) === 'hash', 'the main output edge\'s label');
      assert((await main.getAttribute('data-side-output')) === null, 'the main output edge has a side output');
      assert(await page.getByTestId('restarts-empty').isHidden(), '"not restarted" shows beside restarts');
      assert(await page.getByTestId('exceptions').isVisible() || await page.getByTestId('panel-exceptions')
        .getByText('No exceptions.').isVisible(), 'the exceptions list is gone');
    } finally {
      await page.unrouteAll({ behavior: 'wait' });
    }
  }],

  // A cancelled job that retained its checkpoints, recovered from the newest
  // one on its Recover tab; the new job's file sink output is then checked
  // for exactly-once: every key counts 1..n once, the n summing to the input.
  ['6-recover-from-retained-checkpoint', [], async ({ page, base }) => {
    await page.goto(`${base}/#/`);
    await page.getByTestId('upload-input').setInputFiles({
      name: 'count.wasm', mimeType: 'application/wasm', buffer: fs.readFileSync(countWasm),
    });
    await until('the upload', async () => /Uploaded count/.test(await page.getByTestId('upload-status').textContent()));

    await page.goto(`${base}/#/submit`);
    await page.getByTestId('spec-editor').fill(JSON.stringify(recoverJob, null, 2));
    await page.getByTestId('submit-job').click();
    await until('the job page', () => /#\/jobs\/[0-9a-f]+$/.test(page.url()));
    const first = decodeURIComponent(page.url().split('#/jobs/')[1]);
    await until('2 completed checkpoints', async () => {
      const r = await apiCall(base, 'GET', `/jobs/${first}/checkpoints`);
      return r.status === 200 && r.json.counts.completed >= 2;
    });
    await until('RUNNING', async () => (await page.getByTestId('job-state').textContent()) === 'RUNNING');
    await page.getByTestId('action-cancel').click();
    await page.getByTestId('confirm-dialog').waitFor();
    await page.getByTestId('confirm-yes').click();
    await until('CANCELED', async () => (await page.getByTestId('job-state').textContent()) === 'CANCELED');

    const retained = await apiCall(base, 'GET', `/jobs/${first}/checkpoints/retained`);
    assert(retained.status === 200 && retained.json.checkpoints.length > 0,
      `no retained checkpoint: ${retained.status} ${JSON.stringify(retained.json)}`);
    const chosen = retained.json.checkpoints[0].path; // newest first

    await page.getByTestId('tab-recover').click();
    await until('the recover tab', () => page.url().endsWith('/recover'));
    const row = page.locator(`[data-testid="recover-snapshot"][data-type="checkpoint"][data-path="${chosen}"]`);
    await row.waitFor();
    await row.getByTestId('snapshot-choice').check();
    const bundle = page.locator('[data-testid="recover-bundle"][data-operator="count"]');
    await until('the job\'s bundle for count', async () => (await bundle.inputValue()).startsWith('sha256:'));
    assert(await page.getByTestId('recover-resume').isDisabled(), 'Resume is enabled before a check');

    await page.getByTestId('recover-check').click();
    await page.getByTestId('recover-dry-run').waitFor();
    const verdicts = await page.getByTestId('recover-dry-run').getByTestId('verdict-row')
      .evaluateAll((rows) => rows.map((r) => [r.dataset.uid, r.dataset.verdict]));
    assert(verdicts.some(([uid, v]) => uid === 'count' && v === 'matched'), `verdicts: ${JSON.stringify(verdicts)}`);
    assert((await page.getByTestId('recover-dry-run').getByTestId('restorable').textContent()).includes('can restore'),
      'the check does not say it can restore');

    await until('Resume enabled', () => page.getByTestId('recover-resume').isEnabled());
    await page.screenshot({ path: path.join(resultsDir, '6-recover-check.png'), fullPage: true });
    await page.getByTestId('recover-resume').click();
    await until('the new job\'s page', () => /#\/jobs\/[0-9a-f]+\/checkpoints$/.test(page.url()) && !page.url().includes(first));
    const second = decodeURIComponent(page.url().split('#/jobs/')[1].split('/')[0]);
    await until('the restore in the latest', async () => (await page.getByTestId('latest-restored')
      .getByTestId('external-path').textContent()) === chosen);
    const stats = await apiCall(base, 'GET', `/jobs/${second}/checkpoints`);
    const restored = stats.json && stats.json.latest && stats.json.latest.restored;
    assert(restored && restored.external_path === chosen,
      `latest.restored of the new job is ${JSON.stringify(restored)}, not ${chosen}`);

    await until('FINISHED', async () => {
      const r = await apiCall(base, 'GET', `/jobs/${second}`);
      if (r.json && ['FAILED', 'CANCELED'].includes(r.json.state)) throw new Error(`the new job ended ${r.json.state}`);
      return r.json && r.json.state === 'FINISHED';
    }, 30000);
    await until('FINISHED on the page', async () => (await page.getByTestId('job-state').textContent()) === 'FINISHED');

    // Exactly once: the committed part files (not the hidden ones).
    const outDir = path.join(tmp, 'data', 'files', 'out');
    const parts = fs.readdirSync(outDir).filter((f) => f.startsWith('part-'));
    assert(parts.length > 0, `no committed part file in ${outDir}: ${fs.readdirSync(outDir)}`);
    const seen = new Set();
    const counts = new Map();
    for (const f of parts) {
      const content = fs.readFileSync(path.join(outDir, f), 'utf8');
      for (const line of content.split('\n')) {
        if (line === '') continue;
        const m = line.match(/^([^\t]+)\t(\d+)$/);
        assert(m, `${f}: the line ${JSON.stringify(line)} is not key<TAB>count`);
        assert(!seen.has(line), `${f}: the line ${JSON.stringify(line)} appears twice`);
        seen.add(line);
        if (!counts.has(m[1])) counts.set(m[1], []);
        counts.get(m[1]).push(Number(m[2]));
      }
    }
    let total = 0;
    for (const [key, ns] of counts) {
      ns.sort((a, b) => a - b);
      assert(ns.every((n, i) => n === i + 1), `${key} counts ${ns.length} times but not 1..${ns.length}`);
      total += ns.length;
    }
    assert(counts.size === recoverJob.sources[0].keys, `${counts.size} keys, not ${recoverJob.sources[0].keys}`);
    assert(total === recoverJob.sources[0].count, `${total} lines in all, not ${recoverJob.sources[0].count}`);
    ctx.recovered = [first, second];
  }],

  // The poisoned job's Dead letters tab lists the record the quarantine took,
  // and the badge on its Exceptions tab links there; a job without the
  // quarantine says it is off.
  ['7-dead-letters', [], async ({ page, base }) => {
    const up = await apiCall(base, 'POST', '/bundles?name=hostile', fs.readFileSync(hostileWasm));
    assert(up.status === 201, `the hostile upload: ${up.status} ${JSON.stringify(up.json)}`);
    const sub = await apiCall(base, 'POST', '/jobs', JSON.stringify({ job: poisonedJob }),
      { 'Content-Type': 'application/json' });
    assert(sub.status === 202, `the poisoned job: ${sub.status} ${JSON.stringify(sub.json)}`);
    const id = sub.json.jobid;
    await until('FINISHED', async () => {
      const r = await apiCall(base, 'GET', `/jobs/${id}`);
      if (r.json && ['FAILED', 'CANCELED'].includes(r.json.state)) throw new Error(`the job ended ${r.json.state}`);
      return r.json && r.json.state === 'FINISHED';
    }, 40000);

    await page.goto(`${base}/#/jobs/${id}`);
    await page.getByTestId('tab-dead-letters').click();
    await until('the dead-letters tab', () => page.url().endsWith('/dead-letters'));
    const rows = page.getByTestId('dead-letter');
    await until('a quarantined record', async () => (await rows.count()) > 0);
    assert((await rows.count()) === 1, `${await rows.count()} records listed, not 1`);
    const operator = await rows.getByTestId('dead-letter-operator').textContent();
    assert((await rows.getAttribute('data-operator')) === 'bad' && operator === 'bad[1]',
      `the record's operator is ${JSON.stringify(operator)}`);
    const value = await rows.getByTestId('dead-letter-value').textContent();
    assert(value === '3000', `the record's value is ${JSON.stringify(value)}`);
    const message = await rows.getByTestId('dead-letter-message').textContent();
    assert(message.includes('trap at value 3000'), `the trap message is ${JSON.stringify(message)}`);
    assert((await page.getByTestId('dead-letters-enabled').textContent()) === 'on', 'the quarantine is not shown on');
    assert((await page.getByTestId('dead-letters-total').textContent()) === '1', 'the total is not 1');
    const label = await page.getByTestId('tab-dead-letters').textContent();
    assert(label === 'Dead letters (1)', `the tab's label is ${JSON.stringify(label)}`);
    assert(await page.getByTestId('dead-letters-off').isHidden(), '"off" shows for an enabled quarantine');
    assert(await page.getByTestId('dead-letters-empty').isHidden(), '"No record quarantined" shows beside a record');
    await page.screenshot({ path: path.join(resultsDir, '7-dead-letters-poisoned.png'), fullPage: true });

    // The Exceptions tab's badge links to the Dead letters tab.
    await page.getByTestId('tab-exceptions').click();
    const badge = page.getByTestId('quarantined').first();
    await badge.waitFor();
    const href = await badge.getAttribute('href');
    assert(href === `#/jobs/${id}/dead-letters`, `the badge links to ${JSON.stringify(href)}`);
    await badge.click();
    await until('the dead-letters tab again', () => page.url().endsWith('/dead-letters'));
    await page.getByTestId('dead-letters-table').waitFor();

    // A count job: no quarantine.
    assert(ctx.jobId, 'no count job from 2-submit');
    await page.goto(`${base}/#/jobs/${ctx.jobId}/dead-letters`);
    const off = page.getByTestId('dead-letters-off');
    await off.waitFor();
    assert((await off.textContent()).includes('weir.dead-letter.enabled'), `the "off" line: ${await off.textContent()}`);
    assert(await page.getByTestId('dead-letters-table').isHidden(), 'a table shows without records');
    assert(await page.getByTestId('dead-letters-empty').isHidden(), '"No record quarantined" shows for an off quarantine');
  }],

  ['8-login-and-unreachable', [/status of 401/], async ({ browser, base, state }) => {
    const context = await browser.newContext();
    const page = await context.newPage();
    watch(page, state);
    state.page = page;
    await page.goto(`${base}/#token=not-the-right-token-at-all`);
    await page.getByTestId('login-form').waitFor();
    assert(!page.url().includes('token='), 'the wrong token stays in the address');
    await page.getByTestId('login-message').waitFor();
    await page.getByTestId('login-token').fill(TOKEN);
    await page.getByTestId('login-submit').click();
    await page.getByTestId('overview').waitFor();
    await until('the jobs in the overview', async () => (await page.getByTestId('job-row').count()) === 5);
    // The overview's parallelism and checkpoint age columns.
    await until('the parallelism of every job', async () => (await page.getByTestId('job-parallelism')
      .allTextContents()).every((t) => t === '1'));
    await until('the age of a last checkpoint', async () => (await page.getByTestId('job-last-checkpoint')
      .allTextContents()).some((t) => /^\d+ (s|min) ago$/.test(t)));

    state.allow.push(/net::ERR_/);
    await killServer();
    const banner = page.getByTestId('unreachable');
    await banner.waitFor({ timeout: STEP_TIMEOUT });
    assert(/unreachable/i.test(await banner.textContent()), 'the banner does not say unreachable');
    // Let it retry a few times.
    await page.waitForTimeout(4500);
    assert(await banner.isVisible(), 'the banner went away');
    await page.getByTestId('overview').waitFor();
  }],
];

// ---- The run ----

fs.mkdirSync(resultsDir, { recursive: true });
let failed = 0;
let passed = 0;
let browser = null;
const started = Date.now();
try {
  const base = await startServer();
  const index = await fetch(`${base}/`).then((r) => r.text());
  if (!index.includes('/assets/main-')) {
    throw new Error(`${base}/ does not serve the dashboard (build it, or set WEIR_WEB_DIR=dist):\n${index.slice(0, 300)}`);
  }
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const state = { errors: [], allow: [], page };
  watch(page, state);

  for (const [name, allow, fn] of tests) {
    const t0 = Date.now();
    state.errors.length = 0;
    state.allow = [...allow];
    state.page = page;
    let error = null;
    try {
      let timer;
      await Promise.race([
        fn({ page, base, browser, state }),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`took over ${TEST_TIMEOUT / 1000} s`)), TEST_TIMEOUT); }),
      ]).finally(() => clearTimeout(timer));
      // Late errors of the test's own requests.
      await state.page.waitForTimeout(300);
    } catch (e) {
      error = e;
    }
    if (!error && state.errors.length) error = new Error(state.errors.join('\n  '));
    try {
      await state.page.screenshot({ path: path.join(resultsDir, `${name}.png`), fullPage: true });
    } catch {
      // a screenshot that fails does not change the verdict
    }
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    if (error) {
      failed++;
      console.log(`FAIL ${name} (${secs} s): ${error.message}`);
    } else {
      passed++;
      console.log(`ok   ${name} (${secs} s)`);
    }
  }
} catch (e) {
  failed++;
  console.log(`FAIL setup: ${e.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  await killServer().catch(() => {});
  if (failed) {
    console.log(`--- the server's last lines ---\n${serverLog.slice(-20).join('\n')}`);
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} of ${tests.length} passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(failed ? 1 : 0);
