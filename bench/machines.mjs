#!/usr/bin/env node
/**
 * Machine benchmark: create, run and idle memory of real machines through a real server, beside the
 * raw building blocks (runc, fork/exec, an idle node process) measured in the same run.
 * Run as root from the repository root: `node bench/machines.mjs [--iterations N]`. See bench/README.md.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentClient, TEARDOWN_STEPS, tearDownMachine } from '@nullspace/runtime';
import { startServer } from '@nullspace/server';
import {
  CGROUP_V2,
  MiB,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  checkInterrupted,
  cleanUpRun,
  createMachineViaSdk,
  fmt,
  killChildren,
  killMachineViaSdk,
  latencyRow,
  machineMemoryBytes,
  machinePids,
  makeRunDir,
  meminfo,
  percent,
  printHost,
  printLatencyTable,
  printRun,
  printTable,
  progress,
  rssBytes,
  runBench,
  runState,
  runcList,
  serverConfig,
  sh,
  stats,
  statsOf,
  stopServerAndMachines,
  templateHas,
  timed,
  toolVersion,
  verdict,
} from './lib.mjs';
import { instrumentDriver, listenToTeardowns } from './machines/server-timing.mjs';

const TARGETS = { createP50Ms: 150, runP50Ms: 10, idleMiB: 40 };
const IDLE_WAIT_MS = 2000;

const USAGE = `usage: node bench/machines.mjs [options]   (as root, from the repository root)
  --iterations N       create/kill iterations, also the baselines and the breakdown (default 20)
  --run-iterations N   commands.run('true') iterations (default 200)
  --machines K         idle machines for the memory figure (default 10)
  --warmup N           warm-up runs before each timed series, not counted (default 2)
${USAGE_ENVIRONMENT}`;

// ---- small helpers ----------------------------------------------------------------------------

/**
 * Spawns a program with no stdio and resolves when it exits 0. With `keepStderr` its stderr is piped
 * (for the error) and the end is 'close'; never for `runc run --detach`, whose container inherits
 * runc's stdio and would hold the pipe open.
 */
function spawnWait(file, args, { keepStderr = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', keepStderr ? 'pipe' : 'ignore'] });
    let stderr = '';
    child.stderr?.on('data', (d) => {
      stderr += d;
    });
    child.once('error', reject);
    child.once(keepStderr ? 'close' : 'exit', (code, signal) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(`${file} ${args.join(' ')}: exit ${code ?? signal}${stderr ? `: ${stderr.trim()}` : ''}`),
        );
    });
  });
}

function execFileTrue() {
  return new Promise((resolve, reject) => {
    execFile('true', [], (err) => (err ? reject(err) : resolve()));
  });
}

function hostUsedBytes() {
  const m = meminfo();
  return m.total - m.available;
}

const machineProcessesRss = (id) => machinePids(id).reduce((sum, pid) => sum + rssBytes(pid), 0);

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['node', process.version],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1 (memory controller at /sys/fs/cgroup/memory)'],
  ]);
}

// ---- state and cleanup --------------------------------------------------------------------------

/**
 * Everything the bench made (see runState). The server runs in this process (its driver is
 * instrumented). Besides the machines: the host-command replicas of a create and the raw runc
 * baseline containers, each in a private runc root.
 */
const S = runState({ replicaIds: new Set(), rawIds: new Set() });
const runcRoots = () => ({
  replica: join(S.tmp, 'replica-runc'),
  raw: join(S.tmp, 'raw-runc'),
});

async function cleanup(note) {
  // 1. Machines through the API, then the server.
  await stopServerAndMachines(S, note);
  // 2. Processes we started (idle node baselines), by pid.
  await killChildren(S.children, note);
  // 3. Runtime leftovers in our three runc roots (a machine caught mid-create by a signal
  //    included), then the check.
  if (!S.tmp) return { leaks: [], checked: 0 };
  const roots = runcRoots();
  return cleanUpRun(S, note, {
    extraRoots: [
      { root: roots.replica, machinesDir: join(S.tmp, 'r'), ids: S.replicaIds },
      { root: roots.raw, ids: S.rawIds },
    ],
  });
}

// ---- machines through the API -----------------------------------------------------------------

const createMachine = () => createMachineViaSdk(S);
const killMachine = (machine) => killMachineViaSdk(S, machine);

// ---- baselines ----------------------------------------------------------------------------------

/** A default `runc spec` bundle (terminal off) running /bin/true on the template, read-only root. */
async function makeRawBundle(lower) {
  const bundle = join(S.tmp, 'raw-bundle');
  await mkdir(bundle, { recursive: true });
  await sh('runc', ['spec'], { cwd: bundle });
  const config = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8'));
  config.process.terminal = false;
  config.process.args = ['/bin/true'];
  config.root = { path: realpathSync(lower), readonly: true }; // runc refuses a symlinked root
  await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
  return bundle;
}

async function rawRuncOnce(bundle, n) {
  const id = `nsb${process.pid}raw${n}`;
  S.rawIds.add(id);
  const root = runcRoots().raw;
  const [ms] = await timed(() =>
    spawnWait('runc', ['--root', root, 'run', '--bundle', bundle, id], { keepStderr: true }),
  );
  // A foreground `runc run` removes its container on exit; delete -f in case it did not.
  if ((await runcList(root)).includes(id)) await sh('runc', ['--root', root, 'delete', '--force', id]);
  return ms;
}

async function idleNodeRss(extraArgs) {
  const child = spawn(process.execPath, [...extraArgs, '-e', 'setInterval(()=>{},1e9)'], { stdio: 'ignore' });
  S.children.add(child);
  await sleep(IDLE_WAIT_MS);
  const rss = rssBytes(child.pid);
  child.kill('SIGKILL');
  await new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve),
  );
  return rss;
}

// ---- host-command replica of RuncDriver.create ------------------------------------------------

/**
 * The steps of RuncDriver.create, run one by one as host commands with the config.json the driver
 * generated for a real machine (paths and id rewritten), so each one can be timed. The driver runs
 * the disk and netns steps concurrently; here they are sequential. The agent is polled every 1 ms
 * (the driver backs off 2 → 50 ms), so "agent ready" here is how long the agent really takes.
 */
async function replicaOnce(template, lower, diskMb, n) {
  const id = `nsb${process.pid}r${n}`;
  S.replicaIds.add(id);
  const dir = join(S.tmp, 'r', id);
  const disk = join(dir, 'disk');
  const rootfs = join(dir, 'rootfs');
  const netns = `ns-${id}`;
  const root = runcRoots().replica;
  const config = template.text
    .replaceAll(template.dir, dir)
    .replaceAll(template.id, id)
    .replaceAll(template.id.replace('_', '-'), id.replace('_', '-'));
  await mkdir(join(dir, 'run'), { recursive: true });
  await mkdir(disk, { recursive: true });
  await mkdir(rootfs, { recursive: true });
  const t = {};
  const step = async (name, fn) => {
    [t[name]] = await timed(fn);
  };
  await step('truncate -s disk.img', () => sh('truncate', ['-s', `${diskMb}M`, join(dir, 'disk.img')]));
  await step('mkfs.xfs -q -K', () =>
    sh('mkfs.xfs', ['-q', '-K', join(dir, 'disk.img')], { timeoutMs: 60_000 }),
  );
  await step('mount -o loop (+ mkdir upper, work)', async () => {
    await sh('mount', ['-o', 'loop,noatime', join(dir, 'disk.img'), disk]);
    await mkdir(join(disk, 'upper'));
    await mkdir(join(disk, 'work'));
  });
  await step('ip netns add', () => sh('ip', ['netns', 'add', netns]));
  await step('ip link set lo up', () => sh('ip', ['-n', netns, 'link', 'set', 'lo', 'up']));
  await step('mount -t overlay', () =>
    sh('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `lowerdir=${lower},upperdir=${join(disk, 'upper')},workdir=${join(disk, 'work')}`,
      rootfs,
    ]),
  );
  await step('write config.json', () => writeFile(join(dir, 'config.json'), config));
  await step('runc run --detach', () =>
    spawnWait(
      'runc',
      [
        '--root',
        root,
        '--log',
        join(dir, 'runc.log'),
        '--log-format',
        'json',
        'run',
        '--detach',
        '--bundle',
        dir,
        id,
      ],
      // stdio must be /dev/null (see spawnWait); runc's errors go to runc.log.
    ).catch(async (err) => {
      const log = await readFile(join(dir, 'runc.log'), 'utf8').catch(() => '');
      throw new Error(`${err.message}: ${log.trim().split('\n').slice(-3).join(' | ')}`);
    }),
  );
  const socket = join(dir, 'run', 'agent.sock');
  await step('agent ready (1 ms poll)', async () => {
    const client = new AgentClient(socket);
    const deadline = performance.now() + 20_000;
    try {
      for (;;) {
        if (existsSync(socket)) {
          try {
            await client.health(1000);
            return;
          } catch {
            // not listening yet
          }
        }
        if (performance.now() > deadline) throw new Error(`replica ${id}: agent did not answer in 20 s`);
        await sleep(1);
      }
    } finally {
      client.close();
    }
  });
  // Torn down as a kill does it; the steps are timed on the server's own kills (listenToTeardowns).
  await tearDownMachine({ machinesDir: join(S.tmp, 'r'), runcRoot: root }, id, { keepFiles: false });
  return t;
}

// ---- the benchmark ------------------------------------------------------------------------------

async function bench(opts, templatesDir) {
  const lower = join(templatesDir, TEMPLATE, 'rootfs');
  const { iterations: n, runIterations, machines: k, warmup } = opts;

  makeRunDir(S);
  S.server = await startServer(serverConfig(S, templatesDir));
  const machinesDir = join(S.dataDir, 'machines');
  const marks = instrumentDriver(S.server.driver);
  printRun(S, [
    ['settings', `create ×${n}, run ×${runIterations}, idle machines ${k}, warm-up ${warmup} per series`],
  ]);

  // (a) create + kill, with the raw runc and fork/exec baselines interleaved (same conditions).
  progress(`create/kill ×${n} (+${warmup} warm-up), interleaved with runc run and spawn /bin/true`);
  const rawBundle = await makeRawBundle(lower);
  const r = { create: [], kill: [], tornDown: [], raw: [], fork: [], run: [], execFile: [] };
  const phases = { pre: [], prep: [], runc: [], agent: [], state: [], post: [] };
  let configTemplate;
  const teardowns = listenToTeardowns();
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    for (const key of Object.keys(marks ?? {})) delete marks[key];
    const t0 = performance.now();
    const machine = await createMachine();
    const t1 = performance.now();
    if (!configTemplate) {
      const dir = join(machinesDir, machine.id);
      configTemplate = { id: machine.id, dir, text: await readFile(join(dir, 'config.json'), 'utf8') };
    }
    const k0 = performance.now();
    const [killMs] = await timed(() => killMachine(machine));
    // The kill answers once the machine is dead; its teardown (where a kill used to answer) after.
    const tornDownMs = (await teardowns.take(machine.id, i >= 0)) - k0;
    const rawMs = await rawRuncOnce(rawBundle, i + warmup);
    const [forkMs] = await timed(() => spawnWait('/bin/true', []));
    if (i < 0) continue;
    r.create.push(t1 - t0);
    r.kill.push(killMs);
    r.tornDown.push(tornDownMs);
    r.raw.push(rawMs);
    r.fork.push(forkMs);
    if (marks?.driverEnd !== undefined && marks.agentEnd !== undefined) {
      phases.pre.push(marks.driverStart - t0);
      phases.prep.push(marks.runcStart - marks.driverStart);
      phases.runc.push(marks.runcEnd - marks.runcStart);
      phases.agent.push(marks.agentEnd - marks.agentStart);
      phases.state.push(marks.stateMs ?? 0);
      phases.post.push(t1 - marks.driverEnd);
    }
  }
  teardowns.stop();

  // (b) commands.run('true') on one machine, interleaved with execFile('true') on the host.
  progress(`commands.run('true') ×${runIterations} (+${warmup} warm-up), interleaved with execFile('true')`);
  const runMachine = await createMachine();
  const diskMb = (await runMachine.getInfo()).diskMb;
  for (let i = -warmup; i < runIterations; i++) {
    if (i % 50 === 0) checkInterrupted();
    const t0 = performance.now();
    const result = await runMachine.commands.run('true', { args: [] });
    const t1 = performance.now();
    if (result.exitCode !== 0)
      throw new Error(`'true' in the machine exited ${result.exitCode}: ${result.stderr}`);
    const [hostMs] = await timed(execFileTrue);
    if (i < 0) continue;
    r.run.push(t1 - t0);
    r.execFile.push(hostMs);
  }
  await killMachine(runMachine);

  // Breakdown, part 2: the driver's steps as host commands.
  progress(`create breakdown: host-command replica ×${n} (+${warmup} warm-up)`);
  const replica = {};
  for (let i = -warmup; i < n; i++) {
    checkInterrupted();
    const one = await replicaOnce(configTemplate, lower, diskMb, i + warmup);
    if (i < 0) continue;
    for (const [name, ms] of Object.entries(one)) {
      replica[name] ??= [];
      replica[name].push(ms);
    }
  }

  // (c) memory of K idle machines.
  progress(`memory: ${k} idle machines, ${IDLE_WAIT_MS / 1000} s idle`);
  checkInterrupted();
  await sleep(500);
  const usedBefore = hostUsedBytes();
  const selfBefore = process.memoryUsage().rss;
  const idle = [];
  for (let i = 0; i < k; i++) idle.push(await createMachine());
  await sleep(IDLE_WAIT_MS);
  const usedAfter = hostUsedBytes();
  const selfAfter = process.memoryUsage().rss;
  const cgroupSum = idle.reduce((sum, m) => sum + machineMemoryBytes(m.id), 0);
  const procRssSum = idle.reduce((sum, m) => sum + machineProcessesRss(m.id), 0);
  for (const m of idle) await killMachine(m);
  progress('memory baseline: idle node processes');
  const [nodeRss, nodeSemiRss] = await Promise.all([
    idleNodeRss([]),
    idleNodeRss(['--max-semi-space-size=1']),
  ]);
  const mem = {
    hostPer: (usedAfter - usedBefore) / k / MiB,
    cgroupPer: cgroupSum / k / MiB,
    rssPer: procRssSum / k / MiB,
    selfGrowth: (selfAfter - selfBefore) / MiB,
    nodeRss: nodeRss / MiB,
    nodeSemiRss: nodeSemiRss / MiB,
  };
  return { r, phases: marks ? phases : undefined, replica, teardown: teardowns.series, mem, k };
}

function report({ r, phases, replica, teardown, mem, k }) {
  const s = statsOf(r);
  console.log('\nLatency (ms; p50/p95 nearest-rank; target applies to p50)');
  printLatencyTable('figure', [
    latencyRow('create until the agent answers (SDK)', s.create, TARGETS.createP50Ms),
    latencyRow('kill → answered (SDK; not part of create)', s.kill),
    latencyRow('  kill → teardown done (where kill answered before; bench/kill.mjs)', s.tornDown),
    latencyRow('  baseline: runc run /bin/true, raw bundle', s.raw),
    latencyRow('  baseline: spawn /bin/true until exit', s.fork),
    latencyRow("commands.run('true', args: []) (SDK)", s.run, TARGETS.runP50Ms),
    latencyRow("  baseline: execFile('true') on the host", s.execFile),
  ]);

  const breakdownRows = (entries, total) =>
    entries.map(([label, xs]) => {
      const st = stats(xs);
      return [
        label,
        fmt(st.p50),
        fmt(st.p95),
        fmt(st.min),
        fmt(st.max),
        fmt(st.mean),
        total ? percent(st.mean, total) : '',
      ];
    });
  console.log(
    '\nWhere create goes, in the server (its own driver instance, phases timed by wrapping methods; ms)',
  );
  if (!phases || phases.pre.length === 0) {
    console.log('  not available: RuncDriver members create/runc.run/waitForAgent not found');
  } else {
    const total = stats(r.create).mean;
    printTable(
      ['phase', 'p50', 'p95', 'min', 'max', 'mean', 'of mean'],
      [
        ...breakdownRows(
          [
            ['HTTP + validation + DB insert (until driver.create)', phases.pre],
            ['driver: disk ‖ netns, overlay, config.json', phases.prep],
            ['driver: runc run --detach', phases.runc],
            ['driver: wait for agent (2 ms poll)', phases.agent],
            ['  of which `runc state` checks (not additive)', phases.state],
            ['DB update + HTTP response (after driver.create)', phases.post],
          ],
          total,
        ),
        [
          'total create (SDK)',
          fmt(s.create.p50),
          fmt(s.create.p95),
          fmt(s.create.min),
          fmt(s.create.max),
          fmt(total),
          '100%',
        ],
      ],
      'lrrrrrr',
    );
  }

  console.log(
    '\nWhere create goes, step by step (host commands run by the bench, replicating RuncDriver.create;\n' +
      "the machine's generated config.json; steps sequential here, disk ‖ netns in the driver; ms)",
  );
  const stepTable = (title, entries, totalLabel, more = []) => {
    const totals = entries[0][1].map((_, i) => entries.reduce((sum, [, xs]) => sum + xs[i], 0));
    const st = stats(totals);
    printTable(
      [title, 'p50', 'p95', 'min', 'max', 'mean', 'of mean'],
      [
        ...breakdownRows(entries, st.mean),
        [totalLabel, ...[st.p50, st.p95, st.min, st.max, st.mean].map((x) => fmt(x)), '100%'],
        ...more,
      ],
      'lrrrrrr',
    );
  };
  stepTable('create step', Object.entries(replica), 'sum of create steps');

  console.log(
    "\nWhere a kill's teardown goes, step by step (the runtime's tearDownMachine after each kill above, run\n" +
      "by the server's teardown queue once the kill answered; each step timed by the runtime, reported on its\n" +
      'diagnostics channel; ms)',
  );
  stepTable(
    'teardown step (what kill does)',
    TEARDOWN_STEPS.map((step) => [step, teardown[step]]),
    'sum of teardown steps',
    [
      [
        'kill → teardown done, for comparison',
        ...[s.tornDown.p50, s.tornDown.p95, s.tornDown.min, s.tornDown.max, s.tornDown.mean].map((x) =>
          fmt(x),
        ),
        '',
      ],
    ],
  );

  console.log(`\nMemory per idle machine (${k} machines, ${IDLE_WAIT_MS / 1000} s idle; MiB)`);
  printTable(
    ['figure', 'MiB', 'target', 'result'],
    [
      [
        `host used (MemTotal − MemAvailable) increase / ${k}`,
        fmt(mem.hostPer),
        `≤ ${TARGETS.idleMiB}`,
        verdict(mem.hostPer, TARGETS.idleMiB),
      ],
      [
        `sum of machine cgroups' ${CGROUP_V2 ? 'memory.current' : 'memory.usage_in_bytes'} / ${k}`,
        fmt(mem.cgroupPer),
        `≤ ${TARGETS.idleMiB}`,
        verdict(mem.cgroupPer, TARGETS.idleMiB),
      ],
      ['  info: RSS of the machine processes (tini + agent) / machine', fmt(mem.rssPer), '', ''],
      ['  info: this process (bench + server) RSS growth, in the host figure', fmt(mem.selfGrowth), '', ''],
      ["  baseline: RSS of an idle `node -e 'setInterval(()=>{},1e9)'`", fmt(mem.nodeRss), '', ''],
      ['  baseline: the same with --max-semi-space-size=1 (as the agent)', fmt(mem.nodeSemiRss), '', ''],
    ],
    'lrrl',
  );
}

runBench({
  script: 'bench/machines.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 20, 1],
    runIterations: ['run-iterations', 200, 1],
    machines: ['machines', 10, 1],
    warmup: ['warmup', 2, 0],
  },
  preflight: templateHas('bin', 'true'),
  title: 'Nullspace machine benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machines/containers checked: no runc container, mount, loop device, netns, cgroup,` +
    ' process or temp dir left',
});
