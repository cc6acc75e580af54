import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const V1 = '/sys/fs/cgroup';

/** Whether the host has cgroup v1's cpuacct hierarchy: it does not change while the host runs. */
let v1: boolean | undefined;

/**
 * CPU and memory a machine's cgroup has used (cgroup v1 cpuacct/memory, else v2), read
 * synchronously: these are cgroupfs files the kernel fills in from memory, which never wait for a
 * disk. The metrics sampler reads them for every running machine every few seconds; through
 * libuv's thread pool each read cost a queue hand-off and a wake-up of the event loop (about 1 ms
 * of the server's CPU per machine sampled, 12 % of a core with 500 machines alive:
 * bench/README.md, "A lone create with many machines alive"), against a few microseconds here.
 * Throws (ENOENT) once the cgroup is gone.
 */
export function cgroupUsageSync(cgroupPath: string): {
  cpuSeconds: number;
  memoryBytes: number;
  memoryLimitBytes: number;
} {
  v1 ??= existsSync(join(V1, 'cpuacct'));
  if (v1) {
    const usage = readNumberSync(join(V1, 'cpuacct', cgroupPath, 'cpuacct.usage'));
    const mem = readNumberSync(join(V1, 'memory', cgroupPath, 'memory.usage_in_bytes'));
    const limit = readNumberSync(join(V1, 'memory', cgroupPath, 'memory.limit_in_bytes'));
    return { cpuSeconds: usage / 1e9, memoryBytes: mem, memoryLimitBytes: limit };
  }
  const dir = join(V1, cgroupPath);
  const stat = readFileSync(join(dir, 'cpu.stat'), 'utf8');
  const mem = readNumberSync(join(dir, 'memory.current'));
  const max = readFileSync(join(dir, 'memory.max'), 'utf8').trim();
  const usec = Number(/^usage_usec (\d+)$/m.exec(stat)?.[1] ?? 0);
  return { cpuSeconds: usec / 1e6, memoryBytes: mem, memoryLimitBytes: max === 'max' ? 0 : Number(max) };
}

/** A kernel pseudo-file holding one number (cgroupfs, sysfs), read synchronously. */
export function readNumberSync(file: string): number {
  return Number(readFileSync(file, 'utf8').trim());
}
