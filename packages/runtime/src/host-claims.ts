import { mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';

/**
 * Host-wide claims on numbered resources (a machine's address block, its user id range), so that
 * two servers on one host (each with its own data directory) never hand out the same one: one file
 * per claimed resource in a directory every server shares, made with O_EXCL (only one creator
 * wins, whatever the timing), holding the claimant (its machine's directory). A claim another
 * server holds is taken over only when `isStale` says its claimant is gone, by one server at a
 * time (a lock directory; mkdir is atomic; one left by a server that died holding it expires).
 */
export const FRESH_CLAIM_MS = 60_000;

/**
 * Claims `file` (in a directory made 0700 if missing) for `owner`. True when `owner` holds it after
 * the call (it was free, stale, or already `owner`'s); false when someone else holds it.
 */
export function claimFile(file: string, owner: string, isStale: (holder: string) => boolean): boolean {
  mkdirSync(file.slice(0, file.lastIndexOf('/')), { recursive: true, mode: 0o700 });
  if (create(file, owner)) return true;
  const holder = readClaim(file);
  if (holder === owner) return true;
  if (holder !== undefined && !isStale(holder)) return false;
  const lock = `${file}.lock`;
  if (!lockDir(lock)) return false;
  try {
    const again = readClaim(file);
    if (again === owner) return true;
    if (again !== undefined) {
      if (!isStale(again)) return false;
      unlinkSync(file);
    }
    return create(file, owner);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/** Gives up `owner`'s claim `file`; someone else's stays. */
export function releaseFile(file: string, owner: string): void {
  try {
    if (readFileSync(file, 'utf8') === owner) unlinkSync(file);
  } catch {
    // not claimed
  }
}

/** Who holds claim `file`, if anyone. */
export function readClaim(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** How long ago `path` was last written (0 when it is gone). */
export function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
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
