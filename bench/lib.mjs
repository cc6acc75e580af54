/**
 * What the benches share: the run's frame (options, root and preflight checks, signals, cleanup on
 * every exit path, the leak check and the exit status), the host description, statistics, the
 * order of series and tables, host processes and cgroups (CPU and memory of processes, machines
 * and the host), and the server in its own process with a plain `fetch` client for its API.
 * Plain ESM like the benches; see bench/README.md.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeResources, inventory, machineIds, mountsUnder, tearDownMachine } from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';

export const TEMPLATE = 'base';
export const DEFAULT_TEMPLATES_DIR = '/var/lib/nullspace/templates';
export const REPO_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const MiB = 1024 * 1024;
/** MB/s here is 10^6 bytes per second. */
export const MB = 1e6;
/** Machines live this long (s) unless killed: well past a bench's end, never expiring mid-run. */
export const MACHINE_TIMEOUT_S = 3600;
export const CGROUP_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
/** The runc driver's default cgroup parent: machines live at `<parent>/<id>` in every hierarchy. */
const MACHINE_CGROUP_PARENT = 'nullspace';
/** The last line of every bench's usage. */
export const USAGE_ENVIRONMENT = `environment: NULLSPACE_TEMPLATES_DIR (default ${DEFAULT_TEMPLATES_DIR}) must hold ${TEMPLATE}/rootfs`;

// ---- small helpers ----------------------------------------------------------------------------

/** Progress goes to stderr, results to stdout. */
export const progress = (msg) => process.stderr.write(`  … ${msg}\n`);

/** Runs a host tool; resolves with its stdout, rejects with its stderr. */
export function sh(file, args, opts = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, killSignal: 'SIGKILL', cwd: opts.cwd, maxBuffer: 16 * MiB },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout));
      },
    );
  });
}

/** Times `fn` (ms); resolves with [ms, result]. */
export async function timed(fn) {
  const t0 = performance.now();
  const result = await fn();
  return [performance.now() - t0, result];
}

// ---- statistics and tables ----------------------------------------------------------------------

/** Nearest-rank percentiles, min, max and mean; `{ n: 0 }` for no values. */
export function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return { n: 0 };
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, p50: q(0.5), p95: q(0.95), min: s[0], max: s[s.length - 1], mean };
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

// ---- the host -------------------------------------------------------------------------------------

/** MemTotal and MemAvailable (bytes) from /proc/meminfo. */
export function meminfo() {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const get = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN) * 1024;
  return { total: get('MemTotal'), available: get('MemAvailable') };
}

/** The first `lines` lines of a tool's version output, joined; `unavailable (…)` if it fails. */
export async function toolVersion(file, args, lines = 1) {
  return (await sh(file, args).catch((e) => `unavailable (${e.message})`))
    .trim()
    .split('\n')
    .slice(0, lines)
    .join(', ');
}

/** The filesystem `path` is on, as `type on source` (`?` if findmnt fails). */
export async function filesystemOf(path) {
  return (await sh('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', path]).catch(() => '?'))
    .trim()
    .replace(/\s+/, ' on ');
}

/**
 * Prints the `Host` table: kernel, CPU, memory, then a bench's own `rows` (tool versions, cgroups,
 * filesystems), then the load average at the start and the templates directory.
 */
export function printHost(templatesDir, rows) {
  const cpuModel =
    /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
    os.cpus()[0]?.model;
  const mem = meminfo();
  const gib = (b) => (b / 1024 ** 3).toFixed(1);
  console.log('Host');
  printTable(
    null,
    [
      ['kernel', os.release()],
      ['cpu', `${cpuModel} × ${os.cpus().length}`],
      ['memory', `${gib(mem.total)} GiB total, ${gib(mem.available)} GiB available`],
      ...rows,
      [
        'load avg',
        os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' '),
      ],
      ['templates', `${templatesDir} (template ${TEMPLATE})`],
    ],
    'll',
  );
}

// ---- host processes ---------------------------------------------------------------------------------

/** A file's text, or undefined if it cannot be read (gone, or never there). */
export function readText(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** `/proc/<pid>/<file>`, or undefined once the process is gone. */
export const procText = (pid, file) => readText(`/proc/${pid}/${file}`);

/** Resident memory of a process (bytes); 0 once it is gone, or for a kernel thread. */
export function rssBytes(pid) {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(procText(pid, 'status') ?? '')?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** A pid that no longer runs: gone, or a zombie waiting for whoever reaps it. */
export function pidGone(pid) {
  const status = procText(pid, 'status');
  return status === undefined || /^State:\s+Z/m.test(status);
}

/** A process's command line, arguments joined by spaces; empty once it is gone. */
export const cmdline = (pid) => (procText(pid, 'cmdline') ?? '').replaceAll('\0', ' ');

/** Live (non-zombie) processes whose command line contains `needle`. */
export function pidsWith(needle) {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => pid !== process.pid && cmdline(pid).includes(needle) && !pidGone(pid));
}

/** Waits until `pid` has exited (`free`: until it is reaped too, so the pid can be reused). */
export async function waitGone(pid, { ms = 5000, free = false } = {}) {
  const deadline = performance.now() + ms;
  while (free ? procText(pid, 'status') !== undefined : !pidGone(pid)) {
    if (performance.now() > deadline)
      throw new Error(`process ${pid} still there${free ? ' (or not reaped)' : ''} after ${ms} ms`);
    await sleep(5);
  }
}

/**
 * Resolves with the first line a child process writes to its stdout (then drains the rest); rejects
 * if it fails to start or exits before (`what` names it).
 */
export function firstLine(child, what) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        child.stdout.off('data', onData);
        child.stdout.resume(); // drain anything later
        resolve(buf.slice(0, nl));
      }
    };
    child.stdout.on('data', onData);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`${what} exited (${code ?? signal}) before listening`)),
    );
  });
}

/**
 * Whether a process a bench started (a ChildProcess, or anything with `pid` and `kill`, such as a
 * node-pty terminal) still runs. A ChildProcess that has exited is not asked about by pid: another
 * process may have that pid by now.
 */
function stillRuns(child) {
  if (child.exitCode != null || child.signalCode != null) return false;
  return !pidGone(child.pid);
}

/** Kills (SIGKILL) every process in `children` that still runs and waits until it is gone. */
export async function killChildren(children, note) {
  for (const child of children) {
    if (!stillRuns(child)) continue;
    try {
      child.kill('SIGKILL');
    } catch (err) {
      note(`kill process ${child.pid}`)(err);
    }
    await waitGone(child.pid).catch(note(`process ${child.pid}`));
  }
}

/**
 * Leak lines for processes: the server's (a ChildProcess), any of `children` still running, and
 * any other process whose command line carries `mark`.
 */
function processLeaks({ server, children = [], mark }) {
  const leaks = [];
  if (server && stillRuns(server)) leaks.push(`server process ${server.pid}`);
  for (const child of children) if (stillRuns(child)) leaks.push(`process ${child.pid}`);
  if (mark) for (const pid of pidsWith(mark)) leaks.push(`process ${pid} (${cmdline(pid).slice(0, 60)}…)`);
  return leaks;
}

// ---- CPU time ---------------------------------------------------------------------------------------

let clockTicks = 100;

/** Reads the kernel's clock ticks per second (what /proc counts CPU time in) before the first use. */
export async function readClockTicks() {
  clockTicks = Number((await sh('getconf', ['CLK_TCK']).catch(() => '100')).trim()) || 100;
}

/**
 * User + system CPU of one process so far (ms), from /proc/<pid>/stat (`children`: with the children
 * it reaped); 0 once it is gone.
 */
export function processCpuMs(pid, { children = false } = {}) {
  const stat = pid === undefined ? undefined : procText(pid, 'stat');
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const own = Number(f[11]) + Number(f[12]);
  return ((own + (children ? Number(f[13]) + Number(f[14]) : 0)) * 1000) / clockTicks;
}

/** This process's CPU so far (ms, user + system, all its threads). */
export function selfCpuMs() {
  const self = process.cpuUsage();
  return (self.user + self.system) / 1000;
}

/**
 * CPU the whole host has been busy so far (ms, all cores), from /proc/stat: user, nice, system and
 * steal (guest time is already in user); with `interrupts`, irq and softirq time too.
 */
function hostBusyMs(interrupts) {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0] + f[1] + f[2] + (interrupts ? f[5] + f[6] : 0) + f[7];
  return (busy * 1000) / clockTicks;
}

/**
 * How busy the host was over the spans a bench measures, and how much of it was the bench's own:
 * this process and the server's (each with the children it reaped), `others()` (ms: the bench's
 * other processes, or machines it counts itself), and the machine's cgroup (none without a
 * `machineId`). `sample(machineId)` takes both at one moment,
 * `add(before, after)` counts a span, `summary()` gives the seconds counted and the load (cores)
 * that was ours and that was everything else: the figures are only as clean as that is small.
 * `interrupts`: see hostBusyMs.
 */
export function hostLoad(S, { interrupts = true, others = () => 0 } = {}) {
  const oursMs = (machineId) =>
    processCpuMs(process.pid, { children: true }) +
    processCpuMs(S.server.child.pid, { children: true }) +
    others() +
    (machineId === undefined ? 0 : machineCpu(machineId).usageMs);
  let wall = 0;
  let busy = 0;
  let ours = 0;
  return {
    sample: (machineId) => ({
      at: performance.now(),
      busyMs: hostBusyMs(interrupts),
      oursMs: oursMs(machineId),
    }),
    add(before, after) {
      wall += after.at - before.at;
      busy += after.busyMs - before.busyMs;
      ours += after.oursMs - before.oursMs;
    },
    summary: () => ({ wallS: wall / 1000, oursLoad: ours / wall, otherLoad: (busy - ours) / wall }),
  };
}

/** Whitespace-separated `key value` lines (a cgroup's cpu.stat) as numbers; empty if unreadable. */
function readKeyed(file) {
  return Object.fromEntries(
    (readText(file) ?? '')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/))
      .map(([k, v]) => [k, Number(v)]),
  );
}

/**
 * A machine's cgroup CPU so far: usage (ms), CFS periods, throttled periods and throttled time
 * (ms): what its vCPU quota cost it. NaN for what cannot be read.
 */
export function machineCpu(id) {
  const rel = `${MACHINE_CGROUP_PARENT}/${id}`;
  if (CGROUP_V2) {
    const st = readKeyed(`/sys/fs/cgroup/${rel}/cpu.stat`);
    return {
      usageMs: (st.usage_usec ?? Number.NaN) / 1000,
      periods: st.nr_periods ?? Number.NaN,
      throttled: st.nr_throttled ?? Number.NaN,
      throttledMs: (st.throttled_usec ?? Number.NaN) / 1000,
    };
  }
  const acct = ['cpuacct', 'cpu,cpuacct']
    .map((h) => `/sys/fs/cgroup/${h}/${rel}/cpuacct.usage`)
    .find((f) => existsSync(f));
  const cpuStat = ['cpu', 'cpu,cpuacct']
    .map((h) => `/sys/fs/cgroup/${h}/${rel}/cpu.stat`)
    .find((f) => existsSync(f));
  const st = cpuStat ? readKeyed(cpuStat) : {};
  return {
    usageMs: acct ? Number(readFileSync(acct, 'utf8').trim()) / 1e6 : Number.NaN,
    periods: st.nr_periods ?? Number.NaN,
    throttled: st.nr_throttled ?? Number.NaN,
    throttledMs: (st.throttled_time ?? Number.NaN) / 1e6,
  };
}

/**
 * The CPU time so far (ms) of each of a bench's `parties` (name → a function that reads it) and
 * of machine `machineId`'s cgroup (`machine`, see machineCpu), at one moment.
 */
export function cpuSnapshot(machineId, parties) {
  const snap = { at: performance.now() };
  for (const [name, read] of Object.entries(parties)) snap[name] = read();
  snap.machine = machineCpu(machineId);
  return snap;
}

/**
 * Adds to `acc` what passed between snapshots `a` and `b` (see cpuSnapshot): the wall time, each
 * party's CPU, the machine's (`machine`), its CFS `periods`, `throttled` periods and `throttledMs`.
 */
export function cpuAdd(acc, a, b) {
  const add = (k, v) => {
    acc[k] = (acc[k] ?? 0) + v;
  };
  add('wall', b.at - a.at);
  for (const k of Object.keys(a)) if (k !== 'at' && k !== 'machine') add(k, b[k] - a[k]);
  add('machine', b.machine.usageMs - a.machine.usageMs);
  add('periods', b.machine.periods - a.machine.periods);
  add('throttled', b.machine.throttled - a.machine.throttled);
  add('throttledMs', b.machine.throttledMs - a.machine.throttledMs);
}

// ---- cgroups, runc, mounts ----------------------------------------------------------------------------

/** Existing directories for cgroup path `rel` across every hierarchy (one on v2, many on v1). */
function cgroupDirsFor(rel) {
  const roots = CGROUP_V2
    ? ['/sys/fs/cgroup']
    : readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  return roots.map((r) => join(r, rel)).filter((p) => existsSync(p));
}

/** A machine's cgroup directory: the v2 one, or on v1 the one in `controller`'s hierarchy. */
const machineCgroupDir = (id, controller) =>
  CGROUP_V2
    ? `/sys/fs/cgroup/${MACHINE_CGROUP_PARENT}/${id}`
    : `/sys/fs/cgroup/${controller}/${MACHINE_CGROUP_PARENT}/${id}`;

/** The host pids of a machine's processes (its memory cgroup's members; none once it is gone). */
export function machinePids(id) {
  return (readText(join(machineCgroupDir(id, 'memory'), 'cgroup.procs')) ?? '')
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

/** What is charged to a machine's memory cgroup (bytes): `memory.current` (v2) or `memory.usage_in_bytes`. */
export function machineMemoryBytes(id) {
  const file = join(machineCgroupDir(id, 'memory'), CGROUP_V2 ? 'memory.current' : 'memory.usage_in_bytes');
  return Number(readFileSync(file, 'utf8').trim());
}

/** Container ids in a private runc root (none if the root was never made). */
export async function runcList(root) {
  if (!existsSync(root)) return [];
  return (await sh('runc', ['--root', root, 'list', '-q'])).split('\n').filter(Boolean);
}

// ---- a run's state and its cleanup ------------------------------------------------------------------

/**
 * Everything a run makes, so every exit path can undo it: the temp dir and the server's data dir
 * in it, the server, the machines (`live`: not killed yet; `machineIds`: every id the server made
 * for us, for the leak check) and the host processes started (`children`). `extra`: a bench's own.
 */
export function runState(extra = {}) {
  return {
    tmp: undefined,
    dataDir: undefined,
    server: undefined,
    live: new Set(),
    machineIds: new Set(),
    children: new Set(),
    ...extra,
  };
}

/** Makes the run's temp dir `/tmp/nsbench-XXXXXX` and names the server's data dir in it. */
export function makeRunDir(S) {
  S.tmp = mkdtempSync('/tmp/nsbench-');
  S.dataDir = join(S.tmp, 'data');
}

/** Notes a machine the server made for the run: live until killed, and checked for leaks at the end. */
export function trackMachine(S, id) {
  S.live.add(id);
  S.machineIds.add(id);
}

/**
 * Creates a machine through the API (`POST /v1/machines`: the template, MACHINE_TIMEOUT_S, then
 * `body`) and tracks it; resolves with the server's answer.
 */
export async function createMachineViaApi(S, body = {}) {
  const info = await apiRequest(S.server, 'POST', '/v1/machines', {
    template: TEMPLATE,
    timeout: MACHINE_TIMEOUT_S,
    ...body,
  });
  trackMachine(S, info.id);
  return info;
}

/** Kills a machine through the API (`DELETE /v1/machines/{id}`); it is no longer live. */
export async function killMachineViaApi(S, id) {
  await apiRequest(S.server, 'DELETE', `/v1/machines/${id}`);
  S.live.delete(id);
}

/**
 * Creates a machine through the SDK (`Machine.create`: the template, then `options`, with the run's
 * server's URL and API key) and tracks it; resolves with the SDK's Machine.
 */
export async function createMachineViaSdk(S, options = {}) {
  const machine = await Machine.create({
    template: TEMPLATE,
    ...options,
    apiUrl: S.server.url,
    apiKey: S.server.apiKey,
  });
  trackMachine(S, machine.id);
  return machine;
}

/** Kills a machine made with the SDK (`machine.kill()`); it is no longer live. */
export async function killMachineViaSdk(S, machine) {
  await machine.kill();
  S.live.delete(machine.id);
}

/** Kills through the API every machine the server knows that is not killed (fork children too). */
async function killMachinesViaApi(S, note) {
  if (!S.server?.url) return;
  try {
    const page = await apiRequest(S.server, 'GET', '/v1/machines?limit=1000');
    for (const m of page.items ?? []) {
      S.machineIds.add(m.id);
      if (m.status !== 'killed') S.live.add(m.id);
    }
  } catch (err) {
    note('list machines')(err);
  }
  for (const id of [...S.live]) {
    await apiRequest(S.server, 'DELETE', `/v1/machines/${id}`).then(
      () => S.live.delete(id),
      note(`kill ${id} via the API`),
    );
  }
}

/**
 * The first step of a cleanup once there is a server: the machines through the API, then the server
 * (its process, by pid; or `close()` when it runs in the bench's own process).
 */
export async function stopServerAndMachines(S, note) {
  if (!S.server) return;
  await killMachinesViaApi(S, note);
  if (S.server.child) await stopServerProcess(S.server).catch(note('stop server'));
  else await S.server.close().catch(note('server close'));
}

/**
 * The last step of a cleanup, once the server is stopped: the runtime's leftovers (cleanUpRuntime,
 * with `extraRoots`, from the runtime's inventory), then the processes (processLeaks: the server's, the run's children, any
 * carrying `mark`). Resolves with `{ leaks, checked }`; nothing to do before the temp dir is made.
 */
export async function cleanUpRun(S, note, { mark, extraRoots = [] } = {}) {
  if (!S.tmp) return { leaks: [], checked: 0 };
  const { leaks, checked } = await cleanUpRuntime(S, note, extraRoots);
  leaks.push(...processLeaks({ server: S.server?.child, children: S.children, mark }));
  return { leaks, checked };
}

/**
 * Removes what the runtime may have left, then checks that nothing is: once the server is stopped.
 * Machine roots: the server's (`<dataDir>/machines` + `<dataDir>/runc` + `<dataDir>/volumes`, ids
 * `S.machineIds`), then each of `extraRoots` with `machinesDir` (`{ root, machinesDir, ids }`, a
 * runc root and the machine directories beside it); their machines are torn down from the
 * runtime's inventory, as the driver's destroy does, and checked with it. `extraRoots` without
 * `machinesDir` hold plain runc containers (cgroups `<id>`): deleted with runc, checked with
 * `runc list` and their cgroups.
 *
 * Then the mounts under the temp dir (deepest first); the temp dir is removed unless something is
 * still mounted in it. Returns the leaks (one line each: whatever the inventory still finds, a
 * runc container, a mount or loop device under the temp dir, the temp dir, a plain container's
 * cgroup) and how many ids it checked.
 */
async function cleanUpRuntime(S, note, extraRoots = []) {
  const server = {
    dirs: {
      machinesDir: join(S.dataDir, 'machines'),
      runcRoot: join(S.dataDir, 'runc'),
      volumesDir: join(S.dataDir, 'volumes'),
    },
    ids: S.machineIds,
  };
  const machineRoots = [
    server,
    ...extraRoots
      .filter((r) => r.machinesDir)
      .map((r) => ({ dirs: { machinesDir: r.machinesDir, runcRoot: r.root }, ids: r.ids })),
  ];
  const plainRoots = extraRoots.filter((r) => !r.machinesDir);
  for (const { dirs, ids } of machineRoots) {
    for (const id of await machineIds(dirs)) ids.add(id);
    for (const id of ids)
      await tearDownMachine(dirs, id, { keepFiles: false }).catch(note(`tear down ${id}`));
  }
  for (const { root, ids } of plainRoots) {
    for (const id of await runcList(root).catch(() => [])) {
      ids.add(id);
      await sh('runc', ['--root', root, 'delete', '--force', id]).catch(note(`runc delete ${id}`));
    }
  }
  for (const m of await mountsUnder(S.tmp)) {
    await sh('umount', [m]).catch(() => sh('umount', ['-l', m]).catch(note(`umount ${m}`)));
  }

  const leaks = [];
  const listed = new Set();
  for (const { dirs, ids } of machineRoots) {
    const found = await inventory(dirs, { ids });
    for (const r of found) if (r.kind === 'mount') listed.add(r.path);
    for (const r of found) if (r.kind === 'loop-device') listed.add(r.backingFile);
    leaks.push(...describeResources(found));
  }
  for (const { root } of plainRoots) {
    for (const id of await runcList(root).catch(() => [])) leaks.push(`runc container ${id} (root ${root})`);
  }
  const mounts = await mountsUnder(S.tmp);
  leaks.push(...mounts.filter((m) => !listed.has(m)).map((m) => `mount ${m}`));
  const loops = (
    await sh('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE']).catch(() => '')
  )
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, file]) => file?.startsWith(`${S.tmp}/`) && !listed.has(file));
  leaks.push(...loops.map(([dev, file]) => `loop device ${dev} on ${file}`));
  if (mounts.length === 0) await rm(S.tmp, { recursive: true, force: true }).catch(note(`rm ${S.tmp}`));
  if (existsSync(S.tmp)) leaks.push(`temp dir ${S.tmp}`);
  for (const { ids } of plainRoots) {
    for (const id of ids) leaks.push(...cgroupDirsFor(id).map((d) => `cgroup ${d}`));
  }
  const checked = [...machineRoots, ...plainRoots].reduce((sum, r) => sum + r.ids.size, 0);
  return { leaks, checked };
}

// ---- the server in its own process, and its API ---------------------------------------------------

const SERVER_MAIN = `
import { startServer } from '@nullspace/server';
const s = await startServer(JSON.parse(process.env.NSBENCH_SERVER_CONFIG));
process.stdout.write(JSON.stringify({ url: s.url, apiKey: s.apiKey }) + '\\n');
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  s.close().then(() => process.exit(0), () => process.exit(1));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
`;

/** A bench's server settings: 127.0.0.1, port 0, the run's data dir, `config`, log level warn. */
export const serverConfig = (S, templatesDir, config = {}) => ({
  host: '127.0.0.1',
  port: 0,
  dataDir: S.dataDir,
  templatesDir,
  ...config,
  logLevel: 'warn',
});

/**
 * Starts `startServer` in a child node process as `S.server` (own process group, so a ^C reaches
 * only the bench, which then kills the machines before stopping it): 127.0.0.1, port 0, data dir
 * `S.dataDir`, log level warn, plus `config`; no NULLSPACE_* variable inherited; `args` after the
 * script (a mark for the leak check). Its own process also means its own event loop and CPU time.
 * Resolves once it listens, with `S.server` = { child, url, apiKey, port }.
 */
export async function startServerProcess(S, templatesDir, { config = {}, args = [] } = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NULLSPACE_')));
  env.NSBENCH_SERVER_CONFIG = JSON.stringify(serverConfig(S, templatesDir, config));
  const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER_MAIN, ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  S.server = { child };
  const { url, apiKey } = JSON.parse(await firstLine(child, 'server'));
  Object.assign(S.server, { url, apiKey, port: Number(new URL(url).port) });
}

/** Stops the server process: SIGTERM (it closes), SIGKILL after 15 s. */
async function stopServerProcess(server) {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

/** An error answer of the API: `status` and the error `code`, if any. */
export class ApiError extends Error {
  constructor(method, path, status, body, text = '') {
    super(
      `${method} ${path}: HTTP ${status} ${body?.error?.code ?? ''} ${body?.error?.message ?? text.slice(0, 200)}`.trim(),
    );
    this.status = status;
    this.code = body?.error?.code;
  }
}

/**
 * One JSON request to `server` ({ url, apiKey }) with fetch; resolves with the parsed body once it
 * has fully arrived, rejects with an ApiError.
 */
export async function apiRequest(server, method, path, body) {
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.apiKey}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) throw new ApiError(method, path, res.status, json, text);
  return json;
}

// ---- the run ------------------------------------------------------------------------------------------

let interruptedBy;

/** Throws once a signal asked the bench to stop: called between steps. */
export function checkInterrupted() {
  if (interruptedBy) throw new Error(`interrupted by ${interruptedBy}`);
}

/**
 * Parses the integer options in `spec` (`key: [flag, default, min]`) and -h/--help, strictly:
 * throws on an unknown option or a bad value. Returns `{ help, ...key: value }`.
 */
export function parseIntOptions(argv, spec) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...Object.fromEntries(Object.values(spec).map(([flag]) => [flag, { type: 'string' }])),
      help: { type: 'boolean', short: 'h' },
    },
  });
  const opts = { help: values.help === true };
  for (const [key, [flag, fallback, min]] of Object.entries(spec)) {
    const raw = values[flag];
    if (raw === undefined) {
      opts[key] = fallback;
      continue;
    }
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${flag} must be an integer ≥ ${min}, got "${raw}"`);
    opts[key] = n;
  }
  return opts;
}

/** A preflight check: the template's rootfs holds `path` (`rootfs` itself without one). */
export const templateHas =
  (...path) =>
  (templatesDir) =>
    existsSync(join(templatesDir, TEMPLATE, 'rootfs', ...path))
      ? undefined
      : `no ${TEMPLATE} template at ${join(templatesDir, TEMPLATE, 'rootfs')}; set NULLSPACE_TEMPLATES_DIR`;

/**
 * Runs a bench as a command and exits. `b`: `script` (its path, for messages), `usage`, `options`
 * (see parseIntOptions), `rootFor` (why it needs root; by default runc, mounts and network
 * namespaces), `preflight(templatesDir)` (what is missing, or undefined; see templateHas), `title`,
 * `describeHost(templatesDir)`, `bench(opts, templatesDir)` (resolves with the results),
 * `report(results)`, `cleanup(note)` (resolves with `{ leaks, checked }`; `note(what)` makes an
 * error handler that records a cleanup problem) and `cleanedUp(checked)` (the summary).
 *
 * Cleanup runs once, on every exit path: the normal end, a failure, SIGINT/SIGTERM/SIGHUP (the
 * bench stops after the current step; a second signal cleans up at once), an exception in a
 * callback. Then each leak is printed as LEAKED. Exit status: 0 ran and cleaned up (a MISS is
 * informational), 1 failed, leaked or had a cleanup problem, 2 bad usage, 130 interrupted.
 */
export function runBench(b) {
  let finishing;
  const finish = (code) => {
    finishing ??= cleanUpAndReport(code);
    return finishing;
  };
  const cleanUpAndReport = async (code) => {
    progress('cleanup');
    const problems = [];
    const note = (what) => (err) => problems.push(`${what}: ${err?.message ?? err}`);
    const { leaks, checked } = await b.cleanup(note);
    for (const p of problems) console.error(`cleanup problem: ${p}`);
    if (leaks.length > 0) {
      console.error(`\nLEAKED (${leaks.length}):`);
      for (const l of leaks) console.error(`  ${l}`);
      return 1;
    }
    console.log(
      `\nCleanup: ${b.cleanedUp(checked)}${problems.length ? ` (${problems.length} cleanup problems, see stderr)` : ''}.`,
    );
    if (code === 0) console.log('Targets are informational: a MISS does not fail the bench.');
    return problems.length > 0 ? 1 : code;
  };

  // A throw in a callback (a socket's, a terminal's) must not end the process before cleanup.
  for (const event of ['uncaughtException', 'unhandledRejection']) {
    process.on(event, (err) => {
      console.error(`\nbench crashed (${event}): ${err?.stack ?? err}`);
      finish(1).then(
        (code) => process.exit(code),
        () => process.exit(1),
      );
    });
  }
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      if (!interruptedBy) {
        interruptedBy = sig;
        process.stderr.write(
          `\n${sig}: stopping after the current step, then cleaning up (again to force)\n`,
        );
        return;
      }
      process.stderr.write(`${sig} again: cleaning up now\n`);
      finish(130).then((code) => process.exit(code));
    });
  }

  const main = async () => {
    let opts;
    try {
      opts = parseIntOptions(process.argv.slice(2), b.options);
    } catch (err) {
      console.error(`${err.message}\n${b.usage}`);
      return 2;
    }
    if (opts.help) {
      console.log(b.usage);
      return 0;
    }
    if (process.getuid?.() !== 0) {
      console.error(`${b.script} needs root (${b.rootFor ?? 'runc, mounts, network namespaces'})`);
      return 2;
    }
    const templatesDir = process.env.NULLSPACE_TEMPLATES_DIR || DEFAULT_TEMPLATES_DIR;
    const missing = b.preflight(templatesDir);
    if (missing) {
      console.error(missing);
      return 2;
    }

    console.log(`${b.title}\n`);
    await b.describeHost(templatesDir);
    let code = 0;
    try {
      b.report(await b.bench(opts, templatesDir));
    } catch (err) {
      if (interruptedBy) {
        console.error(`\nbench interrupted by ${interruptedBy}`);
        code = 130;
      } else {
        console.error(`\nbench failed: ${err?.stack ?? err}`);
        code = 1;
      }
    }
    return finish(code);
  };
  main().then(
    (code) => process.exit(code),
    async (err) => {
      console.error(`bench crashed: ${err?.stack ?? err}`);
      process.exit(await finish(1).catch(() => 1));
    },
  );
}
