import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
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

/** Sets the weight of a running machine's cgroup (v1 `cpu.shares`, else v2 `cpu.weight`). */
export async function setCpuPriority(cgroupPath: string, priority: CpuPriority): Promise<void> {
  const v1 = join(ROOT, 'cpu', cgroupPath, 'cpu.shares');
  if (existsSync(v1)) await writeFile(v1, String(CPU_SHARES[priority]));
  else await writeFile(join(ROOT, cgroupPath, 'cpu.weight'), priority === 'background' ? '1' : '100');
}
