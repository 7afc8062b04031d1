// The Recover tab of a job (`#/jobs/<id>/recover`): start a new job from one
// of this job's snapshots (its retained checkpoints and its savepoints),
// with the job's own spec and, per operator, the bundle it used or another
// uploaded one (a newer version of the operator). A check (the dry run)
// comes first; the new job is submitted only after a check that passed for
// exactly the choices on the page.

import {
  describe, get, post, ApiError, Unauthorized, Unreachable,
} from '../api.js';
import { h, pathWithCopy, syncChildren, text } from '../dom.js';
import { fmtBytes, fmtTime, shortHash } from '../format.js';
import { dryRunReport, problemList, specProblems } from './submit.js';

const SHA = 'sha256:';

/** The bundle id an operator's `wasm` names, if it names one by digest. */
function bundleId(wasm) {
  if (typeof wasm !== 'string') return null;
  if (wasm.startsWith(SHA)) return wasm.slice(SHA.length);
  return /^[0-9a-f]{64}$/.test(wasm) ? wasm : null;
}

/**
 * The bundles an operator can run, as select options: the one the job used
 * first, then the other uploaded bundles (those of the same name first),
 * one option per bundle id.
 */
export function bundleOptions(wasm, bundles) {
  const used = bundleId(wasm);
  const byId = new Map();
  for (const b of bundles) {
    const e = byId.get(b.id) || { id: b.id, names: [], uploaded: 0, size: b.size };
    e.names.push(b.name);
    e.uploaded = Math.max(e.uploaded, b.uploaded || 0);
    byId.set(b.id, e);
  }
  // A job submitted with a bundle name (not a digest) used that bundle.
  const usedEntry = used ? byId.get(used) : [...byId.values()].find((e) => e.names.includes(wasm));
  const usedNames = new Set(usedEntry ? usedEntry.names : []);
  const options = [];
  if (usedEntry) {
    options.push({
      value: `${SHA}${usedEntry.id}`, used: true, id: usedEntry.id,
      label: `${usedEntry.names.join(', ')} · ${shortHash(usedEntry.id)} (this job's)`,
    });
  } else {
    options.push({
      value: used ? `${SHA}${used}` : String(wasm), used: true, id: used,
      label: used
        ? `${shortHash(used)} (this job's; no longer uploaded under a name)`
        : `${wasm} (this job's)`,
    });
  }
  const others = [...byId.values()].filter((e) => e !== usedEntry);
  const related = (e) => (e.names.some((n) => usedNames.has(n)) ? 0 : 1);
  others.sort((a, b) => related(a) - related(b) || (b.uploaded - a.uploaded)
    || a.names[0].localeCompare(b.names[0]));
  for (const e of others) {
    options.push({
      value: `${SHA}${e.id}`, used: false, id: e.id,
      label: `${e.names.join(', ')} · ${shortHash(e.id)} · uploaded ${fmtTime(e.uploaded)}`,
    });
  }
  return options;
}

export class RecoverPanel {
  constructor(container, jobId) {
    this.jobId = jobId;
    this.base = `/jobs/${encodeURIComponent(jobId)}`;
    this.disposed = false;
    this.visible = false;
    this.generation = 0;
    this.spec = undefined; // the answer of /spec; null when the server has none
    this.bundles = [];
    this.snapshots = [];
    this.selected = null; // the chosen snapshot's path
    this.checked = null; // the request the last passing check was for
    this.busy = false;
    this.jobState = null;
    const radioName = `recover-snapshot-${jobId}`;
    this.radioName = radioName;

    this.runningNote = h('p', { class: 'hint warn', testid: 'recover-running', hidden: true },
      'The job is still running: a job started from its snapshot runs beside it (and writes to the same sinks).');
    this.snapshotsBody = h('tbody', {});
    this.snapshotsTable = h('div', { class: 'table-wrap', hidden: true },
      h('table', { class: 'data snapshots', testid: 'recover-snapshots' },
        h('thead', {}, h('tr', {}, h('th', { class: 'choice' }, ''), h('th', {}, 'Type'), h('th', { class: 'num' }, 'Checkpoint'),
          h('th', {}, 'Taken'), h('th', { class: 'num' }, 'Size'), h('th', {}, 'Format'), h('th', {}, 'Path'))),
        this.snapshotsBody));
    this.snapshotsEmpty = h('p', { class: 'empty', hidden: true },
      'No snapshot of this job to recover from: it has no savepoint, and no retained checkpoint '
      + '(a finished job\'s checkpoints are deleted; a cancelled job keeps them only with ',
      h('code', {}, 'execution.checkpointing.externalized-checkpoint-retention: RETAIN_ON_CANCELLATION'), ').');
    this.snapshotsError = h('p', { class: 'error', role: 'alert', hidden: true });
    this.refreshButton = h('button', { type: 'button', class: 'small', testid: 'recover-refresh' }, 'Refresh');

    this.operatorsBody = h('tbody', {});
    this.operatorsTable = h('div', { class: 'table-wrap', hidden: true },
      h('table', { class: 'data', testid: 'recover-operators' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Operator'), h('th', {}, 'Uid'), h('th', {}, 'Bundle'))),
        this.operatorsBody));
    this.specNote = h('p', { class: 'muted', testid: 'recover-spec-note' }, 'Loading the job\'s spec…');

    this.parallelism = h('input', {
      type: 'number', id: `recover-parallelism-${jobId}`, min: 1, step: 1, placeholder: 'as the spec says', testid: 'recover-parallelism',
    });
    this.allowNonRestored = h('input', { type: 'checkbox', id: `recover-allow-${jobId}`, testid: 'recover-allow-non-restored' });
    this.claimMode = h('select', { id: `recover-claim-${jobId}`, testid: 'recover-claim-mode' },
      h('option', { value: 'NO_CLAIM' }, 'NO_CLAIM (never delete the snapshot)'),
      h('option', { value: 'CLAIM' }, 'CLAIM (the new job owns the snapshot)'));
    this.checkButton = h('button', { type: 'button', testid: 'recover-check' }, 'Check');
    this.resumeButton = h('button', { type: 'button', class: 'primary', testid: 'recover-resume', disabled: true }, 'Resume as a new job');
    this.status = h('p', { class: 'status', role: 'status', testid: 'recover-status' });
    this.errors = h('ul', { class: 'errors', role: 'alert', testid: 'recover-errors', hidden: true });
    this.dryRun = h('div', { class: 'dry-run', testid: 'recover-dry-run', hidden: true });

    container.append(
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', {}, 'Snapshot to recover from'), this.refreshButton),
        h('p', { class: 'hint' }, 'The job\'s retained checkpoints and its savepoints, newest first.'),
        this.runningNote, this.snapshotsError, this.snapshotsTable, this.snapshotsEmpty),
      h('section', { class: 'card' },
        h('h2', {}, 'Operators'),
        h('p', { class: 'hint' }, 'Each operator runs the bundle this job used, or another uploaded bundle '
          + '(a newer version of it); the check tells whether its state still fits.'),
        this.specNote, this.operatorsTable),
      h('section', { class: 'card options recover-options' },
        h('h2', {}, 'Options'),
        h('div', { class: 'field' }, h('label', { for: this.parallelism.id }, 'Parallelism'), this.parallelism,
          h('p', { class: 'hint' }, 'Of the nodes that set none; a canonical savepoint or a checkpoint restores at any parallelism.')),
        h('div', { class: 'field check' }, this.allowNonRestored,
          h('label', { for: this.allowNonRestored.id }, 'Allow non-restored state (drop state the job has no place for)')),
        h('div', { class: 'field' }, h('label', { for: this.claimMode.id }, 'Claim mode'), this.claimMode),
        h('div', { class: 'actions' }, this.checkButton, this.resumeButton),
        this.status),
      this.errors,
      this.dryRun,
    );

    this.refreshButton.addEventListener('click', () => this.load());
    this.snapshotsBody.addEventListener('change', (e) => {
      if (e.target.name === radioName && e.target.checked) {
        this.selected = e.target.value;
        this.changed();
      }
    });
    this.operatorsBody.addEventListener('change', () => this.changed());
    for (const el of [this.parallelism, this.allowNonRestored, this.claimMode]) {
      el.addEventListener('input', () => this.changed());
      el.addEventListener('change', () => this.changed());
    }
    this.checkButton.addEventListener('click', () => this.check());
    this.resumeButton.addEventListener('click', () => this.resume());
    this.updateButtons();
  }

  /** The tab became visible (or hidden): load what it shows when it opens. */
  setVisible(visible) {
    const was = this.visible;
    this.visible = visible;
    if (visible && !was) this.load();
  }

  /** The job's state, from the job page's polling. */
  setJobState(state) {
    const prev = this.jobState;
    this.jobState = state;
    this.runningNote.hidden = !(state === 'RUNNING' || state === 'CANCELLING' || state === 'RESTARTING');
    // A job that ends may leave checkpoints behind: list them again.
    if (prev && prev !== state && this.visible) this.loadSnapshots();
  }

  async load() {
    await Promise.all([this.loadSpec(), this.loadSnapshots()]);
  }

  async loadSnapshots() {
    const gen = ++this.generation;
    this.refreshButton.disabled = true;
    const problems = [];
    const [retained, savepoints] = await Promise.all([
      get(`${this.base}/checkpoints/retained`).catch((e) => {
        if (!(e instanceof Unauthorized || e instanceof Unreachable)) problems.push(`Retained checkpoints: ${describe(e)}`);
        return null;
      }),
      get(`/savepoints?job=${encodeURIComponent(this.jobId)}`).catch((e) => {
        if (!(e instanceof Unauthorized || e instanceof Unreachable)) problems.push(`Savepoints: ${describe(e)}`);
        return null;
      }),
    ]);
    if (this.disposed || gen !== this.generation) return;
    this.refreshButton.disabled = false;
    this.snapshotsError.textContent = problems.join('\n');
    this.snapshotsError.hidden = problems.length === 0;
    if (!retained && !savepoints) return;
    const list = [
      ...((retained && retained.checkpoints) || []).map((c) => ({
        type: 'checkpoint', id: c.id, path: c.path, timestamp: c.timestamp, size: c.size, backend: c.backend, format: null,
      })),
      ...((savepoints && savepoints.savepoints) || [])
        .filter((sp) => !sp.jobId || sp.jobId === this.jobId)
        .map((sp) => ({
          type: 'savepoint', id: sp.checkpointId, path: sp.path, timestamp: sp.timestamp, size: sp.size, format: sp.format,
        })),
    ].sort((a, b) => (b.timestamp || 0) - (a.timestamp || 0) || (b.id || 0) - (a.id || 0));
    this.renderSnapshots(list);
  }

  renderSnapshots(list) {
    this.snapshots = list;
    if (!list.some((s) => s.path === this.selected)) this.selected = list.length ? list[0].path : null;
    this.snapshotsTable.hidden = list.length === 0;
    this.snapshotsEmpty.hidden = list.length > 0;
    syncChildren(this.snapshotsBody, list, (s) => `${s.type}\u0000${s.path}`, (s) => {
      const radio = h('input', {
        type: 'radio', name: this.radioName, value: s.path, testid: 'snapshot-choice',
        'aria-label': `${s.type} ${s.id}`,
      });
      const tr = h('tr', { testid: 'recover-snapshot', 'data-type': s.type, 'data-path': s.path, 'data-id': s.id, class: 'choosable' },
        h('td', { class: 'choice' }, radio),
        h('td', {}, s.type === 'savepoint'
          ? h('span', { class: 'badge savepoint' }, 'savepoint') : h('span', { class: 'badge' }, 'checkpoint')),
        h('td', { class: 'num' }, s.id ?? '—'),
        h('td', {}, fmtTime(s.timestamp)),
        h('td', { class: 'num' }, fmtBytes(s.size)),
        h('td', {}, s.type === 'savepoint' ? (s.format || '—') : h('span', { class: 'muted' }, s.backend ? `${s.backend} backend` : '—')),
        h('td', { class: 'path-cell' }, pathWithCopy(s.path, 'snapshot-path')));
      // A click anywhere on the row (but its buttons) chooses it.
      tr.addEventListener('click', (e) => {
        if (e.target.closest('button, a, input')) return;
        if (!radio.checked) {
          radio.checked = true;
          radio.dispatchEvent(new Event('change', { bubbles: true }));
        }
      });
      return tr;
    }, (tr, s) => {
      const radio = tr.querySelector('input[type="radio"]');
      radio.checked = s.path === this.selected;
      tr.classList.toggle('chosen', radio.checked);
    });
    this.changed();
  }

  async loadSpec() {
    let spec;
    let bundles;
    try {
      [spec, bundles] = await Promise.all([
        get(`${this.base}/spec`).catch((e) => {
          if (e instanceof ApiError && e.status === 404) return null;
          throw e;
        }),
        get('/bundles'),
      ]);
    } catch (e) {
      if (this.disposed || e instanceof Unauthorized) return;
      if (this.spec === undefined) text(this.specNote, `Could not load the job's spec: ${describe(e)}`);
      return;
    }
    if (this.disposed) return;
    this.bundles = (bundles && bundles.bundles) || [];
    const fresh = this.spec === undefined || JSON.stringify(this.spec) !== JSON.stringify(spec);
    this.spec = spec;
    if (!spec || !spec.job) {
      this.specNote.replaceChildren('This server did not submit this job (', h('code', {}, 'weir run'),
        ' serves its own), so it has no spec to resume it with. Copy a snapshot\'s path above and submit the spec on the ',
        h('a', { href: '#/submit' }, 'Submit'), ' page.');
      this.specNote.hidden = false;
      this.operatorsTable.hidden = true;
      this.updateButtons();
      return;
    }
    if (fresh && typeof spec.parallelism === 'number' && !this.parallelism.value) {
      this.parallelism.value = String(spec.parallelism);
    }
    const ops = Array.isArray(spec.job.operators) ? spec.job.operators : [];
    this.specNote.hidden = ops.length > 0;
    text(this.specNote, ops.length ? '' : 'The job has no operators: only its sources and sinks restore.');
    this.operatorsTable.hidden = ops.length === 0;
    syncChildren(this.operatorsBody, ops.map((op, i) => ({ op, i })), ({ op, i }) => `${i}\u0000${op.id}`, ({ op }) => {
      const select = h('select', { testid: 'recover-bundle', 'data-operator': op.id, 'aria-label': `Bundle of ${op.id}` });
      return h('tr', { testid: 'recover-operator', 'data-operator': op.id },
        h('th', { scope: 'row' }, op.id), h('td', {}, h('code', {}, op.uid ?? op.id)), h('td', {}, select));
    }, (tr, { op }) => {
      const select = tr.querySelector('select');
      const options = bundleOptions(op.wasm, this.bundles);
      const sig = JSON.stringify(options);
      if (select._sig === sig) return;
      select._sig = sig;
      const keep = select.value;
      select.replaceChildren(...options.map((o) => h('option', {
        value: o.value, 'data-used': o.used ? 'true' : 'false',
      }, o.label)));
      if (keep && options.some((o) => o.value === keep)) select.value = keep;
    });
    this.changed();
  }

  /** The submit request the page describes, or null if it is incomplete. */
  request() {
    if (!this.spec || !this.spec.job || !this.selected) return null;
    const job = JSON.parse(JSON.stringify(this.spec.job));
    const selects = new Map([...this.operatorsBody.querySelectorAll('select')].map((s) => [s.dataset.operator, s.value]));
    for (const op of job.operators || []) {
      const chosen = selects.get(op.id);
      if (chosen) op.wasm = chosen;
    }
    const body = { job };
    const p = this.parallelism.value.trim();
    if (p) {
      const n = Number(p);
      if (!Number.isInteger(n) || n < 1) return null;
      body.parallelism = n;
    } else if (typeof this.spec.parallelism === 'number') {
      body.parallelism = this.spec.parallelism;
    }
    const overrides = this.spec.parallelismOverrides;
    if (overrides && typeof overrides === 'object' && Object.keys(overrides).length) {
      body.parallelismOverrides = overrides;
    }
    body.savepointPath = this.selected;
    body.allowNonRestoredState = this.allowNonRestored.checked;
    body.claimMode = this.claimMode.value;
    return body;
  }

  /** Something the request depends on changed: a check no longer holds. */
  changed() {
    const body = this.request();
    if (this.checked !== null && (!body || JSON.stringify(body) !== this.checked)) {
      this.checked = null;
      this.dryRun.classList.add('stale');
      if (!this.busy) text(this.status, 'The choices changed since the check: check again.');
    }
    for (const tr of this.snapshotsBody.rows) tr.classList.toggle('chosen', tr.dataset.path === this.selected);
    this.updateButtons();
  }

  updateButtons() {
    const body = this.request();
    this.checkButton.disabled = this.busy || !body;
    this.resumeButton.disabled = this.busy || !body || this.checked === null || JSON.stringify(body) !== this.checked;
    if (!this.spec) this.checkButton.title = 'The job\'s spec is not available';
    else if (!this.selected) this.checkButton.title = 'Choose a snapshot first';
    else if (!body) this.checkButton.title = 'The parallelism must be a whole number of at least 1';
    else this.checkButton.title = '';
    this.resumeButton.title = this.resumeButton.disabled && !this.busy ? 'Check the restore first' : '';
  }

  showProblems(problems) {
    this.errors.replaceChildren(...problemList(problems));
    this.errors.hidden = problems.length === 0;
  }

  failure(e) {
    if (e instanceof Unauthorized) return;
    if (e instanceof ApiError) this.showProblems(specProblems(e.messages));
    else this.showProblems([{ path: null, message: describe(e) }]);
  }

  async check() {
    if (this.busy) return;
    const body = this.request();
    if (!body) return;
    this.busy = true;
    this.checked = null;
    this.showProblems([]);
    this.dryRun.hidden = true;
    this.dryRun.replaceChildren();
    this.dryRun.classList.remove('stale');
    text(this.status, 'Checking the restore…');
    this.updateButtons();
    try {
      const answer = (await post('/jobs/dry-run', body)) || {};
      if (this.disposed) return;
      this.dryRun.replaceChildren(dryRunReport(answer));
      this.dryRun.hidden = false;
      if (answer.restorable) {
        this.checked = JSON.stringify(body);
        text(this.status, 'The check passed: resume when ready.');
      } else {
        text(this.status, 'The check did not pass.');
      }
    } catch (e) {
      if (this.disposed) return;
      text(this.status, '');
      this.failure(e);
    } finally {
      this.busy = false;
      // The choices may have changed while the check ran.
      if (this.checked !== null) {
        const now = this.request();
        if (!now || JSON.stringify(now) !== this.checked) this.changed();
      }
      this.updateButtons();
    }
  }

  async resume() {
    if (this.busy || this.checked === null) return;
    const body = this.request();
    if (!body || JSON.stringify(body) !== this.checked) {
      this.changed();
      return;
    }
    this.busy = true;
    this.showProblems([]);
    text(this.status, 'Submitting…');
    this.updateButtons();
    try {
      const answer = await post('/jobs', body);
      if (this.disposed) return;
      const jid = answer && answer.jobid;
      text(this.status, jid ? `Submitted as ${jid}.` : 'Submitted.');
      if (jid) location.hash = `#/jobs/${encodeURIComponent(jid)}/checkpoints`;
    } catch (e) {
      if (this.disposed) return;
      text(this.status, '');
      this.failure(e);
    } finally {
      this.busy = false;
      if (!this.disposed) this.updateButtons();
    }
  }

  destroy() {
    this.disposed = true;
  }
}
