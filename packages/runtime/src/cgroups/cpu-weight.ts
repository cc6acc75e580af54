import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';

/**
 * CPU weight of a machine against the others when the host's CPUs are contended (its `vcpus`
 * quota is separate): `background` for machines nobody uses yet (a warm pool's, starting or
 * waiting), `normal` for everyone's. In runc's terms `cpu.shares` 2 / 1024 (v1), which it maps to
 * `cpu.weight` 1 / 100 (v2).
 */
export const CPU_SHARES = { background: 2, normal: 1024 } as const;
export type CpuPriority = keyof typeof CPU_SHARES;

/**
 * Sets the weight of a running machine's cgroup (v1 `cpu.shares`, else v2 `cpu.weight`); to
 * `normal`, it also resets the niceness its threads inherited from a background start to 0 (a
 * thread at a time: that is what setpriority(2) changes on Linux).
 */
export function setCpuPriority(cgroupPath: string, priority: CpuPriority): void {
  // Synchronous on purpose: a few bytes of cgroupfs, on a checkout's path, where each thread-pool
  // round trip of the promise API would cost more than the writes themselves.
  const v1 = join(ROOT, 'cpu', cgroupPath);
  if (existsSync(v1)) writeFileSync(join(v1, 'cpu.shares'), String(CPU_SHARES[priority]));
  else writeFileSync(join(ROOT, cgroupPath, 'cpu.weight'), priority === 'background' ? '1' : '100');
  if (priority !== 'normal') return;
  const threads = existsSync(v1) ? join(v1, 'tasks') : join(ROOT, cgroupPath, 'cgroup.threads');
  for (const tid of readFileSync(threads, 'utf8').split('\n')) {
    if (!tid) continue;
    try {
      setPriority(Number(tid), 0);
    } catch {
      // gone since the list was read
    }
  }
}
