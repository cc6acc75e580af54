import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { MACHINE_FILES } from '../machine-dir.js';
import { type NftView, readNftEntries, readNftHost } from '../net/link.js';
import { NETNS_DIR, netnsName } from '../netns/netns.js';

/**
 * What the host shows of the kernel resources machines use, read once: mounts, loop devices,
 * network namespaces, host links (with their alias), machines' nftables chains and dispatch
 * entries, and cgroup hierarchies. The inventory (inventory.ts) attributes these to machines;
 * reading them once per inventory keeps a destroy to one `nft` process and a handful of file reads.
 */
export interface HostView {
  mounts: MountInfo[];
  loops: LoopDevice[];
  /** Names bound under /run/netns. */
  netns: Set<string>;
  /** Host interfaces named like machines' links (`nsv…`), with their alias (the machine id). */
  links: Map<string, string>;
  /** Machines' rules in the host's nftables (net/link.ts NftView). */
  nft: NftView;
  /** The root of every cgroup hierarchy: cgroup2 alone, or each v1 controller and cgroup2 (hybrid). */
  cgroupRoots: string[];
}

export interface MountInfo {
  path: string;
  /** `major:minor` of the filesystem. */
  device: string;
  fstype: string;
  source: string;
}

export interface LoopDevice {
  device: string;
  backingFile: string;
}

/** Prefix of the host end of every machine's veth (net/addresses.ts `hostIfOf`). */
export const LINK_PREFIX = 'nsv';

/**
 * How much of nftables a view reads: the `ip` family's whole ruleset (`all`: every chain, entry
 * and table), the egress dispatch map only (`entries`: what one machine's teardown needs), or
 * nothing.
 */
export type NftScope = 'all' | 'entries' | 'none';

/**
 * Reads the host's view. `nft`: one machine's view reads one map, and a view that needs no rules
 * reads none: listing the ruleset costs in proportion to every machine's rules and, on a busy
 * host, is what slows down or fails first. A failing listing is retried, then thrown: never read
 * as "nothing there".
 */
export async function readHostView(nft: NftScope = 'all'): Promise<HostView> {
  const [mounts, loops, netns, links, nftView] = await Promise.all([
    readMounts(),
    readLoops(),
    readdir(NETNS_DIR).catch(() => [] as string[]),
    readLinks(),
    nft === 'all' ? readNftHost() : nft === 'entries' ? readNftEntries() : NO_NFT(),
  ]);
  return { mounts, loops, netns: new Set(netns), links, nft: nftView, cgroupRoots: cgroupRoots(mounts) };
}

/**
 * The host's view as far as machine `id` (directory `machineDir`) is concerned, asked about that
 * machine only, so that what a destroy pays does not grow with the machines alive beside it: its
 * network namespace by name, its link by the name its `link` file gives (written before the link
 * is made; the link counts only if its alias is the machine's id), its loop devices from the
 * sources of the mounts in its directory (a scan of every loop device only when its disk image
 * is there but not mounted: a crash between attach and mount, or a hibernated machine), its rules'
 * dispatch entries from the one egress map (`nft`; false: not looked up, read as none; its chains
 * and an older server's table are deleted by name either way). `loops: false`: only the loop
 * devices of its mounts, never the scan (a teardown's last check, which leaves loop devices to
 * the step that freed them). Mounts are still read whole: one file, and the only way to see every
 * mount under its directory (a CRIU or volume leftover has no other record).
 */
export async function readMachineView(
  machineDir: string,
  id: string,
  o: { nft: boolean; loops: boolean },
): Promise<HostView> {
  const { nft } = o;
  const ns = netnsName(id);
  const [mounts, links, nftView] = await Promise.all([
    readMounts(),
    readFile(join(machineDir, MACHINE_FILES.link), 'utf8').then(
      async (name) => {
        const alias = await readFile(`/sys/class/net/${name.trim()}/ifalias`, 'utf8').catch(() => '');
        return alias.trim() === id ? new Map([[name.trim(), id]]) : new Map<string, string>();
      },
      () => new Map<string, string>(),
    ),
    nft ? readNftEntries() : NO_NFT(),
  ]);
  const mine = mounts.filter((m) => m.path.startsWith(`${machineDir}/`) && m.source.startsWith('/dev/loop'));
  let loops: LoopDevice[] = [];
  if (mine.length > 0 || !o.loops || !existsSync(join(machineDir, MACHINE_FILES.diskImage))) {
    for (const m of mine) {
      const backingFile = await backingFileOf(m.source);
      if (backingFile) loops.push({ device: m.source, backingFile });
    }
  } else {
    loops = await readLoops();
  }
  return {
    mounts,
    loops,
    netns: new Set(existsSync(join(NETNS_DIR, ns)) ? [ns] : []),
    links,
    nft: nftView,
    cgroupRoots: cgroupRoots(mounts),
  };
}

/** A view of nftables that read nothing. */
function NO_NFT(): NftView {
  return { hostTable: false, tables: new Set<string>(), chains: new Set<string>(), entries: [] };
}

/** Decodes the octal escapes (`\040` for space ...) the kernel uses in mountinfo. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

async function readMounts(): Promise<MountInfo[]> {
  const out: MountInfo[] = [];
  for (const line of (await readFile('/proc/self/mountinfo', 'utf8')).split('\n')) {
    // id parent major:minor root mountpoint options [optional fields...] - fstype source superopts
    const [left, right] = line.split(' - ');
    const f = left?.split(' ');
    const r = right?.split(' ');
    if (!f?.[4] || !r?.[0]) continue;
    out.push({
      path: unescapeMountPath(f[4]),
      device: f[2] ?? '',
      fstype: r[0],
      source: unescapeMountPath(r[1] ?? ''),
    });
  }
  return out;
}

/** Attached loop devices and their backing files, from sysfs (no losetup process). */
async function readLoops(): Promise<LoopDevice[]> {
  const names = (await readdir('/sys/block').catch(() => [] as string[])).filter((n) => n.startsWith('loop'));
  const out: LoopDevice[] = [];
  await Promise.all(
    names.map(async (name) => {
      const file = await backingFileOf(`/dev/${name}`);
      if (file) out.push({ device: `/dev/${name}`, backingFile: file });
    }),
  );
  return out.sort((a, b) => a.device.localeCompare(b.device));
}

/** The file loop device `device` (`/dev/loopN`) is bound to now; empty if none. */
export async function backingFileOf(device: string): Promise<string> {
  const name = device.slice('/dev/'.length);
  const file = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '');
  // A deleted backing file reads `PATH (deleted)`.
  return file.trim().replace(/ \(deleted\)$/, '');
}

async function readLinks(): Promise<Map<string, string>> {
  const names = (await readdir('/sys/class/net').catch(() => [] as string[])).filter((n) =>
    n.startsWith(LINK_PREFIX),
  );
  const out = new Map<string, string>();
  await Promise.all(
    names.map(async (name) => {
      const alias = await readFile(`/sys/class/net/${name}/ifalias`, 'utf8').catch(() => '');
      out.set(name, alias.trim());
    }),
  );
  return out;
}

/**
 * One mount point per cgroup hierarchy (a hierarchy mounted twice counts once): cgroup2 alone on a
 * pure v2 host; each v1 controller and cgroup2 (at `/sys/fs/cgroup/unified`) on a hybrid one.
 */
function cgroupRoots(mounts: readonly MountInfo[]): string[] {
  const byDevice = new Map<string, string>();
  for (const m of mounts)
    if ((m.fstype === 'cgroup' || m.fstype === 'cgroup2') && !byDevice.has(m.device))
      byDevice.set(m.device, m.path);
  return [...byDevice.values()];
}

/** Whether `path` is `dir` or below it. */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`);
}
