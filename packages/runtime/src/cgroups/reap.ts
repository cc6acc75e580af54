import { existsSync } from 'node:fs';
import { readFile, readdir, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const ROOT = '/sys/fs/cgroup';

/** The machine's cgroup directory in every hierarchy there is (v1 controllers, or v2's one). */
async function cgroupDirs(cgroupPath: string): Promise<string[]> {
  const roots = existsSync(join(ROOT, 'cgroup.controllers'))
    ? [ROOT]
    : (await readdir(ROOT).catch(() => [] as string[])).map((c) => join(ROOT, c));
  return roots.map((r) => join(r, cgroupPath)).filter((d) => existsSync(d));
}

/**
 * Ends every process left in a machine's cgroups and removes them: what runc does for a container
 * it knows, for one it does not — a CRIU restore killed at its deadline leaves a half-restored
 * machine (its init and agent, holding the disk in their mount namespace) that runc never
 * registered. Processes are thawed first (a frozen task does not die until thawed). Returns how
 * many were killed. Idempotent.
 */
export async function reapCgroup(cgroupPath: string): Promise<number> {
  const dirs = await cgroupDirs(cgroupPath);
  if (dirs.length === 0) return 0;
  const pids = new Set<number>();
  const readPids = async () => {
    pids.clear();
    for (const d of dirs) {
      const text = await readFile(join(d, 'cgroup.procs'), 'utf8').catch(() => '');
      for (const p of text.split('\n')) if (p) pids.add(Number(p));
    }
  };
  await readPids();
  const killed = pids.size;
  if (pids.size > 0) {
    for (const d of dirs) {
      if (existsSync(join(d, 'freezer.state')))
        await writeFile(join(d, 'freezer.state'), 'THAWED').catch(() => undefined);
      if (existsSync(join(d, 'cgroup.freeze')))
        await writeFile(join(d, 'cgroup.freeze'), '0').catch(() => undefined);
    }
    for (let i = 0; i < 200 && pids.size > 0; i++) {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await sleep(10);
      await readPids();
    }
  }
  for (const d of dirs) await rmdir(d).catch(() => undefined);
  return killed;
}
