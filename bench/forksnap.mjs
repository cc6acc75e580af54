#!/usr/bin/env node
/**
 * Fork and snapshot benchmark (issue 19 item 3): a snapshot's freeze (`paused_ms`) of an idle
 * machine, of one holding 100 MiB in memory and of one holding 100 MiB on its disk; fork {count: 1}
 * until the child answers (idle and disk machine), fork {count: 8} until every child answers; and
 * what a data directory on a reflink filesystem costs elsewhere: a 100 MiB `dd … conv=fsync` in a
 * machine and create → first command. Through this checkout's server, with `--pool 1` the same
 * build with its data directory on an XFS (reflink=1) loop file the bench makes in its temp dir
 * (what disk copies cost when they share blocks), and with NSBENCH_BASELINE_REPO another build's;
 * every series alternates between them in one run, under the same load, with PASS/MISS against
 * the bars. The servers run in this process, each with its own data directory.
 * Run as root from the repository root: `node bench/forksnap.mjs [--iterations N]`. See bench/README.md.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { machineIds, tearDownMachine } from '@nullspace/runtime';
import { startServer } from '@nullspace/server';
import {
  TEMPLATE,
  USAGE_ENVIRONMENT,
  apiRequest,
  baselineRepoBuilt,
  checkInterrupted,
  cleanUpRun,
  filesystemOf,
  fmt,
  killChildren,
  makeRunDir,
  pidsWith,
  printHost,
  printLatencyTable,
  printRun,
  progress,
  runBench,
  runState,
  samples,
  serverConfig,
  sh,
  statsOf,
  stopServerAndMachines,
  templateWithPython,
  toolVersion,
  verdict,
} from './lib.mjs';
import { BALLAST_MIB, ballastPython, waitRss } from './lifecycle/ballast.mjs';

const USAGE = `usage: node bench/forksnap.mjs [options]   (as root, from the repository root)
  --iterations N   timed iterations of every series (default 10)
  --warmup N       warm-up iterations before each series, not counted (default 1)
  --pool 0|1       also this checkout with its data dir on an XFS reflink loop in the temp dir (default 1)
environment: NSBENCH_BASELINE_REPO=DIR  another checkout (built): its server runs beside this one's,
  every series alternating between the two
${USAGE_ENVIRONMENT}`;

/** The bars (ms; the fork ratio is a plain number). */
const BAR = { fork1: 250, forkRatio: 3, pausedIdle: 100, pausedHeavy: 100 };
const FORK_MANY = 8;
const MARK = `nsbench-forksnap-${process.pid}`;

/** Besides this checkout's server: the baseline's (its live machines, every id it made, its data dir). */
const S = runState({ others: [], pool: undefined });

async function cleanup(note) {
  for (const side of S.others) {
    for (const id of side.live)
      await apiRequest(side.server, 'DELETE', `/v1/machines/${id}`).catch(note(`kill ${id} (${side.name})`));
    await side.server.close().catch(note(`${side.name} server close`));
  }
  await stopServerAndMachines(S, note);
  await killChildren(S.children, note);
  await releasePool(note);
  return cleanUpRun(S, note, {
    mark: MARK,
    extraRoots: S.others.map((side) => ({
      root: join(side.dataDir, 'runc'),
      machinesDir: join(side.dataDir, 'machines'),
      ids: side.ids,
    })),
  });
}

/**
 * One build's server and what the bench made on it: `live` machines (killed at cleanup) and `ids`,
 * every machine it made (checked for leftovers at the end).
 */
function side(name, server, dataDir, live, ids) {
  const api = (method, path, body) => apiRequest(server, method, path, body);
  const track = (id) => {
    live.add(id);
    ids.add(id);
  };
  const create = async () => {
    const m = await api('POST', '/v1/machines', { template: TEMPLATE, timeout: 3600 });
    track(m.id);
    return m;
  };
  const kill = async (id) => {
    await api('DELETE', `/v1/machines/${id}`);
    live.delete(id);
  };
  const run = async (id, cmd, shell = false) => {
    const r = await api(
      'POST',
      `/v1/machines/${id}/commands`,
      shell ? { cmd, shell: true } : { cmd, args: [] },
    );
    if (r.exit_code !== 0) throw new Error(`${name}: ${cmd} in ${id} exited ${r.exit_code}: ${r.stderr}`);
    return r;
  };
  return { name, server, dataDir, live, ids, api, track, create, kill, run };
}

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['criu', await toolVersion('criu', ['--version'])],
    ['node', process.version],
    ['/tmp', `${await filesystemOf('/tmp')} (data dirs: disk images, snapshot images)`],
  ]);
}

/** Forks `m` into `count` children and resolves once every child has run `true` (ms). */
async function forkUntilAnswered(sd, id, count) {
  const t0 = performance.now();
  const forked = await sd.api('POST', `/v1/machines/${id}/fork`, { count });
  const children = forked.children ?? [];
  for (const c of children) if (c.id) sd.track(c.id);
  const failed = children.find((c) => c.error);
  if (children.length !== count || failed)
    throw new Error(`${sd.name}: fork ${count}: ${failed?.error?.code} ${failed?.error?.message}`);
  await Promise.all(children.map((c) => sd.run(c.id, 'true')));
  const ms = performance.now() - t0;
  for (const c of children) await sd.kill(c.id);
  return ms;
}

/**
 * A sparse 64 GiB file in the temp dir, XFS with reflink=1, mounted at `<tmp>/pool` (the cleanup
 * unmounts whatever is mounted under the temp dir; the loop device goes with it): a data dir there
 * has its disk images, snapshots and fork images on one filesystem that shares blocks on copy.
 */
async function makePool() {
  const img = join(S.tmp, 'pool.img');
  const mnt = join(S.tmp, 'pool');
  await sh('truncate', ['-s', '64G', img]);
  await sh('mkfs.xfs', ['-q', '-K', '-m', 'reflink=1', img]);
  await mkdir(mnt);
  await sh('mount', ['-o', 'loop,noatime', img, mnt]);
  S.pool = { img, mnt };
  return mnt;
}

/**
 * The pool goes before the generic cleanup: its machines' leftovers first (they live on it), then
 * the unmount, then the wait for the kernel to free its loop device, which happens a moment after
 * the unmount (the leak check would see it still bound).
 */
async function releasePool(note) {
  if (!S.pool) return;
  const { img, mnt, side } = S.pool;
  if (side) {
    const dirs = { machinesDir: join(side.dataDir, 'machines'), runcRoot: join(side.dataDir, 'runc') };
    for (const id of await machineIds(dirs).catch(() => [])) side.ids.add(id);
    for (const id of side.ids)
      await tearDownMachine(dirs, id, { keepFiles: false }).catch(note(`tear down ${id} (pool)`));
  }
  const device = (await sh('findmnt', ['-n', '-o', 'SOURCE', mnt]).catch(() => '')).trim();
  if (device) await sh('umount', [mnt]).catch(note(`umount ${mnt}`));
  const backing = `/sys/block/${device.replace('/dev/', '')}/loop/backing_file`;
  for (let i = 0; device && i < 500; i++) {
    const file = existsSync(backing) ? readFileSync(backing, 'utf8').trim() : '';
    if (file !== img) break;
    await sleep(10);
  }
}

async function bench(opts, templatesDir) {
  const { iterations: n, warmup } = opts;
  const { R, push } = samples();
  makeRunDir(S);
  S.server = await startServer(serverConfig(S, templatesDir));
  const sides = [side('this checkout', S.server, S.dataDir, S.live, S.machineIds)];
  if (opts.pool) {
    const dataDir = join(await makePool(), 'data');
    const server = await startServer({ ...serverConfig(S, templatesDir), dataDir });
    const other = side('this checkout, data dir on XFS reflink', server, dataDir, new Set(), new Set());
    S.pool.side = other;
    S.others.push(other);
    sides.push(other);
  }
  const repo = process.env.NSBENCH_BASELINE_REPO;
  if (repo) {
    const { startServer: startBaseline } = await import(join(repo, 'packages/server/dist/index.js'));
    const dataDir = join(S.tmp, 'baseline-data');
    const server = await startBaseline({ ...serverConfig(S, templatesDir), dataDir });
    const other = side(`baseline ${repo}`, server, dataDir, new Set(), new Set());
    S.others.push(other);
    sides.push(other);
  }
  printRun(S, [
    ['settings', `${n} timed iterations per series, ${warmup} warm-up; builds alternate, first one flips`],
  ]);

  progress(`per server: one idle machine, one holding ${BALLAST_MIB} MiB in memory, one on its disk`);
  const machines = new Map();
  for (const sd of sides) {
    const idle = await sd.create();
    const heavy = await sd.create();
    const disky = await sd.create();
    const tag = `${MARK}-${heavy.id}`;
    await sd.run(heavy.id, `nohup python3 -c '${ballastPython(tag)}' >/dev/null 2>&1 </dev/null &`, true);
    await waitRss(() => pidsWith(tag), `ballast in ${heavy.id}`);
    // Random bytes: a sparse copy cannot turn them into holes.
    await sd.run(disky.id, `head -c ${BALLAST_MIB}M /dev/urandom > /root/ballast && sync`, true);
    machines.set(sd, { idle, heavy, disky });
  }

  progress(
    `×${n} (+${warmup}): snapshots of each machine, fork {count:1} of the idle and the disk one, ` +
      `{count:${FORK_MANY}}, dd, create`,
  );
  for (let i = -warmup; i < n; i++) {
    for (const sd of i % 2 === 0 ? sides : [...sides].reverse()) {
      checkInterrupted();
      const { idle, heavy, disky } = machines.get(sd);
      const got = {};
      for (const [key, m] of [
        ['Idle', idle],
        ['Heavy', heavy],
        ['Disk', disky],
      ]) {
        const t0 = performance.now();
        const snap = await sd.api('POST', `/v1/machines/${m.id}/snapshots`);
        got[`snap${key}Wall`] = performance.now() - t0;
        got[`snap${key}Paused`] = snap.paused_ms;
        await sd.api('DELETE', `/v1/snapshots/${snap.id}`);
      }
      got.fork1 = await forkUntilAnswered(sd, idle.id, 1);
      got.forkMany = await forkUntilAnswered(sd, idle.id, FORK_MANY);
      got.forkDisk = await forkUntilAnswered(sd, disky.id, 1);
      let t0 = performance.now();
      await sd.run(
        idle.id,
        `dd if=/dev/zero of=/root/dd bs=1M count=${BALLAST_MIB} conv=fsync 2>/dev/null`,
        true,
      );
      got.dd = performance.now() - t0;
      await sd.run(idle.id, 'rm -f /root/dd', true);
      t0 = performance.now();
      const fresh = await sd.create();
      await sd.run(fresh.id, 'true');
      got.create = performance.now() - t0;
      await sd.kill(fresh.id);
      // The parents still answer, the heavy one still holds its ballast.
      await sd.run(idle.id, 'true');
      await sd.run(heavy.id, `pgrep -f ${MARK}-${heavy.id} >/dev/null`, true);
      if (i < 0) continue;
      for (const [key, ms] of Object.entries(got)) push(`${sd.name}|${key}`, ms);
    }
  }
  return { R, names: sides.map((sd) => sd.name), n };
}

function report({ R, names }) {
  const st = statsOf(R);
  console.log('\nLatency (ms; p50/p95 nearest-rank, min, max; the target applies to p50)');
  const rows = [];
  for (const name of names) {
    const g = (key) => st[`${name}|${key}`];
    const bars = name.startsWith('this checkout');
    rows.push(
      [`${name}`, '', '', '', '', '', '', ''],
      latencyRowOf(
        '  snapshot, idle machine: paused_ms',
        g('snapIdlePaused'),
        bars ? BAR.pausedIdle : undefined,
      ),
      latencyRowOf('    the same, POST wall time', g('snapIdleWall')),
      latencyRowOf(
        `  snapshot, ${BALLAST_MIB} MiB machine: paused_ms`,
        g('snapHeavyPaused'),
        bars ? BAR.pausedHeavy : undefined,
      ),
      latencyRowOf('    the same, POST wall time', g('snapHeavyWall')),
      latencyRowOf(`  snapshot, ${BALLAST_MIB} MiB on disk: paused_ms`, g('snapDiskPaused')),
      latencyRowOf('    the same, POST wall time', g('snapDiskWall')),
      latencyRowOf('  fork {count:1} → child answers', g('fork1'), bars ? BAR.fork1 : undefined),
      latencyRowOf(`  fork {count:${FORK_MANY}} → every child answers`, g('forkMany')),
      latencyRowOf(`  fork {count:1}, ${BALLAST_MIB} MiB on disk → child answers`, g('forkDisk')),
      latencyRowOf(`  dd ${BALLAST_MIB} MiB conv=fsync in a machine (command wall time)`, g('dd')),
      latencyRowOf('  create → first command answers', g('create')),
    );
  }
  printLatencyTable('figure', rows);
  console.log(`\nfork {count:${FORK_MANY}} / fork {count:1} (ratio of the medians; bar ≤ ${BAR.forkRatio}×)`);
  for (const name of names) {
    const ratio = st[`${name}|forkMany`].p50 / st[`${name}|fork1`].p50;
    const result = name.startsWith('this checkout') ? `  ${verdict(ratio, BAR.forkRatio)}` : '';
    console.log(`  ${name.padEnd(40)} ${fmt(ratio, 2)}×${result}`);
  }
  const keys = ['snapIdlePaused', 'snapHeavyPaused', 'snapDiskPaused', 'snapIdleWall', 'snapHeavyWall'];
  keys.push('snapDiskWall', 'fork1', 'forkMany', 'forkDisk', 'dd', 'create');
  for (const other of names.slice(1)) {
    console.log(`\n${names[0]} / ${other} (ratio of the medians; below 1: ${names[0]} is faster)`);
    for (const key of keys) {
      const ratio = st[`${names[0]}|${key}`].p50 / st[`${other}|${key}`].p50;
      console.log(`  ${key.padEnd(20)} ${fmt(ratio, 2)}`);
    }
  }
}

/** latencyRow, with the row's label indented by the caller. */
function latencyRowOf(label, stats, target) {
  const goal = target === undefined ? '' : `≤ ${target}`;
  if (!stats || stats.n === 0) return [label, 0, '-', '-', '-', '-', goal, ''];
  const cells = [stats.p50, stats.p95, stats.min, stats.max].map((x) => fmt(x));
  return [label, stats.n, ...cells, goal, target === undefined ? '' : verdict(stats.p50, target)];
}

runBench({
  script: 'bench/forksnap.mjs',
  usage: USAGE,
  options: { iterations: ['iterations', 10, 1], warmup: ['warmup', 1, 0], pool: ['pool', 1, 0] },
  rootFor: 'runc, criu, cgroups',
  preflight: (templatesDir) => templateWithPython(templatesDir) ?? baselineRepoBuilt(),
  title: 'Nullspace fork and snapshot benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machines checked: no runc container, mount, loop device, netns or cgroup left; servers stopped, temp dir removed`,
});
