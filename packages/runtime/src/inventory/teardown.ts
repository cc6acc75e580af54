import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CodedError } from '@nullspace/protocol';
import { host } from '../exec.js';
import { MACHINE_FILES } from '../machine-dir.js';
import { deleteLinkIfPresent, deleteMachineRules } from '../net/link.js';
import { deleteNetns } from '../netns/netns.js';
import { unmountOverlay } from '../rootfs/overlay.js';
import { type StepTiming, stepPublisher } from '../step-timing.js';
import { DiskImage } from '../storage/disk-image.js';
import { readIdRange, releaseIdRange } from '../userns/id-ranges.js';
import { backingFileOf } from './host-view.js';
import {
  type MachineProcesses,
  type MachineResources,
  type MountRole,
  type RuntimeDirs,
  describeResources,
  machineProcesses,
  machineResources,
  resourcesOf,
} from './inventory.js';

/** How often (every 10 ms) teardown looks for the disk's loop device to be freed after the unmount. */
const LOOP_RELEASE_TRIES = 100;
/** The mounts a teardown takes down in their own steps, in order; any other goes first. */
const OWN_MOUNTS = new Set<MountRole>(['rootfs', 'disk', 'lower', 'sysfs']);

/** How long the processes of a machine may take to end once killed (a bomb of thousands: ~0.1 s). */
const PROCESSES_END_TIMEOUT_MS = 10_000;

/**
 * The steps of {@link tearDownMachine}, in the order it runs them. Each one is reported on
 * {@link TEARDOWN_CHANNEL} every time, also when it has nothing to do for this machine.
 */
export const TEARDOWN_STEPS = [
  'read the inventory',
  'lift CPU limits, kill init',
  'cgroup.kill (or SIGKILL each), thaw',
  'wait until its cgroups are empty',
  'unmount CRIU and volume leftovers',
  'runc delete',
  'remove cgroups',
  'unmount overlay',
  'unmount template layers and sysfs',
  'unmount disk, remove its mount point',
  'free loop device',
  'delete link',
  'delete netns',
  'delete nft rules',
  'check nothing is left',
  'remove disk image and directory',
] as const;

export type TeardownStep = (typeof TEARDOWN_STEPS)[number];

/** One message on {@link TEARDOWN_CHANNEL}: a step of one machine's teardown, done, and its time. */
export type TeardownStepTiming = StepTiming<TeardownStep>;

/**
 * The `node:diagnostics_channel` channel on which {@link tearDownMachine} publishes a
 * {@link TeardownStepTiming} after each step that succeeds (a teardown that throws stops
 * reporting at its failed step). Steps are timed only while the channel has a subscriber: the
 * benches subscribe to show where a kill's time goes.
 */
export const TEARDOWN_CHANNEL = 'nullspace:runtime:teardown-step';

const publishStep = stepPublisher<TeardownStep>(TEARDOWN_CHANNEL);

/** Runs one step of a teardown; timed and reported while someone listens. */
type RunStep = <T>(step: TeardownStep, fn: () => Promise<T>) => Promise<T>;

const untimed: RunStep = (_step, fn) => fn();

function stepsOf(machineId: string): RunStep {
  return (step, fn) => publishStep(machineId, step, fn);
}

/**
 * Tears down everything the inventory finds for machine `id`, whatever state it is in (running,
 * paused, half-created, half-restored, or left by a crashed server), then reads the inventory
 * again and throws if anything is left. `keepFiles`: its disk image and directory stay (a
 * hibernated machine is restored from them); else they go too. Idempotent.
 *
 * Its processes end first: its init is killed (the kernel then kills every process of its pid
 * namespace, however fast they fork), then whatever is left in its cgroups, and frozen cgroups are
 * thawed (a frozen task dies only once thawed). Only then do mounts, runc's container, cgroups, the
 * link, network namespace and nftables rules go. The steps, in order, are {@link TEARDOWN_STEPS};
 * each is reported on {@link TEARDOWN_CHANNEL} while it has a subscriber.
 */
export async function tearDownMachine(
  dirs: RuntimeDirs,
  id: string,
  o: { keepFiles: boolean },
): Promise<void> {
  const step = stepsOf(id);
  // Its nftables rules are looked up and deleted in one step (below): no `nft` lookup here.
  const m = await step('read the inventory', () => machineResources(dirs, id, { nft: false }));
  await endProcesses(m, step);
  // Mounts other than its root filesystem and disk, deepest first, before runc deletes its state
  // directory: what a CRIU killed at its deadline could not clean up (its cgroup yard, and runc's
  // criu-root — a bind mount of the machine's root filesystem, through which `runc delete`'s
  // recursive removal deleted the machine's whole filesystem once), and volumes staged for a
  // restore (through those, a recursive delete would delete volumes' files).
  await step('unmount CRIU and volume leftovers', async () => {
    for (const mount of m.mounts)
      if (!OWN_MOUNTS.has(mount.role)) await host('umount', ['-l', mount.path]).catch(() => undefined);
  });
  // Its processes are gone (above) and its cgroups go below: what `runc delete` would still do
  // for a stopped container is remove its state directory, which is done here instead. runc finds
  // its cgroup mounts by reading the host's whole mount table first, which costs more with every
  // machine on the host; a teardown that fell behind a churn of kills paid it on each one.
  await step('runc delete', async () => {
    if (m.runcState !== null) await rm(m.runcState, { recursive: true, force: true });
  });
  // runc removes the cgroups of a container it knows; these are of one it did not (a restore
  // killed half-way) or of one whose removal it left unfinished.
  await step('remove cgroups', () => removeCgroups(m.cgroups));
  const machineDir = join(dirs.machinesDir, id);
  const disk = new DiskImage(machineDir);
  // Whether each is mounted is what the inventory read: no step reads the mount table again (each
  // read costs more with every mount on the host: 20-45 ms at 3,000 measured under load).
  const mounted = (role: MountRole) => m.mounts.some((mount) => mount.role === role);
  await step('unmount overlay', () =>
    unmountOverlay(join(machineDir, MACHINE_FILES.rootfs), mounted('rootfs')),
  );
  // What the overlay was made of (its idmapped template layers) and the machine's sysfs, once
  // nothing stands on them; their mount points go too (like the disk's, below).
  await step('unmount template layers and sysfs', async () => {
    for (const mount of m.mounts)
      if (mount.role === 'lower' || mount.role === 'sysfs')
        await host('umount', [mount.path]).catch(() => host('umount', ['-l', mount.path]));
    // Never a recursive delete here: through a layer still mounted it would reach the template.
    const lower = join(machineDir, MACHINE_FILES.lower);
    for (const n of await readdir(lower).catch(() => [])) await rmdir(join(lower, n)).catch(() => undefined);
    for (const path of [lower, join(machineDir, MACHINE_FILES.sysfs)])
      await rmdir(path).catch(() => undefined);
  });
  await step('unmount disk, remove its mount point', async () => {
    await disk.unmount(mounted('disk'));
    // Where host mounts are private (this host), a process that made a mount namespace while the
    // machine ran (`ip netns exec`, a container start, a CRIU restore — another server's too)
    // holds a copy of its mounts, and so its disk's filesystem and loop device, until it ends.
    // Removing a mount point detaches the copies on it in every namespace: unmountOverlay removes
    // the root's, this the disk's (a restore makes it again). Without it, a hibernated machine's
    // loop device stayed attached (seen in full test runs beside other servers).
    await rmdir(disk.mountPoint).catch(() => undefined);
  });
  // The loop device then goes (autoclear) once its filesystem is released, which may take a
  // moment; one still bound to the disk image after that is detached (or, if still in use
  // somewhere, marked to be once free).
  await step('free loop device', async () => {
    const bound = async () => {
      const still = await Promise.all(
        m.loops.map(async (l) => ((await backingFileOf(l.device)) === l.backingFile ? [l] : [])),
      );
      return still.flat();
    };
    for (let i = 0; i < LOOP_RELEASE_TRIES && (await bound()).length > 0; i++) await sleep(10);
    for (const loop of await bound()) await host('losetup', ['-d', loop.device]).catch(() => undefined);
  });
  // The host end of the veth goes before the namespace, while the namespace holds its peer: a
  // name freed here may be another machine's next (host interfaces are named by address block).
  await step('delete link', async () => {
    for (const link of m.links) await deleteLinkIfPresent(link);
  });
  await step('delete netns', async () => {
    if (m.netns !== null) await deleteNetns(m.netns);
  });
  // Its chains (and an older server's table) by name, listed or not; its dispatch entries under
  // the link name its directory records (the link itself may be gone), else as a reading of the
  // maps finds them (the first read above did not look): an entry left behind would rule the next
  // machine given this link name. The name is still its own: its address block, after which links
  // are named, is not handed out again until this teardown is done.
  await step('delete nft rules', async () => {
    const link = await readFile(join(machineDir, MACHINE_FILES.link), 'utf8').then(
      (name) => name.trim(),
      () => '',
    );
    await deleteMachineRules(id, link === '' ? undefined : [link]);
  });
  // Before its directory goes, so that nothing is deleted through a mount still there. Its nft
  // rules are not read again: deleteMachineRules succeeded, and an entry pointing at its chains
  // would have failed their deletion. Not a failure: a loop device whose filesystem is no longer
  // mounted here, but still used in another mount namespace (a process working in a copy of the
  // disk's mount); the kernel frees it when that ends. Leak checks still see it.
  await step('check nothing is left', async () => {
    const left = resourcesOf(await machineResources(dirs, id, { nft: false, loops: false })).filter(
      (r) => r.kind !== 'machine-dir' && r.kind !== 'loop-device',
    );
    if (left.length > 0)
      throw new CodedError(
        'internal',
        `machine ${id}: still on the host after teardown: ${describeResources(left).join('; ')}`,
      );
  });
  await step('remove disk image and directory', async () => {
    if (o.keepFiles || m.dir === null) return;
    // Its host id range is free once nothing of the machine is left that uses it.
    const range = readIdRange(machineDir);
    // Nothing is mounted under it (checked just above), so a recursive delete reaches only its files.
    await disk.removeFiles();
    await rm(machineDir, { recursive: true, force: true });
    if (range !== null) releaseIdRange(machineDir, range);
  });
}

/**
 * Ends machine `id` at once, without tearing anything down: SIGKILL to its init (the kernel then
 * kills every process of its pid namespace, however fast they fork), to a checkpoint/restore runc
 * runs on it (with the CRIU it started), and to everything in its cgroups (`cgroup.kill`), then
 * its frozen cgroups are thawed (a frozen task dies only once thawed; the signals are pending by
 * then, so a thawed fork bomb cannot fork past them). Resolves once all that is sent, not once the
 * processes are gone: none of them runs its code again (a process in uninterruptible sleep exits
 * when its I/O ends). It reads only the machine's runc record, its operation file and its cgroup
 * directories, so it costs the same whatever runs inside and however many machines run beside
 * it. {@link tearDownMachine} afterwards waits for the processes to be gone and frees the rest.
 */
export async function terminateMachine(dirs: RuntimeDirs, id: string): Promise<void> {
  await signalProcesses(await machineProcesses(dirs, id));
}

/**
 * Ends every process of the machine (see {@link terminateMachine}) and resolves once its cgroups
 * are empty. `step` runs (and times) its three steps: see tearDownMachine.
 */
export async function endProcesses(m: MachineResources, step: RunStep = untimed): Promise<void> {
  await signalProcesses(m, step, m.pids);
  await step('wait until its cgroups are empty', async () => {
    const deadline = Date.now() + PROCESSES_END_TIMEOUT_MS;
    for (let round = 1; ; round++) {
      const left = await procsOf(m.cgroups);
      if (left.length === 0) return;
      if (Date.now() > deadline)
        throw new CodedError(
          'internal',
          `machine ${m.id}: ${left.length} processes did not end in ${PROCESSES_END_TIMEOUT_MS} ms (pids ${left.slice(0, 10).join(' ')})`,
        );
      // Again now and then: a process that was being created when its cgroup was listed.
      if (round % 20 === 0) await killAll(m.cgroups, left);
      await sleep(Math.min(round, 10));
    }
  });
}

/**
 * The first two steps of ending a machine: its CPU limits lifted, its init and runc operation
 * killed, then its cgroups (`pids`: their processes, if already read; else read only where
 * `cgroup.kill` is missing).
 */
async function signalProcesses(
  m: MachineProcesses,
  step: RunStep = untimed,
  pids?: readonly number[],
): Promise<void> {
  await step('lift CPU limits, kill init', async () => {
    if (pids === undefined ? m.cgroups.length > 0 : pids.length > 0) liftCpuLimits(m.cgroups);
    // Never a process of another machine, whatever pid a record or a group names: a fork child is
    // restored with its parent's pids (in its own pid namespace), and a child whose restore
    // failed is torn down while its parent runs on beside it.
    const ours = (pid: number) => !inAnotherMachine(pid, m);
    if (m.operation !== null) {
      const members = groupMembers(m.operation);
      // runc and the CRIU it started, at once as a group (a process can join a group only from its
      // own session, so nothing of another machine joins it after this reading); else one by one.
      if (members.every(ours)) signal(-m.operation);
      else for (const pid of members) if (ours(pid)) signal(pid);
    }
    if (m.init !== null && ours(m.init)) signal(m.init);
  });
  await step('cgroup.kill (or SIGKILL each), thaw', () => killAll(m.cgroups, pids));
}

/** `cgroup.kill` in every cgroup that has it, else SIGKILL to each process; then thawed. */
async function killAll(cgroups: readonly string[], pids?: readonly number[]): Promise<void> {
  let viaCgroup = false;
  for (const dir of cgroups) if (writeCgroupFile(dir, 'cgroup.kill', '1')) viaCgroup = true;
  if (!viaCgroup) for (const pid of pids ?? (await procsOf(cgroups))) signal(pid);
  thaw(cgroups);
}

/**
 * Writes `value` to cgroup file `file` of `dir`; whether it was written (false where the
 * hierarchy has no such file: cgroupfs makes none, so the open fails, one system call in all).
 * Synchronously: cgroupfs answers at once (the kernel does the work in the write), and a kill
 * that answers after these writes must not queue them behind other file work in libuv's pool.
 */
function writeCgroupFile(dir: string, file: string, value: string): boolean {
  try {
    writeFileSync(join(dir, file), value);
    return true;
  } catch {
    return false;
  }
}

/**
 * The processes of process group `pgid`: a runc checkpoint/restore (its leader), the CRIU it
 * started, and, for a moment, what CRIU restores before it gives them their own groups. Read from
 * /proc: only while an operation runs, which a kill rarely meets.
 */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [pgid];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readText(`/proc/${name}/stat`);
    // Fields after the command name (which may hold spaces): state, ppid, pgrp, …
    if (stat && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid)
      members.push(Number(name));
  }
  return members;
}

/**
 * Whether `pid` is in another machine's cgroups (under the machines' cgroup parent, not under
 * this machine's own): such a process is never this machine's to signal.
 */
function inAnotherMachine(pid: number, m: Pick<MachineProcesses, 'id' | 'cgroupParent'>): boolean {
  return namesAnotherMachine(readText(`/proc/${pid}/cgroup`), m);
}

/**
 * Whether a `/proc/PID/cgroup` text places its process in another machine's cgroups than `m`'s
 * (in any hierarchy: cgroup v1 lines and the v2 `0::` line alike).
 */
export function namesAnotherMachine(text: string, m: Pick<MachineProcesses, 'id' | 'cgroupParent'>): boolean {
  const own = `${m.cgroupParent}/${m.id}`;
  for (const line of text.split('\n')) {
    // `hierarchy-id:controllers:path`; the path may hold colons.
    const path = line.split(':').slice(2).join(':');
    if (path.startsWith(`${m.cgroupParent}/`) && path !== own && !path.startsWith(`${own}/`)) return true;
  }
  return false;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function signal(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

/**
 * A killed process still runs its exit in its cgroup, under the machine's CPU quota and weight:
 * thousands of them (a fork bomb) took ~0.7 s to end within one vCPU. Lifted, they end at the
 * host's full speed.
 */
function liftCpuLimits(cgroups: readonly string[]): void {
  const limits: [string, string][] = [
    ['cpu.cfs_quota_us', '-1'],
    ['cpu.shares', '1024'],
    ['cpu.max', 'max'],
    ['cpu.weight', '100'],
  ];
  for (const dir of cgroups) for (const [file, value] of limits) writeCgroupFile(dir, file, value);
}

function thaw(cgroups: readonly string[]): void {
  for (const dir of cgroups) {
    writeCgroupFile(dir, 'freezer.state', 'THAWED');
    writeCgroupFile(dir, 'cgroup.freeze', '0');
  }
}

async function procsOf(cgroups: readonly string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const dir of cgroups) {
    const text = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
    for (const p of text.split('\n')) if (p) pids.add(Number(p));
  }
  return [...pids];
}

/** Removes empty cgroup directories, deepest first (a moment after its last task, one may be busy). */
async function removeCgroups(cgroups: readonly string[]): Promise<void> {
  for (const dir of cgroups) {
    for (let attempt = 0; existsSync(dir) && attempt < 50; attempt++) {
      if (
        await rmdir(dir).then(
          () => true,
          () => false,
        )
      )
        break;
      await sleep(10);
    }
  }
}
