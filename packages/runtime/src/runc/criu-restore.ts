import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CodedError } from '@nullspace/protocol';
import { host } from '../exec.js';
import { startTime } from '../inventory/inventory.js';

/**
 * A restore (resume, fork, a machine from a snapshot) driven by `criu restore` itself instead of
 * `runc restore` (issue 19 item 2). runc 1.1 spent 65–390 ms of every restore before CRIU started
 * on a loaded host (its own start, loading and validating the container, a whole `criu swrk` only
 * to ask CRIU's version, a bind mount of the root filesystem, cgroups) and 10–220 ms after it
 * (state, exit); this path 7–85 and 7–117 ms (docs/research/criu-hibernate.md).
 *
 * What runc gave, done here explicitly, the same way (runc 1.1's libcontainer `Restore`):
 *   - the external mounts it declared at the dump, mapped back: every bind mount of config.json
 *     (key: its destination in the machine, value: its source on the host), `/dev/null` for the
 *     masked files when there are masked paths, and each device node it bound in (key = value =
 *     its path);
 *   - the machine's cgroups, made before CRIU with the limits of config.json (memory and swap,
 *     CPU quota, period and shares, pids) and runc's device rules (from its own state), so CRIU
 *     (`--manage-cgroups=soft`: it sets properties only of cgroups it made) only moves the tasks
 *     in; `--cgroup-root` the machine's cgroup path;
 *   - the network namespace handed in as `extRootNetNS` (the key runc declares it by at the dump);
 *   - seccomp, capabilities, no_new_privs, the user namespace and its mapping, and the other
 *     namespaces come from the image, as with runc;
 *   - afterwards runc's state file of the container, so that `runc checkpoint` (the next
 *     hibernate, a snapshot, a fork), the inventory and inspect find the restored init: the state
 *     runc wrote when the machine was made, kept beside the image, with the new init's pid, start
 *     time and namespace paths — what runc's own restore writes.
 *
 * The state is kept beside every image (hibernate, snapshot, fork); a machine restored from an
 * image of another machine (a fork, a machine from a snapshot) gets that machine's state under its
 * own id, id range and host name (asMachine). An image without one (taken by an older build) or a
 * state that does not match the machine's config.json goes through `runc restore`
 * (planDirectRestore says why).
 */

/** The parts of runc's state.json (libcontainer's State) read and written here. */
export interface RuncStateFile {
  id: string;
  init_process_pid: number;
  init_process_start: number;
  created: string;
  cgroup_paths: Record<string, string>;
  namespace_paths: Record<string, string>;
  config: {
    rootfs: string;
    hostname?: string;
    mounts: { source: string; destination: string; device: string }[] | null;
    devices: { path: string }[] | null;
    mask_paths: string[] | null;
    namespaces: { type: string; path: string }[] | null;
    uid_mappings: IdMap[] | null;
    gid_mappings: IdMap[] | null;
    cgroups: { path: string; devices: DeviceRule[] | null };
  };
  [more: string]: unknown;
}

interface IdMap {
  container_id: number;
  host_id: number;
  size: number;
}

interface DeviceRule {
  type: number;
  major: number;
  minor: number;
  permissions: string;
  allow: boolean;
}

/** The parts of the machine's config.json (OCI, oci/spec.ts) that decide a restore. */
interface OciConfig {
  hostname?: string;
  root: { path: string };
  mounts: { destination: string; type: string; source: string }[];
  linux: {
    namespaces: { type: string; path?: string }[];
    uidMappings?: { containerID: number; hostID: number; size: number }[];
    gidMappings?: { containerID: number; hostID: number; size: number }[];
    cgroupsPath: string;
    resources: {
      memory?: { limit?: number; swap?: number };
      cpu?: { quota?: number; period?: number; shares?: number };
      pids?: { limit?: number };
    };
  };
}

/** Everything a direct restore needs, read and checked before anything is touched. */
export interface DirectRestorePlan {
  state: RuncStateFile;
  /** [key, host path]: `--external mnt[key]:path`. */
  externalMounts: [string, string][];
  /** The machine's cgroup path below every hierarchy (`--cgroup-root`). */
  cgroupRoot: string;
  /** Controller → directory, from runc's state (what it made when the machine was created). */
  cgroupPaths: Record<string, string>;
  resources: OciConfig['linux']['resources'];
  deviceRules: DeviceRule[];
  netnsPath: string;
}

/** The v1 controllers whose limits are set here; the others are only made (as runc does). */
const V1_CONTROLLERS = new Set([
  'blkio',
  'cpu',
  'cpuacct',
  'cpuset',
  'devices',
  'freezer',
  'hugetlb',
  'memory',
  'net_cls',
  'net_prio',
  'perf_event',
  'pids',
  'rdma',
  'misc',
  'name=systemd',
]);

const sameIdMaps = (
  state: IdMap[] | null,
  oci: { containerID: number; hostID: number; size: number }[] | undefined,
): boolean =>
  JSON.stringify((state ?? []).map((m) => [m.container_id, m.host_id, m.size])) ===
  JSON.stringify((oci ?? []).map((m) => [m.containerID, m.hostID, m.size]));

const bindsKey = (binds: [string, string][]) => JSON.stringify([...binds].sort());

/**
 * Whether machine `id` can be restored by CRIU directly, and how: from the runc state kept beside
 * the image (`keptState`, undefined when there is none) and its config.json as written for this
 * restore. A reason instead when runc must do it.
 */
export function planDirectRestore(
  id: string,
  keptState: string | undefined,
  configJson: string,
): { plan: DirectRestorePlan } | { runcBecause: string } {
  if (keptState === undefined) return { runcBecause: 'no runc state kept beside the image' };
  let state: RuncStateFile;
  let oci: OciConfig;
  try {
    state = JSON.parse(keptState) as RuncStateFile;
    oci = JSON.parse(configJson) as OciConfig;
  } catch {
    return { runcBecause: 'the kept runc state or config.json does not parse' };
  }
  // A machine without a user namespace (hibernated before machines had one) keeps runc: its CRIU
  // runs outside the network namespace and joins it, a path no test here runs.
  if (!oci.linux.uidMappings?.length) return { runcBecause: 'no user namespace' };
  if (typeof state.id !== 'string' || !state.config || !state.cgroup_paths)
    return { runcBecause: 'the kept runc state is not runc 1.1 state' };
  // An image restored as another machine (a fork, a machine from a snapshot): the same container,
  // but every path of its own is under its own id, and its id range and host name are its own.
  if (state.id !== id) state = asMachine(state, id, oci);
  const c = state.config;
  if (c.rootfs !== oci.root.path) return { runcBecause: 'root filesystem moved' };
  if (c.cgroups?.path !== oci.linux.cgroupsPath) return { runcBecause: 'cgroup path changed' };
  const netns = oci.linux.namespaces.find((n) => n.type === 'network')?.path;
  const keptNetns = c.namespaces?.find((n) => n.type === 'NEWNET')?.path;
  if (!netns || netns !== keptNetns) return { runcBecause: 'network namespace path changed' };
  if (
    !sameIdMaps(c.uid_mappings, oci.linux.uidMappings) ||
    !sameIdMaps(c.gid_mappings, oci.linux.gidMappings)
  )
    return { runcBecause: 'id mapping changed' };
  const binds: [string, string][] = oci.mounts
    .filter((m) => m.type === 'bind')
    .map((m) => [m.destination, m.source]);
  const keptBinds: [string, string][] = (c.mounts ?? [])
    .filter((m) => m.device === 'bind')
    .map((m) => [m.destination, m.source]);
  if (bindsKey(binds) !== bindsKey(keptBinds)) return { runcBecause: 'bind mounts changed' };
  // A cgroup v2 host (one unified hierarchy) would need other files for the limits: runc's job.
  const controllers = Object.keys(state.cgroup_paths);
  if (!controllers.includes('memory') || controllers.some((k) => k !== '' && !V1_CONTROLLERS.has(k)))
    return { runcBecause: 'not a cgroup v1 (hybrid) host' };
  // The keys runc declared at the dump (libcontainer's addCriuDumpMount): binds, masked files
  // (all bound from /dev/null, one key), device nodes bound in. Each key once: /dev/null is both.
  const external = new Map<string, string>(binds);
  if ((c.mask_paths ?? []).length > 0) external.set('/dev/null', '/dev/null');
  for (const d of c.devices ?? []) if (d.path && !external.has(d.path)) external.set(d.path, d.path);
  const externalMounts = [...external];
  return {
    plan: {
      state,
      externalMounts,
      cgroupRoot: oci.linux.cgroupsPath,
      cgroupPaths: state.cgroup_paths,
      resources: oci.linux.resources,
      deviceRules: c.cgroups.devices ?? [],
      netnsPath: netns,
    },
  };
}

/**
 * runc's state of the container made from the same image as machine `id`: every occurrence of the
 * image machine's id (its directories, cgroup path, network namespace, runc's bundle label) becomes
 * `id`; the id mappings and host name come from `id`'s config.json. What is still not `id`'s shows
 * in the checks of planDirectRestore, which then leave the restore to runc.
 */
function asMachine(state: RuncStateFile, id: string, oci: OciConfig): RuncStateFile {
  const renamed = JSON.parse(JSON.stringify(state).split(state.id).join(id)) as RuncStateFile;
  const idMap = (m: { containerID: number; hostID: number; size: number }[] | undefined) =>
    (m ?? []).map((x) => ({ container_id: x.containerID, host_id: x.hostID, size: x.size }));
  renamed.config.uid_mappings = idMap(oci.linux.uidMappings);
  renamed.config.gid_mappings = idMap(oci.linux.gidMappings);
  if (oci.hostname !== undefined) renamed.config.hostname = oci.hostname;
  return renamed;
}

function write(dir: string, file: string, value: string | number): void {
  writeFileSync(join(dir, file), String(value));
}

function deviceRule(r: DeviceRule): string {
  const type = String.fromCharCode(r.type); // 'a', 'b', 'c'
  const n = (x: number) => (x < 0 ? '*' : String(x));
  return `${type} ${n(r.major)}:${n(r.minor)} ${r.permissions}`;
}

/**
 * The machine's cgroups with its limits, as runc's cgroup v1 manager makes them before a restore:
 * every directory, cpuset's CPUs and memory nodes from the parent (a task cannot join an empty
 * cpuset), memory and memory+swap, CPU quota, period and shares, pids, and the device rules (deny
 * all, then runc's allowances in order).
 */
export function makeMachineCgroups(plan: DirectRestorePlan): void {
  for (const dir of Object.values(plan.cgroupPaths)) mkdirSync(dir, { recursive: true });
  const p = plan.cgroupPaths;
  const r = plan.resources;
  if (p.cpuset) {
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if (readFileSync(join(p.cpuset, f), 'utf8').trim() === '')
        write(p.cpuset, f, readFileSync(join(dirname(p.cpuset), f), 'utf8').trim());
    }
  }
  if (p.memory && r.memory) {
    if (r.memory.limit !== undefined) write(p.memory, 'memory.limit_in_bytes', r.memory.limit);
    if (r.memory.swap !== undefined) write(p.memory, 'memory.memsw.limit_in_bytes', r.memory.swap);
  }
  if (p.cpu && r.cpu) {
    if (r.cpu.period !== undefined) write(p.cpu, 'cpu.cfs_period_us', r.cpu.period);
    if (r.cpu.quota !== undefined) write(p.cpu, 'cpu.cfs_quota_us', r.cpu.quota);
    if (r.cpu.shares !== undefined) write(p.cpu, 'cpu.shares', r.cpu.shares);
  }
  if (p.pids && r.pids?.limit !== undefined)
    write(p.pids, 'pids.max', r.pids.limit > 0 ? r.pids.limit : 'max');
  if (p.devices) {
    for (const rule of plan.deviceRules)
      write(p.devices, rule.allow ? 'devices.allow' : 'devices.deny', deviceRule(rule));
  }
}

/**
 * `criu restore` of `imageDir` as the machine of `plan`, detached (its init is reparented when
 * CRIU exits, as after `runc restore --detach`), writing the init's host pid to `pidFile`. Runs in
 * the machine's network namespace, as runc does for a machine with a user namespace (runc.ts,
 * inNetns): the restored tasks inherit it.
 */
export async function criuRestore(
  plan: DirectRestorePlan,
  o: {
    rootfs: string;
    imageDir: string;
    workDir: string;
    pidFile: string;
    criuConfig: string;
    tcpEstablished: boolean;
    timeoutMs: number;
    nice?: number;
    onSpawn?: (pid: number) => void;
    binary?: string;
  },
): Promise<void> {
  mkdirSync(o.workDir, { recursive: true });
  const criu = [
    o.binary ?? 'criu',
    'restore',
    '--images-dir',
    o.imageDir,
    '--work-dir',
    o.workDir,
    '--log-file',
    'restore.log',
    '-v4',
    '--root',
    o.rootfs,
    '--restore-detached',
    '--pidfile',
    o.pidFile,
    '--manage-cgroups=soft',
    '--cgroup-root',
    plan.cgroupRoot,
    '--evasive-devices',
    '--config',
    o.criuConfig,
    '--inherit-fd',
    'fd[3]:extRootNetNS',
    ...plan.externalMounts.flatMap(([key, path]) => ['--external', `mnt[${key}]:${path}`]),
    ...(o.tcpEstablished ? ['--tcp-established'] : []),
  ];
  // fd 3: the network namespace, opened by the shell that then becomes CRIU.
  const withNetnsFd = ['sh', '-c', 'exec "$@" 3<"$0"', plan.netnsPath, ...criu];
  const inNs = ['nsenter', `--net=${plan.netnsPath}`, ...withNetnsFd];
  const argv = o.nice === undefined ? inNs : ['nice', '-n', String(o.nice), ...inNs];
  const [file, ...args] = argv;
  // Its own process group, so a timeout ends CRIU and what it forked together; stdio /dev/null,
  // which the restored tasks' own stdio does not use (theirs come from the image).
  await host(file as string, args, {
    timeoutMs: o.timeoutMs,
    killGroup: true,
    noStdio: true,
    ...(o.onSpawn ? { onSpawn: o.onSpawn } : {}),
  });
}

/** The restored init's start time; it ended already if it has none (a restore that did not hold). */
function initStart(pid: number): number {
  const start = startTime(pid);
  if (start === undefined) throw new CodedError('internal', `restored init ${pid} is gone`);
  return start;
}

/**
 * runc's state file for the restored machine, as runc's restore writes it: the kept state with
 * the new init's pid, its start time (how runc and the inventory tell it from a reused pid), the
 * creation time and the namespace paths through the new init. Written atomically.
 */
export function writeRestoredState(runcDir: string, state: RuncStateFile, pid: number): void {
  const next: RuncStateFile = {
    ...state,
    init_process_pid: pid,
    init_process_start: initStart(pid),
    created: new Date().toISOString(),
    namespace_paths: Object.fromEntries(
      Object.entries(state.namespace_paths ?? {}).map(([ns, path]) => [
        ns,
        path.replace(/^\/proc\/\d+\//, `/proc/${pid}/`),
      ]),
    ),
  };
  mkdirSync(runcDir, { recursive: true, mode: 0o711 });
  const tmp = join(runcDir, `state.json.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(next), { mode: 0o600 });
  renameSync(tmp, join(runcDir, 'state.json'));
}
