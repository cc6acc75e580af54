#!/usr/bin/env node
/**
 * Burst benchmark (issue 19, items 4 and 5): the cost of a create under a burst and with many
 * machines alive. Each build's server runs in its own process and its own cpuacct cgroup (so the
 * host tools it spawns are counted with it); with NSBENCH_BASELINE_REPO a baseline checkout's
 * server runs beside this one's and every series alternates between the two.
 * Run as root from the repository root: `node bench/burst.mjs [--burst N] [--rounds R] [--alive K]`.
 * See bench/README.md.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CGROUP_V2,
  MACHINE_TIMEOUT_S,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  apiRequest,
  checkInterrupted,
  cleanUpRun,
  fmt,
  machineCpu,
  makeRunDir,
  printHost,
  printTable,
  processCpuMs,
  progress,
  readClockTicks,
  runBench,
  runState,
  sh,
  startServerProcess,
  stats,
  stopServerAndMachines,
  templateHas,
  toolVersion,
  trackMachine,
  verdict,
} from './lib.mjs';

const TARGETS = { burstAllMs: 5000, cpuPerCreateMs: 100, aliveRatio: 1.2 };

const USAGE = `usage: node bench/burst.mjs [options]   (as root, from the repository root)
  --burst N    creates sent at once, all awaited together (default 100)
  --rounds R   bursts per build, alternating between the builds (default 2; 0: none)
  --alive K    machines kept alive by each build for the lone-create series (default 500; 0: skip it)
  --lone N     lone creates with none alive and with K alive, per build, alternating (default 10)
  --fill N     creates in flight while filling to K (default 16)
environment: NSBENCH_BASELINE_REPO=DIR  another checkout (built): its server runs beside this
  one's (each in its own process, data dir, address pool and cgroup), series alternate
${USAGE_ENVIRONMENT}`;

/**
 * Each build's server gets a pool of its own, so the two never meet on the host, and apart from the
 * default pool (10.213.0.0/16) and the driver conformance suite's (10.214.0.0/16, blocks taken
 * without host-wide claims): a bench beside a running suite must not take its interface names.
 */
const POOLS = ['10.218.0.0/16', '10.219.0.0/16'];

// ---- CPU accounting --------------------------------------------------------------------------

const CPUACCT = ['cpuacct', 'cpu,cpuacct'].map((h) => `/sys/fs/cgroup/${h}`).find((d) => existsSync(d));

/**
 * A cgroup the server process is moved into right after it started (cgroups v1 cpuacct, or v2):
 * every host tool it spawns starts in it and is counted there, alive or reaped — except what runc
 * moves into the machine's own cgroup (`runc init`, the machine's processes: counted per machine).
 */
function serverCgroup(name) {
  const dir = CGROUP_V2 ? `/sys/fs/cgroup/${name}` : CPUACCT ? join(CPUACCT, name) : undefined;
  if (!dir) return undefined;
  mkdirSync(dir, { recursive: true });
  return {
    dir,
    // The process and every descendant it already has: the server starts its host shell (which
    // forks every host tool) while it starts, before it is moved here.
    join: (pid) => {
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      for (const p of descendants(pid)) {
        try {
          writeFileSync(join(dir, 'cgroup.procs'), String(p));
        } catch (err) {
          // A host tool that ended meanwhile (a server making networks ahead as it starts).
          if (err.code !== 'ESRCH') throw err;
        }
      }
    },
    usageMs: () =>
      CGROUP_V2
        ? Number(/usage_usec (\d+)/.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'))?.[1]) / 1000
        : Number(readFileSync(join(dir, 'cpuacct.usage'), 'utf8').trim()) / 1e6,
    remove: () => {
      try {
        rmdirSync(dir);
      } catch {
        // still has members (the server did not stop): reported by the leak check
      }
    },
  };
}

/** The descendants of process `pid` now (from /proc/PID/task/TID/children). */
function descendants(pid) {
  const out = [];
  let tids = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // the process is gone
  }
  for (const tid of tids) {
    let kids = '';
    try {
      kids = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
    } catch {
      // the thread ended meanwhile
    }
    for (const kid of kids ? kids.split(' ').map(Number) : []) out.push(kid, ...descendants(kid));
  }
  return out;
}

/** CPU the whole host has been busy (ms, all cores: user, nice, system, irq, softirq, steal). */
function hostBusyMs() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return ((f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) * 1000) / CLK;
}
let CLK = 100;

// ---- the two builds --------------------------------------------------------------------------

const builds = [];

async function startBuild(name, repo, templatesDir, pool, maxMachines) {
  const S = runState({ name, repo, cg: undefined });
  makeRunDir(S);
  await startServerProcess(S, templatesDir, {
    repo,
    config: { machineNetwork: pool, maxMachines },
    args: ['nsbench-burst'],
  });
  // Listed before anything else can fail: the cleanup stops the servers it lists.
  builds.push(S);
  S.cg = serverCgroup(`nsbench-burst-${process.pid}-${builds.length - 1}`);
  S.cg?.join(S.server.child.pid);
  return S;
}

/** The server's CPU so far (ms): its cgroup when there is one, else it and its reaped children. */
const serverCpuMs = (S) => (S.cg ? S.cg.usageMs() : processCpuMs(S.server.child.pid, { children: true }));

async function create(S) {
  const info = await apiRequest(S.server, 'POST', '/v1/machines', {
    template: TEMPLATE,
    timeout: MACHINE_TIMEOUT_S,
  });
  trackMachine(S, info.id);
  return info.id;
}

async function kill(S, id) {
  await apiRequest(S.server, 'DELETE', `/v1/machines/${id}`);
  S.live.delete(id);
}

/** Kills `ids` with `inFlight` kills at once; resolves with the wall time (ms). */
async function killAll(S, ids, inFlight = 16) {
  const queue = [...ids];
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let id = queue.shift(); id; id = queue.shift()) await kill(S, id);
    }),
  );
  return performance.now() - t0;
}

/** Waits until the server's teardowns are done (no machine directory left), up to `ms`. */
async function waitTeardowns(S, ms = 120_000) {
  const dir = join(S.dataDir, 'machines');
  const until = Date.now() + ms;
  while (Date.now() < until && existsSync(dir) && readdirSync(dir).length > 0) await sleep(200);
}

/**
 * One burst: `n` creates sent at once, each timed until its answer. CPU over the burst (until the
 * last answered): the server's cgroup (server + host tools), the new machines' cgroups (runc init,
 * tini, the agent's start), the whole host. Then every machine is killed (16 in flight) and the
 * teardowns are waited for, outside the measured span.
 */
async function burst(S, n) {
  const before = { server: serverCpuMs(S), host: hostBusyMs(), at: performance.now() };
  const createMs = [];
  const errors = [];
  const ids = [];
  await Promise.all(
    Array.from({ length: n }, async () => {
      const t = performance.now();
      try {
        ids.push(await create(S));
        createMs.push(performance.now() - t);
      } catch (err) {
        errors.push(err?.message ?? String(err));
      }
    }),
  );
  const after = { server: serverCpuMs(S), host: hostBusyMs(), at: performance.now() };
  const machinesMs = ids.reduce((sum, id) => sum + (machineCpu(id).usageMs || 0), 0);
  const killMs = await killAll(S, ids);
  await waitTeardowns(S);
  return {
    ok: ids.length,
    errors,
    allMs: after.at - before.at,
    createMs,
    serverMs: after.server - before.server,
    machinesMs,
    hostMs: after.host - before.host,
    killPerS: ids.length / (killMs / 1000),
  };
}

/**
 * `n` lone creates, each timed until the create answered, with the CPU it cost: the server's
 * cgroup (server and host tools) from the request until the answer, plus the new machine's own
 * cgroup then. Each is killed and its teardown waited for (its directory gone) before the next, so
 * that no teardown's work lands in the next create's time or CPU.
 */
async function lone(S, n, into, cpu = []) {
  for (let i = 0; i < n; i++) {
    checkInterrupted();
    const c0 = serverCpuMs(S);
    const t = performance.now();
    const id = await create(S);
    into.push(performance.now() - t);
    cpu.push(serverCpuMs(S) - c0 + (machineCpu(id).usageMs || 0));
    await kill(S, id);
    const dir = join(S.dataDir, 'machines', id);
    for (const until = Date.now() + 60_000; existsSync(dir) && Date.now() < until; ) await sleep(20);
  }
}

/** Creates until `k` machines are alive, `inFlight` at once; resolves with their ids. */
async function fill(S, k, inFlight) {
  const ids = [];
  let left = k;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (left > 0) {
        left--;
        checkInterrupted();
        ids.push(await create(S));
      }
    }),
  );
  return ids;
}

async function bench(o, templatesDir) {
  await readClockTicks();
  CLK = Number((await sh('getconf', ['CLK_TCK']).catch(() => '100')).trim()) || 100;
  const repos = [['this checkout', process.cwd()]];
  if (process.env.NSBENCH_BASELINE_REPO)
    repos.push([`baseline ${process.env.NSBENCH_BASELINE_REPO}`, process.env.NSBENCH_BASELINE_REPO]);
  const maxMachines = Math.max(o.burst, o.alive) + 20;
  for (const [i, [name, repo]] of repos.entries())
    await startBuild(name, repo, templatesDir, POOLS[i], maxMachines);
  console.log('');
  printTable(
    null,
    builds.map((S) => [
      S.name,
      `${S.server.url} (process ${S.server.child.pid}), data dir ${S.dataDir}, cgroup ${S.cg?.dir ?? 'none: /proc'}`,
    ]),
    'll',
  );
  const load0 = readFileSync('/proc/loadavg', 'utf8').trim();
  const out = { bursts: Object.fromEntries(builds.map((S) => [S.name, []])), lone: {}, load0 };

  // Warm-up: one create per build (page cache, the template's files), not counted.
  for (const S of builds) await lone(S, 1, []);
  for (let r = 0; r < o.rounds; r++) {
    for (const S of r % 2 === 0 ? builds : [...builds].reverse()) {
      checkInterrupted();
      progress(`round ${r + 1}/${o.rounds}: ${o.burst} concurrent creates on ${S.name}`);
      const b = await burst(S, o.burst);
      progress(
        `  ${b.ok}/${o.burst} ok, all answered in ${fmt(b.allMs / 1000, 2)} s, ` +
          `server ${fmt(b.serverMs / o.burst, 0)} + machines ${fmt(b.machinesMs / o.burst, 0)} core-ms/create`,
      );
      out.bursts[S.name].push(b);
    }
  }

  if (o.alive > 0) {
    // Lone creates alternate between the builds (one each, the order flipping), first with none
    // alive, then with K of each build's machines alive (so 2K on the host with a baseline): both
    // builds' figures come from the same minutes and the same host.
    // The series with none alive runs before the fill and again after the kill: the host's load
    // drifts over the minutes between them, and both ends show by how much.
    const r = Object.fromEntries(
      builds.map((S) => [
        S.name,
        { none: [], alive: [], after: [], cpu: { none: [], alive: [], after: [] } },
      ]),
    );
    const alternate = async (key) => {
      for (let i = 0; i < o.lone; i++)
        for (const S of i % 2 === 0 ? builds : [...builds].reverse())
          await lone(S, 1, r[S.name][key], r[S.name].cpu[key]);
    };
    progress(`${o.lone} lone creates per build with none alive, alternating`);
    await alternate('none');
    const ids = new Map();
    for (const S of builds) {
      progress(`${S.name}: filling to ${o.alive} machines, ${o.fill} in flight`);
      const t0 = performance.now();
      ids.set(S, await fill(S, o.alive, o.fill));
      r[S.name].fillS = (performance.now() - t0) / 1000;
    }
    progress(`${o.lone} lone creates per build with ${o.alive} alive each, alternating`);
    await alternate('alive');
    for (const S of builds) {
      progress(`${S.name}: killing ${ids.get(S).length}`);
      r[S.name].killPerS = ids.get(S).length / ((await killAll(S, ids.get(S))) / 1000);
      await waitTeardowns(S, 300_000);
    }
    progress(`${o.lone} lone creates per build with none alive again, alternating`);
    await alternate('after');
    out.lone = r;
  }
  out.load1 = readFileSync('/proc/loadavg', 'utf8').trim();
  return out;
}

function report(out, o) {
  if (o.rounds > 0) printBursts(out, o);
  printVerdicts(out, o);
}

function printBursts(out, o) {
  console.log(
    `\nBursts: ${o.burst} concurrent creates (POST /v1/machines, template ${TEMPLATE}), ${o.rounds} per build, alternating`,
  );
  const rows = [];
  for (const [name, bs] of Object.entries(out.bursts)) {
    for (const [i, b] of bs.entries()) {
      const st = stats(b.createMs);
      const per = (ms) => fmt(ms / o.burst, 0);
      rows.push([
        `${name} #${i + 1}`,
        `${b.ok}/${o.burst}`,
        fmt(b.allMs / 1000, 2),
        fmt(st.p50 / 1000, 2),
        fmt(st.p95 / 1000, 2),
        per(b.serverMs),
        per(b.machinesMs),
        per(b.serverMs + b.machinesMs),
        per(b.hostMs),
        fmt(b.killPerS, 0),
      ]);
      for (const e of b.errors.slice(0, 3)) rows.push(['  error', e.slice(0, 120)]);
    }
  }
  printTable(
    ['build', 'ok', 'all (s)', 'p50 (s)', 'p95 (s)', 'server', 'machines', 'sum', 'host busy', 'kills/s'],
    rows,
    'lrrrrrrrrr',
  );
  console.log(
    '  CPU columns: core-ms per create over the burst (until the last answered): the server process and',
  );
  console.log(
    "  the host tools it spawned (its cgroup); the new machines' cgroups (runc init, tini, the agent's",
  );
  console.log("  start); their sum; the whole host's busy time (other sessions' work included).");
}

function printVerdicts(out, o) {
  console.log('\nVerdicts (this checkout, median of its bursts)');
  const mine = out.bursts['this checkout'] ?? [];
  const med = (xs) => stats(xs).p50;
  const allMs = med(mine.map((b) => b.allMs));
  const cpu = med(mine.map((b) => (b.serverMs + b.machinesMs) / o.burst));
  const allOk = mine.every((b) => b.ok === o.burst);
  const v = [];
  if (mine.length > 0)
    v.push(
      [
        'every create answered',
        `${fmt(allMs / 1000, 2)} s, ${allOk ? 'all' : 'not all'} succeeded`,
        '≤ 5 s, all',
        allOk ? verdict(allMs, TARGETS.burstAllMs) : 'MISS',
      ],
      [
        'host CPU per create (server + tools + machine)',
        `${fmt(cpu, 0)} core-ms`,
        '≤ 100',
        verdict(cpu, TARGETS.cpuPerCreateMs),
      ],
    );
  const lone = out.lone['this checkout'];
  if (lone) {
    // With none alive: both series (before the fill, after the kill) together.
    const none = [...lone.none, ...lone.after];
    const ratio = med(lone.alive) / med(none);
    const cpuRatio = med(lone.cpu.alive) / med([...lone.cpu.none, ...lone.cpu.after]);
    v.push(
      [
        `lone create with ${o.alive} alive / none`,
        `${fmt(med(lone.alive), 0)} / ${fmt(med(none), 0)} ms = ${fmt(ratio, 2)}×`,
        '≤ 1.2×',
        verdict(ratio, TARGETS.aliveRatio),
      ],
      [
        `  its CPU (server + tools + machine), ${o.alive} alive / none`,
        `${fmt(med(lone.cpu.alive), 0)} / ${fmt(med([...lone.cpu.none, ...lone.cpu.after]), 0)} core-ms = ${fmt(cpuRatio, 2)}×`,
        '≤ 1.2×',
        verdict(cpuRatio, TARGETS.aliveRatio),
      ],
    );
  }
  printTable(['figure', 'value', 'bar', ''], v, 'llll');

  if (Object.keys(out.lone).length > 0) {
    console.log(
      `\nLone creates (create answered, ms; CPU: core-ms of the server's cgroup until the answer plus the machine's), with none alive, with ${o.alive} alive per build, and with none again after the kill, alternating`,
    );
    const lr = [];
    for (const [name, r] of Object.entries(out.lone)) {
      for (const [k, xs, cpu] of [
        ['none (before the fill)', r.none, r.cpu.none],
        [`${o.alive} alive`, r.alive, r.cpu.alive],
        ['none (after the kill)', r.after, r.cpu.after],
      ]) {
        const st = stats(xs);
        const c = stats(cpu);
        lr.push([
          name,
          k,
          st.n,
          fmt(st.p50, 0),
          fmt(st.p95, 0),
          fmt(st.min, 0),
          fmt(st.max, 0),
          fmt(c.p50, 0),
          fmt(c.p95, 0),
        ]);
      }
      const none = [...r.none, ...r.after];
      const cpuNone = [...r.cpu.none, ...r.cpu.after];
      lr.push([
        name,
        'ratio of p50s, alive / none (both series)',
        '',
        fmt(med(r.alive) / med(none), 2),
        '',
        '',
        '',
        fmt(med(r.cpu.alive) / med(cpuNone), 2),
        '',
      ]);
      lr.push([
        name,
        `fill to ${o.alive} (${o.fill} in flight)`,
        '',
        `${fmt(r.fillS, 1)} s`,
        '',
        '',
        '',
        '',
        '',
      ]);
      lr.push([name, `kill ${o.alive} (16 in flight)`, '', `${fmt(r.killPerS, 0)}/s`, '', '', '', '', '']);
    }
    printTable(['build', 'series', 'n', 'p50', 'p95', 'min', 'max', 'CPU p50', 'CPU p95'], lr, 'llrrrrrrr');
  }
  console.log(`\nLoad average at the start: ${out.load0}; at the end: ${out.load1}`);
}

let opts;
runBench({
  script: 'bench/burst.mjs',
  usage: USAGE,
  options: {
    burst: ['burst', 100, 1],
    rounds: ['rounds', 2, 0],
    alive: ['alive', 500, 0],
    lone: ['lone', 10, 1],
    fill: ['fill', 16, 1],
  },
  preflight: templateHas(),
  title: 'Burst benchmark: concurrent creates, CPU per create, a lone create with many alive',
  describeHost: async (templatesDir) =>
    printHost(templatesDir, [
      ['runc', await toolVersion('runc', ['--version'])],
      ['node', process.version],
      ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ]),
  bench: (o, templatesDir) => {
    opts = o;
    return bench(o, templatesDir);
  },
  report: (out) => report(out, opts),
  cleanup: async (note) => {
    const leaks = [];
    let checked = 0;
    // Every server stops before any leak check: each check looks for any process with the mark.
    for (const S of builds) {
      await stopServerAndMachines(S, note);
      S.cg?.remove();
    }
    for (const S of builds) {
      const r = await cleanUpRun(S, note, { mark: 'nsbench-burst' });
      leaks.push(...r.leaks);
      checked += r.checked;
    }
    return { leaks, checked };
  },
  cleanedUp: (checked) => `${checked} machines checked with the runtime's inventory, nothing left`,
});
