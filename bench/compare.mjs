#!/usr/bin/env node
/**
 * Comparison benchmark: the same workload through Nullspace (a real server over HTTP) and through
 * Podman + runc + CRIU on the same host and the same Debian userland, interleaved iteration by
 * iteration: create → `true` answers, fork → the child answers, hibernate/resume of a machine
 * holding 100 MiB; beside a raw `criu dump`/`criu restore` of a host process holding the same.
 * Run as root from the repository root, after `bash bench/compare/setup.sh` (Podman):
 * `node bench/compare.mjs [--iterations N]`. See bench/README.md.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { cleanUpPodman, makePodman } from './compare/podman.mjs';
import { report } from './compare/report.mjs';
import {
  CGROUP_V2,
  TEMPLATE,
  USAGE_ENVIRONMENT,
  checkInterrupted,
  createMachineViaApi,
  filesystemOf,
  killMachineViaApi,
  makeRunDir,
  pidsWith,
  printHost,
  printRun,
  progress,
  rssBytes,
  runBench,
  samples,
  shuffled,
  startServerProcess,
  templateHas,
  timed,
  toolVersion,
  trackMachine,
} from './lib.mjs';
import { ballastPython, machineBallastRss, startMachineBallast, waitRss } from './lifecycle/ballast.mjs';
import { CRIU, makeCriuBaseline } from './lifecycle/baselines.mjs';
import { MARK, S, api, cleanup as cleanUpServerSide, expectStatus, run } from './lifecycle/state.mjs';

const USAGE = `usage: node bench/compare.mjs [options]   (as root, from the repository root,
                                         after bash bench/compare/setup.sh)
  --iterations N   timed iterations of every series (default 8)
  --warmup N       warm-up iterations before each series, not counted (default 1)
${USAGE_ENVIRONMENT}`;

/** The run's Podman (see compare/podman.mjs), once its directory exists. */
let P;

const criuInPath = () => {
  try {
    return execFileSync('sh', ['-c', 'command -v criu'], { encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
};

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['podman', await toolVersion('podman', ['--version'])],
    ['conmon', await toolVersion('conmon', ['--version'])],
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['criu', `${await toolVersion(CRIU, ['--version'])} (${CRIU}; podman's: ${criuInPath()})`],
    ['node', process.version],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1 (hybrid); podman with --cgroup-manager=cgroupfs'],
    ['/tmp', `${await filesystemOf('/tmp')} (server data dir, podman storage, checkpoints)`],
  ]);
}

async function bench(opts, templatesDir) {
  const { iterations: n, warmup } = opts;
  const { R, push } = samples();
  const info = { n };

  makeRunDir(S);
  await mkdir(join(S.tmp, 'criu'), { recursive: true });
  await mkdir(join(S.tmp, 'podman'));
  P = makePodman(join(S.tmp, 'podman'));
  progress(`podman: import ${TEMPLATE}'s rootfs as a local image (no registry)`);
  const [importMs] = await timed(() => P.importRootfs(join(templatesDir, TEMPLATE, 'rootfs')));
  await startServerProcess(S, templatesDir, { config: { snapshotsDir: join(S.dataDir, 'snapshots') } });
  printRun(S, [
    [
      'podman',
      `storage ${P.root} (overlay), runc root ${P.runcRoot}, cgroup parent /${P.cgroupParent}; ` +
        `image ${P.image} imported in ${(importMs / 1000).toFixed(1)} s`,
    ],
    ['settings', `${n} timed iterations per series, ${warmup} warm-up (not counted) before each`],
    ['order', 'each iteration runs the sides of a series in a fresh random order'],
  ]);

  progress('long-lived: an idle machine and container (fork), one of each holding 100 MiB (hibernate)');
  const idle = await createMachineViaApi(S);
  const heavy = await createMachineViaApi(S);
  info.heavyRss = await startMachineBallast(heavy.id);
  await P.run('idle', ['sleep', 'infinity']);
  const podmanTag = `${MARK}-podman`;
  await P.run('heavy', ['python3', '-c', ballastPython(podmanTag)]);
  const podmanBallast = () => pidsWith(podmanTag);
  info.podmanRss = await waitRss(podmanBallast, 'ballast in the podman container');
  const criu = await makeCriuBaseline();
  info.hostRss = criu.rss;

  let seq = 0;
  const series = {
    create: {
      async nullspace() {
        const [ms, m] = await timed(async () => {
          const m = await createMachineViaApi(S);
          await run(m.id, 'true', { args: [] });
          return m;
        });
        await killMachineViaApi(S, m.id);
        return { create: ms };
      },
      async podman() {
        const name = `create-${++seq}`;
        const [ms] = await timed(async () => {
          await P.run(name, ['sleep', 'infinity']);
          await P.exec(name, ['true']);
        });
        await P.remove(name);
        return { create: ms };
      },
    },
    fork: {
      async nullspace() {
        const t0 = performance.now();
        const forked = await api('POST', `/v1/machines/${idle.id}/fork`, { count: 1 });
        const child = forked.children?.[0];
        if (!child || child.error) throw new Error(`fork: ${child?.error?.code} ${child?.error?.message}`);
        trackMachine(S, child.id);
        await run(child.id, 'true', { args: [] });
        const ms = performance.now() - t0;
        await killMachineViaApi(S, child.id);
        return { fork: ms };
      },
      async podman() {
        const name = `fork-${++seq}`;
        const file = join(P.dir, `${name}.tar`);
        const t0 = performance.now();
        await P.podman([
          'container',
          'checkpoint',
          '--leave-running',
          '--compress',
          'none',
          '--export',
          file,
          'idle',
        ]);
        const t1 = performance.now();
        P.containers.add(name);
        await P.podman(['container', 'restore', '--import', file, '--name', name]);
        await P.exec(name, ['true']);
        const t2 = performance.now();
        await P.remove(name);
        await rm(file, { force: true });
        return { fork: t2 - t0, forkExport: t1 - t0 };
      },
    },
    hibernate: {
      async nullspace() {
        const [hibernate, hib] = await timed(() => api('POST', `/v1/machines/${heavy.id}/hibernate`));
        expectStatus(hib, 'hibernated', 'hibernate');
        const [resume, res] = await timed(() => api('POST', `/v1/machines/${heavy.id}/connect`, {}));
        expectStatus(res, 'running', 'connect after hibernate');
        const [answer] = await timed(() => run(heavy.id, 'true', { args: [] }));
        return { hibernate, resume, resumeAnswers: resume + answer };
      },
      async podman() {
        const [hibernate] = await timed(() => P.podman(['container', 'checkpoint', 'heavy']));
        const [resume] = await timed(() => P.podman(['container', 'restore', 'heavy']));
        const [answer] = await timed(() => P.exec('heavy', ['true']));
        return { hibernate, resume, resumeAnswers: resume + answer };
      },
      async criu() {
        const raw = await criu.dumpRestore();
        info.criuImageBytes = raw.bytes;
        return { hibernate: raw.dump, resume: raw.restore };
      },
    },
  };

  for (const [name, sides] of Object.entries(series)) {
    progress(`${name} ×${n} (+${warmup}): ${Object.keys(sides).join(', ')}, interleaved`);
    for (let i = -warmup; i < n; i++) {
      checkInterrupted();
      for (const side of shuffled(Object.keys(sides))) {
        const figures = await sides[side]();
        if (i < 0) continue;
        for (const [key, ms] of Object.entries(figures)) push(`${side}.${key}`, ms);
      }
    }
  }

  // Both still hold their memory after the hibernate series, and the idle ones still answer.
  info.heavyRssEnd = machineBallastRss(heavy.id);
  info.podmanRssEnd = podmanBallast().reduce((sum, pid) => sum + rssBytes(pid), 0);
  await run(idle.id, 'true', { args: [] });
  await P.exec('idle', ['true']);
  await killMachineViaApi(S, idle.id);
  await killMachineViaApi(S, heavy.id);
  for (const name of ['idle', 'heavy']) await P.remove(name);
  return { R, info };
}

runBench({
  script: 'bench/compare.mjs',
  usage: USAGE,
  options: { iterations: ['iterations', 8, 1], warmup: ['warmup', 1, 0] },
  rootFor: 'runc, criu, podman, cgroups',
  preflight: (templatesDir) => {
    const missing = templateHas('usr', 'bin', 'python3')(templatesDir);
    if (missing) return missing;
    for (const tool of ['/usr/bin/podman', '/usr/bin/conmon'])
      if (!existsSync(tool)) return `${tool} missing: run \`bash bench/compare/setup.sh\` first (as root)`;
    if (!existsSync(CRIU)) return `${CRIU} is needed (scripts/setup.sh builds it)`;
    if (!criuInPath()) return 'no criu in PATH: podman checkpoints with it';
    return undefined;
  },
  title: 'Nullspace against Podman + runc + CRIU',
  describeHost,
  bench,
  report,
  cleanup: async (note) => {
    const podmanLeaks = await cleanUpPodman(P, note);
    const { leaks, checked } = await cleanUpServerSide(note);
    return { leaks: [...podmanLeaks, ...leaks], checked };
  },
  cleanedUp: (checked) =>
    `${checked} machines checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' podman: no container, image, runc state, conmon or cgroup left, its host paths removed;' +
    ' server stopped, criu baseline process gone, temp dir removed',
});
