import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Argv, type PlanStep, host, shellQuote } from '../exec.js';
import { hasOwnFilesystem } from '../mounts.js';

/**
 * A copy of a disk image (a snapshot's, a fork's, a child's). On a data dir whose filesystem shares
 * blocks (XFS made with reflink=1, btrfs) `--reflink=auto` clones the file: a few milliseconds
 * whatever the machine wrote, and no space until one side writes (copy-on-write). Elsewhere (ext4)
 * it falls back to a copy, where --sparse=always keeps holes (and turns the zeroed log into holes):
 * it costs what the machine wrote, not disk_mb. coreutils ≥ 9 tries the clone by default; saying
 * so keeps it on older ones. See docs/lifecycle.md, "Disk copies".
 */
function copyImage(source: string, target: string): Argv {
  return ['cp', '--reflink=auto', '--sparse=always', source, target];
}

/**
 * A machine's writable disk: a sparse image file formatted as XFS and mounted through a loop device.
 * The machine's overlay upper and work directories live on it, so its size is a hard limit: writing
 * past `disk_mb` fails inside the machine with ENOSPC and `df /` shows the size. (Project quotas on a
 * shared filesystem would be cheaper, but the kernels we run on are built without quota support.)
 *
 * Lifecycle, one owner (the driver):
 *   1. `createSteps(sizeMb)`: truncate the sparse file, mkfs.xfs, mount it through a loop device.
 *   2. The mount persists across a server restart (a re-adopted machine finds it in place).
 *   3. Hibernate unmounts it (`unmount()`) and keeps the file; resume mounts it again (`mountSteps()`).
 *      A snapshot copies the file (sparse, or a reflink clone) while the machine is frozen; a machine
 *      started from the snapshot mounts its own copy (`copyFromSteps()`).
 *   4. `destroy()`: unmount (the kernel frees the loop device: util-linux sets autoclear) and
 *      delete the file. Idempotent, and works from whatever is left on disk after a crash.
 */

// nouuid: copies of one image (snapshots, forks) share the XFS UUID and must mount side by side.
const MOUNT_OPTIONS = 'noatime,nosuid,nodev,nouuid';

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
  createSteps(sizeMb: number): PlanStep[] {
    return [
      ['truncate', '-s', `${sizeMb}M`, this.file],
      // No discard at mkfs time: the file is sparse already, discarding it only costs time.
      ['mkfs.xfs', '-q', '-K', this.file],
      ...this.mountSteps(),
      ['mkdir', '-p', this.upper, this.work],
    ];
  }

  /**
   * Host commands that mount an existing image (resume after hibernate). The loop device is bound
   * by `losetup --find` (the kernel hands out a free one) and detached again right after the mount,
   * which on a device in use only marks it to be freed when it is unmounted (autoclear, as `mount
   * -o loop` does). `mount -o loop` itself first reads every loop device on the host, looking for
   * one already bound to the file: ~35 ms of CPU with 700 loop devices, growing with every machine
   * alive (bench/README.md, "Burst"); this costs ~10 ms whatever their number. If the mount fails
   * the device is detached at once; a crash in between leaves it bound to the image, where the
   * teardown's inventory finds it (a disk image with no mount: every loop device read).
   */
  mountSteps(): PlanStep[] {
    const dev = '"$dev"';
    return [
      ['mkdir', '-p', this.mountPoint],
      {
        name: `mount ${this.file} on ${this.mountPoint}`,
        shell: [
          `dev=$(losetup --find --show ${shellQuote(this.file)} </dev/null) &&`,
          // nosuid,nodev: what a machine writes must never become a setuid binary or a device on the host.
          `{ mount -o ${MOUNT_OPTIONS} ${dev} ${shellQuote(this.mountPoint)} </dev/null || { losetup -d ${dev}; false; }; } &&`,
          `losetup -d ${dev} </dev/null`,
        ].join(' '),
      },
    ];
  }

  /** Host commands that copy another (unmounted or quiesced) image into this one and mount it. */
  copyFromSteps(source: string): PlanStep[] {
    return [copyImage(source, this.file), ...this.mountSteps()];
  }

  /** Host command that copies the image to `target` (sparse); the filesystem must be quiesced. */
  copyToSteps(target: string): Argv[] {
    return [['sync', '-f', this.mountPoint], copyImage(this.file, target)];
  }

  /**
   * Unmounts the filesystem and keeps the image. Idempotent. `mounted`: whether it is mounted, if
   * the caller has just read the mount table (else its device is compared with its parent's).
   */
  async unmount(mounted?: boolean): Promise<void> {
    if (mounted ?? (await hasOwnFilesystem(this.mountPoint))) await host('umount', [this.mountPoint]);
  }

  async destroy(): Promise<void> {
    await this.unmount();
    await this.removeFiles();
  }

  /** Removes the image and the mount point, which must not be mounted. Idempotent. */
  async removeFiles(): Promise<void> {
    await rm(this.file, { force: true });
    await rm(this.mountPoint, { recursive: true, force: true });
  }
}
