// Small DOM helpers: element creation and keyed, in-place list updates (so
// that polling never replaces a row a user is about to click).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') {
      el[k] = v;
    } else if (k === 'testid') {
      el.setAttribute('data-testid', v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

/** An HTML element: `h('a', {href: '#/', testid: 'x'}, 'text', child)`. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, like `h`. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Sets `el`'s text only if it changed (keeps selections steady). */
export function text(el, value) {
  const t = value === undefined || value === null ? '' : String(value);
  if (el.textContent !== t) el.textContent = t;
}

/**
 * Makes the children of `parent` one element per item, in order: existing
 * elements (by key) are kept and updated, new ones created, others removed.
 */
export function syncChildren(parent, items, key, create, update) {
  const old = new Map();
  for (const el of [...parent.children]) {
    if (el._key === undefined) el.remove();
    else old.set(el._key, el);
  }
  const keep = new Set();
  let i = 0;
  for (const item of items) {
    const k = key(item);
    let el = old.get(k);
    if (!el) {
      el = create(item);
      el._key = k;
    }
    update(el, item);
    keep.add(el);
    const at = parent.children[i];
    if (at !== el) parent.insertBefore(el, at || null);
    i++;
  }
  for (const el of old.values()) if (!keep.has(el)) el.remove();
}

/** `syncChildren` over the `<tbody>` elements of a table, after its `<thead>`. */
export function syncTbodies(table, items, key, create, update) {
  const old = new Map();
  for (const b of [...table.tBodies]) {
    if (b._key === undefined) b.remove();
    else old.set(b._key, b);
  }
  const keep = new Set();
  let prev = table.tHead;
  for (const item of items) {
    const k = key(item);
    let b = old.get(k);
    if (!b) {
      b = create(item);
      b._key = k;
    }
    update(b, item);
    keep.add(b);
    if (prev.nextSibling !== b) prev.after(b);
    prev = b;
  }
  for (const b of old.values()) if (!keep.has(b)) b.remove();
}

/** Copies `value` to the clipboard; resolves to whether it worked. */
export async function copyText(value) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(value);
      return true;
    }
  } catch {
    // fall back below
  }
  try {
    const area = h('textarea', { class: 'offscreen', readonly: true }, value);
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    return ok;
  } catch {
    return false;
  }
}

/** A path with a copy button. */
export function pathWithCopy(path, testid) {
  const btn = h('button', { type: 'button', class: 'copy', title: 'Copy the path' }, 'Copy');
  btn.addEventListener('click', () => {
    copyText(path).then((ok) => {
      btn.textContent = ok ? 'Copied' : 'Copy failed';
      setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
    });
  });
  return h('span', { class: 'path' }, h('code', { testid }, path), btn);
}
