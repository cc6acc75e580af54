import type { EgressSpec, NetworkInfo, NetworkSpec } from '@nullspace/protocol';
import { type AddressPool, type DriverNetwork, linkFor } from '@nullspace/runtime';

/** What a machine gets when its create request names no policy. */
export const DEFAULT_NETWORK: NetworkSpec = {
  egress: { mode: 'allow_all', allow_cidrs: [], deny_cidrs: [], locked: false },
};

/** The fail-closed state: nothing leaves the machine. */
export const DENY_ALL_EGRESS: EgressSpec = {
  mode: 'deny_all',
  allow_cidrs: [],
  deny_cidrs: [],
  locked: true,
};

/**
 * Whether `next` can only let more through than `prev`: then a failure to apply it may leave
 * `prev` in force. Anything else counts as tightening, and a failure must leave the machine
 * denying (API.md: tightening fails closed).
 */
export function isBroadening(prev: EgressSpec, next: EgressSpec): boolean {
  if (prev.locked || prev.mode === 'deny_all') return true;
  return next.mode === 'allow_all' && !next.locked && next.rate_limit === undefined;
}

export function driverNetwork(
  pool: AddressPool,
  m: { id: string; net_index: number; network: NetworkSpec },
): DriverNetwork {
  return { link: linkFor(pool, m.net_index, m.id), egress: m.network.egress };
}

/** `network` of machine info. */
export function networkInfo(network: NetworkSpec, address: string | null): NetworkInfo {
  const e = network.egress;
  return {
    egress: {
      mode: e.mode,
      allow_cidrs: e.allow_cidrs,
      deny_cidrs: e.deny_cidrs,
      rate_limit: e.rate_limit ?? null,
    },
    internet_access: !e.locked,
    mask_request_host: network.mask_request_host ?? null,
    address,
  };
}
