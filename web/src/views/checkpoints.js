// The Checkpoints tab of a job: counts, the latest snapshots, the history
// (rows expand into per-subtask times), charts and min/avg/max of duration
// and size, the job's savepoints, and how the job checkpoints.

import { api, describe, get, ApiError, Unauthorized } from '../api.js';
import { Chart, zeroUp } from '../charts.js';
import { h, pathWithCopy, syncChildren, syncTbodies, text } from '../dom.js';
import { fmtBytes, fmtClock, fmtInt, fmtMs, fmtTime } from '../format.js';

const KEEP = 500; // checkpoints remembered while the page is open
const SHOWN = 50; // rows of the history table

/** The longest start delay of a completed checkpoint's subtasks (null: none reported). */
export function maxStartDelay(c) {
  let max = null;
  for (const st of c.subtasks || []) {
    if (typeof st.start_delay === 'number' && (max === null || st.start_delay > max)) max = st.start_delay;
  }
  return max;
}

/** Whether a checkpoint went unaligned (older servers send neither field: no). */
export function isUnaligned(c) {
  return c.unaligned === true || c.checkpoint_type === 'UNALIGNED_CHECKPOINT';
}

/** Bytes of in-flight data, 0 when an older server does not report them. */
const inflight = (v) => fmtBytes(typeof v === 'number' ? v : 0);

function stat(values) {
  values = values.filter((v) => typeof v === 'number' && !Number.isNaN(v));
  if (!values.length) return { min: null, avg: null, max: null };
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
  }
  return { min, avg: sum / values.length, max };
}

export class CheckpointsPanel {
  constructor(container, jobId, onSavepointsChanged) {
    this.jobId = jobId;
    this.seen = new Map(); // id -> history entry, all seen while open
    this.expanded = new Set();
    this.onSavepointsChanged = onSavepointsChanged;

    this.countsEl = h('div', { class: 'stats', testid: 'checkpoint-counts' });
    this.latestBody = h('tbody', {});
    this.summaryBody = h('tbody', {});
    this.table = h('table', { class: 'data history', testid: 'checkpoint-history' },
      h('thead', {}, h('tr', {},
        h('th', { class: 'toggle' }, ''), h('th', { class: 'num' }, 'Id'), h('th', {}, 'Status'), h('th', {}, 'Kind'),
        h('th', {}, 'Triggered'), h('th', { class: 'num' }, 'End to end'),
        h('th', { class: 'num' }, 'Checkpointed size'), h('th', { class: 'num' }, 'Full size'),
        h('th', { class: 'num', title: 'Bytes the subtasks processed while aligning, over all subtasks' }, 'Processed in-flight'),
        h('th', { class: 'num', title: 'Bytes of in-flight records an unaligned checkpoint stored, over all subtasks' }, 'Persisted in-flight'),
        h('th', { class: 'num', title: 'Subtasks that acknowledged the checkpoint, of all' }, 'Acknowledged'))));
    this.historyNote = h('p', { class: 'hint' });
    this.historyEmpty = h('p', { class: 'empty' }, 'No checkpoint yet.');
    this.savepointsBody = h('tbody', {});
    this.savepointsEmpty = h('p', { class: 'empty' }, 'No savepoint of this job yet.');
    this.savepointsError = h('p', { class: 'error', hidden: true });
    this.configEl = h('div', { testid: 'checkpoint-config' }, h('p', { class: 'muted' }, 'Loading…'));
    this.chartsEl = h('div', { class: 'charts' });

    container.append(
      h('section', { class: 'card' }, h('h2', {}, 'Counts'), this.countsEl),
      h('section', { class: 'card' }, h('h2', {}, 'Latest'),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data latest', testid: 'checkpoint-latest' },
          h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', { class: 'num' }, 'Id'), h('th', {}, 'Time'),
            h('th', {}, 'Path'))), this.latestBody))),
      h('section', { class: 'card' }, h('h2', {}, 'History'), this.historyNote,
        h('div', { class: 'table-wrap' }, this.table), this.historyEmpty),
      h('section', { class: 'card' }, h('h2', {}, 'Duration and size'),
        h('div', { class: 'table-wrap' }, h('table', { class: 'data summary', testid: 'checkpoint-summary' },
          h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', { class: 'num' }, 'Min'), h('th', { class: 'num' }, 'Average'),
            h('th', { class: 'num' }, 'Max'))), this.summaryBody)),
        this.chartsEl),
      h('section', { class: 'card' }, h('h2', {}, 'Savepoints of this job'), this.savepointsError,
        this.savepointsTable = h('div', { class: 'table-wrap', hidden: true }, h('table', { class: 'data', testid: 'job-savepoints' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Path'), h('th', { class: 'num' }, 'Checkpoint'), h('th', {}, 'Taken'),
            h('th', { class: 'num' }, 'Size'), h('th', {}, 'Format'), h('th', {}, ''))), this.savepointsBody)),
        this.savepointsEmpty),
      h('section', { class: 'card' }, h('h2', {}, 'Configuration'), this.configEl),
    );

    this.table.addEventListener('click', (e) => {
      if (e.target.closest('button, a, code')) return;
      const row = e.target.closest('tr[data-testid="checkpoint-row"]');
      if (row) this.toggle(Number(row.dataset.id));
    });
    this.table.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' && e.key !== ' ') return;
      const row = e.target.closest('tr[data-testid="checkpoint-row"]');
      if (row) {
        e.preventDefault();
        this.toggle(Number(row.dataset.id));
      }
    });

    this.durationChart = null;
    this.sizeChart = null;
  }

  toggle(id) {
    if (this.expanded.has(id)) this.expanded.delete(id);
    else this.expanded.add(id);
    this.renderHistory();
  }

  /** New statistics from `GET /jobs/{id}/checkpoints`. */
  update(stats) {
    this.stats = stats;
    for (const c of stats.history || []) this.seen.set(c.id, c);
    for (const c of Object.values(stats.latest || {})) {
      if (c && typeof c.id === 'number' && c.status) this.seen.set(c.id, c);
    }
    if (this.seen.size > KEEP) {
      const ids = [...this.seen.keys()].sort((a, b) => a - b);
      for (const id of ids.slice(0, this.seen.size - KEEP)) this.seen.delete(id);
    }
    this.renderCounts();
    this.renderLatest();
    this.renderHistory();
    this.renderSummary();
  }

  renderCounts() {
    const c = (this.stats && this.stats.counts) || {};
    // As Flink shows them; `total` is every checkpoint triggered (completed,
    // failed and in progress).
    const items = [['total', 'Triggered'], ['in_progress', 'In progress'], ['completed', 'Completed'],
      ['failed', 'Failed'], ['restored', 'Restored']];
    syncChildren(this.countsEl, items, ([k]) => k, ([k, label]) => h('div', { class: 'stat', 'data-count': k },
      h('span', { class: 'value' }), h('span', { class: 'label' }, label)), (el, [k]) => {
      text(el.firstChild, typeof c[k] === 'number' ? fmtInt(c[k]) : '—');
    });
  }

  renderLatest() {
    const l = (this.stats && this.stats.latest) || {};
    const rows = [
      ['completed', 'Completed checkpoint', l.completed, (x) => x.latest_ack_timestamp ?? x.trigger_timestamp],
      ['savepoint', 'Savepoint', l.savepoint, (x) => x.latest_ack_timestamp ?? x.trigger_timestamp],
      ['failed', 'Failed', l.failed, (x) => x.failure_timestamp ?? x.trigger_timestamp],
      ['restored', 'Restored', l.restored, (x) => x.restore_timestamp],
    ];
    syncChildren(this.latestBody, rows, ([k]) => k, ([k, label]) => h('tr', { testid: `latest-${k}` },
      h('th', { scope: 'row' }, label), h('td', { class: 'num' }), h('td', {}), h('td', { class: 'path-cell' })), (tr, [, , x, time]) => {
      const sig = JSON.stringify(x ?? null);
      if (tr._sig === sig) return;
      tr._sig = sig;
      if (!x) {
        text(tr.cells[1], '—');
        text(tr.cells[2], '—');
        tr.cells[3].replaceChildren('none');
        tr.classList.add('none');
        return;
      }
      tr.classList.remove('none');
      text(tr.cells[1], x.id);
      text(tr.cells[2], fmtTime(time(x)));
      const parts = [];
      if (x.external_path) parts.push(pathWithCopy(x.external_path, 'external-path'));
      if (x.failure_message) parts.push(h('span', { class: 'error' }, x.failure_message));
      if (x.is_savepoint && !x.external_path) parts.push(h('span', { class: 'badge savepoint' }, 'savepoint'));
      tr.cells[3].replaceChildren(...(parts.length ? parts : ['—']));
    });
  }

  renderHistory() {
    const all = [...this.seen.values()].sort((a, b) => b.id - a.id);
    const shown = all.slice(0, SHOWN);
    this.historyEmpty.hidden = all.length > 0;
    this.table.hidden = all.length === 0;
    text(this.historyNote, all.length > shown.length
      ? `The ${shown.length} newest of ${all.length} seen since this page opened (the server keeps the last 10 completed and 10 failed). Click a row for its subtasks.`
      : 'Newest first; click a row for its subtasks. Rows the server has since dropped stay while this page is open.');
    // One <tbody> per checkpoint: its row, then its subtasks when expanded.
    syncTbodies(this.table, shown, (c) => c.id, (c) => this.createRow(c), (body, c) => this.updateRow(body, c));
  }

  createRow(c) {
    const tr = h('tr', { testid: 'checkpoint-row', 'data-id': c.id, tabindex: 0, class: 'expandable' },
      h('td', { class: 'toggle' }, h('span', { class: 'caret', 'aria-hidden': 'true' })),
      h('td', { class: 'num' }), h('td', {}), h('td', {}), h('td', {}),
      h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' }),
      h('td', { class: 'num', testid: 'checkpoint-processed' }), h('td', { class: 'num', testid: 'checkpoint-persisted' }),
      h('td', { class: 'num' }));
    return h('tbody', {}, tr);
  }

  updateRow(body, c) {
    const tr = body.rows[0];
    const open = this.expanded.has(c.id);
    const sig = `${JSON.stringify(c)}|${open}`;
    if (body._sig === sig) return;
    body._sig = sig;
    tr.dataset.status = c.status;
    tr.setAttribute('aria-expanded', String(open));
    tr.classList.toggle('open', open);
    tr.classList.toggle('failed', c.status === 'FAILED');
    text(tr.cells[1], c.id);
    tr.cells[2].replaceChildren(h('span', { class: `badge status-${String(c.status).toLowerCase()}` }, c.status));
    const savepoint = c.is_savepoint || c.checkpoint_type === 'SAVEPOINT';
    tr.cells[3].replaceChildren(
      savepoint ? h('span', { class: 'badge savepoint', testid: 'savepoint-marker' }, 'savepoint') : 'checkpoint',
      isUnaligned(c) ? h('span', { class: 'badge unaligned', testid: 'unaligned-marker' }, 'unaligned') : '',
      c.is_final ? h('span', { class: 'badge final' }, 'final') : '');
    text(tr.cells[4], fmtClock(c.trigger_timestamp));
    tr.cells[4].title = fmtTime(c.trigger_timestamp);
    if (c.status === 'FAILED') {
      text(tr.cells[5], '—');
      text(tr.cells[6], '—');
      text(tr.cells[7], '—');
      text(tr.cells[8], '—');
      text(tr.cells[9], '—');
      text(tr.cells[10], '—');
    } else {
      text(tr.cells[5], fmtMs(c.end_to_end_duration));
      text(tr.cells[6], fmtBytes(c.checkpointed_size));
      text(tr.cells[7], fmtBytes(c.state_size));
      text(tr.cells[8], inflight(c.processed_data));
      text(tr.cells[9], inflight(c.persisted_data));
      const n = c.num_subtasks ?? (c.subtasks || []).length;
      text(tr.cells[10], `${n}/${n}`);
    }
    while (body.rows.length > 1) body.rows[1].remove();
    if (!open) return;
    const cols = tr.cells.length;
    if (c.status === 'FAILED') {
      body.append(h('tr', { class: 'detail' }, h('td', {}), h('td', { colspan: cols - 1 },
        h('p', { class: 'error' }, `Failed at ${fmtTime(c.failure_timestamp)}: ${c.failure_message || 'no message'}`))));
      return;
    }
    const subtasks = c.subtasks || [];
    body.append(h('tr', { class: 'detail' }, h('td', {}), h('td', { colspan: cols - 1 },
      h('table', { class: 'data subtasks' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Node'), h('th', { class: 'num' }, 'Subtask'),
          h('th', { class: 'num', title: 'From the trigger to the first barrier reaching the subtask' }, 'Start delay'),
          h('th', { class: 'num' }, 'Alignment'), h('th', { class: 'num' }, 'Sync'), h('th', { class: 'num' }, 'Async'),
          h('th', { class: 'num', title: 'Bytes the subtask processed while aligning' }, 'Processed in-flight'),
          h('th', { class: 'num', title: 'Bytes of in-flight records the subtask stored' }, 'Persisted in-flight'),
          h('th', { title: 'Whether the subtask took the checkpoint unaligned' }, 'Unaligned'))),
        h('tbody', {}, subtasks.map((st) => {
          const a = st.alignment || {};
          return h('tr', { testid: 'subtask-row' },
            h('td', {}, st.vertex), h('td', { class: 'num' }, st.index),
            h('td', { class: 'num', testid: 'subtask-start-delay' }, fmtMs(st.start_delay)),
            h('td', { class: 'num' }, fmtMs(st.alignment_duration ?? a.duration)),
            h('td', { class: 'num' }, fmtMs(st.sync_duration)), h('td', { class: 'num' }, fmtMs(st.async_duration)),
            h('td', { class: 'num', testid: 'subtask-processed' }, inflight(a.processed)),
            h('td', { class: 'num', testid: 'subtask-persisted' }, inflight(a.persisted)),
            h('td', { testid: 'subtask-unaligned' }, st.unaligned_checkpoint ? 'yes' : 'no'));
        }))),
      h('p', { class: 'hint' },
        `Acknowledged ${fmtClock(c.latest_ack_timestamp)}; max start delay ${fmtMs(maxStartDelay(c))}, `
        + `max alignment ${fmtMs(c.max_alignment_duration)}, max sync ${fmtMs(c.max_sync_duration)}, `
        + `max async ${fmtMs(c.max_async_duration)}; in-flight data processed ${inflight(c.processed_data)}, `
        + `persisted ${inflight(c.persisted_data)}.`))));
  }

  renderSummary() {
    const done = [...this.seen.values()].filter((c) => c.status === 'COMPLETED').sort((a, b) => a.id - b.id);
    const rows = [
      ['End to end duration', stat(done.map((c) => c.end_to_end_duration)), fmtMs],
      ['Checkpointed size', stat(done.map((c) => c.checkpointed_size)), fmtBytes],
      ['Full size', stat(done.map((c) => c.state_size)), fmtBytes],
      ['Start delay (longest subtask)', stat(done.map(maxStartDelay)), fmtMs],
      ['Processed in-flight data', stat(done.map((c) => c.processed_data ?? 0)), fmtBytes],
      ['Persisted in-flight data', stat(done.map((c) => c.persisted_data ?? 0)), fmtBytes],
    ];
    syncChildren(this.summaryBody, rows, ([l]) => l, ([l]) => h('tr', { 'data-row': l }, h('th', { scope: 'row' }, l),
      h('td', { class: 'num' }), h('td', { class: 'num' }), h('td', { class: 'num' })), (tr, [, st, f]) => {
      text(tr.cells[1], st.min === null ? '—' : f(st.min));
      text(tr.cells[2], st.avg === null ? '—' : f(st.avg));
      text(tr.cells[3], st.max === null ? '—' : f(st.max));
    });
    if (!this.durationChart) {
      this.durationChart = new Chart(this.chartsEl, {
        title: 'End to end duration', testid: 'chart-checkpoint-duration', points: true,
        series: [{ label: 'duration' }], value: (v) => fmtMs(v), minSpan: 5, yRange: zeroUp,
      });
      this.sizeChart = new Chart(this.chartsEl, {
        title: 'Size', testid: 'chart-checkpoint-size', points: true,
        series: [{ label: 'checkpointed' }, { label: 'full' }], value: (v) => fmtBytes(v), minSpan: 5, yRange: zeroUp,
      });
    }
    this.chartsEl.hidden = done.length === 0;
    const xs = done.map((c) => c.trigger_timestamp / 1000);
    this.durationChart.setData([xs, done.map((c) => c.end_to_end_duration)]);
    this.sizeChart.setData([xs, done.map((c) => c.checkpointed_size), done.map((c) => c.state_size)]);
  }

  /** The job's savepoints from `GET /savepoints?job=ID`. */
  setSavepoints(list) {
    const sorted = [...list].sort((a, b) => (b.timestamp || 0) - (a.timestamp || 0));
    this.savepointsEmpty.hidden = sorted.length > 0;
    this.savepointsTable.hidden = sorted.length === 0;
    syncChildren(this.savepointsBody, sorted, (sp) => sp.path, (sp) => {
      const dispose = h('button', { type: 'button', class: 'danger small', testid: 'savepoint-dispose' }, 'Dispose');
      let armed = null;
      dispose.addEventListener('click', () => {
        if (!armed) {
          dispose.textContent = 'Really delete?';
          armed = setTimeout(() => { armed = null; dispose.textContent = 'Dispose'; }, 4000);
          return;
        }
        clearTimeout(armed);
        armed = null;
        this.dispose(sp.path, dispose);
      });
      return h('tr', { testid: 'job-savepoint' },
        h('td', { class: 'path-cell' }, pathWithCopy(sp.path, 'savepoint-path')),
        h('td', { class: 'num' }, sp.checkpointId), h('td', {}, fmtTime(sp.timestamp)),
        h('td', { class: 'num' }, fmtBytes(sp.size)), h('td', {}, sp.format), h('td', {}, dispose));
    }, () => {});
  }

  async dispose(path, button) {
    button.disabled = true;
    button.textContent = 'Disposing…';
    this.savepointsError.hidden = true;
    try {
      const r = await api('POST', '/savepoint-disposal', { savepointPath: path });
      const tid = r && r['request-id'];
      if (tid) {
        const st = await get(`/savepoint-disposal/${encodeURIComponent(tid)}`);
        const cause = st && st.operation && st.operation['failure-cause'];
        if (cause) throw new ApiError(400, [cause.message || 'the disposal failed']);
      }
      this.onSavepointsChanged();
    } catch (e) {
      if (e instanceof Unauthorized) return;
      this.savepointsError.textContent = `Could not dispose of ${path}: ${describe(e)}`;
      this.savepointsError.hidden = false;
      button.disabled = false;
      button.textContent = 'Dispose';
    }
  }

  setSavepointsError(message) {
    this.savepointsError.textContent = message;
    this.savepointsError.hidden = !message;
  }

  setConfigError(message) {
    this.configEl.replaceChildren(h('p', { class: 'error' }, message));
  }

  /** The answer of `GET /jobs/{id}/checkpoints/config`. */
  setConfig(cfg) {
    if (!cfg || cfg.enabled === false) {
      this.configEl.replaceChildren(h('p', {}, 'This job does not checkpoint (no ',
        h('code', {}, 'execution.checkpointing.interval'), ').'));
      return;
    }
    const ms = (v) => (typeof v === 'number' ? fmtMs(v) : String(v));
    const known = [
      ['mode', 'Mode', (v) => String(v).replace(/_/g, ' ')],
      ['interval', 'Interval', ms],
      ['timeout', 'Timeout', ms],
      ['min_pause', 'Minimum pause', ms],
      ['max_concurrent', 'Max concurrent', String],
      ['tolerable_failed_checkpoints', 'Tolerable failed checkpoints', String],
      ['num_retained', 'Retained checkpoints', String],
      ['checkpoint_storage', 'Checkpoint storage', String],
      ['state_backend', 'State backend', String],
      ['unaligned_checkpoints', 'Unaligned checkpoints', (v) => (v === true ? 'enabled' : v === false ? 'disabled' : String(v))],
      ['unaligned_checkpoints_forced', 'Unaligned checkpoints forced', (v) => (v === true ? 'yes' : v === false ? 'no' : String(v))],
      ['aligned_checkpoint_timeout', 'Aligned checkpoint timeout', ms],
      ['externalization', 'Externalized', (v) => (v && typeof v === 'object'
        ? `${v.enabled ? 'enabled' : 'disabled'}${v.delete_on_cancellation ? ', deleted on cancellation' : ', kept on cancellation'}`
        : String(v))],
    ];
    const rows = [];
    const done = new Set(['enabled']);
    for (const [k, label, f] of known) {
      if (k in cfg) {
        rows.push([label, f(cfg[k])]);
        done.add(k);
      }
    }
    for (const [k, v] of Object.entries(cfg)) {
      if (!done.has(k)) rows.push([k, typeof v === 'object' ? JSON.stringify(v) : String(v)]);
    }
    this.configEl.replaceChildren(h('table', { class: 'data kv' }, h('tbody', {},
      rows.map(([k, v]) => h('tr', { 'data-key': k }, h('th', { scope: 'row' }, k), h('td', {}, v))))));
  }

  destroy() {
    if (this.durationChart) this.durationChart.destroy();
    if (this.sizeChart) this.sizeChart.destroy();
  }
}
