// The job graph: nodes and edges laid out by dagre, drawn as SVG, each node
// coloured by how its subtasks spend their time, as Flink colours them:
// idle blue, busy red, backpressured black, and shades between.

import dagre from '@dagrejs/dagre';

import { h, s, text } from '../dom.js';
import { fmtPct, fmtRate } from '../format.js';

const IDLE = [66, 133, 214];
const BUSY = [214, 39, 40];
const BACKPRESSURED = [0, 0, 0];
const NO_DATA = '#dde3ea';

/**
 * The fill and text colour of a node whose busiest subtask is `busy` and
 * most backpressured one `backpressured` (fractions of time), the rest
 * idle: a mix of the three colours in those proportions.
 */
export function loadColor(busy, backpressured) {
  if (busy === null || busy === undefined || Number.isNaN(busy)) return { fill: NO_DATA, ink: '#1d2733' };
  let b = Math.min(1, Math.max(0, busy));
  let p = Math.min(1, Math.max(0, backpressured || 0));
  if (b + p > 1) {
    const sum = b + p;
    b /= sum;
    p /= sum;
  }
  const i = 1 - b - p;
  const c = [0, 1, 2].map((k) => Math.round(IDLE[k] * i + BUSY[k] * b + BACKPRESSURED[k] * p));
  const luminance = (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) / 255;
  return { fill: `rgb(${c[0]}, ${c[1]}, ${c[2]})`, ink: luminance > 0.55 ? '#10161d' : '#ffffff' };
}

// A smooth path through dagre's points (d3's curveBasis).
function basisPath(points) {
  let x0 = 0;
  let y0 = 0;
  let x1 = 0;
  let y1 = 0;
  let n = 0;
  let d = '';
  const f = (v) => Math.round(v * 10) / 10;
  const bezier = (x, y) => {
    d += `C${f((2 * x0 + x1) / 3)},${f((2 * y0 + y1) / 3)} ${f((x0 + 2 * x1) / 3)},${f((y0 + 2 * y1) / 3)} `
      + `${f((x0 + 4 * x1 + x) / 6)},${f((y0 + 4 * y1 + y) / 6)}`;
  };
  for (const { x, y } of points) {
    if (n === 0) d += `M${f(x)},${f(y)}`;
    else if (n === 2) {
      d += `L${f((5 * x0 + x1) / 6)},${f((5 * y0 + y1) / 6)}`;
      bezier(x, y);
    } else if (n > 2) bezier(x, y);
    n++;
    x0 = x1;
    y0 = y1;
    x1 = x;
    y1 = y;
  }
  if (n === 2) d += `L${f(x1)},${f(y1)}`;
  else if (n > 2) {
    bezier(x1, y1);
    d += `L${f(x1)},${f(y1)}`;
  }
  return d;
}

const CHAR_W = 7.4;

/**
 * The label of an edge: its partitioning, the input of the node it feeds
 * when that is not the first, and the side output it carries (`null` for
 * the main output), and whether it is chained, e.g. `hash · side output
 * late` or `forward · chained`.
 */
export function edgeLabel(e) {
  const parts = [e.input && e.input !== 1 ? `${e.partition} → input ${e.input}` : String(e.partition || '')];
  const tag = e['side-output'];
  if (tag !== null && tag !== undefined) parts.push(`side output ${tag}`);
  // Chained: both ends run in one thread, with no channel between them.
  if (e.chained) parts.push('chained');
  return parts.filter(Boolean).join(' · ');
}

export class JobGraph {
  constructor(container) {
    this.el = h('div', { class: 'graph', testid: 'graph' });
    container.append(this.el);
    this.signature = '';
    this.nodes = new Map(); // id -> { g, rect, title, lines }
  }

  /** Lays the graph out again if its nodes or edges changed. */
  setPlan(vertices, edges) {
    const sig = JSON.stringify([
      vertices.map((v) => [v.id, v.kind, v.parallelism]),
      edges.map((e) => [e.from, e.to, e.partition, e.input, e['side-output'] ?? null, !!e.chained]),
    ]);
    if (sig === this.signature) return;
    this.signature = sig;
    this.draw(vertices, edges);
  }

  draw(vertices, edges) {
    const g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: 'LR', nodesep: 28, ranksep: 80, edgesep: 16, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const v of vertices) {
      const longest = Math.max(String(v.id).length + 1, `${v.kind} x${v.parallelism}`.length, 'busy 100% bp 100%'.length);
      g.setNode(v.id, { width: Math.max(130, Math.ceil(longest * CHAR_W) + 24), height: 62, vertex: v });
    }
    edges.forEach((e, i) => {
      if (!g.hasNode(e.from) || !g.hasNode(e.to)) return;
      const label = edgeLabel(e);
      const side = e['side-output'] ?? null;
      g.setEdge(e.from, e.to, { label, side, width: label.length * 6.6 + 8, height: 16, labelpos: 'c' }, `e${i}`);
    });
    dagre.layout(g);
    const { width, height } = g.graph();

    const svg = s('svg', {
      class: 'graph-svg', viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`,
      width: Math.ceil(width), height: Math.ceil(height), role: 'img', 'aria-label': 'Job graph',
    });
    svg.append(s('defs', {}, s('marker', {
      id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse',
    }, s('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#6b7785' }))));

    for (const ref of g.edges()) {
      const e = g.edge(ref);
      // An edge that carries a side output is dashed.
      svg.append(s('g', {
        class: e.side !== null ? 'edge side-output' : 'edge', testid: 'graph-edge', 'data-from': ref.v, 'data-to': ref.w,
        'data-side-output': e.side,
      },
        s('path', { d: basisPath(e.points), 'marker-end': 'url(#arrow)' }),
        s('title', {}, `${ref.v} → ${ref.w}: ${e.label}`),
        e.label ? s('text', { x: e.x, y: e.y + 4, 'text-anchor': 'middle', class: 'edge-label' }, e.label) : null));
    }

    this.nodes.clear();
    for (const id of g.nodes()) {
      const n = g.node(id);
      const v = n.vertex;
      const x = n.x - n.width / 2;
      const y = n.y - n.height / 2;
      const rect = s('rect', { x, y, width: n.width, height: n.height, rx: 6, ry: 6, fill: NO_DATA });
      const title = s('title', {}, v.id);
      const name = s('text', { x: n.x, y: y + 19, 'text-anchor': 'middle', class: 'node-id' }, v.id);
      const info = s('text', { x: n.x, y: y + 36, 'text-anchor': 'middle', class: 'node-info' }, `${v.kind} x${v.parallelism}`);
      const load = s('text', { x: n.x, y: y + 52, 'text-anchor': 'middle', class: 'node-load' }, '');
      const group = s('g', { class: `node node-${v.kind}`, testid: 'graph-node', 'data-id': v.id }, title, rect, name, info, load);
      svg.append(group);
      this.nodes.set(v.id, { group, rect, title, name, info, load, vertex: v });
    }
    this.el.replaceChildren(svg);
  }

  /**
   * Colours the nodes: `loads` maps a node id to `{busy, backpressured,
   * idle, avgBusy, avgBackpressured, inRate, outRate}` (fractions; null
   * before there are two samples).
   */
  setLoad(loads) {
    for (const [id, n] of this.nodes) {
      const l = loads.get(id);
      const has = l && l.busy !== null && l.busy !== undefined;
      const { fill, ink } = loadColor(has ? l.busy : null, has ? l.backpressured : null);
      if (n.rect.getAttribute('fill') !== fill) n.rect.setAttribute('fill', fill);
      for (const t of [n.name, n.info, n.load]) {
        if (t.getAttribute('fill') !== ink) t.setAttribute('fill', ink);
      }
      const v = n.vertex;
      if (has) {
        text(n.load, `busy ${fmtPct(l.busy)} bp ${fmtPct(l.backpressured)}`);
        text(n.title, [
          `${v.id} (${v.kind}, uid ${v.uid}, parallelism ${v.parallelism})`,
          `busy: max ${fmtPct(l.busy)}, avg ${fmtPct(l.avgBusy)}`,
          `backpressured: max ${fmtPct(l.backpressured)}, avg ${fmtPct(l.avgBackpressured)}`,
          `idle: min ${fmtPct(l.idle)}`,
          `records in: ${fmtRate(l.inRate)}/s, out: ${fmtRate(l.outRate)}/s`,
        ].join('\n'));
      } else {
        text(n.load, '');
        text(n.title, `${v.id} (${v.kind}, uid ${v.uid}, parallelism ${v.parallelism})\nno load figures yet`);
      }
    }
  }
}
