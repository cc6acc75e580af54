import { createHash } from 'node:crypto';
import { lchown, lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IdRange } from '../userns/id-ranges.js';

/**
 * How a machine's memory came to be when it last started: booted (`create`), or restored from a
 * memory image — its own (`resume`, after hibernation), a fork parent's (`fork`), a snapshot's
 * (`snapshot`) or a snapshot-backed template's ready snapshot (`template`).
 */
export type MachineOrigin = 'create' | 'resume' | 'fork' | 'snapshot' | 'template';

/** Where a restored machine's memory image came from (a fork parent, a snapshot, a template). */
export interface RestoredFrom {
  kind: 'fork' | 'snapshot' | 'template';
  /** The parent machine's id, the snapshot's id, or the template's name. */
  id: string;
}

/** The file in every machine that says who it is and how its processes came to be there. */
export const IDENTITY_FILE = '/etc/nullspace/identity.json';

/** What {@link IDENTITY_FILE} holds. */
export interface MachineIdentity {
  machine_id: string;
  /** The same as /etc/machine-id: 32 hex digits, the machine's own, kept across resume. */
  machine_uuid: string;
  origin: MachineOrigin;
  /** The parent, snapshot or template the memory came from (null when booted or resumed). */
  from: string | null;
  /** When the machine last started or was restored (ISO 8601). */
  at: string;
}

/**
 * The machine's /etc/machine-id: 32 hex digits of a hash of its id, so unique to the machine, the
 * same across its resumes, and new in every fork child or machine made from a snapshot.
 */
export function machineUuidOf(machineId: string): string {
  return createHash('sha256').update(`nullspace machine-id ${machineId}`).digest('hex').slice(0, 32);
}

/**
 * Writes /etc/machine-id and {@link IDENTITY_FILE} into the machine's root filesystem (`rootfs`,
 * its overlay mounted on the host), before the machine starts or is restored: nothing of it runs,
 * so nothing it planted can move under this. What it planted is not followed: a symbolic link or
 * anything not a directory at `etc` or `etc/nullspace` is replaced by a directory, and the files
 * are made anew (O_EXCL never follows a link). What is made belongs to the machine's root (host id
 * `range.base`; host root for a machine without a user namespace), as if it had made it.
 */
export async function writeIdentity(
  rootfs: string,
  machineId: string,
  origin: MachineOrigin,
  from: string | null,
  range: IdRange | null,
): Promise<MachineIdentity> {
  const identity: MachineIdentity = {
    machine_id: machineId,
    machine_uuid: machineUuidOf(machineId),
    origin,
    from,
    at: new Date().toISOString(),
  };
  const owner = range?.base ?? 0;
  const etc = await realDir(rootfs, 'etc', owner);
  const own = await realDir(etc, 'nullspace', owner);
  await freshFile(join(etc, 'machine-id'), `${identity.machine_uuid}\n`, owner);
  await freshFile(join(own, 'identity.json'), `${JSON.stringify(identity)}\n`, owner);
  return identity;
}

/** `parent/name` as a real directory (not a link), made (owned by `owner`) if missing. */
async function realDir(parent: string, name: string, owner: number): Promise<string> {
  const path = join(parent, name);
  const st = await lstat(path).catch(() => undefined);
  if (st?.isDirectory()) return path;
  if (st !== undefined) await rm(path, { force: true, recursive: true });
  await mkdir(path, { mode: 0o755 });
  await lchown(path, owner, owner);
  return path;
}

/** Replaces whatever is at `path` by a new read-only file with `content`, owned by `owner`. */
async function freshFile(path: string, content: string, owner: number): Promise<void> {
  await rm(path, { force: true, recursive: true });
  await writeFile(path, content, { flag: 'wx', mode: 0o444 });
  await lchown(path, owner, owner);
}
