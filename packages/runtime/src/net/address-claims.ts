import { existsSync, mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { numberToIpv4 } from '@nullspace/protocol';
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

/** How long a claim counts as held even though its machine's directory does not exist yet. */
const FRESH_CLAIM_MS = 60_000;

function claimFile(pool: AddressPool, index: number, dir: string): string {
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
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = claimFile(pool, index, dir);
  if (create(file, owner)) return true;
  const holder = read(file);
  if (holder === owner) return true;
  if (holder !== undefined && !isStale(pool, index, file, holder)) return false;
  // Taking over a stale claim (or one released meanwhile) is done by one server at a time: the
  // lock is a directory (mkdir is atomic); one left by a server that died holding it expires.
  const lock = `${file}.lock`;
  if (!lockDir(lock)) return false;
  try {
    const again = read(file);
    if (again === owner) return true;
    if (again !== undefined) {
      if (!isStale(pool, index, file, again)) return false;
      unlinkSync(file);
    }
    return create(file, owner);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Makes the claim file if nobody has (O_EXCL). */
function create(file: string, owner: string): boolean {
  try {
    writeFileSync(file, owner, { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function isStale(pool: AddressPool, index: number, file: string, holder: string): boolean {
  return (
    ageMs(file) > FRESH_CLAIM_MS &&
    !existsSync(holder) &&
    !existsSync(`/sys/class/net/${hostIfOf(pool, index)}`)
  );
}

function lockDir(lock: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      mkdirSync(lock);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (ageMs(lock) <= FRESH_CLAIM_MS) return false;
      rmSync(lock, { recursive: true, force: true });
    }
  }
  return false;
}

/** Gives up `owner`'s claim on block `index` (a killed machine's); someone else's stays. */
export function releaseBlock(
  pool: AddressPool,
  index: number,
  owner: string,
  dir: string = ADDRESS_CLAIMS_DIR,
): void {
  const file = claimFile(pool, index, dir);
  try {
    if (readFileSync(file, 'utf8') === owner) unlinkSync(file);
  } catch {
    // not claimed
  }
}
