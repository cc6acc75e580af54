#!/usr/bin/env node
/**
 * Hibernate/resume benchmark (issue 19 item 2): a machine holding 100 MiB hibernated
 * (POST /hibernate) and resumed (POST /connect, until it answers) against a raw `criu dump` and
 * `criu restore -d` of a plain host process holding the same 100 MiB, interleaved iteration by
 * iteration, with the ratios of the medians PASS/MISS against the issue's bar (≤ 1.25×; goal
 * ≤ 1.1×). Beside each hibernate and resume: CRIU's own time as its log says (the last timestamp
 * of dump.log / restore.log, from CRIU's start), so what is left is the server's and runc's.
 * With NSBENCH_BASELINE_REPO another build's server runs beside this one's and every iteration
 * alternates between them (the first one flips each time), so a change is judged against the
 * build it replaces under the same load. The servers run in this process, each with its own data
 * directory. Run as root from the repository root: `node bench/hibernate.mjs [--iterations N]`.
 * See bench/README.md.
 */
import { subscribe } from 'node:diagnostics_channel';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CHECKPOINT_CHANNEL, CHECKPOINT_STEPS, TEARDOWN_CHANNEL, TEARDOWN_STEPS } from '@nullspace/runtime';
import { startServer } from '@nullspace/server';
import {
  TEMPLATE,
  USAGE_ENVIRONMENT,
  apiRequest,
  baselineRepoBuilt,
  checkInterrupted,
  executables,
  filesystemOf,
  fmt,
  makeRunDir,
  pidsWith,
  printHost,
  printLatencyTable,
  printRun,
  progress,
  runBench,
  samples,
  serverConfig,
  statsOf,
  templateWithPython,
  toolVersion,
  verdict,
} from './lib.mjs';
import { BALLAST_MIB, ballastPython, waitRss } from './lifecycle/ballast.mjs';
import { CRIU, makeCriuBaseline } from './lifecycle/baselines.mjs';
import { MARK, S, cleanup as lifecycleCleanup } from './lifecycle/state.mjs';

const USAGE = `usage: node bench/hibernate.mjs [options]   (as root, from the repository root)
  --iterations N   timed iterations (default 10)
  --warmup N       warm-up iterations, not counted (default 1)
environment: NSBENCH_BASELINE_REPO=DIR  another checkout (built): its server runs beside this one's,
  every iteration alternating between the two
${USAGE_ENVIRONMENT}`;

/** The issue's bar and goal for hibernate / criu dump and resume / criu restore. */
const BAR = 1.25;
const GOAL = 1.1;

/** The baseline build's server and what it made (killed and checked at cleanup). */
const others = [];

async function cleanup(note) {
  for (const sd of others) {
    for (const id of sd.live)
      await apiRequest(sd.server, 'DELETE', `/v1/machines/${id}`).catch(note(`kill ${id} (${sd.name})`));
    await sd.server.close().catch(note(`${sd.name} server close`));
  }
  // The lifecycle bench's cleanup: this server, the criu baseline's processes, the leak check.
  return lifecycleCleanup(note, {
    extraRoots: others.map((sd) => ({
      root: join(sd.dataDir, 'runc'),
      machinesDir: join(sd.dataDir, 'machines'),
      ids: sd.ids,
    })),
  });
}

function side(name, server, dataDir, live, ids) {
  const api = (method, path, body) => apiRequest(server, method, path, body);
  return { name, server, dataDir, live, ids, api };
}

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['runc', await toolVersion('runc', ['--version'], 2)],
    ['criu', await toolVersion(CRIU, ['--version'])],
    ['node', process.version],
    [
      '/tmp',
      `${await filesystemOf('/tmp')} (data dirs: disk images, hibernation images, criu baseline images)`,
    ],
  ]);
}

/**
 * CRIU's own run time (ms) from its log: every line starts with `(SS.uuuuuu)`, seconds since CRIU
 * started; the last one is about when it exited. Undefined when there is no such log.
 */
function criuLogMs(file) {
  if (!existsSync(file)) return undefined;
  const stamps = readFileSync(file, 'utf8').match(/^\((\d+\.\d+)\)/gm);
  const last = stamps?.at(-1);
  return last === undefined ? undefined : Number(last.slice(1, -1)) * 1000;
}

/**
 * When CRIU ran, in wall-clock ms: the birth time of its log (it creates the file as it starts;
 * the bench removes the old one first) and its last write. With the step's own start and end this
 * splits the step into the runtime's work before CRIU, CRIU's, and after it. Undefined without a
 * log or a birth time (a filesystem that keeps none).
 */
function criuWindow(file) {
  try {
    const st = statSync(file, { bigint: true });
    if (st.birthtimeNs === 0n) return undefined;
    return { born: Number(st.birthtimeNs) / 1e6, lastWrite: Number(st.mtimeNs) / 1e6 };
  } catch {
    return undefined;
  }
}

/**
 * The step that runs CRIU in a hibernate / a resume, by either build's name for it (`runc
 * checkpoint` / `runc restore`, or CRIU run directly).
 */
const CRIU_STEPS = {
  dump: ['hibernate: runc checkpoint', 'hibernate: criu dump'],
  restore: ['restore: runc restore', 'restore: criu restore'],
};

/** ms of the runtime before and after CRIU within the step that ran it (see criuWindow). */
function aroundCriu(stepEnds, names, file) {
  const w = criuWindow(file);
  const name = names.find((n) => stepEnds[n]);
  if (!w || !name) return undefined;
  const { end, ms } = stepEnds[name];
  return { before: w.born - (end - ms), after: end - w.lastWrite };
}

/** Where a machine's CRIU writes its logs: the work dir of runc's --work-path, or criu's own -o. */
function criuLogs(sd, id) {
  const dir = join(sd.dataDir, 'machines', id);
  return { dump: join(dir, 'criu-dump', 'dump.log'), restore: join(dir, 'criu-restore', 'restore.log') };
}

/**
 * Resolves with the time (performance.now()) at which the machine's next teardown ends: its last
 * step, reported on the runtime's teardown channel by both builds (the channel is the process's,
 * by name). A hibernate's release is one; this build runs it after the hibernate answered.
 */
const teardownEnds = new Map();
subscribe(TEARDOWN_CHANNEL, (t) => {
  if (t.step !== TEARDOWN_STEPS.at(-1)) return;
  teardownEnds.get(t.machineId)?.(performance.now());
  teardownEnds.delete(t.machineId);
});
function nextTeardownEnd(id) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no teardown of ${id} within 100 s`)), 100_000);
    teardownEnds.set(id, (at) => {
      clearTimeout(timer);
      resolve(at);
    });
  });
}

async function bench(opts, templatesDir) {
  const { iterations: n, warmup } = opts;
  const { R, push } = samples();
  const info = {};
  // This checkout's driver reports each step of a hibernate and a resume (runtime/checkpoint-steps.ts).
  let steps = {};
  let stepEnds = {};
  subscribe(CHECKPOINT_CHANNEL, (t) => {
    steps[t.step] = (steps[t.step] ?? 0) + t.ms;
    // Published as the step ends: its wall-clock end, to set beside CRIU's log (aroundCriu).
    stepEnds[t.step] = { end: performance.timeOrigin + performance.now(), ms: t.ms };
  });
  makeRunDir(S);
  await mkdir(join(S.tmp, 'criu'), { recursive: true });
  S.server = await startServer(serverConfig(S, templatesDir));
  const sides = [side('this checkout', S.server, S.dataDir, S.live, S.machineIds)];
  const repo = process.env.NSBENCH_BASELINE_REPO;
  if (repo) {
    const { startServer: startBaseline } = await import(join(repo, 'packages/server/dist/index.js'));
    const dataDir = join(S.tmp, 'baseline-data');
    const server = await startBaseline({ ...serverConfig(S, templatesDir), dataDir });
    const other = side(`baseline ${repo}`, server, dataDir, new Set(), new Set());
    others.push(other);
    sides.push(other);
  }
  printRun(S, [['settings', `${n} timed iterations, ${warmup} warm-up; builds alternate, first one flips`]]);

  progress(`per server: one machine holding ${BALLAST_MIB} MiB; on the host: the criu baseline's process`);
  const heavy = new Map();
  for (const sd of sides) {
    const m = await sd.api('POST', '/v1/machines', { template: TEMPLATE, timeout: 3600 });
    sd.live.add(m.id);
    sd.ids.add(m.id);
    const tag = `${MARK}-${m.id}`;
    await sd.api('POST', `/v1/machines/${m.id}/commands`, {
      cmd: `nohup python3 -c '${ballastPython(tag)}' >/dev/null 2>&1 </dev/null &`,
      shell: true,
    });
    await waitRss(() => pidsWith(tag), `ballast in ${m.id}`);
    heavy.set(sd, m);
  }
  // The ratios are to the one in a mount namespace of its own (see makeCriuBaseline).
  const criu = await makeCriuBaseline({ ownMounts: true });
  const criuHostNs = await makeCriuBaseline();
  info.mounts = { own: criu.mounts, host: criuHostNs.mounts };

  progress(`×${n} (+${warmup}): hibernate, resume until it answers, on each server; raw criu dump/restore`);
  for (let i = -warmup; i < n; i++) {
    const order = i % 2 === 0 ? sides : [...sides].reverse();
    const got = {};
    for (const sd of order) {
      checkInterrupted();
      const m = heavy.get(sd);
      const logs = criuLogs(sd, m.id);
      steps = {};
      stepEnds = {};
      rmSync(logs.dump, { force: true });
      rmSync(logs.restore, { force: true });
      const released = nextTeardownEnd(m.id);
      let t0 = performance.now();
      const hib = await sd.api('POST', `/v1/machines/${m.id}/hibernate`);
      const hibMs = performance.now() - t0;
      if (hib.status !== 'hibernated') throw new Error(`${sd.name}: hibernate: status ${hib.status}`);
      // The resume starts once the machine is released (it would wait for that anyway).
      const releasedMs = (await released) - t0;
      const dumpCriuMs = criuLogMs(logs.dump);
      const dumpAround = aroundCriu(stepEnds, CRIU_STEPS.dump, logs.dump);
      t0 = performance.now();
      const res = await sd.api('POST', `/v1/machines/${m.id}/connect`, {});
      if (res.status !== 'running') throw new Error(`${sd.name}: connect: status ${res.status}`);
      const r = await sd.api('POST', `/v1/machines/${m.id}/commands`, { cmd: 'true', args: [] });
      if (r.exit_code !== 0) throw new Error(`${sd.name}: true exited ${r.exit_code}`);
      const resMs = performance.now() - t0;
      const restoreCriuMs = criuLogMs(logs.restore);
      const restoreAround = aroundCriu(stepEnds, CRIU_STEPS.restore, logs.restore);
      // Its memory came back: the ballast runs on, still resident.
      await waitRss(() => pidsWith(`${MARK}-${m.id}`), `ballast in ${m.id} after resume`);
      got[`${sd.name}|hibernate`] = hibMs;
      got[`${sd.name}|released`] = releasedMs;
      for (const [step, ms] of Object.entries(steps)) got[`${sd.name}|step|${step}`] = ms;
      got[`${sd.name}|resume`] = resMs;
      if (dumpCriuMs !== undefined) got[`${sd.name}|hibernateCriu`] = dumpCriuMs;
      if (restoreCriuMs !== undefined) got[`${sd.name}|resumeCriu`] = restoreCriuMs;
      if (dumpAround) {
        got[`${sd.name}|hibernateBeforeCriu`] = dumpAround.before;
        got[`${sd.name}|hibernateAfterCriu`] = dumpAround.after;
      }
      if (restoreAround) {
        got[`${sd.name}|resumeBeforeCriu`] = restoreAround.before;
        got[`${sd.name}|resumeAfterCriu`] = restoreAround.after;
      }
    }
    const raw = await criu.dumpRestore();
    got.criuDump = raw.dump;
    got.criuRestore = raw.restore;
    const rawHostNs = await criuHostNs.dumpRestore();
    got.criuDumpHostNs = rawHostNs.dump;
    got.criuRestoreHostNs = rawHostNs.restore;
    if (i < 0) continue;
    for (const [key, ms] of Object.entries(got)) push(key, ms);
  }
  return { R, names: sides.map((sd) => sd.name), n, info };
}

function report({ R, names, info }) {
  const st = statsOf(R);
  const row = (label, s) => {
    if (!s || s.n === 0) return [label, 0, '-', '-', '-', '-', '', ''];
    return [label, s.n, ...[s.p50, s.p95, s.min, s.max].map((x) => fmt(x)), '', ''];
  };
  console.log('\nLatency (ms; p50/p95 nearest-rank, min, max)');
  const rows = [
    [`raw criu dump, plain process, ${BALLAST_MIB} MiB (${info.mounts.own} mounts)`, st.criuDump],
    ['raw criu restore -d of it', st.criuRestore],
    [`  the same in the host's mount namespace (${info.mounts.host} mounts)`, st.criuDumpHostNs],
    ['  raw criu restore -d of that one', st.criuRestoreHostNs],
  ].map(([l, s]) => row(l, s));
  for (const name of names) {
    const g = (key) => st[`${name}|${key}`];
    rows.push(
      [name, '', '', '', '', '', '', ''],
      row(`  hibernate, ${BALLAST_MIB} MiB (POST /hibernate)`, g('hibernate')),
      row("    of which CRIU's own run (its dump log)", g('hibernateCriu')),
      ...CHECKPOINT_STEPS.filter((k) => k.startsWith('hibernate') && g(`step|${k}`)).map((k) =>
        row(`    step ${k}`, g(`step|${k}`)),
      ),
      row('      in that step, before CRIU (runtime start, set-up)', g('hibernateBeforeCriu')),
      row('      in that step, after CRIU (state, exit)', g('hibernateAfterCriu')),
      row('    hibernate → released (its teardown ended)', g('released')),
      row('  resume (POST /connect → `true` answers)', g('resume')),
      row("    of which CRIU's own run (its restore log)", g('resumeCriu')),
      ...CHECKPOINT_STEPS.filter((k) => k.startsWith('restore') && g(`step|${k}`)).map((k) =>
        row(`    step ${k}`, g(`step|${k}`)),
      ),
      row('      in that step, before CRIU (runtime start, set-up)', g('resumeBeforeCriu')),
      row('      in that step, after CRIU (state, exit)', g('resumeAfterCriu')),
    );
  }
  printLatencyTable('figure', rows);
  console.log(`\nRatio of the medians to raw criu (bar ≤ ${BAR}×, goal ≤ ${GOAL}×)`);
  for (const name of names) {
    const bars = name === 'this checkout';
    for (const [key, base, label] of [
      ['hibernate', 'criuDump', 'hibernate / criu dump'],
      ['resume', 'criuRestore', 'resume / criu restore'],
    ]) {
      const ratio = st[`${name}|${key}`]?.p50 / st[base]?.p50;
      const result = bars ? `  ${verdict(ratio, BAR)} (goal ${verdict(ratio, GOAL)})` : '';
      console.log(`  ${`${name}: ${label}`.padEnd(56)} ${fmt(ratio, 2)}×${result}`);
    }
  }
  for (const other of names.slice(1)) {
    console.log(`\n${names[0]} / ${other} (ratio of the medians; below 1: ${names[0]} is faster)`);
    for (const key of ['hibernate', 'hibernateCriu', 'resume', 'resumeCriu']) {
      const ratio = st[`${names[0]}|${key}`]?.p50 / st[`${other}|${key}`]?.p50;
      console.log(`  ${key.padEnd(20)} ${fmt(ratio, 2)}`);
    }
  }
}

runBench({
  script: 'bench/hibernate.mjs',
  usage: USAGE,
  options: { iterations: ['iterations', 10, 1], warmup: ['warmup', 1, 0] },
  rootFor: 'runc, criu, cgroups',
  preflight: (templatesDir) =>
    templateWithPython(templatesDir) ??
    executables([CRIU, '/usr/bin/python3'], 'the baseline') ??
    baselineRepoBuilt(),
  title: 'Nullspace hibernate/resume benchmark',
  describeHost,
  bench,
  report,
  cleanup,
  cleanedUp: (checked) =>
    `${checked} machines checked: no runc container, mount, loop device, netns or cgroup left; servers stopped, baseline process gone, temp dir removed`,
});
