// The Dead letters tab of a job (`#/jobs/<id>/dead-letters`): whether the
// dead-letter quarantine is on, how many records it took, and those records
// (`GET /jobs/{id}/dead-letters`, polled by the job page).

import { h, syncChildren, text } from '../dom.js';
import { fmtInt, fmtTime } from '../format.js';

/** A record's key or value: its text, its hex when it is not UTF-8, or a dash. */
function bytes(value, hex) {
  if (typeof value === 'string') return value;
  if (typeof hex === 'string') return h('code', { title: 'not UTF-8: in hex' }, `0x${hex}`);
  return h('span', { class: 'muted' }, '—');
}

/** A figure of the summary: a value over its label. */
function stat(label, testid) {
  return h('div', { class: 'stat' }, h('span', { class: 'value', testid }, '—'), h('span', { class: 'label' }, label));
}

/** The tab's content, in `container`; the job page's poll passes each answer to `update`. */
export class DeadLettersPanel {
  constructor(container) {
    const enabledStat = stat('Quarantine', 'dead-letters-enabled');
    const totalStat = stat('Quarantined records', 'dead-letters-total');
    this.enabledEl = enabledStat.firstChild;
    this.totalEl = totalStat.firstChild;
    this.offEl = h('p', { class: 'hint', testid: 'dead-letters-off', hidden: true },
      'The dead-letter quarantine is off for this job (', h('code', {}, 'weir.dead-letter.enabled'),
      '): a record that makes an operator fail restarts the job.');
    this.emptyEl = h('p', { class: 'empty', testid: 'dead-letters-empty', hidden: true }, 'No record quarantined.');
    this.noteEl = h('p', { class: 'hint', hidden: true });
    this.body = h('tbody', {});
    this.tableWrap = h('div', { class: 'table-wrap', hidden: true },
      h('table', { class: 'data dead-letters', testid: 'dead-letters-table' },
        h('thead', {}, h('tr', {},
          h('th', {}, 'Operator'), h('th', {}, 'Input'), h('th', { class: 'num' }, 'Failures'), h('th', {}, 'Trap message'),
          h('th', {}, 'Key'), h('th', {}, 'Value'), h('th', {}, 'Timestamp'),
          h('th', { class: 'num', title: 'The last checkpoint the subtask had passed when it failed' }, 'After checkpoint'),
          h('th', {}, 'Quarantined'))),
        this.body));
    container.append(h('section', { class: 'card' }, h('h2', {}, 'Dead letters'),
      h('div', { class: 'stats dead-letter-stats', testid: 'dead-letters-summary' }, enabledStat, totalStat),
      this.offEl, this.emptyEl, this.noteEl, this.tableWrap));
  }

  /** The answer of `GET /jobs/{id}/dead-letters`: `{enabled, total, records}`. */
  update(r) {
    const records = r.records || [];
    const total = typeof r.total === 'number' ? r.total : records.length;
    text(this.enabledEl, r.enabled ? 'on' : 'off');
    text(this.totalEl, fmtInt(total));
    this.offEl.hidden = Boolean(r.enabled);
    this.emptyEl.hidden = !r.enabled || total > 0;
    this.noteEl.hidden = total <= records.length;
    text(this.noteEl, total > records.length ? `The first ${records.length} of ${fmtInt(total)} records.` : '');
    this.tableWrap.hidden = records.length === 0;
    syncChildren(this.body, records, (d) => `${d.fingerprint}\u0000${d.operator}\u0000${d.subtask}\u0000${d.time}`,
      (d) => h('tr', { testid: 'dead-letter', 'data-operator': d.operator, 'data-subtask': d.subtask },
        h('td', { testid: 'dead-letter-operator' }, h('code', {}, d.operator), h('span', { class: 'muted', title: 'subtask, counted from 1 as in the CLI' }, `[${d.subtask + 1}]`)),
        h('td', {}, d.input),
        h('td', { class: 'num' }, fmtInt(d.failures)),
        h('td', { class: 'message', testid: 'dead-letter-message' }, d.message),
        h('td', { class: 'bytes', testid: 'dead-letter-key' }, bytes(d.key, d.key_hex)),
        h('td', { class: 'bytes', testid: 'dead-letter-value' }, bytes(d.value, d.value_hex)),
        h('td', { class: 'time', title: typeof d.timestamp === 'number' ? `${d.timestamp} ms` : null }, fmtTime(d.timestamp)),
        h('td', { class: 'num' }, d.checkpoint > 0 ? fmtInt(d.checkpoint) : 'none'),
        h('td', { class: 'time' }, fmtTime(d.time))), () => {});
  }
}
