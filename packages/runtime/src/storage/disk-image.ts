import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Argv, host } from '../exec.js';
import { isMountPoint } from '../mounts.js';

/**
 * A machine's writable disk: a sparse image file formatted as XFS and mounted through a loop device.
 * The machine's overlay upper and work directories live on it, so its size is a hard limit: writing
 * past `disk_mb` fails inside the machine with ENOSPC and `df /` shows the size. (Project quotas on a
 * shared filesystem would be cheaper, but the kernels we run on are built without quota support.)
 *
 * Lifecycle, one owner (the driver):
 *   1. `createSteps(sizeMb)`: truncate the sparse file, mkfs.xfs, mount `-o loop`.
 *   2. The mount persists across a server restart (a re-adopted machine finds it in place).
 *   3. `destroy()`: unmount (the kernel frees the loop device: util-linux sets autoclear) and
 *      delete the file. Idempotent, and works from whatever is left on disk after a crash.
 */
const MOUNT_OPTIONS = 'loop,noatime,nosuid,nodev';

export class DiskImage {
  readonly file: string;
  readonly mountPoint: string;

  constructor(machineDir: string) {
    this.file = join(machineDir, 'disk.img');
    this.mountPoint = join(machineDir, 'disk');
  }

  get upper(): string {
    return join(this.mountPoint, 'upper');
  }

  get work(): string {
    return join(this.mountPoint, 'work');
  }

  /** Host commands that create, format and mount the disk (run by the driver in one batch). */
  createSteps(sizeMb: number): Argv[] {
    return [
      ['truncate', '-s', `${sizeMb}M`, this.file],
      // No discard at mkfs time: the file is sparse already, discarding it only costs time.
      ['mkfs.xfs', '-q', '-K', this.file],
      ['mkdir', '-p', this.mountPoint],
      // nosuid,nodev: what a machine writes must never become a setuid binary or a device on the host.
      ['mount', '-o', MOUNT_OPTIONS, this.file, this.mountPoint],
      ['mkdir', '-p', this.upper, this.work],
    ];
  }

  async destroy(): Promise<void> {
    if (await isMountPoint(this.mountPoint)) await host('umount', [this.mountPoint]);
    await rm(this.file, { force: true });
    await rm(this.mountPoint, { recursive: true, force: true });
  }
}
