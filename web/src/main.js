// The Weir dashboard: a single page with hash routes.
//
//   #/               jobs, bundles and uploads
//   #/submit         submit a job spec
//   #/jobs/<id>      a job (tabs: /checkpoints, /exceptions, /dead-letters,
//                    /recover)
//
// The token comes with the address (`#token=...`, as `weir serve` prints
// it) or from the login form; it is kept in sessionStorage.

import 'uplot/dist/uPlot.min.css';
import './style.css';

import {
  clearToken, getToken, get, isReachable, onReachability, onUnauthorized, setToken,
  takeTokenFromHash, describe, Unauthorized, Unreachable,
} from './api.js';
import { h } from './dom.js';
import { overviewView } from './views/overview.js';
import { submitView } from './views/submit.js';
import { jobView } from './views/job.js';

const banner = h('div', { class: 'banner unreachable', testid: 'unreachable', role: 'alert', hidden: true },
  'Server unreachable — retrying…');
const nav = h('nav', { class: 'nav' },
  h('a', { href: '#/', 'data-route': 'overview' }, 'Overview'),
  h('a', { href: '#/submit', 'data-route': 'submit' }, 'Submit job'));
const logout = h('button', { type: 'button', class: 'link logout', testid: 'logout' }, 'Log out');
const header = h('header', { class: 'topbar' },
  h('a', { class: 'brand', href: '#/' }, h('span', { class: 'logo', 'aria-hidden': 'true' }, '≋'), 'Weir'),
  nav, logout);
const main = h('main', { id: 'view' });
document.body.append(header, banner, main);

let current = null; // { key, dispose(), update?(route) }
let loginMessage = '';

function parseRoute() {
  const raw = location.hash.replace(/^#/, '').split('?')[0] || '/';
  const parts = raw.split('/').filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0) return { name: 'overview', key: 'overview' };
  if (parts[0] === 'submit') return { name: 'submit', key: 'submit' };
  if (parts[0] === 'jobs' && parts[1]) {
    return { name: 'job', key: `job:${parts[1]}`, id: parts[1], tab: parts[2] || 'overview' };
  }
  return { name: 'notfound', key: `notfound:${raw}` };
}

function unmount() {
  if (current) {
    try {
      current.dispose();
    } catch {
      // a view that fails to clean up must not block the next one
    }
    current = null;
  }
  main.replaceChildren();
}

function setActiveNav(name) {
  for (const a of nav.querySelectorAll('a')) {
    a.classList.toggle('active', a.dataset.route === name);
  }
}

function route() {
  if (takeTokenFromHash()) loginMessage = '';
  if (!getToken()) {
    showLogin();
    return;
  }
  logout.hidden = false;
  nav.hidden = false;
  const r = parseRoute();
  setActiveNav(r.name);
  if (current && current.key === r.key && current.update) {
    current.update(r);
    return;
  }
  unmount();
  const root = h('div', { class: 'view' });
  main.append(root);
  switch (r.name) {
    case 'overview':
      current = overviewView(root);
      document.title = 'Weir';
      break;
    case 'submit':
      current = submitView(root);
      document.title = 'Submit · Weir';
      break;
    case 'job':
      current = jobView(root, r);
      break;
    default:
      root.append(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the overview')));
      current = { dispose() {} };
  }
  current.key = r.key;
}

function showLogin() {
  unmount();
  logout.hidden = true;
  nav.hidden = true;
  document.title = 'Log in · Weir';
  const input = h('input', {
    type: 'password', id: 'token', name: 'token', autocomplete: 'current-password',
    required: true, minlength: 1, testid: 'login-token', placeholder: 'token',
  });
  const message = h('p', { class: 'error', testid: 'login-message', role: 'alert' }, loginMessage);
  message.hidden = !loginMessage;
  const button = h('button', { type: 'submit', class: 'primary', testid: 'login-submit' }, 'Log in');
  const form = h('form', { class: 'card login', testid: 'login-form' },
    h('h1', {}, 'Weir'),
    h('p', {}, 'Enter the token of this server. ', h('code', {}, 'weir serve'),
      ' prints it at first start and keeps it in ', h('code', {}, '<data-dir>/token'),
      '; the address it prints logs you in directly.'),
    h('label', { for: 'token' }, 'Token'),
    input, message, h('div', { class: 'actions' }, button));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    setToken(t);
    button.disabled = true;
    message.hidden = true;
    get('/jobs').then(() => {
      loginMessage = '';
      route();
    }, (err) => {
      button.disabled = false;
      if (err instanceof Unauthorized) return; // the 401 handler shows the form again
      message.textContent = err instanceof Unreachable
        ? 'The server is unreachable; try again when it is up.'
        : describe(err);
      message.hidden = false;
    });
  });
  main.append(h('div', { class: 'view' }, form));
  input.focus();
}

onUnauthorized(() => {
  clearToken();
  loginMessage = 'The server refused the token. Enter the right one.';
  showLogin();
});

onReachability((ok) => {
  banner.hidden = ok;
});
banner.hidden = isReachable();

logout.addEventListener('click', () => {
  clearToken();
  loginMessage = '';
  showLogin();
});

window.addEventListener('hashchange', route);
route();
