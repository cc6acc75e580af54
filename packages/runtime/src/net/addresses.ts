import { CodedError, ipv4ToNumber, numberToIpv4, parseCidr } from '@nullspace/protocol';
import type { MachineLink } from './egress-rules.js';

/**
 * Machine addresses come from one IPv4 pool (default {@link DEFAULT_MACHINE_POOL}, a corner of
 * 10/8 home and office networks rarely use), cut into /29 blocks, one per machine:
 *   .0 network · .1 the host's end · .2 the machine · .3 the host's preview source · .7 broadcast
 * The preview source is a second host address: connections from it are redirected inside the
 * machine to 127.0.0.1 (so a service listening only on loopback is reachable), while connections
 * from .1 reach the machine's address as it is (a listener bound only to it).
 */
export const DEFAULT_MACHINE_POOL = '10.213.0.0/16';
const BLOCK_BITS = 3;
const PRIVATE_RANGES: [string, number][] = [
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['100.64.0.0', 10],
];

export interface AddressPool {
  cidr: string;
  base: number;
  /** How many machines the pool holds. */
  size: number;
}

export function parsePool(cidr: string): AddressPool {
  const canonical = parseCidr(cidr, 'NULLSPACE_MACHINE_NETWORK');
  const [addr = '', bits = ''] = canonical.split('/');
  const prefix = Number(bits);
  if (prefix > 28 || prefix < 8)
    throw new CodedError(
      'invalid_argument',
      `NULLSPACE_MACHINE_NETWORK: ${cidr} must be a /8 to /28 (each machine takes a /29)`,
    );
  const base = ipv4ToNumber(addr) ?? 0;
  // Inside a private range: the egress rules close those unless an allow rule names them, which is
  // what keeps machines from reaching one another.
  const inside = PRIVATE_RANGES.some(([net, bits]) => {
    const mask = (0xffffffff << (32 - bits)) >>> 0;
    return prefix >= bits && (base & mask) >>> 0 === (ipv4ToNumber(net) ?? -1);
  });
  if (!inside)
    throw new CodedError(
      'invalid_argument',
      `NULLSPACE_MACHINE_NETWORK: ${cidr} must lie in 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or 100.64.0.0/10`,
    );
  return { cidr: canonical, base, size: 2 ** (32 - prefix - BLOCK_BITS) };
}

/** First address of block `index` of the pool. */
export function blockOf(pool: AddressPool, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= pool.size)
    throw new CodedError('internal', `address block ${index} is outside the pool ${pool.cidr}`);
  return (pool.base + index * 2 ** BLOCK_BITS) >>> 0;
}

/**
 * The host end of block `index`'s veth, named after the block (unique on the host, ≤ 15 bytes):
 * `ip link add` of a name another server's machine holds fails instead of sharing an address.
 */
export function hostIfOf(pool: AddressPool, index: number): string {
  return `nsv${(blockOf(pool, index) >>> BLOCK_BITS).toString(16).padStart(8, '0')}`;
}

/** The link of the machine holding block `index` of the pool. */
export function linkFor(pool: AddressPool, index: number, machineId: string): MachineLink {
  const block = blockOf(pool, index);
  return {
    // Its chains in the host table are named after it, so a teardown finds them from the id alone.
    owner: machineId,
    hostIf: hostIfOf(pool, index),
    hostAddr: numberToIpv4(block + 1),
    machineAddr: numberToIpv4(block + 2),
    previewAddr: numberToIpv4(block + 3),
    prefix: 32 - BLOCK_BITS,
  };
}
