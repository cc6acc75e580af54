import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CodedError } from '@nullspace/protocol';
import { FRESH_CLAIM_MS, ageMs, claimFile, releaseFile } from '../host-claims.js';

/**
 * Every machine runs in its own user namespace: its ids 0..65535 are host ids
 * `base`..`base`+65535, a range no other machine on the host has. Range `k` starts at
 * {@link ID_RANGES_START} + k·65536: above 2^30, far from the host's own users and from the
 * subordinate ranges `useradd` hands out (/etc/subuid, from 100000 up), and below 2^31, so every
 * id stays a positive signed 32-bit number for tools that treat it so. That leaves
 * {@link ID_RANGE_COUNT} ranges, more than the default address pool has blocks.
 *
 * A range is claimed host-wide like an address block (host-claims.ts: one O_EXCL file per range
 * in {@link ID_RANGE_CLAIMS_DIR}, holding the machine's directory), recorded in the machine's
 * directory ({@link ID_RANGE_FILE}, so a hibernated machine keeps its range across restarts of
 * its server, as it keeps its directory), and given up when the machine is destroyed. A claim
 * whose machine directory is gone is stale after {@link FRESH_CLAIM_MS}.
 */
export const ID_RANGE_SIZE = 65_536;
export const ID_RANGES_START = 2 ** 30;
export const ID_RANGE_COUNT = 2 ** 14;
export const ID_RANGE_CLAIMS_DIR = '/run/nullspace/id-ranges';
/** In a machine's directory: `<base> <size>` of its range. */
export const ID_RANGE_FILE = 'id-range';

export interface IdRange {
  /** Host id of the machine's root (uid and gid 0 inside). */
  base: number;
  size: number;
}

/** The range recorded in `machineDir`, or null (none yet, or a machine from before user namespaces). */
export function readIdRange(machineDir: string): IdRange | null {
  let text: string;
  try {
    text = readFileSync(join(machineDir, ID_RANGE_FILE), 'utf8');
  } catch {
    return null;
  }
  const m = /^(\d+) (\d+)\n?$/.exec(text);
  const base = Number(m?.[1]);
  const size = Number(m?.[2]);
  if (!m || size !== ID_RANGE_SIZE || indexOf(base) === undefined)
    throw new CodedError(
      'internal',
      `${join(machineDir, ID_RANGE_FILE)}: not an id range: ${text.slice(0, 40)}`,
    );
  return { base, size };
}

function indexOf(base: number): number | undefined {
  const k = (base - ID_RANGES_START) / ID_RANGE_SIZE;
  return Number.isInteger(k) && k >= 0 && k < ID_RANGE_COUNT ? k : undefined;
}

function claimPath(k: number, dir: string): string {
  return join(dir, String(k));
}

function isStale(file: string, holder: string): boolean {
  return ageMs(file) > FRESH_CLAIM_MS && !existsSync(holder);
}

/** Where the next search for a free range starts: after the last one taken, so few are tried. */
let hint = Math.floor(Math.random() * ID_RANGE_COUNT);

/**
 * The machine's range: the one recorded in `machineDir` (claimed again, which holds unless another
 * server took it over while the machine's directory was gone), else a free one, claimed and
 * recorded. `machineDir` must exist.
 */
export function claimIdRange(machineDir: string, dir: string = ID_RANGE_CLAIMS_DIR): IdRange {
  const recorded = readIdRange(machineDir);
  if (recorded !== null) {
    const k = indexOf(recorded.base) as number;
    const file = claimPath(k, dir);
    if (!claimFile(file, machineDir, (holder) => isStale(file, holder)))
      throw new CodedError(
        'internal',
        `id range ${recorded.base} of ${machineDir} is claimed by another machine`,
      );
    return recorded;
  }
  for (let tried = 0; tried < ID_RANGE_COUNT; tried++) {
    const k = (hint + tried) % ID_RANGE_COUNT;
    const file = claimPath(k, dir);
    if (claimFile(file, machineDir, (holder) => isStale(file, holder))) {
      hint = (k + 1) % ID_RANGE_COUNT;
      const range = { base: ID_RANGES_START + k * ID_RANGE_SIZE, size: ID_RANGE_SIZE };
      writeFileSync(join(machineDir, ID_RANGE_FILE), `${range.base} ${range.size}\n`);
      return range;
    }
  }
  throw new CodedError('resource_exhausted', `all ${ID_RANGE_COUNT} user id ranges of this host are in use`);
}

/** Gives up the range recorded in `machineDir` (a destroyed machine's), if this machine holds it. */
export function releaseIdRange(machineDir: string, range: IdRange, dir: string = ID_RANGE_CLAIMS_DIR): void {
  const k = indexOf(range.base);
  if (k !== undefined) releaseFile(claimPath(k, dir), machineDir);
}
