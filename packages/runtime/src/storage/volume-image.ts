import { mkdir, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { host, hostPlan } from '../exec.js';
import { isMountPoint } from '../mounts.js';

/**
 * A volume's storage on the host: a sparse image file formatted as XFS, mounted through a loop
 * device at `<dir>/mnt` while the server runs. The filesystem's size is the volume's size: a
 * machine writing past it gets ENOSPC, and nothing it writes can fill the host's disk beyond it.
 *
 * Lifecycle, one owner (the server's volume service):
 *   1. `create(sizeMb)`: truncate the sparse file, mkfs.xfs, mount.
 *   2. `mount()` at every server start (idempotent): the host mount is what machines' mounts are
 *      cloned from. It stays mounted across a server restart, like machines' disks.
 *   3. Machines get clones of the mount in their own mount namespaces (runtime/src/volumes); those
 *      keep the filesystem alive on their own, so unmounting here never pulls data from under a
 *      running machine (the loop device lives until the last mount of it is gone).
 *   4. `destroy()`: unmount and delete the directory. Idempotent.
 *
 * The mount is private (no mount propagation to or from the host), nosuid and nodev: what a
 * machine writes must never become a setuid binary or a device on the host. No `nouuid`: XFS
 * then refuses to mount one image twice through two loop devices, which would corrupt it.
 */
const MOUNT_OPTIONS = 'loop,noatime,nosuid,nodev';

export class VolumeImage {
  readonly file: string;
  readonly mountPoint: string;

  constructor(readonly dir: string) {
    this.file = join(dir, 'volume.img');
    this.mountPoint = join(dir, 'mnt');
  }

  /** Creates, formats and mounts a new image of `sizeMb` (sparse: it costs what is written). */
  async create(sizeMb: number): Promise<void> {
    await mkdir(this.mountPoint, { recursive: true });
    await hostPlan(
      [
        [
          ['truncate', '-s', `${sizeMb}M`, this.file],
          ['mkfs.xfs', '-q', '-K', this.file],
          ...this.mountSteps(),
        ],
      ],
      { timeoutMs: 120_000 },
    );
  }

  /** Mounts the image if it is not mounted. */
  async mount(): Promise<void> {
    if (await isMountPoint(this.mountPoint)) return;
    await mkdir(this.mountPoint, { recursive: true });
    await hostPlan([this.mountSteps()], { timeoutMs: 60_000 });
  }

  private mountSteps(): string[][] {
    return [
      ['mount', '-o', MOUNT_OPTIONS, this.file, this.mountPoint],
      ['mount', '--make-private', this.mountPoint],
    ];
  }

  /** Unmounts the host's mount (machines' own mounts of it stay). Idempotent. */
  async unmount(): Promise<void> {
    if (await isMountPoint(this.mountPoint)) await host('umount', [this.mountPoint]);
  }

  /** Unmounts and deletes the image. Idempotent; never deletes through a mount it could not undo. */
  async destroy(): Promise<void> {
    await this.unmount();
    if (await isMountPoint(this.mountPoint))
      throw new Error(`${this.mountPoint} is still mounted; not deleting the volume's directory`);
    await rm(this.dir, { recursive: true, force: true });
  }

  /** Bytes in use and in total on the mounted filesystem. */
  async usage(): Promise<{ usedBytes: number; totalBytes: number }> {
    const fs = await statfs(this.mountPoint);
    return { usedBytes: (fs.blocks - fs.bfree) * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  }
}
