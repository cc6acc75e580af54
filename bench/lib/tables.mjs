/**
 * Statistics of a run's samples (percentiles, rates, the random order of series) and the tables
 * and sections every bench prints them in.
 */
import { MB } from './common.mjs';

/** Nearest-rank percentiles (p50, p95, p99), min, max and mean; `{ n: 0 }` for no values. */
export function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return { n: 0 };
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99), min: s[0], max: s[s.length - 1], mean };
}

/** A number with `digits` decimals; `-` for none. */
export const fmt = (x, digits = 1) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));
/** A difference with its sign (`+0.41`, `-0.12`); `-` for none. */
export const signed = (x, digits = 2) =>
  x === undefined || Number.isNaN(x) ? '-' : `${x >= 0 ? '+' : ''}${x.toFixed(digits)}`;
/** `part` as a whole percentage of `whole` (`37%`). */
export const percent = (part, whole) => `${fmt((100 * part) / whole, 0)}%`;
/** A figure against an upper-bound target. */
export const verdict = (value, target) => (value === undefined ? 'n/a' : value <= target ? 'PASS' : 'MISS');

/**
 * A row of a latency table: label, n, p50, p95, min, max (`digits` decimals), target (`≤ t`) and
 * its verdict on p50; without figures, dashes (and `n/a` where there is a target).
 */
export function latencyRow(label, st, target, digits = 1) {
  const goal = target === undefined ? '' : `≤ ${target}`;
  if (st === undefined || st.n === 0)
    return [label, 0, '-', '-', '-', '-', goal, target === undefined ? '' : 'n/a'];
  const figures = [st.p50, st.p95, st.min, st.max].map((x) => fmt(x, digits));
  return [label, st.n, ...figures, goal, target === undefined ? '' : verdict(st.p50, target)];
}

/** Prints a table of latencyRow rows under a header whose first column is `first`. */
export function printLatencyTable(first, rows) {
  printTable([first, 'n', 'p50', 'p95', 'min', 'max', 'target', 'result'], rows, 'lrrrrrrl');
}

/**
 * A run's samples by series: `push(key, x)` adds one to series `key` of `R`; `statsOf(R)` gives
 * each series' stats.
 */
export function samples() {
  const R = {};
  const push = (key, x) => {
    R[key] ??= [];
    R[key].push(x);
  };
  return { R, push };
}

/** Stats of every series in `R` (key → values), by key. */
export const statsOf = (R) => Object.fromEntries(Object.entries(R).map(([key, xs]) => [key, stats(xs)]));

/** MB/s of moving `bytes` in `ms`; undefined for no time. */
export const rateOf = (bytes) => (ms) => (ms === undefined ? undefined : bytes / MB / (ms / 1000));

/** The header of rateCells' columns. */
export const RATE_COLUMNS = ['n', 'p50 MB/s', 'p95 MB/s', 'min', 'max', 'p50 ms'];

/**
 * The figures of a throughput row, from the times' stats `st` and `rate` (see rateOf): n, MB/s at
 * the median and at the 95th-percentile time (the slow end), the best and the worst MB/s, p50 ms.
 */
export const rateCells = (st, rate) => [
  st?.n ?? 0,
  fmt(rate(st?.p50)),
  fmt(rate(st?.p95)),
  fmt(rate(st?.max)),
  fmt(rate(st?.min)),
  fmt(st?.p50, 0),
];

/** A small seeded PRNG (mulberry32), so a run's order of series can be repeated. */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
const random = prng(0x5eed);

/**
 * The series in a fresh random order each iteration, so no path always follows the same one. Not a
 * rotation: that keeps neighbours, and what ran just before matters: with a rotation, whichever
 * file path (inside.mjs) followed the host's atomic write on the machine's disk was 3–6 ms slower
 * (most likely the filesystem's background work for the file the rename replaced).
 */
export function shuffled(list) {
  const out = [...list];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Prints an aligned table (`header` null: none); `align` has one letter per column, `l` or `r`. */
export function printTable(header, rows, align) {
  const all = header ? [header, ...rows] : rows;
  const widths = [...align].map((_, c) => Math.max(...all.map((r) => String(r[c] ?? '').length)));
  const line = (r) =>
    r
      .map((cell, c) =>
        align[c] === 'l' ? String(cell ?? '').padEnd(widths[c]) : String(cell ?? '').padStart(widths[c]),
      )
      .join('  ')
      .trimEnd();
  if (header) {
    console.log(`  ${line(header)}`);
    console.log(`  ${widths.map((w) => '-'.repeat(w)).join('  ')}`);
  }
  for (const r of rows) console.log(`  ${line(r)}`);
}

/** Prints the run's own table after a blank line: the server (URL, process, data dir), then `rows`. */
export function printRun(S, rows) {
  const where = S.server.child ? `child process ${S.server.child.pid}` : 'in this process';
  console.log('');
  printTable(null, [['server', `${S.server.url} (${where}), data dir ${S.dataDir}`], ...rows], 'll');
}

/**
 * Prints how busy the host was while the bench measured (see hostLoad): what `who` (the bench's own
 * processes and machines) used, and everything else (`note` right after that figure).
 */
export function printConditions({ wallS, oursLoad, otherLoad }, who, note = '') {
  console.log(
    `\nConditions: over the ${fmt(wallS, 0)} s measured, ${who} used ` +
      `${fmt(100 * oursLoad, 0)}% of a core on average; everything else on the host ` +
      `${fmt(100 * Math.max(0, otherLoad), 0)}%${note}` +
      (otherLoad > 0.2 ? ': the host was busy with other work, expect slower figures and wider p95s.' : '.'),
  );
}

/** Prints the `Hints` section: one line a hint, or that every target is met. */
export function printHints(hints) {
  console.log('\nHints');
  if (hints.length === 0) console.log('  none: every target is met');
  for (const h of hints) console.log(`  - ${h}`);
}
