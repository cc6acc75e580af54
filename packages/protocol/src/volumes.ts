/**
 * Volumes: durable storage outside every machine (API.md §1). A volume is a filesystem of a fixed
 * size on the host; an attachment (`vat_`) mounts it, or one directory of it, into one machine at
 * a path, read-write or read-only. See docs/volumes.md.
 */
import { invalidArgument } from './errors.js';
import { ID_PREFIX, isId } from './ids.js';
import { check } from './schema/check.js';
import { DateTime, Nullable, Pattern, type Static, Strict, Type, named } from './schema/kit.js';

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

// ---- schemas ----------------------------------------------------------------------------------

/** A volume mount of a create request, or the body of `POST /v1/machines/{id}/volumes`. */
export const VolumeMountBodySchema = named(
  'VolumeMountRequest',
  Strict(
    {
      volume: Type.String({ minLength: 1, maxLength: 64, description: 'Volume id (`vol_...`) or name.' }),
      mount_path: Type.String({
        maxLength: VOLUME_LIMITS.pathLength,
        description:
          'Absolute path in the machine; created if missing. Not `/`, nor under /proc, /sys, /dev.',
      }),
      read_only: Type.Optional(Type.Boolean({ default: false, description: 'Mount read-only.' })),
      subpath: Type.Optional(
        Type.String({
          maxLength: VOLUME_LIMITS.pathLength,
          description: 'Mount only this directory of the volume (created if missing; no `..`).',
        }),
      ),
    },
    { description: 'A volume to mount into a machine.' },
  ),
);

/** The body of `POST /v1/volumes`. */
export const CreateVolumeBodySchema = named(
  'CreateVolumeRequest',
  Strict({
    name: Pattern(
      VOLUME_NAME,
      'must be 1-63 of a-z, 0-9, ".", "_" and "-", starting with a letter or digit',
      {
        maxLength: 63,
        description: "Name, unique among the tenant's volumes: 1-63 of a-z, 0-9, `.`, `_`, `-`.",
      },
    ),
    size_mb: Type.Optional(
      Type.Integer({
        minimum: VOLUME_LIMITS.size_mb.min,
        maximum: VOLUME_LIMITS.size_mb.max,
        default: VOLUME_LIMITS.size_mb.default,
        description: 'Size of its filesystem in MB (sparse: it costs what is written).',
      }),
    ),
  }),
);

/** An attachment as a volume lists it. */
export const VolumeAttachmentRefSchema = named(
  'VolumeAttachmentRef',
  Type.Object({
    id: Type.String({ description: '`vat_...`' }),
    machine_id: Type.String(),
    mount_path: Type.String(),
    read_only: Type.Boolean(),
    subpath: Nullable(Type.String()),
  }),
);
export type VolumeAttachmentRef = Static<typeof VolumeAttachmentRefSchema>;

/** A volume as the API returns it. */
export const VolumeInfoSchema = named(
  'VolumeInfo',
  Type.Object({
    id: Type.String({ description: '`vol_...`' }),
    name: Type.String(),
    size_mb: Type.Integer(),
    used_bytes: Type.Integer({
      description: "Bytes in use on the volume's filesystem (its own metadata included).",
    }),
    created_at: DateTime(),
    attachments: Type.Array(VolumeAttachmentRefSchema, {
      description: 'Where it is mounted now: one entry per machine attachment.',
    }),
  }),
);
export type VolumeInfo = Static<typeof VolumeInfoSchema>;

/** `GET .../volumes/{vat}/health`: whether the mount in the machine is what the attachment says. */
export const VolumeHealthSchema = named(
  'VolumeHealth',
  Type.Object({
    attachment_id: Type.String(),
    healthy: Type.Boolean(),
    reason: Nullable(Type.String(), { description: 'Why it is unhealthy (null when healthy).' }),
    checked_at: DateTime(),
    observed: Nullable(Type.Object({ read_only: Type.Boolean(), subpath: Nullable(Type.String()) }), {
      description: 'What is mounted at `mount_path` in the machine now (null: nothing of the volume).',
    }),
  }),
);
export type VolumeHealth = Static<typeof VolumeHealthSchema>;

/** One volume mounted into one machine (`machine info.volumes`, `GET .../volumes`). */
export const VolumeAttachmentInfoSchema = named(
  'VolumeAttachment',
  Type.Object({
    id: Type.String({ description: '`vat_...`' }),
    volume_id: Type.String(),
    volume_name: Type.String(),
    machine_id: Type.String(),
    mount_path: Type.String(),
    read_only: Type.Boolean(),
    subpath: Nullable(Type.String(), {
      description: 'The directory of the volume that is mounted (null: the whole volume).',
    }),
    created_at: DateTime(),
    health: Nullable(VolumeHealthSchema, {
      description: 'The last health check (null until the first one).',
    }),
  }),
);
export type VolumeAttachmentInfo = Static<typeof VolumeAttachmentInfoSchema>;

export const ListVolumesResponseSchema = Type.Object({ items: Type.Array(VolumeInfoSchema) });
export type ListVolumesResponse = Static<typeof ListVolumesResponseSchema>;

export const ListVolumeAttachmentsResponseSchema = Type.Object({
  items: Type.Array(VolumeAttachmentInfoSchema),
});
export type ListVolumeAttachmentsResponse = Static<typeof ListVolumeAttachmentsResponseSchema>;

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
  const b = check(CreateVolumeBodySchema, body ?? {});
  if (b.name.startsWith(ID_PREFIX.volume))
    throw invalidArgument('name', `must not start with "${ID_PREFIX.volume}"`);
  return { name: b.name, size_mb: b.size_mb ?? VOLUME_LIMITS.size_mb.default };
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
  const mount = check(VolumeMountBodySchema, value, prefix.replace(/\.$/, ''));
  checkMountPath(`${prefix}mount_path`, mount.mount_path);
  const subpath = normaliseSubpath(`${prefix}subpath`, mount.subpath);
  return { volume: mount.volume, mount_path: mount.mount_path, read_only: mount.read_only ?? false, subpath };
}

/** The `volumes` array of a create request: at most VOLUME_LIMITS.perMachine, paths apart. */
export function parseVolumeMounts(value: unknown): VolumeMountRequest[] {
  if (value === undefined || value === null) return [];
  const list = check(Type.Array(Type.Unknown(), { maxItems: VOLUME_LIMITS.perMachine }), value, 'volumes');
  const mounts = list.map((item, i) => parseVolumeMount(item, `volumes[${i}].`));
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
