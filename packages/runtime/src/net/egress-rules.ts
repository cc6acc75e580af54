import { type EgressSpec, NON_PUBLIC_CIDRS } from '@nullspace/protocol';

/** One machine's link to the host: a veth pair on a small subnet (see net/addresses.ts). */
export interface MachineLink {
  /** nftables table of this machine (`ip` family), replaced atomically on every change. */
  table: string;
  /** Host side of the veth. */
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
 * The nftables program that puts `policy` in force for one machine, below the guest (in the
 * host's network namespace, where root in the machine cannot reach it). It replaces the machine's
 * table in one transaction: a program that fails applies nothing, the old rules stay.
 *
 * - forward, from the machine: the rate limit drops what goes over it (every packet); packets of
 *   open connections pass; a source address that is not the machine's is dropped (no spoofing);
 *   `deny_cidrs` drop (deny wins); then by mode: `deny_all` drops all, `custom` with `allow_cidrs`
 *   accepts only those, else (`allow_all`, `custom` without an allow list) everything but the
 *   non-public ranges (which an allow rule may name) is accepted.
 * - input, from the machine to the host itself: only replies (the machine cannot reach any host
 *   service, the control plane included), unless a `custom` allow list names a host address.
 * - postrouting: the machine's traffic leaves masqueraded as the host.
 * - DNS: queries to {@link MACHINE_RESOLVER} are redirected to the host's forwarder (input allows
 *   exactly that port on 127.0.0.1, which `route_localnet` on the host end makes routable); with
 *   deny-all they are refused at once rather than left to time out. No filtering by name.
 *
 * Every chain has `policy accept` and matches only this machine's interface: tables on one hook
 * all see every packet, and a drop in any of them is final.
 */
export function renderEgressProgram(link: MachineLink, policy: EgressSpec): string {
  const { table, hostIf, machineAddr } = link;
  const set = (cidrs: readonly string[]) => `{ ${cidrs.join(', ')} }`;
  const from = `iifname "${hostIf}"`;
  // The rate limit sees every packet from the machine, those of open connections included; the
  // rest decides per new connection (a policy change applies to the next connection).
  const fwd: string[] = [];
  const rate = policy.locked || policy.mode === 'deny_all' ? undefined : policy.rate_limit;
  if (rate?.kbit_per_sec !== undefined) {
    const kbytes = Math.max(1, Math.round(rate.kbit_per_sec / 8));
    // burst is in kbit, like the rate
    const burst = rate.burst ? ` burst ${Math.max(1, Math.round(rate.burst / 8))} kbytes` : '';
    fwd.push(`${from} limit rate over ${kbytes} kbytes/second${burst} counter drop`);
  } else if (rate?.pps !== undefined) {
    const burst = rate.burst ? ` burst ${rate.burst} packets` : '';
    fwd.push(`${from} limit rate over ${rate.pps}/second${burst} counter drop`);
  }
  fwd.push(`${from} ct state established,related accept`, `${from} ip saddr != ${machineAddr} counter drop`);
  const denied = policy.locked || policy.mode === 'deny_all';
  const dns = !denied && link.dnsPort !== undefined;
  if (!dns) fwd.push(`${from} ip daddr ${MACHINE_RESOLVER} reject`);
  if (denied) fwd.push(`${from} counter drop`);
  else {
    if (policy.deny_cidrs.length) fwd.push(`${from} ip daddr ${set(policy.deny_cidrs)} counter drop`);
    if (policy.mode === 'custom' && policy.allow_cidrs.length) {
      fwd.push(`${from} ip daddr ${set(policy.allow_cidrs)} counter accept`);
      fwd.push(`${from} counter drop`);
    } else {
      fwd.push(`${from} ip daddr ${set(NON_PUBLIC_CIDRS)} counter drop`);
      fwd.push(`${from} counter accept`);
    }
  }
  // The host itself (its API, the relay, any service): replies only, unless a `custom` allow list
  // names one of its addresses (deny still wins).
  const toHost = [`${from} ct state established,related accept`];
  if (dns)
    toHost.push(`${from} ip daddr 127.0.0.1 meta l4proto { udp, tcp } th dport ${link.dnsPort} accept`);
  if (!policy.locked && policy.mode === 'custom' && policy.allow_cidrs.length) {
    if (policy.deny_cidrs.length) toHost.push(`${from} ip daddr ${set(policy.deny_cidrs)} counter drop`);
    toHost.push(`${from} ip daddr ${set(policy.allow_cidrs)} counter accept`);
  }
  toHost.push(`${from} counter drop`);
  return [
    `table ip ${table}`,
    `delete table ip ${table}`,
    `table ip ${table} {`,
    '  chain egress {',
    '    type filter hook forward priority filter; policy accept;',
    ...fwd.map((r) => `    ${r}`),
    '  }',
    '  chain to_host {',
    '    type filter hook input priority filter; policy accept;',
    ...toHost.map((r) => `    ${r}`),
    '  }',
    ...(dns
      ? [
          '  chain resolver {',
          '    type nat hook prerouting priority dstnat; policy accept;',
          `    ${from} ip daddr ${MACHINE_RESOLVER} meta l4proto { udp, tcp } th dport 53 dnat to 127.0.0.1:${link.dnsPort}`,
          '  }',
        ]
      : []),
    '  chain masq {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    `    ip saddr ${machineAddr} oifname != "${hostIf}" masquerade`,
    '  }',
    '}',
    '',
  ].join('\n');
}
