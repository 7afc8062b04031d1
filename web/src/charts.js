// Time series charts (uPlot) that fit their container.

import uPlot from 'uplot';

import { h } from './dom.js';

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

/** A y range from 0 to a little above the highest value. */
export function zeroUp(u, min, max) {
  return [0, max > 0 ? max * 1.1 : 1];
}

/**
 * The x range (seconds) of a time chart: at least `minSpan` seconds, ending
 * at the newest point. With fewer than two points uPlot proposes a range of
 * its own (a single point gets `86400 / ms` after it: years, for a scale in
 * seconds), so the range is then the last `minSpan` seconds up to now, or,
 * for one point far from now, `minSpan` seconds around that point.
 */
export function xRange(xs, min, max, minSpan, now = Date.now() / 1000) {
  const n = xs ? xs.length : 0;
  if (n < 2) {
    const x = n === 1 ? xs[0] : null;
    if (x !== null && Number.isFinite(x) && (x > now || now - x > minSpan)) {
      return [x - minSpan / 2, x + minSpan / 2];
    }
    return [now - minSpan, now];
  }
  if (min === null || max === null || !Number.isFinite(min) || !Number.isFinite(max)) {
    return [now - minSpan, now];
  }
  return [Math.min(min, max - minSpan), max + (max === min ? 1 : 0)];
}

/**
 * A chart of series over time: `series` is `[{label, color?}]`; `setData`
 * takes `[xs (seconds), ys...]`.
 */
export class Chart {
  constructor(container, {
    title, series, value = (v) => v, axisValue = value, height = 200, testid, points = false, minSpan = 60, yRange = null,
  }) {
    this.el = h('div', { class: 'chart', testid });
    this.plotEl = h('div', { class: 'chart-plot' });
    this.el.append(h('h3', {}, title), this.plotEl);
    container.append(this.el);
    this.height = height;
    this.data = [[], ...series.map(() => [])];
    const fmt = (u, v) => (v === null || v === undefined ? '—' : value(v));
    this.plot = new uPlot({
      width: this.width(),
      height,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // At least `minSpan` seconds, ending at the newest point.
        x: {
          time: true,
          range: (u, min, max) => xRange(u.data && u.data[0], min, max, minSpan),
        },
        y: yRange ? { range: yRange } : {},
      },
      axes: [
        { stroke: '#555', grid: { stroke: '#eee' } },
        { stroke: '#555', grid: { stroke: '#eee' }, size: 64, values: (u, vals) => vals.map((v) => axisValue(v)) },
      ],
      series: [
        {},
        ...series.map((s, i) => ({
          label: s.label,
          stroke: s.color || PALETTE[i % PALETTE.length],
          width: 1.5,
          value: fmt,
          points: { show: points },
          spanGaps: false,
        })),
      ],
    }, this.data, this.plotEl);
    this.frame = 0;
    this.observer = new ResizeObserver(() => {
      cancelAnimationFrame(this.frame);
      this.frame = requestAnimationFrame(() => this.fit());
    });
    this.observer.observe(this.el);
  }

  width() {
    return Math.max(200, Math.floor(this.el.clientWidth || 600));
  }

  fit() {
    const w = this.el.clientWidth;
    if (w > 0 && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: Math.floor(w), height: this.height });
  }

  setData(data) {
    this.data = data;
    this.plot.setData(data);
  }

  destroy() {
    this.observer.disconnect();
    cancelAnimationFrame(this.frame);
    this.plot.destroy();
    this.el.remove();
  }
}
