// `#/submit`: a job spec (YAML or JSON) with its submit options, a check of
// a restore (dry run), and the submission.

import { parse as parseYaml } from 'yaml';

import { describe, get, post, ApiError, Unauthorized, Unreachable } from '../api.js';
import { h } from '../dom.js';
import { fmtBytes, fmtTime, shortHash } from '../format.js';

const DRAFT_KEY = 'weir.draft';

const EXAMPLE = `# A job spec, in YAML or JSON (the fields of a weir spec file).
# Each operator's \`wasm\` names an uploaded bundle.
name: keyed-count
config:
  execution.checkpointing.interval: 1s
sources:
  - id: gen
    type: datagen
    count: 100000000
    keys: 50
    rate: 2000
operators:
  - id: count
    uid: count
    wasm: count
sinks:
  - id: out
    type: discard
edges:
  - { from: gen, to: count, partition: hash }
  - { from: count, to: out }
`;

const PATH_RE = /^([A-Za-z_$][\w$-]*(?:\[\d+\]|\.[\w$-]+)*): ([\s\S]*)$/;

/**
 * The problems in the server's error messages, one per item: a spec error
 * is `invalid job spec:` and then `  - <path>: <message>` lines; a single
 * problem is `<path>: <message>`; anything else has no path.
 */
export function specProblems(messages) {
  const items = [];
  for (const m of messages) {
    let current = null;
    for (const line of String(m).split('\n')) {
      if (!line.trim()) continue;
      const bullet = line.match(/^\s*-\s+(.*)$/);
      if (bullet) {
        current = { text: bullet[1] };
        items.push(current);
      } else if (current === null && /^invalid job spec:?\s*$/i.test(line.trim())) {
        continue;
      } else if (current === null) {
        current = { text: line };
        items.push(current);
      } else {
        current.text += `\n${line}`;
      }
    }
  }
  return items.map(({ text }) => {
    const m = text.match(PATH_RE);
    return m ? { path: m[1], message: m[2] } : { path: null, message: text };
  });
}

export function problemList(problems) {
  return problems.map((p) => h('li', { testid: 'spec-error' },
    p.path ? [h('code', { class: 'field' }, p.path), ': '] : null,
    h('span', { class: 'message' }, p.message)));
}

function readDraft() {
  try {
    return sessionStorage.getItem(DRAFT_KEY);
  } catch {
    return null;
  }
}

function saveDraft(text) {
  try {
    sessionStorage.setItem(DRAFT_KEY, text);
  } catch {
    // not kept
  }
}

function list(values) {
  if (values === undefined || values === null) return null;
  const arr = Array.isArray(values) ? values : [values];
  return arr.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
}

/** `checkpoint 35`, `savepoint of checkpoint 12`. */
function snapshotLabel(snap) {
  const kind = snap.kind || 'snapshot';
  const id = snap.checkpointId;
  if (id === undefined || id === null) return kind;
  return kind === 'checkpoint' ? `checkpoint ${id}` : `${kind} of checkpoint ${id}`;
}

/**
 * The answer of `POST /jobs/dry-run` as a card: whether the job can
 * restore, the snapshot, and per uid its verdict, components and problems.
 */
export function dryRunReport(r) {
  const snap = r.snapshot || {};
  const rows = (r.operators || []).map((op) => {
    const details = [];
    for (const [label, key] of [['dropped states', 'dropped_states'], ['new states', 'new_states']]) {
      const l = list(op[key]);
      if (l && l.length) details.push(h('div', {}, `${label}: `, l.join(', ')));
    }
    for (const p of list(op.problems) || []) details.push(h('div', { class: 'error' }, p));
    return h('tr', { testid: 'verdict-row', 'data-verdict': op.verdict, 'data-uid': op.uid },
      h('td', {}, h('code', {}, op.uid)),
      h('td', {}, h('span', { class: `verdict verdict-${op.verdict}` }, op.verdict)),
      h('td', {}, op.old_sha256 ? h('code', { title: op.old_sha256 }, shortHash(op.old_sha256)) : '—'),
      h('td', {}, op.new_sha256 ? h('code', { title: op.new_sha256 }, shortHash(op.new_sha256)) : '—'),
      h('td', {}, details.length ? details : '—'));
  });
  return h('div', { class: 'card' },
    h('h2', {}, 'Restore check'),
    h('p', { testid: 'restorable', class: r.restorable ? 'ok' : 'error' },
      r.restorable ? 'The job can restore from this snapshot.' : 'The job cannot restore from this snapshot as it is.'),
    h('p', { class: 'muted' },
      snapshotLabel(snap),
      snap.backend ? `, ${snap.backend} backend` : '', snap.format ? `, ${snap.format} format` : ''),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Uid'), h('th', {}, 'Verdict'), h('th', {}, 'Old component'),
        h('th', {}, 'New component'), h('th', {}, 'Details'))),
      h('tbody', {}, rows))),
    (r.problems || []).length
      ? h('ul', { class: 'errors' }, r.problems.map((p) => h('li', {}, p)))
      : null);
}

export function submitView(root) {
  const editor = h('textarea', {
    id: 'spec', class: 'code', spellcheck: 'false', rows: 22, testid: 'spec-editor',
    autocomplete: 'off', autocapitalize: 'off', wrap: 'off',
  });
  editor.value = readDraft() ?? EXAMPLE;
  editor.addEventListener('input', () => saveDraft(editor.value));
  // Tab indents instead of leaving the editor.
  editor.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      editor.setRangeText('  ', editor.selectionStart, editor.selectionEnd, 'end');
      saveDraft(editor.value);
    }
  });

  const parallelism = h('input', { type: 'number', id: 'parallelism', min: 1, step: 1, placeholder: 'default', testid: 'parallelism' });
  const overrides = h('input', { type: 'text', id: 'overrides', placeholder: 'count=4, out=2', testid: 'parallelism-overrides' });
  const restoreSelect = h('select', { id: 'restore-select', testid: 'restore-select' },
    h('option', { value: '' }, 'None (start empty)'));
  const restorePath = h('input', {
    type: 'text', id: 'restore-path', placeholder: 'savepoint folder, or <job-id>/chk-<n>', testid: 'restore-path',
  });
  const allowNonRestored = h('input', { type: 'checkbox', id: 'allow-non-restored', testid: 'allow-non-restored' });
  const claimMode = h('select', { id: 'claim-mode', testid: 'claim-mode' },
    h('option', { value: 'NO_CLAIM' }, 'NO_CLAIM (never delete the snapshot)'),
    h('option', { value: 'CLAIM' }, 'CLAIM (the job owns the snapshot)'));
  const checkButton = h('button', { type: 'button', testid: 'check-restore' }, 'Check restore');
  const submitButton = h('button', { type: 'submit', class: 'primary', testid: 'submit-job' }, 'Submit');
  const status = h('p', { class: 'status', role: 'status', testid: 'submit-status' });
  const errors = h('ul', { class: 'errors', testid: 'spec-errors', role: 'alert', hidden: true });
  const dryRun = h('div', { class: 'dry-run', testid: 'dry-run', hidden: true });
  const bundlesHint = h('p', { class: 'hint' });

  restoreSelect.addEventListener('change', () => {
    restorePath.value = restoreSelect.value;
    updateButtons();
  });
  restorePath.addEventListener('input', () => {
    restoreSelect.value = [...restoreSelect.options].some((o) => o.value === restorePath.value)
      ? restorePath.value : '';
    updateButtons();
  });
  function updateButtons() {
    checkButton.disabled = !restorePath.value.trim();
  }
  updateButtons();

  const form = h('form', { class: 'submit-form', novalidate: true },
    h('div', { class: 'card spec-card' },
      h('div', { class: 'card-head' },
        h('h2', {}, h('label', { for: 'spec' }, 'Job spec')),
        h('button', { type: 'button', class: 'link', onclick: () => { editor.value = EXAMPLE; saveDraft(EXAMPLE); } }, 'Reset to the example')),
      editor, bundlesHint),
    h('div', { class: 'card options' },
      h('h2', {}, 'Options'),
      h('div', { class: 'field' }, h('label', { for: 'parallelism' }, 'Parallelism'), parallelism,
        h('p', { class: 'hint' }, 'Of the nodes that set none.')),
      h('div', { class: 'field' }, h('label', { for: 'overrides' }, 'Parallelism of single nodes'), overrides),
      h('h3', {}, 'Restore'),
      h('div', { class: 'field' }, h('label', { for: 'restore-select' }, 'Savepoint'), restoreSelect),
      h('div', { class: 'field' }, h('label', { for: 'restore-path' }, 'Path'), restorePath,
        h('p', { class: 'hint' }, 'A savepoint (its folder or its _metadata), or a retained checkpoint relative to the checkpoints root.')),
      h('div', { class: 'field check' }, allowNonRestored,
        h('label', { for: 'allow-non-restored' }, 'Allow non-restored state (drop state the job has no place for)')),
      h('div', { class: 'field' }, h('label', { for: 'claim-mode' }, 'Claim mode'), claimMode),
      h('div', { class: 'actions' }, checkButton, submitButton),
      status));

  root.append(h('h1', {}, 'Submit a job'), form, errors, dryRun);

  function showProblems(problems) {
    errors.replaceChildren(...problemList(problems));
    errors.hidden = problems.length === 0;
  }

  function clearResults() {
    showProblems([]);
    dryRun.hidden = true;
    dryRun.replaceChildren();
    status.textContent = '';
  }

  /** The submit request from the form, or null after showing why not. */
  function request({ needRestore = false } = {}) {
    let job;
    try {
      job = parseYaml(editor.value, { prettyErrors: true });
    } catch (e) {
      const where = e.linePos && e.linePos[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : null;
      showProblems([{ path: where, message: String(e.message).split('\n')[0] }]);
      return null;
    }
    if (!job || typeof job !== 'object' || Array.isArray(job)) {
      showProblems([{ path: null, message: 'The spec must be a mapping (an object) with name, sources, operators, sinks and edges.' }]);
      return null;
    }
    const body = { job };
    const problems = [];
    if (parallelism.value.trim()) {
      const p = Number(parallelism.value);
      if (!Number.isInteger(p) || p < 1) problems.push({ path: 'parallelism', message: 'a whole number of at least 1' });
      else body.parallelism = p;
    }
    if (overrides.value.trim()) {
      const map = {};
      for (const part of overrides.value.split(/[,\s]+/).filter(Boolean)) {
        const m = part.match(/^([^=:]+)[=:](\d+)$/);
        if (!m) {
          problems.push({ path: 'parallelismOverrides', message: `\`${part}\` is not node=parallelism` });
        } else {
          map[m[1]] = Number(m[2]);
        }
      }
      body.parallelismOverrides = map;
    }
    const path = restorePath.value.trim();
    if (path) {
      body.savepointPath = path;
      body.claimMode = claimMode.value;
      if (allowNonRestored.checked) body.allowNonRestoredState = true;
    } else if (needRestore) {
      problems.push({ path: 'savepointPath', message: 'choose a savepoint or enter a path to check a restore' });
    }
    if (!path && allowNonRestored.checked) body.allowNonRestoredState = true;
    if (problems.length) {
      showProblems(problems);
      return null;
    }
    return body;
  }

  function failure(e) {
    if (e instanceof Unauthorized) return;
    if (e instanceof ApiError) showProblems(specProblems(e.messages));
    else showProblems([{ path: null, message: describe(e) }]);
  }

  let busy = false;
  // The request whose restore the dry run passed: a submit that restores
  // goes out only for exactly that request, after its report was shown.
  let checked = null;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy) return;
    const body = request();
    if (!body) return;
    if (body.savepointPath && JSON.stringify(body) !== checked) {
      await check(body);
      if (checked === JSON.stringify(body)) {
        status.textContent = 'The restore check passed: press Submit again to start the job.';
      }
      return;
    }
    clearResults();
    busy = true;
    submitButton.disabled = true;
    status.textContent = 'Submitting…';
    try {
      const answer = await post('/jobs', body);
      status.textContent = 'Submitted.';
      if (answer && answer.jobid) location.hash = `#/jobs/${encodeURIComponent(answer.jobid)}`;
    } catch (err) {
      status.textContent = '';
      failure(err);
    } finally {
      busy = false;
      submitButton.disabled = false;
    }
  });

  /** Runs the dry run of `body` and shows its report. */
  async function check(body) {
    clearResults();
    busy = true;
    checkButton.disabled = true;
    status.textContent = 'Checking the restore…';
    try {
      const answer = await post('/jobs/dry-run', body);
      status.textContent = '';
      renderDryRun(answer || {});
      checked = answer && answer.restorable ? JSON.stringify(body) : null;
    } catch (err) {
      status.textContent = '';
      checked = null;
      failure(err);
    } finally {
      busy = false;
      updateButtons();
    }
  }

  checkButton.addEventListener('click', async () => {
    if (busy) return;
    const body = request({ needRestore: true });
    if (!body) {
      return;
    }
    await check(body);
  });

  function renderDryRun(r) {
    dryRun.replaceChildren(dryRunReport(r));
    dryRun.hidden = false;
  }

  // The savepoints and retained checkpoints to restore from, and the
  // bundles to name.
  let disposed = false;
  get('/savepoints').then((answer) => {
    if (disposed) return;
    const sps = ((answer && answer.savepoints) || []).slice().reverse();
    const group = h('optgroup', { label: 'Savepoints' });
    for (const sp of sps) {
      group.append(h('option', { value: sp.path },
        `${sp.jobName || sp.jobId} · savepoint ${sp.checkpointId} · ${fmtTime(sp.timestamp)} · ${sp.format} · ${fmtBytes(sp.size)}`));
    }
    if (sps.length) restoreSelect.append(group);
  }, (e) => {
    if (disposed || e instanceof Unauthorized || e instanceof Unreachable) return;
    status.textContent = `Could not list the savepoints: ${describe(e)}`;
  });
  listRetained().catch(() => {});

  /** Adds every job's retained checkpoints to the restore select. */
  async function listRetained() {
    const answer = await get('/jobs');
    const jobs = (answer && answer.jobs) || [];
    const group = h('optgroup', { label: 'Retained checkpoints' });
    for (const job of jobs.slice().reverse()) {
      const r = await get(`/jobs/${encodeURIComponent(job.jid)}/checkpoints/retained`);
      for (const c of (r && r.checkpoints) || []) {
        group.append(h('option', { value: c.path },
          `${job.name} · checkpoint ${c.id} · ${fmtTime(c.timestamp)} · ${c.backend} · ${fmtBytes(c.size)}`));
      }
    }
    if (!disposed && group.children.length) restoreSelect.append(group);
  }
  get('/bundles').then((answer) => {
    if (disposed) return;
    const names = ((answer && answer.bundles) || []).map((b) => b.name).sort();
    bundlesHint.replaceChildren(names.length
      ? h('span', {}, 'Bundles: ', names.map((n, i) => [i ? ', ' : '', h('code', {}, n)]))
      : h('span', {}, 'No bundles uploaded yet: ', h('a', { href: '#/' }, 'upload one'), ' first.'));
  }, () => {});

  return {
    dispose() {
      disposed = true;
    },
  };
}
