import { type Dirent, existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_PATHS } from '@nullspace/protocol';
import { MACHINE_FILES } from '../machine-dir.js';
import { legacyTableOf, machineChains } from '../net/egress-rules.js';
import type { DispatchEntry } from '../net/link.js';
import { netnsName } from '../netns/netns.js';
import { STAGE_DIR } from '../volumes/machine-volumes.js';
import {
  type HostView,
  LINK_PREFIX,
  type LoopDevice,
  isUnder,
  readHostView,
  readMachineView,
} from './host-view.js';

/**
 * The one inventory of what Nullspace machines hold on the host: it reads the host (mounts, loop
 * devices, /run/netns, links, nftables, cgroups, /proc, runc's state) and says which machine owns
 * each thing. In nftables a machine owns its chains in the host table (`<id>_*`), the dispatch
 * entries that point at them, and a table of an older server (`ns_<id>`); the host table itself
 * is host infrastructure, no machine's, and never a leftover. `RuncDriver.destroy` tears a
 * machine down from it and checks it afterwards, `RuncDriver.list` (what the server's re-adoption
 * sweeps) is its machine ids, and the test harness, the benches and `scripts/host-leftovers.sh`
 * report leaks with it.
 *
 * Two scopes: one runtime's directories ({@link RuntimeDirs}: one data dir's machines, and its
 * volumes), or the whole host (`'host'`: every machine of every server, found by the names
 * machines give their resources).
 */

/** The directories one runtime (one RuncDriver, one server's data dir) keeps its machines in. */
export interface RuntimeDirs {
  /** `<data dir>/machines`: one directory per machine. */
  machinesDir: string;
  /** `<data dir>/runc`: runc's state, one directory per container. */
  runcRoot: string;
  /** cgroup parent of machines (`<parent>/<id>` in every hierarchy); default {@link DEFAULT_CGROUP_PARENT}. */
  cgroupParent?: string;
  /** `<data dir>/volumes`: host volumes (their mounts and loop devices are listed too). */
  volumesDir?: string;
}

export const DEFAULT_CGROUP_PARENT = '/nullspace';

/**
 * What a mount is for: `rootfs` (the overlay), `disk` (the disk image's loop mount), `lower` (an
 * idmapped template layer under the overlay), `sysfs` (the sysfs bound at the machine's /sys),
 * `volume-stage` (a volume staged for a restore), `criu` (what a killed CRIU left: its cgroup yard,
 * runc's criu-root), `volume` (a host volume's mount), `other` (anything else in a machine's dirs).
 */
export type MountRole = 'rootfs' | 'disk' | 'lower' | 'sysfs' | 'volume-stage' | 'criu' | 'volume' | 'other';

/**
 * `init`: pid 1 of the machine (ending it ends its whole pid namespace); `member`: any other
 * process in its cgroups; `agent`: a process running the machine agent outside every machine
 * cgroup (host-wide only); `operation`: a runc checkpoint/restore still running on it.
 */
export type ProcessRole = 'init' | 'member' | 'agent' | 'operation';

/** One thing on the host and who owns it (a machine id, a volume id, or null: unknown). */
export type HostResource =
  | { kind: 'process'; owner: string | null; pid: number; role: ProcessRole }
  | { kind: 'cgroup'; owner: string; path: string }
  | { kind: 'runc-container'; owner: string; root: string }
  | { kind: 'mount'; owner: string | null; path: string; fstype: string; role: MountRole }
  | { kind: 'loop-device'; owner: string | null; device: string; backingFile: string }
  | { kind: 'netns'; owner: string; name: string }
  | { kind: 'link'; owner: string | null; name: string }
  | { kind: 'nft-chain'; owner: string; name: string }
  | { kind: 'nft-entry'; owner: string; map: string; key: string }
  | { kind: 'nft-table'; owner: string; name: string }
  | { kind: 'machine-dir'; owner: string; path: string };

export type HostResourceKind = HostResource['kind'];

export interface MachineMount {
  path: string;
  fstype: string;
  role: MountRole;
}

/** Everything one machine holds on the host now, as teardown needs it. */
export interface MachineResources {
  id: string;
  /** The machines' cgroup parent (`/nullspace`): a process in `<parent>/<other id>` is not its. */
  cgroupParent: string;
  /** Its init (pid 1 of its pid namespace) on the host, while it runs. */
  init: number | null;
  /** Every process in its cgroups, init included. */
  pids: number[];
  /** A runc checkpoint/restore (the process group leader) still running on it. */
  operation: number | null;
  /** Its cgroup directories in every hierarchy, deepest first. */
  cgroups: string[];
  /** runc's state directory of its container (runtime scope only). */
  runcState: string | null;
  /** Mounts in its directories, deepest first (the order they come off in). */
  mounts: MachineMount[];
  /** Loop devices backed by its files (its disk image). */
  loops: LoopDevice[];
  netns: string | null;
  /** Host ends of its veths. */
  links: string[];
  /**
   * Entries of the host table's dispatch maps that point at its chains. One machine's view reads
   * the egress map only (the maps change only together): enough to find the interfaces its rules
   * are keyed by, which its teardown needs.
   */
  nftEntries: DispatchEntry[];
  /** Its chains in the host table (whole views only: a teardown deletes them by name, unlisted). */
  nftChains: string[];
  /** Its table of an older server, one per machine (host-wide and whole-runtime views only). */
  nftTables: string[];
  /** Its directory (runtime scope only). */
  dir: string | null;
}

type Scope = RuntimeDirs | 'host';

/**
 * What the host holds for one machine (`machineId`), or for every machine of the scope (plus, in
 * a runtime scope, the machines named in `ids` even if their directories are gone, and its host
 * volumes; host-wide, links nobody owns and agent processes outside machine cgroups).
 */
export async function inventory(
  scope: Scope,
  o: { machineId?: string; ids?: Iterable<string> } = {},
): Promise<HostResource[]> {
  if (o.machineId !== undefined)
    return resourcesOf(
      scope === 'host'
        ? await collect(scope, o.machineId, await readHostView('entries'))
        : await machineResources(scope, o.machineId),
    );
  const view = await readHostView();
  const ids = new Set<string>([...(o.ids ?? []), ...(await scopeIds(scope, view))]);
  const machines = await Promise.all([...ids].sort().map((id) => collect(scope, id, view)));
  const out = machines.flatMap(resourcesOf);
  if (scope === 'host') out.push(...(await hostStrays(view, machines)));
  else if (scope.volumesDir !== undefined) out.push(...volumeResources(scope.volumesDir, view));
  return out;
}

/**
 * What one machine of a runtime holds on the host (what `destroy` tears down), asked about that
 * machine only (host-view.ts `readMachineView`): its cost does not grow with the machines beside it.
 * `nft: false`: its dispatch entries are not looked up (one `nft` process fewer) and read as none.
 * `loops: false`: only loop devices its mounts name (see readMachineView).
 */
export async function machineResources(
  dirs: RuntimeDirs,
  id: string,
  o: { nft?: boolean; loops?: boolean } = {},
): Promise<MachineResources> {
  const view = await readMachineView(join(dirs.machinesDir, id), id, {
    nft: o.nft !== false,
    loops: o.loops !== false,
  });
  return collect(dirs, id, view);
}

/** What ending a machine's processes needs: its init, its runc operation, its cgroups. */
export type MachineProcesses = Pick<
  MachineResources,
  'id' | 'cgroupParent' | 'init' | 'operation' | 'cgroups'
>;

/**
 * The machine's init, the runc checkpoint/restore running on it and its cgroups, without listing
 * their processes (a fork bomb's thousands) or reading anything else of the host: what
 * `terminateMachine` signals.
 */
export async function machineProcesses(dirs: RuntimeDirs, id: string): Promise<MachineProcesses> {
  const parent = dirs.cgroupParent ?? DEFAULT_CGROUP_PARENT;
  // Synchronous reads of cgroupfs, procfs and two small files: a kill answers after these, and
  // through libuv's four-thread pool they queue behind the file work of teardowns in progress.
  const cgroups = (await cgroupRootsOnce()).flatMap((root) => cgroupTree(join(root, parent, id)));
  const init = runcInit(join(dirs.runcRoot, id));
  const op = operation(join(dirs.machinesDir, id), id, dirs);
  // No runc record (a half-finished restore): the init is found among its cgroups' processes.
  const initPid =
    init ?? (await nsInit((await Promise.all(cgroups.map(readProcs))).flat().sort((a, b) => a - b)));
  return {
    id,
    cgroupParent: parent,
    init: initPid,
    operation: op,
    cgroups: cgroups.sort((a, b) => b.length - a.length),
  };
}

let roots: Promise<string[]> | undefined;

/** The cgroup hierarchies' mount points, read once: they do not change while the host runs. */
function cgroupRootsOnce(): Promise<string[]> {
  roots ??= readHostView('none').then((v) => v.cgroupRoots);
  return roots;
}

/** Every machine id a runtime holds anything for: directories, runc containers, mounts. */
export async function machineIds(dirs: RuntimeDirs): Promise<string[]> {
  // A runtime's machines are found by its directories and mounts: no table needs listing.
  return [...(await scopeIds(dirs, await readHostView('none')))].sort();
}

/** The machine's resources as inventory entries. */
export function resourcesOf(m: MachineResources): HostResource[] {
  const owner = m.id;
  return [
    ...(m.operation !== null
      ? [{ kind: 'process', owner, pid: m.operation, role: 'operation' } as const]
      : []),
    ...m.pids.map(
      (pid) => ({ kind: 'process', owner, pid, role: pid === m.init ? 'init' : 'member' }) as const,
    ),
    ...m.cgroups.map((path) => ({ kind: 'cgroup', owner, path }) as const),
    ...(m.runcState !== null ? [{ kind: 'runc-container', owner, root: m.runcState } as const] : []),
    ...m.mounts.map((mt) => ({ kind: 'mount', owner, ...mt }) as const),
    ...m.loops.map((l) => ({ kind: 'loop-device', owner, ...l }) as const),
    ...(m.netns !== null ? [{ kind: 'netns', owner, name: m.netns } as const] : []),
    ...m.links.map((name) => ({ kind: 'link', owner, name }) as const),
    ...m.nftEntries.map((e) => ({ kind: 'nft-entry', owner, map: e.map, key: e.key }) as const),
    ...m.nftChains.map((name) => ({ kind: 'nft-chain', owner, name }) as const),
    ...m.nftTables.map((name) => ({ kind: 'nft-table', owner, name }) as const),
    ...(m.dir !== null ? [{ kind: 'machine-dir', owner, path: m.dir } as const] : []),
  ];
}

/**
 * One line per resource, stable from one reading to the next (so two readings can be diffed): a
 * machine's processes other than its init are one line, whatever their number.
 */
export function describeResources(resources: readonly HostResource[]): string[] {
  const out: string[] = [];
  const membersOf = new Set<string>();
  const of = (owner: string | null) => (owner === null ? 'owner unknown' : owner);
  for (const r of resources) {
    switch (r.kind) {
      case 'process':
        if (r.role === 'member') {
          const key = of(r.owner);
          if (!membersOf.has(key)) out.push(`processes of ${key} in its cgroups`);
          membersOf.add(key);
        } else out.push(`process ${r.pid}: ${r.role} of ${of(r.owner)}`);
        break;
      case 'cgroup':
        out.push(`cgroup ${r.path}`);
        break;
      case 'runc-container':
        out.push(`runc container ${r.root}`);
        break;
      case 'mount':
        out.push(`mount ${r.path} (${r.fstype}, ${r.role} of ${of(r.owner)})`);
        break;
      case 'loop-device':
        out.push(`loop device ${r.device} on ${r.backingFile}`);
        break;
      case 'netns':
        out.push(`netns ${r.name}`);
        break;
      case 'link':
        out.push(`link ${r.name} (${of(r.owner)})`);
        break;
      case 'nft-entry':
        out.push(`nft entry "${r.key}" of map ${r.map} (${r.owner})`);
        break;
      case 'nft-chain':
        out.push(`nft chain ${r.name}`);
        break;
      case 'nft-table':
        out.push(`nft table ${r.name} (of an older server)`);
        break;
      case 'machine-dir':
        out.push(`machine dir ${r.path}`);
        break;
    }
  }
  return out;
}

// ---- reading ------------------------------------------------------------------------------------

/** The ids a scope holds anything for, from the names machines give their resources. */
async function scopeIds(scope: Scope, view: HostView): Promise<Set<string>> {
  const ids = new Set<string>();
  if (scope !== 'host') {
    for (const dir of [scope.machinesDir, scope.runcRoot]) {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => []))
        if (e.isDirectory()) ids.add(e.name);
      for (const m of view.mounts) {
        const first = isUnder(m.path, dir) ? m.path.slice(dir.length + 1).split('/')[0] : undefined;
        if (first) ids.add(first);
      }
    }
    return ids;
  }
  // Host-wide: everything under the machines' cgroup parent is a machine, and machine ids name
  // their namespaces, chains (and older servers' tables), links (alias), mounts and disk images.
  for (const root of view.cgroupRoots)
    for (const e of await readdir(join(root, DEFAULT_CGROUP_PARENT), { withFileTypes: true }).catch(() => []))
      if (e.isDirectory()) ids.add(e.name);
  for (const name of view.netns) if (name.startsWith('ns-mch_')) ids.add(name.slice(3));
  for (const name of view.nft.tables) if (name.startsWith('ns_mch_')) ids.add(name.slice(3));
  for (const name of [...view.nft.chains, ...view.nft.entries.map((e) => e.target)]) {
    const id = MACHINE_CHAIN.exec(name)?.[1];
    if (id) ids.add(id);
  }
  for (const alias of view.links.values()) if (alias) ids.add(alias);
  for (const m of view.mounts) for (const id of machineIdsIn(m.path)) ids.add(id);
  for (const l of view.loops) for (const id of machineIdsIn(l.backingFile)) ids.add(id);
  return ids;
}

const MACHINE_ID = /^mch_[a-z2-7]{20}$/;

/** A machine's chain in the host table: `<id>_<hook>` (net/egress-rules.ts machineChains). */
const MACHINE_CHAIN = /^(mch_[a-z2-7]{20})_[a-z_]+$/;

function machineIdsIn(path: string): string[] {
  return path.split('/').filter((s) => MACHINE_ID.test(s));
}

/**
 * Whether `path` is one of the machine's files: in a runtime scope, under its directory or its
 * runc state directory; host-wide, any path with its id as a component.
 */
function owner(scope: Scope, id: string): (path: string) => boolean {
  if (scope === 'host') return (p) => p.split('/').includes(id);
  const dirs = [join(scope.machinesDir, id), join(scope.runcRoot, id)];
  return (p) => dirs.some((d) => isUnder(p, d));
}

async function collect(scope: Scope, id: string, view: HostView): Promise<MachineResources> {
  const owns = owner(scope, id);
  const dirs = scope === 'host' ? undefined : scope;
  const machineDir = dirs && join(dirs.machinesDir, id);
  const runcDir = dirs && join(dirs.runcRoot, id);
  const parent = dirs?.cgroupParent ?? DEFAULT_CGROUP_PARENT;

  const cgroups = view.cgroupRoots.flatMap((root) => cgroupTree(join(root, parent, id)));
  const pids = [...new Set((await Promise.all(cgroups.map(readProcs))).flat())].sort((a, b) => a - b);
  // runc's record first: with a fork bomb inside, it is one file instead of a scan of thousands.
  const init = (runcDir !== undefined ? runcInit(runcDir) : null) ?? (await nsInit(pids));

  const mounts: MachineMount[] = view.mounts
    .filter((m) => m.fstype !== 'nsfs' && owns(m.path))
    .map((m) => ({ path: m.path, fstype: m.fstype, role: mountRole(m.path, id) }))
    .sort((a, b) => b.path.length - a.path.length);
  const loops = view.loops.filter((l) => owns(l.backingFile));

  return {
    id,
    cgroupParent: parent,
    init,
    pids,
    operation: dirs && machineDir !== undefined ? operation(machineDir, id, dirs) : null,
    cgroups: cgroups.sort((a, b) => b.length - a.length),
    runcState: runcDir !== undefined && existsSync(runcDir) ? runcDir : null,
    mounts,
    loops,
    netns: view.netns.has(netnsName(id)) ? netnsName(id) : null,
    links: links(id, view),
    ...nftOf(id, view),
    dir: machineDir !== undefined && existsSync(machineDir) ? machineDir : null,
  };
}

function mountRole(path: string, id: string): MountRole {
  const parts = path.split('/');
  const rest = parts.slice(parts.indexOf(id) + 1);
  const first = rest[0];
  if (first === undefined) return 'other';
  if (first === MACHINE_FILES.rootfs && rest.length === 1) return 'rootfs';
  if (first === MACHINE_FILES.disk && rest.length === 1) return 'disk';
  if (first === MACHINE_FILES.lower && rest.length === 2) return 'lower';
  if (first === MACHINE_FILES.sysfs && rest.length === 1) return 'sysfs';
  if (first === STAGE_DIR) return 'volume-stage';
  if (first === MACHINE_FILES.criuDump || first === MACHINE_FILES.criuRestore || first === 'criu-root')
    return 'criu';
  return 'other';
}

/** A cgroup directory and every one below it, if it exists (cgroupfs: read synchronously). */
function cgroupTree(dir: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return [dir, ...entries.filter((e) => e.isDirectory()).flatMap((e) => cgroupTree(join(dir, e.name)))];
}

async function readProcs(cgroupDir: string): Promise<number[]> {
  const text = await readFile(join(cgroupDir, 'cgroup.procs'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((p) => Number(p));
}

/**
 * The machine's init from runc's state (one file), if that very process still runs (its start
 * time matches: a pid is reused once the process is gone).
 */
function runcInit(runcDir: string): number | null {
  const text = readText(join(runcDir, 'state.json'));
  if (!text) return null;
  try {
    const state = JSON.parse(text) as { init_process_pid?: unknown; init_process_start?: unknown };
    const pid = Number(state.init_process_pid);
    if (!(pid > 0)) return null;
    return startTime(pid) === Number(state.init_process_start) ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Whether machine `id`'s init still runs (not exited, not a zombie), from runc's state file and
 * /proc: what `runc state` answers as "running"/"paused" without a process spawn, which a create
 * waiting for its agent asks over and over (under a burst of creates, one `runc state` every 250 ms
 * of each of them was most of the host tools' CPU). Undefined when runc wrote no state (yet).
 */
export function machineInitRuns(runcRoot: string, id: string): boolean | undefined {
  const runcDir = join(runcRoot, id);
  if (!readText(join(runcDir, 'state.json'))) return undefined;
  const pid = runcInit(runcDir);
  if (pid === null) return false;
  const stat = readText(`/proc/${pid}/stat`);
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

/** A small file's text, or '' if it cannot be read (gone, never written). */
function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Field 22 of /proc/PID/stat (after the command name, which may hold spaces): the start time runc
 * records for a container's init, by which it is told from a reused pid. Undefined once it is gone.
 */
export function startTime(pid: number): number | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
}

/**
 * The process among `pids` that is pid 1 of its own pid namespace (the last NSpid field is 1):
 * the init of a machine runc has no state for (a half-finished restore). Tried lowest pid first,
 * where an init usually is.
 */
async function nsInit(pids: readonly number[]): Promise<number | null> {
  for (const pid of pids) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/);
    if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === '1') return pid;
  }
  return null;
}

/**
 * The runc checkpoint/restore recorded in the machine dir, if that process still runs: its command
 * line is runc's (maybe behind `nice`) on this runtime's root, checkpointing or restoring this very
 * machine, or a resume's `criu restore` with this machine's CRIU work dir (the pid of a finished one may since be another process's, even another runc's).
 */
function operation(machineDir: string, id: string, dirs: RuntimeDirs): number | null {
  const pid = Number.parseInt(readText(join(machineDir, MACHINE_FILES.operationPid)), 10);
  if (!(pid > 0)) return null;
  const args = readText(`/proc/${pid}/cmdline`).split('\0');
  if (args[args.length - 1] === '') args.pop();
  const runcOperation =
    args.includes(dirs.runcRoot) &&
    (args.includes('checkpoint') || args.includes('restore')) &&
    args[args.length - 1] === id;
  // A resume's own `criu restore` (runc/criu-restore.ts): its work dir is the machine's.
  const workDir = args.indexOf('--work-dir');
  const criuRestore =
    args.includes('restore') &&
    workDir >= 0 &&
    args[workDir + 1] === join(machineDir, MACHINE_FILES.criuRestore);
  return runcOperation || criuRestore ? pid : null;
}

/**
 * The host ends of the machine's veths: those whose alias is its id. Never by the name its `link`
 * file gives: that name is its address block's, and a create that found the name taken (another
 * server's machine on the same pool) wrote the file all the same.
 */
function links(id: string, view: HostView): string[] {
  return [...view.links].flatMap(([name, alias]) => (alias === id ? [name] : [])).sort();
}

/** The machine's rules in the view: entries pointing at its chains, its chains, its old table. */
function nftOf(id: string, view: HostView): Pick<MachineResources, 'nftEntries' | 'nftChains' | 'nftTables'> {
  const chains = new Set(Object.values(machineChains(id)));
  return {
    nftEntries: view.nft.entries.filter((e) => chains.has(e.target)),
    nftChains: [...view.nft.chains].filter((c) => chains.has(c)).sort(),
    nftTables: view.nft.tables.has(legacyTableOf(id)) ? [legacyTableOf(id)] : [],
  };
}

/** A runtime's host volumes: their mounts and loop devices, owned by the volume id. */
function volumeResources(volumesDir: string, view: HostView): HostResource[] {
  const owner = (p: string) => p.slice(volumesDir.length + 1).split('/')[0] ?? null;
  return [
    ...view.mounts
      .filter((m) => isUnder(m.path, volumesDir))
      .map(
        (m) =>
          ({ kind: 'mount', owner: owner(m.path), path: m.path, fstype: m.fstype, role: 'volume' }) as const,
      ),
    ...view.loops
      .filter((l) => isUnder(l.backingFile, volumesDir))
      .map((l) => ({ kind: 'loop-device', owner: owner(l.backingFile), ...l }) as const),
  ];
}

/**
 * An agent's command line names a script in the agent's home, a path only machines have; any
 * script there (machines restored from an older image run the bundle of its day, `agent.mjs`).
 */
const AGENT_HOME = `${AGENT_PATHS.homeDir}/`;

/** The volume image's mount point and file: `…/volumes/vol_…/mnt`, `…/volumes/vol_…/volume.img`. */
const VOLUME_PATH = /\/(vol_[a-z2-7]{20})\/(mnt|volume\.img)$/;

/**
 * Host-wide only: links named like machines' that no machine owns, agent processes outside every
 * machine cgroup, and every server's host volumes.
 */
async function hostStrays(view: HostView, machines: readonly MachineResources[]): Promise<HostResource[]> {
  const out: HostResource[] = [];
  const owned = new Set(machines.flatMap((m) => m.links));
  for (const name of view.links.keys())
    if (name.startsWith(LINK_PREFIX) && !owned.has(name)) out.push({ kind: 'link', owner: null, name });
  const inMachines = new Set(machines.flatMap((m) => m.pids));
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    const pid = Number(entry);
    if (!(pid > 0) || inMachines.has(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(AGENT_HOME)) out.push({ kind: 'process', owner: null, pid, role: 'agent' });
  }
  for (const m of view.mounts) {
    const v = VOLUME_PATH.exec(m.path);
    if (v?.[1]) out.push({ kind: 'mount', owner: v[1], path: m.path, fstype: m.fstype, role: 'volume' });
  }
  for (const l of view.loops) {
    const v = VOLUME_PATH.exec(l.backingFile);
    if (v?.[1]) out.push({ kind: 'loop-device', owner: v[1], ...l });
  }
  return out;
}
