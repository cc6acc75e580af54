#!/usr/bin/env node
/**
 * Lifecycle benchmark: pause/resume, hibernate/resume (100 MiB resident), snapshot freeze, fork
 * until the child answers, and lifecycle event delivery, through a real server over HTTP, beside the
 * raw building blocks (cgroup v1 freezer, criu dump/restore of a plain process, create from a
 * template) measured in the same run.
 * Run as root from the repository root: `node bench/lifecycle.mjs [--iterations N]`. See bench/README.md.
 */
import { execFile, spawn } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const TEMPLATE = 'base';
const DEFAULT_TEMPLATES_DIR = '/var/lib/nullspace/templates';
const REPO_ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
/** Targets from the lifecycle issue (ms); they apply to p50 and are informational. */
const TARGETS = {
  pause: 20,
  resume: 20,
  hibernate: 400,
  restore: 400,
  snapshotPaused: 300,
  fork: 500,
  event: 20,
};
const MiB = 1024 * 1024;
const BALLAST_MIB = 100;
/** In every ballast process's command line, so the bench can recognise (and only kill) its own. */
const MARK = `nsbench-lifecycle-${process.pid}`;
const CGROUP_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
const FREEZER_ROOT = '/sys/fs/cgroup/freezer';
const MACHINE_CGROUP_PARENT = 'nullspace';
const CRIU = '/usr/local/sbin/criu';
/** Machines live this long (s) unless killed: well past the bench's end, never expiring mid-run. */
const MACHINE_TIMEOUT_S = 3600;
/** Long poll: how long the server may hold a poll, and the pause before the transition is triggered. */
const POLL_WAIT_MS = 10_000;
const SUBSCRIBE_SETTLE_MS = 30;

const USAGE = `usage: node bench/lifecycle.mjs [options]   (as root, from the repository root)
  --iterations N   timed iterations of every series (default 10)
  --warmup N       warm-up iterations before each series, not counted (default 1)
environment: NULLSPACE_TEMPLATES_DIR (default ${DEFAULT_TEMPLATES_DIR}) must hold ${TEMPLATE}/rootfs`;

// ---- options ----------------------------------------------------------------------------------

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      iterations: { type: 'string' },
      warmup: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const int = (name, fallback, min) => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`--${name} must be an integer ≥ ${min}, got "${raw}"`);
    return n;
  };
  return { help: values.help === true, iterations: int('iterations', 10, 1), warmup: int('warmup', 1, 0) };
}

// ---- small helpers ----------------------------------------------------------------------------

const progress = (msg) => process.stderr.write(`  … ${msg}\n`);

/** Runs a host tool; rejects with its stderr. */
function sh(file, args, opts = {}) {
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 60_000, killSignal: 'SIGKILL', cwd: opts.cwd, maxBuffer: 16 * MiB },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${file} ${args.join(' ')}: ${String(stderr).trim() || err.message}`));
        else resolve(String(stdout));
      },
    );
  });
}

/** Nearest-rank percentiles. */
function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return { n: 0 };
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, p50: q(0.5), p95: q(0.95), min: s[0], max: s[s.length - 1] };
}

const fmt = (x, digits = 1) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));
const verdict = (value, target) => (value === undefined ? 'n/a' : value <= target ? 'PASS' : 'MISS');

/** Prints an aligned table (`header` null: none); `align` has one letter per column, `l` or `r`. */
function printTable(header, rows, align) {
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

function meminfo() {
  const text = readFileSync('/proc/meminfo', 'utf8');
  const get = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN) * 1024;
  return { total: get('MemTotal'), available: get('MemAvailable') };
}

function procStatus(pid) {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
}

function rssBytes(pid) {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(procStatus(pid) ?? '')?.[1];
  return kb === undefined ? 0 : Number(kb) * 1024;
}

/** A pid that no longer runs: gone, or a zombie waiting for whoever reaps it. */
function pidGone(pid) {
  const status = procStatus(pid);
  return status === undefined || /^State:\s+Z/m.test(status);
}

function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** Live (non-zombie) processes whose command line contains `needle`. */
function pidsWith(needle) {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number)
    .filter((pid) => pid !== process.pid && cmdline(pid).includes(needle) && !pidGone(pid));
}

/** Waits until `pid` has exited (`free`: until it is reaped too, so the pid can be reused). */
async function waitGone(pid, { ms = 5000, free = false } = {}) {
  const deadline = performance.now() + ms;
  while (free ? procStatus(pid) !== undefined : !pidGone(pid)) {
    if (performance.now() > deadline)
      throw new Error(`process ${pid} still there${free ? ' (or not reaped)' : ''} after ${ms} ms`);
    await sleep(5);
  }
}

/** Kills a pid only if it is still one of ours (its command line carries `needle`). */
async function killOurs(pid, needle) {
  if (pidGone(pid) || !cmdline(pid).includes(needle)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitGone(pid);
}

async function dirBytes(dir) {
  return Number((await sh('du', ['-sb', dir])).split(/\s/)[0]);
}

/** Existing directories for cgroup path `rel` across every hierarchy (one on v2, many on v1). */
function cgroupDirsFor(rel) {
  const roots = CGROUP_V2
    ? ['/sys/fs/cgroup']
    : readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  return roots.map((r) => join(r, rel)).filter((p) => existsSync(p));
}

async function mountsUnder(dir) {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m) => m && (m === dir || m.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
}

async function runcList(root) {
  if (!existsSync(root)) return [];
  return (await sh('runc', ['--root', root, 'list', '-q'])).split('\n').filter(Boolean);
}

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  const cpuModel =
    /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ??
    os.cpus()[0]?.model;
  const mem = meminfo();
  const version = async (file, args, lines = 1) =>
    (await sh(file, args).catch((e) => `unavailable (${e.message})`))
      .trim()
      .split('\n')
      .slice(0, lines)
      .join(', ');
  const gib = (b) => (b / 1024 ** 3).toFixed(1);
  const tmpFs = (await sh('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '-T', '/tmp']).catch(() => '?'))
    .trim()
    .replace(/\s+/, ' on ');
  console.log('Host');
  printTable(
    null,
    [
      ['kernel', os.release()],
      ['cpu', `${cpuModel} × ${os.cpus().length}`],
      ['memory', `${gib(mem.total)} GiB total, ${gib(mem.available)} GiB available`],
      ['runc', await version('runc', ['--version'], 2)],
      ['criu', await version(CRIU, ['--version'])],
      ['node', process.version],
      [
        'cgroups',
        CGROUP_V2
          ? 'v2'
          : `v1 (hybrid; freezer at ${FREEZER_ROOT}${existsSync(FREEZER_ROOT) ? '' : ': MISSING'})`,
      ],
      ['/tmp', `${tmpFs} (server data dir, snapshot images and the criu baseline's images)`],
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

// ---- state and cleanup --------------------------------------------------------------------------

/** Everything the bench made, so every exit path can undo it. */
const S = {
  tmp: undefined,
  dataDir: undefined,
  /** The server: a child process (its own event loop, so timings are not shared with the bench). */
  server: undefined,
  /** Machines created (or forked) through the API and not killed yet. */
  live: new Set(),
  /** Every machine id the server made for us (for the leak check). */
  machineIds: new Set(),
  /** Reusable snapshots not deleted yet. */
  snapshots: new Set(),
  /** Host processes we started (ChildProcess), and pids of restored baseline processes. */
  children: new Set(),
  restoredPids: new Set(),
  freezerDir: undefined,
};

let cleanupPromise;
function cleanup() {
  cleanupPromise ??= doCleanup();
  return cleanupPromise;
}

async function doCleanup() {
  const problems = [];
  const note = (what) => (err) => problems.push(`${what}: ${err?.message ?? err}`);

  // 1. Snapshots and machines through the API, then the server (by its pid).
  if (S.server) {
    for (const id of [...S.snapshots]) {
      await api('DELETE', `/v1/snapshots/${id}`).then(
        () => S.snapshots.delete(id),
        note(`delete snapshot ${id}`),
      );
    }
    try {
      // Anything the server knows that is not killed (fork children included).
      const page = await api('GET', '/v1/machines?limit=1000');
      for (const m of page.items ?? []) {
        S.machineIds.add(m.id);
        if (m.status !== 'killed') S.live.add(m.id);
      }
    } catch (err) {
      note('list machines')(err);
    }
    for (const id of [...S.live]) {
      await api('DELETE', `/v1/machines/${id}`).then(() => S.live.delete(id), note(`kill ${id} via the API`));
    }
    await stopServer().catch(note('stop server'));
  }
  // 2. Baselines: thaw and empty our freezer cgroup, kill what we started, by pid.
  if (S.freezerDir && existsSync(S.freezerDir)) {
    try {
      writeFileSync(join(S.freezerDir, 'freezer.state'), 'THAWED');
    } catch (err) {
      note('thaw freezer cgroup')(err);
    }
  }
  for (const pid of S.restoredPids) await killOurs(pid, MARK).catch(note(`criu baseline process ${pid}`));
  for (const child of S.children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await waitGone(child.pid).catch(note(`process ${child.pid}`));
  }
  if (S.freezerDir && existsSync(S.freezerDir)) {
    for (let i = 0; i < 50 && existsSync(S.freezerDir); i++) {
      try {
        rmdirSync(S.freezerDir);
      } catch (err) {
        if (i === 49) note(`rmdir ${S.freezerDir}`)(err);
        else await sleep(20);
      }
    }
  }
  if (!S.tmp) return { problems, leaks: [], checked: 0 };

  // 3. Runtime leftovers: containers in the server's runc root, network namespaces.
  const machinesDir = join(S.dataDir, 'machines');
  if (existsSync(machinesDir)) for (const id of readdirSync(machinesDir)) S.machineIds.add(id);
  const runcRoot = join(S.dataDir, 'runc');
  for (const id of await runcList(runcRoot).catch(() => [])) {
    S.machineIds.add(id);
    await sh('runc', ['--root', runcRoot, 'delete', '--force', id]).catch(note(`runc delete ${id}`));
  }
  for (const id of S.machineIds) {
    if (existsSync(`/run/netns/ns-${id}`))
      await sh('ip', ['netns', 'delete', `ns-${id}`]).catch(note(`netns ns-${id}`));
  }
  // 4. Mounts under the temp dir, deepest first (overlays before the disks under them).
  for (const m of await mountsUnder(S.tmp)) {
    await sh('umount', [m]).catch(() => sh('umount', ['-l', m]).catch(note(`umount ${m}`)));
  }

  // 5. Check, then remove the temp dir (never while something is still mounted in it).
  const leaks = [];
  for (const id of await runcList(runcRoot).catch(() => [])) leaks.push(`runc container ${id}`);
  const mounts = await mountsUnder(S.tmp);
  leaks.push(...mounts.map((m) => `mount ${m}`));
  const loops = (await sh('losetup', ['-a']).catch(() => ''))
    .split('\n')
    .filter((l) => l.includes(`${S.tmp}/`));
  leaks.push(...loops.map((l) => `loop device ${l}`));
  if (mounts.length === 0) await rm(S.tmp, { recursive: true, force: true }).catch(note(`rm ${S.tmp}`));
  if (existsSync(S.tmp)) leaks.push(`temp dir ${S.tmp}`);
  for (const id of S.machineIds) {
    if (existsSync(`/run/netns/ns-${id}`)) leaks.push(`netns /run/netns/ns-${id}`);
    leaks.push(...cgroupDirsFor(`${MACHINE_CGROUP_PARENT}/${id}`).map((d) => `cgroup ${d}`));
  }
  if (S.freezerDir && existsSync(S.freezerDir)) leaks.push(`cgroup ${S.freezerDir}`);
  if (S.server && !pidGone(S.server.child.pid)) leaks.push(`server process ${S.server.child.pid}`);
  for (const child of S.children) if (!pidGone(child.pid)) leaks.push(`process ${child.pid}`);
  for (const pid of pidsWith(MARK)) leaks.push(`process ${pid} (${cmdline(pid).slice(0, 60)}…)`);
  return { problems, leaks, checked: S.machineIds.size };
}

let interrupted;
function checkInterrupted() {
  if (interrupted) throw new Error(`interrupted by ${interrupted}`);
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (!interrupted) {
      interrupted = sig;
      process.stderr.write(`\n${sig}: stopping after the current step, then cleaning up (again to force)\n`);
      return;
    }
    process.stderr.write(`${sig} again: cleaning up now\n`);
    finish(130).then((code) => process.exit(code));
  });
}

// ---- the server, in its own process ------------------------------------------------------------

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
 * Starts `startServer` in a child node process (own process group, so a ^C reaches only the bench,
 * which then kills the machines before stopping it) with every setting explicit and no NULLSPACE_*
 * variable inherited. Resolves with its URL and API key.
 */
async function startServerProcess(templatesDir) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NULLSPACE_')));
  env.NSBENCH_SERVER_CONFIG = JSON.stringify({
    host: '127.0.0.1',
    port: 0,
    dataDir: S.dataDir,
    templatesDir,
    snapshotsDir: join(S.dataDir, 'snapshots'),
    logLevel: 'warn',
  });
  const child = spawn(process.execPath, ['--input-type=module', '-e', SERVER_MAIN], {
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
  Object.assign(S.server, { url, apiKey });
}

async function stopServer() {
  const { child } = S.server;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

// ---- HTTP ---------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(method, path, status, body) {
    super(
      `${method} ${path}: HTTP ${status} ${body?.error?.code ?? ''} ${body?.error?.message ?? ''}`.trim(),
    );
    this.status = status;
    this.code = body?.error?.code;
  }
}

/** One request with the API key; resolves with the parsed JSON body once it has fully arrived. */
async function api(method, path, body) {
  const res = await fetch(`${S.server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${S.server.apiKey}`,
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
  if (!res.ok) throw new ApiError(method, path, res.status, json);
  return json;
}

async function createMachine(extra = {}) {
  const info = await api('POST', '/v1/machines', {
    template: TEMPLATE,
    timeout: MACHINE_TIMEOUT_S,
    ...extra,
  });
  S.live.add(info.id);
  S.machineIds.add(info.id);
  return info;
}

async function killMachine(id) {
  await api('DELETE', `/v1/machines/${id}`);
  S.live.delete(id);
}

async function run(id, cmd, opts = {}) {
  const r = await api('POST', `/v1/machines/${id}/commands`, { cmd, ...opts });
  if (r.exit_code !== 0) throw new Error(`${cmd} in ${id} exited ${r.exit_code}: ${r.stderr}`);
  return r;
}

function expectStatus(info, status, what) {
  if (info?.status !== status) throw new Error(`${what}: status ${info?.status}, expected ${status}`);
  return info;
}

/** Times `fn` (ms); resolves with [ms, result]. */
async function timed(fn) {
  const t0 = performance.now();
  const result = await fn();
  return [performance.now() - t0, result];
}

// ---- ballast: ~100 MiB resident -----------------------------------------------------------------

const ballastPython = (tag) =>
  `import time; tag="${tag}"; b=bytearray(${BALLAST_MIB}*1024*1024); ` +
  '[b.__setitem__(i,1) for i in range(0,len(b),4096)]; time.sleep(1e9)';

async function waitRss(pids, what) {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const rss = pids().reduce((sum, pid) => sum + rssBytes(pid), 0);
    if (rss >= BALLAST_MIB * MiB) return rss;
    if (performance.now() > deadline)
      throw new Error(`${what}: resident ${fmt(rss / MiB)} MiB after 20 s, expected ≥ ${BALLAST_MIB}`);
    await sleep(50);
  }
}

/** The ballast processes of one machine, seen from the host (same kernel). */
const machineBallastPids = (machineId) => () => pidsWith(`${MARK}-${machineId}`);

async function startMachineBallast(machineId) {
  const py = ballastPython(`${MARK}-${machineId}`);
  await run(machineId, `nohup python3 -c '${py}' >/dev/null 2>&1 </dev/null &`, { shell: true });
  return waitRss(machineBallastPids(machineId), `ballast in ${machineId}`);
}

// ---- baselines ------------------------------------------------------------------------------------

/** A plain `sleep` in our own freezer cgroup (v1). */
async function makeFreezerBaseline() {
  if (!existsSync(FREEZER_ROOT)) return undefined;
  S.freezerDir = join(FREEZER_ROOT, `nullspace-bench-${process.pid}`);
  await mkdir(S.freezerDir);
  const child = spawn('/bin/sleep', ['1000000', MARK], { stdio: 'ignore' });
  S.children.add(child);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  writeFileSync(join(S.freezerDir, 'cgroup.procs'), String(child.pid));
  const state = join(S.freezerDir, 'freezer.state');
  /** Writes `to` and reads freezer.state until it says so (as runc does); ms. */
  const transition = (to) => {
    const t0 = performance.now();
    writeFileSync(state, to);
    for (let i = 0; readFileSync(state, 'utf8').trim() !== to; i++) {
      if (i > 1_000_000) throw new Error(`freezer.state never reached ${to}`);
    }
    return performance.now() - t0;
  };
  return { freeze: () => transition('FROZEN'), thaw: () => transition('THAWED') };
}

/**
 * A plain host python holding the same 100 MiB (setsid, stdio /dev/null), dumped and restored with
 * criu as it is: `dump` kills it, `restore -d` brings it back under the same pid.
 */
async function makeCriuBaseline() {
  const tag = `${MARK}-host`;
  const child = spawn('/usr/bin/python3', ['-c', ballastPython(tag)], { stdio: 'ignore', detached: true });
  // Tracked by pid (with its tag checked before a kill): after a restore the same pid is no longer
  // node's child.
  S.restoredPids.add(child.pid);
  await new Promise((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid;
  const rss = await waitRss(() => [pid], 'host ballast');
  let n = 0;
  const imagesDir = () => join(S.tmp, 'criu', String(n));
  const criu = async (args, dir, log) => {
    try {
      await sh(CRIU, [...args, '-D', dir, '-o', log], { timeoutMs: 60_000 });
    } catch (err) {
      const text = await readFile(join(dir, log), 'utf8').catch(() => '');
      const errors = text
        .split('\n')
        .filter((l) => /Error|error/.test(l))
        .slice(0, 3)
        .join(' | ');
      throw new Error(`${err.message}${errors ? `: ${errors}` : ''}`);
    }
  };
  return {
    pid,
    rss,
    /** `criu dump` (the process ends) then `criu restore -d`; ms each, and the image size. */
    async dumpRestore() {
      n++;
      const dir = imagesDir();
      await mkdir(dir, { recursive: true });
      const t0 = performance.now();
      await criu(['dump', '-t', String(pid)], dir, 'dump.log');
      const t1 = performance.now();
      // criu restores the same pid: it must be free (node reaps its child, pid 1 a restored one).
      await waitGone(pid, { free: true });
      const bytes = await dirBytes(dir);
      const t2 = performance.now();
      await criu(['restore', '-d', '--pidfile', join(dir, 'restore.pid')], dir, 'restore.log');
      const t3 = performance.now();
      const restored = Number(readFileSync(join(dir, 'restore.pid'), 'utf8').trim());
      S.restoredPids.add(restored);
      if (restored !== pid) throw new Error(`criu restored pid ${restored}, expected ${pid}`);
      await rm(dir, { recursive: true, force: true });
      return { dump: t1 - t0, restore: t3 - t2, bytes };
    },
    /** `criu dump --leave-running`: the process is frozen for about this long; ms. */
    async dumpLeaveRunning() {
      n++;
      const dir = imagesDir();
      await mkdir(dir, { recursive: true });
      const t0 = performance.now();
      await criu(['dump', '--leave-running', '-t', String(pid)], dir, 'dump.log');
      const ms = performance.now() - t0;
      await rm(dir, { recursive: true, force: true });
      return ms;
    },
    residentNow: () => rssBytes(pid),
  };
}

// ---- lifecycle events -----------------------------------------------------------------------------

/** The machine's newest event id (pages through the long-poll route with wait_ms=0). */
async function lastEventId(machineId, after = 0) {
  let cursor = after;
  for (;;) {
    const page = await api(
      'GET',
      `/v1/machines/${machineId}/lifecycle/events?after_event_id=${cursor}&limit=1000`,
    );
    cursor = page.last_event_id;
    if (page.events.length < 1000) return cursor;
  }
}

const isPausedEvent = (e) => e.type === 'status_changed' && e.status === 'paused';

/**
 * Long-polls from `after` until an event matching `pred` arrives; resolves with its arrival time
 * (performance.now() when the page holding it had fully arrived) and the number of polls it took.
 */
async function longPollFor(machineId, after, pred) {
  let cursor = after;
  for (let polls = 1; ; polls++) {
    const page = await api(
      'GET',
      `/v1/machines/${machineId}/lifecycle/events?after_event_id=${cursor}&wait_ms=${POLL_WAIT_MS}`,
    );
    const at = performance.now();
    const hit = page.events.find(pred);
    if (hit) return { at, polls, event: hit };
    if (page.events.length === 0 && polls > 3) throw new Error('long poll: no paused event within 3 polls');
    cursor = page.last_event_id;
  }
}

/** Opens the WebSocket route (live only) with the `ws` package, if it is installed; else a reason. */
async function openWs(machineId) {
  let WebSocket;
  try {
    ({ WebSocket } = await import('ws'));
    WebSocket ??= (await import('ws')).default;
  } catch (err) {
    return { unavailable: `the ws package is not installed (${err.code ?? err.message})` };
  }
  const url = `${S.server.url.replace(/^http/, 'ws')}/v1/machines/${machineId}/lifecycle/ws?live_only=true`;
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${S.server.apiKey}` } });
  const waiters = new Set();
  ws.on('message', (data) => {
    const at = performance.now();
    let msg;
    try {
      msg = JSON.parse(String(data));
    } catch {
      return;
    }
    for (const w of waiters) w(msg, at);
  });
  const next = (pred, ms = 10_000) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`WebSocket: nothing matching within ${ms} ms`));
      }, ms);
      const w = (msg, at) => {
        if (!pred(msg)) return;
        clearTimeout(timer);
        waiters.delete(w);
        resolve({ msg, at });
      };
      waiters.add(w);
    });
  // With live_only the server says `live` at once; wait for it (briefly) so no event is missed.
  const live = next((m) => m.type === 'live', 2000);
  live.catch(() => undefined);
  try {
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  } catch (err) {
    ws.terminate();
    return { unavailable: `WebSocket route: ${err.message}` };
  }
  ws.on('error', () => undefined); // a late error shows up as a missing event instead
  const sawLive = await live.then(
    () => true,
    () => false,
  );
  return { ws, next, sawLive };
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(opts, templatesDir) {
  const { iterations: n, warmup } = opts;
  const R = {};
  const push = (key, x) => {
    R[key] ??= [];
    R[key].push(x);
  };
  const info = {};

  S.tmp = mkdtempSync('/tmp/nsbench-');
  S.dataDir = join(S.tmp, 'data');
  await mkdir(join(S.tmp, 'criu'), { recursive: true });
  await startServerProcess(templatesDir);
  console.log('');
  printTable(
    null,
    [
      ['server', `${S.server.url} (child process ${S.server.child.pid}), data dir ${S.dataDir}`],
      ['settings', `${n} timed iterations per series, ${warmup} warm-up (not counted) before each`],
    ],
    'll',
  );

  progress('machines: one idle (pause, snapshot, fork, events), one holding 100 MiB (hibernate, snapshot)');
  const idle = await createMachine();
  const heavy = await createMachine();
  info.heavyRssBefore = await startMachineBallast(heavy.id);

  // 1. pause / connect on the idle machine, interleaved with the raw freezer.
  progress(`pause/connect ×${n} (+${warmup}), interleaved with the freezer cgroup baseline`);
  const freezer = await makeFreezerBaseline();
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    const [pauseMs, paused] = await timed(() => api('POST', `/v1/machines/${idle.id}/pause`));
    expectStatus(paused, 'paused', 'pause');
    if (!paused.snapshot_id) throw new Error('pause: no snapshot_id');
    const [resumeMs, resumed] = await timed(() => api('POST', `/v1/machines/${idle.id}/connect`, {}));
    expectStatus(resumed, 'running', 'connect after pause');
    await run(idle.id, 'true', { args: [] }); // it really runs again (untimed)
    const [getMs] = await timed(() => api('GET', `/v1/machines/${idle.id}`));
    const freezeMs = freezer?.freeze();
    const thawMs = freezer?.thaw();
    if (i < 0) continue;
    push('pause', pauseMs);
    push('resume', resumeMs);
    push('get', getMs);
    if (freezer) {
      push('freeze', freezeMs);
      push('thaw', thawMs);
    }
  }

  // 2. hibernate / connect of the 100 MiB machine, interleaved with criu dump/restore of a host process.
  progress(
    `hibernate/connect (${BALLAST_MIB} MiB resident) ×${n} (+${warmup}), interleaved with criu dump/restore`,
  );
  const criu = await makeCriuBaseline();
  info.hostRss = criu.rss;
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    const [hibMs, hib] = await timed(() => api('POST', `/v1/machines/${heavy.id}/hibernate`));
    expectStatus(hib, 'hibernated', 'hibernate');
    if (i === n - 1) {
      const snap = await api('GET', `/v1/snapshots/${hib.snapshot_id}`).catch(() => undefined);
      info.hibernateImageBytes = snap?.size_bytes;
    }
    const [resMs, res] = await timed(() => api('POST', `/v1/machines/${heavy.id}/connect`, {}));
    expectStatus(res, 'running', 'connect after hibernate');
    await run(heavy.id, 'true', { args: [] });
    const raw = await criu.dumpRestore();
    if (i < 0) continue;
    push('hibernate', hibMs);
    push('restore', resMs);
    push('criuDump', raw.dump);
    push('criuRestore', raw.restore);
    info.criuImageBytes = raw.bytes;
  }
  info.heavyRssAfter = machineBallastPids(heavy.id)().reduce((sum, pid) => sum + rssBytes(pid), 0);
  info.hostRssAfter = criu.residentNow();

  // 3. reusable snapshots of both machines; paused_ms as the server reports it, and the wall time.
  progress(`snapshots ×${n} (+${warmup}) of each machine, interleaved with criu dump --leave-running`);
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    for (const [key, m] of [
      ['snapIdle', idle],
      ['snapHeavy', heavy],
    ]) {
      const [ms, snap] = await timed(() => api('POST', `/v1/machines/${m.id}/snapshots`));
      S.snapshots.add(snap.id);
      if (snap.kind !== 'reusable') throw new Error(`snapshot kind ${snap.kind}`);
      await api('DELETE', `/v1/snapshots/${snap.id}`);
      S.snapshots.delete(snap.id);
      if (i < 0) continue;
      push(`${key}Wall`, ms);
      push(`${key}Paused`, snap.paused_ms);
      info[`${key}Bytes`] = snap.size_bytes;
    }
    const leaveRunningMs = await criu.dumpLeaveRunning();
    if (i >= 0) push('criuLeaveRunning', leaveRunningMs);
  }
  await run(idle.id, 'true', { args: [] });
  await run(heavy.id, 'true', { args: [] });

  // 4. fork the idle machine until the child runs `true`; baseline: a fresh create from the template.
  progress(`fork ×${n} (+${warmup}), interleaved with create-from-template`);
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    const t0 = performance.now();
    const forked = await api('POST', `/v1/machines/${idle.id}/fork`, { count: 1 });
    const t1 = performance.now();
    const child = forked.children?.[0];
    if (!child || child.error) throw new Error(`fork: ${child?.error?.code} ${child?.error?.message}`);
    S.live.add(child.id);
    S.machineIds.add(child.id);
    await run(child.id, 'true', { args: [] });
    const t2 = performance.now();
    const [killMs] = await timed(() => killMachine(child.id));
    const [createMs, fresh] = await timed(() => createMachine());
    await killMachine(fresh.id);
    if (i < 0) continue;
    push('forkHttp', t1 - t0);
    push('fork', t2 - t0);
    push('forkKill', killMs);
    push('create', createMs);
  }

  // 5. event delivery: subscribe, pause, time the `status_changed → paused` event.
  progress(`event delivery ×${n} (+${warmup}): long poll (wait_ms) and WebSocket`);
  let cursor;
  try {
    cursor = await lastEventId(idle.id);
  } catch (err) {
    info.pollUnavailable = err instanceof ApiError ? `${err.status} ${err.code ?? ''}`.trim() : err.message;
  }
  if (cursor !== undefined) {
    for (let i = -warmup; i < n; i++) {
      checkInterrupted();
      const sub = longPollFor(idle.id, cursor, isPausedEvent);
      sub.catch(() => undefined); // awaited below
      await sleep(SUBSCRIBE_SETTLE_MS); // let the poll reach the server and wait there
      const t0 = performance.now();
      expectStatus(await api('POST', `/v1/machines/${idle.id}/pause`), 'paused', 'pause');
      const t1 = performance.now();
      const got = await sub;
      await api('POST', `/v1/machines/${idle.id}/connect`, {});
      cursor = await lastEventId(idle.id, got.event.id);
      if (i < 0) continue;
      push('pollAfterResponse', got.at - t1);
      push('pollAfterSend', got.at - t0);
      push('pollPolls', got.polls);
    }
  }
  const wsConn = await openWs(idle.id);
  if (wsConn.unavailable) info.wsUnavailable = wsConn.unavailable;
  else {
    if (!wsConn.sawLive) info.wsNoLive = true;
    try {
      for (let i = -warmup; i < n; i++) {
        checkInterrupted();
        const ev = wsConn.next((m) => m.type === 'event' && isPausedEvent(m.event));
        ev.catch(() => undefined);
        const t0 = performance.now();
        expectStatus(await api('POST', `/v1/machines/${idle.id}/pause`), 'paused', 'pause');
        const t1 = performance.now();
        const { at } = await ev;
        await api('POST', `/v1/machines/${idle.id}/connect`, {});
        if (i < 0) continue;
        push('wsAfterResponse', at - t1);
        push('wsAfterSend', at - t0);
      }
    } catch (err) {
      info.wsUnavailable = `failed: ${err.message}`;
      R.wsAfterResponse = [];
      R.wsAfterSend = [];
    } finally {
      wsConn.ws.terminate();
    }
  }

  // The machines still hold their state after all that.
  await run(idle.id, 'true', { args: [] });
  info.heavyRssEnd = machineBallastPids(heavy.id)().reduce((sum, pid) => sum + rssBytes(pid), 0);
  await killMachine(idle.id);
  await killMachine(heavy.id);
  return { R, info, n };
}

function report({ R, info }) {
  const s = Object.fromEntries(Object.entries(R).map(([key, xs]) => [key, stats(xs)]));
  const row = (label, st, target) =>
    st === undefined || st.n === 0
      ? [label, 0, '-', '-', '-', '-', target === undefined ? '' : `≤ ${target}`, 'n/a']
      : [
          label,
          st.n,
          fmt(st.p50),
          fmt(st.p95),
          fmt(st.min),
          fmt(st.max),
          target === undefined ? '' : `≤ ${target}`,
          target === undefined ? '' : verdict(st.p50, target),
        ];
  const mib = (b) => (b === undefined ? '?' : `${fmt(b / MiB)} MiB`);
  console.log('\nLatency (ms; p50/p95 nearest-rank, min, max; the target applies to p50)');
  const rows = [
    ['1. pause (POST /pause, HTTP round trip)', s.pause, TARGETS.pause],
    ['   resume from pause (POST /connect)', s.resume, TARGETS.resume],
    ...(s.freeze?.n
      ? [
          ['   baseline: freezer.state FROZEN, plain process (v1)', s.freeze],
          ['   baseline: freezer.state THAWED', s.thaw],
        ]
      : [['   baseline: no v1 freezer hierarchy', undefined]]),
    ['   baseline: GET /v1/machines/{id} (HTTP + DB floor)', s.get],
    [`2. hibernate, ${BALLAST_MIB} MiB resident (POST /hibernate)`, s.hibernate, TARGETS.hibernate],
    ['   resume from hibernation (POST /connect)', s.restore, TARGETS.restore],
    [`   baseline: criu dump, plain process, ${BALLAST_MIB} MiB`, s.criuDump],
    ['   baseline: criu restore -d', s.criuRestore],
    ['3. snapshot of the idle machine: paused_ms', s.snapIdlePaused, TARGETS.snapshotPaused],
    ['   the same, POST /snapshots wall time', s.snapIdleWall],
    [`   snapshot, ${BALLAST_MIB} MiB machine: paused_ms`, s.snapHeavyPaused, TARGETS.snapshotPaused],
    ['   the same, POST /snapshots wall time', s.snapHeavyWall],
    [`   baseline: criu dump --leave-running, ${BALLAST_MIB} MiB`, s.criuLeaveRunning],
    ['4. fork {count:1} until the child runs `true`', s.fork, TARGETS.fork],
    ['   of which POST /fork', s.forkHttp],
    ['   kill of the child (not part of fork)', s.forkKill],
    ['   baseline: create from the template (agent answers)', s.create],
  ];
  if (s.pollAfterResponse?.n) {
    rows.push(
      ['5. event `paused` via long poll, after the response', s.pollAfterResponse, TARGETS.event],
      ['   the same, after the pause request was sent', s.pollAfterSend],
    );
  } else rows.push(['5. event via long poll: not available (below)', undefined, TARGETS.event]);
  if (s.wsAfterResponse?.n) {
    rows.push(
      ['   event `paused` via WebSocket, after the response', s.wsAfterResponse, TARGETS.event],
      ['   the same, after the pause request was sent', s.wsAfterSend],
    );
  } else rows.push(['   event via WebSocket: not available (below)', undefined, TARGETS.event]);
  printTable(
    ['figure', 'n', 'p50', 'p95', 'min', 'max', 'target', 'result'],
    rows.map(([label, st, target]) => row(label, st, target)),
    'lrrrrrrl',
  );

  console.log('\nSizes and checks');
  const pollPolls = s.pollPolls?.n ? `${s.pollPolls.min}–${s.pollPolls.max} polls per event` : 'n/a';
  printTable(
    null,
    [
      [
        `ballast resident in the ${BALLAST_MIB} MiB machine`,
        `${mib(info.heavyRssBefore)} before, ${mib(info.heavyRssAfter)} after the hibernate series, ${mib(info.heavyRssEnd)} at the end`,
      ],
      [
        'host ballast (criu baseline) resident',
        `${mib(info.hostRss)} before, ${mib(info.hostRssAfter)} after`,
      ],
      [
        'hibernation image (size_bytes) / raw criu image',
        `${mib(info.hibernateImageBytes)} / ${mib(info.criuImageBytes)}`,
      ],
      [
        'reusable snapshot size_bytes: idle / 100 MiB machine',
        `${mib(info.snapIdleBytes)} / ${mib(info.snapHeavyBytes)}`,
      ],
      ['long poll: polls until the paused event', pollPolls],
      ...(info.pollUnavailable ? [['long poll route', `not available: ${info.pollUnavailable}`]] : []),
      ...(info.wsUnavailable ? [['WebSocket route', `not available: ${info.wsUnavailable}`]] : []),
      ...(info.wsNoLive
        ? [['WebSocket route', 'no `live` message within 2 s of opening (live_only=true)']]
        : []),
    ],
    'll',
  );
}

async function main() {
  let opts;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    console.error(`${err.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    console.error('bench/lifecycle.mjs needs root (runc, criu, cgroups)');
    return 2;
  }
  const templatesDir = process.env.NULLSPACE_TEMPLATES_DIR || DEFAULT_TEMPLATES_DIR;
  if (!existsSync(join(templatesDir, TEMPLATE, 'rootfs', 'usr', 'bin', 'python3'))) {
    console.error(`no ${TEMPLATE} template with python3 at ${join(templatesDir, TEMPLATE, 'rootfs')}`);
    return 2;
  }
  for (const f of [CRIU, '/usr/bin/python3']) {
    if (!existsSync(f) || !(statSync(f).mode & 0o111)) {
      console.error(`${f} is needed for the baselines`);
      return 2;
    }
  }

  console.log('Nullspace lifecycle benchmark\n');
  await describeHost(templatesDir);
  let code = 0;
  try {
    report(await bench(opts, templatesDir));
  } catch (err) {
    if (interrupted) {
      console.error(`\nbench interrupted by ${interrupted}`);
      code = 130;
    } else {
      console.error(`\nbench failed: ${err?.stack ?? err}`);
      code = 1;
    }
  }
  return finish(code);
}

/** Cleans up, checks for leaks and prints the verdict (once); returns the exit code. */
let finishPromise;
function finish(code) {
  finishPromise ??= doFinish(code);
  return finishPromise;
}

async function doFinish(code) {
  progress('cleanup');
  const { problems, leaks, checked } = await cleanup();
  for (const p of problems) console.error(`cleanup problem: ${p}`);
  if (leaks.length > 0) {
    console.error(`\nLEAKED (${leaks.length}):`);
    for (const l of leaks) console.error(`  ${l}`);
    return 1;
  }
  console.log(
    `\nCleanup: ${checked} machines checked: no runc container, mount, loop device, netns or cgroup left;` +
      ' server stopped, baseline processes and freezer cgroup gone, temp dir removed' +
      `${problems.length ? ` (${problems.length} cleanup problems, see stderr)` : ''}.`,
  );
  if (code === 0) console.log('Targets are informational: a MISS does not fail the bench.');
  return problems.length > 0 ? 1 : code;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    console.error(`bench crashed: ${err?.stack ?? err}`);
    process.exit(await finish(1).catch(() => 1));
  },
);
