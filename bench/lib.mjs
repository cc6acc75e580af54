/**
 * What the three benches share: the run's frame (options, root and preflight checks, signals,
 * cleanup on every exit path, the leak check and the exit status), the host description,
 * statistics and tables, host processes and cgroups, and the server in its own process with a
 * plain `fetch` client for its API. Plain ESM like the benches; see bench/README.md.
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
import { mountsUnder } from '@nullspace/runtime';

export const TEMPLATE = 'base';
export const DEFAULT_TEMPLATES_DIR = '/var/lib/nullspace/templates';
export const REPO_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
export const MiB = 1024 * 1024;
export const CGROUP_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
/** The runc driver's default cgroup parent: machines live at `<parent>/<id>` in every hierarchy. */
export const MACHINE_CGROUP_PARENT = 'nullspace';
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

/** `/proc/<pid>/<file>`, or undefined once the process is gone. */
export function procText(pid, file) {
  try {
    return readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

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
export function processLeaks({ server, children = [], mark }) {
  const leaks = [];
  if (server && stillRuns(server)) leaks.push(`server process ${server.pid}`);
  for (const child of children) if (stillRuns(child)) leaks.push(`process ${child.pid}`);
  if (mark) for (const pid of pidsWith(mark)) leaks.push(`process ${pid} (${cmdline(pid).slice(0, 60)}…)`);
  return leaks;
}

// ---- cgroups, runc, mounts ----------------------------------------------------------------------------

/** Existing directories for cgroup path `rel` across every hierarchy (one on v2, many on v1). */
export function cgroupDirsFor(rel) {
  const roots = CGROUP_V2
    ? ['/sys/fs/cgroup']
    : readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  return roots.map((r) => join(r, rel)).filter((p) => existsSync(p));
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

/** Kills through the API every machine the server knows that is not killed (fork children too). */
export async function killMachinesViaApi(S, note) {
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
 * Removes what the runtime may have left, then checks that nothing is: once the server is stopped.
 * Runc roots: the server's (`<dataDir>/runc`, ids `S.machineIds`, plus every machine directory in
 * `<dataDir>/machines`: a machine caught mid-create by a signal included), then `extraRoots`, each
 * `{ root, ids, machines }`. Containers found in a root join its ids. The ids of a root with
 * `machines` (the server's always) have a network namespace `ns-<id>` and cgroups
 * `nullspace/<id>`; the others are plain runc containers, with cgroups `<id>`.
 *
 * Deletes every container in those roots, the network namespaces, then the mounts under the temp
 * dir (deepest first: overlays before the disks under them); removes the temp dir unless something
 * is still mounted in it. Returns the leaks (one line each: a runc container, a mount or loop
 * device under the temp dir, the temp dir, a netns or cgroup of an id) and how many ids it checked.
 */
export async function cleanUpRuntime(S, note, extraRoots = []) {
  const machinesDir = join(S.dataDir, 'machines');
  if (existsSync(machinesDir)) for (const id of readdirSync(machinesDir)) S.machineIds.add(id);
  const roots = [{ root: join(S.dataDir, 'runc'), ids: S.machineIds, machines: true }, ...extraRoots];
  for (const { root, ids } of roots) {
    for (const id of await runcList(root).catch(() => [])) {
      ids.add(id);
      await sh('runc', ['--root', root, 'delete', '--force', id]).catch(note(`runc delete ${id}`));
    }
  }
  const machineIds = roots.filter((r) => r.machines).flatMap((r) => [...r.ids]);
  for (const id of machineIds) {
    if (existsSync(`/run/netns/ns-${id}`))
      await sh('ip', ['netns', 'delete', `ns-${id}`]).catch(note(`netns ns-${id}`));
  }
  for (const m of await mountsUnder(S.tmp)) {
    await sh('umount', [m]).catch(() => sh('umount', ['-l', m]).catch(note(`umount ${m}`)));
  }

  const leaks = [];
  for (const { root } of roots) {
    for (const id of await runcList(root).catch(() => []))
      leaks.push(`runc container ${id}${roots.length > 1 ? ` (root ${root})` : ''}`);
  }
  const mounts = await mountsUnder(S.tmp);
  leaks.push(...mounts.map((m) => `mount ${m}`));
  const loops = (await sh('losetup', ['-a']).catch(() => ''))
    .split('\n')
    .filter((l) => l.includes(`${S.tmp}/`));
  leaks.push(...loops.map((l) => `loop device ${l}`));
  if (mounts.length === 0) await rm(S.tmp, { recursive: true, force: true }).catch(note(`rm ${S.tmp}`));
  if (existsSync(S.tmp)) leaks.push(`temp dir ${S.tmp}`);
  for (const id of machineIds) {
    if (existsSync(`/run/netns/ns-${id}`)) leaks.push(`netns /run/netns/ns-${id}`);
    leaks.push(...cgroupDirsFor(`${MACHINE_CGROUP_PARENT}/${id}`).map((d) => `cgroup ${d}`));
  }
  for (const { ids } of roots.filter((r) => !r.machines)) {
    for (const id of ids) leaks.push(...cgroupDirsFor(id).map((d) => `cgroup ${d}`));
  }
  return { leaks, checked: roots.reduce((sum, r) => sum + r.ids.size, 0) };
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

/**
 * Starts `startServer` in a child node process as `S.server` (own process group, so a ^C reaches
 * only the bench, which then kills the machines before stopping it): 127.0.0.1, port 0, data dir
 * `S.dataDir`, log level warn, plus `config`; no NULLSPACE_* variable inherited; `args` after the
 * script (a mark for the leak check). Its own process also means its own event loop and CPU time.
 * Resolves once it listens, with `S.server` = { child, url, apiKey, port }.
 */
export async function startServerProcess(S, templatesDir, { config = {}, args = [] } = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NULLSPACE_')));
  env.NSBENCH_SERVER_CONFIG = JSON.stringify({
    host: '127.0.0.1',
    port: 0,
    dataDir: S.dataDir,
    templatesDir,
    ...config,
    logLevel: 'warn',
  });
  const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER_MAIN, ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  S.server = { child };
  const first = await new Promise((resolve, reject) => {
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
      reject(new Error(`server exited (${code ?? signal}) before listening`)),
    );
  });
  const { url, apiKey } = JSON.parse(first);
  Object.assign(S.server, { url, apiKey, port: Number(new URL(url).port) });
}

/** Stops the server process: SIGTERM (it closes), SIGKILL after 15 s. */
export async function stopServerProcess(server) {
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

/**
 * Runs a bench as a command and exits. `b`: `script` (its path, for messages), `usage`, `options`
 * (see parseIntOptions), `rootFor` (why it needs root), `preflight(templatesDir)` (what is missing,
 * or undefined), `title`, `describeHost(templatesDir)`, `bench(opts, templatesDir)` (resolves with
 * the results), `report(results)`, `cleanup(note)` (resolves with `{ leaks, checked }`; `note(what)`
 * makes an error handler that records a cleanup problem) and `cleanedUp(checked)` (the summary).
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
      console.error(`${b.script} needs root (${b.rootFor})`);
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
