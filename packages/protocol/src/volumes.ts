/**
 * Volumes: durable storage outside every machine (API.md §1). A volume is a filesystem of a fixed
 * size on the host; an attachment (`vat_`) mounts it, or one directory of it, into one machine at
 * a path, read-write or read-only. See docs/volumes.md.
 */
import { invalidArgument } from './errors.js';
import { ID_PREFIX, isId } from './ids.js';
import {
  expectObject,
  optionalBoolean,
  optionalInteger,
  optionalString,
  rejectUnknownKeys,
} from './validate.js';

export const VOLUME_LIMITS = {
  // mkfs.xfs (6.1) refuses file systems under 300 MB.
  size_mb: { min: 300, max: 1048576, default: 1024 },
  /** Attachments one machine may have at once. */
  perMachine: 32,
  pathLength: 1024,
} as const;

/**
 * Volume names: 1-63 of lower-case letters, digits and `.`, `_`, `-`, starting with a letter or
 * digit; never shaped like a volume id (`vol_...`), so `{vol}` in a route is unambiguous.
 */
export const VOLUME_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * One component of a mount path or subpath. The character set is deliberately small: paths are
 * written into CRIU's configuration (where `:` and white space separate fields) and shown in
 * mount tables, so anything that would need quoting is refused rather than escaped.
 */
const PATH_COMPONENT = /^[A-Za-z0-9@+=,~_.-]{1,255}$/;

/** Machine paths a volume may not be mounted on or under: the kernel's, and the agent's (AGENT_PATHS). */
const RESERVED_MOUNT_ROOTS = ['/proc', '/sys', '/dev', '/.nullspace'];

/** A volume as the API returns it. */
export interface VolumeInfo {
  id: string;
  name: string;
  size_mb: number;
  /** Bytes in use on the volume's filesystem (its own metadata included). */
  used_bytes: number;
  created_at: string;
  /** Where it is mounted now: one entry per machine attachment. */
  attachments: VolumeAttachmentRef[];
}

/** An attachment as a volume lists it. */
export interface VolumeAttachmentRef {
  id: string;
  machine_id: string;
  mount_path: string;
  read_only: boolean;
  subpath: string | null;
}

/** One volume mounted into one machine (`machine info.volumes`, `GET .../volumes`). */
export interface VolumeAttachmentInfo {
  /** `vat_...` */
  id: string;
  volume_id: string;
  volume_name: string;
  machine_id: string;
  mount_path: string;
  read_only: boolean;
  /** The directory of the volume that is mounted (null: the whole volume). */
  subpath: string | null;
  created_at: string;
  /** The last health check (null until the first one). */
  health: VolumeHealth | null;
}

/** `GET .../volumes/{vat}/health`: whether the mount in the machine is what the attachment says. */
export interface VolumeHealth {
  attachment_id: string;
  healthy: boolean;
  /** Why it is unhealthy (null when healthy). */
  reason: string | null;
  checked_at: string;
  /** What is mounted at `mount_path` in the machine now (null: nothing of the volume). */
  observed: { read_only: boolean; subpath: string | null } | null;
}

export interface ListVolumesResponse {
  items: VolumeInfo[];
}

export interface ListVolumeAttachmentsResponse {
  items: VolumeAttachmentInfo[];
}

/** A validated `POST /v1/volumes` body. */
export interface CreateVolumeRequest {
  name: string;
  size_mb: number;
}

/** A validated volume mount of a create request or of `POST /v1/machines/{id}/volumes`. */
export interface VolumeMountRequest {
  /** Volume id or name, as given. */
  volume: string;
  mount_path: string;
  read_only: boolean;
  /** Normalised: no leading or trailing `/`; null for the whole volume. */
  subpath: string | null;
}

export function parseCreateVolume(body: unknown): CreateVolumeRequest {
  const obj = expectObject(body ?? {}, 'body');
  rejectUnknownKeys(obj, ['name', 'size_mb']);
  const name = optionalString(obj, 'name', {
    max: 63,
    pattern: VOLUME_NAME,
    patternHelp: 'must be 1-63 of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
  });
  if (name === undefined) throw invalidArgument('name', 'is required');
  if (name.startsWith(ID_PREFIX.volume))
    throw invalidArgument('name', `must not start with "${ID_PREFIX.volume}"`);
  const size =
    optionalInteger(obj, 'size_mb', VOLUME_LIMITS.size_mb.min, VOLUME_LIMITS.size_mb.max) ??
    VOLUME_LIMITS.size_mb.default;
  return { name, size_mb: size };
}

/** Whether `ref` (a route's `{vol}` or a mount's `volume`) is an id rather than a name. */
export function isVolumeId(ref: string): boolean {
  return isId('volume', ref);
}

/**
 * A machine path a volume can be mounted on: absolute, plain components (see PATH_COMPONENT),
 * not `/` and not on or under /proc, /sys, /dev or the agent's /.nullspace.
 */
export function checkMountPath(field: string, path: string): string {
  if (path.length > VOLUME_LIMITS.pathLength)
    throw invalidArgument(field, `must be at most ${VOLUME_LIMITS.pathLength} characters`);
  if (!path.startsWith('/')) throw invalidArgument(field, 'must be an absolute path');
  if (path === '/') throw invalidArgument(field, 'must not be / (the root of the machine)');
  const parts = path.slice(1).split('/');
  checkComponents(field, parts);
  for (const root of RESERVED_MOUNT_ROOTS)
    if (path === root || path.startsWith(`${root}/`))
      throw invalidArgument(field, `must not be on or under ${root}`);
  return path;
}

/** A subpath inside a volume, normalised (`/a/b/` → `a/b`); null for none or the volume's root. */
export function normaliseSubpath(field: string, subpath: string | undefined | null): string | null {
  if (subpath === undefined || subpath === null) return null;
  const trimmed = subpath.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return null;
  if (trimmed.length > VOLUME_LIMITS.pathLength)
    throw invalidArgument(field, `must be at most ${VOLUME_LIMITS.pathLength} characters`);
  checkComponents(field, trimmed.split('/'));
  return trimmed;
}

function checkComponents(field: string, parts: string[]): void {
  for (const part of parts) {
    if (part === '')
      throw invalidArgument(field, 'must not contain empty components ("//" or a trailing "/")');
    if (part === '.' || part === '..')
      throw invalidArgument(field, 'must not contain "." or ".." components');
    if (!PATH_COMPONENT.test(part))
      throw invalidArgument(
        field,
        'components may hold only letters, digits and @ + = , ~ _ . - (no spaces, colons or other characters)',
      );
  }
}

/** One `{volume, mount_path, read_only?, subpath?}` object; `prefix` names it in errors. */
export function parseVolumeMount(value: unknown, prefix = ''): VolumeMountRequest {
  const mount = expectObject(value, prefix === '' ? 'body' : prefix.replace(/\.$/, ''));
  rejectUnknownKeys(mount, ['volume', 'mount_path', 'read_only', 'subpath'], prefix);
  const volume = optionalString(mount, 'volume', { max: 64, prefix });
  if (volume === undefined || volume === '') throw invalidArgument(`${prefix}volume`, 'is required');
  const mountPath = optionalString(mount, 'mount_path', { max: VOLUME_LIMITS.pathLength, prefix });
  if (mountPath === undefined) throw invalidArgument(`${prefix}mount_path`, 'is required');
  checkMountPath(`${prefix}mount_path`, mountPath);
  const readOnly = optionalBoolean(mount, 'read_only', prefix) ?? false;
  const subpath = normaliseSubpath(
    `${prefix}subpath`,
    optionalString(mount, 'subpath', { max: VOLUME_LIMITS.pathLength, prefix }),
  );
  return { volume, mount_path: mountPath, read_only: readOnly, subpath };
}

/** The `volumes` array of a create request: at most VOLUME_LIMITS.perMachine, paths apart. */
export function parseVolumeMounts(value: unknown): VolumeMountRequest[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidArgument('volumes', 'must be an array');
  if (value.length > VOLUME_LIMITS.perMachine)
    throw invalidArgument('volumes', `must have at most ${VOLUME_LIMITS.perMachine} items`);
  const mounts = value.map((item, i) => parseVolumeMount(item, `volumes[${i}].`));
  mounts.forEach((m, i) => {
    const clash = mounts.findIndex((o, j) => j !== i && mountPathsOverlap(o.mount_path, m.mount_path));
    if (clash !== -1)
      throw invalidArgument(
        `volumes[${i}].mount_path`,
        `overlaps volumes[${clash}].mount_path (${mounts[clash]?.mount_path}); mount paths must be apart`,
      );
  });
  return mounts;
}

/** Whether one path is the other or lies below it (two mounts that would stack or nest). */
export function mountPathsOverlap(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}
