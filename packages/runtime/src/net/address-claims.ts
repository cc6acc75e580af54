import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { numberToIpv4 } from '@nullspace/protocol';
import { FRESH_CLAIM_MS, ageMs, claimFile, releaseFile } from '../host-claims.js';
import { type AddressPool, blockOf, hostIfOf } from './addresses.js';

/**
 * Host-wide claims on address blocks, so that two servers on one host (each with its own data
 * directory, the same pool) never hand out the same block: one file per claimed block in a
 * directory every server shares, made with O_EXCL (only one creator wins, whatever the timing),
 * holding the claiming machine's directory. A block is free for a server when nobody claims it, or
 * when its claim is stale: the claimant's directory is gone, no host interface of the block exists,
 * and the claim is older than {@link FRESH_CLAIM_MS} (its machine may not have made its directory yet).
 * A hibernated machine keeps its directory, and so its block, across restarts of its server.
 */
export const ADDRESS_CLAIMS_DIR = '/run/nullspace/address-blocks';

function claimPath(pool: AddressPool, index: number, dir: string): string {
  return join(dir, numberToIpv4(blockOf(pool, index)));
}

/**
 * Claims block `index` of `pool` for `owner` (the machine's directory). True when `owner` holds the
 * claim after the call (it was free, stale, or already `owner`'s); false when someone else holds it.
 */
export function claimBlock(
  pool: AddressPool,
  index: number,
  owner: string,
  dir: string = ADDRESS_CLAIMS_DIR,
): boolean {
  const file = claimPath(pool, index, dir);
  return claimFile(file, owner, (holder) => isStale(pool, index, file, holder));
}

function isStale(pool: AddressPool, index: number, file: string, holder: string): boolean {
  return (
    ageMs(file) > FRESH_CLAIM_MS &&
    !existsSync(holder) &&
    !existsSync(`/sys/class/net/${hostIfOf(pool, index)}`)
  );
}

/** Gives up `owner`'s claim on block `index` (a killed machine's); someone else's stays. */
export function releaseBlock(
  pool: AddressPool,
  index: number,
  owner: string,
  dir: string = ADDRESS_CLAIMS_DIR,
): void {
  releaseFile(claimPath(pool, index, dir), owner);
}
