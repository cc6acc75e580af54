import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';

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
