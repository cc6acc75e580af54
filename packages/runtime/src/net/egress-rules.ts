import { type EgressSpec, NON_PUBLIC_CIDRS } from '@nullspace/protocol';

/** One machine's link to the host: a veth pair on a small subnet (see net/addresses.ts). */
export interface MachineLink {
  /** The machine's id: its chains in the host table are named after it ({@link machineChains}). */
  owner: string;
  /** Host side of the veth: the key of its entries in the host table's dispatch maps. */
  hostIf: string;
  /** The machine's address and the host's, on the subnet. */
  machineAddr: string;
  hostAddr: string;
  /** A second host address: what connects from it is redirected to the machine's 127.0.0.1. */
  previewAddr: string;
  /** Prefix length of the subnet. */
  prefix: number;
  /**
   * The host's DNS forwarder (on its 127.0.0.1) that the machine's resolver address
   * ({@link MACHINE_RESOLVER}) is redirected to; none: the machine has no name service.
   */
  dnsPort?: number;
}

/**
 * The resolver every machine's /etc/resolv.conf names (the template's): one address for all, so a
 * fork or a resumed machine needs no rewrite. Its queries never leave the host: the machine's table
 * redirects them to the host's forwarder, or (deny-all) refuses them at once.
 */
export const MACHINE_RESOLVER = '169.254.53.53';

/**
 * The one nftables table of the host's namespace that holds every machine's rules, shared by every
 * server on the host (host infrastructure, like the forwarding switches: never deleted by a server).
 * Its four base chains, one per hook, hold a single rule each: a lookup of the packet's input
 * interface in a verdict map ({@link DISPATCH_MAPS}) that jumps to the chain of the machine whose
 * link it is. A packet pays one hash lookup whatever the number of machines (a table per machine
 * made every packet of the host walk every machine's base chains, and `nft` listings grow with
 * them: 1.6 ms with none, 3.4 s with 300).
 */
export const HOST_TABLE = 'nullspace';

/** Up to this many ranges, an allow or deny list is written as one rule per range, not a set. */
export const INLINE_CIDRS = 8;

/** The non-public ranges as one named set of the host table (all machines' rules share it). */
export const NON_PUBLIC_SET = 'non_public';

/** What each hook of the host table is for; a machine has one chain and one map entry per hook. */
export const HOOKS = ['egress', 'to_host', 'resolver', 'masq'] as const;
export type Hook = (typeof HOOKS)[number];

/** The verdict map of each hook, keyed by interface name (a machine's link, `nsv…`). */
export const DISPATCH_MAPS: Readonly<Record<Hook, string>> = {
  egress: 'egress_by_if',
  to_host: 'to_host_by_if',
  resolver: 'resolver_by_if',
  masq: 'masq_by_if',
};

/** The base chain of each hook, and its hook line. */
const BASE_CHAINS: Readonly<Record<Hook, { name: string; hook: string }>> = {
  egress: { name: 'forward', hook: 'type filter hook forward priority filter; policy accept;' },
  to_host: { name: 'input', hook: 'type filter hook input priority filter; policy accept;' },
  resolver: { name: 'prerouting', hook: 'type nat hook prerouting priority dstnat; policy accept;' },
  masq: { name: 'postrouting', hook: 'type nat hook postrouting priority srcnat; policy accept;' },
};

/** Machine `id`'s chains in the host table, one per hook: named after it, so found from the id alone. */
export function machineChains(id: string): Readonly<Record<Hook, string>> {
  return { egress: `${id}_egress`, to_host: `${id}_to_host`, resolver: `${id}_resolver`, masq: `${id}_masq` };
}

/** The table a machine had before the shared table (one per machine): removed wherever it is met. */
export function legacyTableOf(id: string): string {
  return `ns_${id}`;
}

/**
 * The host table, made or repaired in one transaction: declared (what exists stays, with every
 * machine's chains and map entries), then each base chain's rules and the non-public set are
 * flushed and written again, so a damaged or older dispatch is replaced atomically. Idempotent;
 * any number of servers may run it at any time.
 */
export function renderHostTable(): string {
  const declare = HOOKS.flatMap((h) => [
    `  map ${DISPATCH_MAPS[h]} { type ifname : verdict; }`,
    `  chain ${BASE_CHAINS[h].name} { ${BASE_CHAINS[h].hook} }`,
  ]);
  return [
    `table ip ${HOST_TABLE} {`,
    `  set ${NON_PUBLIC_SET} { type ipv4_addr; flags interval; }`,
    ...declare,
    '}',
    `flush set ip ${HOST_TABLE} ${NON_PUBLIC_SET}`,
    `add element ip ${HOST_TABLE} ${NON_PUBLIC_SET} { ${NON_PUBLIC_CIDRS.join(', ')} }`,
    ...HOOKS.flatMap((h) => [
      `flush chain ip ${HOST_TABLE} ${BASE_CHAINS[h].name}`,
      `add rule ip ${HOST_TABLE} ${BASE_CHAINS[h].name} iifname vmap @${DISPATCH_MAPS[h]}`,
    ]),
    '',
  ].join('\n');
}

/**
 * The nftables program that puts `policy` in force for one machine, below the guest (in the
 * host's network namespace, where root in the machine cannot reach it): one transaction that
 * empties and refills the machine's chains in the host table and points the dispatch maps' entries
 * of its link at them. A program that fails applies nothing: the old rules stay.
 *
 * - egress (forwarded, from the machine): the rate limit drops what goes over it (every packet);
 *   packets of open connections pass; a source address that is not the machine's is dropped (no
 *   spoofing); `deny_cidrs` drop (deny wins); then by mode: `deny_all` drops all, `custom` with
 *   `allow_cidrs` accepts only those, else (`allow_all`, `custom` without an allow list)
 *   everything but the non-public ranges (which an allow rule may name) is accepted.
 * - to_host (input, from the machine to the host itself): only replies (the machine cannot reach
 *   any host service, the control plane included), unless a `custom` allow list names a host
 *   address.
 * - masq (postrouting): the machine's traffic leaves masqueraded as the host.
 * - resolver (prerouting): queries to {@link MACHINE_RESOLVER} are redirected to the host's
 *   forwarder (to_host allows exactly that port on 127.0.0.1, which `route_localnet` on the host
 *   end makes routable); with deny-all they are refused at once rather than left to time out (the
 *   chain is then empty). No filtering by name.
 *
 * The chains are reached only through the maps, by the machine's interface, so their rules need
 * not match it. Every hook gets its entry, empty chain or not: the four maps always hold the same
 * interfaces, which a removal relies on.
 *
 * `takeover`: first delete the maps' entries of the link (they exist and point at other chains:
 * what a machine whose teardown did not finish left). `dropLegacyTable`: also delete the
 * machine's own table of an older server, in the same transaction (its rules and these never
 * apply together, nor does the machine go unruled in between).
 */
export function renderEgressProgram(
  link: MachineLink,
  policy: EgressSpec,
  o: { takeover?: boolean; dropLegacyTable?: boolean } = {},
): string {
  const { hostIf, machineAddr } = link;
  const chains = machineChains(link.owner);
  // A short list is one rule per range; a long one a set. Every `nft` transaction on the host reads
  // each set of the host table (one netlink round trip per interval set): 100 machines with short
  // custom lists written as sets made a create's transaction 2–3× slower. A rule per range costs a
  // comparison per range, only on the machine's own new connections.
  const toEach = (cidrs: readonly string[], verdict: 'drop' | 'accept') =>
    cidrs.length > INLINE_CIDRS
      ? [`ip daddr { ${cidrs.join(', ')} } counter ${verdict}`]
      : cidrs.map((c) => `ip daddr ${c} counter ${verdict}`);
  // The rate limit sees every packet from the machine, those of open connections included; the
  // rest decides per new connection (a policy change applies to the next connection).
  const egress: string[] = [];
  const rate = policy.locked || policy.mode === 'deny_all' ? undefined : policy.rate_limit;
  if (rate?.kbit_per_sec !== undefined) {
    const kbytes = Math.max(1, Math.round(rate.kbit_per_sec / 8));
    // burst is in kbit, like the rate
    const burst = rate.burst ? ` burst ${Math.max(1, Math.round(rate.burst / 8))} kbytes` : '';
    egress.push(`limit rate over ${kbytes} kbytes/second${burst} counter drop`);
  } else if (rate?.pps !== undefined) {
    const burst = rate.burst ? ` burst ${rate.burst} packets` : '';
    egress.push(`limit rate over ${rate.pps}/second${burst} counter drop`);
  }
  egress.push('ct state established,related accept', `ip saddr != ${machineAddr} counter drop`);
  const denied = policy.locked || policy.mode === 'deny_all';
  const dns = !denied && link.dnsPort !== undefined;
  if (!dns) egress.push(`ip daddr ${MACHINE_RESOLVER} reject`);
  if (denied) egress.push('counter drop');
  else {
    egress.push(...toEach(policy.deny_cidrs, 'drop'));
    if (policy.mode === 'custom' && policy.allow_cidrs.length) {
      egress.push(...toEach(policy.allow_cidrs, 'accept'));
      egress.push('counter drop');
    } else {
      // A named set: anonymous interval sets in every machine's rules make each `nft` run that
      // touches the maps read all of them (what grew a create's transaction with the host's load).
      egress.push(`ip daddr @${NON_PUBLIC_SET} counter drop`);
      egress.push('counter accept');
    }
  }
  // The host itself (its API, the relay, any service): replies only, unless a `custom` allow list
  // names one of its addresses (deny still wins).
  const toHost = ['ct state established,related accept'];
  if (dns) toHost.push(`ip daddr 127.0.0.1 meta l4proto { udp, tcp } th dport ${link.dnsPort} accept`);
  if (!policy.locked && policy.mode === 'custom' && policy.allow_cidrs.length) {
    toHost.push(...toEach(policy.deny_cidrs, 'drop'), ...toEach(policy.allow_cidrs, 'accept'));
  }
  toHost.push('counter drop');
  const resolver = dns
    ? [`ip daddr ${MACHINE_RESOLVER} meta l4proto { udp, tcp } th dport 53 dnat to 127.0.0.1:${link.dnsPort}`]
    : [];
  const masq = [`ip saddr ${machineAddr} oifname != "${hostIf}" masquerade`];
  const rules: Record<Hook, string[]> = { egress, to_host: toHost, resolver, masq };
  const legacy = legacyTableOf(link.owner);
  return [
    ...(o.takeover
      ? HOOKS.map((h) => `delete element ip ${HOST_TABLE} ${DISPATCH_MAPS[h]} { "${hostIf}" }`)
      : []),
    ...(o.dropLegacyTable ? [`table ip ${legacy}`, `delete table ip ${legacy}`] : []),
    ...HOOKS.flatMap((h) => [
      `add chain ip ${HOST_TABLE} ${chains[h]}`,
      `flush chain ip ${HOST_TABLE} ${chains[h]}`,
    ]),
    `table ip ${HOST_TABLE} {`,
    ...HOOKS.flatMap((h) => [`  chain ${chains[h]} {`, ...rules[h].map((r) => `    ${r}`), '  }']),
    '}',
    ...HOOKS.map(
      (h) => `add element ip ${HOST_TABLE} ${DISPATCH_MAPS[h]} { "${hostIf}" : jump ${chains[h]} }`,
    ),
    '',
  ].join('\n');
}

/**
 * The nftables program that removes machine `id` from the host table: the maps' entries of the
 * interfaces in `links` (those found pointing at its chains), then its chains (each made first if
 * missing, so a chain that is not there is no error), and its table of an older server, if any
 * (likewise). One transaction: its rules are in force until all of it goes.
 */
export function renderRemovalProgram(id: string, links: readonly string[]): string {
  const chains = machineChains(id);
  const legacy = legacyTableOf(id);
  return [
    ...links.flatMap((name) =>
      HOOKS.map((h) => `delete element ip ${HOST_TABLE} ${DISPATCH_MAPS[h]} { "${name}" }`),
    ),
    ...HOOKS.flatMap((h) => [
      `add chain ip ${HOST_TABLE} ${chains[h]}`,
      `delete chain ip ${HOST_TABLE} ${chains[h]}`,
    ]),
    `table ip ${legacy}`,
    `delete table ip ${legacy}`,
    '',
  ].join('\n');
}
