import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CodedError, type EgressSpec } from '@nullspace/protocol';
import { type PlanStep, host } from '../exec.js';
import { netnsPath } from '../netns/netns.js';
import {
  DISPATCH_MAPS,
  HOST_TABLE,
  type MachineLink,
  legacyTableOf,
  machineChains,
  renderEgressProgram,
  renderHostTable,
  renderRemovalProgram,
} from './egress-rules.js';

/** The machine side's table (in its own namespace): preview connections go to its loopback. */
const PREVIEW_TABLE = 'nullspace_preview';

export interface LinkFiles {
  /** The host table program of the machine (egress policy). */
  egress: string;
  /** The same, taking over its link's map entries from chains a leftover left there. */
  takeover: string;
  /** The machine namespace's preview redirect. */
  preview: string;
  /** `ip -batch` of the host side: the namespace, the veth (its peer made in the namespace), addresses. */
  hostBatch: string;
  /** `ip -batch` run in the namespace: loopback, the machine's address, default route. */
  netnsBatch: string;
}

/**
 * Writes what a link's set-up loads into `dir` (the machine's host directory): the two nftables
 * programs and the two `ip -batch` files, so the set-up steps are a handful of processes within
 * one batch of host commands (one process per `ip` step was a dozen).
 */
export async function writeLinkFiles(
  dir: string,
  netns: string,
  link: MachineLink,
  policy: EgressSpec,
): Promise<LinkFiles> {
  const files: LinkFiles = {
    egress: join(dir, 'egress.nft'),
    takeover: join(dir, 'egress-takeover.nft'),
    preview: join(dir, 'preview.nft'),
    hostBatch: join(dir, 'link-host.ip'),
    netnsBatch: join(dir, 'link-netns.ip'),
  };
  const cidr = (addr: string) => `${addr}/${link.prefix}`;
  await Promise.all([
    writeFile(files.egress, renderEgressProgram(link, policy)),
    writeFile(files.takeover, renderEgressProgram(link, policy, { takeover: true })),
    writeFile(
      files.preview,
      [
        `table ip ${PREVIEW_TABLE} {`,
        '  chain to_loopback {',
        '    type nat hook prerouting priority dstnat; policy accept;',
        `    iifname "eth0" ip saddr ${link.previewAddr} meta l4proto tcp dnat to 127.0.0.1`,
        '  }',
        '}',
        '',
      ].join('\n'),
    ),
    writeFile(
      files.hostBatch,
      [
        `netns add ${netns}`,
        // The peer is made in the machine's namespace as eth0: no rename, no move.
        `link add ${link.hostIf} type veth peer name eth0 netns ${netns}`,
        // Its alias names the machine: the inventory attributes the link by it, also once the
        // machine's directory or namespace is gone.
        `link set ${link.hostIf} alias ${link.owner}`,
        `addr add ${cidr(link.hostAddr)} dev ${link.hostIf}`,
        `addr add ${cidr(link.previewAddr)} dev ${link.hostIf}`,
        `link set ${link.hostIf} up`,
        '',
      ].join('\n'),
    ),
    writeFile(
      files.netnsBatch,
      [
        'link set lo up',
        `addr add ${cidr(link.machineAddr)} dev eth0`,
        'link set eth0 up',
        `route add default via ${link.hostAddr}`,
        '',
      ].join('\n'),
    ),
  ]);
  return files;
}

/** A sysctl of the namespace the writing process is in (/proc/sys/net follows the writer's). */
const conf = (ifName: string, key: string) => `/proc/sys/net/ipv4/conf/${ifName}/${key}`;

/**
 * Host steps (for hostPlan) that create the machine's network namespace `netns` and give it its
 * link to the host: a veth pair, the host end (`hostIf`) in the host's namespace with the host
 * and preview addresses, the other end in the machine's namespace as `eth0` with the machine's
 * address and its default route via the host; forwarding on for the host end only (the global
 * `ip_forward` is untouched). The machine's rules are loaded first, so the machine never reaches
 * anything unruled (docs/research/network.md: without them a machine reached host listeners). If
 * its link's map entries are taken (a leftover of a machine whose teardown did not finish) and no
 * interface of that name exists, the rules take them over; a live link's entries are never taken.
 *
 * In the machine's namespace (one `nsenter`): `route_localnet` on eth0 and the preview redirect
 * (preview connections reach services listening on 127.0.0.1 only), and, for a restore into a new
 * address (`nonlocalBind`), `ip_nonlocal_bind` so CRIU can recreate sockets bound to the old one.
 *
 * Processes: nft, ip (host batch), nsenter → sh, ip (namespace batch), nft; the host end's
 * sysctls are written by the batch's shell itself.
 */
export function linkSetUpSteps(
  netns: string,
  link: MachineLink,
  files: LinkFiles,
  o: { nonlocalBind?: boolean },
): PlanStep[] {
  const inside = [
    `ip -batch '${files.netnsBatch}'`,
    `printf 1 > ${conf('eth0', 'route_localnet')}`,
    ...(o.nonlocalBind ? ['printf 1 > /proc/sys/net/ipv4/ip_nonlocal_bind'] : []),
    `nft -f '${files.preview}'`,
  ].join(' && ');
  return [
    {
      argv: ['nft', '-f', files.egress],
      fallback: { argv: ['nft', '-f', files.takeover], unlessExists: `/sys/class/net/${link.hostIf}` },
    },
    ['ip', '-batch', files.hostBatch],
    // Forwarding for its traffic; route_localnet so its DNS queries, redirected to the forwarder on
    // the host's 127.0.0.1, are routed (its rules let in only that port).
    { write: '1', to: conf(link.hostIf, 'forwarding') },
    { write: '1', to: conf(link.hostIf, 'route_localnet') },
    ['nsenter', `--net=${netnsPath(netns)}`, 'sh', '-c', inside],
  ];
}

/**
 * After a restore: CRIU brings back the connection tracking table of the machine's namespace
 * (`netns-ct-*.img`), entries of the preview redirect included — for a machine without a user
 * namespace (one hibernated before machines had them): the namespace of one with is CRIU's own
 * during the restore (runc/runc.ts), neither dumped nor restored, and its table starts empty. A new preview connection that
 * reuses the source port of one of those is not redirected any more (its replies get
 * port-remapped) and hangs, holding the old namespace alive (measured by bench/network.mjs). The
 * connections the entries were for were all cut before the checkpoint, and nothing in the
 * namespace filters by state, so the table is emptied. After a restore into a new address
 * (`nonlocalBind` was on), sockets may no longer bind to addresses the machine lacks.
 */
export async function settleRestoredNetns(netns: string, o: { nonlocalBind: boolean }): Promise<void> {
  await host('nsenter', [`--net=${netnsPath(netns)}`, 'sh', '-c', settleRestoredNetnsSteps(o).join(' && ')]);
}

/** The shell steps of {@link settleRestoredNetns}, run in the machine's network namespace. */
export function settleRestoredNetnsSteps(o: { nonlocalBind: boolean }): string[] {
  return [
    'conntrack -F 2>/dev/null',
    ...(o.nonlocalBind ? ['printf 0 > /proc/sys/net/ipv4/ip_nonlocal_bind'] : []),
  ];
}

/** Deletes a host interface if it exists (a veth whose namespace something still holds). */
export async function deleteLinkIfPresent(name: string): Promise<void> {
  if (existsSync(`/sys/class/net/${name}`)) await host('ip', ['link', 'del', name]).catch(() => undefined);
}

/**
 * Makes or repairs the host table every machine's rules live in (see egress-rules.ts HOST_TABLE):
 * run when a driver starts, before any machine is set up. Idempotent; the table is never deleted.
 */
export async function ensureHostTable(): Promise<void> {
  await nftRetried(['-f', '-'], () => undefined, undefined, renderHostTable());
}

/** nft's answer for an element it was told to add whose key is there with another verdict. */
const ENTRY_TAKEN = /File exists/;

/**
 * Puts `policy` in force for the machine: one nftables transaction that refills its chains (and
 * removes its table of an older server: this is also what a re-adopting server runs). If it fails
 * nothing changed, so a caller tightening the policy must then fall back to {@link denyAll}. Its
 * link's map entries pointing at other chains (a leftover) are taken over only while the link is
 * its own (its alias is the machine's id): never those of another machine's live link. A host
 * table that is gone is made again first.
 */
export async function applyEgress(link: MachineLink, policy: EgressSpec): Promise<void> {
  const load = async (takeover: boolean) => {
    await host('nft', ['-f', '-'], {
      input: renderEgressProgram(link, policy, { dropLegacyTable: true, takeover }),
    });
  };
  try {
    await load(false);
  } catch (err) {
    const message = (err as Error).message;
    if (ENTRY_TAKEN.test(message) && aliasOf(link.hostIf) === link.owner) return load(true);
    // The host table gone (the host's own `nft flush ruleset`, a firewall reload): made again, once.
    if (NO_SUCH_OBJECT.test(message) && !(await hostTableExists())) {
      await ensureHostTable();
      return load(false);
    }
    throw err;
  }
}

/** Whether the host table is there (its egress map asked for, not a listing). */
async function hostTableExists(): Promise<boolean> {
  return nftRetried(
    ['list', 'map', 'ip', HOST_TABLE, DISPATCH_MAPS.egress],
    () => true,
    () => false,
  );
}

function aliasOf(ifName: string): string {
  try {
    return readFileSync(`/sys/class/net/${ifName}/ifalias`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The fail-closed fallback: the machine reaches nothing (its replies and anti-spoofing stay). */
export async function denyAll(link: MachineLink): Promise<void> {
  await applyEgress(link, { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], locked: true });
}

/** The last resort when even {@link denyAll} cannot be loaded: the link goes down. */
export async function cutLink(link: MachineLink): Promise<void> {
  await host('ip', ['link', 'set', link.hostIf, 'down']);
}

/** nft's answer for a table, chain, map or element that does not exist (ENOENT). */
const NO_SUCH_OBJECT = /No such file or directory/;

/** How often an `nft` call is tried before its error counts (a busy netlink socket). */
const NFT_TRIES = 3;

/**
 * Runs `nft args` (with `input` on its stdin), trying again (after 20, then 40 ms) when it fails.
 * `absent`: what to return instead of failing when nft says what it was asked about does not
 * exist. Any other failure is thrown once the tries are spent.
 */
export async function nftRetried<T>(
  args: readonly string[],
  done: (stdout: string) => T,
  absent?: () => T,
  input?: string,
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return done((await host('nft', args, input === undefined ? {} : { input })).stdout);
    } catch (err) {
      if (absent && NO_SUCH_OBJECT.test((err as Error).message)) return absent();
      if (i >= NFT_TRIES) throw err;
      await sleep(20 * i);
    }
  }
}

/** One entry of a dispatch map: packets in by interface `key` jump to chain `target`. */
export interface DispatchEntry {
  map: string;
  key: string;
  target: string;
}

/** What the host's nftables hold for machines, read with one `nft` listing. */
export interface NftView {
  /** Whether the host table exists. */
  hostTable: boolean;
  /** Tables of the `ip` family: machines' tables of older servers among them (`ns_<id>`). */
  tables: Set<string>;
  /** The host table's chains (only in the host-wide view). */
  chains: Set<string>;
  /** Entries of the dispatch maps (one machine's view: of the egress map only). */
  entries: DispatchEntry[];
}

type NftJson = { nftables?: Record<string, unknown>[] };

/** The entries of a map in `nft -j` form: `[key, {jump: {target}}]` each. */
function entriesOf(map: string, elem: unknown): DispatchEntry[] {
  if (!Array.isArray(elem)) return [];
  return elem.flatMap((e) => {
    if (!Array.isArray(e) || typeof e[0] !== 'string') return [];
    const target = (e[1] as { jump?: { target?: unknown } } | undefined)?.jump?.target;
    return typeof target === 'string' ? [{ map, key: e[0], target }] : [];
  });
}

function parseNftJson(stdout: string): Record<string, unknown>[] {
  const parsed = JSON.parse(stdout || '{}') as NftJson;
  if (!Array.isArray(parsed.nftables)) throw new CodedError('internal', 'nft -j: no "nftables" array');
  return parsed.nftables;
}

/**
 * Everything machines hold in the host's nftables (the `ip` family's whole ruleset, one process):
 * for the host-wide inventory and leak checks. A failing `nft` is retried, then thrown: never read
 * as "nothing".
 */
export async function readNftHost(): Promise<NftView> {
  const objects = await nftRetried(['-j', 'list', 'ruleset', 'ip'], parseNftJson);
  const view: NftView = { hostTable: false, tables: new Set(), chains: new Set(), entries: [] };
  const maps = new Set(Object.values(DISPATCH_MAPS));
  for (const o of objects) {
    const table = o.table as { name?: string } | undefined;
    if (typeof table?.name === 'string') {
      view.tables.add(table.name);
      if (table.name === HOST_TABLE) view.hostTable = true;
    }
    const chain = o.chain as { table?: string; name?: string } | undefined;
    if (chain?.table === HOST_TABLE && typeof chain.name === 'string') view.chains.add(chain.name);
    const map = o.map as { table?: string; name?: string; elem?: unknown } | undefined;
    if (map?.table === HOST_TABLE && typeof map.name === 'string' && maps.has(map.name))
      view.entries.push(...entriesOf(map.name, map.elem));
  }
  return view;
}

/**
 * What one machine's teardown needs to know, with one small listing (not the ruleset): the entries
 * of the egress dispatch map, whose keys are the interfaces whose entries in every map point at a
 * machine's chains (the maps change only together). Its table of an older server is not looked for
 * (a teardown deletes it by name). Retried, then thrown.
 */
export async function readNftEntries(): Promise<NftView> {
  return nftRetried<NftView>(
    ['-j', 'list', 'map', 'ip', HOST_TABLE, DISPATCH_MAPS.egress],
    (stdout) => {
      const entries: DispatchEntry[] = [];
      for (const o of parseNftJson(stdout)) {
        const map = o.map as { name?: string; elem?: unknown } | undefined;
        if (map?.name === DISPATCH_MAPS.egress) entries.push(...entriesOf(map.name, map.elem));
      }
      return { hostTable: true, tables: new Set<string>(), chains: new Set<string>(), entries };
    },
    () => ({ hostTable: false, tables: new Set<string>(), chains: new Set<string>(), entries: [] }),
  );
}

/** The interfaces whose dispatch entries point at machine `id`'s chains, in `view`. */
export function linksDispatchedTo(id: string, view: NftView): string[] {
  const ours = new Set(Object.values(machineChains(id)));
  return [...new Set(view.entries.filter((e) => ours.has(e.target)).map((e) => e.key))].sort();
}

/**
 * Removes machine `id`'s rules from the host (its link goes with its namespace): its dispatch
 * entries (those of `links`, from the last reading, read again when that fails), its chains, and its
 * table of an older server, in one transaction, by name: whether or not a listing saw them.
 * Idempotent: what is not there is done. Any other failure is retried, then thrown (a leftover
 * entry would apply its rules to the next machine given the same link name).
 */
export async function deleteMachineRules(id: string, links?: readonly string[]): Promise<void> {
  let known = links && [...new Set(links)];
  for (let i = 1; ; i++) {
    try {
      const view = known === undefined ? await readNftEntries() : undefined;
      if (view?.hostTable === false) {
        // No host table (a host only an older server used): only its own table may be there.
        await nftRetried(
          ['delete', 'table', 'ip', legacyTableOf(id)],
          () => undefined,
          () => undefined,
        );
        return;
      }
      const keys = known ?? linksDispatchedTo(id, view as NftView);
      await host('nft', ['-f', '-'], { input: renderRemovalProgram(id, keys) });
      return;
    } catch (err) {
      if (i >= NFT_TRIES) throw err;
      // An entry gone meanwhile, the table missing, a busy netlink socket: read again.
      known = undefined;
      await sleep(20 * i);
    }
  }
}

/**
 * Turns IPv4 forwarding on for the host interfaces machines' traffic leaves by (`default-route`:
 * those of the host's default routes), so the replies that come back in on them are forwarded to
 * the machines. Only these interfaces and the machines' veths forward; the global switch is
 * left alone. Returns the interfaces it set.
 */
export async function enableUplinkForwarding(
  uplinks: readonly string[] | 'default-route',
): Promise<string[]> {
  let names: string[];
  if (uplinks === 'default-route') {
    const { stdout } = await host('ip', ['-4', '-j', 'route', 'show', 'default']);
    const routes = JSON.parse(stdout || '[]') as { dev?: string }[];
    names = [...new Set(routes.flatMap((r) => (r.dev ? [r.dev] : [])))];
  } else names = [...uplinks];
  for (const name of names) await host('sysctl', ['-qw', `net.ipv4.conf.${name}.forwarding=1`]);
  return names;
}

/** The metric of the pool's unreachable route: its own, so no route of the host's is replaced. */
const POOL_ROUTE_METRIC = 4242;

/**
 * Makes the machine network's addresses unreachable from the host except through a live machine's
 * link: each link's /29 is a longer match, so only an address whose link is gone (a killed,
 * hibernated or half-made machine) falls to this route, and its traffic fails at once on the host
 * instead of leaving by the default route to the uplink's network. Idempotent; kept when the server
 * stops (like the forwarding switches), as machines outlive it.
 */
export async function guardMachineNetwork(cidr: string): Promise<void> {
  await host('ip', ['route', 'replace', 'unreachable', cidr, 'metric', String(POOL_ROUTE_METRIC)]);
}
