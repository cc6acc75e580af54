#!/usr/bin/env node
/**
 * Machine start benchmark: the part of a create after the host side is made — the container runtime
 * (runc against crun) and the agent's own start — and a machine created by restoring a snapshot
 * against a cold create, with CRIU's own share. Every series is interleaved with its baseline.
 * Run as root from the repository root: `node bench/start.mjs [--iterations N]`. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient } from '@nullspace/runtime';
import { Machine } from '@nullspace/sdk';
import { startServer } from '@nullspace/server';
import {
  REPO_ROOT,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  checkInterrupted,
  cleanUpRun,
  createMachineViaSdk,
  killChildren,
  killMachineViaSdk,
  latencyRow,
  makeRunDir,
  printHost,
  printLatencyTable,
  printRun,
  progress,
  runBench,
  runState,
  serverConfig,
  sh,
  stats,
  statsOf,
  stopServerAndMachines,
  templateHas,
  toolVersion,
  trackMachine,
} from './lib.mjs';

const USAGE = `usage: node bench/start.mjs [options]   (as root, from the repository root)
  --iterations N   iterations of each series (default 20)
  --warmup N       warm-up runs before each series, not counted (default 2)
  --agent-only 1   only the agent's start on the host (no machines; seconds)
  --builds-only 1  with NSBENCH_BASELINE_REPO: (a) and (d) only, not (b) and (c)
environment: NSBENCH_BASELINE_AGENT=PATH  another build's agent bundle, started beside this one's
  (e.g. /work/main/packages/agent/bundle/agent.mjs)
  NSBENCH_BASELINE_REPO=DIR  another checkout (built): its server runs beside this one's, in this
  process, and cold creates alternate between the two (e.g. /work/main)
${USAGE_ENVIRONMENT}`;

const AGENT_ARGS = ['--max-semi-space-size=1'];

// ---- small helpers --------------------------------------------------------------------------------

/** CPU time (ms) the process's main thread has used: the first field of /proc/PID/schedstat (ns). */
function mainThreadCpuMs(pid) {
  return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6;
}

/** Resolves once the agent at `socket` answers its health check (polled every 1 ms), or throws. */
async function agentAnswers(socket, what, timeoutMs = 30_000) {
  const client = new AgentClient(socket);
  const deadline = performance.now() + timeoutMs;
  try {
    for (;;) {
      if (existsSync(socket)) {
        try {
          await client.health(1000);
          return;
        } catch {
          // bound, not accepting yet
        }
      }
      if (performance.now() > deadline)
        throw new Error(`${what}: the agent did not answer in ${timeoutMs} ms`);
      await sleep(1);
    }
  } finally {
    client.close();
  }
}

/** Spawns with no stdio and resolves when it exits 0 (a detached container must hold no pipe). */
function run(file, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'ignore' });
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')}: exit ${code ?? signal}`)),
    );
  });
}

// ---- state and cleanup ----------------------------------------------------------------------------

/** Besides the server's machines: the runtime series' containers, one host side per runtime. */
const S = runState({ sides: [], shm: undefined, baseline: undefined, baselineIds: new Set() });

async function cleanup(note) {
  if (S.baseline) {
    for (const id of S.baselineIds)
      await fetch(`${S.baseline.url}/v1/machines/${id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${S.baseline.apiKey}` },
      }).catch(note(`kill ${id} on the baseline server`));
    await S.baseline.close().catch(note('baseline server close'));
  }
  await stopServerAndMachines(S, note);
  await killChildren(S.children, note);
  for (const side of S.sides) await side.destroy().catch(note(`tear down ${side.id}`));
  if (S.shm) rmSync(S.shm, { recursive: true, force: true });
  if (!S.tmp) return { leaks: [], checked: 0 };
  return cleanUpRun(S, note, {
    extraRoots: S.sides.map((side) => ({
      root: side.root,
      machinesDir: join(S.tmp, 'rt'),
      ids: new Set([side.id]),
    })),
  });
}

// ---- (a) the agent's start on the host --------------------------------------------------------------

/**
 * One start of an agent bundle (or `node -e 0` with `bundle` undefined) on the host, as the machine
 * starts it (same node flags), until its health check answers (or node exits): wall ms and the main
 * thread's CPU ms at that moment (less sensitive than wall time to other work on the host).
 */
async function agentStartOnce(bundle, n) {
  const socket = join(S.tmp, `agent-${n}.sock`);
  rmSync(socket, { force: true });
  const args = bundle
    ? [...AGENT_ARGS, bundle, '--socket', socket, '--cwd', join(S.tmp, 'workspace')]
    : [...AGENT_ARGS, '-e', '0'];
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  S.children.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    if (!bundle) {
      // Its CPU time is read while it is a zombie: still there, not reaped yet.
      await exited;
      return { wall: performance.now() - t0, cpu: undefined };
    }
    await agentAnswers(socket, bundle, 20_000);
    const wall = performance.now() - t0;
    return { wall, cpu: mainThreadCpuMs(child.pid) };
  } finally {
    child.kill('SIGKILL');
    await exited;
    S.children.delete(child);
    rmSync(socket, { force: true });
  }
}

async function agentSeries(o) {
  const bundles = [['this checkout', join(REPO_ROOT, 'packages/agent/bundle/agent.cjs')]];
  const baseline = process.env.NSBENCH_BASELINE_AGENT;
  if (baseline) bundles.push([`baseline ${baseline}`, baseline]);
  const r = Object.fromEntries([['node -e 0', []], ...bundles.map(([name]) => [name, []])]);
  const cpu = Object.fromEntries(bundles.map(([name]) => [name, []]));
  progress(
    `agent start on the host ×${o.iterations} (+${o.warmup}), ${Object.keys(r).length} variants interleaved`,
  );
  for (let i = -o.warmup; i < o.iterations; i++) {
    checkInterrupted();
    const bare = await agentStartOnce(undefined, i);
    const one = [];
    for (const [name, bundle] of bundles) one.push([name, await agentStartOnce(bundle, i)]);
    if (i < 0) continue;
    r['node -e 0'].push(bare.wall);
    for (const [name, t] of one) {
      r[name].push(t.wall);
      cpu[name].push(t.cpu);
    }
  }
  return { wall: r, cpu };
}

// ---- (b) runc against crun ------------------------------------------------------------------------

/**
 * crun 1.8 refuses a host with cgroup v1 and v2 hierarchies side by side ("cgroups in hybrid mode
 * not supported"); in a mount namespace of its own without the v2 mount it runs. On a pure v1 or
 * v2 host no wrapper is needed.
 */
const HYBRID =
  existsSync('/sys/fs/cgroup/unified/cgroup.procs') && !existsSync('/sys/fs/cgroup/cgroup.controllers');
function crunArgv(args) {
  return HYBRID
    ? ['unshare', ['-m', 'sh', '-c', 'umount /sys/fs/cgroup/unified && exec crun "$@"', 'crun', ...args]]
    : ['crun', args];
}

/**
 * A machine's host side made once (overlay of the template, run directory, network namespace with
 * loopback up) and the server's config.json for it, for one runtime to start again and again.
 */
async function makeSide(runtime, config, lower, variant = { name: '', edit: (c) => c }) {
  const id = `nsb${process.pid}${runtime}${variant.name.replace(/[^a-z0-9]/g, '')}`;
  const dir = join(S.tmp, 'rt', id);
  const root = join(S.tmp, `${runtime}-root`);
  const side = {
    id,
    dir,
    root,
    runtime,
    label: variant.name ? `${runtime} (${variant.name})` : runtime,
    overlay: false,
    netns: false,
    async destroy() {
      await this.delete().catch(() => undefined);
      if (this.overlay) await sh('umount', [join(dir, 'rootfs')]);
      this.overlay = false;
      if (this.netns) await sh('ip', ['netns', 'del', `ns-${id}`]);
      this.netns = false;
    },
    delete() {
      const args = ['--root', root, 'delete', '--force', id];
      return runtime === 'crun' ? run(...crunArgv(args)) : run('runc', args);
    },
    start() {
      const args = ['--root', root, 'run', '--detach', '--bundle', dir, id];
      return runtime === 'crun' ? run(...crunArgv(args)) : run('runc', args);
    },
  };
  S.sides.push(side);
  for (const sub of ['rootfs', 'run', 'upper', 'work']) await mkdir(join(dir, sub), { recursive: true });
  await sh('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${lower},upperdir=${join(dir, 'upper')},workdir=${join(dir, 'work')}`,
    join(dir, 'rootfs'),
  ]);
  side.overlay = true;
  await sh('ip', ['netns', 'add', `ns-${id}`]);
  side.netns = true;
  await sh('ip', ['-n', `ns-${id}`, 'link', 'set', 'lo', 'up']);
  const text = config.text
    .replaceAll(config.dir, dir)
    .replaceAll(config.id, id)
    .replaceAll(config.id.replace('_', '-'), id.replace('_', '-'));
  await writeFile(join(dir, 'config.json'), JSON.stringify(variant.edit(JSON.parse(text))));
  return side;
}

async function runtimeSeries(o, config, lower) {
  const crun = await toolVersion('crun', ['--version']).catch(() => undefined);
  const sides = [await makeSide('runc', config, lower)];
  if (crun) sides.push(await makeSide('crun', config, lower));
  // runc 1.1 compiles the seccomp allowlist once per architecture it lists: the machine's filter
  // (the host's ABIs) beside the five of both families and none at all.
  const seccompVariants = [
    {
      name: 'filter for 5 ABIs',
      edit: (c) => {
        c.linux.seccomp.architectures = [
          'SCMP_ARCH_X86_64',
          'SCMP_ARCH_X86',
          'SCMP_ARCH_X32',
          'SCMP_ARCH_AARCH64',
          'SCMP_ARCH_ARM',
        ];
        return c;
      },
    },
    {
      name: 'no seccomp filter',
      edit: (c) => {
        c.linux.seccomp = undefined;
        return c;
      },
    },
  ];
  for (const v of seccompVariants) sides.push(await makeSide('runc', config, lower, v));
  const r = {};
  for (const side of sides) {
    r[`${side.label} run --detach`] = [];
    r[`${side.label}: then agent answers`] = [];
    r[`${side.label}: run → agent answers`] = [];
  }
  progress(
    `runtime: ${sides.map((s) => s.runtime).join(' vs ')} ×${o.iterations} (+${o.warmup}), interleaved`,
  );
  for (let i = -o.warmup; i < o.iterations; i++) {
    checkInterrupted();
    for (const side of sides) {
      rmSync(join(side.dir, 'run', 'agent.sock'), { force: true });
      const t0 = performance.now();
      await side.start();
      const t1 = performance.now();
      await agentAnswers(join(side.dir, 'run', 'agent.sock'), `${side.label} container`);
      const t2 = performance.now();
      await side.delete();
      if (i < 0) continue;
      r[`${side.label} run --detach`].push(t1 - t0);
      r[`${side.label}: then agent answers`].push(t2 - t1);
      r[`${side.label}: run → agent answers`].push(t2 - t0);
    }
  }
  return { r, crun: crun ?? 'not installed', hybrid: HYBRID };
}

// ---- (c) cold create against create from a snapshot --------------------------------------------------

/**
 * Wraps the server's own driver (it runs in this process) to time a create's phases: the driver
 * call, its host side (prepareHost), the runtime (runc run / runc restore), the wait for the agent.
 */
function instrument(driver) {
  const marks = {};
  const wrap = (obj, name, key) => {
    const original = obj[name].bind(obj);
    obj[name] = async (...args) => {
      const t0 = performance.now();
      try {
        return await original(...args);
      } finally {
        marks[key] = (marks[key] ?? 0) + performance.now() - t0;
      }
    };
  };
  wrap(driver, 'create', 'driver');
  wrap(driver, 'createFromSnapshot', 'driver');
  wrap(driver, 'prepareHost', 'host');
  wrap(driver.runc, 'run', 'runtime');
  wrap(driver.runc, 'restore', 'runtime');
  wrap(driver, 'waitForAgent', 'agent');
  return marks;
}

/** CRIU's own duration of a restore: the last timestamp of its log ("(00.123456) …", seconds). */
async function criuLogMs(file) {
  const text = await readFile(file, 'utf8').catch(() => '');
  const stamps = [...text.matchAll(/^\((\d+\.\d+)\)/gm)];
  const last = stamps.at(-1);
  return last ? Number(last[1]) * 1000 : undefined;
}

/**
 * Cold creates interleaved with creates from one snapshot of an idle base machine, its images read
 * from the data directory's disk and from a copy on tmpfs (/dev/shm): the snapshot's directory is a
 * symlink, pointed at one copy or the other before each create. Right after the snapshot its
 * files on disk are in the page cache, as a template's checkpoint read again and again would be.
 */
async function restoreSeries(o, machinesDir, marks) {
  progress('restore: a snapshot of an idle base machine, copied to tmpfs');
  const source = await createMachineViaSdk(S);
  await source.commands.run('true', { args: [] });
  const snapshot = await source.createSnapshot();
  await killMachineViaSdk(S, source);
  const snapDir = join(S.dataDir, 'snapshots', snapshot.id);
  const copies = { disk: `${snapDir}.disk`, tmpfs: join(S.shm, snapshot.id) };
  await rename(snapDir, copies.disk);
  await sh('cp', ['-a', '--sparse=always', copies.disk, copies.tmpfs]);
  const pointAt = async (target) => {
    await rm(snapDir, { force: true });
    await symlink(target, snapDir);
  };
  const kinds = ['cold create', 'from snapshot, images on disk', 'from snapshot, images on tmpfs'];
  const r = {};
  const phases = {};
  const criu = {};
  for (const k of kinds) {
    r[`${k} (SDK)`] = [];
    r[`${k} → first command answers`] = [];
    phases[k] = { driver: [], host: [], runtime: [], agent: [] };
    if (k !== 'cold create') criu[k] = [];
  }
  progress(`restore: ${kinds.join(' vs ')} ×${o.iterations} (+${o.warmup}), interleaved`);
  try {
    for (let i = -o.warmup; i < o.iterations; i++) {
      checkInterrupted();
      for (const k of kinds) {
        for (const key of Object.keys(marks)) delete marks[key];
        if (k !== 'cold create') await pointAt(k.endsWith('tmpfs') ? copies.tmpfs : copies.disk);
        const t0 = performance.now();
        const m =
          k === 'cold create'
            ? await createMachineViaSdk(S)
            : await Machine.create({
                snapshotId: snapshot.id,
                apiUrl: S.server.url,
                apiKey: S.server.apiKey,
              });
        trackMachine(S, m.id);
        const t1 = performance.now();
        const result = await m.commands.run('true', { args: [] });
        const t2 = performance.now();
        if (result.exitCode !== 0) throw new Error(`'true' exited ${result.exitCode}`);
        const criuMs =
          k === 'cold create'
            ? undefined
            : await criuLogMs(join(machinesDir, m.id, 'criu-restore', 'restore.log'));
        await killMachineViaSdk(S, m);
        if (i < 0) continue;
        r[`${k} (SDK)`].push(t1 - t0);
        r[`${k} → first command answers`].push(t2 - t0);
        for (const p of Object.keys(phases[k])) phases[k][p].push(marks[p] ?? 0);
        if (criuMs !== undefined) criu[k].push(criuMs);
      }
    }
  } finally {
    // The snapshot's own directory again, so that the server deletes it.
    await rm(snapDir, { force: true });
    await rename(copies.disk, snapDir);
    await rm(copies.tmpfs, { recursive: true, force: true });
  }
  await apiRequestDelete(`/v1/snapshots/${snapshot.id}`);
  return { r, phases, criu };
}

async function apiRequestDelete(path) {
  const res = await fetch(`${S.server.url}${path}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${S.server.apiKey}` },
  });
  if (!res.ok) throw new Error(`DELETE ${path}: ${res.status} ${await res.text()}`);
}

// ---- (d) this checkout's server against another build's ------------------------------------------

/**
 * Cold creates of `base` → `true` answers, alternating between this checkout's server and the
 * baseline checkout's (both in this process, each with its own data directory; the SDK is this
 * checkout's, the wire is the same): the whole create path of two builds under the same load.
 */
async function buildSeries(o, templatesDir, ownMarks, machinesDir) {
  const repo = process.env.NSBENCH_BASELINE_REPO;
  const { startServer: startBaseline } = await import(join(repo, 'packages/server/dist/index.js'));
  S.baseline = await startBaseline({
    ...serverConfig(S, templatesDir),
    dataDir: join(S.tmp, 'baseline-data'),
  });
  const servers = [
    ['this checkout', S.server],
    [`baseline ${repo}`, S.baseline],
  ];
  const r = {};
  for (const [name] of servers) {
    r[`${name}: create (SDK)`] = [];
    r[`${name}: create → first command answers`] = [];
    r[`${name}: host side (prepareHost)`] = [];
  }
  // The host side of each create, from the drivers' own calls (see instrument).
  const marks = new Map([
    [S.server, ownMarks],
    [S.baseline, instrument(S.baseline.driver)],
  ]);
  /** Machines whose network this checkout's server has made ahead (RuncDriver.prepareNetwork). */
  const madeAhead = () =>
    new Set(
      readdirSync(machinesDir).filter((id) => existsSync(join(machinesDir, id, 'network-prepared.json'))),
    );
  let tookMadeAhead = 0;
  progress(`builds: cold create → first command, this checkout vs ${repo} ×${o.iterations} (+${o.warmup})`);
  for (let i = -o.warmup; i < o.iterations; i++) {
    checkInterrupted();
    for (const [name, server] of i % 2 === 0 ? servers : [...servers].reverse()) {
      const hostBefore = marks.get(server).host ?? 0;
      const ahead = server === S.server ? madeAhead() : new Set();
      const t0 = performance.now();
      const m = await Machine.create({ template: TEMPLATE, apiUrl: server.url, apiKey: server.apiKey });
      const hostMs = (marks.get(server).host ?? 0) - hostBefore;
      if (server === S.baseline) S.baselineIds.add(m.id);
      else trackMachine(S, m.id);
      const t1 = performance.now();
      const result = await m.commands.run('true', { args: [] });
      const t2 = performance.now();
      if (result.exitCode !== 0) throw new Error(`'true' exited ${result.exitCode}`);
      await m.kill();
      if (server === S.baseline) S.baselineIds.delete(m.id);
      else S.live.delete(m.id);
      if (i < 0) continue;
      if (ahead.has(m.id)) tookMadeAhead++;
      r[`${name}: create (SDK)`].push(t1 - t0);
      r[`${name}: create → first command answers`].push(t2 - t0);
      r[`${name}: host side (prepareHost)`].push(hostMs);
    }
  }
  await S.baseline.close();
  S.baseline = undefined;
  progress(`builds: ${tookMadeAhead} of ${o.iterations} creates of this checkout took a network made ahead`);
  r.tookMadeAhead = tookMadeAhead;
  return r;
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(o, templatesDir) {
  makeRunDir(S);
  S.shm = mkdtempSync('/dev/shm/nsbench-');
  await mkdir(join(S.tmp, 'workspace'), { recursive: true });
  const out = { agent: await agentSeries(o) };
  if (o.agentOnly) return out;

  S.server = await startServer(serverConfig(S, templatesDir));
  const machinesDir = join(S.dataDir, 'machines');
  printRun(S, [['settings', `${o.iterations} iterations per series, warm-up ${o.warmup}`]]);
  const marks = instrument(S.server.driver);

  // The runtime series starts the server's own config.json of a base machine.
  const m = await createMachineViaSdk(S);
  const dir = join(machinesDir, m.id);
  const config = { id: m.id, dir, text: await readFile(join(dir, 'config.json'), 'utf8') };
  await killMachineViaSdk(S, m);
  if (process.env.NSBENCH_BASELINE_REPO) out.builds = await buildSeries(o, templatesDir, marks, machinesDir);
  if (o.buildsOnly) return out;
  out.runtime = await runtimeSeries(o, config, realpathSync(join(templatesDir, TEMPLATE, 'rootfs')));
  out.restore = await restoreSeries(o, machinesDir, marks);
  return out;
}

function report({ agent, builds, runtime, restore }) {
  console.log(
    '\n(a) The agent starting on the host, as in a machine (node flags the same; ms; p50/p95 nearest-rank)',
  );
  const wall = statsOf(agent.wall);
  printLatencyTable(
    'until /v1/health answers (wall)',
    Object.keys(agent.wall).map((k) => latencyRow(k, wall[k])),
  );
  const cpu = statsOf(agent.cpu);
  printLatencyTable(
    "main thread's CPU time at that moment",
    Object.keys(agent.cpu).map((k) => latencyRow(k, cpu[k])),
  );
  if (builds) {
    const { tookMadeAhead, ...series } = builds;
    console.log(
      '\n(d) Cold create of base → true answers, two builds alternating (ms); ' +
        `${tookMadeAhead} creates of this checkout took a network made ahead`,
    );
    const s = statsOf(series);
    printLatencyTable(
      'figure',
      Object.keys(series).map((k) => latencyRow(k, s[k])),
    );
  }
  if (runtime) {
    console.log(
      '\n(b) The runtime: the same machine bundle (overlay, netns made once), started, agent awaited, deleted (ms)\n' +
        `    crun: ${runtime.crun}${runtime.hybrid ? ' — run in a mount namespace without the cgroup v2 mount (hybrid host)' : ''}`,
    );
    const s = statsOf(runtime.r);
    printLatencyTable(
      'step',
      Object.keys(runtime.r).map((k) => latencyRow(k, s[k])),
    );
  }
  if (restore) {
    console.log(
      '\n(c) A base machine: cold create against create from a snapshot of an idle one, its images on disk\n' +
        '    (page cache) and on tmpfs (ms)',
    );
    const s = statsOf(restore.r);
    printLatencyTable(
      'figure',
      Object.keys(restore.r).map((k) => latencyRow(k, s[k])),
    );
    for (const [k, ph] of Object.entries(restore.phases)) {
      const label = (p) =>
        ({
          driver: 'driver call',
          host: '  host side (prepareHost)',
          runtime: k === 'cold create' ? '  runc run --detach' : '  runc restore (runc + CRIU)',
          agent: '  wait for the agent',
        })[p];
      printLatencyTable(
        `${k}: phases in the server`,
        Object.entries(ph).map(([p, xs]) => latencyRow(label(p), stats(xs))),
      );
    }
    printLatencyTable(
      "CRIU's own restore within runc restore (its log's last timestamp)",
      Object.entries(restore.criu).map(([k, xs]) => latencyRow(k, stats(xs))),
    );
  }
}

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 1)],
    ['crun', await toolVersion('crun', ['--version'], 1).catch(() => 'not installed')],
    ['criu', await toolVersion('criu', ['--version'], 1).catch(() => 'not installed')],
    ['node', process.version],
  ]);
}

runBench({
  script: 'bench/start.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 20, 1],
    warmup: ['warmup', 2, 0],
    agentOnly: ['agent-only', 0, 0],
    buildsOnly: ['builds-only', 0, 0],
  },
  preflight: templateHas('bin', 'true'),
  title: 'Nullspace machine start benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machines/containers checked: no container, mount, loop device, netns, cgroup, process or temp dir left`,
});
