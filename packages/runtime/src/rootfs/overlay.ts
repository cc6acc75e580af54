import { rm } from 'node:fs/promises';
import { type Argv, host } from '../exec.js';
import { hasOwnFilesystem } from '../mounts.js';

/**
 * The machine's root filesystem: an overlay of the template's (shared, read-only) root with the
 * machine's own upper directory on its disk image. Copy-on-write: nothing a machine writes reaches
 * the template or another machine.
 */
export function mountOverlaySteps(opts: {
  lower: string;
  upper: string;
  work: string;
  target: string;
}): Argv[] {
  return [
    ['mkdir', '-p', opts.target],
    [
      'mount',
      '-t',
      'overlay',
      'overlay',
      '-o',
      `nosuid,nodev,lowerdir=${opts.lower},upperdir=${opts.upper},workdir=${opts.work}`,
      opts.target,
    ],
  ];
}

/**
 * Unmounts the overlay (lazily if something still holds it) and removes the mount point. Idempotent.
 * `mounted`: whether it is mounted, if the caller has just read the mount table (a teardown's
 * inventory): else its device is compared with its parent's (two `stat`s, no read of the table).
 */
export async function unmountOverlay(target: string, mounted?: boolean): Promise<void> {
  if (mounted ?? (await hasOwnFilesystem(target))) {
    try {
      await host('umount', [target]);
    } catch {
      await host('umount', ['-l', target]);
    }
  }
  await rm(target, { recursive: true, force: true });
}
