import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CodedError } from '@nullspace/protocol';
import type { DriverVolumeHealth, DriverVolumeMount } from '../driver.js';
import { host } from '../exec.js';
import { mountsUnder } from '../mounts.js';
import type { IdRange } from '../userns/id-ranges.js';

/**
 * Volumes inside machines: mounting a host volume (runtime/src/storage/volume-image.ts) into a
 * running machine's mount namespace, taking it out again, checking it, and carrying it through
 * CRIU checkpoints and restores. See docs/volumes.md.
 *
 * Mounting into a running machine is done by a small setuid-free C helper (native/volume-mount.c,
 * built by scripts/build-native-helpers.sh) with the kernel's mount API: `open_tree(OPEN_TREE_CLONE)`
 * of the volume directory in the host's namespace, `mount_setattr` (private, nosuid, nodev, and
 * read-only when asked), `setns` into the machine's mount namespace, the mount path created below
 * the machine's root without following any symlink, then `move_mount`. util-linux cannot move a
 * mount across namespaces, and nothing from the machine's filesystem is ever executed. The
 * machine's root has no CAP_SYS_ADMIN, so it can neither unmount nor remount a volume (a read-only
 * one stays read-only).
 *
 * CRIU: runc's checkpoint knows only the mounts of config.json, so every volume is declared
 * external through the machine's CRIU configuration file (`ext-mount-map PATH:KEY` to dump,
 * `ext-mount-map KEY:SOURCE` to restore). The key is derived from the mount path, so an image
 * restored into another machine (fork, snapshot) finds its volumes by the paths they had. The
 * restore source is a private clone of the volume directory staged in the machine's directory on
 * the host (a mount, which no machine can swap for a symlink between check and use); CRIU restores
 * each mount's own flags, read-only included, and files open on a volume stay open.
 */

/** Where setup installs the helper; `NULLSPACE_VOLUME_HELPER` overrides it. */
export const VOLUME_HELPER_PATH = '/usr/local/libexec/nullspace/volume-mount';

/** In a machine dir: the volumes the runtime mounted into the machine (what a checkpoint declares). */
const RECORD_FILE = 'volumes.json';
/** In a machine dir: the staged restore sources (mounts, removed right after every restore). */
export const STAGE_DIR = 'volume-stage';

export function volumeHelper(): string {
  return process.env.NULLSPACE_VOLUME_HELPER || VOLUME_HELPER_PATH;
}

/** CRIU's name of the external mount at `mountPath`: stable for a path, no `:` or spaces. */
export function criuKey(mountPath: string): string {
  return `nsvol-${createHash('sha256').update(mountPath).digest('hex').slice(0, 20)}`;
}

/** The CRIU configuration lines of a checkpoint of a machine with these volumes mounted. */
export function dumpConfigLines(mounts: readonly DriverVolumeMount[]): string[] {
  return mounts.map((m) => `ext-mount-map ${m.mountPath}:${criuKey(m.mountPath)}`);
}

/** What the runtime mounted into the machine whose directory is `machineDir`. */
export async function readVolumeRecord(machineDir: string): Promise<DriverVolumeMount[]> {
  const text = await readFile(join(machineDir, RECORD_FILE), 'utf8').catch(() => '[]');
  try {
    return JSON.parse(text) as DriverVolumeMount[];
  } catch {
    return [];
  }
}

export async function writeVolumeRecord(
  machineDir: string,
  mounts: readonly DriverVolumeMount[],
): Promise<void> {
  const file = join(machineDir, RECORD_FILE);
  await writeFile(`${file}.tmp`, JSON.stringify(mounts));
  await rename(`${file}.tmp`, file);
}

/**
 * Stages the restore source of every volume under `<machineDir>/volume-stage/<key>` and returns
 * the CRIU configuration lines that map the image's keys to them. Undo with {@link unstage}.
 */
export async function stageForRestore(
  machineDir: string,
  mounts: readonly DriverVolumeMount[],
  /** The restored machine's id range: the clone is idmapped to it, as an attach to it would be. */
  range: IdRange | null,
): Promise<string[]> {
  const lines: string[] = [];
  for (const m of mounts) {
    const key = criuKey(m.mountPath);
    const target = join(machineDir, STAGE_DIR, key);
    await mkdir(target, { recursive: true });
    const ids = range === null ? [] : [String(range.base), String(range.size)];
    await runHelper(['stage', m.volumeRoot, m.subpath ?? '-', target, m.readOnly ? 'ro' : 'rw', ...ids], m);
    lines.push(`ext-mount-map ${key}:${target}`);
  }
  return lines;
}

/**
 * Removes the staged restore sources (the restored machine holds mounts of its own). Must run
 * before anything deletes the machine's directory: through a staged mount, a recursive delete
 * would delete the volume's files.
 */
export async function unstage(machineDir: string): Promise<void> {
  const dir = join(machineDir, STAGE_DIR);
  for (const m of await mountsUnder(dir)) await host('umount', ['-l', m]);
  if ((await mountsUnder(dir)).length === 0) await rm(dir, { recursive: true, force: true });
}

/** Where a machine is: the pid of its init on the host, and its id (the helper checks its cgroup). */
export interface MachineProcess {
  pid: number;
  machineId: string;
}

/** Mounts `mount` into the machine, creating its mount path. */
export async function attachVolume(machine: MachineProcess, mount: DriverVolumeMount): Promise<void> {
  await runHelper(
    [
      'attach',
      String(machine.pid),
      machine.machineId,
      mount.volumeRoot,
      mount.subpath ?? '-',
      mount.mountPath,
      mount.readOnly ? 'ro' : 'rw',
    ],
    mount,
  );
}

/** Unmounts every mount of the volume stacked at the mount path. Nothing there is not an error. */
export async function detachVolume(machine: MachineProcess, mount: DriverVolumeMount): Promise<void> {
  const device = await hostDevice(mount);
  await runHelper(['detach', String(machine.pid), machine.machineId, mount.mountPath, device], mount);
}

/** Makes the mount what it should be: whatever of the volume is at its path goes, then it is attached. */
export async function remountVolume(machine: MachineProcess, mount: DriverVolumeMount): Promise<void> {
  await detachVolume(machine, mount);
  await attachVolume(machine, mount);
}

/** Attaches each of `mounts` that is not mounted as it should be (after a create or restore). */
export async function ensureVolumes(
  machine: MachineProcess,
  mounts: readonly DriverVolumeMount[],
): Promise<void> {
  for (const m of mounts) {
    const health = await volumeHealth(machine.pid, m);
    if (health.healthy) continue;
    if (health.observed !== null) await detachVolume(machine, m);
    await attachVolume(machine, m);
  }
}

/**
 * Compares what is mounted at the mount path in the machine (its /proc/PID/mountinfo, the top
 * mount at that path) with the host's mount of the volume: same filesystem, the right directory
 * of it, read-only as asked, nosuid and nodev.
 */
export async function volumeHealth(pid: number, mount: DriverVolumeMount): Promise<DriverVolumeHealth> {
  const hostEntry = topMountAt(
    parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')),
    mount.volumeRoot,
  );
  if (!hostEntry) return unhealthy('the volume is not mounted on the host', null);
  const text = await readFile(`/proc/${pid}/mountinfo`, 'utf8').catch(() => undefined);
  if (text === undefined) return unhealthy('the machine is not running', null);
  const top = topMountAt(parseMountInfo(text), mount.mountPath);
  if (!top || top.device !== hostEntry.device)
    return unhealthy(
      top ? `something else is mounted at ${mount.mountPath}` : `nothing is mounted at ${mount.mountPath}`,
      null,
    );
  const observed = {
    readOnly: top.options.includes('ro'),
    subpath: relativeRoot(hostEntry.root, top.root),
  };
  if (observed.subpath !== mount.subpath)
    return unhealthy(
      `${describeDir(observed.subpath)} of the volume is mounted at ${mount.mountPath}, not ${describeDir(mount.subpath)}`,
      observed,
    );
  if (observed.readOnly !== mount.readOnly)
    return unhealthy(
      `mounted ${observed.readOnly ? 'read-only' : 'read-write'}, but the attachment is ${mount.readOnly ? 'read-only' : 'read-write'}`,
      observed,
    );
  if (!top.options.includes('nosuid') || !top.options.includes('nodev'))
    return unhealthy('mounted without nosuid and nodev', observed);
  return { healthy: true, reason: null, observed };
}

function unhealthy(reason: string, observed: DriverVolumeHealth['observed']): DriverVolumeHealth {
  return { healthy: false, reason, observed };
}

function describeDir(subpath: string | null): string {
  return subpath === null ? 'the root directory' : `directory ${subpath}`;
}

/** `root` (a mount's root in its filesystem) relative to the host mount's root, as a subpath. */
function relativeRoot(hostRoot: string, root: string): string | null {
  const base = hostRoot === '/' ? '' : hostRoot;
  if (root === hostRoot) return null;
  if (root.startsWith(`${base}/`)) return root.slice(base.length + 1);
  return root;
}

/** `major:minor` of the host's mount of the volume. */
async function hostDevice(mount: DriverVolumeMount): Promise<string> {
  const entry = topMountAt(parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')), mount.volumeRoot);
  if (!entry)
    throw new CodedError('internal', `volume ${mount.volumeRoot} is not mounted on the host`, {
      public_reason: 'the volume is not mounted on the host',
    });
  return entry.device;
}

interface MountEntry {
  id: number;
  parent: number;
  device: string;
  root: string;
  mountPoint: string;
  options: string[];
}

function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 6) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      device: f[2] ?? '',
      root: unescapeMountPath(f[3] ?? ''),
      mountPoint: unescapeMountPath(f[4] ?? ''),
      options: (f[5] ?? '').split(','),
    });
  }
  return out;
}

/** The mount seen at `path`: of those mounted there, the one nothing else is stacked on. */
function topMountAt(entries: MountEntry[], path: string): MountEntry | undefined {
  const here = entries.filter((e) => e.mountPoint === path);
  return here.find((e) => !here.some((o) => o.parent === e.id)) ?? here[here.length - 1];
}

/**
 * Runs the helper. Its exit status 3 (the mount path cannot be used in this machine) and 4 (the
 * subpath cannot be used in this volume) are the caller's to fix: `invalid_argument`.
 */
function runHelper(args: string[], mount: DriverVolumeMount): Promise<void> {
  const helper = volumeHelper();
  return new Promise((resolve, reject) => {
    execFile(helper, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) {
        resolve();
        return;
      }
      const why = String(stderr).trim() || err.message;
      const status = typeof err.code === 'number' ? err.code : undefined;
      if (status === 3 || status === 4) {
        const field = status === 3 ? 'mount_path' : 'subpath';
        reject(
          new CodedError('invalid_argument', `${field}: ${why}`, {
            field,
            public_reason: why,
            mount_path: mount.mountPath,
          }),
        );
        return;
      }
      reject(
        new CodedError(
          'internal',
          `${helper} ${args[0]}: ${why}`,
          {
            tool: helper,
            stderr: why,
            public_reason: `could not ${args[0]} the volume at ${mount.mountPath}`,
          },
          { cause: err },
        ),
      );
    });
  });
}
