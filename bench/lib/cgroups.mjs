/** A machine's cgroups as the host sees them (its processes, its memory), and runc's containers. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './common.mjs';
import { readText } from './processes.mjs';

export const CGROUP_V2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
/** The runc driver's default cgroup parent: machines live at `<parent>/<id>` in every hierarchy. */
export const MACHINE_CGROUP_PARENT = 'nullspace';

/** Existing directories for cgroup path `rel` across every hierarchy (one on v2, many on v1). */
export function cgroupDirsFor(rel) {
  const roots = CGROUP_V2
    ? ['/sys/fs/cgroup']
    : readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  return roots.map((r) => join(r, rel)).filter((p) => existsSync(p));
}

/** A machine's cgroup directory: the v2 one, or on v1 the one in `controller`'s hierarchy. */
const machineCgroupDir = (id, controller) =>
  CGROUP_V2
    ? `/sys/fs/cgroup/${MACHINE_CGROUP_PARENT}/${id}`
    : `/sys/fs/cgroup/${controller}/${MACHINE_CGROUP_PARENT}/${id}`;

/** The host pids of a machine's processes (its memory cgroup's members; none once it is gone). */
export function machinePids(id) {
  return (readText(join(machineCgroupDir(id, 'memory'), 'cgroup.procs')) ?? '')
    .split('\n')
    .filter(Boolean)
    .map(Number);
}

/** What is charged to a machine's memory cgroup (bytes): `memory.current` (v2) or `memory.usage_in_bytes`. */
export function machineMemoryBytes(id) {
  const file = join(machineCgroupDir(id, 'memory'), CGROUP_V2 ? 'memory.current' : 'memory.usage_in_bytes');
  return Number(readFileSync(file, 'utf8').trim());
}

/** Container ids in a private runc root (none if the root was never made). */
export async function runcList(root) {
  if (!existsSync(root)) return [];
  return (await sh('runc', ['--root', root, 'list', '-q'])).split('\n').filter(Boolean);
}
