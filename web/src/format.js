// Formatting of times, durations, sizes and counts.

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** A time in ms since the epoch, as local `YYYY-MM-DD HH:MM:SS`. */
export function fmtTime(ms) {
  if (ms === undefined || ms === null || ms < 0) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A time of day with ms, for close events (checkpoints). */
export function fmtClock(ms) {
  if (ms === undefined || ms === null || ms < 0) return '—';
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** A long duration in ms: `3h 2m`, `2m 5s`, `4.2s`. */
export function fmtDuration(ms) {
  if (ms === undefined || ms === null || ms < 0 || Number.isNaN(ms)) return '—';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`;
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${hr}h ${m}m`;
  if (hr > 0) return `${hr}h ${m}m ${sec}s`;
  return `${m}m ${sec}s`;
}

/** A short duration in (possibly fractional) ms: `0.02 ms`, `84 ms`, `1.25 s`. */
export function fmtMs(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '—';
  if (ms === 0) return '0 ms';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(2)} s`;
  return fmtDuration(ms);
}

/** Bytes: `735 B`, `12.3 KiB`, `1.20 MiB`. */
export function fmtBytes(n) {
  if (n === undefined || n === null || n < 0 || Number.isNaN(n)) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  if (u === 0) return `${Math.round(v)} B`;
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

const intFmt = new Intl.NumberFormat('en-US');

/** A count: `1,234,567`. */
export function fmtInt(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  return intFmt.format(Math.round(n));
}

/** A rate per second. */
export function fmtRate(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  if (n >= 100) return intFmt.format(Math.round(n));
  return n.toFixed(1);
}

const compactFmt = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

/** A number in few characters: `1.5K`, `3M`. */
export function fmtCompact(n) {
  if (n === undefined || n === null || Number.isNaN(n)) return '—';
  return compactFmt.format(n);
}

/** A fraction in [0, 1] as a percentage. */
export function fmtPct(f) {
  if (f === undefined || f === null || Number.isNaN(f)) return '—';
  return `${Math.round(f * 100)}%`;
}

/** A short form of a hex digest. */
export function shortHash(hex) {
  return hex && hex.length > 12 ? hex.slice(0, 12) : hex || '';
}

/** How long ago a time in ms since the epoch was: `3 s ago`, `4 min ago`, `2 h ago`, `3 d ago`. */
export function fmtAgo(ms, now = Date.now()) {
  if (ms === undefined || ms === null || typeof ms !== 'number' || ms <= 0) return '—';
  const s = Math.max(0, Math.floor((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}
