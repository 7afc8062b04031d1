// `#/jobs/<id>`: a job, polled every second. Tabs: the overview (graph,
// live charts, operators), the checkpoints, the exceptions, the dead letters
// (records the quarantine took), and recovery (a new job from one of its
// snapshots).

import {
  api, describe, get, poller, post, ApiError, Unauthorized, Unreachable,
} from '../api.js';
import { Chart, PALETTE, zeroUp } from '../charts.js';
import { h, pathWithCopy, syncChildren, syncTbodies, text } from '../dom.js';
import {
  fmtCompact, fmtDuration, fmtInt, fmtPct, fmtRate, fmtTime,
} from '../format.js';
import { CheckpointsPanel } from './checkpoints.js';
import { DeadLettersPanel } from './deadletters.js';
import { JobGraph } from './graph.js';
import { RecoverPanel } from './recover.js';
import { jobDuration, setStateBadge } from './overview.js';

const WINDOW_S = 300; // the live charts show the last 5 minutes
const TERMINAL = new Set(['FINISHED', 'FAILED', 'CANCELED']);

export function jobView(root, route) {
  const id = route.id;
  const base = `/jobs/${encodeURIComponent(id)}`;
  let disposed = false;
  let detail = null;
  let config = null; // from /checkpoints/config

  // Header
  const nameEl = h('h1', { testid: 'job-name' }, id);
  const stateEl = h('span', { class: 'state', testid: 'job-state' }, '…');
  const startEl = h('dd', { testid: 'job-start' }, '—');
  const endEl = h('dd', {}, '—');
  const durationEl = h('dd', { testid: 'job-duration' }, '—');
  const restartsEl = h('dd', { testid: 'job-restarts' }, '—');
  const errorEl = h('p', { class: 'error', role: 'alert', testid: 'job-error', hidden: true });

  // Actions
  const btnCheckpoint = h('button', { type: 'button', testid: 'action-checkpoint' }, 'Trigger checkpoint');
  const formatSelect = h('select', { id: 'sp-format', testid: 'savepoint-format' },
    h('option', { value: 'CANONICAL' }, 'Canonical'), h('option', { value: 'NATIVE' }, 'Native'));
  const targetInput = h('input', { type: 'text', id: 'sp-target', placeholder: 'default: the savepoints root', testid: 'savepoint-target' });
  const btnSavepoint = h('button', { type: 'button', testid: 'action-savepoint' }, 'Savepoint');
  const drainBox = h('input', { type: 'checkbox', id: 'sp-drain', testid: 'stop-drain' });
  const btnStop = h('button', { type: 'button', testid: 'action-stop' }, 'Stop with savepoint');
  const btnCancel = h('button', { type: 'button', class: 'danger', testid: 'action-cancel' }, 'Cancel job');
  const results = h('ul', { class: 'results', testid: 'action-results', 'aria-live': 'polite' });

  const confirmYes = h('button', { type: 'button', class: 'danger', testid: 'confirm-yes' }, 'Cancel the job');
  const confirmNo = h('button', { type: 'button', testid: 'confirm-no' }, 'Keep it running');
  const confirmText = h('p', {});
  const dialog = h('dialog', { class: 'confirm', testid: 'confirm-dialog' },
    h('h2', {}, 'Cancel the job?'), confirmText, h('div', { class: 'actions' }, confirmNo, confirmYes));

  // Tabs
  const tabDefs = [['overview', 'Overview'], ['checkpoints', 'Checkpoints'], ['exceptions', 'Exceptions'],
    ['dead-letters', 'Dead letters'], ['recover', 'Recover']];
  const tabLinks = new Map();
  const panels = new Map();
  const tabBar = h('nav', { class: 'tabs', role: 'tablist' }, tabDefs.map(([key, label]) => {
    const a = h('a', {
      href: `#/jobs/${encodeURIComponent(id)}${key === 'overview' ? '' : `/${key}`}`,
      role: 'tab', testid: `tab-${key}`,
    }, label);
    tabLinks.set(key, a);
    return a;
  }));
  for (const [key] of tabDefs) panels.set(key, h('div', { class: 'panel', role: 'tabpanel', testid: `panel-${key}` }));

  root.append(
    h('div', { class: 'job-head' },
      h('div', { class: 'job-title' }, nameEl, stateEl),
      h('dl', { class: 'job-meta' },
        h('dt', {}, 'Job id'), h('dd', {}, h('code', {}, id)),
        h('dt', {}, 'Started'), startEl, h('dt', {}, 'Ended'), endEl,
        h('dt', {}, 'Duration'), durationEl, h('dt', {}, 'Restarts'), restartsEl)),
    errorEl,
    h('section', { class: 'card actions-card' },
      h('div', { class: 'action-row' },
        btnCheckpoint,
        h('span', { class: 'sep' }),
        h('label', { for: 'sp-format' }, 'Format'), formatSelect,
        h('label', { for: 'sp-target' }, 'Target'), targetInput,
        btnSavepoint,
        h('span', { class: 'check' }, drainBox, h('label', { for: 'sp-drain' }, 'Drain')), btnStop,
        h('span', { class: 'sep' }),
        btnCancel),
      results),
    tabBar,
    ...panels.values(),
    dialog);

  // Overview panel
  const overview = panels.get('overview');
  const graphCard = h('section', { class: 'card' }, h('h2', {}, 'Graph'),
    h('p', { class: 'hint legend' },
      h('span', { class: 'swatch idle' }), 'idle ', h('span', { class: 'swatch busy' }), 'busy ',
      h('span', { class: 'swatch bp' }), 'backpressured (of the busiest subtask, since the last poll)'));
  const graph = new JobGraph(graphCard);
  const chartsCard = h('section', { class: 'card' }, h('h2', {}, 'Throughput and backpressure (last 5 minutes)'));
  const chartsEl = h('div', { class: 'charts' });
  chartsCard.append(chartsEl);
  const opsTable = h('table', { class: 'data operators', testid: 'operators-table' },
    h('thead', {}, h('tr', {},
      h('th', {}, 'Node / subtask'), h('th', { class: 'num' }, 'Records in'), h('th', { class: 'num' }, 'Records out'),
      h('th', { class: 'num' }, 'In /s'), h('th', { class: 'num' }, 'Out /s'), h('th', { class: 'num' }, 'Busy'),
      h('th', { class: 'num' }, 'Backpressured'), h('th', { class: 'num' }, 'Idle'))));
  overview.append(graphCard, h('section', { class: 'card' }, h('h2', {}, 'Operators'),
    h('div', { class: 'table-wrap' }, opsTable)), chartsCard);

  // Checkpoints panel
  const checkpoints = new CheckpointsPanel(panels.get('checkpoints'), id, () => savepointsPoll.now());

  // Exceptions panel: the restarts (what each restarted and restored), then
  // the exceptions
  const restartsList = h('ol', { class: 'restarts', testid: 'restarts' });
  const restartsEmpty = h('p', { class: 'empty', testid: 'restarts-empty' }, 'The job has not restarted.');
  const restartsNote = h('p', { class: 'hint', hidden: true });
  const exceptionsList = h('ol', { class: 'exceptions', testid: 'exceptions' });
  const exceptionsEmpty = h('p', { class: 'empty' }, 'No exceptions.');
  panels.get('exceptions').append(
    h('section', { class: 'card', testid: 'restarts-card' }, h('h2', {}, 'Restarts'), restartsNote, restartsEmpty, restartsList),
    h('section', { class: 'card' }, h('h2', {}, 'Exceptions'), exceptionsEmpty, exceptionsList));

  // Dead letters panel
  const deadLetters = new DeadLettersPanel(panels.get('dead-letters'));

  // Recover panel
  const recover = new RecoverPanel(panels.get('recover'), id);

  let tab = 'overview';
  function showTab(key) {
    tab = panels.has(key) ? key : 'overview';
    for (const [k, p] of panels) p.hidden = k !== tab;
    for (const [k, a] of tabLinks) {
      a.classList.toggle('active', k === tab);
      a.setAttribute('aria-selected', String(k === tab));
    }
    recover.setVisible(tab === 'recover');
  }
  showTab(route.tab);

  // ---- Live figures: deltas of the counters between two polls ----

  let prev = null; // { t, subtasks: Map(key -> counters) }
  const series = { t: [], byVertex: new Map() }; // vertex -> { in: [], out: [], bp: [] }
  let chartSig = '';
  let charts = [];

  function sample(d) {
    const t = performance.now();
    const cur = new Map();
    const vertexLoads = new Map();
    const subLoads = new Map();
    const running = d.state === 'RUNNING';
    const dt = prev ? (t - prev.t) / 1000 : 0;
    const usable = running && prev && dt >= 0.2;
    for (const v of d.vertices || []) {
      const agg = { busy: null, backpressured: null, idle: null, avgBusy: null, avgBackpressured: null, inRate: null, outRate: null };
      let n = 0;
      let sumBusy = 0;
      let sumBp = 0;
      for (const st of v.subtasks || []) {
        const key = `${v.id}\u0000${st.subtask}`;
        const c = {
          read: st['read-records'] ?? 0, write: st['write-records'] ?? 0,
          busy: st['busy-ms'] ?? 0, bp: st['backpressured-ms'] ?? 0,
        };
        cur.set(key, c);
        const p = usable ? prev.subtasks.get(key) : null;
        if (!p || c.read < p.read || c.write < p.write || c.busy < p.busy || c.bp < p.bp) continue;
        const ms = dt * 1000;
        let busy = Math.min(1, (c.busy - p.busy) / ms);
        let bp = Math.min(1, (c.bp - p.bp) / ms);
        if (busy + bp > 1) {
          const sum = busy + bp;
          busy /= sum;
          bp /= sum;
        }
        const l = {
          inRate: (c.read - p.read) / dt, outRate: (c.write - p.write) / dt,
          busy, backpressured: bp, idle: Math.max(0, 1 - busy - bp),
        };
        subLoads.set(key, l);
        n++;
        sumBusy += busy;
        sumBp += bp;
        agg.busy = Math.max(agg.busy ?? 0, busy);
        agg.backpressured = Math.max(agg.backpressured ?? 0, bp);
        agg.idle = Math.min(agg.idle ?? 1, l.idle);
        agg.inRate = (agg.inRate ?? 0) + l.inRate;
        agg.outRate = (agg.outRate ?? 0) + l.outRate;
      }
      if (n > 0) {
        agg.avgBusy = sumBusy / n;
        agg.avgBackpressured = sumBp / n;
      }
      vertexLoads.set(v.id, agg);
    }
    if (!prev || dt >= 0.2 || !running) prev = { t, subtasks: cur };
    if (usable) record(d.vertices || [], vertexLoads);
    return { vertexLoads, subLoads };
  }

  function record(vertices, loads) {
    const now = Date.now() / 1000;
    series.t.push(now);
    for (const v of vertices) {
      let s = series.byVertex.get(v.id);
      if (!s) {
        s = { in: series.t.slice(0, -1).map(() => null), out: series.t.slice(0, -1).map(() => null), bp: series.t.slice(0, -1).map(() => null) };
        series.byVertex.set(v.id, s);
      }
      const l = loads.get(v.id);
      s.in.push(l && l.inRate !== null ? l.inRate : null);
      s.out.push(l && l.outRate !== null ? l.outRate : null);
      s.bp.push(l && l.backpressured !== null ? l.backpressured * 100 : null);
    }
    let drop = 0;
    while (drop < series.t.length && series.t[drop] < now - WINDOW_S) drop++;
    if (drop) {
      series.t.splice(0, drop);
      for (const s of series.byVertex.values()) {
        s.in.splice(0, drop);
        s.out.splice(0, drop);
        s.bp.splice(0, drop);
      }
    }
  }

  function renderCharts(vertices) {
    const sig = JSON.stringify(vertices.map((v) => [v.id, v.kind]));
    if (sig !== chartSig) {
      for (const c of charts) c.chart.destroy();
      chartSig = sig;
      const ins = vertices.filter((v) => v.kind !== 'source');
      const outs = vertices.filter((v) => v.kind !== 'sink');
      const rate = (v) => fmtRate(v);
      // A node keeps its colour in every chart.
      const color = new Map(vertices.map((v, i) => [v.id, PALETTE[i % PALETTE.length]]));
      const lines = (vs) => vs.map((v) => ({ label: v.id, color: color.get(v.id) }));
      charts = [
        {
          chart: new Chart(chartsEl, {
            title: 'Records in per second', testid: 'chart-records-in', series: lines(ins),
            value: rate, axisValue: fmtCompact, yRange: zeroUp,
          }),
          vs: ins,
          field: 'in',
        },
        {
          chart: new Chart(chartsEl, {
            title: 'Records out per second', testid: 'chart-records-out', series: lines(outs),
            value: rate, axisValue: fmtCompact, yRange: zeroUp,
          }),
          vs: outs,
          field: 'out',
        },
        {
          chart: new Chart(chartsEl, {
            title: 'Backpressured (% of time, busiest subtask)', testid: 'chart-backpressure', series: lines(vertices),
            value: (v) => `${Math.round(v)}%`, yRange: () => [0, 100],
          }),
          vs: vertices,
          field: 'bp',
        },
      ];
    }
    for (const c of charts) {
      const ys = c.vs.map((v) => {
        const s = series.byVertex.get(v.id);
        return s ? s[c.field] : series.t.map(() => null);
      });
      c.chart.setData([series.t.slice(), ...ys.map((y) => y.slice())]);
    }
  }

  function renderOperators(vertices, subLoads) {
    syncTbodies(opsTable, vertices, (v) => v.id, () => h('tbody', {}), (body, v) => {
      const subs = (v.subtasks || []).slice().sort((a, b) => a.subtask - b.subtask);
      const loads = subs.map((st) => subLoads.get(`${v.id}\u0000${st.subtask}`) || null);
      const have = loads.filter(Boolean);
      const sum = (f) => (have.length ? have.reduce((a, l) => a + l[f], 0) : null);
      const max = (f) => (have.length ? Math.max(...have.map((l) => l[f])) : null);
      const min = (f) => (have.length ? Math.min(...have.map((l) => l[f])) : null);
      const m = v.metrics || {};
      const rows = [{
        key: 'v', vertex: true, label: v.id, sub: `${v.kind} · x${v.parallelism}`,
        read: m['read-records'], write: m['write-records'],
        inRate: sum('inRate'), outRate: sum('outRate'),
        busy: max('busy'), bp: max('backpressured'), idle: min('idle'),
      }, ...subs.map((st, i) => ({
        key: `s${st.subtask}`, vertex: false, label: `#${st.subtask}`,
        read: st['read-records'], write: st['write-records'],
        inRate: loads[i] && loads[i].inRate, outRate: loads[i] && loads[i].outRate,
        busy: loads[i] && loads[i].busy, bp: loads[i] && loads[i].backpressured, idle: loads[i] && loads[i].idle,
      }))];
      syncChildren(body, rows, (r) => r.key, (r) => h('tr', { class: r.vertex ? 'vertex-row' : 'subtask-metrics-row', testid: r.vertex ? 'operator-row' : 'operator-subtask-row' },
        h('th', { scope: 'row' }, h('span', { class: 'label' }), r.vertex ? h('span', { class: 'muted small' }) : null),
        ...[0, 1, 2, 3, 4, 5, 6].map(() => h('td', { class: 'num' }))), (tr, r) => {
        text(tr.cells[0].firstChild, r.label);
        if (r.vertex) text(tr.cells[0].lastChild, ` ${r.sub}`);
        text(tr.cells[1], fmtInt(r.read));
        text(tr.cells[2], fmtInt(r.write));
        text(tr.cells[3], fmtRate(r.inRate));
        text(tr.cells[4], fmtRate(r.outRate));
        text(tr.cells[5], fmtPct(r.busy));
        text(tr.cells[6], fmtPct(r.bp));
        text(tr.cells[7], fmtPct(r.idle));
        if (r.vertex) tr.title = 'Busy and backpressured: the highest of the subtasks; idle: the lowest';
      });
    });
  }

  function renderExceptions(list) {
    const items = [...list].sort((a, b) => (b.timestamp || 0) - (a.timestamp || 0));
    exceptionsEmpty.hidden = items.length > 0;
    text(tabLinks.get('exceptions'), items.length ? `Exceptions (${items.length})` : 'Exceptions');
    syncChildren(exceptionsList, items, (e) => `${e.timestamp}\u0000${e.exception}`, (e) => h('li', { testid: 'exception' },
      h('div', { class: 'exception-head' },
        h('time', {}, fmtTime(e.timestamp)),
        e.quarantined
          ? h('a', { class: 'badge quarantined', testid: 'quarantined', href: `#${base}/dead-letters` }, 'record quarantined (dead letter)')
          : e.restarted ? h('span', { class: 'badge restarted' }, 'the job restarted') : h('span', { class: 'badge not-restarted' }, 'the job did not restart')),
      h('pre', {}, e.exception)), () => {});
  }

  // `restart-history` comes oldest first (the newest few the server keeps);
  // shown newest first, numbered from the job's restart count.
  // A cause's first line, and the rest (a backtrace) behind a toggle.
  function cause(message) {
    const [first, ...rest] = String(message).split('\n');
    const more = rest.join('\n').trim();
    if (!more) return h('p', { class: 'restart-cause', testid: 'restart-cause' }, first);
    return h('details', { class: 'restart-cause' },
      h('summary', { testid: 'restart-cause' }, first), h('pre', {}, more));
  }

  // What a restart restarted: a region failover's subtasks (`node[subtask]`),
  // or the whole job (`subtasks` null).
  function scope(subtasks) {
    return Array.isArray(subtasks) ? `region: ${subtasks.join(', ')}` : 'whole job';
  }

  function renderRestarts(list, restarts) {
    const items = list.map((r, i) => ({ ...r, n: typeof restarts === 'number' ? restarts - (list.length - 1 - i) : null }))
      .reverse();
    restartsEmpty.hidden = items.length > 0;
    const dropped = typeof restarts === 'number' ? restarts - list.length : 0;
    restartsNote.hidden = dropped <= 0;
    text(restartsNote, dropped > 0 ? `The ${list.length} newest of ${restarts} restarts.` : '');
    syncChildren(restartsList, items, (r) => `${r.timestamp}\u0000${r.n}\u0000${r.cause}`, (r) => {
      const from = r.restored;
      const kind = from && from.kind === 'savepoint' ? 'savepoint' : 'checkpoint';
      return h('li', { testid: 'restart', 'data-restored': from ? String(from.id) : '' },
        h('div', { class: 'restart-head' },
          h('time', {}, fmtTime(r.timestamp)),
          r.n !== null && r.n > 0 ? h('span', { class: 'muted' }, `restart ${r.n}`) : null,
          h('span', { class: 'restart-scope', testid: 'restart-scope' }, scope(r.subtasks)),
          from
            ? h('span', {
              class: 'badge restored', testid: 'restart-restored', title: `restored at ${fmtTime(from.restore_timestamp)}`,
            }, `restored ${kind} ${from.id}`)
            : h('span', { class: 'badge from-start', testid: 'restart-restored' }, 'from the beginning')),
        from && from.external_path ? h('div', { class: 'restart-path' }, pathWithCopy(from.external_path, 'restart-path')) : null,
        cause(r.cause || 'no message'));
    }, () => {});
  }

  function renderHeader(d) {
    text(nameEl, d.name || id);
    document.title = `${d.name || id} · Weir`;
    setStateBadge(stateEl, d.state);
    text(startEl, fmtTime(d['start-time']));
    text(endEl, d['end-time'] > 0 ? fmtTime(d['end-time']) : '—');
    text(durationEl, fmtDuration(jobDuration(d)));
    text(restartsEl, d.restarts ?? '—');
    const running = d.state === 'RUNNING';
    const noCheckpoints = config && config.enabled === false;
    for (const b of [btnCheckpoint, btnSavepoint, btnStop]) {
      b.disabled = !running || noCheckpoints;
      b.title = !running ? 'The job is not running' : noCheckpoints ? 'The job does not checkpoint' : '';
    }
    btnCancel.disabled = !running;
  }

  // ---- Actions ----

  function addResult(label) {
    const textEl = h('span', { class: 'result-text' }, 'in progress…');
    const li = h('li', { testid: 'action-result', 'data-status': 'in-progress' },
      h('span', { class: 'spinner', 'aria-hidden': 'true' }), h('strong', {}, label), ' ', textEl);
    results.prepend(li);
    while (results.children.length > 8) results.lastChild.remove();
    return {
      progress(msg) {
        text(textEl, msg);
      },
      done(...content) {
        li.dataset.status = 'completed';
        textEl.replaceChildren(...content);
      },
      fail(msg) {
        li.dataset.status = 'failed';
        textEl.replaceChildren(h('span', { class: 'error', testid: 'action-failure' }, msg));
      },
    };
  }

  const pendingCheckpoints = new Map(); // checkpoint id -> result entry

  async function runAction(button, label, fn) {
    const entry = addResult(label);
    button.disabled = true;
    try {
      await fn(entry);
    } catch (e) {
      if (e instanceof Unauthorized) return;
      entry.fail(describe(e));
    } finally {
      if (detail) renderHeader(detail);
      else button.disabled = false;
    }
  }

  btnCheckpoint.addEventListener('click', () => runAction(btnCheckpoint, 'Checkpoint', async (entry) => {
    const r = await post(`${base}/checkpoints`);
    const n = r && r['request-id'];
    if (typeof n === 'number') {
      entry.progress(`${n} requested…`);
      pendingCheckpoints.set(n, entry);
      checkpointsPoll.now();
    } else {
      entry.done('requested.');
    }
  }));

  function savepointBody(extra) {
    const body = { formatType: formatSelect.value, ...extra };
    const target = targetInput.value.trim();
    if (target) body.targetDirectory = target;
    return body;
  }

  async function followTrigger(triggerId, entry) {
    for (;;) {
      if (disposed) return;
      let st;
      try {
        st = await get(`${base}/savepoints/${encodeURIComponent(triggerId)}`);
      } catch (e) {
        if (e instanceof Unreachable) {
          entry.progress('waiting for the server…');
          await sleep(1000);
          continue;
        }
        if (e instanceof ApiError && e.status === 404) {
          entry.fail('The server no longer knows this request (its result is kept 5 minutes).');
          return;
        }
        throw e;
      }
      const status = st && st.status && st.status.id;
      if (status === 'COMPLETED') {
        const op = st.operation || {};
        if (op['failure-cause']) {
          entry.fail(op['failure-cause'].message || op['failure-cause'].class || 'failed');
        } else {
          entry.done('completed: ', op.location ? pathWithCopy(op.location, 'savepoint-location') : 'no location');
          savepointsPoll.now();
          checkpointsPoll.now();
        }
        return;
      }
      await sleep(400);
    }
  }

  btnSavepoint.addEventListener('click', () => runAction(btnSavepoint, 'Savepoint', async (entry) => {
    const r = await post(`${base}/savepoints`, savepointBody({}));
    const tid = r && r['request-id'];
    entry.progress('in progress…');
    await followTrigger(tid, entry);
  }));

  btnStop.addEventListener('click', () => runAction(btnStop, drainBox.checked ? 'Stop with savepoint (drain)' : 'Stop with savepoint', async (entry) => {
    const r = await post(`${base}/stop`, savepointBody({ drain: drainBox.checked }));
    const tid = r && r['request-id'];
    entry.progress('in progress…');
    await followTrigger(tid, entry);
    detailPoll.now();
  }));

  btnCancel.addEventListener('click', () => {
    text(confirmText, `Cancel “${detail ? detail.name : id}”? It stops without a savepoint and ends CANCELED; `
      + 'its checkpoints are deleted unless it retains them on cancellation.');
    dialog.showModal();
    confirmNo.focus();
  });
  confirmNo.addEventListener('click', () => dialog.close());
  confirmYes.addEventListener('click', () => {
    dialog.close();
    runAction(btnCancel, 'Cancel', async (entry) => {
      await api('PATCH', `${base}?mode=cancel`);
      entry.done('requested; the job is cancelling.');
      detailPoll.now();
    });
  });

  // ---- Polling ----

  let lastDetailOk = 0;

  function showError(msg) {
    errorEl.textContent = msg;
    errorEl.hidden = !msg;
  }

  const detailPoll = poller(async () => {
    const d = await get(base);
    if (disposed || !d) return;
    detail = d;
    lastDetailOk = Date.now();
    showError('');
    renderHeader(d);
    recover.setJobState(d.state);
    const vertices = d.vertices || [];
    const { vertexLoads, subLoads } = sample(d);
    graph.setPlan(vertices, (d.plan && d.plan.edges) || []);
    graph.setLoad(vertexLoads);
    renderOperators(vertices, subLoads);
    renderCharts(vertices);
    renderExceptions(d.exceptions || []);
    renderRestarts(d['restart-history'] || [], d.restarts);
    detailPoll.setInterval(TERMINAL.has(d.state) ? 3000 : 1000);
  }, 1000, (e) => {
    if (e instanceof Unauthorized || e instanceof Unreachable) return;
    if (e instanceof ApiError && e.status === 404) {
      showError(`There is no job ${id} on this server.`);
      detailPoll.stop();
      checkpointsPoll.stop();
      deadLettersPoll.stop();
      savepointsPoll.stop();
      configPoll.stop();
      return;
    }
    showError(describe(e));
  });

  // The error handler of the poll of one part of the job (a 404 is the detail poll's to show).
  const partError = (what) => (e) => {
    if (e instanceof Unauthorized || e instanceof Unreachable) return;
    if (e instanceof ApiError && e.status === 404) return; // shown by the detail poll
    showError(`${what}: ${describe(e)}`);
  };

  const checkpointsPoll = poller(async () => {
    const stats = await get(`${base}/checkpoints`);
    if (disposed || !stats) return;
    checkpoints.update(stats);
    settleCheckpoints(stats);
    checkpointsPoll.setInterval(detail && TERMINAL.has(detail.state) ? 3000 : 1000);
  }, 1000, partError('Checkpoint statistics'));

  const deadLettersPoll = poller(async () => {
    const r = await get(`${base}/dead-letters`);
    if (disposed || !r) return;
    deadLetters.update(r);
    text(tabLinks.get('dead-letters'), r.total ? `Dead letters (${r.total})` : 'Dead letters');
    deadLettersPoll.setInterval(detail && TERMINAL.has(detail.state) ? 3000 : 1000);
  }, 1000, partError('Dead letters'));

  function settleCheckpoints(stats) {
    const latest = (stats.latest && stats.latest.completed) || null;
    for (const [n, entry] of pendingCheckpoints) {
      const c = (stats.history || []).find((x) => x.id === n) || checkpoints.seen.get(n);
      if (c && c.status === 'COMPLETED') {
        entry.done(`${n} completed.`);
        pendingCheckpoints.delete(n);
      } else if (c && c.status === 'FAILED') {
        entry.fail(`${n} failed: ${c.failure_message || 'no message'}`);
        pendingCheckpoints.delete(n);
      } else if (latest && latest.id > n + 20) {
        entry.done(`${n} is no longer in the history.`);
        pendingCheckpoints.delete(n);
      } else if (detail && TERMINAL.has(detail.state)) {
        entry.fail(`the job ended before checkpoint ${n} completed.`);
        pendingCheckpoints.delete(n);
      }
    }
  }

  const savepointsPoll = poller(async () => {
    const r = await get(`/savepoints?job=${encodeURIComponent(id)}`);
    if (disposed || !r) return;
    checkpoints.setSavepointsError('');
    checkpoints.setSavepoints((r.savepoints || []).filter((sp) => !sp.jobId || sp.jobId === id));
  }, 5000, (e) => {
    if (e instanceof Unauthorized || e instanceof Unreachable) return;
    checkpoints.setSavepointsError(`Could not list the savepoints: ${describe(e)}`);
  });

  const configPoll = poller(async () => {
    const cfg = await get(`${base}/checkpoints/config`);
    if (disposed) return;
    config = cfg;
    checkpoints.setConfig(cfg);
    if (detail) renderHeader(detail);
    configPoll.stop();
  }, 3000, (e) => {
    if (e instanceof ApiError && !(e instanceof Unauthorized)) {
      configPoll.stop();
      if (e.status !== 404) checkpoints.setConfigError(`Could not load the configuration: ${describe(e)}`);
    }
  });

  // The duration of a running job ticks between polls.
  const ticker = setInterval(() => {
    if (detail && !TERMINAL.has(detail.state) && Date.now() - lastDetailOk < 5000) {
      text(durationEl, fmtDuration(jobDuration(detail)));
    }
  }, 250);

  return {
    update(r) {
      showTab(r.tab);
    },
    dispose() {
      disposed = true;
      detailPoll.stop();
      checkpointsPoll.stop();
      deadLettersPoll.stop();
      savepointsPoll.stop();
      configPoll.stop();
      clearInterval(ticker);
      for (const c of charts) c.chart.destroy();
      checkpoints.destroy();
      recover.destroy();
      if (dialog.open) dialog.close();
    },
  };
}

function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}
