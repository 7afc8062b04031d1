// `#/`: the jobs, the operator bundles, and the upload of new bundles.

import {
  api, describe, get, poller, uploadBundle, ApiError, Unauthorized, Unreachable,
} from '../api.js';
import { h, syncChildren, text } from '../dom.js';
import {
  fmtAgo, fmtBytes, fmtDuration, fmtTime, shortHash,
} from '../format.js';

const ACTIVE = new Set(['RUNNING', 'CANCELLING', 'CREATED', 'RESTARTING', 'INITIALIZING']);

export function stateBadge(state) {
  return h('span', { class: `state state-${String(state || '').toLowerCase()}` }, state || '?');
}

export function setStateBadge(el, state) {
  el.className = `state state-${String(state || '').toLowerCase()}`;
  text(el, state || '?');
}

/** A job's duration: `duration` if given, else from its times. */
export function jobDuration(job, now = Date.now()) {
  const start = job['start-time'];
  const end = job['end-time'];
  if (typeof start === 'number' && start > 0) {
    if (typeof end === 'number' && end > 0) return end - start;
    if (ACTIVE.has(job.state)) return now - start;
  }
  return job.duration;
}

export function overviewView(root) {
  // Jobs
  const jobsBody = h('tbody', { testid: 'jobs-body' });
  // Columns only newer servers answer; hidden when no job has the field.
  const parallelismHead = h('th', { class: 'num' }, 'Parallelism');
  const restartsHead = h('th', { class: 'num' }, 'Restarts');
  const lastCheckpointHead = h('th', { class: 'num' }, 'Last checkpoint');
  const jobsEmpty = h('p', { class: 'empty', hidden: true }, 'No jobs yet. ', h('a', { href: '#/submit' }, 'Submit one'), '.');
  const jobsError = h('p', { class: 'error', hidden: true });
  const jobsTable = h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid: 'jobs-table' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Name'), h('th', {}, 'State'), h('th', {}, 'Started'),
      h('th', { class: 'num' }, 'Duration'), parallelismHead, restartsHead, lastCheckpointHead,
      h('th', {}, 'Job id'))),
    jobsBody));

  // Bundles
  const bundlesBody = h('tbody', { testid: 'bundles-body' });
  const usedByHead = h('th', {}, 'Used by');
  const bundlesEmpty = h('p', { class: 'empty', hidden: true }, 'No operator bundles yet: upload a .wasm component below.');
  const bundlesError = h('p', { class: 'error', testid: 'bundles-error', hidden: true });
  const bundlesTable = h('div', { class: 'table-wrap' }, h('table', { class: 'data', testid: 'bundles-table' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Name'), h('th', {}, 'Id (SHA-256)'), h('th', { class: 'num' }, 'Size'),
      h('th', {}, 'Uploaded'), h('th', {}, 'Compile'), usedByHead, h('th', {}, ''))),
    bundlesBody));

  // Upload
  const fileInput = h('input', { type: 'file', accept: '.wasm,application/wasm', testid: 'upload-input', id: 'upload-input' });
  const progress = h('progress', { max: 1, value: 0, testid: 'upload-progress', hidden: true });
  const uploadStatus = h('p', { class: 'status', testid: 'upload-status', role: 'status' });
  const uploadError = h('pre', { class: 'error', testid: 'upload-error', role: 'alert', hidden: true });
  const drop = h('div', { class: 'dropzone', testid: 'upload-drop', tabindex: 0 },
    h('p', {}, 'Drop a ', h('code', {}, '.wasm'), ' operator component here, or ',
      h('label', { for: 'upload-input', class: 'link' }, 'choose a file'), '.'),
    h('p', { class: 'hint' }, 'The bundle is named after the file (without ', h('code', {}, '.wasm'),
      '); uploading a name again replaces it.'),
    fileInput, progress, uploadStatus, uploadError);

  root.append(
    h('section', { class: 'card', testid: 'overview' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Jobs'), h('a', { class: 'button', href: '#/submit' }, 'Submit job')),
      jobsError, jobsTable, jobsEmpty),
    h('section', { class: 'card' },
      h('div', { class: 'card-head' }, h('h2', {}, 'Operator bundles')),
      bundlesError, bundlesTable, bundlesEmpty, drop),
  );

  let lastJobs = [];
  const jobNames = new Map(); // jid -> name, for the bundles' users

  function renderJobs(jobs) {
    lastJobs = jobs;
    const now = Date.now();
    const sorted = [...jobs].sort((a, b) => {
      const ra = ACTIVE.has(a.state) ? 0 : 1;
      const rb = ACTIVE.has(b.state) ? 0 : 1;
      if (ra !== rb) return ra - rb;
      return (b['start-time'] || 0) - (a['start-time'] || 0);
    });
    for (const j of jobs) jobNames.set(j.jid, j.name || j.jid);
    const hasParallelism = jobs.some((j) => 'parallelism' in j);
    const hasRestarts = jobs.some((j) => typeof j.restarts === 'number');
    const hasLastCheckpoint = jobs.some((j) => 'last-checkpoint' in j);
    parallelismHead.hidden = !hasParallelism;
    restartsHead.hidden = !hasRestarts;
    lastCheckpointHead.hidden = !hasLastCheckpoint;
    syncChildren(jobsBody, sorted, (j) => j.jid, (j) => {
      const tr = h('tr', { testid: 'job-row' },
        h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(j.jid)}`, testid: 'job-link' })),
        h('td', {}, stateBadge(j.state)),
        h('td', {}), h('td', { class: 'num' }),
        h('td', { class: 'num', testid: 'job-parallelism' }), h('td', { class: 'num', testid: 'job-restarts' }),
        h('td', { class: 'num', testid: 'job-last-checkpoint' }),
        h('td', {}, h('code', { class: 'muted' }, shortHash(j.jid))));
      tr.cells[7].title = j.jid;
      return tr;
    }, (tr, j) => {
      text(tr.cells[0].firstChild, j.name || j.jid);
      tr.dataset.state = j.state;
      setStateBadge(tr.cells[1].firstChild, j.state);
      text(tr.cells[2], fmtTime(j['start-time']));
      text(tr.cells[3], fmtDuration(jobDuration(j, now)));
      tr.cells[4].hidden = !hasParallelism;
      text(tr.cells[4], typeof j.parallelism === 'number' ? j.parallelism : '—');
      tr.cells[5].hidden = !hasRestarts;
      text(tr.cells[5], typeof j.restarts === 'number' ? j.restarts : '—');
      tr.cells[6].hidden = !hasLastCheckpoint;
      const last = j['last-checkpoint'];
      text(tr.cells[6], typeof last === 'number' ? fmtAgo(last, now) : '—');
      tr.cells[6].title = typeof last === 'number' ? fmtTime(last) : 'no completed checkpoint';
    });
    jobsEmpty.hidden = jobs.length > 0;
    jobsTable.hidden = jobs.length === 0;
  }

  // Where a bundle's compile stands: the server compiles an upload in the
  // background, and says what the compile cost.
  function renderCompile(td, compile) {
    const c = compile || {};
    td.dataset.state = c.state || '';
    td.title = c.error || '';
    if (c.state === 'ready') {
      const cost = typeof c.seconds === 'number'
        ? ` · ${c.seconds.toFixed(1)} s, ${Math.round(c['memory-mib'] || 0)} MiB`
        : ' (cached)';
      text(td, `ready${cost}`);
    } else if (c.state === 'failed') {
      text(td, `failed: ${c.error || 'unknown error'}`);
    } else if (c.state === 'compiling') {
      text(td, 'compiling…');
    } else if (c.state === 'not-compiled') {
      text(td, 'compiled at first start');
    } else {
      text(td, '—');
    }
  }

  function renderBundles(bundles) {
    const sorted = [...bundles].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    const hasUsers = bundles.some((b) => Array.isArray(b.jobs));
    usedByHead.hidden = !hasUsers;
    syncChildren(bundlesBody, sorted, (b) => `${b.name}\u0000${b.id}`, (b) => {
      const del = h('button', { type: 'button', class: 'danger small', testid: 'bundle-delete', title: `Delete ${b.name}` }, 'Delete');
      del.addEventListener('click', () => deleteBundle(b, del));
      const tr = h('tr', { testid: 'bundle-row' },
        h('td', { class: 'name' }), h('td', {}, h('code', { title: b.id }, shortHash(b.id))),
        h('td', { class: 'num' }), h('td', {}), h('td', { testid: 'bundle-compile' }),
        h('td', { class: 'used-by', testid: 'bundle-jobs' }),
        h('td', { class: 'actions-cell' }, del));
      return tr;
    }, (tr, b) => {
      text(tr.cells[0], b.version > 1 ? `${b.name} (v${b.version})` : b.name);
      text(tr.cells[2], fmtBytes(b.size));
      text(tr.cells[3], fmtTime(b.uploaded));
      renderCompile(tr.cells[4], b.compile);
      const users = Array.isArray(b.jobs) ? b.jobs : [];
      tr.cells[5].hidden = !hasUsers;
      const sig = users.map((jid) => `${jid}=${jobNames.get(jid) || ''}`).join(',');
      if (tr.cells[5]._sig !== sig) {
        tr.cells[5]._sig = sig;
        tr.cells[5].replaceChildren(...(users.length
          ? users.map((jid, i) => [i ? ', ' : '', h('a', {
            href: `#/jobs/${encodeURIComponent(jid)}`, title: jid, testid: 'bundle-job',
          }, jobNames.has(jid) ? `${jobNames.get(jid)} (${shortHash(jid).slice(0, 6)})` : shortHash(jid))]).flat()
          : [h('span', { class: 'muted' }, '—')]));
      }
      // The server refuses to delete a bundle a running job uses.
      const del = tr.cells[6].firstChild;
      del.dataset.inUse = users.length ? 'true' : 'false';
      del.title = users.length ? `${b.name} is used by ${users.length} running job${users.length > 1 ? 's' : ''}` : `Delete ${b.name}`;
    });
    bundlesEmpty.hidden = bundles.length > 0;
    bundlesTable.hidden = bundles.length === 0;
  }

  async function deleteBundle(b, button) {
    bundlesError.hidden = true;
    button.disabled = true;
    try {
      // By id: a row is one version of its name.
      await api('DELETE', `/bundles/${encodeURIComponent(b.id)}`);
      poll.now();
    } catch (e) {
      if (e instanceof Unauthorized) return;
      bundlesError.textContent = `Could not delete ${b.name}: ${describe(e)}`;
      bundlesError.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  const poll = poller(async () => {
    const [jobs, bundles] = await Promise.all([get('/jobs'), get('/bundles')]);
    jobsError.hidden = true;
    renderJobs((jobs && jobs.jobs) || []);
    renderBundles((bundles && bundles.bundles) || []);
  }, 2000, (e) => {
    if (e instanceof Unauthorized || e instanceof Unreachable) return;
    jobsError.textContent = describe(e);
    jobsError.hidden = false;
  });

  // Durations of running jobs tick between polls.
  const ticker = setInterval(() => {
    if (lastJobs.length) renderJobs(lastJobs);
  }, 1000);

  let uploading = false;
  async function upload(file) {
    if (!file || uploading) return;
    uploading = true;
    uploadError.hidden = true;
    uploadError.textContent = '';
    progress.hidden = false;
    progress.value = 0;
    drop.classList.add('busy');
    text(uploadStatus, `Uploading ${file.name} (${fmtBytes(file.size)})…`);
    try {
      const bundle = await uploadBundle(file, file.name, (f) => { progress.value = f; });
      progress.value = 1;
      text(uploadStatus, bundle
        ? `Uploaded ${bundle.name} (${shortHash(bundle.id)}, ${fmtBytes(bundle.size)}).`
        : `Uploaded ${file.name}.`);
      poll.now();
    } catch (e) {
      text(uploadStatus, '');
      if (!(e instanceof Unauthorized)) {
        // The server's reason, verbatim.
        uploadError.textContent = e instanceof ApiError ? e.messages.join('\n') : describe(e);
        uploadError.hidden = false;
      }
    } finally {
      uploading = false;
      progress.hidden = true;
      drop.classList.remove('busy');
      fileInput.value = '';
    }
  }

  fileInput.addEventListener('change', () => upload(fileInput.files && fileInput.files[0]));
  for (const ev of ['dragenter', 'dragover']) {
    drop.addEventListener(ev, (e) => {
      e.preventDefault();
      if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
      drop.classList.add('over');
    });
  }
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    const files = e.dataTransfer && e.dataTransfer.files;
    if (files && files.length) upload(files[0]);
  });

  // A file dropped beside the zone must not make the browser open it.
  const swallow = (e) => {
    if (!drop.contains(e.target)) e.preventDefault();
  };
  window.addEventListener('dragover', swallow);
  window.addEventListener('drop', swallow);

  return {
    dispose() {
      poll.stop();
      clearInterval(ticker);
      window.removeEventListener('dragover', swallow);
      window.removeEventListener('drop', swallow);
    },
  };
}
