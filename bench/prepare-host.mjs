#!/usr/bin/env node
/**
 * Where a cold create's host side (RuncDriver.prepareHost) goes, step by step: the disk lane
 * (truncate, mkfs.xfs, losetup + mount, chown, idmapped template layers, overlay, unmount of the
 * layers) and the network lane (nft egress program, `ip -batch` of the host side, two sysctls, one
 * nsenter → sh running `ip -batch`, a sysctl and `nft -f` in the namespace; then the user
 * namespace's sysfs nsenter), each step run on its own through one `sh` and timed, beside the
 * whole two-lane plan as a create runs it and an empty plan (the cost of the `sh` alone). The
 * steps are the runtime's own (the same functions prepareHost calls) for a made-up machine in a
 * scratch machines directory, torn down by the runtime's teardown after each iteration.
 * Interleaved: each iteration runs the step-by-step form and the whole plan, in alternating order.
 * Run as root from the repository root: `node bench/prepare-host.mjs [--iterations N]`.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  claimBlock,
  host,
  inventory,
  linkFor,
  linkSetUpSteps,
  machineSysfsSteps,
  parsePool,
  planScript,
  releaseBlock,
  tearDownMachine,
  writeLinkFiles,
} from '@nullspace/runtime';
import { ensureHostTable } from '../packages/runtime/dist/net/link.js';
import { mountOverlaySteps } from '../packages/runtime/dist/rootfs/overlay.js';
import { DiskImage } from '../packages/runtime/dist/storage/disk-image.js';
import { claimIdRange, releaseIdRange } from '../packages/runtime/dist/userns/id-ranges.js';
import { lowerLayerSteps } from '../packages/runtime/dist/userns/idmap.js';
import { fmt, printTable, stats } from './lib.mjs';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ITERATIONS = opt('iterations', 10);
const TEMPLATE = process.env.NULLSPACE_TEMPLATES_DIR
  ? join(process.env.NULLSPACE_TEMPLATES_DIR, 'base', 'rootfs')
  : '/var/lib/nullspace/templates/base/rootfs';
const POOL = parsePool('10.213.0.0/16');
const ALLOW_ALL = { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false };

const idOf = (n) => {
  let out = '';
  for (let k = 0, i = n + process.pid * 1000; k < 20; k++, i = Math.floor(i / 32))
    out = 'abcdefghijklmnopqrstuvwxyz234567'[i % 32] + out;
  return `mch_${out}`;
};

const tmp = await mkdtemp('/tmp/nsbench-prep-');
const dirs = {
  machinesDir: join(tmp, 'machines'),
  runcRoot: join(tmp, 'runc'),
  cgroupParent: '/nsbench-prep',
};
await mkdir(dirs.machinesDir, { recursive: true });
await ensureHostTable();

/** Claims a free address block host-wide for `owner` (from the top of the pool, away from servers'). */
function claimFreeBlock(owner) {
  for (let i = POOL.size - 1; i >= 0; i--) if (claimBlock(POOL, i, owner)) return i;
  throw new Error('no free block');
}

/** The steps prepareHost runs for machine `id` (its lanes, flattened to named steps). */
async function stepsFor(id) {
  const dir = join(dirs.machinesDir, id);
  await mkdir(join(dir, 'run'), { recursive: true });
  const range = claimIdRange(dir);
  const index = claimFreeBlock(dir);
  const link = linkFor(POOL, index, id);
  const netns = `ns-${id}`;
  const files = await writeLinkFiles(dir, netns, link, ALLOW_ALL);
  const disk = new DiskImage(dir);
  const lower = lowerLayerSteps(dir, TEMPLATE, range);
  const sysfs = join(dir, 'sys');
  const diskLane = [
    ...disk.createSteps(1024),
    ['chown', '-h', `${range.base}:${range.base}`, disk.upper],
    ...lower.steps,
    ...mountOverlaySteps({
      lower: lower.lowerdir,
      upper: disk.upper,
      work: disk.work,
      target: join(dir, 'rootfs'),
    }),
    ...lower.lowerdir.split(':').map((layer) => ['umount', layer]),
  ];
  const netLane = [...linkSetUpSteps(netns, link, files, {}), ...machineSysfsSteps(netns, sysfs)];
  return { dir, range, index, diskLane, netLane };
}

const nameOf = (step) => {
  if (Array.isArray(step) && step[1] === 'mount' && /^\d+$/.test(step[2] ?? ''))
    return 'idmapped template layer';
  if (Array.isArray(step))
    return step[0] === 'nsenter'
      ? `nsenter ${step.at(-1).slice(0, 28)}…`
      : step.slice(0, 2).join(' ').replace(/\/.*/, '').trim();
  if ('shell' in step) return 'losetup + mount + losetup -d';
  if ('write' in step) return `write ${step.to.split('/').slice(-2).join('/')}`;
  return `${step.argv.slice(0, 2).join(' ').replace(/\/.*/, '')} (egress)`;
};

async function timed(fn) {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}
const runPlan = (lanes) => host('sh', ['-c', planScript(lanes)], { timeoutMs: 120_000 });

async function cleanup(id, m) {
  await tearDownMachine(dirs, id, { keepFiles: false });
  releaseBlock(POOL, m.index, m.dir);
  releaseIdRange(m.dir, m.range);
}

/** One step's shell line, as the runtime's plan script renders it (planScript of one step). */
const stepLine = (step) => {
  const script = planScript([[step]]);
  return script.slice(script.indexOf('(\n') + 2, script.indexOf('\n) & p0'));
};

/**
 * The two lanes as the runtime's plan runs them, in bash, each step followed by a time stamp
 * ($EPOCHREALTIME, a builtin: no process): when each step ended, from the script's start.
 */
async function instrumentedPlan(lanes) {
  const lines = ['t0=$EPOCHREALTIME', 'fail=0'];
  lanes.forEach((lane, l) => {
    const body = lane.map((step, i) => `${stepLine(step)}\necho "T ${l} ${i} $EPOCHREALTIME" >&2`);
    lines.push(`(\n${body.join('\n')}\n) & p${l}=$!`);
  });
  lanes.forEach((_, l) => lines.push(`wait $p${l} || fail=1`));
  lines.push('echo "T end 0 $EPOCHREALTIME" >&2', 'echo "T start 0 $t0" >&2', 'exit $fail');
  const t = performance.now();
  const { stderr } = await host('bash', ['-c', lines.join('\n')], { timeoutMs: 120_000 });
  const wall = performance.now() - t;
  const stamps = new Map();
  for (const m of stderr.matchAll(/^T (\w+) (\d+) ([\d.]+)$/gm))
    stamps.set(`${m[1]} ${m[2]}`, Number(m[3]) * 1000);
  return { wall, stamps };
}

const perStep = new Map();
const add = (name, ms) => {
  if (!perStep.has(name)) perStep.set(name, []);
  perStep.get(name).push(ms);
};
const LANES = ['disk', 'net'];
let n = 0;
try {
  for (let it = 0; it < ITERATIONS + 1; it++) {
    const forms = ['sh', 'bash', 'disk alone', 'net alone'];
    const order = forms.map((_, i) => forms[(i + it) % forms.length]);
    for (const form of order) {
      const id = idOf(n++);
      const m = await stepsFor(id);
      const lanes = [m.diskLane, m.netLane];
      try {
        if (form === 'sh') {
          const ms = await timed(() => runPlan(lanes));
          if (it > 0) add('whole plan, both lanes side by side (sh, as a create runs it)', ms);
        } else if (form === 'disk alone' || form === 'net alone') {
          const lane = form === 'disk alone' ? m.diskLane : m.netLane;
          // The net lane's sysfs step needs nothing of the disk lane; the disk lane needs nothing of the net lane.
          const ms = await timed(() => runPlan([lane]));
          if (it > 0) add(`${form.replace(' alone', '')} lane alone (sh)`, ms);
        } else {
          const { wall, stamps } = await instrumentedPlan(lanes);
          const t0 = stamps.get('start 0');
          if (it > 0) {
            add('whole plan, both lanes (bash, time-stamped)', wall);
            add('  of which inside the script', stamps.get('end 0') - t0);
            lanes.forEach((lane, l) => {
              let prev = t0;
              lane.forEach((step, i) => {
                const at = stamps.get(`${l} ${i}`);
                add(`  ${LANES[l]}: ${nameOf(step)}`, at - prev);
                prev = at;
              });
              add(`  ${LANES[l]} lane ends at`, prev - t0);
            });
          }
        }
      } finally {
        await cleanup(id, m);
      }
    }
    process.stderr.write(`iteration ${it}/${ITERATIONS}\n`);
  }
} finally {
  const left = await inventory(dirs);
  await rm(tmp, { recursive: true, force: true });
  if (left.length) console.error('left behind:', left);
}

console.log(`prepareHost step by step (ms; ${ITERATIONS} iterations, forms interleaved)`);
printTable(
  ['step', 'n', 'p50', 'p95', 'min', 'max'],
  [...perStep].map(([name, xs]) => {
    const s = stats(xs);
    return [name, xs.length, fmt(s.p50), fmt(s.p95), fmt(s.min), fmt(s.max)];
  }),
  'lrrrrr',
);
