// The REST API client: the bearer token, JSON requests, the errors the
// views act on, and the connection state (reachable or not).

const TOKEN_KEY = 'weir.token';
const BASE = '/api/v1';

/** A request the server answered with an error status. */
export class ApiError extends Error {
  constructor(status, messages) {
    super(messages.join('\n') || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.messages = messages;
  }
}

/** The server refused the token (401). */
export class Unauthorized extends ApiError {
  constructor(messages) {
    super(401, messages);
    this.name = 'Unauthorized';
  }
}

/** The server could not be reached. */
export class Unreachable extends Error {
  constructor() {
    super('server unreachable');
    this.name = 'Unreachable';
  }
}

export function isAbort(e) {
  return e && e.name === 'AbortError';
}

export function getToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage unavailable: the token lives only in this page
  }
  memoryToken = token;
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
  memoryToken = null;
}

let memoryToken = null;
function token() {
  return getToken() ?? memoryToken;
}

/**
 * Takes `token=...` out of the location's hash (`#token=T`,
 * `#/jobs/x?token=T`), stores it and rewrites the address without it.
 */
export function takeTokenFromHash() {
  const raw = location.hash.replace(/^#/, '');
  let route = raw;
  let query = '';
  const q = raw.indexOf('?');
  if (q >= 0) {
    route = raw.slice(0, q);
    query = raw.slice(q + 1);
  } else if (!raw.startsWith('/')) {
    route = '';
    query = raw;
  }
  const params = new URLSearchParams(query);
  const t = params.get('token');
  if (t === null) return false;
  params.delete('token');
  if (t) setToken(t);
  const rest = params.toString();
  const hash = `#${route || '/'}${rest ? `?${rest}` : ''}`;
  history.replaceState(history.state, '', `${location.pathname}${location.search}${hash}`);
  return true;
}

// Listeners of the 401s and of the reachability.
const unauthorizedListeners = new Set();
const reachListeners = new Set();
let reachable = true;

export function onUnauthorized(fn) {
  unauthorizedListeners.add(fn);
}

export function onReachability(fn) {
  reachListeners.add(fn);
}

export function isReachable() {
  return reachable;
}

let retryTimer = null;

// The running pollers, asked again at once when the server is back.
const pollers = new Set();

function setReachable(ok) {
  if (ok === reachable) return;
  reachable = ok;
  for (const fn of reachListeners) fn(ok);
  if (!ok) scheduleRetry();
  else for (const p of pollers) p.now();
}

// While the server is unreachable, ask it again every 2 s, so that the
// banner goes away on its own even on a page that does not poll.
function scheduleRetry() {
  if (retryTimer !== null) return;
  retryTimer = setTimeout(async () => {
    retryTimer = null;
    if (reachable) return;
    try {
      await fetch(`${BASE}/jobs`, { headers: authHeaders(), cache: 'no-store' });
      setReachable(true);
    } catch {
      scheduleRetry();
    }
  }, 2000);
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

function unauthorized(messages) {
  for (const fn of unauthorizedListeners) fn(messages);
  return new Unauthorized(messages);
}

function errorMessages(text, status, statusText) {
  if (text) {
    try {
      const data = JSON.parse(text);
      if (data && Array.isArray(data.errors)) return data.errors.map(String);
    } catch {
      // not JSON: the text itself
    }
    return [text];
  }
  return [`HTTP ${status} ${statusText || ''}`.trim()];
}

/**
 * A request to `/api/v1<path>`; resolves to the parsed JSON answer (null
 * for an empty one). Throws `Unreachable`, `Unauthorized` or `ApiError`.
 */
export async function api(method, path, body, { signal } = {}) {
  const headers = authHeaders();
  const init = { method, headers, signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  let text;
  try {
    res = await fetch(`${BASE}${path}`, init);
    text = await res.text();
  } catch (e) {
    if (isAbort(e)) throw e;
    setReachable(false);
    throw new Unreachable();
  }
  setReachable(true);
  if (res.status === 401) throw unauthorized(errorMessages(text, 401, res.statusText));
  if (!res.ok) throw new ApiError(res.status, errorMessages(text, res.status, res.statusText));
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body, opts);

/**
 * Uploads a bundle with upload progress: `onProgress(fraction)`. Resolves
 * to the bundle; rejects like `api`.
 */
export function uploadBundle(file, name, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `${BASE}/bundles?name=${encodeURIComponent(name)}`);
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader('Content-Type', 'application/wasm');
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && e.total > 0) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      setReachable(true);
      const text = xhr.responseText;
      if (xhr.status === 401) {
        reject(unauthorized(errorMessages(text, 401, xhr.statusText)));
      } else if (xhr.status < 200 || xhr.status >= 300) {
        reject(new ApiError(xhr.status, errorMessages(text, xhr.status, xhr.statusText)));
      } else {
        try {
          resolve(text ? JSON.parse(text) : null);
        } catch {
          resolve(null);
        }
      }
    });
    xhr.addEventListener('error', () => {
      setReachable(false);
      reject(new Unreachable());
    });
    xhr.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    xhr.send(file);
  });
}

/**
 * Calls `fn` now and then every `interval` ms (after each call ends) until
 * stopped; `now()` runs it at once. Errors go to `onError`, which is never
 * left to reject.
 */
export function poller(fn, interval, onError) {
  let stopped = false;
  let timer = null;
  let running = false;
  let again = false;
  let every = interval;
  let failures = 0;
  const tick = async () => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    clearTimeout(timer);
    let delay = every;
    try {
      await fn();
      failures = 0;
    } catch (e) {
      // While the server is unreachable, ask less often (up to every 5 s).
      if (e instanceof Unreachable) {
        failures++;
        delay = Math.max(every, Math.min(5000, every * 2 ** failures));
      }
      if (!stopped && !isAbort(e)) {
        try {
          onError(e);
        } catch {
          // an error handler that fails must not stop the polling
        }
      }
    }
    running = false;
    if (stopped) return;
    if (again) {
      again = false;
      tick();
    } else {
      timer = setTimeout(tick, delay);
    }
  };
  const handle = {
    stop() {
      stopped = true;
      clearTimeout(timer);
      pollers.delete(handle);
    },
    now() {
      tick();
    },
    setInterval(ms) {
      every = ms;
    },
  };
  pollers.add(handle);
  tick();
  return handle;
}

/** Turns an error into a line for the user. */
export function describe(e) {
  if (e instanceof Unreachable) return 'The server is unreachable.';
  if (e instanceof ApiError) return e.messages.join('\n');
  return String(e && e.message ? e.message : e);
}
