import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** Decodes the octal escapes (`\040` for space ...) the kernel uses in /proc/self/mountinfo. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** Mount points currently visible to this process. */
export async function listMountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] !== undefined) out.push(unescapeMountPath(fields[4]));
  }
  return out;
}

export async function isMountPoint(path: string): Promise<boolean> {
  const abs = resolve(path);
  return (await listMountPoints()).includes(abs);
}

/** Mount points at or below `dir`, deepest first (the order they must be unmounted in). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const abs = resolve(dir);
  return (await listMountPoints())
    .filter((m) => m === abs || m.startsWith(`${abs}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * Whether another filesystem is mounted at `path`: its device differs from its parent
 * directory's. Two `stat`s instead of a read of /proc/self/mountinfo, whose cost grows with every
 * mount on the host (five per machine alive, ~10 ms of CPU a read with 500 machines:
 * bench/README.md, "A lone create with many machines alive"). Only for mount points where a
 * filesystem of its own is mounted (a machine's overlay, its disk's XFS), never for a bind mount
 * of the parent's filesystem, which this does not see. False when `path` does not exist.
 */
export async function hasOwnFilesystem(path: string): Promise<boolean> {
  const abs = resolve(path);
  try {
    const [here, parent] = await Promise.all([stat(abs), stat(dirname(abs))]);
    return here.dev !== parent.dev;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    // A filesystem that answers stat with an error (an XFS shut down after an I/O error) is still
    // mounted: the mount table says so.
    return isMountPoint(abs);
  }
}
