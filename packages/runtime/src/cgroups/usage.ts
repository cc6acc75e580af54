import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

const V1 = '/sys/fs/cgroup';

/** CPU and memory a machine's cgroup has used (cgroup v1 cpuacct/memory, else v2). */
export async function cgroupUsage(
  cgroupPath: string,
): Promise<{ cpuSeconds: number; memoryBytes: number; memoryLimitBytes: number }> {
  if (existsSync(join(V1, 'cpuacct'))) {
    const [usage, mem, limit] = await Promise.all([
      readNumber(join(V1, 'cpuacct', cgroupPath, 'cpuacct.usage')),
      readNumber(join(V1, 'memory', cgroupPath, 'memory.usage_in_bytes')),
      readNumber(join(V1, 'memory', cgroupPath, 'memory.limit_in_bytes')),
    ]);
    return { cpuSeconds: usage / 1e9, memoryBytes: mem, memoryLimitBytes: limit };
  }
  const dir = join(V1, cgroupPath);
  const [stat, mem, max] = await Promise.all([
    readFile(join(dir, 'cpu.stat'), 'utf8'),
    readNumber(join(dir, 'memory.current')),
    readFile(join(dir, 'memory.max'), 'utf8'),
  ]);
  const usec = Number(/^usage_usec (\d+)$/m.exec(stat)?.[1] ?? 0);
  return {
    cpuSeconds: usec / 1e6,
    memoryBytes: mem,
    memoryLimitBytes: max.trim() === 'max' ? 0 : Number(max.trim()),
  };
}

export async function readNumber(file: string): Promise<number> {
  return Number((await readFile(file, 'utf8')).trim());
}
