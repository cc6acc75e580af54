import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EgressSpec } from '@nullspace/protocol';
import { type Argv, host } from '../exec.js';
import { netnsPath } from '../netns/netns.js';
import { type MachineLink, renderEgressProgram } from './egress-rules.js';

/** The machine side's table (in its own namespace): preview connections go to its loopback. */
const PREVIEW_TABLE = 'nullspace_preview';

export interface LinkFiles {
  /** The host table's program (egress policy). */
  egress: string;
  /** The machine namespace's preview redirect. */
  preview: string;
}

/**
 * Writes the two nftables programs a link needs into `dir` (the machine's host directory), so the
 * set-up steps can load them from files within one batch of host commands.
 */
export async function writeLinkFiles(dir: string, link: MachineLink, policy: EgressSpec): Promise<LinkFiles> {
  const files = { egress: join(dir, 'egress.nft'), preview: join(dir, 'preview.nft') };
  await writeFile(files.egress, renderEgressProgram(link, policy));
  await writeFile(
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
  );
  return files;
}

/**
 * Host commands that give the machine namespace `netns` (which must exist) its link to the host: a
 * veth pair, the host end (`hostIf`) in the host's namespace with the host and preview addresses,
 * the other end moved into the machine's namespace as `eth0` with the machine's address and its
 * default route via the host; forwarding on for the host end only (the global `ip_forward` is
 * untouched). The egress table is loaded first, so the machine never reaches anything unruled
 * (docs/research/network.md: without its table a machine reached host listeners).
 *
 * The host end's alias is `owner`, the machine's id (see inventory/inventory.ts).
 *
 * In the machine's namespace: `route_localnet` on eth0 and the preview redirect (preview
 * connections reach services listening on 127.0.0.1 only), and, for a restore into a new address
 * (`nonlocalBind`), `ip_nonlocal_bind` so CRIU can recreate sockets bound to the old one.
 */
export function linkSetUpSteps(
  netns: string,
  link: MachineLink,
  files: LinkFiles,
  o: { owner: string; nonlocalBind?: boolean },
): Argv[] {
  const peer = `${link.hostIf}p`;
  const cidr = (addr: string) => `${addr}/${link.prefix}`;
  const inside = [
    'sysctl -qw net.ipv4.conf.eth0.route_localnet=1',
    ...(o.nonlocalBind ? ['sysctl -qw net.ipv4.ip_nonlocal_bind=1'] : []),
    `nft -f '${files.preview}'`,
  ].join(' && ');
  return [
    ['nft', '-f', files.egress],
    ['ip', 'link', 'add', link.hostIf, 'type', 'veth', 'peer', 'name', peer],
    // Its alias names the machine: the inventory attributes the link by it, also once the machine's
    // directory or namespace is gone.
    ['ip', 'link', 'set', link.hostIf, 'alias', o.owner],
    ['ip', 'link', 'set', peer, 'netns', netns],
    ['ip', '-n', netns, 'link', 'set', peer, 'name', 'eth0'],
    ['ip', 'addr', 'add', cidr(link.hostAddr), 'dev', link.hostIf],
    ['ip', 'addr', 'add', cidr(link.previewAddr), 'dev', link.hostIf],
    ['ip', '-n', netns, 'addr', 'add', cidr(link.machineAddr), 'dev', 'eth0'],
    // Forwarding for its traffic; route_localnet so its DNS queries, redirected to the forwarder on
    // the host's 127.0.0.1, are routed (the table lets in only that port).
    [
      'sysctl',
      '-qw',
      `net.ipv4.conf.${link.hostIf}.forwarding=1`,
      `net.ipv4.conf.${link.hostIf}.route_localnet=1`,
    ],
    ['nsenter', `--net=${netnsPath(netns)}`, 'sh', '-c', inside],
    ['ip', 'link', 'set', link.hostIf, 'up'],
    ['ip', '-n', netns, 'link', 'set', 'eth0', 'up'],
    ['ip', '-n', netns, 'route', 'add', 'default', 'via', link.hostAddr],
  ];
}

/**
 * After a restore: CRIU brings back the connection tracking table of the machine's namespace
 * (`netns-ct-*.img`), entries of the preview redirect included. A new preview connection that
 * reuses the source port of one of those is not redirected any more (its replies get
 * port-remapped) and hangs, holding the old namespace alive (measured by bench/network.mjs). The
 * connections the entries were for were all cut before the checkpoint, and nothing in the
 * namespace filters by state, so the table is emptied. After a restore into a new address
 * (`nonlocalBind` was on), sockets may no longer bind to addresses the machine lacks.
 */
export async function settleRestoredNetns(netns: string, o: { nonlocalBind: boolean }): Promise<void> {
  const steps = [
    'conntrack -F 2>/dev/null',
    ...(o.nonlocalBind ? ['sysctl -qw net.ipv4.ip_nonlocal_bind=0'] : []),
  ];
  await host('nsenter', [`--net=${netnsPath(netns)}`, 'sh', '-c', steps.join(' && ')]);
}

/** Deletes a host interface if it exists (a veth whose namespace something still holds). */
export async function deleteLinkIfPresent(name: string): Promise<void> {
  if (existsSync(`/sys/class/net/${name}`)) await host('ip', ['link', 'del', name]).catch(() => undefined);
}

/**
 * Puts `policy` in force for the machine: one nftables transaction that replaces its table. If it
 * fails nothing changed, so a caller tightening the policy must then fall back to {@link denyAll}.
 */
export async function applyEgress(link: MachineLink, policy: EgressSpec): Promise<void> {
  await host('nft', ['-f', '-'], { input: renderEgressProgram(link, policy) });
}

/** The fail-closed fallback: the machine reaches nothing (its replies and anti-spoofing stay). */
export async function denyAll(link: MachineLink): Promise<void> {
  await applyEgress(link, { mode: 'deny_all', allow_cidrs: [], deny_cidrs: [], locked: true });
}

/** The last resort when even {@link denyAll} cannot be loaded: the link goes down. */
export async function cutLink(link: MachineLink): Promise<void> {
  await host('ip', ['link', 'set', link.hostIf, 'down']);
}

/** nft's answer for a table that does not exist (ENOENT). */
const NO_SUCH_TABLE = /No such file or directory/;

/** How often an `nft` call is tried before its error counts (a busy netlink socket). */
const NFT_TRIES = 3;

/**
 * Runs `nft args`, trying again (after 20, then 40 ms) when it fails. `absent`: what to return
 * instead of failing when nft says the table does not exist. Any other failure is thrown once the
 * tries are spent.
 */
export async function nftRetried<T>(
  args: readonly string[],
  done: (stdout: string) => T,
  absent?: () => T,
): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return done((await host('nft', args)).stdout);
    } catch (err) {
      if (absent && NO_SUCH_TABLE.test((err as Error).message)) return absent();
      if (i >= NFT_TRIES) throw err;
      await sleep(20 * i);
    }
  }
}

/**
 * Deletes a machine's host table (its veth goes with its namespace), by name: whether or not a
 * listing saw it, so a table is never left because a listing failed. Idempotent: a table that is
 * not there is done. Any other failure is retried, then thrown (a leftover table would apply its
 * rules to the next machine given the same link name).
 */
export async function deleteEgressTable(table: string): Promise<void> {
  await nftRetried(
    ['delete', 'table', 'ip', table],
    () => undefined,
    () => undefined,
  );
}

/** Whether the host has table `table` of the `ip` family: one table asked for, not a listing of all. */
export async function hasEgressTable(table: string): Promise<boolean> {
  return nftRetried(
    ['list', 'table', 'ip', table],
    () => true,
    () => false,
  );
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
