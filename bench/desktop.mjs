#!/usr/bin/env node
/**
 * Desktop benchmark (issue 18): a machine of the shipped `desktop` template at 1024×768, through
 * the SDK — screenshot (PNG), click and type round trips, create → first screenshot, the idle
 * machine's memory — each beside the same operation done with the X tools directly on the host
 * (an Xvfb + openbox of the bench's own, started the same way the agent starts them), all in the
 * same run, the series interleaved iteration by iteration.
 * Run as root from the repository root: `node bench/desktop.mjs [options]`. See bench/README.md.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { crop, encodePng, readXwd } from '../packages/agent/dist/desktop/image.js';
import { xvfbArgs } from '../packages/agent/dist/desktop/xvfb-args.js';
import {
  CGROUP_V2,
  MACHINE_TIMEOUT_S,
  apiRequest,
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
  printHints,
  printHost,
  printLatencyTable,
  printTable,
  progress,
  rssBytes,
  runBench,
  runState,
  samples,
  startServerProcess,
  statsOf,
  stopServerAndMachines,
  timed,
  toolVersion,
  verdict,
} from './lib.mjs';

const MARK = `nsbench-desktop-${process.pid}`;
const S = runState();
const TEMPLATE = 'desktop';
const SIZE = { width: 1024, height: 768 };
/** Targets (informational), from the issue: p50 ms, and MiB. */
const TARGETS = { screenshotMs: 40, screenshotBarMs: 80, inputMs: 15, createMs: 1000, idleMiB: 80 };

const USAGE = `usage: node bench/desktop.mjs [options]   (as root, from the repository root)
  --iterations N   screenshots, clicks and types per path (default 100)
  --creates N      create → first screenshot runs per path (default 8)
  --warmup N       warm-up iterations before each series, not counted (default 5)
environment: NULLSPACE_TEMPLATES_DIR (default /var/lib/nullspace/templates) must hold base and desktop`;

const X_ENV = (display) => ({ ...process.env, DISPLAY: display });

/** Runs an X tool on the host (argv, no shell); resolves with its stdout bytes. */
function x(display, cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: X_ENV(display), stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    let err = '';
    child.stdout.on('data', (c) => out.push(c));
    child.stderr.on('data', (c) => {
      err += c;
    });
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(Buffer.concat(out)) : reject(new Error(`${cmd} exit ${code}: ${err.trim()}`)),
    );
  });
}

/** A host desktop like the machine's: Xvfb (abstract socket only) and openbox; resolves when both answer. */
async function hostDesktop() {
  const xvfb = spawn('Xvfb', ['-displayfd', '3', ...xvfbArgs({ ...SIZE, dpi: 96 })], {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    detached: true,
  });
  S.children.add(xvfb);
  const n = await new Promise((resolve, reject) => {
    let text = '';
    xvfb.stdio[3].on('data', (c) => {
      text += c;
      if (text.includes('\n')) resolve(text.trim());
    });
    xvfb.once('exit', (code) => reject(new Error(`Xvfb exited (${code})`)));
  });
  const display = `:${n}`;
  const wm = spawn('openbox', ['--sm-disable'], { env: X_ENV(display), stdio: 'ignore', detached: true });
  S.children.add(wm);
  for (;;) {
    const ok = await x(display, 'wmctrl', ['-m']).then(
      () => true,
      () => false,
    );
    if (ok) break;
    await sleep(10);
  }
  return { display, xvfb, wm };
}

async function stopHostDesktop(d) {
  await killChildren(new Set([d.wm, d.xvfb]), () => () => {});
  S.children.delete(d.wm);
  S.children.delete(d.xvfb);
}

/** The host's screenshot: what the agent does in the machine (xwd, then the same PNG encoder). */
async function hostScreenshot(display) {
  const p = readXwd(await x(display, 'xwd', ['-root', '-silent']));
  return encodePng(crop(p, { x: 0, y: 0, width: p.width, height: p.height }));
}

/** Proportional set size (shared pages divided among their users), from smaps_rollup; 0 if gone. */
function pssBytes(pid) {
  try {
    const kb = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** A machine's memory: its cgroup's charge, its processes' RSS and PSS summed, and each one's RSS. */
function memoryOf(id) {
  const pids = machinePids(id);
  return {
    cgroup: machineMemoryBytes(id),
    rss: pids.reduce((sum, pid) => sum + (rssBytes(pid) ?? 0), 0),
    pss: pids.reduce((sum, pid) => sum + pssBytes(pid), 0),
    procs: pids.map((pid) => {
      const cmd = (readFileSync(`/proc/${pid}/comm`, 'utf8') || '?').trim();
      return `${cmd} ${fmt((rssBytes(pid) ?? 0) / 2 ** 20, 1)}`;
    }),
  };
}

async function describeHost(templatesDir) {
  printHost(templatesDir, [
    ['node', process.version],
    ['cgroups', CGROUP_V2 ? 'v2' : 'v1'],
    ['Xvfb', await toolVersion('dpkg-query', ['-W', '-f', '${Version}', 'xvfb'])],
    ['xdotool', await toolVersion('dpkg-query', ['-W', '-f', '${Version}', 'xdotool'])],
    ['openbox', await toolVersion('openbox', ['--version'])],
    ['template', `${TEMPLATE}: ${join(templatesDir, TEMPLATE)}`],
  ]);
}

async function bench(opts, templatesDir) {
  const { R, push } = samples();
  const info = {};
  makeRunDir(S);
  await startServerProcess(S, templatesDir, { args: [MARK] });

  // 0. Idle memory of a fresh desktop machine (created, nothing asked of it, 3 s later), and of a
  //    fresh Xvfb + openbox on the host.
  progress('idle memory of a fresh machine and a fresh host desktop');
  const fresh = await createMachineViaSdk(S, { template: TEMPLATE, timeout: MACHINE_TIMEOUT_S });
  const freshHost = await hostDesktop();
  await sleep(3000);
  info.fresh = memoryOf(fresh.id);
  info.freshHost = (rssBytes(freshHost.xvfb.pid) ?? 0) + (rssBytes(freshHost.wm.pid) ?? 0);
  info.freshHostPss = pssBytes(freshHost.xvfb.pid) + pssBytes(freshHost.wm.pid);
  await killMachineViaSdk(S, fresh);
  await stopHostDesktop(freshHost);
  const m = await createMachineViaSdk(S, { template: TEMPLATE, timeout: MACHINE_TIMEOUT_S, desktop: SIZE });
  const host = await hostDesktop();
  const size = await m.desktop.getScreenSize();
  info.machine = `${m.id}: ${size.width}×${size.height}`;
  info.hostDisplay = host.display;
  console.log(`\nRun\n  machine ${info.machine}; host display ${host.display} (Xvfb + openbox of the bench)`);

  // 1. Screenshots, click and type round trips, interleaved by iteration.
  const x0 = 1 + Math.floor(SIZE.width / 2);
  const series = [
    ['shotSdk', () => m.desktop.screenshot()],
    ['shotHost', () => hostScreenshot(host.display)],
    ['clickSdk', (i) => m.desktop.leftClick(x0 + (i % 50), 300)],
    [
      'clickHost',
      (i) =>
        x(host.display, 'xdotool', ['mousemove', String(x0 + (i % 50)), '300', 'click', '--delay', '0', '1']),
    ],
    ['typeSdk', () => m.desktop.write('a')],
    ['typeHost', () => x(host.display, 'xdotool', ['type', '--delay', '5', '--', 'a'])],
    ['jpegSdk', () => m.desktop.screenshot({ format: 'jpeg' })],
  ];
  progress(`screenshots, clicks, types: ${opts.iterations} each (+${opts.warmup} warm-up)`);
  for (let i = 0; i < opts.warmup + opts.iterations; i++) {
    checkInterrupted();
    for (const [key, fn] of series) {
      if (key === 'jpegSdk' && i % 5 !== 0) continue; // an ffmpeg start each: fewer of them
      const [ms] = await timed(() => fn(i));
      if (i >= opts.warmup) push(key, ms);
    }
  }
  info.pngBytes = (await m.desktop.screenshot()).length;
  info.hostPngBytes = (await hostScreenshot(host.display)).length;

  // 2. Idle memory: the machine's cgroup charge and its processes' RSS, against Xvfb + openbox on the host.
  await sleep(2000);
  info.busy = memoryOf(m.id);
  info.busyHost = (rssBytes(host.xvfb.pid) ?? 0) + (rssBytes(host.wm.pid) ?? 0);
  await killMachineViaSdk(S, m);
  await stopHostDesktop(host);

  // 3. Create → first screenshot, alternating machine and host.
  progress(`create → first screenshot: ${opts.creates} each`);
  for (let i = 0; i < opts.creates + 1; i++) {
    checkInterrupted();
    let made;
    const [ms] = await timed(async () => {
      made = await createMachineViaSdk(S, { template: TEMPLATE, timeout: MACHINE_TIMEOUT_S });
      await made.desktop.screenshot();
    });
    await killMachineViaSdk(S, made);
    let hd;
    const [hostMs] = await timed(async () => {
      hd = await hostDesktop();
      await hostScreenshot(hd.display);
    });
    await stopHostDesktop(hd);
    if (i > 0) {
      push('createSdk', ms);
      push('createHost', hostMs);
    }
  }
  const cfg = await apiRequest(S.server, 'GET', '/v1/templates/desktop').catch(() => undefined);
  info.snapshotBacked = cfg?.snapshot ?? false;
  return { R, info, opts };
}

function report({ R, info, opts }) {
  const s = statsOf(R);
  const row = (label, st, target) => latencyRow(label, st, target, 1);
  console.log(
    `\n1. Screenshot of the whole 1024×768 screen (ms; p50/p95 nearest-rank; ${opts.iterations} each)`,
  );
  printLatencyTable('path', [
    row('SDK: desktop.screenshot() → PNG', s.shotSdk, TARGETS.screenshotMs),
    row('  bar', s.shotSdk, TARGETS.screenshotBarMs),
    row('host: xwd -root + the same PNG encoder', s.shotHost),
    row('SDK: desktop.screenshot({ format: "jpeg" }) (ffmpeg)', s.jpegSdk),
  ]);
  console.log(`   PNG: ${info.pngBytes} bytes from the machine, ${info.hostPngBytes} on the host`);

  console.log('\n2. Input round trips: the call returns once the X server has the events (ms)');
  printLatencyTable('path', [
    row('SDK: desktop.leftClick(x, y)', s.clickSdk, TARGETS.inputMs),
    row('host: xdotool mousemove x y click 1', s.clickHost),
    row("SDK: desktop.write('a')", s.typeSdk, TARGETS.inputMs),
    row('host: xdotool type a', s.typeHost),
  ]);

  console.log(`\n3. Create → first screenshot (ms; ${opts.creates} each, after one not counted)`);
  printLatencyTable('path', [
    row('SDK: Machine.create({ template: "desktop" }) + screenshot()', s.createSdk, TARGETS.createMs),
    row('host: start Xvfb + openbox, wait for the WM, xwd + PNG', s.createHost),
  ]);

  const mib = (b) => b / 2 ** 20;
  console.log('\n4. Desktop machine memory (MiB): fresh and idle 3 s after create, and after sections 1-2');
  const memRows = (label, m, target) => [
    [
      `${label}: memory cgroup (charged: RSS + page cache)`,
      fmt(mib(m.cgroup)),
      target ? `≤ ${target}` : '',
      target ? verdict(mib(m.cgroup), target) : '',
    ],
    [`${label}: processes' PSS summed (shared pages split among users)`, fmt(mib(m.pss)), '', ''],
    [`${label}: processes' RSS summed (shared pages counted per process)`, fmt(mib(m.rss)), '', ''],
  ];
  printTable(
    ['what', 'MiB', 'target', 'result'],
    [
      ...memRows('fresh machine', info.fresh, TARGETS.idleMiB),
      ['fresh host Xvfb + openbox, PSS summed', fmt(mib(info.freshHostPss)), '', ''],
      ['fresh host Xvfb + openbox, RSS summed', fmt(mib(info.freshHost)), '', ''],
      ...memRows('machine after the run', info.busy),
      ['host Xvfb + openbox after the run, RSS summed', fmt(mib(info.busyHost)), '', ''],
    ],
    'lrrl',
  );
  console.log(`   fresh machine's processes (MiB RSS): ${info.fresh.procs.join(', ')}`);
  console.log(`   after the run: ${info.busy.procs.join(', ')}`);

  const hints = [];
  if (s.shotSdk?.p50 > TARGETS.screenshotMs)
    hints.push(
      `screenshot p50 ${fmt(s.shotSdk.p50)} ms vs ${fmt(s.shotHost?.p50)} ms for the same work on the host: the rest is the HTTP hops and the agent`,
    );
  if (s.clickSdk?.p50 > TARGETS.inputMs)
    hints.push('click over target: an xdotool process start dominates (see the host row)');
  if (s.createSdk?.p50 > TARGETS.createMs)
    hints.push(
      'create → screenshot over target: the desktop starts cold (Xvfb + openbox) in each new machine',
    );
  printHints(hints);
}

runBench({
  script: 'bench/desktop.mjs',
  usage: USAGE,
  options: {
    iterations: ['iterations', 100, 1],
    creates: ['creates', 8, 1],
    warmup: ['warmup', 5, 0],
  },
  preflight: (templatesDir) =>
    !existsSync(join(templatesDir, 'base', 'rootfs'))
      ? `no base template in ${templatesDir}; set NULLSPACE_TEMPLATES_DIR`
      : !existsSync(join(templatesDir, TEMPLATE, 'template.json'))
        ? `no ${TEMPLATE} template in ${templatesDir}; run scripts/setup.sh`
        : !existsSync('/usr/bin/Xvfb') || !existsSync('/usr/bin/xdotool')
          ? 'the host baseline needs Xvfb, openbox, xdotool, wmctrl and xwd (scripts/setup.sh installs them)'
          : undefined,
  title: 'Nullspace desktop benchmark',
  describeHost,
  bench,
  report,
  async cleanup(note) {
    await killChildren(S.children, note);
    await stopServerAndMachines(S, note);
    return cleanUpRun(S, note, { mark: MARK });
  },
  cleanedUp: (checked) =>
    `${checked} machine(s) checked: no runc container, mount, loop device, netns or cgroup left;` +
    ' server stopped, host X servers and processes gone, temp dir removed',
});
