#!/usr/bin/env node
/**
 * Kill benchmark: how soon a kill answers, how many kills answer per second with 16 in flight, and
 * how soon a machine is dead whatever runs in it (a fork bomb, thousands of threads, a process that
 * ignores signals, a paused machine, a machine mid-hibernate and mid-fork), each beside the time
 * until its teardown is done — where a kill answered before the teardown ran after it — measured
 * on the same kills. Run as root from the repository root: `node bench/kill.mjs`. See bench/README.md.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Volume } from '@nullspace/sdk';
import { startServer } from '@nullspace/server';
import {
  USAGE_ENVIRONMENT,
  checkInterrupted,
  cleanUpRun,
  createMachineViaSdk,
  fmt,
  killMachineViaSdk,
  latencyRow,
  machinePids,
  makeRunDir,
  printHost,
  printLatencyTable,
  printRun,
  printTable,
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
  verdict,
} from './lib.mjs';
import { listenToTeardowns } from './machines/server-timing.mjs';

/** Issue 19's and 20's figures: bar (PASS/MISS) and goal. */
const TARGETS = {
  answeredMs: { bar: 50, goal: 10 },
  perSecond: { bar: 20, goal: 100 },
  deadMs: 1000,
};

const USAGE = `usage: node bench/kill.mjs [options]   (as root, from the repository root)
  --iterations N        sequential create + kill, timed (default 20)
  --machines M          machines killed with 16 in flight (default 48)
  --in-flight K         kills in flight for the throughput figure (default 16)
  --case-iterations N   runs of each "whatever runs inside" case (default 3)
  --warmup N            warm-up kills before the sequential series, not counted (default 2)
${USAGE_ENVIRONMENT}`;

const S = runState();
const createMachine = () => createMachineViaSdk(S);
const killMachine = (machine) => killMachineViaSdk(S, machine);

/** The machine's processes are gone (its memory cgroup lists none): polled every 2 ms. */
async function untilNoProcesses(id) {
  for (let i = 0; i < 30_000; i++) {
    if (machinePids(id).length === 0) return performance.now();
    await sleep(2);
  }
  throw new Error(`machine ${id}: its processes did not end in a minute`);
}

/** Polls (every 5 ms, bounded) until `check()` is true. */
async function until(what, check, tries = 12_000) {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(5);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function run(machine, cmd) {
  return machine.commands.run(cmd, { timeoutMs: 60_000 });
}

/** A machine whose process holds `mib` MiB, so a checkpoint of it takes a while to catch. */
async function machineWithMemory(mib) {
  const m = await createMachine();
  await machine(m).background(
    `python3 -c "import time; b = b'x' * (${mib} << 20); open('/tmp/held', 'w').write('1'); time.sleep(1e6)"`,
  );
  await until(
    `${mib} MiB held`,
    async () => (await run(m, 'cat /tmp/held 2>/dev/null')).stdout.trim() === '1',
  );
  return m;
}

const machine = (m) => ({ background: (cmd) => m.commands.run(cmd, { background: true }) });
const conn = () => ({ apiUrl: S.server.url, apiKey: S.server.apiKey });

/** Field 3 of /proc/PID/stat: the process state letter (`D`: uninterruptible sleep). */
async function stateOf(pid) {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}
const rootfsFile = (id, path) => join(S.dataDir, 'machines', id, 'rootfs', path);
const operationFile = (id) => join(S.dataDir, 'machines', id, 'operation.pid');

/**
 * The cases issue 20 names: each sets a machine up and returns it with what runs in it, and maybe a
 * transition in flight (`pending`, settled after the kill), for the kill to end.
 */
function cases(threadsBinary) {
  return {
    'a process ignoring SIGTERM/SIGINT/SIGHUP (busy loop)': async () => {
      const m = await createMachine();
      await machine(m).background(`bash -c "trap '' TERM INT HUP; while :; do :; done"`);
      await until('the loop', async () => machinePids(m.id).length >= 3);
      return { m, what: 'busy loop ignoring signals' };
    },
    'a fork bomb (≥ 2,000 processes)': async () => {
      const m = await createMachine();
      await machine(m).background(':(){ :|:& };:');
      await until('2,000 processes', async () => machinePids(m.id).length >= 2000);
      return { m, what: `${machinePids(m.id).length} processes` };
    },
    'threads: as many as the pids limit allows (10,000 asked)': async () => {
      const m = await createMachine();
      await m.files.write('/tmp/many-threads', await readFile(threadsBinary));
      await machine(m).background(
        'chmod +x /tmp/many-threads && /tmp/many-threads 10000 /tmp/threads-started',
      );
      const file = rootfsFile(m.id, 'tmp/threads-started');
      let started = 0;
      await until('the threads', async () => {
        started = Number((await readFile(file, 'utf8').catch(() => '')).trim());
        return started > 0;
      });
      return { m, what: `${started} threads in one process` };
    },
    'a paused machine (300 sleeping processes)': async () => {
      const m = await createMachine();
      await run(m, 'for i in $(seq 300); do sleep 3600 & done');
      await m.pause();
      return { m, what: `${machinePids(m.id).length} processes, frozen` };
    },
    'a process in D state (its volume frozen; thawed once the kill answered)': async () => {
      const name = `frozen-${Date.now()}`;
      const volume = await Volume.create(name, { ...conn(), sizeMb: 300 });
      const m = await createMachineViaSdk(S, { volumes: [{ volume: volume.id, mountPath: '/data' }] });
      await run(m, 'echo before > /data/f');
      const mnt = join(S.dataDir, 'volumes', volume.id, 'mnt');
      await sh('fsfreeze', ['--freeze', mnt]);
      const thaw = () => sh('fsfreeze', ['--unfreeze', mnt]).catch(() => undefined);
      try {
        await machine(m).background('echo after > /data/f');
        await until('a process in D state', async () => {
          for (const pid of machinePids(m.id)) if ((await stateOf(pid)) === 'D') return true;
          return false;
        });
      } catch (err) {
        await thaw();
        throw err;
      }
      // SIGKILL cannot end it until its write does: the volume is thawed right after the answer.
      return {
        m,
        what: 'a write blocked on fsfreeze',
        afterAnswer: thaw,
        afterTeardown: () => Volume.delete(volume.id, conn()),
      };
    },
    'mid-hibernate (200 MiB)': async () => {
      const m = await machineWithMemory(200);
      const pending = m.hibernate().then(
        () => 'hibernate finished first',
        (err) => `hibernate failed: ${err.code}`,
      );
      await until('the checkpoint to start', async () => existsSync(operationFile(m.id)), 60_000);
      return { m, what: 'checkpoint running', pending };
    },
    'mid-fork (200 MiB)': async () => {
      const m = await machineWithMemory(200);
      const pending = m.fork({ count: 1 }).then(
        async (children) => {
          for (const c of children) if (!c.error) await killMachine(c.machine);
          return 'fork finished first';
        },
        (err) => `fork failed: ${err.code}`,
      );
      await until('the fork checkpoint to start', async () => existsSync(operationFile(m.id)), 60_000);
      return { m, what: 'fork checkpoint running', pending };
    },
  };
}

/**
 * Times the server's own `driver.terminate` (the part of a kill that ends the machine's processes)
 * by wrapping it on this one instance; returns machine id → ms.
 */
function timeTerminate(driver) {
  const byMachine = new Map();
  const original = driver.terminate.bind(driver);
  driver.terminate = async (id) => {
    const t0 = performance.now();
    try {
      return await original(id);
    } finally {
      byMachine.set(id, performance.now() - t0);
    }
  };
  return byMachine;
}

async function bench(opts, templatesDir) {
  const { iterations: n, machines: total, inFlight, caseIterations, warmup } = opts;
  makeRunDir(S);
  S.server = await startServer(serverConfig(S, templatesDir));
  const threadsBinary = join(S.tmp, 'many-threads');
  await sh('gcc', ['-O2', '-static', '-pthread', '-o', threadsBinary, 'test/fixtures/many-threads.c']);
  printRun(S, [
    [
      'settings',
      `sequential ×${n} (+${warmup} warm-up), ${total} machines with ${inFlight} kills in flight, each case ×${caseIterations}`,
    ],
  ]);
  const teardowns = listenToTeardowns();
  const terminateMs = timeTerminate(S.server.driver);
  const r = { answered: [], tornDown: [], terminate: [] };

  // (a) One kill at a time: answered, and its teardown done (the same kill); with no other
  // machine alive, then with `total` alive (a kill's cost must not grow with the host's load).
  const sequential = async (into, count, warm) => {
    for (let i = -warm; i < count; i++) {
      checkInterrupted();
      const m = await createMachine();
      const t0 = performance.now();
      await killMachine(m);
      const answered = performance.now();
      const done = await teardowns.take(m.id, false);
      if (i < 0) continue;
      into.answered.push(answered - t0);
      into.tornDown.push(done - t0);
      into.terminate.push(terminateMs.get(m.id));
    }
  };
  progress(`create + kill ×${n} (+${warmup} warm-up)`);
  await sequential(r, n, warmup);

  // (b) Throughput: `total` machines, `inFlight` kills at a time; before, (a) again beside them.
  progress(`creating ${total} machines`);
  const made = [];
  while (made.length < total) {
    checkInterrupted();
    const batch = Math.min(8, total - made.length);
    made.push(...(await Promise.all(Array.from({ length: batch }, () => createMachine()))));
  }
  progress(`create + kill ×${n} with ${total} machines alive`);
  const alive = { answered: [], tornDown: [], terminate: [] };
  await sequential(alive, n, 0);
  progress(`killing the ${total} machines ${inFlight} at a time`);
  const queue = [...made];
  const t0 = performance.now();
  const each = [];
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (let m = queue.shift(); m; m = queue.shift()) {
        const k0 = performance.now();
        await killMachine(m);
        each.push(performance.now() - k0);
      }
    }),
  );
  const allAnswered = performance.now() - t0;
  const doneAt = await Promise.all(made.map((m) => teardowns.take(m.id, false)));
  const allTornDown = Math.max(...doneAt) - t0;
  const throughput = { total, inFlight, allAnswered, allTornDown, each: stats(each) };

  // (c) Whatever runs inside.
  const byCase = [];
  for (const [name, setUp] of Object.entries(cases(threadsBinary))) {
    const c = { name, what: '', answered: [], terminate: [], dead: [], tornDown: [], outcomes: [] };
    for (let i = 0; i < caseIterations; i++) {
      checkInterrupted();
      progress(`${name} (${i + 1}/${caseIterations})`);
      const { m, what, pending, afterAnswer, afterTeardown } = await setUp();
      c.what = what;
      const k0 = performance.now();
      await killMachine(m);
      const answered = performance.now();
      await afterAnswer?.();
      const dead = await untilNoProcesses(m.id);
      const done = await teardowns.take(m.id, false);
      await afterTeardown?.();
      if (pending) c.outcomes.push(await pending);
      c.answered.push(answered - k0);
      c.terminate.push(terminateMs.get(m.id));
      c.dead.push(dead - k0);
      c.tornDown.push(done - k0);
    }
    byCase.push(c);
  }
  teardowns.stop();
  return { r, alive, throughput, byCase };
}

function report({ r, alive, throughput: t, byCase }) {
  const s = statsOf(r);
  const a = statsOf(alive);
  const { answeredMs, perSecond, deadMs } = TARGETS;
  console.log('\nOne kill at a time (ms; p50/p95 nearest-rank; the bar applies to p50)');
  printLatencyTable('figure', [
    latencyRow('kill → answered (SDK)', s.answered, answeredMs.bar),
    latencyRow('  of which driver.terminate (in the server)', s.terminate),
    latencyRow('  baseline, same kills: kill → teardown done (where kill answered before)', s.tornDown),
    latencyRow(`kill → answered, ${t.total} other machines alive`, a.answered),
    latencyRow('  of which driver.terminate (in the server)', a.terminate),
    latencyRow(`  kill → teardown done, ${t.total} other machines alive`, a.tornDown),
  ]);
  console.log(
    `  with ${t.total} machines alive / with none, p50: answered ${fmt(a.answered.p50 / s.answered.p50, 2)}×,` +
      ` teardown done ${fmt(a.tornDown.p50 / s.tornDown.p50, 2)}×`,
  );
  console.log(`  goal: kill → answered ≤ ${answeredMs.goal} ms: ${verdict(s.answered.p50, answeredMs.goal)}`);

  const rate = (ms) => (t.total * 1000) / ms;
  console.log(`\nKill throughput: ${t.total} machines, ${t.inFlight} kills in flight`);
  printTable(
    ['figure', 'value', 'bar', 'result', 'goal', 'result'],
    [
      [
        'kills answered per second',
        fmt(rate(t.allAnswered)),
        `≥ ${perSecond.bar}`,
        verdict(perSecond.bar, rate(t.allAnswered)),
        `≥ ${perSecond.goal}`,
        verdict(perSecond.goal, rate(t.allAnswered)),
      ],
      [
        '  baseline, same kills: torn down per second (the teardown queue)',
        fmt(rate(t.allTornDown)),
        '',
        '',
        '',
        '',
      ],
      ['  each kill → answered, p50 / p95 (ms)', `${fmt(t.each.p50)} / ${fmt(t.each.p95)}`, '', '', '', ''],
      [
        '  all answered / all torn down (ms)',
        `${fmt(t.allAnswered, 0)} / ${fmt(t.allTornDown, 0)}`,
        '',
        '',
        '',
        '',
      ],
    ],
    'lrrlrl',
  );

  console.log(
    '\nKill whatever runs inside (ms, p50 / max over the runs): answered; dead = no process left in its\n' +
      `cgroups (polled every 2 ms); torn down = its teardown done. The bar: dead ≤ ${deadMs} ms (max).`,
  );
  printTable(
    ['case', 'inside', 'answered', 'terminate', 'dead', 'result', 'torn down (baseline)', 'the transition'],
    byCase.map((c) => {
      const [a, tm, d, td] = [stats(c.answered), stats(c.terminate), stats(c.dead), stats(c.tornDown)];
      return [
        c.name,
        c.what,
        `${fmt(a.p50, 0)} / ${fmt(a.max, 0)}`,
        `${fmt(tm.p50, 0)} / ${fmt(tm.max, 0)}`,
        `${fmt(d.p50, 0)} / ${fmt(d.max, 0)}`,
        verdict(d.max, deadMs),
        `${fmt(td.p50, 0)} / ${fmt(td.max, 0)}`,
        [...new Set(c.outcomes)].join('; '),
      ];
    }),
    'llrrrlrl',
  );
}

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['node', process.version],
  ]);
}

async function cleanup(note) {
  await stopServerAndMachines(S, note);
  return cleanUpRun(S, note);
}

runBench({
  script: 'bench/kill.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 20, 1],
    machines: ['machines', 48, 1],
    inFlight: ['in-flight', 16, 1],
    caseIterations: ['case-iterations', 3, 1],
    warmup: ['warmup', 2, 0],
  },
  preflight: templateHas('usr/bin', 'python3'),
  title: 'Nullspace kill benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machines checked: no runc container, mount, loop device, netns, cgroup, process or temp dir left`,
});
