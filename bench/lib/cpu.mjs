/**
 * CPU time: of processes (/proc/<pid>/stat), of the whole host (/proc/stat), of a machine's cgroup,
 * and the load a bench's spans put on the host.
 */
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { CGROUP_V2, MACHINE_CGROUP_PARENT } from './cgroups.mjs';
import { sh } from './common.mjs';
import { procText, readText } from './processes.mjs';

let clockTicks = 100;

/** Reads the kernel's clock ticks per second (what /proc counts CPU time in) before the first use. */
export async function readClockTicks() {
  clockTicks = Number((await sh('getconf', ['CLK_TCK']).catch(() => '100')).trim()) || 100;
}

/**
 * User + system CPU of one process so far (ms), from /proc/<pid>/stat (`children`: with the children
 * it reaped); 0 once it is gone.
 */
export function processCpuMs(pid, { children = false } = {}) {
  const stat = pid === undefined ? undefined : procText(pid, 'stat');
  if (!stat) return 0;
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const own = Number(f[11]) + Number(f[12]);
  return ((own + (children ? Number(f[13]) + Number(f[14]) : 0)) * 1000) / clockTicks;
}

/** This process's CPU so far (ms, user + system, all its threads). */
export function selfCpuMs() {
  const self = process.cpuUsage();
  return (self.user + self.system) / 1000;
}

/**
 * CPU the whole host has been busy so far (ms, all cores), from /proc/stat: user, nice, system and
 * steal (guest time is already in user); with `interrupts`, irq and softirq time too.
 */
function hostBusyMs(interrupts) {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  const busy = f[0] + f[1] + f[2] + (interrupts ? f[5] + f[6] : 0) + f[7];
  return (busy * 1000) / clockTicks;
}

/**
 * How busy the host was over the spans a bench measures, and how much of it was the bench's own:
 * this process and the server's (each with the children it reaped), `others()` (ms: the bench's
 * other processes, or machines it counts itself), and the machine's cgroup (none without a
 * `machineId`). `sample(machineId)` takes both at one moment,
 * `add(before, after)` counts a span, `summary()` gives the seconds counted and the load (cores)
 * that was ours and that was everything else: the figures are only as clean as that is small.
 * `interrupts`: see hostBusyMs.
 */
export function hostLoad(S, { interrupts = true, others = () => 0 } = {}) {
  const oursMs = (machineId) =>
    processCpuMs(process.pid, { children: true }) +
    processCpuMs(S.server.child.pid, { children: true }) +
    others() +
    (machineId === undefined ? 0 : machineCpu(machineId).usageMs);
  let wall = 0;
  let busy = 0;
  let ours = 0;
  return {
    sample: (machineId) => ({
      at: performance.now(),
      busyMs: hostBusyMs(interrupts),
      oursMs: oursMs(machineId),
    }),
    add(before, after) {
      wall += after.at - before.at;
      busy += after.busyMs - before.busyMs;
      ours += after.oursMs - before.oursMs;
    },
    summary: () => ({ wallS: wall / 1000, oursLoad: ours / wall, otherLoad: (busy - ours) / wall }),
  };
}

/** Whitespace-separated `key value` lines (a cgroup's cpu.stat) as numbers; empty if unreadable. */
function readKeyed(file) {
  return Object.fromEntries(
    (readText(file) ?? '')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(/\s+/))
      .map(([k, v]) => [k, Number(v)]),
  );
}

/**
 * A machine's cgroup CPU so far: usage (ms), CFS periods, throttled periods and throttled time
 * (ms): what its vCPU quota cost it. NaN for what cannot be read.
 */
export function machineCpu(id) {
  const rel = `${MACHINE_CGROUP_PARENT}/${id}`;
  if (CGROUP_V2) {
    const st = readKeyed(`/sys/fs/cgroup/${rel}/cpu.stat`);
    return {
      usageMs: (st.usage_usec ?? Number.NaN) / 1000,
      periods: st.nr_periods ?? Number.NaN,
      throttled: st.nr_throttled ?? Number.NaN,
      throttledMs: (st.throttled_usec ?? Number.NaN) / 1000,
    };
  }
  const acct = ['cpuacct', 'cpu,cpuacct']
    .map((h) => `/sys/fs/cgroup/${h}/${rel}/cpuacct.usage`)
    .find((f) => existsSync(f));
  const cpuStat = ['cpu', 'cpu,cpuacct']
    .map((h) => `/sys/fs/cgroup/${h}/${rel}/cpu.stat`)
    .find((f) => existsSync(f));
  const st = cpuStat ? readKeyed(cpuStat) : {};
  return {
    usageMs: acct ? Number(readFileSync(acct, 'utf8').trim()) / 1e6 : Number.NaN,
    periods: st.nr_periods ?? Number.NaN,
    throttled: st.nr_throttled ?? Number.NaN,
    throttledMs: (st.throttled_time ?? Number.NaN) / 1e6,
  };
}

/**
 * The CPU time so far (ms) of each of a bench's `parties` (name → a function that reads it) and
 * of machine `machineId`'s cgroup (`machine`, see machineCpu), at one moment.
 */
export function cpuSnapshot(machineId, parties) {
  const snap = { at: performance.now() };
  for (const [name, read] of Object.entries(parties)) snap[name] = read();
  snap.machine = machineCpu(machineId);
  return snap;
}

/**
 * Adds to `acc` what passed between snapshots `a` and `b` (see cpuSnapshot): the wall time, each
 * party's CPU, the machine's (`machine`), its CFS `periods`, `throttled` periods and `throttledMs`.
 */
export function cpuAdd(acc, a, b) {
  const add = (k, v) => {
    acc[k] = (acc[k] ?? 0) + v;
  };
  add('wall', b.at - a.at);
  for (const k of Object.keys(a)) if (k !== 'at' && k !== 'machine') add(k, b[k] - a[k]);
  add('machine', b.machine.usageMs - a.machine.usageMs);
  add('periods', b.machine.periods - a.machine.periods);
  add('throttled', b.machine.throttled - a.machine.throttled);
  add('throttledMs', b.machine.throttledMs - a.machine.throttledMs);
}
