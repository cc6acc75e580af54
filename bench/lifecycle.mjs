#!/usr/bin/env node
/**
 * Lifecycle benchmark: pause/resume, hibernate/resume (100 MiB resident), snapshot freeze, fork
 * until the child answers, and lifecycle event delivery, through a real server over HTTP, beside the
 * raw building blocks (cgroup v1 freezer, criu dump/restore of a plain process, create from a
 * template) measured in the same run.
 * Run as root from the repository root: `node bench/lifecycle.mjs [--iterations N]`. See bench/README.md.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  CGROUP_V2,
  USAGE_ENVIRONMENT,
  checkInterrupted,
  createMachineViaApi,
  executables,
  filesystemOf,
  killMachineViaApi,
  makeRunDir,
  printHost,
  printRun,
  progress,
  runBench,
  samples,
  startServerProcess,
  templateWithPython,
  timed,
  toolVersion,
  trackMachine,
} from './lib.mjs';
import { BALLAST_MIB, machineBallastRss, startMachineBallast } from './lifecycle/ballast.mjs';
import { CRIU, FREEZER_ROOT, makeCriuBaseline, makeFreezerBaseline } from './lifecycle/baselines.mjs';
import { measureEvents } from './lifecycle/events.mjs';
import { report } from './lifecycle/report.mjs';
import { S, api, cleanup, expectStatus, run } from './lifecycle/state.mjs';

const USAGE = `usage: node bench/lifecycle.mjs [options]   (as root, from the repository root)
  --iterations N   timed iterations of every series (default 10)
  --warmup N       warm-up iterations before each series, not counted (default 1)
${USAGE_ENVIRONMENT}`;

// ---- host -------------------------------------------------------------------------------------

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['criu', await toolVersion(CRIU, ['--version'])],
    ['node', process.version],
    [
      'cgroups',
      CGROUP_V2
        ? 'v2'
        : `v1 (hybrid; freezer at ${FREEZER_ROOT}${existsSync(FREEZER_ROOT) ? '' : ': MISSING'})`,
    ],
    [
      '/tmp',
      `${await filesystemOf('/tmp')} (server data dir, snapshot images and the criu baseline's images)`,
    ],
  ]);
}

// ---- the benchmark ------------------------------------------------------------------------------

const createMachine = () => createMachineViaApi(S);
const killMachine = (id) => killMachineViaApi(S, id);

async function bench(opts, templatesDir) {
  const { iterations: n, warmup } = opts;
  const { R, push } = samples();
  const info = {};

  makeRunDir(S);
  await mkdir(join(S.tmp, 'criu'), { recursive: true });
  await startServerProcess(S, templatesDir, { config: { snapshotsDir: join(S.dataDir, 'snapshots') } });
  printRun(S, [
    ['settings', `${n} timed iterations per series, ${warmup} warm-up (not counted) before each`],
  ]);

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
  info.heavyRssAfter = machineBallastRss(heavy.id);
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
    trackMachine(S, child.id);
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

  // 5. event delivery (lifecycle/events.mjs).
  await measureEvents(idle.id, { n, warmup }, { R, push, info });

  // The machines still hold their state after all that.
  await run(idle.id, 'true', { args: [] });
  info.heavyRssEnd = machineBallastRss(heavy.id);
  await killMachine(idle.id);
  await killMachine(heavy.id);
  return { R, info, n };
}

runBench({
  script: 'bench/lifecycle.mjs',
  usage: USAGE,
  options: { iterations: ['iterations', 10, 1], warmup: ['warmup', 1, 0] },
  rootFor: 'runc, criu, cgroups',
  preflight: (templatesDir) =>
    templateWithPython(templatesDir) ?? executables([CRIU, '/usr/bin/python3'], 'the baselines'),
  title: 'Nullspace lifecycle benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machines checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' server stopped, baseline processes and freezer cgroup gone, temp dir removed',
});
